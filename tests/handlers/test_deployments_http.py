import json
import logging
from urllib.parse import parse_qsl, urlsplit

import pytest

from handlers import deployments
from handlers.principal import PRINCIPAL_HEADER
from shared.problems import CONTENT_TYPE, PROBLEM_TYPE_BASE, Problem
from shared.redaction import default_registry
from shared.requests import DeploymentRequest
from tests.handlers.handler_support import (
    AUTHENTICATED_HEADERS,
    CALLER,
    MODEL,
    ORIGIN,
    SUBSCRIPTION,
    WORKSPACE,
    http_request,
    json_body,
    user_function,
)

submit = user_function(deployments.submit_deployment)
get_run = user_function(deployments.get_deployment)
list_runs = user_function(deployments.list_deployments)

BODY = {"workspaceId": WORKSPACE, "modelId": MODEL + "/versions/3", "ticket": "CHG-1"}


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


def test_a_new_request_is_accepted_with_links_to_its_run(service):
    response = _post()

    run = service.runs["run-1"]
    assert response.status_code == 202
    assert response.mimetype == "application/json"
    assert response.headers["Location"] == "/api/deployments/run-1"
    assert response.headers["Operation-Location"] == f"{ORIGIN}/api/deployments/run-1"
    assert json_body(response) == run.to_public_dict()
    assert service.calls == [
        (
            "submit",
            {
                "request": DeploymentRequest.from_wire(BODY),
                "caller": CALLER,
                "idempotency_key": None,
                "ticket": None,
            },
        )
    ]


def test_the_request_is_normalised_before_the_service_sees_it(service):
    _post()

    request = service.calls[0][1]["request"]
    assert request.model_id == MODEL, "the /versions/N suffix is dropped"
    assert request.content_safety == "Enabled"


def test_the_idempotency_key_reaches_the_service_and_a_retry_gets_the_same_run_with_200(service):
    first = _post(headers={"Idempotency-Key": "order-42"})
    again = _post(headers={"Idempotency-Key": "order-42"})

    assert first.status_code == 202
    assert again.status_code == 200
    assert json_body(again)["id"] == json_body(first)["id"] == "run-1"
    assert again.headers["Location"] == "/api/deployments/run-1"
    assert again.headers["Operation-Location"] == f"{ORIGIN}/api/deployments/run-1"
    assert [arguments["idempotency_key"] for _, arguments in service.calls] == ["order-42", "order-42"]
    assert "idempotencyKey" not in json_body(again), "the key stays private to its caller"


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
        (b"{'workspaceId': 1}", "The body is not valid JSON"),
        (b"\xff\xfe", "The body is not valid JSON"),
        (b"[1, 2]", "The body must be a JSON object."),
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
    assert body["instance"] == "/api/deployments/run-1"
    assert response.headers["Location"] == "/api/deployments/run-1"
    assert service.runs["run-1"].status.value == "Rejected"


def test_a_rejection_keeps_an_instance_the_service_chose(service):
    service.reject_with = Problem.of("deployment-conflict", "taken", instance="/api/deployments/run-0")

    body = _problem(_post(), 409, "deployment-conflict")

    assert body["instance"] == "/api/deployments/run-0"
    assert body["runId"] == "run-1"


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


def test_a_run_is_read_by_its_id(service):
    _post()

    response = get_run(http_request("GET", "/api/deployments/run-1", route_params={"runId": "run-1"}))

    assert response.status_code == 200
    assert response.mimetype == "application/json"
    assert json_body(response) == service.runs["run-1"].to_public_dict()


def test_an_unknown_run_is_a_404_problem(service):
    response = get_run(http_request("GET", "/api/deployments/nope", route_params={"runId": "nope"}))

    body = _problem(response, 404, "not-found")
    assert "'nope'" in body["detail"]


def _list(params: dict[str, str] | None = None):
    return list_runs(http_request("GET", "/api/deployments", params=params))


