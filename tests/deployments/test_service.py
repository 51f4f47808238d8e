"""The deployment service: intake reconciles every request against the Deployment resource of its (project, model).

Each request is answered from the deployment's state: a new deploy run ("created"), the run in flight ("joined"), the
deployment as it already is ("ready"), a repair run ("repair"), or a refusal; plus Idempotency-Key replays, the
crash windows intake heals, the queue intake, reads and availability.
"""

import base64
import json
import logging
from dataclasses import replace

import pytest

from shared.adapters.run_store import RunStore
from shared.azure_errors import AzureCallError
from shared.deployment import ConditionType, Deployment, DeploymentRequester, Phase, deployment_id
from shared.deployments.preflight import spec_for
from shared.deployments.service import IdempotencyConflictError
from shared.engine import CLAIM_SETTLE_SECONDS, PROVISION, STORE_KEYS, SUBSCRIBE
from shared.events import EVENT_TYPE_PREFIX, MAX_REJECTED_EVENT_BYTES
from shared.ownership import MANAGED_BY_TAG, MANAGED_BY_VALUE
from shared.plan import plan_for
from shared.runs import RunError, RunRecord, RunStatus

from .fakes import AZURE_QUEUE_MESSAGE_BYTES, limit_like_azure
from .scenario import (
    AI_DEVELOPER_BLOCK,
    AUDITOR,
    CATALOG,
    DIRECT_MODEL,
    DIRECT_REGIONS,
    MARKETPLACE_MODEL,
    MARKETPLACE_REGIONS,
    REQUESTER,
    WORKSPACE_ID,
    build_world,
    policy,
    request,
)

COLLEAGUE = "c011ea90-0000-4000-8000-000000000001"
THIRD = "c011ea90-0000-4000-8000-000000000002"
PERMANENT = AzureCallError(400, "BadRequest", "The request is invalid.")
SUBSCRIPTION_NAME = "Cohere-command-r-08-2024-subscription"
# Calls that change something in Azure; observing a deployment makes none of them.
AZURE_WRITES = (
    "begin_create_endpoint",
    "begin_delete_endpoint",
    "begin_create_subscription",
    "begin_delete_subscription",
    "regenerate_key",
)


class WorkerDied(Exception):
    """The function host lost the worker between two writes."""


def die():
    raise WorkerDied


def plan(deployment_request):
    return plan_for(deployment_request, CATALOG)


def statuses(run):
    return [step.status for step in run.steps]


def azure_writes(world):
    return [name for name in world.ml.call_names if name in AZURE_WRITES]


def secret_versions(world):
    return {name: len(versions) for name, versions in world.secrets.versions.items()}


def allow(world, *callers):
    for caller in callers:
        world.authorization.grant(caller, WORKSPACE_ID, permissions=[AI_DEVELOPER_BLOCK])


def events_of(world, kind):
    return [body for body in world.events.bodies if body["type"] == f"{EVENT_TYPE_PREFIX}.{kind}"]


# A new deployment.


def homed(unique, model=DIRECT_MODEL):
    """The id the store mints for run `unique` of the deployment of `model` in the test project."""
    deployment_request = request(model)
    return RunStore.new_run_id(deployment_id(deployment_request.workspace, deployment_request.model), unique)


def test_a_marketplace_request_makes_the_deployment_and_its_first_run(world):
    deployment_request = request(MARKETPLACE_MODEL, ticket="CHG-1")

    submission = world.service.submit(deployment_request, caller=REQUESTER)

    run, deployment = submission.run, submission.deployment
    assert (submission.answer, submission.accepted, submission.problem) == ("created", True, None)
    assert world.run(run.id) == run
    assert (run.caller, run.ticket, run.request, run.operation) == (REQUESTER, "CHG-1", deployment_request, "deploy")
    assert statuses(run) == [RunStatus.ACCEPTED, RunStatus.VALIDATING, RunStatus.SUBSCRIBING]
    assert run.steps[-1].detail == CATALOG.classify(MARKETPLACE_MODEL).explanation
    expected = plan(deployment_request)
    assert (run.endpoint.name, run.endpoint.id) == (expected.endpoint_name, expected.endpoint_id)
    assert world.work.bodies == [{"run_id": run.id, "step": SUBSCRIBE, "attempt": 0, "step_token": run.step_token}]

    assert world.deployment() == deployment
    assert run.deployment_id == deployment.id
    assert deployment.spec == spec_for(deployment_request, expected, None)
    assert (deployment.status.phase, deployment.status.current_run_id) == (Phase.PROVISIONING, run.id)
    assert [(item.caller, item.ticket, item.run_id, item.outcome) for item in deployment.requests] == [
        (REQUESTER, "CHG-1", run.id, "created")
    ]

    (event,) = world.events.bodies
    assert event["type"] == f"{EVENT_TYPE_PREFIX}.accepted"
    assert (event["id"], event["subject"]) == (f"{run.id}/accepted", run.id)
    assert (event["data"]["status"], event["data"]["ticket"]) == ("Subscribing", "CHG-1")
    assert (event["data"]["deploymentId"], event["data"]["operation"]) == (deployment.id, "deploy")
    assert event["data"]["endpointName"] == expected.endpoint_name


def test_a_model_sold_directly_starts_provisioning(world):
    run = world.submit(DIRECT_MODEL).run

    assert run.status is RunStatus.PROVISIONING
    assert world.work.bodies == [{"run_id": run.id, "step": PROVISION, "attempt": 0, "step_token": run.step_token}]


def test_a_ticket_given_by_the_intake_overrides_the_requests(world):
    run = world.service.submit(request(DIRECT_MODEL, ticket="IN-BODY"), caller=REQUESTER, ticket="FROM-QUEUE").run

    assert run.ticket == "FROM-QUEUE"
    assert world.deployment().requests[0].ticket == "FROM-QUEUE"


def test_an_endpoint_the_broker_made_before_has_its_keys_stored_rather_than_made_again(world):
    name = plan(request(DIRECT_MODEL)).endpoint_name
    world.ml.add_endpoint(WORKSPACE_ID, name, DIRECT_MODEL, tags={MANAGED_BY_TAG: MANAGED_BY_VALUE})

    run = world.submit(DIRECT_MODEL).run

    assert run.status is RunStatus.STORING_KEYS
    assert run.steps[-1].detail == f"endpoint '{name}' exists; storing its keys"
    assert world.work.bodies == [{"run_id": run.id, "step": STORE_KEYS, "attempt": 0, "step_token": run.step_token}]
    world.drain()
    assert world.run(run.id).status is RunStatus.SUCCEEDED
    assert world.ml.calls_to("begin_create_endpoint") == []


