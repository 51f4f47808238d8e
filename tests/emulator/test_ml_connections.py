"""Workspace connections, regenerateKeys answered 202, and a subscription serving every model of its offer."""

import pytest

from devstack.emulator.catalog import reference_models
from devstack.emulator.scenario import load_scenario_document
from devstack.emulator.testing import running_emulator

from .conftest import FAST_TIMINGS

API = "2024-10-01"
TARGET = "https://deepseek-r1-abcd.eastus2.models.ai.azure.com"


def connection_body(**properties) -> dict:
    return {
        "properties": {
            "category": "Serverless",
            "target": TARGET,
            "authType": "ApiKey",
            "credentials": {"key": "not-a-real-key-0123456789"},
            **properties,
        }
    }


def connection_path(emulator, name: str = "deepseek-r1") -> str:
    return f"{emulator.workspace_path('demo-project-westeurope')}/connections/{name}"


def test_a_connection_is_created_read_listed_and_deleted_without_ever_returning_its_key(emulator):
    arm = emulator.arm()

    created = arm.request("PUT", connection_path(emulator), api_version=API, body=connection_body())
    read = arm.request("GET", connection_path(emulator), api_version=API)
    listed = arm.request("GET", f"{emulator.workspace_path('demo-project-westeurope')}/connections", api_version=API)
    secrets = arm.request("POST", f"{connection_path(emulator)}/listsecrets", api_version=API)

    assert created.status_code == read.status_code == 200
    assert read.json()["id"] == connection_path(emulator)
    assert read.json()["type"] == "Microsoft.MachineLearningServices/workspaces/connections"
    assert read.json()["properties"] == {
        "category": "Serverless",
        "target": TARGET,
        "authType": "ApiKey",
        "metadata": {},
    }
    assert "not-a-real-key" not in created.text + read.text + listed.text
    assert [item["name"] for item in listed.json()["value"]] == ["deepseek-r1"]
    assert secrets.json()["properties"]["credentials"] == {"key": "not-a-real-key-0123456789"}
    assert arm.request("DELETE", connection_path(emulator), api_version=API).status_code == 200
    assert arm.request("DELETE", connection_path(emulator), api_version=API).status_code == 204
    assert arm.request("GET", connection_path(emulator), api_version=API).status_code == 404


@pytest.mark.parametrize(
    ("name", "body", "code"),
    [
        ("x", connection_body(), "InvalidConnectionName"),
        ("deepseek-r1", connection_body(credentials={}), "MissingCredentials"),
        ("deepseek-r1", connection_body(authType="PAT"), "InvalidAuthType"),
        ("deepseek-r1", {"properties": {"category": "Serverless", "authType": "None"}}, "InvalidConnectionProperties"),
    ],
)
def test_invalid_connections_are_refused(emulator, name, body, code):
    response = emulator.arm().request("PUT", connection_path(emulator, name), api_version=API, body=body)

    assert response.status_code == 400
    assert code in response.text


def test_writing_a_connection_needs_the_connections_write_action(emulator):
    reader = emulator.env["DEMO_READER_OBJECT_ID"]

    response = emulator.arm(reader).request("PUT", connection_path(emulator), api_version=API, body=connection_body())

    assert response.status_code == 403
    assert "Microsoft.MachineLearningServices/workspaces/connections/write" in response.json()["error"]["message"]


def test_regenerate_keys_answered_202_changes_the_key_only_when_the_operation_completes():
    with running_emulator(timings={**FAST_TIMINGS, "lroSeconds": None, "regenerateKeysAsync": True}) as emulator:
        endpoint = f"{emulator.workspace_path()}/serverlessEndpoints/ep-keys"
        arm = emulator.arm()
        body = {
            "location": "eastus2",
            "properties": {"modelSettings": {"modelId": "azureml://registries/azureml/models/Phi-4"}},
        }
        assert arm.request("PUT", endpoint, body=body).status_code == 201
        emulator.admin.complete_operations()
        before = arm.request("POST", f"{endpoint}/listKeys").json()

        accepted = arm.request("POST", f"{endpoint}/regenerateKeys", body={"keyType": "Secondary"})

        assert accepted.status_code == 202
        assert "mfeOperationResults" in accepted.headers["Location"]
        assert arm.request("POST", f"{endpoint}/listKeys").json() == before
        assert (
            arm.request("GET", accepted.headers["Azure-AsyncOperation"], api_version=None).json()["status"]
            == "InProgress"
        )
        emulator.admin.complete_operations()
        after = arm.request("POST", f"{endpoint}/listKeys").json()
        assert after["primaryKey"] == before["primaryKey"]
        assert after["secondaryKey"] != before["secondaryKey"]


def test_a_subscription_serves_every_model_of_its_offer():
    shared = {
        "requiresMarketplaceSubscription": True,
        "locations": ["eastus2"],
        "publisher": "contoso",
        "offer": "suite",
    }
    document = load_scenario_document()
    document["models"] = [
        *reference_models(),
        {"modelId": "azureml://registries/contoso-models/models/Alpha", **shared},
        {"modelId": "azureml://registries/contoso-models/models/Beta", **shared},
    ]
    with running_emulator(document, timings=FAST_TIMINGS) as emulator:
        workspace, arm = emulator.workspace_path(), emulator.arm()
        subscription = arm.request(
            "PUT",
            f"{workspace}/marketplaceSubscriptions/alpha-subscription",
            body={"properties": {"modelId": "azureml://registries/contoso-models/models/Alpha"}},
        )
        assert subscription.status_code == 201
        emulator.admin.complete_operations()

        second = arm.request(
            "PUT",
            f"{workspace}/marketplaceSubscriptions/beta-subscription",
            body={"properties": {"modelId": "azureml://registries/contoso-models/models/Beta"}},
        )
        beta = arm.request(
            "PUT",
            f"{workspace}/serverlessEndpoints/beta",
            body={
                "location": "eastus2",
                "properties": {"modelSettings": {"modelId": "azureml://registries/contoso-models/models/Beta"}},
            },
        )

        assert second.status_code == 409
        assert "MarketplaceSubscriptionAlreadyExists" in second.text
        assert beta.status_code == 201
        emulator.admin.complete_operations()
        linked = arm.request("GET", f"{workspace}/serverlessEndpoints/beta").json()["properties"]
        assert linked["marketplaceSubscriptionId"] == subscription.json()["id"]
