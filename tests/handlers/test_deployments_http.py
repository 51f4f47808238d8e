import json
import logging
from urllib.parse import parse_qsl, urlsplit

import pytest

from handlers import deployments, runs
from handlers.principal import PRINCIPAL_HEADER
from shared.access import Caller
from shared.azure_errors import AzureCallError
from shared.deployment import Phase, deployment_id
from shared.deployments import composition
from shared.problems import CONTENT_TYPE, PROBLEM_TYPE_BASE, Problem
from shared.redaction import default_registry
from shared.requests import DeploymentRequest
from shared.runs import RunStatus
from tests.deployments import scenario
from tests.deployments.scenario import World, build_world
from tests.handlers.handler_support import (
    AUTHENTICATED_HEADERS,
    CALLER,
    MODEL,
    ORIGIN,
    SUBSCRIPTION,
    WORKSPACE,
    http_request,
    json_body,
    principal_header,
    user_function,
)

submit = user_function(deployments.submit_deployment)
get_deployment = user_function(deployments.get_deployment)
list_deployments = user_function(deployments.list_deployments)
repair = user_function(deployments.repair_deployment)
get_run = user_function(runs.get_run)
list_runs = user_function(runs.list_runs)

BODY = {"workspaceId": WORKSPACE, "modelId": MODEL + "/versions/3", "ticket": "CHG-1"}
REQUEST = DeploymentRequest.from_wire(BODY)
DEPLOYMENT_ID = deployment_id(REQUEST.workspace, REQUEST.model)
DEPLOYMENT_URL = f"{ORIGIN}/api/deployments/{DEPLOYMENT_ID}"


def _post(body: object = BODY, *, headers: dict[str, str] | None = None, raw_body: bytes | None = None):
    request = http_request(
        "POST", "/api/deployments", body=body, raw_body=raw_body, headers={**AUTHENTICATED_HEADERS, **(headers or {})}
    )
    return submit(request)


def _problem(response, status: int, slug: str) -> dict:
    assert response.status_code == status
    assert response.mimetype == CONTENT_TYPE
    body = json_body(response)
    assert body["type"] == PROBLEM_TYPE_BASE + slug
    assert body["status"] == status
    return body


# POST /api/deployments.


def test_a_new_request_is_accepted_with_links_to_its_run_and_its_deployment(service):
    response = _post()

    run = service.runs["run-1"]
    assert response.status_code == 202
    assert response.mimetype == "application/json"
    assert response.headers["Location"] == DEPLOYMENT_URL
    assert response.headers["Operation-Location"] == f"{ORIGIN}/api/runs/run-1"
    assert json_body(response) == run.to_public_dict()
    assert "resourceLocation" not in json_body(response), "the run has not ended"
    assert (run.deployment_id, run.operation) == (DEPLOYMENT_ID, "deploy")
    assert service.calls == [
        ("submit", {"request": REQUEST, "caller": CALLER, "idempotency_key": None, "ticket": None})
    ]


def test_the_request_is_normalised_before_the_service_sees_it(service):
    _post()

    request = service.calls[0][1]["request"]
    assert request.model_id == MODEL, "the /versions/N suffix is dropped"
    assert request.content_safety == "Enabled"


def test_a_request_for_a_deployment_in_flight_joins_its_run_with_202(service):
    _post()

    response = _post({**BODY, "ticket": "CHG-2"}, headers={PRINCIPAL_HEADER: principal_header(CALLER)})

    assert response.status_code == 202
    body = json_body(response)
    assert body["id"] == "run-1"
    assert [joiner["ticket"] for joiner in body["joined"]] == ["CHG-2"]
    assert response.headers["Operation-Location"] == f"{ORIGIN}/api/runs/run-1"
    assert response.headers["Location"] == DEPLOYMENT_URL