@pytest.mark.parametrize(("model", "first_step"), [(DIRECT_MODEL, PROVISION), (MARKETPLACE_MODEL, SUBSCRIBE)])
def test_an_endpoint_the_broker_made_that_never_finished_is_provisioned_not_trusted(world, model, first_step):
    name = plan(request(model)).endpoint_name
    world.ml.add_endpoint(
        WORKSPACE_ID, name, model, provisioning_state="Failed", tags={MANAGED_BY_TAG: MANAGED_BY_VALUE}
    )

    run = world.submit(model).run

    assert world.work.bodies[0]["step"] == first_step
    world.drain()
    assert world.run(run.id).status is RunStatus.SUCCEEDED
    assert world.ml.endpoint(WORKSPACE_ID, name).provisioning_state == "Succeeded"
    assert len(world.ml.calls_to("begin_create_endpoint")) == 1


def test_a_warning_from_preflight_is_kept_on_the_run():
    world = build_world(preflight_policy=replace(policy(), allow_uncatalogued_models=True))
    model = "azureml://registries/azureml-deepseek/models/DeepSeek-Unlisted"

    run = world.submit(model).run

    (warning,) = run.warnings
    assert "BROKER_ALLOW_UNCATALOGUED_MODELS" in warning
    assert world.run(run.id).warnings == run.warnings


# Refusals.


def test_a_refused_request_is_stored_rejected_and_announced_and_makes_no_deployment():
    world = build_world(location="westeurope")

    submission = world.service.submit(request(MARKETPLACE_MODEL, ticket="CHG-9"), caller=REQUESTER)

    run, problem = submission.run, submission.problem
    assert (submission.answer, submission.accepted) == ("rejected", False)
    assert problem.kind.slug == "region-unsupported"
    assert world.run(run.id) == run
    assert statuses(run) == [RunStatus.ACCEPTED, RunStatus.VALIDATING, RunStatus.REJECTED]
    assert run.steps[-1].detail == "region-unsupported"
    assert run.error == RunError(
        code="region-unsupported",
        message=problem.detail,
        details=[{"workspaceLocation": "westeurope", "supportedRegions": list(MARKETPLACE_REGIONS)}],
    )
    assert world.work.sent == []
    assert world.runs.all_deployments == []
    (event,) = world.events.bodies
    assert event["type"] == f"{EVENT_TYPE_PREFIX}.rejected"
    assert event["data"]["ticket"] == "CHG-9"
    assert event["data"]["error"]["code"] == "region-unsupported"


def test_a_refusal_without_extensions_stores_no_details(world):
    submission = world.submit(DIRECT_MODEL, caller=COLLEAGUE)

    assert submission.problem.kind.slug == "requester-forbidden"
    assert submission.run.error.details == []
    assert submission.run.error.message == submission.problem.detail


def test_an_azure_error_during_preflight_stores_nothing(world):
    world.authorization.fail_next("principal_access", AzureCallError(503, "ServiceUnavailable", "Busy."))

    with pytest.raises(AzureCallError):
        world.submit(DIRECT_MODEL)

    assert world.runs.all_runs == []
    assert world.runs.all_deployments == []
    assert world.events.sent == []


@pytest.mark.parametrize(
    ("error", "slug"),
    [
        (AzureCallError(404, "ResourceNotFound", "No workspace 'proj'."), "not-found"),
        (AzureCallError(403, "AuthorizationFailed", "No read on the workspace."), "broker-permissions-missing"),
    ],
)
def test_a_preflight_read_azure_refuses_for_good_rejects_the_request(world, error, slug):
    world.ml.fail_next("get_workspace", error)

    submission = world.submit(DIRECT_MODEL)

    assert submission.problem.kind.slug == slug
    assert error.message in submission.problem.detail
    assert submission.run.status is RunStatus.REJECTED
    assert submission.run.error.details == [{"azureCode": error.code}]


# Already Ready.


def test_a_request_for_a_ready_deployment_is_answered_with_it_and_changes_nothing(world):
    first = world.deploy(ticket="CHG-1")
    runs_before, versions_before, work_before = world.runs.all_runs, secret_versions(world), len(world.processed)
    world.ml.calls.clear()
    world.secrets.calls.clear()
    world.events.sent.clear()
    world.clock.advance(3600)

    submission = world.service.submit(request(DIRECT_MODEL, ticket="CHG-2"), caller=REQUESTER)

    assert (submission.answer, submission.accepted, submission.run, submission.problem) == ("ready", False, None, None)
    assert world.runs.all_runs == runs_before
    assert world.work.sent == []
    assert len(world.processed) == work_before
    assert azure_writes(world) == []
    assert world.secrets.calls_to("set_secret") == []
    assert secret_versions(world) == versions_before

    deployment = submission.deployment
    assert world.deployment() == deployment
    assert (deployment.status.phase, deployment.status.current_run_id) == (Phase.READY, first.id)
    assert deployment.status.observed_at == world.clock()
    assert [(item.ticket, item.run_id, item.outcome) for item in deployment.requests] == [
        ("CHG-1", first.id, "created"),
        ("CHG-2", None, "ready"),
    ]
    accepted, succeeded = world.events.bodies
    assert [accepted["type"], succeeded["type"]] == [f"{EVENT_TYPE_PREFIX}.accepted", f"{EVENT_TYPE_PREFIX}.succeeded"]
    assert accepted["id"] != succeeded["id"]
    for event in (accepted, succeeded):
        assert event["data"]["ticket"] == "CHG-2"
        assert (event["data"]["deploymentId"], event["data"]["runId"]) == (deployment.id, first.id)
        assert event["data"]["secretIds"] == first.secret_ids.model_dump()


def test_a_ready_answer_is_found_by_its_ticket(world):
    first = world.deploy(ticket="CHG-1")

    deployment = world.service.submit(request(DIRECT_MODEL, ticket="CHG-2"), caller=REQUESTER).deployment

    assert [item.id for item in world.service.list_deployments(ticket="CHG-2", caller=AUDITOR).items] == [deployment.id]
    assert [run.id for run in world.service.list(ticket="CHG-2", caller=AUDITOR).items] == [first.id]


def test_every_ready_answer_gets_its_own_events(world):
    world.deploy()
    world.events.sent.clear()

    world.submit(DIRECT_MODEL, ticket="CHG-2")
    world.submit(DIRECT_MODEL, ticket="CHG-3")

    assert [body["data"]["ticket"] for body in world.events.bodies] == ["CHG-2", "CHG-2", "CHG-3", "CHG-3"]
    assert len({body["id"] for body in world.events.bodies}) == 4
    assert world.deployment().request_count == 3


