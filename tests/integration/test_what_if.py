"""POST /api/deployments/what-if through the local host with Easy Auth: what a request would do, and proof from the
emulator's request log and Azurite's contents that answering it wrote nothing anywhere."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import pytest
from azure.core.exceptions import ResourceNotFoundError
from azure.data.tables import TableClient
from azure.storage.queue import QueueClient

from devstack.emulator.testing import running_emulator

from .conftest import Broker, broker_on, until

pytestmark = pytest.mark.integration

COHERE = "azureml://registries/azureml-cohere/models/Cohere-command-r-08-2024"
COHERE_PLUS = "azureml://registries/azureml-cohere/models/Cohere-command-r-plus-08-2024"
DEEPSEEK = "azureml://registries/azureml-deepseek/models/DeepSeek-R1"  # not offered in westeurope
# Azure never finishes an operation here, and a waiting run looks again only after ten minutes (the watchdog later
# still): the deployment made first stays in flight, and nothing the worker does moves a table row or a queue
# message while a what-if is answered.
NEVER = 3600.0
QUIET = {
    "BROKER_POLL_SECONDS": "600",
    "BROKER_POLL_MAX_SECONDS": "600",
    "WATCHDOG_STALL_SECONDS": "7200",
}


@pytest.fixture(scope="module")
def broker(azurite, tmp_path_factory) -> Iterator[Broker]:
    with (
        running_emulator(timings={"lroSeconds": NEVER, "retryAfterMs": 300}) as emulator,
        broker_on(
            emulator,
            azurite.connection_string,
            tmp_path_factory.mktemp("what-if") / "host.log",
            **QUIET,
        ) as broker,
    ):
        yield broker


def _queue_names(broker: Broker) -> list[str]:
    env = broker.host.env
    requests_queue = env["DEPLOYMENT_REQUESTS_QUEUE"]
    return [requests_queue, f"{requests_queue}-poison", env["DEPLOYMENT_WORK_QUEUE"], broker.events_queue]


def _message_count(broker: Broker, name: str) -> int | None:
    try:
        return QueueClient.from_connection_string(broker.storage, name).get_queue_properties().approximate_message_count
    except ResourceNotFoundError:
        return None


def _storage(broker: Broker) -> tuple[str, dict[str, int | None]]:
    """Every entity of the runs table with its ETag, and each queue's message count (None: no such queue)."""
    table = TableClient.from_connection_string(broker.storage, broker.host.env["DEPLOYMENT_RUNS_TABLE"])
    entities = sorted(
        ({**entity, "etag": entity.metadata["etag"]} for entity in table.list_entities()),
        key=lambda entity: (entity["PartitionKey"], entity["RowKey"]),
    )
    return json.dumps(entities, default=str), {name: _message_count(broker, name) for name in _queue_names(broker)}


@pytest.fixture(scope="module")
def in_flight(broker: Broker) -> dict[str, Any]:
    """A Marketplace deployment of COHERE whose run waits on its subscription: it can be joined, and is quiet."""
    response = broker.call(
        "POST",
        "/api/deployments",
        caller=broker.requester,
        json={"workspaceId": broker.workspace_id(), "modelId": COHERE, "ticket": "WHAT-IF-1"},
    )
    assert response.status_code == 202, response.text
    until(lambda: broker.emulator.admin.operations(pending=True))
    work_queue = broker.host.env["DEPLOYMENT_WORK_QUEUE"]
    until(lambda: _message_count(broker, work_queue) == 1)
    time.sleep(2)  # the step's own message is completed just after the delayed one is sent
    assert _message_count(broker, work_queue) == 1
    return response.json()


def _what_if(broker: Broker, caller: str, **body: Any) -> dict[str, Any]:
    """The what-if answer, asserting that nothing was written: no ARM or Key Vault write (listKeys included) and no
    event published in the emulator's log, and the runs table's entities and the queues' message counts as they were."""
    broker.token(caller)  # signed in before the log is cleared
    before = _storage(broker)
    assert json.loads(before[0]), "the deployment in flight has its rows"
    broker.emulator.admin.clear_requests()

    response = broker.call("POST", "/api/deployments/what-if", caller=caller, json=body)

    assert response.status_code == 200, response.text
    entries = broker.emulator.admin.requests(limit=10_000)["entries"]
    assert broker.azure_writes() == []
    assert broker.published_events() == 0, "what-if announces nothing either"
    assert not [entry for entry in entries if entry["path"].endswith("/listKeys")]
    assert _storage(broker) == before
    return response.json()


