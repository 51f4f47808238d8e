from urllib.parse import parse_qsl, urlsplit

import pytest
from jsonschema import Draft202012Validator

from handlers import models
from handlers.openapi import openapi_document
from shared.azure_errors import AzureCallError
from shared.deployments import composition
from shared.problems import CONTENT_TYPE, PROBLEM_TYPE_BASE
from tests.deployments.scenario import CATALOG, MARKETPLACE_MODEL, World, build_world
from tests.deployments.scenario import WORKSPACE_ID as SCENARIO_WORKSPACE
from tests.handlers.handler_support import (
    AUTHENTICATED_HEADERS,
    MODEL,
    ORIGIN,
    SUBSCRIPTION,
    WORKSPACE,
    http_request,
    json_body,
    user_function,
)

availability = user_function(models.model_availability)


def _get(params: dict[str, str], headers: dict[str, str] = AUTHENTICATED_HEADERS):
    return availability(http_request("GET", "/api/models/availability", params=params, headers=headers))


def test_an_anonymous_caller_gets_401_with_the_challenge_and_the_service_is_not_asked(service):
    response = _get({"modelId": MODEL}, headers={})

    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"].startswith("Bearer ")
    assert service.calls == []


def test_the_service_answer_is_returned_for_the_normalised_ids(service):
    service.availability_answer = {"modelId": MODEL, "soldDirectly": False, "supportedRegions": ["eastus2"]}
    lower_case_keywords = WORKSPACE.replace("resourceGroups", "resourcegroups").replace("/workspaces/", "/Workspaces/")

    response = _get({"modelId": f" {MODEL}/versions/2 ", "workspaceId": lower_case_keywords})

    assert response.status_code == 200
    assert response.mimetype == "application/json"
    assert json_body(response) == service.availability_answer
    assert service.calls == [("availability", {"model_id": MODEL, "workspace_id": WORKSPACE})]


def test_the_workspace_is_optional(service):
    assert _get({"modelId": MODEL, "workspaceId": ""}).status_code == 200

    assert service.calls == [("availability", {"model_id": MODEL, "workspace_id": None})]


@pytest.mark.parametrize(
    ("params", "errors"),
    [
        ({}, {"modelId": "This query parameter is required: azureml://registries/<registry>/models/<name>"}),
        ({"modelId": "gpt-4o"}, {"modelId": "gpt-4o"}),
        (
            {"modelId": "gpt-4o", "workspaceId": f"/subscriptions/{SUBSCRIPTION}"},
            {"modelId": "gpt-4o", "workspaceId": "is not a workspace id"},
        ),
    ],
)
def test_bad_ids_are_a_400_naming_each_parameter(service, params, errors):
    response = _get(params)

    assert response.status_code == 400
    assert response.mimetype == CONTENT_TYPE
    body = json_body(response)
    assert body["type"] == PROBLEM_TYPE_BASE + "validation-failed"
    reported = {error["field"]: error["message"] for error in body["errors"]}
    assert reported.keys() == errors.keys()
    for field, fragment in errors.items():
        assert fragment in reported[field]
    assert service.calls == []


def test_a_workspace_azure_does_not_know_is_a_404(service):
    service.failure = AzureCallError(404, "ResourceNotFound", "The Resource 'proj-a' was not found.")

    response = _get({"modelId": MODEL, "workspaceId": WORKSPACE})

    assert response.status_code == 404
    body = json_body(response)
    assert body["type"] == PROBLEM_TYPE_BASE + "not-found"
    assert body["detail"] == f"Workspace '{WORKSPACE}' does not exist: The Resource 'proj-a' was not found."


def test_other_azure_failures_are_internal_errors(service):
    service.failure = AzureCallError(403, "AuthorizationFailed", "no read access")

    response = _get({"modelId": MODEL, "workspaceId": WORKSPACE})

    assert response.status_code == 500
    assert json_body(response)["type"] == PROBLEM_TYPE_BASE + "internal"
    assert "AuthorizationFailed" not in response.get_body().decode()


def test_throttled_azure_is_a_503_with_retry_after(service):
    service.failure = AzureCallError(429, "TooManyRequests", "slow down", retry_after=7)

    response = _get({"modelId": MODEL, "workspaceId": WORKSPACE})

    assert response.status_code == 503
    assert response.headers["Retry-After"] == "7"
    assert json_body(response)["type"] == PROBLEM_TYPE_BASE + "azure-unavailable"


# -- GET /api/models, over the real deployment service and the in-memory ports of tests/deployments ------------------

list_models = user_function(models.list_models)


@pytest.fixture
def world(monkeypatch: pytest.MonkeyPatch) -> World:
    built = build_world()
    monkeypatch.setattr(composition, "deployment_service", lambda: built.service)
    return built