def test_a_ready_answer_that_loses_its_write_to_another_writes_again_without_reading_azure_again(world):
    world.deploy(ticket="CHG-1")
    world.ml.calls.clear()
    # Another request's Ready answer lands between this request's read of the deployment and its write.
    world.runs.before_next("save_answered", lambda: world.submit(DIRECT_MODEL, ticket="CHG-2"))

    submission = world.service.submit(request(DIRECT_MODEL, ticket="CHG-3"), caller=REQUESTER)

    assert submission.answer == "ready"
    assert [item.ticket for item in world.deployment().requests] == ["CHG-1", "CHG-2", "CHG-3"]
    assert world.deployment().request_count == 3
    # Each request read the endpoint once: the write it lost was tried again without looking at Azure again.
    assert world.ml.call_names == ["get_endpoint", "get_endpoint"]
    assert sorted(body["data"]["ticket"] for body in world.events.bodies[-4:]) == ["CHG-2", "CHG-2", "CHG-3", "CHG-3"]


# Joining the run in flight.


def test_requests_while_a_run_is_in_flight_join_it_and_each_is_answered_with_its_own_events(world):
    allow(world, COLLEAGUE, THIRD)
    first = world.service.submit(request(MARKETPLACE_MODEL, ticket="CHG-1"), caller=REQUESTER)
    world.step()  # the run is under way

    second = world.service.submit(request(MARKETPLACE_MODEL, ticket="CHG-2"), caller=COLLEAGUE)
    third = world.service.submit(request(MARKETPLACE_MODEL, ticket="CHG-3"), caller=THIRD)

    assert (second.answer, third.answer) == ("joined", "joined")
    assert second.accepted
    assert third.accepted
    assert second.run.id == third.run.id == first.run.id
    assert [(item.caller, item.ticket) for item in third.run.joined] == [(COLLEAGUE, "CHG-2"), (THIRD, "CHG-3")]
    assert [run.id for run in world.runs.all_runs] == [first.run.id]
    assert [message.body["run_id"] for message in world.processed + world.work.sent] == [first.run.id] * 2
    # Each joiner's events are named by its own request id, the same whoever sends them.
    second_id, third_id = (joiner.request_id for joiner in world.runs.joiners(first.run.id))
    accepted = events_of(world, "accepted")
    assert [(event["id"], event["data"]["ticket"]) for event in accepted] == [
        (f"{first.run.id}/accepted", "CHG-1"),
        (f"{first.run.id}/accepted/{second_id}", "CHG-2"),
        (f"{first.run.id}/accepted/{third_id}", "CHG-3"),
    ]
    history = world.service.get_deployment(world.deployment().id, caller=AUDITOR)
    assert [item.outcome for item in history.requests] == ["created", "joined", "joined"]
    assert (history.request_count, history.requests[-1].run_id) == (3, first.run.id)
    assert world.deployment().requests == history.requests[:1], "joins do not write the deployment"

    world.drain()

    succeeded = events_of(world, "succeeded")
    assert [(event["id"], event["data"]["ticket"]) for event in succeeded] == [
        (f"{first.run.id}/succeeded", "CHG-1"),
        (f"{first.run.id}/succeeded/{second_id}", "CHG-2"),
        (f"{first.run.id}/succeeded/{third_id}", "CHG-3"),
    ]
    assert {event["data"]["secretIds"]["primary"] for event in succeeded} == {
        world.run(first.run.id).secret_ids.primary
    }
    for ticket in ("CHG-1", "CHG-2", "CHG-3"):
        assert [run.id for run in world.service.list(ticket=ticket, caller=AUDITOR).items] == [first.run.id]
        assert [item.id for item in world.service.list_deployments(ticket=ticket, caller=AUDITOR).items] == [
            world.deployment().id
        ]
    assert len(world.ml.calls_to("begin_create_endpoint")) == 1


def test_a_run_that_fails_tells_every_request_it_answers(world):
    allow(world, COLLEAGUE)
    first = world.submit(DIRECT_MODEL, ticket="CHG-1").run
    world.submit(DIRECT_MODEL, caller=COLLEAGUE, ticket="CHG-2")
    world.ml.fail_next("begin_create_endpoint", PERMANENT)

    world.drain()

    (joiner,) = world.runs.joiners(first.id)
    assert [(event["id"], event["data"]["ticket"]) for event in events_of(world, "failed")] == [
        (f"{first.id}/failed", "CHG-1"),
        (f"{first.id}/failed/{joiner.request_id}", "CHG-2"),
    ]


def test_a_request_finding_a_claim_whose_run_is_not_stored_yet_waits_and_joins_it(world):
    early = claimed_by_another_request(world, homed("run-early"))
    # The first request stores its run while the second is waiting for it (a teardown claims and stores apart).
    world.waiting.on_sleep.append(lambda: world.runs.create(early))

    submission = world.submit(DIRECT_MODEL)

    assert (submission.answer, submission.run.id) == ("joined", early.id)
    assert world.work.sent == []
    assert 0 < world.waiting.slept < CLAIM_SETTLE_SECONDS


def test_a_request_while_the_deployment_is_torn_down_is_refused(world):
    world.deploy()
    teardown = world.lifecycle.delete(world.deployment().id, caller=REQUESTER, delete_subscription=False).run

    submission = world.submit(DIRECT_MODEL)

    assert (submission.answer, submission.problem.kind.slug, submission.problem.status) == (
        "rejected",
        "deployment-state-conflict",
        409,
    )
    assert submission.problem.extensions == {"runId": teardown.id, "deploymentId": world.deployment().id}
    assert submission.run.deployment_id == world.deployment().id
    assert world.run(teardown.id).joined == ()


# Repair.


def test_a_deployment_whose_subscription_was_deleted_out_of_band_is_repaired(world):
    first = world.deploy(MARKETPLACE_MODEL)
    endpoint = first.endpoint.name
    world.ml.remove_subscription(WORKSPACE_ID, SUBSCRIPTION_NAME)
    world.ml.set_endpoint_health(WORKSPACE_ID, endpoint, "Suspended")
    versions_before = secret_versions(world)
    world.ml.calls.clear()
    world.events.sent.clear()

    submission = world.service.submit(request(MARKETPLACE_MODEL, ticket="INC-4"), caller=REQUESTER)

    run = submission.run
    assert (submission.answer, submission.accepted, run.operation) == ("repair", True, "repair")
    assert run.id != first.id
    assert run.status is RunStatus.SUBSCRIBING
    assert run.steps[-1].detail == (
        "repairing: Azure reports SubscriptionReady (SubscriptionMissing), Healthy (SubscriptionMissing)"
    )
    deployment = world.deployment()
    assert (deployment.status.phase, deployment.status.current_run_id) == (Phase.PROVISIONING, run.id)
    assert deployment.condition(ConditionType.SUBSCRIPTION_READY).reason == "SubscriptionMissing"
    assert deployment.requests[-1].outcome == "repair"
    assert world.events.bodies[0]["data"]["operation"] == "repair"

    world.drain()

    repaired = world.run(run.id)
    assert repaired.status is RunStatus.SUCCEEDED
    assert world.ml.subscription(WORKSPACE_ID, SUBSCRIPTION_NAME).status == "Subscribed"
    assert azure_writes(world) == ["begin_create_subscription"]
    assert secret_versions(world) == versions_before
    assert repaired.secret_ids == first.secret_ids
    deployment = world.deployment()
    assert deployment.status.phase is Phase.READY
    assert deployment.all_conditions_true
    # The keys are still the ones the first run stored; key rotations stay recorded there.
    assert deployment.status.keys_run_id == first.id
    assert world.event_types() == ["accepted", "succeeded"]
    assert world.events.bodies[-1]["data"]["ticket"] == "INC-4"