def _outcomes(answer: dict[str, Any]) -> dict[str, str]:
    return {check["name"]: check["outcome"] for check in answer["checks"]}


def test_an_allowed_request_lists_its_checks_and_the_writes_it_would_make(broker, in_flight):
    answer = _what_if(broker, broker.requester, workspaceId=broker.workspace_id(), modelId=DEEPSEEK)

    assert (answer["verdict"], answer["outcome"]) == ("allowed", "create")
    assert set(_outcomes(answer).values()) == {"passed"}
    assert len(answer["checks"]) == 8
    assert [step["action"] for step in answer["plan"]] == ["createEndpoint", "storeSecret", "storeSecret"]
    endpoint = answer["plan"][0]
    assert endpoint["target"].startswith(broker.workspace_id() + "/serverlessEndpoints/")
    assert (endpoint["location"], endpoint["contentSafety"]) == ("eastus2", "Enabled")
    assert answer["limits"]["tokensPerMinute"] == 200_000
    assert answer["limits"]["requestsPerMinute"] == 1_000
    assert answer["limits"]["deploymentsPerModelPerProject"] == 1


def test_a_rejected_request_lists_every_failing_check(broker, in_flight):
    answer = _what_if(
        broker, broker.reader, workspaceId=broker.workspace_id("demo-project-westeurope"), modelId=DEEPSEEK
    )

    assert (answer["verdict"], answer["outcome"]) == ("rejected", "rejected")
    failed = {check["name"]: check["problem"]["slug"] for check in answer["checks"] if check["outcome"] == "failed"}
    assert failed == {"requester-permission": "requester-forbidden", "region-supported": "region-unsupported"}
    region = next(check for check in answer["checks"] if check["name"] == "region-supported")
    assert "westeurope" in region["detail"]
    assert _outcomes(answer)["one-deployment-per-model"] == "skipped"
    assert answer["plan"] == []


def test_a_marketplace_model_is_planned_with_its_offer(broker, in_flight):
    answer = _what_if(broker, broker.requester, workspaceId=broker.workspace_id(), modelId=COHERE_PLUS)

    assert answer["outcome"] == "create"
    subscribe = answer["plan"][0]
    assert (subscribe["action"], subscribe["write"]) == ("subscribe", "always")
    assert subscribe["target"].startswith(broker.workspace_id() + "/marketplaceSubscriptions/")
    assert subscribe["offer"]["modelId"] == COHERE_PLUS
    assert subscribe["offer"]["publisher"] == "cohere"
    assert "billed through Marketplace" in subscribe["description"]
    assert [step["action"] for step in answer["plan"][1:]] == ["createEndpoint", "storeSecret", "storeSecret"]


def test_a_request_for_the_deployment_in_flight_would_join_its_run(broker, in_flight):
    answer = _what_if(broker, broker.requester, workspaceId=broker.workspace_id(), modelId=COHERE)

    assert (answer["verdict"], answer["outcome"]) == ("allowed", "join")
    assert answer["deploymentId"] == in_flight["deploymentId"]
    assert answer["run"] == {"id": in_flight["id"], "operation": "deploy", "status": "Subscribing"}
    assert [(step["action"], step["write"], step["target"]) for step in answer["plan"]] == [
        ("joinRun", "none", in_flight["id"])
    ]
    assert _outcomes(answer)["broker-permissions"] == "notNeeded"


def test_an_anonymous_caller_is_challenged(broker):
    response = broker.call(
        "POST",
        "/api/deployments/what-if",
        headers={"Authorization": "Bearer not-a-token"},
        json={"workspaceId": broker.workspace_id(), "modelId": DEEPSEEK},
    )

    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
