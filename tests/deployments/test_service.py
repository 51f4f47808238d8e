"""The deployment service: intake over HTTP and the queue, idempotency, single-flight claims, reads, availability."""

import json

import pytest
from shared.deployments.work import PROVISION, STORE_KEYS, SUBSCRIBE

from shared.azure_errors import AzureCallError
from shared.deployments.preflight import plan_for
from shared.deployments.service import CLAIM_SETTLE_SECONDS, IdempotencyConflictError
from shared.events import EVENT_TYPE_PREFIX
from shared.ownership import MANAGED_BY_TAG, MANAGED_BY_VALUE
from shared.runs import RunError, RunRecord, RunStatus

from .scenario import (
    AI_DEVELOPER_BLOCK,
    CATALOG,
    DIRECT_MODEL,
    DIRECT_REGIONS,
    MARKETPLACE_MODEL,
    MARKETPLACE_REGIONS,
    REQUESTER,
    WORKSPACE_ID,
    build_world,
    request,
)

COLLEAGUE = "c011ea90-0000-4000-8000-000000000001"
PERMANENT = AzureCallError(400, "BadRequest", "The request is invalid.")


def plan(deployment):
    return plan_for(deployment, CATALOG)


def statuses(run):
    return [step.status for step in run.steps]


def fail_the_run(world):
    """Let the queued work run into a permanent Azure error."""
    world.ml.fail_next("begin_create_endpoint", PERMANENT)
    world.drain()


# Submitting.


def test_a_marketplace_request_is_stored_subscribing_queued_and_announced(world):
    deployment = request(MARKETPLACE_MODEL, ticket="CHG-1")

    submission = world.service.submit(deployment, caller=REQUESTER)

    run = submission.run
    assert (submission.created, submission.problem) == (True, None)
    assert world.runs.get(run.id).run == run
    assert (run.caller, run.ticket, run.request, run.idempotency_key) == (REQUESTER, "CHG-1", deployment, None)
    assert statuses(run) == [RunStatus.ACCEPTED, RunStatus.VALIDATING, RunStatus.SUBSCRIBING]
    assert run.steps[-1].detail == CATALOG.classify(MARKETPLACE_MODEL).explanation
    expected_plan = plan(deployment)
    assert (run.endpoint.name, run.endpoint.id) == (expected_plan.endpoint_name, expected_plan.endpoint_id)
    assert world.work.bodies == [{"run_id": run.id, "step": SUBSCRIBE, "attempt": 0}]
    assert world.runs.deployment_holder(WORKSPACE_ID, MARKETPLACE_MODEL) == run.id

    (event,) = world.events.bodies
    assert event["type"] == f"{EVENT_TYPE_PREFIX}.accepted"
    assert (event["id"], event["subject"]) == (f"{run.id}/accepted", run.id)
    assert event["data"]["status"] == "Subscribing"
    assert event["data"]["ticket"] == "CHG-1"
    assert event["data"]["endpointName"] == expected_plan.endpoint_name


def test_a_model_sold_directly_starts_provisioning(world):
    run = world.service.submit(request(DIRECT_MODEL), caller=REQUESTER).run

    assert run.status is RunStatus.PROVISIONING
    assert world.work.bodies == [{"run_id": run.id, "step": PROVISION, "attempt": 0}]


def test_a_ticket_given_by_the_intake_overrides_the_requests(world):
    run = world.service.submit(request(DIRECT_MODEL, ticket="IN-BODY"), caller=REQUESTER, ticket="FROM-QUEUE").run

    assert run.ticket == "FROM-QUEUE"