def _list(params: dict[str, str], headers: dict[str, str] = AUTHENTICATED_HEADERS):
    return list_models(http_request("GET", "/api/models", params=params, headers=headers))


def _follow(next_link: str):
    parts = urlsplit(next_link)
    assert f"{parts.scheme}://{parts.netloc}" == ORIGIN
    assert parts.path == "/api/models"
    return _list(dict(parse_qsl(parts.query)))


def test_the_list_needs_a_signed_in_caller(world):
    response = _list({"workspaceId": SCENARIO_WORKSPACE}, headers={})

    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"].startswith("Bearer ")
    assert world.ml.call_names == []


def test_the_list_is_the_catalog_as_the_project_sees_it_page_after_page(world):
    response = _list({"workspaceId": f" {SCENARIO_WORKSPACE} ", "pageSize": "2", "code": "function-key"})

    assert response.status_code == 200
    assert response.mimetype == "application/json"
    first = json_body(response)
    assert len(first["value"]) == 2
    query = dict(parse_qsl(urlsplit(first["nextLink"]).query))
    assert query.keys() == {"workspaceId", "pageSize", "continuationToken"}  # never the function key
    second = json_body(_follow(first["nextLink"]))
    assert second["nextLink"] is None
    listed = [item["modelId"] for item in first["value"] + second["value"]]
    assert listed == sorted((entry.model_id for entry in CATALOG.entries), key=str.lower)
    cohere = next(item for item in first["value"] + second["value"] if item["modelId"] == MARKETPLACE_MODEL)
    assert cohere["publisher"] == "cohere"
    assert cohere["soldDirectly"] is False
    assert cohere["region"]["location"] == "eastus2"
    assert cohere["region"]["offered"] is True
    assert cohere["policy"] == {"allowed": True, "rule": None, "reason": None}
    assert cohere["approval"]["required"] is False


def test_filters_travel_in_the_next_link(world):
    first = json_body(_list({"workspaceId": SCENARIO_WORKSPACE, "publisher": "DeepSeek", "pageSize": "1"}))

    assert dict(parse_qsl(urlsplit(first["nextLink"]).query))["publisher"] == "DeepSeek"
    second = json_body(_follow(first["nextLink"]))
    assert [item["publisher"] for item in first["value"] + second["value"]] == ["deepseek", "deepseek"]
    assert second["nextLink"] is None


def test_a_token_sent_with_other_filters_is_a_400(world):
    first = json_body(_list({"workspaceId": SCENARIO_WORKSPACE, "pageSize": "1"}))
    token = dict(parse_qsl(urlsplit(first["nextLink"]).query))["continuationToken"]

    response = _list({"workspaceId": SCENARIO_WORKSPACE, "name": "deepseek", "continuationToken": token})

    assert response.status_code == 400
    body = json_body(response)
    assert body["type"] == PROBLEM_TYPE_BASE + "validation-failed"
    assert [error["field"] for error in body["errors"]] == ["continuationToken"]


@pytest.mark.parametrize(
    ("params", "fields"),
    [
        ({}, ["workspaceId"]),
        ({"workspaceId": "  "}, ["workspaceId"]),
        ({"workspaceId": f"/subscriptions/{SUBSCRIPTION}"}, ["workspaceId"]),
        ({"workspaceId": WORKSPACE, "pageSize": "0"}, ["pageSize"]),
        ({"workspaceId": WORKSPACE, "pageSize": "101"}, ["pageSize"]),
        ({"pageSize": "x"}, ["workspaceId", "pageSize"]),
    ],
)
def test_a_missing_or_bad_parameter_is_a_400_naming_it(world, params, fields):
    response = _list(params)

    assert response.status_code == 400
    assert sorted(error["field"] for error in json_body(response)["errors"]) == sorted(fields)
    assert world.ml.call_names == []


def test_a_project_azure_does_not_know_is_a_404(world):
    missing = SCENARIO_WORKSPACE.replace("proj-a", "proj-gone")

    response = _list({"workspaceId": missing})

    assert response.status_code == 404
    body = json_body(response)
    assert body["type"] == PROBLEM_TYPE_BASE + "not-found"
    assert body["detail"].startswith(f"Workspace '{missing}' does not exist")


def test_throttled_azure_is_a_503_for_the_list_too(world):
    world.ml.fail_next("get_workspace", AzureCallError(429, "TooManyRequests", "slow down", retry_after=4))

    response = _list({"workspaceId": SCENARIO_WORKSPACE})

    assert response.status_code == 503
    assert response.headers["Retry-After"] == "4"


def test_every_listing_validates_against_the_openapi_schema(world):
    page = json_body(_list({"workspaceId": SCENARIO_WORKSPACE}))
    document = openapi_document()
    validator = Draft202012Validator({"$ref": "#/components/schemas/ModelPage", "components": document["components"]})

    assert list(validator.iter_errors(page)) == []
    assert page["value"]
