"""POST /api/deployments/what-if over the real deployment service and the in-memory ports: the body is read and
refused as a deployment request's, a caller is required, and the answer matches its OpenAPI schema."""

from __future__ import annotations

import pytest
from jsonschema import Draft202012Validator

from handlers import what_if
from handlers.openapi import openapi_document
from shared.azure_errors import AzureCallError
from shared.deployments import composition
from shared.problems import CONTENT_TYPE, PROBLEM_TYPE_BASE
from tests.deployments.scenario import DIRECT_MODEL, MARKETPLACE_MODEL, REQUESTER, WORKSPACE_ID, World, build_world
from tests.handlers.handler_support import http_request, json_body, principal_header, user_function

post = user_function(what_if.what_if_deployment)
SIGNED_IN = {"X-MS-CLIENT-PRINCIPAL": principal_header(REQUESTER)}


@pytest.fixture
def world(monkeypatch: pytest.MonkeyPatch) -> World:
    built = build_world()
    monkeypatch.setattr(composition, "deployment_service", lambda: built.service)
    return built


def _what_if(body: object, headers: dict[str, str] = SIGNED_IN, **kwargs: object):
    return post(http_request("POST", "/api/deployments/what-if", body=body, headers=headers, **kwargs))


def _schema_errors(instance: object) -> list[str]:
    components = openapi_document()["components"]
    validator = Draft202012Validator({"$ref": "#/components/schemas/WhatIf", "components": components})
    return [error.message for error in validator.iter_errors(instance)]


def test_an_allowed_request_is_answered_200_with_the_plan_and_writes_nothing(world):
    response = _what_if({"workspaceId": WORKSPACE_ID, "modelId": MARKETPLACE_MODEL})

    assert response.status_code == 200
    assert response.mimetype == "application/json"
    answer = json_body(response)
    assert (answer["verdict"], answer["outcome"]) == ("allowed", "create")
    assert [step["action"] for step in answer["plan"]][:2] == ["subscribe", "createEndpoint"]
    assert _schema_errors(answer) == []
    assert (world.runs.all_runs, world.runs.all_deployments) == ([], [])
    assert (world.work.sent, world.events.sent) == ([], [])


def test_a_rejected_request_is_still_a_200_listing_its_failures(world):
    stranger = "5742a9e1-0000-4000-8000-000000000009"

    response = _what_if(
        {"workspaceId": WORKSPACE_ID, "modelId": DIRECT_MODEL},
        headers={"X-MS-CLIENT-PRINCIPAL": principal_header(stranger)},
    )

    assert response.status_code == 200
    answer = json_body(response)
    assert answer["verdict"] == "rejected"
    failed = [check for check in answer["checks"] if check["outcome"] == "failed"]
    assert [check["problem"]["type"] for check in failed] == [PROBLEM_TYPE_BASE + "requester-forbidden"]
    assert _schema_errors(answer) == []


def test_a_join_matches_the_schema(world):
    world.submit(MARKETPLACE_MODEL)

    answer = json_body(_what_if({"workspaceId": WORKSPACE_ID, "modelId": MARKETPLACE_MODEL}))

    assert answer["outcome"] == "join"
    assert _schema_errors(answer) == []


def test_an_anonymous_caller_gets_401_with_the_challenge(world):
    response = _what_if({"workspaceId": WORKSPACE_ID, "modelId": DIRECT_MODEL}, headers={})

    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"].startswith("Bearer ")
    assert world.ml.calls == []


@pytest.mark.parametrize(
    ("body", "status", "slug"),
    [
        ({"workspaceId": WORKSPACE_ID}, 400, "validation-failed"),
        ({"workspaceId": WORKSPACE_ID, "modelId": DIRECT_MODEL, "idempotencyKey": "x"}, 400, "validation-failed"),
        ([], 400, "validation-failed"),
    ],
)
def test_a_body_intake_refuses_is_refused_alike(world, body, status, slug):
    response = _what_if(body)

    assert response.status_code == status
    assert response.mimetype == CONTENT_TYPE
    assert json_body(response)["type"] == PROBLEM_TYPE_BASE + slug


def test_a_body_that_is_not_json_is_415(world):
    response = post(
        http_request(
            "POST",
            "/api/deployments/what-if",
            raw_body=b"workspaceId=x",
            headers={**SIGNED_IN, "Content-Type": "text/plain"},
        )
    )

    assert response.status_code == 415


def test_azure_unavailable_is_a_503_with_retry_after(world):
    world.ml.fail_next("get_workspace", AzureCallError(503, "ServiceUnavailable", "Busy.", retry_after=7))

    response = _what_if({"workspaceId": WORKSPACE_ID, "modelId": DIRECT_MODEL})

    assert response.status_code == 503
    assert response.headers["Retry-After"] == "7"