def test_a_refused_request_is_stored_rejected_and_announced_with_its_problem():
    world = build_world(location="westeurope")

    submission = world.service.submit(request(MARKETPLACE_MODEL, ticket="CHG-9"), caller=REQUESTER)

    run, problem = submission.run, submission.problem
    assert submission.created
    assert problem.kind.slug == "region-unsupported"
    assert run.status is RunStatus.REJECTED
    assert world.runs.get(run.id).run == run
    assert statuses(run) == [RunStatus.ACCEPTED, RunStatus.VALIDATING, RunStatus.REJECTED]
    assert run.steps[-1].detail == "region-unsupported"
    assert run.error == RunError(
        code="region-unsupported",
        message=problem.detail,
        details=[{"workspaceLocation": "westeurope", "supportedRegions": list(MARKETPLACE_REGIONS)}],
    )
    assert world.work.sent == []
    assert world.runs.deployment_holder(WORKSPACE_ID, MARKETPLACE_MODEL) is None
    (event,) = world.events.bodies
    assert event["type"] == f"{EVENT_TYPE_PREFIX}.rejected"
    assert event["data"]["ticket"] == "CHG-9"
    assert event["data"]["error"]["code"] == "region-unsupported"


def test_a_refusal_without_extensions_stores_no_details(world):
    submission = world.service.submit(request(DIRECT_MODEL), caller=COLLEAGUE)

    assert submission.problem.kind.slug == "requester-forbidden"
    assert submission.run.error.details == []
    assert submission.run.error.message == submission.problem.detail


def test_an_azure_error_during_preflight_stores_nothing(world):
    world.authorization.fail_next("principal_access", AzureCallError(503, "ServiceUnavailable", "Busy."))

    with pytest.raises(AzureCallError):
        world.service.submit(request(DIRECT_MODEL), caller=REQUESTER)

    assert world.runs.all_runs == []
    assert world.events.sent == []
    assert world.runs.deployment_holder(WORKSPACE_ID, DIRECT_MODEL) is None


@pytest.mark.parametrize(
    ("error", "slug"),
    [
        (AzureCallError(404, "ResourceNotFound", "No workspace 'proj'."), "not-found"),
        (AzureCallError(403, "AuthorizationFailed", "No read on the workspace."), "broker-permissions-missing"),
    ],
)
def test_a_preflight_read_azure_refuses_for_good_rejects_the_request(world, error, slug):
    world.ml.fail_next("get_workspace", error)

    submission = world.service.submit(request(DIRECT_MODEL), caller=REQUESTER)

    assert submission.problem.kind.slug == slug
    assert error.message in submission.problem.detail
    assert submission.run.status is RunStatus.REJECTED
    assert submission.run.error.details == [{"azureCode": error.code}]


# Idempotency-Key.


def test_the_same_key_and_request_replay_the_same_run(world):
    first = world.service.submit(request(MARKETPLACE_MODEL), caller=REQUESTER, idempotency_key="key-1")

    again = world.service.submit(request(MARKETPLACE_MODEL), caller=REQUESTER, idempotency_key="key-1")

    assert first.run.idempotency_key == "key-1"
    assert (again.run, again.created, again.problem) == (first.run, False, None)
    assert len(world.runs.all_runs) == 1
    assert len(world.work.sent) == 1
    assert world.event_types() == ["accepted"]


def test_a_replayed_rejection_answers_with_the_same_problem():
    world = build_world(location="westeurope")
    first = world.service.submit(request(MARKETPLACE_MODEL), caller=REQUESTER, idempotency_key="key-1")

    again = world.service.submit(request(MARKETPLACE_MODEL), caller=REQUESTER, idempotency_key="key-1")

    assert (again.run, again.created) == (first.run, False)
    assert again.problem == first.problem
    assert world.event_types() == ["rejected"]


def test_the_same_key_with_another_request_is_an_idempotency_conflict(world):
    first = world.service.submit(request(MARKETPLACE_MODEL), caller=REQUESTER, idempotency_key="key-1")

    with pytest.raises(IdempotencyConflictError) as raised:
        world.service.submit(request(DIRECT_MODEL), caller=REQUESTER, idempotency_key="key-1")

    problem = raised.value.problem
    assert (problem.kind.slug, problem.status) == ("idempotency-conflict", 422)
    assert problem.extensions == {"runId": first.run.id}
    assert "'key-1' was already used for a different request" in problem.detail
    assert str(raised.value) == problem.detail
    assert len(world.runs.all_runs) == 1