def test_a_request_for_a_ready_deployment_is_answered_200_by_the_deployment(service):
    _post()
    service.finish("run-1")

    response = _post()

    assert response.status_code == 200
    body = json_body(response)
    assert body == service.deployments[DEPLOYMENT_ID].to_public_dict()
    assert (body["id"], body["status"]["phase"]) == (DEPLOYMENT_ID, "Ready")
    assert body["requests"][-1]["outcome"] == "ready"
    assert response.headers["Location"] == DEPLOYMENT_URL
    assert "Operation-Location" not in response.headers, "nothing ran"
    assert len(service.runs) == 1


def test_the_idempotency_key_reaches_the_service_and_a_retry_gets_the_same_run_with_200(service):
    first = _post(headers={"Idempotency-Key": "order-42"})
    again = _post(headers={"Idempotency-Key": "order-42"})

    assert first.status_code == 202
    assert again.status_code == 200
    assert json_body(again)["id"] == json_body(first)["id"] == "run-1"
    assert again.headers["Location"] == first.headers["Location"] == DEPLOYMENT_URL
    assert again.headers["Operation-Location"] == f"{ORIGIN}/api/runs/run-1"
    assert [arguments["idempotency_key"] for _, arguments in service.calls] == ["order-42", "order-42"]
    assert "idempotencyKey" not in json_body(again), "the key stays private to its caller"


def test_a_retry_of_a_request_answered_by_a_ready_deployment_gets_the_deployment_again(service):
    _post()
    service.finish("run-1")
    first = _post(headers={"Idempotency-Key": "order-43"})

    again = _post(headers={"Idempotency-Key": "order-43"})

    assert (first.status_code, again.status_code) == (200, 200)
    assert json_body(again)["id"] == DEPLOYMENT_ID
    assert "Operation-Location" not in again.headers


def test_a_reused_idempotency_key_with_another_body_is_a_422(service):
    _post(headers={"Idempotency-Key": "order-42"})

    response = _post({**BODY, "ticket": "CHG-2"}, headers={"Idempotency-Key": "order-42"})

    body = _problem(response, 422, "idempotency-conflict")
    assert body["runId"] == "run-1"


def test_an_idempotency_key_of_255_characters_is_accepted(service):
    assert _post(headers={"Idempotency-Key": "k" * 255}).status_code == 202


@pytest.mark.parametrize(("key", "message"), [("k" * 256, "256 characters long"), ("  ", "blank")])
def test_an_unusable_idempotency_key_is_refused_before_the_service_is_called(service, key, message):
    body = _problem(_post(headers={"Idempotency-Key": key}), 400, "validation-failed")

    assert body["errors"][0]["field"] == "Idempotency-Key"
    assert message in body["errors"][0]["message"]
    assert service.calls == []


def test_a_caller_without_identity_headers_gets_401_and_nothing_is_submitted(service):
    response = submit(http_request("POST", "/api/deployments", body=BODY))

    body = _problem(response, 401, "unauthorized")
    assert PRINCIPAL_HEADER in body["detail"]
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert service.calls == []


@pytest.mark.parametrize(
    ("raw_body", "message"),
    [
        (b"", "The body is empty"),
        (b"{'workspaceId': 1}", "The body is not JSON: Expecting property name"),
        (b"\xff\xfe", "The body is UTF-16LE"),
        (b"[1, 2]", "The body must be a JSON object, not an array."),
    ],
)
def test_a_body_that_is_not_a_json_object_is_a_400(service, raw_body, message):
    body = _problem(_post(raw_body=raw_body), 400, "validation-failed")

    assert body["errors"][0]["field"] == "(body)"
    assert body["errors"][0]["message"].startswith(message)
    assert service.calls == []