def test_a_deployment_missing_a_key_secret_is_repaired_from_its_keys(world):
    first = world.deploy()
    world.secrets.delete_secret(plan(first.request).secret_names.secondary)

    run = world.submit(DIRECT_MODEL).run

    assert (run.operation, run.status) == ("repair", RunStatus.STORING_KEYS)
    assert run.steps[-1].detail == "repairing: Azure reports KeysStored (SecretsMissing)"
    world.drain()
    assert world.run(run.id).status is RunStatus.SUCCEEDED
    assert world.deployment().status.phase is Phase.READY


def test_a_failed_repair_leaves_the_deployment_degraded_and_the_next_request_repairs_again(world):
    first = world.deploy()
    world.secrets.delete_secret(plan(first.request).secret_names.primary)
    repair = world.submit(DIRECT_MODEL).run
    world.secrets.fail_next("set_secret", AzureCallError(403, "Forbidden", "No secrets set."))
    world.drain()
    assert world.run(repair.id).status is RunStatus.FAILED
    degraded = world.deployment()
    assert (degraded.status.phase, degraded.status.error.code) == (Phase.DEGRADED, "Forbidden")

    again = world.submit(DIRECT_MODEL)

    assert again.answer == "repair"
    assert again.deployment.status.error is None
    world.drain()
    assert world.deployment().status.phase is Phase.READY


def test_repair_re_reconciles_a_deployment_by_its_id(world):
    first = world.deploy()
    the_id = world.deployment().id

    healthy = world.service.repair(the_id, caller=REQUESTER)
    world.ml.set_endpoint_health(WORKSPACE_ID, first.endpoint.name, "Suspended")
    broken = world.service.repair(the_id, caller=REQUESTER)

    assert healthy.answer == "ready"
    assert (broken.answer, broken.run.operation, broken.run.status) == ("repair", "repair", RunStatus.PROVISIONING)
    assert world.service.repair("no-such-deployment", caller=REQUESTER) is None


def test_repair_of_a_deleted_deployment_is_refused(world):
    world.deploy()
    the_id = world.deployment().id
    world.lifecycle.delete(the_id, caller=REQUESTER, delete_subscription=False)
    world.drain()
    assert world.deployment().status.phase is Phase.DELETED

    refused = world.service.repair(the_id, caller=REQUESTER)

    assert (refused.answer, refused.run, refused.problem.kind.slug) == ("rejected", None, "deployment-state-conflict")
    assert refused.problem.extensions == {"deploymentId": the_id}


# Another spec, a failed or a deleted deployment.


def test_a_request_for_another_endpoint_name_conflicts_with_the_deployment(world):
    first = world.deploy()
    before = world.deployment()
    world.ml.calls.clear()

    submission = world.service.submit(request(DIRECT_MODEL, endpoint_name="another-name"), caller=REQUESTER)

    problem = submission.problem
    assert (submission.answer, submission.run.status) == ("rejected", RunStatus.REJECTED)
    assert (problem.kind.slug, problem.status) == ("deployment-conflict", 409)
    assert problem.extensions == {"deploymentId": before.id, "runId": first.id, "differences": ["endpointName"]}
    assert f"endpointName '{first.endpoint.name}'" in problem.detail
    assert world.run(submission.run.id).error.details == [problem.extensions]
    assert world.deployment() == before
    assert azure_writes(world) == []
    assert world.work.sent == []
    assert world.event_types()[-1] == "rejected"


def test_a_request_leaving_out_the_name_and_content_safety_means_the_deployment_as_it_is(world):
    world.deploy(endpoint_name="team-deepseek", content_safety="Disabled")

    short_form = world.submit(DIRECT_MODEL)
    default_named = world.submit(DIRECT_MODEL, content_safety="Enabled")

    assert short_form.answer == "ready"
    assert short_form.deployment.spec.endpoint_name == "team-deepseek"
    assert (default_named.answer, default_named.problem.extensions["differences"]) == ("rejected", ["contentSafety"])
    assert world.run(default_named.run.id).deployment_id == short_form.deployment.id


def test_a_request_naming_other_tags_conflicts_but_one_naming_none_does_not(world):
    world.deploy(tags={"costCenter": "ai-1"})

    untagged = world.submit(DIRECT_MODEL)
    retagged = world.submit(DIRECT_MODEL, tags={"costCenter": "ai-2"})

    assert untagged.answer == "ready"
    assert (retagged.answer, retagged.problem.extensions["differences"]) == ("rejected", ["tags"])


def test_a_request_for_a_failed_deployment_deploys_it_afresh(world):
    first = world.submit(DIRECT_MODEL).run
    world.ml.fail_next("begin_create_endpoint", PERMANENT)
    world.drain()
    assert world.deployment().status.phase is Phase.FAILED

    second = world.submit(DIRECT_MODEL, ticket="CHG-2")

    assert (second.answer, second.run.operation) == ("created", "deploy")
    assert second.run.id != first.id
    deployment = world.deployment()
    assert (deployment.status.phase, deployment.status.current_run_id, deployment.status.error) == (
        Phase.PROVISIONING,
        second.run.id,
        None,
    )
    assert ([item.ticket for item in deployment.requests], deployment.request_count) == (["CHG-2"], 2)
    world.drain()
    assert world.run(second.run.id).status is RunStatus.SUCCEEDED
    assert world.deployment().status.phase is Phase.READY


def test_a_request_for_a_deleted_deployment_deploys_it_again(world):
    world.deploy()
    world.lifecycle.delete(world.deployment().id, caller=REQUESTER, delete_subscription=False)
    world.drain()

    again = world.submit(DIRECT_MODEL)
    world.drain()

    assert again.answer == "created"
    assert world.run(again.run.id).status is RunStatus.SUCCEEDED
    assert world.deployment().status.phase is Phase.READY
    assert len(world.ml.calls_to("begin_create_endpoint")) == 2


# Idempotency-Key.


