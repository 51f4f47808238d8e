"""Deployments as reconciled resources, end to end through the local host, Azurite and the emulator (no mocked SDKs):
what happens the second time a request arrives, joins, repairs or deletes."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from azure.keyvault.secrets import SecretClient

from devstack.emulator.testing import running_emulator

from .conftest import Broker, broker_on, until

pytestmark = pytest.mark.integration

COHERE = "azureml://registries/azureml-cohere/models/Cohere-command-r-08-2024"
COHERE_SUBSCRIPTION = "Cohere-command-r-08-2024-subscription"
MISTRAL = "azureml://registries/azureml-mistral/models/Mistral-small-2503"
PHI = "azureml://registries/azureml/models/Phi-4-mini-reasoning"


@pytest.fixture(scope="module")
def broker(azurite, tmp_path_factory) -> Iterator[Broker]:
    """Hygiene scans this broker's demo project at once (no grace window for endpointState)."""
    log_dir = tmp_path_factory.mktemp("reconcile")
    with (
        running_emulator(timings={"lroSeconds": 1.0, "retryAfterMs": 300}) as emulator,
        broker_on(
            emulator,
            azurite.connection_string,
            log_dir / "host.log",
            HYGIENE_WORKSPACES=emulator.workspace_path("demo-project"),
            HYGIENE_ENDPOINT_STATE_GRACE_MINUTES="0",
        ) as broker,
    ):
        yield broker


def _post(broker: Broker, model_id: str, **fields: Any) -> Any:
    body = {"workspaceId": broker.workspace_id(), "modelId": model_id, **fields}
    return broker.call("POST", "/api/deployments", caller=broker.requester, json=body)


def _deployed(broker: Broker, model_id: str, **fields: Any) -> dict[str, Any]:
    response = _post(broker, model_id, **fields)
    assert response.status_code == 202, response.text
    run = broker.wait_for_run(response.json()["id"])
    assert run["status"] == "Succeeded", run
    return broker.deployment(run["deploymentId"])


def _conditions(deployment: dict[str, Any]) -> dict[str, tuple[str, str]]:
    return {item["type"]: (item["status"], item["reason"]) for item in deployment["status"]["conditions"]}


def _secret_versions(broker: Broker, secret_id: str) -> int:
    client = SecretClient(
        broker.emulator.vault_url,
        broker.emulator.credential(),
        verify_challenge_resource=False,
        connection_verify=broker.emulator.ca_bundle,
    )
    name = secret_id.split("/secrets/")[1].split("/", maxsplit=1)[0]
    return len(list(client.list_properties_of_secret_versions(name)))


def _scan(broker: Broker) -> dict[str, Any]:
    before = broker.call("GET", "/api/hygiene/report")
    previous = before.json().get("scanId") if before.status_code == 200 else None
    broker.invoke("hygiene_scan")
    return until(
        lambda: (
            (reply := broker.call("GET", "/api/hygiene/report")).status_code == 200
            and reply.json()["scanId"] != previous
            and reply.json()
        )
    )


def test_a_ready_deployment_requested_again_is_answered_as_it_is_with_nothing_written(broker):
    deployment = _deployed(broker, MISTRAL, ticket="FIRST-1")
    runs_before = broker.runs(deploymentId=deployment["id"])
    versions_before = _secret_versions(broker, deployment["status"]["secretIds"]["primary"])
    broker.emulator.admin.clear_requests()

    again = _post(broker, MISTRAL, ticket="AGAIN-2")

    assert again.status_code == 200, again.text
    body = again.json()
    assert body["id"] == deployment["id"]
    assert body["status"]["phase"] == "Ready"
    assert again.headers["Location"].endswith(f"/api/deployments/{deployment['id']}")
    assert [request["ticket"] for request in body["requests"]] == ["FIRST-1", "AGAIN-2"]
    assert body["requests"][-1]["outcome"] == "ready"
    assert broker.runs(deploymentId=deployment["id"]) == runs_before
    assert _secret_versions(broker, deployment["status"]["secretIds"]["primary"]) == versions_before
    assert broker.azure_writes() == []


def test_a_different_endpoint_name_for_the_same_model_is_a_conflict_naming_the_deployment(broker):
    deployment = _deployed(broker, PHI)

    response = _post(broker, PHI, endpointName="another-phi")

    assert response.status_code == 409
    problem = response.json()
    assert problem["type"].endswith("/deployment-conflict")
    assert problem["deploymentId"] == deployment["id"]
    assert problem["differences"] == ["endpointName"]
    assert f"DELETE /api/deployments/{deployment['id']}" in problem["detail"]


def test_a_deleted_subscription_is_found_by_hygiene_repaired_by_a_repost_and_resolved_by_the_next_scan(broker):
    deployment = _deployed(broker, COHERE, ticket="INC-COHERE")
    broker.emulator.admin.subscription_action("delete", "demo-project", COHERE_SUBSCRIPTION)

    _scan(broker)

    degraded = broker.deployment(deployment["id"])
    assert degraded["status"]["phase"] == "Degraded"
    assert _conditions(degraded)["Healthy"] == ("False", "SubscriptionMissing")
    findings = broker.call(
        "GET", "/api/hygiene/findings", params={"rule": "endpoint-unhealthy", "state": "open"}
    ).json()["value"]
    [finding] = [item for item in findings if item["deploymentId"] == deployment["id"]]
    assert finding["runId"] == deployment["status"]["keysRunId"]
    assert finding["tickets"] == ["INC-COHERE"]
    assert f"/api/deployments/{deployment['id']}/repair" in finding["recommendedAction"]

    repair = _post(broker, COHERE, ticket="INC-COHERE-FIX")

    assert repair.status_code == 202, repair.text
    run = broker.wait_for_run(repair.json()["id"])
    assert run["status"] == "Succeeded", run
    assert run["operation"] == "repair"
    assert "Subscribing" in [step["status"] for step in run["steps"]]
    repaired = broker.deployment(deployment["id"])
    assert repaired["status"]["phase"] == "Ready"
    assert set(_conditions(repaired).values()) <= {
        ("True", reason) for reason in ("Subscribed", "Provisioned", "Stored", "Online")
    }
    endpoint = broker.emulator.arm().request("GET", repaired["status"]["endpoint"]["id"]).json()
    assert endpoint["properties"]["endpointState"] == "Online"

    _scan(broker)

    resolved = broker.call("GET", "/api/hygiene/findings", params={"rule": "endpoint-unhealthy"}).json()["value"]
    assert [item["state"] for item in resolved if item["deploymentId"] == deployment["id"]] == ["resolved"]