def test_keys_belong_to_their_caller(world):
    world.authorization.grant(COLLEAGUE, WORKSPACE_ID, permissions=[AI_DEVELOPER_BLOCK])
    world.service.submit(request(MARKETPLACE_MODEL), caller=REQUESTER, idempotency_key="key-1")

    theirs = world.service.submit(request(DIRECT_MODEL), caller=COLLEAGUE, idempotency_key="key-1")

    assert theirs.created
    assert theirs.run.caller == COLLEAGUE


def test_a_key_whose_first_attempt_stored_no_run_is_finished_under_that_run_id(world):
    world.runs.claim_idempotency_key(REQUESTER, "key-1", "run-from-a-crashed-attempt")

    submission = world.service.submit(request(DIRECT_MODEL), caller=REQUESTER, idempotency_key="key-1")

    assert submission.created
    assert submission.run.id == "run-from-a-crashed-attempt"
    assert world.runs.get("run-from-a-crashed-attempt").run.status is RunStatus.PROVISIONING


def test_a_concurrent_attempt_with_the_same_key_gets_the_run_the_first_stored(world):
    deployment = request(DIRECT_MODEL)
    concurrent = []
    world.runs.before_next(
        "create",
        lambda: concurrent.append(world.service.submit(deployment, caller=REQUESTER, idempotency_key="key-1")),
    )

    submission = world.service.submit(deployment, caller=REQUESTER, idempotency_key="key-1")

    (winner,) = concurrent
    assert winner.created
    assert (submission.run, submission.created) == (winner.run, False)
    assert len(world.runs.all_runs) == 1
    assert len(world.work.sent) == 1
    assert world.event_types() == ["accepted"]


def test_a_concurrent_attempt_with_the_same_key_but_another_body_is_a_conflict(world):
    concurrent = []
    world.runs.before_next(
        "create",
        lambda: concurrent.append(
            world.service.submit(request(DIRECT_MODEL), caller=REQUESTER, idempotency_key="key-1")
        ),
    )

    with pytest.raises(IdempotencyConflictError):
        world.service.submit(request(DIRECT_MODEL, ticket="other"), caller=REQUESTER, idempotency_key="key-1")

    assert [run.id for run in world.runs.all_runs] == [concurrent[0].run.id]


def test_a_concurrent_attempt_with_the_same_key_gets_the_rejection_the_first_stored():
    world = build_world(location="westeurope")
    concurrent = []
    world.runs.before_next(
        "create",
        lambda: concurrent.append(
            world.service.submit(request(MARKETPLACE_MODEL), caller=REQUESTER, idempotency_key="key-1")
        ),
    )

    submission = world.service.submit(request(MARKETPLACE_MODEL), caller=REQUESTER, idempotency_key="key-1")

    (winner,) = concurrent
    assert (submission.run, submission.created, submission.problem) == (winner.run, False, winner.problem)
    assert world.event_types() == ["rejected"]


# One deployment per workspace and model.


def test_a_second_request_for_a_model_in_flight_joins_the_first_run(world):
    world.authorization.grant(COLLEAGUE, WORKSPACE_ID, permissions=[AI_DEVELOPER_BLOCK])
    first = world.service.submit(request(MARKETPLACE_MODEL), caller=REQUESTER)

    second = world.service.submit(request(MARKETPLACE_MODEL, ticket="CHG-2"), caller=COLLEAGUE)

    assert (second.run, second.created, second.problem) == (first.run, False, None)
    assert len(world.runs.all_runs) == 1
    assert len(world.work.sent) == 1
    assert world.event_types() == ["accepted"]
    assert world.runs.deployment_holder(WORKSPACE_ID, MARKETPLACE_MODEL) == first.run.id


def test_a_new_request_after_a_failed_run_takes_the_claim(world):
    first = world.service.submit(request(DIRECT_MODEL), caller=REQUESTER).run
    fail_the_run(world)
    assert world.runs.get(first.id).run.status is RunStatus.FAILED

    second = world.service.submit(request(DIRECT_MODEL), caller=REQUESTER)

    assert second.created
    assert second.run.id != first.id
    assert world.runs.deployment_holder(WORKSPACE_ID, DIRECT_MODEL) == second.run.id
    world.drain()
    assert world.runs.get(second.run.id).run.status is RunStatus.SUCCEEDED