def test_the_same_key_and_request_replay_the_same_run(world):
    first = world.service.submit(request(MARKETPLACE_MODEL), caller=REQUESTER, idempotency_key="key-1")

    again = world.service.submit(request(MARKETPLACE_MODEL), caller=REQUESTER, idempotency_key="key-1")

    assert first.run.idempotency_key == "key-1"
    assert (again.answer, again.run, again.problem) == ("replayed", first.run, None)
    assert again.deployment == world.deployment()
    assert len(world.runs.all_runs) == 1
    assert len(world.work.sent) == 1
    assert world.event_types() == ["accepted"]
    assert world.deployment().request_count == 1


def test_a_replayed_rejection_answers_with_the_same_problem():
    world = build_world(location="westeurope")
    first = world.service.submit(request(MARKETPLACE_MODEL), caller=REQUESTER, idempotency_key="key-1")

    again = world.service.submit(request(MARKETPLACE_MODEL), caller=REQUESTER, idempotency_key="key-1")

    assert (again.answer, again.run, again.problem) == ("rejected", first.run, first.problem)
    assert world.event_types() == ["rejected"]


def test_a_replayed_ready_answer_is_the_deployment_without_new_events(world):
    world.deploy()
    ready = world.service.submit(request(DIRECT_MODEL), caller=REQUESTER, idempotency_key="key-1")
    events_before = len(world.events.sent)

    again = world.service.submit(request(DIRECT_MODEL), caller=REQUESTER, idempotency_key="key-1")

    assert (ready.answer, again.answer, again.run) == ("ready", "replayed", None)
    assert again.deployment == ready.deployment == world.deployment()
    assert len(world.events.sent) == events_before


def test_a_replayed_join_answers_with_the_run_it_joined(world):
    allow(world, COLLEAGUE)
    first = world.submit(DIRECT_MODEL).run
    joined = world.service.submit(request(DIRECT_MODEL), caller=COLLEAGUE, idempotency_key="key-1")

    again = world.service.submit(request(DIRECT_MODEL), caller=COLLEAGUE, idempotency_key="key-1")

    assert (joined.answer, again.answer, again.run.id) == ("joined", "replayed", first.id)
    assert len(again.run.joined) == 1
    assert len(events_of(world, "accepted")) == 2


def test_the_same_key_with_another_request_is_an_idempotency_conflict(world):
    first = world.service.submit(request(MARKETPLACE_MODEL), caller=REQUESTER, idempotency_key="key-1")

    with pytest.raises(IdempotencyConflictError) as raised:
        world.service.submit(request(MARKETPLACE_MODEL, ticket="CHG-2"), caller=REQUESTER, idempotency_key="key-1")

    problem = raised.value.problem
    assert (problem.kind.slug, problem.status) == ("idempotency-conflict", 422)
    assert problem.extensions == {"runId": first.run.id}
    assert "'key-1' was already used for a different request" in problem.detail
    assert str(raised.value) == problem.detail
    assert len(world.runs.all_runs) == 1
    assert world.event_types() == ["accepted"]


def test_keys_belong_to_their_caller(world):
    allow(world, COLLEAGUE)
    world.service.submit(request(MARKETPLACE_MODEL), caller=REQUESTER, idempotency_key="key-1")

    theirs = world.service.submit(request(DIRECT_MODEL), caller=COLLEAGUE, idempotency_key="key-1")

    assert theirs.answer == "created"
    assert theirs.run.caller == COLLEAGUE


def test_a_key_whose_first_attempt_stored_no_run_is_finished_under_that_run_id(world):
    world.runs.before_next("start_run", die)
    with pytest.raises(WorkerDied):
        world.service.submit(request(DIRECT_MODEL), caller=REQUESTER, idempotency_key="key-1")
    # The claim and the run are one transaction: neither was written.
    assert (world.runs.all_deployments, world.runs.all_runs) == ([], [])

    submission = world.service.submit(request(DIRECT_MODEL), caller=REQUESTER, idempotency_key="key-1")

    assert (submission.answer, submission.run.id) == ("created", homed("run-0001"))
    assert world.run(homed("run-0001")).status is RunStatus.PROVISIONING
    assert world.deployment().status.current_run_id == homed("run-0001")
    assert world.waiting.slept == 0
    assert world.work.bodies == [{"run_id": homed("run-0001"), "step": PROVISION, "attempt": 0, "step_token": 2}]
    assert world.event_types() == ["accepted"]


def test_a_concurrent_attempt_with_the_same_key_is_answered_with_the_run_the_other_stored(world):
    concurrent = []
    world.runs.before_next(
        "start_run",
        lambda: concurrent.append(world.service.submit(request(DIRECT_MODEL), caller=REQUESTER, idempotency_key="k")),
    )

    submission = world.service.submit(request(DIRECT_MODEL), caller=REQUESTER, idempotency_key="k")

    (other,) = concurrent
    assert other.answer == "created"
    assert (submission.answer, submission.run) == ("replayed", other.run)
    assert len(world.runs.all_runs) == 1
    assert len(world.work.sent) == 1
    assert world.event_types() == ["accepted"]


def test_a_concurrent_attempt_with_the_same_key_gets_the_rejection_the_other_stored():
    world = build_world(location="westeurope")
    concurrent = []
    world.runs.before_next(
        "create",
        lambda: concurrent.append(
            world.service.submit(request(MARKETPLACE_MODEL), caller=REQUESTER, idempotency_key="key-1")
        ),
    )

    submission = world.service.submit(request(MARKETPLACE_MODEL), caller=REQUESTER, idempotency_key="key-1")

    (other,) = concurrent
    assert (submission.answer, submission.run, submission.problem) == ("rejected", other.run, other.problem)
    assert world.event_types() == ["rejected"]


def test_a_concurrent_attempt_with_the_same_key_but_another_body_is_a_conflict(world):
    raised = []

    def another_body():
        with pytest.raises(IdempotencyConflictError) as conflict:
            world.service.submit(request(DIRECT_MODEL, ticket="other"), caller=REQUESTER, idempotency_key="key-1")
        raised.append(conflict.value)

    world.runs.before_next("start_run", another_body)

    submission = world.service.submit(request(DIRECT_MODEL), caller=REQUESTER, idempotency_key="key-1")

    assert submission.answer == "created"
    assert [error.problem.extensions for error in raised] == [{"runId": submission.run.id}]
    assert [run.id for run in world.runs.all_runs] == [submission.run.id]


# Crash windows intake heals.


def claimed_by_another_request(world, run_id: str) -> RunRecord:
    """A deployment claimed by run `run_id` of a colleague's request that has not stored its run (yet); that run."""
    allow(world, COLLEAGUE)
    deployment_request = request(DIRECT_MODEL)
    at = world.clock()
    requester = DeploymentRequester(caller=COLLEAGUE, run_id=run_id, outcome="created", at=at)
    spec = spec_for(deployment_request, plan(deployment_request), None)
    deployment = Deployment.new(spec, run_id=run_id, requester=requester, at=at)
    world.runs.create_deployment(deployment)
    early = RunRecord.new(
        run_id=run_id, caller=COLLEAGUE, request=deployment_request, at=at, deployment_id=deployment.id
    )
    return early.transition(RunStatus.VALIDATING, at=at).transition(RunStatus.PROVISIONING, at=at)