def test_invalid_fields_are_each_named_in_the_400(service):
    response = _post({"workspace_id": WORKSPACE, "endpointName": "-bad-", "contentSafety": "Maybe"})

    body = _problem(response, 400, "validation-failed")
    messages = {error["field"]: error["message"] for error in body["errors"]}
    assert set(messages) == {"workspaceId", "modelId", "endpointName", "contentSafety", "workspace_id"}
    assert messages["modelId"] == "This field is required."
    assert messages["workspace_id"] == "This field is not recognised; did you mean 'workspaceId'?"
    assert body["detail"].startswith("Invalid fields: ")
    assert service.calls == []


def test_a_rejected_request_answers_with_the_preflight_problem_and_points_at_the_stored_run(service):
    service.reject_with = Problem.of(
        "broker-permissions-missing",
        "The broker lacks Microsoft.SaaS/register/action at the subscription.",
        missingActions={"subscription": ["Microsoft.SaaS/register/action"]},
    )

    response = _post()

    body = _problem(response, 403, "broker-permissions-missing")
    assert body["detail"] == "The broker lacks Microsoft.SaaS/register/action at the subscription."
    assert body["missingActions"] == {"subscription": ["Microsoft.SaaS/register/action"]}
    assert body["runId"] == "run-1"
    assert body["instance"] == f"{ORIGIN}/api/runs/run-1"
    assert response.headers["Operation-Location"] == f"{ORIGIN}/api/runs/run-1"
    assert "Location" not in response.headers, "the refused request made no deployment"
    assert service.runs["run-1"].status is RunStatus.REJECTED


def test_a_rejection_keeps_an_instance_the_service_chose(service):
    service.reject_with = Problem.of("region-unsupported", "Use eastus2.", instance="/api/runs/run-0")

    body = _problem(_post(), 422, "region-unsupported")

    assert body["instance"] == "/api/runs/run-0"
    assert body["runId"] == "run-1"


def test_a_deployment_conflict_keeps_the_run_it_names_and_points_at_the_run_recording_it(service):
    service.reject_with = Problem.of(
        "deployment-conflict",
        "Deployment d already deploys the model with contentSafety 'Enabled'.",
        deploymentId=DEPLOYMENT_ID,
        runId="run-0",
        differences=["contentSafety"],
    )

    response = _post()

    body = _problem(response, 409, "deployment-conflict")
    assert (body["deploymentId"], body["runId"], body["differences"]) == (DEPLOYMENT_ID, "run-0", ["contentSafety"])
    assert body["instance"] == response.headers["Operation-Location"] == f"{ORIGIN}/api/runs/run-1"


def test_an_unexpected_failure_is_a_500_that_reveals_nothing_and_logs_no_key(service, caplog):
    key = "k3y-VALUE-that-must-never-be-logged-0123456789"
    default_registry.register(key)
    service.failure = RuntimeError(f"listKeys answered {{'primaryKey': '{key}'}}")
    try:
        with caplog.at_level(logging.ERROR, logger="handlers.http_responses"):
            response = _post()
    finally:
        default_registry.forget(key)

    body = _problem(response, 500, "internal")
    assert "listKeys" not in response.get_body().decode()
    assert key not in response.get_body().decode()
    assert "RuntimeError" in caplog.text, "the failure is logged for operators"
    assert "submit_deployment" in caplog.text
    assert key not in caplog.text
    assert "[REDACTED]" in caplog.text
    assert body["title"] == "The broker failed unexpectedly"


def test_azure_throttling_is_a_503_with_retry_after(service):
    service.failure = AzureCallError(429, "TooManyRequests", "Slow down.", retry_after=12)

    response = _post()

    body = _problem(response, 503, "azure-unavailable")
    assert response.headers["Retry-After"] == "12"
    assert "TooManyRequests" in body["detail"]


# GET /api/deployments/{deploymentId} and GET /api/deployments.


def test_a_deployment_is_read_by_its_id(service):
    _post()

    response = _get_deployment(DEPLOYMENT_ID)

    assert response.status_code == 200
    assert response.mimetype == "application/json"
    body = json_body(response)
    assert body == service.deployments[DEPLOYMENT_ID].to_public_dict()
    assert (body["status"]["phase"], body["status"]["currentRunId"]) == ("Provisioning", "run-1")


