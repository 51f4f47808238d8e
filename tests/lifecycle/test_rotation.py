from datetime import timedelta

import pytest

from shared.azure_errors import AzureCallError
from shared.deployment import Phase
from shared.engine import StepTimings
from shared.key_secrets import SECRET_CONTENT_TYPE, alternate, key_secret_tags
from shared.lifecycle.rotation import secrets_due
from shared.ownership import MANAGED_BY_TAG, MANAGED_BY_VALUE
from shared.plan import plan_for
from shared.ports import Operation, OperationProgress, StoredSecret
from shared.problems import Problem
from shared.runs import RunStatus
from tests.deployments.fakes import START, FakeMachineLearning
from tests.deployments.scenario import AUDITOR, CATALOG, DIRECT_MODEL, REQUESTER, WORKSPACE_ID, request

from .world import HUB_ID, VALIDITY_DAYS, build

STRANGER = "9d9d9d9d-0000-4000-8000-000000000001"
ENDPOINT_ID = f"{WORKSPACE_ID}/serverlessEndpoints/ep"


def secret(name: str, *, expires_in_days: float | None, **changes: object) -> StoredSecret:
    tags = {MANAGED_BY_TAG: MANAGED_BY_VALUE, "run": "run-1", "keyType": "primary", "CredentialId": "primary"}
    fields = {
        "id": f"https://kv.vault.azure.net/secrets/{name}/1",
        "name": name,
        "version": "1",
        "enabled": True,
        "expires_on": None if expires_in_days is None else START + timedelta(days=expires_in_days),
        "tags": tags,
        "content_type": SECRET_CONTENT_TYPE,
        **changes,
    }
    return StoredSecret(**fields)


def test_only_the_brokers_enabled_key_secrets_expiring_within_the_window_are_due_in_name_order():
    secrets = [
        secret("z-expired", expires_in_days=-3),
        secret("a-within-window", expires_in_days=29),
        secret("beyond-window", expires_in_days=31),
        secret("no-expiry", expires_in_days=None),
        secret("disabled", expires_in_days=1, enabled=False),
        secret("someone-elses", expires_in_days=1, tags={"run": "run-1", "keyType": "primary"}),
        secret("other-content", expires_in_days=1, content_type="text/plain"),
    ]

    due = secrets_due(secrets, now=START, window=timedelta(days=30))

    assert [item.name for item in due] == ["a-within-window", "z-expired"]


def test_rotation_tags_and_expiry_come_only_with_a_validity_period():
    common = {
        "workspace_id": WORKSPACE_ID,
        "endpoint_name": "ep",
        "endpoint_id": ENDPOINT_ID,
        "model_id": DIRECT_MODEL,
        "run_id": "run-1",
        "key_type": "secondary",
    }

    plain = key_secret_tags(**common, validity_days=None)
    rotating = key_secret_tags(**common, validity_days=90)

    assert "CredentialId" not in plain
    assert rotating == {
        **plain,
        "CredentialId": "secondary",
        "ProviderAddress": ENDPOINT_ID,
        "ValidityPeriodDays": "90",
    }
    assert (alternate("primary"), alternate("secondary")) == ("secondary", "primary")


def test_a_deployment_stores_both_keys_with_the_validity_period_as_expiry():
    world = build()

    run = world.deploy()

    plan = plan_for(run.request, CATALOG)
    for key_type in ("primary", "secondary"):
        stored = world.secrets.latest(getattr(plan.secret_names, key_type)).secret
        assert stored.expires_on == START + timedelta(days=VALIDITY_DAYS)
        assert stored.tags["CredentialId"] == key_type
        assert stored.tags["ProviderAddress"] == plan.endpoint_id