def test_a_claim_whose_run_never_appears_is_taken_over_after_the_settle_window(world):
    # A deploy claims and stores its run in one transaction; a claim made apart from its run, whose request then
    # died, is still taken over.
    claimed_by_another_request(world, homed("run-lost"))

    submission = world.submit(DIRECT_MODEL, ticket="CHG-2")

    assert submission.answer == "created"
    assert world.waiting.slept >= CLAIM_SETTLE_SECONDS
    deployment = world.deployment()
    assert (deployment.status.phase, deployment.status.current_run_id) == (Phase.PROVISIONING, submission.run.id)
    assert [item.run_id for item in deployment.requests] == [homed("run-lost"), submission.run.id]
    assert world.work.bodies == [{"run_id": submission.run.id, "step": PROVISION, "attempt": 0, "step_token": 2}]
    world.drain()
    assert world.deployment().status.phase is Phase.READY


def test_a_run_that_failed_while_its_deployment_was_left_provisioning_is_caught_up(world):
    first = world.submit(DIRECT_MODEL).run
    world.ml.fail_next("begin_create_endpoint", PERMANENT)
    world.runs.before_next("save_deployment", die)  # the worker dies between failing the run and the deployment
    with pytest.raises(WorkerDied):
        world.drain()
    assert world.run(first.id).status is RunStatus.FAILED
    assert world.deployment().status.phase is Phase.PROVISIONING

    second = world.submit(DIRECT_MODEL, ticket="CHG-2")

    assert (second.answer, second.run.operation) == ("created", "deploy")
    assert world.waiting.slept == 0
    # Caught up to Failed, the deployment was made afresh rather than its claim taken over.
    assert [item.ticket for item in world.deployment().requests] == ["CHG-2"]
    world.drain()
    assert world.deployment().status.phase is Phase.READY


def test_a_run_that_succeeded_while_its_deployment_was_left_provisioning_is_caught_up(world):
    first = world.deploy()
    world.runs.update_deployment(
        first.deployment_id, lambda current: current.changed(at=world.clock(), phase=Phase.PROVISIONING)
    )

    submission = world.submit(DIRECT_MODEL)

    assert (submission.answer, submission.run) == ("ready", None)
    assert world.deployment().status.phase is Phase.READY
    assert world.waiting.slept == 0
    assert len(world.runs.all_runs) == 1


# The queue intake.


def queue_body(**fields):
    body = {
        "workspaceId": WORKSPACE_ID,
        "modelId": DIRECT_MODEL,
        "requestedBy": REQUESTER.upper(),
        "ticket": "INC-1",
        **fields,
    }
    return json.dumps({name: value for name, value in body.items() if value is not None})


def test_a_queue_message_becomes_a_run_for_its_requester_and_ticket(world):
    submission = world.service.intake_message(queue_body(), message_id="m-1")

    run = submission.run
    assert submission.answer == "created"
    assert (run.caller, run.ticket, run.request.ticket) == (REQUESTER, "INC-1", "INC-1")
    assert run.status is RunStatus.PROVISIONING
    assert run.idempotency_key.startswith("message:")
    assert world.events.bodies[0]["data"]["ticket"] == "INC-1"
    assert world.poison.raw == []


def test_the_same_message_delivered_twice_makes_one_run(world):
    first = world.service.intake_message(queue_body(), message_id="m-1")

    again = world.service.intake_message(queue_body() + "\n", message_id="m-2")

    assert (again.answer, again.run) == ("replayed", first.run)
    assert len(world.runs.all_runs) == 1
    assert len(world.work.sent) == 1


def test_a_queue_request_for_a_ready_deployment_is_answered_by_events_with_its_ticket(world):
    world.deploy()
    world.events.sent.clear()

    submission = world.service.intake_message(queue_body(ticket="INC-8"), message_id="m-1")

    assert submission.answer == "ready"
    assert [(body["type"].rsplit(".", 1)[-1], body["data"]["ticket"]) for body in world.events.bodies] == [
        ("accepted", "INC-8"),
        ("succeeded", "INC-8"),
    ]


def test_a_queue_request_that_preflight_refuses_is_announced_with_its_ticket(world):
    submission = world.service.intake_message(queue_body(requestedBy=COLLEAGUE), message_id="m-1")

    assert submission.problem.kind.slug == "requester-forbidden"
    (event,) = world.events.bodies
    assert event["type"] == f"{EVENT_TYPE_PREFIX}.rejected"
    assert (event["subject"], event["data"]["ticket"]) == (submission.run.id, "INC-1")


def test_a_message_that_is_not_json_and_names_no_ticket_is_poisoned_without_an_event(world, caplog):
    body = '{"workspaceId": "w", '

    assert world.service.intake_message(body, message_id="m-1") is None

    assert world.poison.raw == [body]
    assert world.events.sent == []
    assert world.runs.all_runs == []
    assert "m-1" in caplog.text
    assert "not JSON" in caplog.text


@pytest.mark.parametrize("body", ["[]", '"text"', "null", '{"workspaceId": 1}'])
def test_a_message_without_a_readable_ticket_is_poisoned_without_an_event(world, body):
    assert world.service.intake_message(body, message_id="m-1") is None

    assert world.poison.raw == [body]
    assert world.events.sent == []


def test_an_invalid_message_with_a_ticket_is_poisoned_and_rejected_naming_the_fields(world):
    body = queue_body(workspaceId="not-a-workspace", requestedBy="someone", colour="blue", ticket="INC-2")

    assert world.service.intake_message(body, message_id="m-7") is None

    assert world.poison.raw == [body]
    assert world.runs.all_runs == []
    (event,) = world.events.bodies
    assert event["type"] == f"{EVENT_TYPE_PREFIX}.rejected"
    assert (event["id"], event["subject"]) == ("message-m-7/rejected", "m-7")
    error = event["data"]["error"]
    assert (event["data"]["ticket"], event["data"]["runId"], error["code"]) == ("INC-2", None, "validation-failed")
    assert {item["field"] for item in error["details"]} == {"workspaceId", "requestedBy", "colour"}
    assert error["message"].startswith("The request message is not valid: ")
    for field in ("workspaceId", "requestedBy", "colour: This field is not recognised."):
        assert field in error["message"]


def test_a_message_missing_its_ticket_is_poisoned_without_an_event(world):
    body = queue_body(ticket=None)

    assert world.service.intake_message(body, message_id="m-1") is None

    assert world.poison.raw == [body]
    assert world.events.sent == []