def test_listing_passes_canonical_filters_and_the_default_page_size(service):
    shouted = (
        f"/SUBSCRIPTIONS/{SUBSCRIPTION.upper()}/resourcegroups/rg-ai/providers/"
        "microsoft.machinelearningservices/WORKSPACES/proj-a/"
    )

    response = _list({"workspaceId": shouted, "status": "succeeded", "ticket": " CHG-1 "})

    assert response.status_code == 200
    assert response.mimetype == "application/json"
    assert json_body(response) == {"value": [], "nextLink": None}
    assert service.calls == [
        (
            "list",
            {
                "workspace_id": WORKSPACE,
                "status": "Succeeded",
                "ticket": "CHG-1",
                "page_size": deployments.DEFAULT_PAGE_SIZE,
                "continuation_token": None,
            },
        )
    ]


def test_empty_query_parameters_filter_nothing(service):
    _list({"workspaceId": "", "status": " ", "ticket": "", "continuationToken": ""})

    assert service.calls[0][1] == {
        "workspace_id": None,
        "status": None,
        "ticket": None,
        "page_size": deployments.DEFAULT_PAGE_SIZE,
        "continuation_token": None,
    }


def test_pages_link_to_the_next_one_with_the_same_filters_until_the_last(service):
    for ticket in ("CHG-1", "CHG-1", "CHG-1", "CHG-2"):
        _post({**BODY, "ticket": ticket})
    service.calls.clear()

    first = _list({"ticket": "CHG-1", "pageSize": "2", "code": "function-key-value"})

    page = json_body(first)
    assert [run["id"] for run in page["value"]] == ["run-1", "run-2"]
    assert page["value"][0] == service.runs["run-1"].to_public_dict()
    link = urlsplit(page["nextLink"])
    assert f"{link.scheme}://{link.netloc}{link.path}" == f"{ORIGIN}/api/deployments"
    query = dict(parse_qsl(link.query))
    assert query == {"ticket": "CHG-1", "pageSize": "2", "continuationToken": "offset-2"}, "no function key"

    second = json_body(_list(query))

    assert [run["id"] for run in second["value"]] == ["run-3"]
    assert second["nextLink"] is None
    assert service.calls[1][1]["continuation_token"] == "offset-2"
    assert service.calls[1][1]["page_size"] == 2


@pytest.mark.parametrize(
    ("params", "field", "message"),
    [
        ({"status": "Done"}, "status", "'Done' is not one of: Accepted, Deleted,"),
        ({"pageSize": "0"}, "pageSize", f"from 1 to {deployments.MAX_PAGE_SIZE}"),
        ({"pageSize": str(deployments.MAX_PAGE_SIZE + 1)}, "pageSize", "from 1 to"),
        ({"pageSize": "ten"}, "pageSize", "from 1 to"),
        ({"pageSize": "-3"}, "pageSize", "from 1 to"),
        ({"workspaceId": "proj-a"}, "workspaceId", "'proj-a' is not a workspace id"),
    ],
)
def test_a_bad_filter_is_a_400_naming_it(service, params, field, message):
    body = _problem(_list(params), 400, "validation-failed")

    assert body["errors"] == [{"field": field, "message": body["errors"][0]["message"]}]
    assert message in body["errors"][0]["message"]
    assert service.calls == []


def test_every_bad_filter_is_reported_at_once(service):
    body = _problem(_list({"status": "Done", "pageSize": "0", "workspaceId": "x"}), 400, "validation-failed")

    assert [error["field"] for error in body["errors"]] == ["workspaceId", "status", "pageSize"]


def test_the_largest_page_size_is_accepted(service):
    _list({"pageSize": str(deployments.MAX_PAGE_SIZE)})

    assert service.calls[0][1]["page_size"] == deployments.MAX_PAGE_SIZE


def test_a_forged_continuation_token_is_a_400(service):
    body = _problem(_list({"continuationToken": "forged"}), 400, "validation-failed")

    assert body["errors"][0]["field"] == "continuationToken"
    assert "forged" not in json.dumps(body)


def test_a_value_error_without_a_token_is_a_bug_not_a_bad_request(service):
    service.failure = ValueError("unexpected")

    _problem(_list(), 500, "internal")
