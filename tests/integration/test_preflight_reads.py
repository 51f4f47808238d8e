"""How many ARM reads a POST /api/deployments costs before the broker answers, counted in the emulator's request log.

A new request is checked in full; one that joins a deployment in flight, or finds it Ready, authorizes its caller
and nothing else that Azure must answer. Counts, not times: speed belongs in `make bench`.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from devstack.emulator.scenario import load_scenario_document
from devstack.emulator.testing import running_emulator

from .conftest import Broker, broker_on, until

pytestmark = pytest.mark.integration

COHERE = "azureml://registries/azureml-cohere/models/Cohere-command-r-08-2024"
MISTRAL = "azureml://registries/azureml-mistral/models/Mistral-small-2503"
CO_REQUESTER = "0c9b8a7d-6e5f-4a3b-9c2d-1e0f9a8b7c6d"
# Operations finish only when the test says so: the first run is still in flight when the second caller joins, and
# no worker reads the workspace (before it provisions an endpoint) while a POST is counted. Hence Marketplace models.
NEVER = 3600.0


def _scenario() -> dict[str, Any]:
    """The demo scenario with a second user who may deploy into demo-project."""
    document = load_scenario_document(None)
    workspace = (
        f"/subscriptions/{document['subscriptions'][0]['subscriptionId']}/resourceGroups/rg-demo/providers/"
        "Microsoft.MachineLearningServices/workspaces/demo-project"
    )
    document["principals"].append(
        {
            "objectId": CO_REQUESTER,
            "displayName": "co-requester",
            "type": "User",
            "clientId": "7a6b5c4d-3e2f-4a1b-8c9d-0e1f2a3b4c5d",
            "clientSecret": "dev-only-co-requester-secret",
        }
    )
    document["roleAssignments"].append(
        {"principalId": CO_REQUESTER, "roleName": "Azure AI Developer", "scope": workspace}
    )
    return document


def _is_preflight_read(entry: dict[str, Any]) -> bool:
    """A read only preflight makes: Microsoft.Authorization, the workspace itself, or its endpoint list (the worker
    reads single endpoints, subscriptions and operations)."""
    if entry["method"] != "GET" or not entry["route"].startswith("arm:"):
        return False
    path = entry["path"].rstrip("/").lower()
    return (
        "/providers/microsoft.authorization/" in path
        or path.endswith("/serverlessendpoints")
        or path.rsplit("/", 2)[-2] == "workspaces"
    )


@pytest.fixture(scope="module")
def broker(azurite, tmp_path_factory) -> Iterator[Broker]:
    log_dir = tmp_path_factory.mktemp("preflight-reads")
    with (
        running_emulator(_scenario(), timings={"lroSeconds": NEVER, "retryAfterMs": 300}) as emulator,
        broker_on(emulator, azurite.connection_string, log_dir / "host.log") as broker,
    ):
        yield broker


def _post(broker: Broker, caller: str, model_id: str) -> tuple[Any, list[str]]:
    """POST a deployment as `caller`; the answer and the preflight reads the emulator served for it."""
    broker.emulator.admin.clear_requests()
    response = broker.call(
        "POST",
        "/api/deployments",
        caller=caller,
        json={"workspaceId": broker.workspace_id(), "modelId": model_id, "ticket": f"R-{uuid.uuid4().hex[:6]}"},
    )
    entries = broker.emulator.admin.requests(limit=10_000)["entries"]
    return response, [entry["path"] for entry in entries if _is_preflight_read(entry)]


def _finish(broker: Broker, run_id: str) -> dict[str, Any]:
    """Complete the emulator's operations until the run ends."""

    def ended() -> dict[str, Any] | None:
        broker.emulator.admin.complete_operations()
        run = broker.run(run_id)
        return run if run["status"] in ("Succeeded", "Failed") else None

    return until(ended, timeout=60)


@pytest.fixture(scope="module")
def reads(broker: Broker) -> dict[str, list[str]]:
    """The preflight reads of each kind of POST, in the order a process meets them."""
    first, first_reads = _post(broker, broker.requester, COHERE)
    assert first.status_code == 202, first.text
    another, another_reads = _post(broker, broker.requester, MISTRAL)
    assert another.status_code == 202, another.text
    joined, join_reads = _post(broker, CO_REQUESTER, COHERE)
    assert joined.status_code == 202, joined.text
    assert joined.json()["id"] == first.json()["id"], "the second caller joins the run in flight"
    for run in (first, another):
        assert _finish(broker, run.json()["id"])["status"] == "Succeeded"
    ready, ready_reads = _post(broker, CO_REQUESTER, COHERE)
    assert ready.status_code == 200, ready.text
    return {"first": first_reads, "another": another_reads, "join": join_reads, "ready": ready_reads}


def test_the_first_request_of_a_process_is_checked_in_full(reads):
    # The broker's roles at the resource group and permissions at the workspace, the requester's role assignments,
    # their role definition and the workspace's deny assignments, the workspace, its endpoints. (Before: 12.)
    assert len(reads["first"]) <= 7, reads["first"]


def test_a_new_request_costs_at_most_four_reads(reads):
    # What the first request read about the broker and the requester is still fresh: the workspace and its endpoints.
    assert len(reads["another"]) <= 4, reads["another"]


def test_joining_a_deployment_in_flight_costs_at_most_one_read(reads):
    # A caller never seen before: their role assignments; role definitions and deny assignments are the scope's.
    assert len(reads["join"]) <= 1, reads["join"]
    assert all(path.endswith("/roleAssignments") for path in reads["join"])


def test_a_ready_answer_costs_at_most_one_preflight_read(reads):
    assert len(reads["ready"]) <= 1, reads["ready"]