def test_an_unknown_deployment_is_a_404_problem(service):
    response = _get_deployment("nope")

    body = _problem(response, 404, "not-found")
    assert "'nope'" in body["detail"]
    assert service.calls == [("get_deployment", {"the_id": "nope", "caller": Caller.of(CALLER)})]


SHOUTED_WORKSPACE = (
    f"/SUBSCRIPTIONS/{SUBSCRIPTION.upper()}/resourcegroups/rg-ai/providers/"
    "microsoft.machinelearningservices/WORKSPACES/proj-a/"
)


def _get_deployment(the_id: str, headers: dict[str, str] = AUTHENTICATED_HEADERS):
    path = f"/api/deployments/{the_id}"
    return get_deployment(http_request("GET", path, headers=headers, route_params={"deploymentId": the_id}))


def _list_deployments(params: dict[str, str] | None = None, headers: dict[str, str] = AUTHENTICATED_HEADERS):
    return list_deployments(http_request("GET", "/api/deployments", params=params, headers=headers))


def test_listing_deployments_passes_canonical_filters_and_the_default_page_size(service):
    response = _list_deployments(
        {"workspaceId": SHOUTED_WORKSPACE, "modelId": f"{MODEL}/versions/2", "phase": "ready", "ticket": " CHG-1 "}
    )

    assert response.status_code == 200
    assert json_body(response) == {"value": [], "nextLink": None}
    assert service.calls == [
        (
            "list_deployments",
            {
                "caller": Caller.of(CALLER),
                "workspace_id": WORKSPACE,
                "model_id": MODEL,
                "phase": "Ready",
                "ticket": "CHG-1",
                "page_size": deployments.DEFAULT_PAGE_SIZE,
                "continuation_token": None,
            },
        )
    ]


def test_deployments_are_listed_a_page_at_a_time_with_links_carrying_the_filters(service):
    models = ("Llama-3.3-70B-Instruct", "Phi-4", "Mistral-large")
    for name in models:
        _post({**BODY, "modelId": f"azureml://registries/azureml-meta/models/{name}"})
    service.calls.clear()

    first = json_body(_list_deployments({"phase": "Provisioning", "pageSize": "2", "code": "function-key-value"}))

    assert [item["spec"]["modelId"].rsplit("/", 1)[-1] for item in first["value"]] == list(models[:2])
    link = urlsplit(first["nextLink"])
    assert f"{link.scheme}://{link.netloc}{link.path}" == f"{ORIGIN}/api/deployments"
    query = dict(parse_qsl(link.query))
    assert query == {"phase": "Provisioning", "pageSize": "2", "continuationToken": "offset-2"}, "no function key"

    second = json_body(_list_deployments(query))

    assert [item["spec"]["modelId"].rsplit("/", 1)[-1] for item in second["value"]] == list(models[2:])
    assert second["nextLink"] is None


@pytest.mark.parametrize(
    ("params", "field", "message"),
    [
        ({"phase": "Done"}, "phase", "'Done' is not one of: Degraded, Deleted, Deleting, Failed,"),
        ({"modelId": "Llama"}, "modelId", "azureml://registries/"),
        ({"workspaceId": "proj-a"}, "workspaceId", "'proj-a' is not a workspace id"),
        ({"pageSize": "0"}, "pageSize", f"from 1 to {deployments.MAX_PAGE_SIZE}"),
    ],
)
def test_a_bad_deployment_filter_is_a_400_naming_it(service, params, field, message):
    body = _problem(_list_deployments(params), 400, "validation-failed")

    assert [error["field"] for error in body["errors"]] == [field]
    assert message in body["errors"][0]["message"]
    assert service.calls == []


def test_a_forged_deployment_continuation_token_is_a_400(service):
    body = _problem(_list_deployments({"continuationToken": "forged"}), 400, "validation-failed")

    assert body["errors"][0]["field"] == "continuationToken"
    assert "forged" not in json.dumps(body)


