import pytest

from handlers import models
from shared.azure_errors import AzureCallError
from shared.problems import CONTENT_TYPE, PROBLEM_TYPE_BASE
from tests.handlers.handler_support import (
    AUTHENTICATED_HEADERS,
    MODEL,
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
