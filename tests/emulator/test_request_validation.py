"""Strict request bodies: the emulator refuses what the api-version's schema does not allow, as ARM does (400
InvalidRequestContent, naming the property), unless the scenario or the CLI makes it loose."""

import pytest

from devstack.emulator.__main__ import parse_args, scenario_document
from devstack.emulator.testing import running_emulator

from .conftest import FAST_TIMINGS

PREVIEW = "2024-01-01-preview"
STABLE = "2026-07-01"
DEEPSEEK = "azureml://registries/azureml-deepseek/models/DeepSeek-R1"


def endpoint(**properties) -> dict:
    return {
        "properties": {"modelSettings": {"modelId": DEEPSEEK}, **properties},
        "sku": {"name": "Consumption"},
        "location": "eastus2",
    }


def put(emulator, version: str, body: dict, name: str = "ep"):
    path = f"{emulator.workspace_path()}/serverlessEndpoints/{name}"
    return emulator.arm().request("PUT", path, api_version=version, body=body)


def test_a_property_the_api_version_does_not_define_is_refused(emulator):
    # The broker's old body: contentSafety does not exist at 2024-01-01-preview, whose schema is closed.
    response = put(emulator, PREVIEW, endpoint(authMode="Key", contentSafety={"contentSafetyStatus": "Enabled"}))

    assert response.status_code == 400
    assert response.headers["Content-Type"] == "application/json; charset=utf-8"
    error = response.json()["error"]
    assert error["code"] == "InvalidRequestContent"
    assert error["message"] == (
        "The request content was invalid and could not be deserialized: 'Could not find member 'contentSafety' on "
        "object of type 'ServerlessEndpointProperties'. Path 'properties.contentSafety'.'"
    )
    assert error["target"] == "properties.contentSafety"
    assert emulator.admin.state()["endpoints"] == []


def test_the_same_body_is_valid_at_the_newest_stable_api_version(emulator):
    response = put(emulator, STABLE, endpoint(authMode="Key", contentSafety={"contentSafetyStatus": "Disabled"}))

    assert response.status_code == 201
    assert response.json()["properties"]["contentSafety"] == {"contentSafetyStatus": "Disabled"}


@pytest.mark.parametrize(
    ("body", "path", "sentence"),
    [
        (endpoint(), "properties.authMode", "Required property 'authMode' not found in JSON. Path 'properties'."),
        (
            endpoint(authMode="Password"),
            "properties.authMode",
            "Error converting value \"Password\" to type 'ServerlessInferenceEndpointAuthMode'. "
            "Path 'properties.authMode'.",
        ),
        (
            endpoint(authMode="Key", contentSafety={"contentSafetyStatus": "Sometimes"}),
            "properties.contentSafety.contentSafetyStatus",
            "Error converting value \"Sometimes\" to type 'ContentSafetyStatus'. "
            "Path 'properties.contentSafety.contentSafetyStatus'.",
        ),
        (
            {**endpoint(authMode="Key"), "tags": {"team": 7}},
            "tags.team",
            "Error converting value 7 to type 'string'. Path 'tags.team'.",
        ),
    ],
)
def test_missing_required_wrong_enum_and_wrong_type_are_refused(emulator, body, path, sentence):
    response = put(emulator, STABLE, body)

    assert response.status_code == 400
    error = response.json()["error"]
    assert (error["code"], error["target"]) == ("InvalidRequestContent", path)
    assert error["message"] == f"The request content was invalid and could not be deserialized: '{sentence}'"
    assert error["details"][0] == {"code": "InvalidRequestContent", "target": path, "message": sentence}


def test_every_problem_is_listed_in_the_details(emulator):
    response = put(emulator, PREVIEW, {**endpoint(contentSafety={}, extra=1), "plan": {}})

    assert [detail["target"] for detail in response.json()["error"]["details"]] == [
        "plan",
        "properties.contentSafety",
        "properties.extra",
    ]


def test_subscription_regenerate_keys_and_connection_bodies_are_checked_too(emulator):
    arm, workspace = emulator.arm(), emulator.workspace_path()
    cohere = "azureml://registries/azureml-cohere/models/Cohere-command-r-08-2024"

    subscription = arm.request(
        "PUT", f"{workspace}/marketplaceSubscriptions/s", api_version=STABLE, body={"properties": {"model": cohere}}
    )
    put(emulator, STABLE, endpoint(authMode="Key"))
    regenerate = arm.request(
        "POST", f"{workspace}/serverlessEndpoints/ep/regenerateKeys", api_version=STABLE, body={"keyType": "Tertiary"}
    )
    closed_variant = arm.request(
        "PUT",
        f"{workspace}/connections/conn",
        api_version="2024-10-01",
        body={"properties": {"authType": "None", "category": "Serverless", "credentials": {"key": "k"}}},
    )

    assert [response.json()["error"]["target"] for response in (subscription, regenerate, closed_variant)] == [
        # 2026-07-01's schemas are open (no additionalProperties: false): `model` is allowed, `modelId` required.
        "properties.modelId",
        "keyType",
        "properties.credentials",
    ]
    assert "Required property 'modelId' not found in JSON" in subscription.json()["error"]["message"]
    assert "object of type 'NoneAuthTypeWorkspaceConnectionProperties'" in closed_variant.json()["error"]["message"]


def test_a_loose_scenario_accepts_what_the_schema_does_not_and_still_shows_the_versions_shape():
    with running_emulator(timings=FAST_TIMINGS, loose=True) as emulator:
        created = put(emulator, PREVIEW, endpoint(contentSafety={"contentSafetyStatus": "Disabled"}, extra=1))
        later = emulator.arm().request("GET", f"{emulator.workspace_path()}/serverlessEndpoints/ep", api_version=STABLE)

    assert created.status_code == 201
    assert "contentSafety" not in created.json()["properties"]
    assert "extra" not in created.json()["properties"]
    assert later.json()["properties"]["contentSafety"] == {"contentSafetyStatus": "Disabled"}


def test_loose_can_be_switched_on_for_a_running_emulator(emulator):
    body = endpoint(contentSafety={"contentSafetyStatus": "Enabled"})
    assert put(emulator, PREVIEW, body).status_code == 400

    emulator.admin.reset(loose=True)

    assert put(emulator, PREVIEW, body).status_code == 201


def test_the_cli_flag_makes_the_scenario_loose():
    assert scenario_document(parse_args(["--loose"]))["loose"] is True
    assert "loose" not in scenario_document(parse_args([]))