# POST /api/deployments/{deploymentId}/repair.


def _repair(the_id: str = DEPLOYMENT_ID, headers: dict[str, str] | None = None):
    headers = AUTHENTICATED_HEADERS if headers is None else headers
    path = f"/api/deployments/{the_id}/repair"
    return repair(http_request("POST", path, headers=headers, route_params={"deploymentId": the_id}))


def test_repairing_a_deployment_that_is_not_ready_answers_202_with_the_repair_run(service):
    _post()
    service.deployments[DEPLOYMENT_ID] = service.deployments[DEPLOYMENT_ID].changed(
        at=service.runs["run-1"].updated_at, phase=Phase.DEGRADED
    )

    response = _repair()

    assert response.status_code == 202
    body = json_body(response)
    assert (body["id"], body["operation"], body["deploymentId"]) == ("run-2", "repair", DEPLOYMENT_ID)
    assert response.headers["Operation-Location"] == f"{ORIGIN}/api/runs/run-2"
    assert response.headers["Location"] == DEPLOYMENT_URL
    assert service.calls[-1] == ("repair", {"the_id": DEPLOYMENT_ID, "caller": CALLER})


def test_repairing_a_deployment_that_is_already_fine_answers_200_with_it(service):
    _post()
    service.finish("run-1")

    response = _repair()

    assert response.status_code == 200
    assert json_body(response)["status"]["phase"] == "Ready"
    assert response.headers["Location"] == DEPLOYMENT_URL
    assert len(service.runs) == 1


def test_repairing_a_deleted_deployment_is_a_409_pointing_at_it(service):
    _post()
    done = service.finish("run-1")
    service.deployments[DEPLOYMENT_ID] = service.deployments[DEPLOYMENT_ID].changed(
        at=done.updated_at, phase=Phase.DELETED
    )

    response = _repair()

    _problem(response, 409, "deployment-state-conflict")
    assert response.headers["Location"] == DEPLOYMENT_URL


@pytest.mark.parametrize(("the_id", "headers", "status"), [("nope", None, 404), (DEPLOYMENT_ID, {}, 401)])
def test_repairing_an_unknown_deployment_or_anonymously_is_refused(service, the_id, headers, status):
    response = _repair(the_id, headers)

    assert response.status_code == status
    assert response.mimetype == CONTENT_TYPE


# GET /api/runs/{runId} and GET /api/runs.


def _get_run(run_id: str, headers: dict[str, str] = AUTHENTICATED_HEADERS):
    return get_run(http_request("GET", f"/api/runs/{run_id}", headers=headers, route_params={"runId": run_id}))


def test_a_run_in_flight_is_read_by_its_id_without_a_resource_location(service):
    _post()

    response = _get_run("run-1")

    assert response.status_code == 200
    assert response.mimetype == "application/json"
    assert json_body(response) == service.runs["run-1"].to_public_dict()


def test_a_finished_run_names_its_deployment_as_resource_location(service):
    _post()
    service.finish("run-1")

    body = json_body(_get_run("run-1"))

    assert body["status"] == "Succeeded"
    assert body["resourceLocation"] == DEPLOYMENT_URL
    assert {key: value for key, value in body.items() if key != "resourceLocation"} == service.runs[
        "run-1"
    ].to_public_dict()


def test_a_rejected_run_without_a_deployment_has_no_resource_location(service):
    service.reject_with = Problem.of("model-not-approved", "No.")
    _post()

    body = json_body(_get_run("run-1"))

    assert body["status"] == "Rejected"
    assert "resourceLocation" not in body


def test_an_unknown_run_is_a_404_problem(service):
    body = _problem(_get_run("nope"), 404, "not-found")

    assert "'nope'" in body["detail"]


