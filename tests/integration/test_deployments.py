"""Deployment requests end to end through the local host, Azurite and the emulator (no mocked SDKs)."""

from __future__ import annotations

import base64
import json
import uuid
from concurrent.futures import ThreadPoolExecutor

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
    assert response.headers["Location"].endswith(f"/api/deployments/{accepted['deploymentId']}")
    assert response.headers["Operation-Location"].endswith(f"/api/runs/{accepted['id']}")

    run = broker.wait_for_run(accepted["id"])

    assert run["status"] == "Succeeded", run
    statuses = [step["status"] for step in run["steps"]]
    assert ("Subscribing" in statuses) is subscribes
    assert statuses[-3:] == ["StoringKeys", "Verifying", "Succeeded"]
    keys = _keys(broker, workspace_id, run["endpoint"]["name"])
    assert _secret_values(broker, run) == (keys["primaryKey"], keys["secondaryKey"])
    assert keys["primaryKey"] not in response.text + str(run)


def test_queue_request_is_answered_by_a_succeeded_event_carrying_the_ticket(broker):
    ticket = f"INC-{uuid.uuid4().hex[:8]}"
    broker.send_request_message(
        {
            "workspaceId": broker.workspace_id(),
            "modelId": "azureml://registries/azureml/models/Phi-4",
            "requestedBy": broker.requester,
            "ticket": ticket,
        }
    )

    events = broker.events(
        until=lambda seen: any(e["type"].endswith(".succeeded") and e["data"]["ticket"] == ticket for e in seen)
    )

    mine = [event for event in events if event["data"]["ticket"] == ticket]
    assert [event["type"].rsplit(".", 1)[-1] for event in mine] == ["accepted", "succeeded"]
    succeeded = mine[-1]
    assert succeeded["specversion"] == "1.0"
    assert succeeded["subject"] == succeeded["data"]["runId"]
    assert succeeded["data"]["scoringUri"].startswith("https://")
    assert set(succeeded["data"]["secretIds"]) == {"primary", "secondary"}


def test_a_malformed_queue_message_is_poisoned_with_a_rejected_event(broker):
    ticket = f"INC-{uuid.uuid4().hex[:8]}"
    body = {"workspaceId": "not-a-workspace", "modelId": DEEPSEEK, "requestedBy": broker.requester, "ticket": ticket}
    broker.send_request_message(body)

    events = broker.events(until=lambda seen: any(e["data"]["ticket"] == ticket for e in seen))

    [rejected] = [event for event in events if event["data"]["ticket"] == ticket]
    assert rejected["type"].endswith(".rejected")
    assert "workspaceId" in rejected["data"]["error"]["message"]
    poison = broker.queue(f"{broker.requests_queue}-poison").peek_messages(max_messages=32)
    assert json.loads(base64.b64decode(poison[-1].content))["ticket"] == ticket


def test_reader_is_forbidden_and_the_rejection_is_recorded(broker):
    response = broker.call(
        "POST",
        "/api/deployments",
        caller=broker.reader,
        json={"workspaceId": broker.workspace_id(), "modelId": "azureml://registries/azureml/models/Phi-4-reasoning"},
    )

    assert response.status_code == 403
    assert response.headers["Content-Type"].startswith("application/problem+json")
    problem = response.json()
    assert problem["type"].endswith("/requester-forbidden")
    assert broker.reader in problem["detail"]
    assert "Azure AI Developer" in problem["detail"]
    run = broker.run(problem["runId"])
    assert run["status"] == "Rejected"
    assert run["error"]["code"] == "requester-forbidden"


def test_region_without_the_model_is_rejected_naming_the_regions_that_offer_it(broker):
    broker_identity = broker.emulator.env["DEMO_BROKER_OBJECT_ID"]
    response = broker.call(
        "POST",
        "/api/deployments",
        caller=broker_identity,
        json={"workspaceId": broker.workspace_id("demo-project-westeurope"), "modelId": COHERE},
    )

    assert response.status_code == 422
    problem = response.json()
    assert problem["type"].endswith("/region-unsupported")
    assert problem["workspaceLocation"] == "westeurope"
    assert "eastus2" in problem["supportedRegions"]
    assert "eastus2" in problem["detail"]


