"""The broker fails closed: in Azure (App Service's instance variables set) without Easy Auth (WEBSITE_AUTH_ENABLED
not true), no principal header is believed; every route that needs a caller answers 401 saying why."""

import pytest

from handlers import deployments, lifecycle
from handlers.principal import UnauthenticatedError, caller_object_id, header_trust
from shared.problems import CONTENT_TYPE, PROBLEM_TYPE_BASE
from tests.handlers.handler_support import (
    AUTHENTICATED_HEADERS,
    CALLER,
    MODEL,
    WORKSPACE,
    http_request,
    json_body,
    user_function,
)

IN_AZURE = {"WEBSITE_INSTANCE_ID": "0a1b2c3d4e5f", "WEBSITE_SITE_NAME": "func-broker-prod"}
DEPLOYMENT = "proj-a--llama-3-3-70b-instruct--0123456789"


@pytest.mark.parametrize(
    ("environ", "trusted", "in_azure", "easy_auth"),
    [
        ({}, True, False, False),
        ({"WEBSITE_AUTH_ENABLED": "True"}, True, False, True),
        (IN_AZURE, False, True, False),
        ({"WEBSITE_INSTANCE_ID": "0a1b"}, False, True, False),
        ({"WEBSITE_SITE_NAME": "func-broker"}, False, True, False),
        ({**IN_AZURE, "WEBSITE_AUTH_ENABLED": "False"}, False, True, False),
        ({**IN_AZURE, "WEBSITE_AUTH_ENABLED": "True"}, True, True, True),
        ({**IN_AZURE, "WEBSITE_AUTH_ENABLED": "true"}, True, True, True),
        ({"WEBSITE_INSTANCE_ID": " ", "WEBSITE_SITE_NAME": ""}, True, False, False),
    ],
)
def test_headers_are_trusted_unless_in_azure_without_easy_auth(environ, trusted, in_azure, easy_auth):
    trust = header_trust(environ)

    assert (trust.trusted, trust.in_azure, trust.easy_auth) == (trusted, in_azure, easy_auth)
    assert trust.detail


def test_the_refusal_names_the_variables_that_decided_it():
    detail = header_trust(IN_AZURE).detail

    assert "WEBSITE_INSTANCE_ID and WEBSITE_SITE_NAME are set" in detail
    assert "WEBSITE_AUTH_ENABLED is not 'true'" in detail
    assert "X-MS-CLIENT-PRINCIPAL" in detail
    assert "authsettingsV2" in detail


def test_a_well_formed_principal_is_refused_in_azure_without_easy_auth():
    with pytest.raises(UnauthenticatedError) as raised:
        caller_object_id(AUTHENTICATED_HEADERS, IN_AZURE)

    problem = raised.value.problem
    assert problem.status == 401
    assert problem.detail.startswith("The broker runs in Azure")


def test_with_easy_auth_in_azure_the_principal_names_the_caller():
    assert caller_object_id(AUTHENTICATED_HEADERS, {**IN_AZURE, "WEBSITE_AUTH_ENABLED": "True"}) == CALLER


def test_the_process_environment_is_read_when_none_is_given(monkeypatch):
    for name, value in IN_AZURE.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("WEBSITE_AUTH_ENABLED", raising=False)

    with pytest.raises(UnauthenticatedError):
        caller_object_id(AUTHENTICATED_HEADERS)


ROUTES = {
    "submit": (deployments.submit_deployment, "POST", "", {"workspaceId": WORKSPACE, "modelId": MODEL}),
    "repair": (deployments.repair_deployment, "POST", "/repair", {}),
    "delete": (lifecycle.delete_deployment, "DELETE", "", None),
    "rotate": (lifecycle.rotate_deployment_keys, "POST", "/rotate-keys", {"keyType": "primary"}),
}


@pytest.mark.parametrize("route", sorted(ROUTES))
def test_every_route_that_needs_a_caller_answers_401_in_azure_without_easy_auth(service, monkeypatch, route):
    for name, value in IN_AZURE.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("WEBSITE_AUTH_ENABLED", raising=False)
    function, method, suffix, body = ROUTES[route]
    on_deployment = route != "submit"
    path = f"/api/deployments/{DEPLOYMENT}{suffix}" if on_deployment else "/api/deployments"
    params = {"deploymentId": DEPLOYMENT} if on_deployment else {}
    request = http_request(method, path, body=body, headers=AUTHENTICATED_HEADERS, route_params=params)

    response = user_function(function)(request)

    assert response.status_code == 401
    assert response.mimetype == CONTENT_TYPE
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    problem = json_body(response)
    assert problem["type"] == PROBLEM_TYPE_BASE + "unauthorized"
    assert "App Service authentication is not enabled" in problem["detail"]
    assert service.runs == {}, "nothing was asked of the service"