def _list_runs(params: dict[str, str] | None = None, headers: dict[str, str] = AUTHENTICATED_HEADERS):
    return list_runs(http_request("GET", "/api/runs", params=params, headers=headers))


def test_listing_runs_passes_canonical_filters_and_the_default_page_size(service):
    response = _list_runs(
        {"workspaceId": SHOUTED_WORKSPACE, "status": "succeeded", "ticket": " CHG-1 ", "deploymentId": DEPLOYMENT_ID}
    )

    assert response.status_code == 200
    assert response.mimetype == "application/json"
    assert json_body(response) == {"value": [], "nextLink": None}
    assert service.calls == [
        (
            "list",
            {
                "caller": Caller.of(CALLER),
                "workspace_id": WORKSPACE,
                "status": "Succeeded",
                "ticket": "CHG-1",
                "deployment_id": DEPLOYMENT_ID,
                "page_size": runs.DEFAULT_PAGE_SIZE,
                "continuation_token": None,
            },
        )
    ]


def test_empty_query_parameters_filter_nothing(service):
    _list_runs({"workspaceId": "", "status": " ", "ticket": "", "deploymentId": "", "continuationToken": ""})

    assert service.calls[0][1] == {
        "caller": Caller.of(CALLER),
        "workspace_id": None,
        "status": None,
        "ticket": None,
        "deployment_id": None,
        "page_size": runs.DEFAULT_PAGE_SIZE,
        "continuation_token": None,
    }


def test_run_pages_link_to_the_next_one_with_the_same_filters_until_the_last(service):
    service.reject_with = Problem.of("model-not-approved", "No.")
    for ticket in ("CHG-1", "CHG-1", "CHG-1", "CHG-2"):
        _post({**BODY, "ticket": ticket})
    service.calls.clear()

    first = _list_runs({"ticket": "CHG-1", "pageSize": "2", "code": "function-key-value"})

    page = json_body(first)
    assert [run["id"] for run in page["value"]] == ["run-1", "run-2"]
    assert page["value"][0] == service.runs["run-1"].to_public_dict()
    link = urlsplit(page["nextLink"])
    assert f"{link.scheme}://{link.netloc}{link.path}" == f"{ORIGIN}/api/runs"
    query = dict(parse_qsl(link.query))
    assert query == {"ticket": "CHG-1", "pageSize": "2", "continuationToken": "offset-2"}, "no function key"

    second = json_body(_list_runs(query))

    assert [run["id"] for run in second["value"]] == ["run-3"]
    assert second["nextLink"] is None
    assert service.calls[1][1]["continuation_token"] == "offset-2"
    assert service.calls[1][1]["page_size"] == 2


def test_runs_finished_on_a_page_name_their_deployment(service):
    _post()
    service.finish("run-1")

    [listed] = json_body(_list_runs({"deploymentId": DEPLOYMENT_ID}))["value"]

    assert listed["resourceLocation"] == DEPLOYMENT_URL


@pytest.mark.parametrize(
    ("params", "field", "message"),
    [
        ({"status": "Done"}, "status", "'Done' is not one of: Accepted, Deleted,"),
        ({"pageSize": "0"}, "pageSize", f"from 1 to {runs.MAX_PAGE_SIZE}"),
        ({"pageSize": str(runs.MAX_PAGE_SIZE + 1)}, "pageSize", "from 1 to"),
        ({"pageSize": "ten"}, "pageSize", "from 1 to"),
        ({"pageSize": "-3"}, "pageSize", "from 1 to"),
        ({"workspaceId": "proj-a"}, "workspaceId", "'proj-a' is not a workspace id"),
    ],
)
def test_a_bad_run_filter_is_a_400_naming_it(service, params, field, message):
    body = _problem(_list_runs(params), 400, "validation-failed")

    assert body["errors"] == [{"field": field, "message": body["errors"][0]["message"]}]
    assert message in body["errors"][0]["message"]
    assert service.calls == []