def test_a_claim_left_by_a_finished_run_is_taken_over(world):
    first = world.service.submit(request(DIRECT_MODEL), caller=REQUESTER).run
    world.drain()
    assert world.runs.deployment_holder(WORKSPACE_ID, DIRECT_MODEL) == first.id

    second = world.service.submit(request(DIRECT_MODEL), caller=REQUESTER)

    assert second.created
    assert world.runs.deployment_holder(WORKSPACE_ID, DIRECT_MODEL) == second.run.id


def test_the_endpoint_the_broker_made_has_its_keys_stored_again(world):
    first = world.service.submit(request(DIRECT_MODEL), caller=REQUESTER).run
    world.drain()
    endpoint_name = world.runs.get(first.id).run.endpoint.name

    second = world.service.submit(request(DIRECT_MODEL), caller=REQUESTER).run

    assert second.status is RunStatus.STORING_KEYS
    assert second.steps[-1].detail == f"endpoint '{endpoint_name}' exists; re-storing keys"
    assert world.work.bodies == [{"run_id": second.id, "step": STORE_KEYS, "attempt": 0}]
    world.drain()
    done = world.runs.get(second.id).run
    assert done.status is RunStatus.SUCCEEDED
    assert len(world.ml.calls_to("begin_create_endpoint")) == 1
    assert done.secret_ids != world.runs.get(first.id).run.secret_ids


@pytest.mark.parametrize(("model", "first_step"), [(DIRECT_MODEL, PROVISION), (MARKETPLACE_MODEL, SUBSCRIBE)])
def test_an_endpoint_the_broker_made_that_never_finished_is_provisioned_not_trusted(world, model, first_step):
    name = plan(request(model)).endpoint_name
    world.ml.add_endpoint(
        WORKSPACE_ID, name, model, provisioning_state="Failed", tags={MANAGED_BY_TAG: MANAGED_BY_VALUE}
    )

    run = world.service.submit(request(model), caller=REQUESTER).run

    assert world.work.bodies[0]["step"] == first_step
    world.drain()
    done = world.runs.get(run.id).run
    assert done.status is RunStatus.SUCCEEDED
    assert world.ml.endpoint(WORKSPACE_ID, name).provisioning_state == "Succeeded"
    assert len(world.ml.calls_to("begin_create_endpoint")) == 1


def test_a_lost_take_over_race_keeps_the_run_id_and_its_idempotency_key(world):
    crashed = stored_failed_run(world, "run-crashed", DIRECT_MODEL)
    world.runs.claim_deployment(WORKSPACE_ID, DIRECT_MODEL, "run-finished-earlier")
    stored_failed_run(world, "run-finished-earlier", DIRECT_MODEL)

    def another_request_moves_the_claim_to_a_run_that_then_crashed():
        world.runs.take_over_deployment(WORKSPACE_ID, DIRECT_MODEL, "run-finished-earlier", crashed.id)

    world.runs.before_next("take_over_deployment", another_request_moves_the_claim_to_a_run_that_then_crashed)

    submission = world.service.submit(request(DIRECT_MODEL), caller=REQUESTER, idempotency_key="key-1")

    assert submission.created
    assert submission.run.idempotency_key == "key-1"
    assert len(world.ml.calls_to("list_endpoints")) == 1  # preflight ran once
    fail_the_run(world)
    replay = world.service.submit(request(DIRECT_MODEL), caller=REQUESTER, idempotency_key="key-1")
    assert (replay.run.id, replay.created) == (submission.run.id, False)


def test_a_request_finding_a_claim_whose_run_is_not_stored_yet_waits_and_joins_it(world):
    early = RunRecord.new(run_id="run-early", caller=COLLEAGUE, request=request(DIRECT_MODEL), at=world.clock())
    early = early.transition(RunStatus.VALIDATING, at=world.clock()).transition(
        RunStatus.PROVISIONING, at=world.clock()
    )
    world.runs.claim_deployment(WORKSPACE_ID, DIRECT_MODEL, "run-early")
    # The first request stores its run while the second is waiting for it.
    world.waiting.on_sleep.append(lambda: world.runs.create(early))

    submission = world.service.submit(request(DIRECT_MODEL), caller=REQUESTER)

    assert (submission.run.id, submission.created) == ("run-early", False)
    assert world.work.sent == []
    assert 0 < world.waiting.slept < CLAIM_SETTLE_SECONDS


