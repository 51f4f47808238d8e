"""Teardowns and key rotations whose chain of work messages died with a host are set going again by the watchdog."""

from shared.engine import DELETE_ENDPOINT, ROTATE_KEY
from shared.plan import plan_for
from shared.runs import RunStatus
from shared.watchdog import Watchdog
from tests.deployments.scenario import CATALOG, DIRECT_MODEL, MARKETPLACE_MODEL, REQUESTER, WORKSPACE_ID

from .test_rotation import RegenerateAccepted
from .world import build

STALL_SECONDS = 60.0


def sweep(world):
    return Watchdog(runs=world.runs, work=world.work, clock=world.clock, stall_seconds=STALL_SECONDS).sweep()


def test_a_teardown_whose_message_died_with_its_host_is_resumed_and_deletes_once():
    world = build()
    deployed = world.deploy()
    submission = world.lifecycle.delete(deployed.deployment_id, caller=REQUESTER, delete_subscription=False)
    lost = world.work.take()
    world.clock.advance(STALL_SECONDS)

    (recovery,) = sweep(world).recovered
    world.drain()
    world.service.advance(lost.text)

    assert (recovery.run_id, recovery.step, recovery.status) == (submission.run.id, DELETE_ENDPOINT, "Deleting")
    assert world.run(submission.run.id).status is RunStatus.DELETED
    assert world.ml.endpoint(WORKSPACE_ID, plan_for(deployed.request, CATALOG).endpoint_name) is None
    assert len(world.ml.calls_to("begin_delete_endpoint")) == 1
    assert world.event_types().count("deleted") == 1
    assert world.work.sent == []


def test_a_teardown_lost_at_its_subscription_starts_again_at_the_deleted_endpoint_and_finishes():
    world = build()
    deployed = world.deploy(MARKETPLACE_MODEL)
    submission = world.lifecycle.delete(deployed.deployment_id, caller=REQUESTER, delete_subscription=True)
    world.step_until("delete-subscription")
    world.work.take()  # the host died holding the subscription's step
    world.clock.advance(STALL_SECONDS)

    (recovery,) = sweep(world).recovered
    world.drain()

    assert recovery.step == DELETE_ENDPOINT
    plan = plan_for(deployed.request, CATALOG)
    assert world.run(submission.run.id).status is RunStatus.DELETED
    assert world.ml.subscription(WORKSPACE_ID, plan.subscription_name) is None
    assert len(world.ml.calls_to("begin_delete_endpoint")) == 1
    assert len(world.ml.calls_to("begin_delete_subscription")) == 1
    assert world.event_types().count("deleted") == 1


def test_a_rotation_whose_message_died_with_its_host_is_resumed_and_regenerates_once():
    world = build()
    run = world.deploy(DIRECT_MODEL)
    world.clock.advance(3600)
    outcome = world.lifecycle.rotate(run.deployment_id, "primary", caller=REQUESTER)
    lost = world.work.take()
    assert lost.body["step_token"] == world.run(run.id).step_token == run.step_token + 1
    world.clock.advance(STALL_SECONDS)

    (recovery,) = sweep(world).recovered
    world.drain()
    world.service.advance(lost.text)

    assert (recovery.step, recovery.status) == (ROTATE_KEY, "Succeeded")
    [rotation] = world.run(run.id).key_rotations
    assert (rotation.id, rotation.status) == (outcome.rotation.id, "Rotated")
    assert len(world.ml.calls_to("regenerate_key")) == 1
    assert world.event_types().count("keyrotated") == 1
    assert sweep(world).in_flight == 0


def test_a_rotation_lost_while_its_regeneration_was_polled_polls_the_recorded_operation():
    world = build(ml=RegenerateAccepted())
    run = world.deploy(DIRECT_MODEL)
    world.lifecycle.rotate(run.deployment_id, "secondary", caller=REQUESTER)
    world.step()  # regenerateKeys answered 202; the poll is queued
    world.work.take()  # and lost
    world.clock.advance(STALL_SECONDS)

    sweep(world)
    world.drain()

    [rotation] = world.run(run.id).key_rotations
    assert rotation.status == "Rotated"
    plan = plan_for(run.request, CATALOG)
    keys = world.ml.endpoint_keys(WORKSPACE_ID, plan.endpoint_name)
    assert world.secrets.latest(plan.secret_names.secondary).value == keys.secondary
    assert world.event_types().count("keyrotated") == 1


def test_a_new_rotation_voids_a_message_left_from_the_one_before():
    world = build()
    run = world.deploy(DIRECT_MODEL)
    world.lifecycle.rotate(run.deployment_id, "primary", caller=REQUESTER)
    world.drain()
    leftover = world.processed[-1]  # a redelivery of the finished rotation's step

    world.lifecycle.rotate(run.deployment_id, "secondary", caller=REQUESTER)
    world.service.advance(leftover.text)

    assert [call.args[2] for call in world.ml.calls_to("regenerate_key")] == ["primary"]
    world.drain()
    assert [call.args[2] for call in world.ml.calls_to("regenerate_key")] == ["primary", "secondary"]