def test_every_bad_filter_is_reported_at_once(service):
    body = _problem(_list_runs({"status": "Done", "pageSize": "0", "workspaceId": "x"}), 400, "validation-failed")

    assert [error["field"] for error in body["errors"]] == ["workspaceId", "status", "pageSize"]


def test_the_largest_page_size_is_accepted(service):
    _list_runs({"pageSize": str(runs.MAX_PAGE_SIZE)})

    assert service.calls[0][1]["page_size"] == runs.MAX_PAGE_SIZE


def test_a_forged_continuation_token_is_a_400(service):
    body = _problem(_list_runs({"continuationToken": "forged"}), 400, "validation-failed")

    assert body["errors"][0]["field"] == "continuationToken"
    assert "forged" not in json.dumps(body)


@pytest.mark.parametrize(
    "read",
    [
        lambda headers: _get_deployment(DEPLOYMENT_ID, headers),
        lambda headers: _list_deployments(headers=headers),
        lambda headers: _get_run("run-1", headers),
        lambda headers: _list_runs(headers=headers),
    ],
    ids=["get-deployment", "list-deployments", "get-run", "list-runs"],
)
def test_every_read_needs_a_signed_in_caller(service, read):
    _post()
    service.calls.clear()

    response = read({})

    body = _problem(response, 401, "unauthorized")
    assert response.headers["WWW-Authenticate"].startswith("Bearer ")
    assert "detail" in body
    assert service.calls == []


def test_a_value_error_without_a_token_is_a_bug_not_a_bad_request(service):
    service.failure = ValueError("unexpected")

    _problem(_list_runs(), 500, "internal")


# The same routes over the production assembly on in-memory ports.


@pytest.fixture
def world(monkeypatch: pytest.MonkeyPatch) -> World:
    built = build_world()
    monkeypatch.setattr(composition, "deployment_service", lambda: built.service)
    return built


AS_REQUESTER = {PRINCIPAL_HEADER: principal_header(scenario.REQUESTER)}
WORLD_BODY = {"workspaceId": scenario.WORKSPACE_ID, "modelId": scenario.DIRECT_MODEL, "ticket": "CHG-5"}


def _world_post(body: dict[str, object] = WORLD_BODY):
    return submit(http_request("POST", "/api/deployments", body=body, headers=AS_REQUESTER))


def test_a_deployment_requested_over_http_is_followed_from_its_run_to_the_ready_resource(world):
    accepted = _world_post()
    run_id = json_body(accepted)["id"]
    the_id = json_body(accepted)["deploymentId"]
    world.drain()

    run = json_body(_get_run(run_id, AS_REQUESTER))
    resource = _get_deployment(the_id, AS_REQUESTER)
    again = _world_post()

    assert accepted.status_code == 202
    assert accepted.headers["Location"] == f"{ORIGIN}/api/deployments/{the_id}"
    assert run["status"] == "Succeeded"
    assert run["resourceLocation"] == accepted.headers["Location"]
    deployment = json_body(resource)
    assert deployment["status"]["phase"] == "Ready"
    assert deployment["status"]["keysRunId"] == run_id
    assert {condition["status"] for condition in deployment["status"]["conditions"]} == {"True"}
    assert again.status_code == 200, "already Ready: answered by the deployment"
    assert json_body(again)["id"] == the_id
    assert [item["outcome"] for item in json_body(again)["requests"]] == ["created", "ready"]


def test_deployments_and_their_runs_are_listed_by_ticket_and_deployment(world):
    the_id = json_body(_world_post())["deploymentId"]
    world.drain()
    _world_post({**WORLD_BODY, "ticket": "CHG-6"})

    by_ticket = json_body(_list_deployments({"ticket": "CHG-6"}, AS_REQUESTER))
    by_phase = json_body(_list_deployments({"phase": "ready", "workspaceId": scenario.WORKSPACE_ID}, AS_REQUESTER))
    runs_of = json_body(_list_runs({"deploymentId": the_id}, AS_REQUESTER))

    assert [item["id"] for item in by_ticket["value"]] == [the_id]
    assert [item["id"] for item in by_phase["value"]] == [the_id]
    assert [(item["operation"], item["status"]) for item in runs_of["value"]] == [("deploy", "Succeeded")]
    assert json_body(_list_deployments({"phase": "Deleted"}, AS_REQUESTER))["value"] == []