def test_deleting_twice_makes_one_delete_run_and_one_deleted_event(broker):
    deployment = _deployed(broker, "azureml://registries/azureml-meta/models/Llama-3.3-70B-Instruct")

    first = broker.call("DELETE", f"/api/deployments/{deployment['id']}", caller=broker.requester)
    assert first.status_code == 202, first.text
    delete_run = broker.wait_for_run(first.json()["id"])
    assert delete_run["status"] == "Deleted", delete_run
    second = broker.call("DELETE", f"/api/deployments/{deployment['id']}", caller=broker.requester)

    assert second.status_code == 200, second.text
    assert second.json()["status"]["phase"] == "Deleted"
    assert second.json()["status"]["deleteRunId"] == delete_run["id"]
    assert second.headers["Operation-Location"].endswith(f"/api/runs/{delete_run['id']}")
    deletes = [run for run in broker.runs(deploymentId=deployment["id"]) if run["operation"] == "delete"]
    assert [run["id"] for run in deletes] == [delete_run["id"]]
    events = broker.events(timeout=3)
    deleted = [e for e in events if e["type"].endswith(".deleted") and e["data"]["deploymentId"] == deployment["id"]]
    assert len(deleted) == 1


def test_twenty_concurrent_deletes_make_one_delete_run(broker):
    deployment = _deployed(broker, "azureml://registries/azureml-meta/models/Meta-Llama-3.1-8B-Instruct")
    path = f"/api/deployments/{deployment['id']}"

    with ThreadPoolExecutor(max_workers=20) as pool:
        responses = list(pool.map(lambda _: broker.call("DELETE", path, caller=broker.requester), range(20)))

    assert {response.status_code for response in responses} <= {200, 202}, [r.text for r in responses]
    run_ids = {response.headers["Operation-Location"].rsplit("/", 1)[-1] for response in responses}
    assert len(run_ids) == 1
    assert broker.wait_for_run(run_ids.pop())["status"] == "Deleted"
    assert len([run for run in broker.runs(deploymentId=deployment["id"]) if run["operation"] == "delete"]) == 1


def test_ten_queue_messages_for_one_model_make_one_endpoint_and_answer_every_ticket(broker):
    model = "azureml://registries/azureml-stabilityai/models/Stable-Image-Core"
    tickets = [f"TKT-{uuid.uuid4().hex[:6]}-{n}" for n in range(10)]
    for ticket in tickets:
        broker.send_request_message(
            {"workspaceId": broker.workspace_id(), "modelId": model, "requestedBy": broker.requester, "ticket": ticket}
        )

    def answered(seen: list[dict[str, Any]]) -> bool:
        terminal = {e["data"]["ticket"] for e in seen if not e["type"].endswith(".accepted")}
        return set(tickets) <= terminal

    events = broker.events(timeout=90, until=answered)

    for ticket in tickets:
        mine = [e["type"].rsplit(".", 1)[-1] for e in events if e["data"]["ticket"] == ticket]
        assert sorted(mine) == ["accepted", "succeeded"], (ticket, mine)
        assert len(broker.runs(ticket=ticket)) == 1
    assert len({e["id"] for e in events}) == len(events)
    endpoints = broker.emulator.arm().request("GET", f"{broker.workspace_id()}/serverlessEndpoints").json()["value"]
    assert len([e for e in endpoints if e["properties"]["modelSettings"]["modelId"] == model]) == 1


def test_a_mistyped_model_is_rejected_with_the_right_suggestion_before_any_azure_write(broker):
    broker.emulator.admin.clear_requests()

    response = _post(broker, "azureml://registries/azureml-cohere/models/Cohere-comand-r-08-2024")

    assert response.status_code == 422
    problem = response.json()
    assert problem["type"].endswith("/model-unknown")
    assert problem["suggestions"][0] == COHERE
    assert broker.azure_writes() == []


def test_teardown_then_a_new_request_makes_a_fresh_ready_deployment(broker):
    model = "azureml://registries/azureml/models/Phi-4-multimodal-instruct"
    deployment = _deployed(broker, model)
    deleted = broker.call("DELETE", f"/api/deployments/{deployment['id']}", caller=broker.requester)
    assert broker.wait_for_run(deleted.json()["id"])["status"] == "Deleted"

    again = _post(broker, model)

    assert again.status_code == 202, again.text
    run = broker.wait_for_run(again.json()["id"])
    assert run["status"] == "Succeeded", run
    assert run["operation"] == "deploy"
    fresh = broker.deployment(deployment["id"])
    assert fresh["status"]["phase"] == "Ready"
    assert fresh["status"]["currentRunId"] == run["id"]
    assert fresh["status"]["deleteRunId"] is None