@pytest.mark.parametrize(("rotated", "untouched"), [("primary", "secondary"), ("secondary", "primary")])
def test_rotating_a_key_regenerates_only_it_and_stores_a_new_version_of_only_its_secret(rotated, untouched):
    world = build()
    run = world.deploy()
    plan = plan_for(run.request, CATALOG)
    before = world.ml.endpoint_keys(WORKSPACE_ID, plan.endpoint_name)
    world.clock.advance(3600)

    outcome = world.lifecycle.rotate(run.deployment_id, rotated, caller=REQUESTER)
    world.drain()

    after = world.ml.endpoint_keys(WORKSPACE_ID, plan.endpoint_name)
    assert getattr(after, rotated) != getattr(before, rotated)
    assert getattr(after, untouched) == getattr(before, untouched)
    assert [call.args[2] for call in world.ml.calls_to("regenerate_key")] == [rotated]
    rotated_versions = world.secrets.versions[getattr(plan.secret_names, rotated).lower()]
    assert len(rotated_versions) == 2
    assert rotated_versions[-1].value == getattr(after, rotated)
    assert rotated_versions[-1].secret.expires_on == world.clock.now + timedelta(days=VALIDITY_DAYS)
    assert len(world.secrets.versions[getattr(plan.secret_names, untouched).lower()]) == 1
    finished = world.run(run.id)
    [rotation] = finished.key_rotations
    assert (rotation.id, rotation.status, rotation.trigger) == (outcome.rotation.id, "Rotated", "manual")
    assert getattr(finished.secret_ids, rotated) == rotation.secret_id == rotated_versions[-1].secret.id
    assert getattr(finished.secret_ids, untouched) == getattr(run.secret_ids, untouched)
    event = world.events.bodies[-1]
    assert event["type"].endswith(".keyrotated")
    assert (event["data"]["keyType"], event["data"]["secretId"]) == (rotated, rotation.secret_id)
    assert getattr(after, rotated) not in world.runs.stored_text() + str(world.events.bodies)


class RegenerateAccepted(FakeMachineLearning):
    """regenerateKeys answers 202: the new key exists once the operation, polled once in progress, completes."""

    URL = "https://management.example.test/regenerate/"

    def __init__(self) -> None:
        super().__init__()
        self.pending: dict[str, tuple[str, str, str]] = {}
        self.polls: list[str] = []

    def regenerate_key(self, workspace_id: str, name: str, key_type: str) -> Operation:
        url = f"{self.URL}{len(self.pending)}"
        self.pending[url] = (workspace_id, name, key_type)
        return Operation(url, retry_after=2.0)

    def get_operation(self, operation: Operation) -> OperationProgress:
        if not operation.url.startswith(self.URL):
            return super().get_operation(operation)
        self.polls.append(operation.url)
        if self.polls.count(operation.url) == 1:
            return OperationProgress(done=False, succeeded=False, retry_after=1.0)
        if operation.url in self.pending:
            super().regenerate_key(*self.pending.pop(operation.url))
        return OperationProgress(done=True, succeeded=True)


def test_a_regeneration_answered_202_is_polled_through_delayed_messages_before_the_key_is_stored():
    world = build(ml=RegenerateAccepted())
    run = world.deploy()
    plan = plan_for(run.request, CATALOG)
    before = world.ml.endpoint_keys(WORKSPACE_ID, plan.endpoint_name)

    world.lifecycle.rotate(run.deployment_id, "primary", caller=REQUESTER)
    world.drain()

    after = world.ml.endpoint_keys(WORKSPACE_ID, plan.endpoint_name)
    assert after.primary != before.primary
    assert world.secrets.latest(plan.secret_names.primary).value == after.primary
    assert len(world.ml.polls) == 2
    rotate_steps = [message for message in world.processed if message.body["step"] == "rotate-key"]
    # Started, then polled after the operation's Retry-After, then again after the poll floor (the poll's own
    # Retry-After, 1 s, is shorter than the floor).
    assert [(message.body.get("operation_url"), message.delay_seconds) for message in rotate_steps] == [
        (None, 0),
        (f"{RegenerateAccepted.URL}0", 2.0),
        (f"{RegenerateAccepted.URL}0", StepTimings().poll_seconds),
    ]
    [rotation] = world.run(run.id).key_rotations
    assert (rotation.status, rotation.operation_url) == ("Rotated", f"{RegenerateAccepted.URL}0")