def test_repair_over_http_recreates_what_azure_lost_and_a_second_repair_finds_nothing_to_do(world):
    accepted = json_body(_world_post())
    world.drain()
    endpoint = world.run(accepted["id"]).endpoint
    world.ml.endpoints.clear()  # someone deleted the endpoint in the portal

    started = _repair(accepted["deploymentId"], AS_REQUESTER)
    world.drain()
    settled = _repair(accepted["deploymentId"], AS_REQUESTER)

    assert started.status_code == 202
    body = json_body(started)
    assert (body["operation"], body["status"]) == ("repair", "Provisioning")
    assert world.run(body["id"]).status is RunStatus.SUCCEEDED
    assert world.ml.endpoint(scenario.WORKSPACE_ID, endpoint.name) is not None
    assert settled.status_code == 200
    assert json_body(settled)["status"]["phase"] == "Ready"


def test_a_request_for_another_spec_is_a_409_naming_the_deployment_its_run_and_the_differences(world):
    first = json_body(_world_post())
    world.drain()

    response = _world_post({**WORLD_BODY, "contentSafety": "Disabled"})

    body = _problem(response, 409, "deployment-conflict")
    assert (body["deploymentId"], body["runId"], body["differences"]) == (
        first["deploymentId"],
        first["id"],
        ["contentSafety"],
    )
    refusal = body["instance"].rsplit("/", 1)[-1]
    assert world.run(refusal).status is RunStatus.REJECTED
    assert response.headers["Operation-Location"] == body["instance"]
    assert response.headers["Location"] == f"{ORIGIN}/api/deployments/{first['deploymentId']}"


STRANGER = "9d8c7b6a-5f4e-4d3c-8b2a-1f0e9d8c7b6a"
AS_STRANGER = {PRINCIPAL_HEADER: principal_header(STRANGER)}


def test_another_callers_run_and_deployment_answer_404_exactly_as_missing_ones_do(world):
    accepted = json_body(_world_post())
    world.drain()
    run_id, the_id = accepted["id"], accepted["deploymentId"]

    hidden = [_get_run(run_id, AS_STRANGER), _get_deployment(the_id, AS_STRANGER)]
    missing = [_get_run("nope", AS_STRANGER), _get_deployment("nope", AS_STRANGER)]

    assert [response.status_code for response in hidden + missing] == [404] * 4
    for response, absent, asked in zip(hidden, missing, (run_id, the_id), strict=True):
        same = {**json_body(absent), "detail": json_body(absent)["detail"].replace("'nope'", f"'{asked}'")}
        assert json_body(response) == same
        assert response.headers == absent.headers
    assert json_body(_list_runs({"deploymentId": the_id}, AS_STRANGER)) == {"value": [], "nextLink": None}
    assert json_body(_list_deployments({"ticket": "CHG-5"}, AS_STRANGER)) == {"value": [], "nextLink": None}
    assert _get_run(run_id, AS_REQUESTER).status_code == 200


def test_repairing_a_deployment_the_caller_may_not_see_is_a_404_that_starts_nothing(world):
    accepted = json_body(_world_post())
    world.drain()
    world.ml.endpoints.clear()
    runs_before = len(world.runs.all_runs)

    response = _repair(accepted["deploymentId"], AS_STRANGER)

    body = _problem(response, 404, "not-found")
    assert body["detail"] == f"There is no deployment '{accepted['deploymentId']}'."
    assert "Location" not in response.headers
    assert len(world.runs.all_runs) == runs_before
    assert world.work.sent == []