def test_an_endpoint_for_the_same_model_made_elsewhere_is_a_conflict(broker):
    workspace_id = broker.workspace_id()
    model = "azureml://registries/azureml/models/Phi-4-mini-instruct"
    made = broker.emulator.arm().request(
        "PUT",
        f"{workspace_id}/serverlessEndpoints/hand-made-phi",
        body={
            "location": "eastus2",
            "sku": {"name": "Consumption"},
            "properties": {"modelSettings": {"modelId": model}},
        },
    )
    assert made.status_code in (200, 201), made.text

    response = broker.call(
        "POST", "/api/deployments", caller=broker.requester, json={"workspaceId": workspace_id, "modelId": model}
    )

    assert response.status_code == 409
    problem = response.json()
    assert problem["type"].endswith("/deployment-conflict")
    assert problem["existingEndpoint"] == "hand-made-phi"


def test_same_idempotency_key_returns_the_same_run(broker):
    body = {"workspaceId": broker.workspace_id(), "modelId": "azureml://registries/azureml-mistral/models/Ministral-3B"}
    headers = {"Idempotency-Key": uuid.uuid4().hex}

    first = broker.call("POST", "/api/deployments", caller=broker.requester, json=body, headers=headers)
    second = broker.call("POST", "/api/deployments", caller=broker.requester, json=body, headers=headers)

    assert first.status_code == 202
    assert second.status_code == 200
    assert second.json()["id"] == first.json()["id"]
    assert broker.wait_for_run(first.json()["id"])["status"] == "Succeeded"


def test_the_same_queue_message_delivered_twice_makes_one_run(broker):
    ticket = f"INC-{uuid.uuid4().hex[:8]}"
    message = {
        "workspaceId": broker.workspace_id(),
        "modelId": "azureml://registries/azureml-nixtla/models/TimeGEN-1",
        "requestedBy": broker.requester,
        "ticket": ticket,
    }
    broker.send_request_message(message)
    broker.send_request_message(message)

    broker.events(
        until=lambda seen: any(e["type"].endswith(".succeeded") and e["data"]["ticket"] == ticket for e in seen)
    )

    runs = broker.runs(ticket=ticket)
    assert len(runs) == 1
    assert runs[0]["status"] == "Succeeded"


def test_twenty_concurrent_identical_requests_make_one_endpoint_and_one_subscription(broker):
    workspace_id = broker.workspace_id()
    model = "azureml://registries/azureml-mistral/models/Codestral-2501"
    body = {"workspaceId": workspace_id, "modelId": model}

    with ThreadPoolExecutor(max_workers=20) as pool:
        responses = list(
            pool.map(lambda _: broker.call("POST", "/api/deployments", caller=broker.requester, json=body), range(20))
        )

    assert {response.status_code for response in responses} <= {200, 202}
    # Every request joined the one run, or (arriving after it ended) was answered by the Ready deployment.
    run_ids = {response.headers["Operation-Location"] for response in responses if response.status_code == 202}
    assert len(run_ids) == 1
    assert broker.wait_for_run(run_ids.pop().rsplit("/", 1)[-1])["status"] == "Succeeded"
    arm = broker.emulator.arm()
    endpoints = arm.request("GET", f"{workspace_id}/serverlessEndpoints").json()["value"]
    subscriptions = arm.request("GET", f"{workspace_id}/marketplaceSubscriptions").json()["value"]
    assert len([e for e in endpoints if e["properties"]["modelSettings"]["modelId"] == model]) == 1
    assert len([s for s in subscriptions if s["properties"]["modelId"] == model]) == 1


def test_throttling_and_unavailability_bursts_are_survived(broker):
    admin = broker.emulator.admin
    admin.add_fault(pathRegex="/serverlessEndpoints/", method="PUT", status=429, retryAfter=1, count=3)
    admin.add_fault(pathRegex="/serverlessEndpoints/", method="GET", status=503, retryAfter=1, count=3)
    try:
        response = broker.call(
            "POST",
            "/api/deployments",
            caller=broker.requester,
            json={"workspaceId": broker.workspace_id(), "modelId": "azureml://registries/azureml/models/MAI-DS-R1"},
        )
        assert response.status_code == 202, response.text
        run = broker.wait_for_run(response.json()["id"], timeout=90)
        fired = [rule["hits"] for rule in admin.call("GET", "/faults")]
    finally:
        admin.clear_faults()

    assert run["status"] == "Succeeded", run
    assert fired == [3, 3]