# Malformed messages: read within bounds, poisoned once however often delivered, answered whenever a ticket is readable.


def poison_claims(world):
    return [json.loads(document) for document in world.runs.table.documents("poison")]


def undelivered(world):
    return world.runs.list_undelivered(kind="event").documents


def rejected_events(world):
    return events_of(world, "rejected")


def fits_a_queue_message(event) -> bool:
    return len(base64.b64encode(json.dumps(event).encode())) <= AZURE_QUEUE_MESSAGE_BYTES


def test_a_malformed_message_delivered_again_is_copied_and_answered_once(world):
    body = queue_body(workspaceId="not-a-workspace", ticket="INC-3")

    for _ in range(6):  # the host's first delivery and five redeliveries, all with the same message id
        assert world.service.intake_message(body, message_id="m-30") is None

    assert world.poison.raw == [body]
    (event,) = rejected_events(world)
    assert (event["id"], event["data"]["ticket"]) == ("message-m-30/rejected", "INC-3")
    (claim,) = poison_claims(world)
    assert (claim["messageId"], claim["code"], claim["bytes"]) == ("m-30", "validation-failed", len(body))


def test_each_malformed_message_is_copied_once_even_when_two_have_the_same_body(world):
    body = '{"ticket": "INC-4", '

    world.service.intake_message(body, message_id="m-31")
    world.service.intake_message(body, message_id="m-32")

    assert world.poison.raw == [body, body]
    assert [event["subject"] for event in rejected_events(world)] == ["m-31", "m-32"]


def test_a_message_nested_thousands_deep_is_poisoned_at_once_and_its_ticket_told_the_limit(world):
    body = '{"ticket": "INC-5", "tags": ' + "[" * 2000 + "]" * 2000 + "}"

    assert world.service.intake_message(body, message_id="m-33") is None

    assert world.poison.raw == [body]
    (event,) = rejected_events(world)
    error = event["data"]["error"]
    assert (event["data"]["ticket"], error["code"]) == ("INC-5", "validation-failed")
    assert "more than 32 deep" in error["message"]
    assert poison_claims(world)[0]["limit"] == "depth"
    assert world.runs.all_runs == []


def test_a_message_near_the_queue_limit_is_copied_once_and_its_rejected_event_is_truncated_to_fit(world):
    limit_like_azure(world.events)
    limit_like_azure(world.poison)
    huge = "x" * (47 * 1024)  # the largest body a base64 queue message of 64 KiB can carry is 48 KiB
    body = queue_body(ticket="INC-6", requestedBy=huge)

    for _ in range(2):
        assert world.service.intake_message(body, message_id="m-34") is None

    assert world.poison.raw == [body]
    (event,) = rejected_events(world)
    assert event["data"]["ticket"] == "INC-6"
    assert "string of 48,128 characters at requestedBy" in event["data"]["error"]["message"]
    assert len(json.dumps(event)) <= MAX_REJECTED_EVENT_BYTES
    assert fits_a_queue_message(event)
    assert undelivered(world) == []


def test_a_message_whose_invalid_values_are_echoed_gets_a_rejected_event_within_the_bound(world):
    limit_like_azure(world.events)
    value = "\U0001f600" * 2000  # 8,000 bytes of UTF-8; each escaped as 12 characters in the event's JSON
    body = json.dumps(
        {"ticket": "INC-7", "requestedBy": value, "workspaceId": value, "modelId": value, "endpointName": value},
        ensure_ascii=False,
    )

    assert world.service.intake_message(body, message_id="m-35") is None

    (event,) = rejected_events(world)
    assert len(json.dumps(event)) <= MAX_REJECTED_EVENT_BYTES
    assert event["data"]["error"]["message"].endswith("…")
    assert {item["field"] for item in event["data"]["error"]["details"]} <= {
        "requestedBy",
        "workspaceId",
        "modelId",
        "endpointName",
    }


def test_a_valid_looking_message_with_a_huge_ticket_is_told_under_its_ticket_cut_short(world):
    ticket = "INC-" + "9" * 40_000
    body = queue_body(ticket=ticket)

    assert world.service.intake_message(body, message_id="m-36") is None

    assert world.poison.raw == [body]
    (event,) = rejected_events(world)
    echoed = event["data"]["ticket"]
    assert echoed.startswith("INC-999")
    assert echoed.endswith("…")
    assert len(echoed) < 1024
    assert "at ticket" in event["data"]["error"]["message"]
    assert len(json.dumps(event)) <= MAX_REJECTED_EVENT_BYTES


@pytest.mark.parametrize(
    ("body", "limit", "words"),
    [
        ('{"ticket": "INC-8", "ticket": "INC-9"}', "duplicate-key", "'ticket' more than once"),
        (b'{"ticket": "INC-8", "tags": {"owner": "Zo\xeb"}}', "encoding", "is not UTF-8"),
        ('{"ticket": "INC-8"}'.encode("utf-16"), "encoding", "UTF-16LE"),
        ('{"ticket": "INC-8", "x": NaN}', "json-syntax", "NaN is not a JSON value"),
        ('{"ticket": "INC-8", "x": 1', "json-syntax", "is not JSON"),
    ],
)
def test_a_message_breaking_a_wire_rule_is_poisoned_and_told_which(world, body, limit, words):
    answer = world.service.intake_message(body, message_id="m-37")

    assert answer is None
    assert len(world.poison.raw) == 1
    assert poison_claims(world)[0]["limit"] == limit
    events = rejected_events(world)
    if limit == "encoding" and body.startswith(b"\xff\xfe"):
        assert events == [], "no ticket can be read from UTF-16 text"
        return
    (event,) = events
    assert event["data"]["ticket"] == "INC-8"
    assert words in event["data"]["error"]["message"]
    assert event["data"]["error"]["details"][0]["message"] == event["data"]["error"]["message"]


def test_a_message_over_the_queue_limit_is_poisoned_as_too_large(world):
    body = queue_body(ticket="INC-10") + " " * (64 * 1024)

    assert world.service.intake_message(body, message_id="m-38") is None

    (event,) = rejected_events(world)
    assert (event["data"]["ticket"], event["data"]["error"]["code"]) == ("INC-10", "payload-too-large")
    assert "the limit is 65,536 bytes" in event["data"]["error"]["message"]
    (copy,) = world.poison.raw
    assert len(copy.encode()) == 48 * 1024, "cut to what a base64 queue message holds"
    assert poison_claims(world)[0]["copyTruncated"] is True