def test_a_claim_whose_run_never_appears_is_taken_over_after_the_settle_window(world):
    world.runs.claim_deployment(WORKSPACE_ID, DIRECT_MODEL, "run-crashed")

    submission = world.service.submit(request(DIRECT_MODEL), caller=REQUESTER)

    assert submission.created
    assert world.waiting.slept >= CLAIM_SETTLE_SECONDS
    assert world.runs.claim_deployment(WORKSPACE_ID, DIRECT_MODEL, "someone-else") == submission.run.id
    assert len(world.work.sent) == 1


def stored_failed_run(world, run_id, model):
    run = RunRecord.new(run_id=run_id, caller=REQUESTER, request=request(model), at=world.clock())
    failed = run.transition(RunStatus.FAILED, at=world.clock(), error=RunError(code="Crash", message="Worker died."))
    world.runs.create(failed)
    return failed


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
    assert submission.created
    assert (run.caller, run.ticket, run.request.ticket) == (REQUESTER, "INC-1", "INC-1")
    assert run.status is RunStatus.PROVISIONING
    assert run.idempotency_key.startswith("message:")
    assert world.events.bodies[0]["data"]["ticket"] == "INC-1"
    assert world.poison.raw == []


def test_the_same_message_delivered_twice_makes_one_run(world):
    first = world.service.intake_message(queue_body(), message_id="m-1")

    again = world.service.intake_message(queue_body() + "\n", message_id="m-2")

    assert (again.run, again.created) == (first.run, False)
    assert len(world.runs.all_runs) == 1
    assert len(world.work.sent) == 1


def test_a_queue_request_that_preflight_refuses_is_announced_with_its_ticket(world):
    submission = world.service.intake_message(queue_body(requestedBy=COLLEAGUE), message_id="m-1")

    assert submission.problem.kind.slug == "requester-forbidden"
    (event,) = world.events.bodies
    assert event["type"] == f"{EVENT_TYPE_PREFIX}.rejected"
    assert (event["subject"], event["data"]["ticket"]) == (submission.run.id, "INC-1")


def test_a_message_that_is_not_json_is_poisoned_without_an_event(world, caplog):
    body = '{"ticket": "INC-1", '

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


def test_a_delete_message_is_poisoned_as_not_supported_yet(world):
    body = queue_body(type="delete", ticket="INC-3")

    assert world.service.intake_message(body, message_id="m-1") is None

    assert world.poison.raw == [body]
    (event,) = world.events.bodies
    assert event["data"]["error"]["message"] == "Request type 'delete' is not supported yet."
    assert event["data"]["error"]["details"] == []
    assert world.runs.all_runs == []


# Reads.


def test_runs_are_read_back_by_id_and_listed_by_filter(world):
    accepted = world.service.submit(request(DIRECT_MODEL, ticket="T-1"), caller=REQUESTER).run
    rejected = world.service.submit(request(MARKETPLACE_MODEL, ticket="T-2"), caller="someone-else").run

    assert world.service.get(accepted.id) == accepted
    assert world.service.get("no-such-run") is None
    by_status = world.service.list(
        workspace_id=WORKSPACE_ID, status="Rejected", ticket=None, page_size=10, continuation_token=None
    )
    assert [run.id for run in by_status.runs] == [rejected.id]
    first_page = world.service.list(workspace_id=None, status=None, ticket=None, page_size=1, continuation_token=None)
    second_page = world.service.list(
        workspace_id=None, status=None, ticket=None, page_size=1, continuation_token=first_page.continuation_token
    )
    assert [run.id for run in first_page.runs + second_page.runs] == [accepted.id, rejected.id]
    assert second_page.continuation_token is None


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
