"""Deployment requests end to end through the local host, Azurite and the emulator (no mocked SDKs)."""

from __future__ import annotations

import uuid

import pytest
from azure.keyvault.secrets import SecretClient

pytestmark = pytest.mark.integration

DEEPSEEK = "azureml://registries/azureml-deepseek/models/DeepSeek-R1"
COHERE = "azureml://registries/azureml-cohere/models/Cohere-command-r-08-2024"


def _secret_values(broker, run) -> tuple[str, str]:
    client = SecretClient(
        broker.emulator.vault_url,
        broker.emulator.credential(),
        verify_challenge_resource=False,
        connection_verify=broker.emulator.ca_bundle,
    )
    ids = run["secretIds"]
    return (
        client.get_secret(ids["primary"].split("/secrets/")[1].split("/")[0]).value,
        client.get_secret(ids["secondary"].split("/secrets/")[1].split("/")[0]).value,
    )


def _keys(broker, workspace_id: str, endpoint: str) -> dict:
    response = broker.emulator.arm().request("POST", f"{workspace_id}/serverlessEndpoints/{endpoint}/listKeys")
    return response.json()


@pytest.mark.parametrize(
    ("model_id", "subscribes"),
    [(COHERE, True), (DEEPSEEK, False)],
    ids=["marketplace-model", "sold-directly-model"],
)
def test_http_request_reaches_succeeded_with_keys_in_key_vault(broker, model_id, subscribes):
    workspace_id = broker.workspace_id()
    response = broker.call(
        "POST",
        "/api/deployments",
        caller=broker.requester,
        json={"workspaceId": workspace_id, "modelId": f"{model_id}/versions/3", "ticket": f"T-{uuid.uuid4().hex[:6]}"},
    )

    assert response.status_code == 202, response.text
    accepted = response.json()
    assert response.headers["Location"] == f"/api/deployments/{accepted['id']}"
    assert response.headers["Operation-Location"].endswith(f"/api/deployments/{accepted['id']}")

    run = broker.wait_for_run(accepted["id"])

    assert run["status"] == "Succeeded", run
    statuses = [step["status"] for step in run["steps"]]
    assert ("Subscribing" in statuses) is subscribes
    assert statuses[-2:] == ["StoringKeys", "Succeeded"]
    keys = _keys(broker, workspace_id, run["endpoint"]["name"])
    assert _secret_values(broker, run) == (keys["primaryKey"], keys["secondaryKey"])
    assert keys["primaryKey"] not in response.text + str(run)