def test_bytes_that_are_not_utf8_are_copied_with_replacement_characters_and_the_original_digest(world):
    raw = b'{"ticket": "INC-11", "tags": {"owner": "Zo\xeb"}}'

    assert world.service.intake_message(raw, message_id="m-39") is None

    assert world.poison.raw == ['{"ticket": "INC-11", "tags": {"owner": "Zo\ufffd"}}']
    claim = poison_claims(world)[0]
    assert (claim["bytes"], claim["copyTruncated"]) == (len(raw), False)
    assert claim["sha256"] == __import__("hashlib").sha256(raw).hexdigest()
    assert rejected_events(world)[0]["data"]["ticket"] == "INC-11"


def test_a_message_with_a_utf8_byte_order_mark_is_a_request_like_the_same_message_without(world):
    first = world.service.intake_message(b"\xef\xbb\xbf" + queue_body().encode(), message_id="m-40")
    again = world.service.intake_message(queue_body().encode(), message_id="m-41")

    assert first.answer == "created"
    assert (again.answer, again.run) == ("replayed", first.run)
    assert world.poison.raw == []


def test_a_rejected_event_the_queue_refuses_is_recorded_and_the_message_completed(world, caplog):
    limit_like_azure(world.events, refuse_all=True)
    body = queue_body(workspaceId="not-a-workspace", ticket="INC-12")

    with caplog.at_level(logging.ERROR):
        assert world.service.intake_message(body, message_id="m-42") is None
        assert world.service.intake_message(body, message_id="m-42") is None  # a redelivery: nothing more

    assert world.poison.raw == [body]
    assert world.events.sent == []
    (record,) = undelivered(world)
    assert (record["kind"], record["key"], record["queue"]) == ("event", "message-m-42/rejected", "events")
    assert record["event"]["data"]["ticket"] == "INC-12"
    assert record["error"].startswith("QueueRefusedError: MessageTooLarge")
    assert "message-m-42/rejected could not be sent" in caplog.text


def test_an_event_that_cannot_be_recorded_either_is_logged_and_the_message_still_completed(world, caplog):
    limit_like_azure(world.events, refuse_all=True)

    def table_down(*_args, **_kwargs):
        raise ConnectionError("table storage unreachable")

    world.runs.record_undelivered = table_down
    body = queue_body(workspaceId="not-a-workspace", ticket="INC-13")

    assert world.service.intake_message(body, message_id="m-43") is None

    assert world.poison.raw == [body]
    assert "message-m-43/rejected could not be recorded as undelivered either" in caplog.text


def test_a_poison_copy_that_fails_gives_the_claim_back_so_the_retry_copies_it(world):
    body = queue_body(workspaceId="not-a-workspace", ticket="INC-14")
    refused = limit_like_azure(world.poison, refuse_all=True)

    with pytest.raises(Exception, match="MessageTooLarge"):
        world.service.intake_message(body, message_id="m-44")
    assert (refused, poison_claims(world), world.events.sent) == ([body], [], [])

    world.poison.send_raw = type(world.poison).send_raw.__get__(world.poison)  # the queue answers again
    assert world.service.intake_message(body, message_id="m-44") is None

    assert world.poison.raw == [body]
    assert len(rejected_events(world)) == 1


def test_a_delivery_that_died_after_claiming_the_copy_is_not_copied_twice(world):
    body = queue_body(workspaceId="not-a-workspace", ticket="INC-15")
    world.runs.claim_poison("m-45")  # the first delivery's worker died right after its claim

    assert world.service.intake_message(body, message_id="m-45") is None

    assert world.poison.raw == []
    assert world.events.sent == []


# Reads.


def test_runs_are_read_back_by_id_and_listed_by_filter(world):
    accepted = world.submit(DIRECT_MODEL, ticket="T-1").run
    rejected = world.submit(MARKETPLACE_MODEL, caller="someone-else", ticket="T-2").run

    assert world.service.get(accepted.id, caller=AUDITOR) == accepted
    assert world.service.get("no-such-run", caller=AUDITOR) is None
    by_status = world.service.list(workspace_id=WORKSPACE_ID, status="Rejected", page_size=10, caller=AUDITOR)
    assert [run.id for run in by_status.items] == [rejected.id]
    by_deployment = world.service.list(deployment_id=world.deployment().id, caller=AUDITOR)
    assert [run.id for run in by_deployment.items] == [accepted.id]
    first_page = world.service.list(page_size=1, caller=AUDITOR)
    second_page = world.service.list(page_size=1, continuation_token=first_page.continuation_token, caller=AUDITOR)
    assert [run.id for run in first_page.items + second_page.items] == [accepted.id, rejected.id]
    assert second_page.continuation_token is None


def test_deployments_are_read_back_by_id_and_listed_by_filter(world):
    world.deploy(MARKETPLACE_MODEL)
    world.submit(DIRECT_MODEL)
    ready, provisioning = sorted(world.runs.all_deployments, key=lambda item: item.status.phase != Phase.READY)

    assert world.service.get_deployment(ready.id, caller=AUDITOR) == ready
    assert world.service.get_deployment("no-such-deployment", caller=AUDITOR) is None
    assert [item.id for item in world.service.list_deployments(phase="Ready", caller=AUDITOR).items] == [ready.id]
    by_model = world.service.list_deployments(
        model_id=DIRECT_MODEL.upper(), workspace_id=WORKSPACE_ID.upper(), caller=AUDITOR
    )
    assert [item.id for item in by_model.items] == [provisioning.id]


def test_the_service_exposes_its_catalog(world):
    assert world.service.catalog is CATALOG


# Availability.


def test_availability_without_a_workspace_asks_azure_nothing(world):
    answer = world.service.availability(f"{DIRECT_MODEL}/versions/2", None)

    assert answer == {
        "modelId": DIRECT_MODEL,
        "soldDirectly": True,
        "requiresMarketplaceSubscription": False,
        "source": "catalog",
        "explanation": CATALOG.classify(DIRECT_MODEL).explanation,
        "supportedRegions": list(DIRECT_REGIONS),
    }
    assert world.ml.calls == []


@pytest.mark.parametrize(("location", "supported"), [("eastus2", True), ("westeurope", False)])
def test_availability_for_a_workspace_says_whether_its_region_fits(location, supported):
    world = build_world(location=location)

    answer = world.service.availability(MARKETPLACE_MODEL, WORKSPACE_ID.replace("resourceGroups", "resourcegroups"))

    assert answer["workspace"] == {"id": WORKSPACE_ID, "location": location, "supported": supported}
    assert answer["supportedRegions"] == list(MARKETPLACE_REGIONS)
    assert not answer["soldDirectly"]


def test_availability_of_a_model_outside_the_catalog_is_unknown(world):
    answer = world.service.availability("azureml://registries/azureml/models/Phi-9", WORKSPACE_ID)

    assert answer["source"] == "prefix-rule"
    assert answer["soldDirectly"] is True
    assert answer["supportedRegions"] is None
    assert answer["workspace"]["supported"] is None