def test_a_failed_regeneration_fails_the_rotation_and_keeps_the_secret():
    world = build()
    run = world.deploy()
    plan = plan_for(run.request, CATALOG)
    world.ml.fail_next("regenerate_key", AzureCallError(400, "UserError", "Not now."))

    world.lifecycle.rotate(run.deployment_id, "secondary", caller=REQUESTER)
    world.drain()

    [rotation] = world.run(run.id).key_rotations
    assert (rotation.status, rotation.error.code) == ("Failed", "UserError")
    assert len(world.secrets.versions[plan.secret_names.secondary.lower()]) == 1
    assert world.events.bodies[-1]["type"].endswith(".keyrotationfailed")


def test_rotation_is_refused_to_strangers_while_another_runs_and_after_a_teardown():
    world = build()
    run = world.deploy()

    forbidden = world.lifecycle.rotate(run.deployment_id, "primary", caller=STRANGER)
    started = world.lifecycle.rotate(run.deployment_id, "primary", caller=REQUESTER)
    busy = world.lifecycle.rotate(run.deployment_id, "secondary", caller=REQUESTER)
    world.drain()
    world.lifecycle.delete(run.deployment_id, caller=REQUESTER, delete_subscription=False)
    world.drain()
    gone = world.lifecycle.rotate(run.deployment_id, "primary", caller=REQUESTER)

    assert forbidden.problem.kind.slug == "requester-forbidden"
    assert started.problem is None
    assert busy.problem.kind.slug == "deployment-state-conflict"
    assert started.rotation.id in busy.problem.detail
    assert isinstance(gone, Problem)
    assert (gone.kind.slug, gone.status) == ("deployment-state-conflict", 409)
    assert f"{run.deployment_id} is Deleted" in gone.detail
    assert [call.args[2] for call in world.ml.calls_to("regenerate_key")] == ["primary"]
    assert world.lifecycle.rotate("no-such-deployment", "primary", caller=REQUESTER) is None


def test_a_deployment_still_being_made_has_no_keys_to_rotate():
    world = build()
    submission = world.service.submit(request(DIRECT_MODEL), caller=REQUESTER)

    refused = world.lifecycle.rotate(submission.deployment.id, "primary", caller=REQUESTER)

    assert isinstance(refused, Problem)
    assert refused.extensions == {"deploymentId": submission.deployment.id, "phase": "Provisioning"}


def test_a_rotation_is_recorded_on_the_keys_run_and_the_deployment_shows_the_new_secret_version():
    world = build()
    run = world.deploy()

    outcome = world.lifecycle.rotate(run.deployment_id, "secondary", caller=REQUESTER)
    world.drain()

    deployment = world.service.get_deployment(run.deployment_id, caller=AUDITOR)
    [rotation] = world.run(run.id).key_rotations
    assert outcome.run.id == deployment.status.keys_run_id == run.id
    assert deployment.status.secret_ids.secondary == rotation.secret_id != run.secret_ids.secondary
    assert deployment.status.secret_ids.primary == run.secret_ids.primary


def test_after_a_teardown_and_a_new_deployment_the_new_run_holds_the_keys_that_rotate():
    world = build()
    old = world.deploy()
    world.lifecycle.delete(old.deployment_id, caller=REQUESTER, delete_subscription=False)
    world.drain()
    new = world.deploy()

    outcome = world.lifecycle.rotate(new.deployment_id, "primary", caller=REQUESTER)
    world.drain()

    assert new.deployment_id == old.deployment_id
    assert outcome.run.id == new.id != old.id
    assert [rotation.status for rotation in world.run(new.id).key_rotations] == ["Rotated"]
    assert world.run(old.id).key_rotations == ()


def test_the_timer_leaves_a_deployment_being_torn_down_alone():
    world = build()
    run = world.deploy()
    world.clock.advance(timedelta(days=61).total_seconds())
    world.lifecycle.delete(run.deployment_id, caller=REQUESTER, delete_subscription=False)

    started = world.lifecycle.rotate_expiring()
    world.drain()

    assert started == []
    assert world.ml.calls_to("regenerate_key") == []
    assert world.run(run.id).key_rotations == ()
    assert world.service.get_deployment(run.deployment_id, caller=AUDITOR).status.phase is Phase.DELETED
    assert world.event_types()[-1] == "deleted"


def test_a_rotation_overtaken_by_a_teardown_fails_without_regenerating_or_storing_a_key():
    world = build()
    run = world.deploy()
    plan = plan_for(run.request, CATALOG)
    world.lifecycle.rotate(run.deployment_id, "primary", caller=REQUESTER)
    world.ml.synchronous = True  # the endpoint is gone, and its secrets with it, as soon as the teardown starts
    world.lifecycle.delete(run.deployment_id, caller=REQUESTER, delete_subscription=False)

    world.drain()

    [rotation] = world.run(run.id).key_rotations
    assert (rotation.status, rotation.error.code) == ("Failed", "DeploymentDeleted")
    assert world.ml.calls_to("regenerate_key") == []
    assert world.secrets.latest(plan.secret_names.primary) is None
    assert "keyrotationfailed" in world.event_types()
    assert world.service.get_deployment(run.deployment_id, caller=AUDITOR).status.phase is Phase.DELETED


def test_the_timer_rotates_the_alternate_of_an_expiring_key_once_per_expiry_and_alternates_over_time():
    world = build()
    run = world.deploy()
    plan = plan_for(run.request, CATALOG)

    def keys():
        return world.ml.endpoint_keys(WORKSPACE_ID, plan.endpoint_name)

    first = keys()

    world.clock.advance(timedelta(days=61).total_seconds())  # both keys now expire within the 30-day window
    started = world.lifecycle.rotate_expiring()
    world.drain()

    assert [(item.key_type, item.trigger) for item in started] == [("secondary", "scheduled")]
    assert plan.secret_names.primary in started[0].reason
    assert (keys().primary, keys().secondary != first.secondary) == (first.primary, True)
    assert world.lifecycle.rotate_expiring() == []  # the same expiring version never triggers twice

    world.clock.advance(timedelta(days=61).total_seconds())  # now the fresh secondary nears its expiry
    started = world.lifecycle.rotate_expiring()
    world.drain()

    assert [item.key_type for item in started] == ["primary"]
    assert keys().primary != first.primary
    statuses = [rotation.status for rotation in world.run(run.id).key_rotations]
    assert statuses == ["Rotated", "Rotated"]


def test_a_cross_region_connection_is_moved_to_the_other_key_before_a_key_is_regenerated():
    world = build(location="westeurope", hub=True)
    run = world.deploy(allow_cross_region=True)
    plan = plan_for(run.request, CATALOG, target=run.deployment_target)
    assert plan.workspace.resource_id == HUB_ID
    [stored] = world.connections.connections.values()
    assert stored.key == world.ml.endpoint_keys(HUB_ID, plan.endpoint_name).primary

    world.lifecycle.rotate(run.deployment_id, "primary", caller=REQUESTER)
    world.drain()

    [stored] = world.connections.connections.values()
    keys = world.ml.endpoint_keys(HUB_ID, plan.endpoint_name)
    assert stored.key == keys.secondary
    assert world.run(run.id).cross_region.connection.key_type == "secondary"
    assert world.run(run.id).status is RunStatus.SUCCEEDED


def test_two_copies_of_the_rotate_step_running_at_once_store_and_announce_the_rotation_once():
    world = build()
    run = world.deploy()
    world.events.sent.clear()
    world.lifecycle.rotate(run.deployment_id, "primary", caller=REQUESTER)
    step = world.work.sent[0]
    # The copy runs while the first is between regenerating and recording the rotation, as a redelivery would.
    world.runs.before_next("save", lambda: world.service.advance(step.text))

    world.drain()

    assert [body["type"].rsplit(".", 1)[-1] for body in world.events.bodies] == ["keyrotated"]
    assert [rotation.status for rotation in world.run(run.id).key_rotations] == ["Rotated"]
