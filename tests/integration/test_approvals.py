"""Approvals end to end: the local host with approvals on, Easy Auth tokens for the demo principals, Azurite and the
emulator. A Marketplace request waits in PendingApproval with nothing written to Azure until the approver decides,
or until its approval expires and the watchdog rejects it; every event carries the request's ticket."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from devstack.emulator.testing import EmulatorHandle, running_emulator
from tests.integration.conftest import TERMINAL, Broker, broker_on, start_broker_host, until

pytestmark = pytest.mark.integration

NEVER = "0 0 0 1 1 *"  # the watchdog runs only when a test invokes it
PROBLEMS = "https://contoso.com/problems/deployment-broker/"
EVENT_PREFIX = "com.contoso.broker.deployment."
COHERE = "azureml://registries/azureml-cohere/models/Cohere-command-r-08-2024"
COHERE_PLUS = "azureml://registries/azureml-cohere/models/Cohere-command-r-plus-08-2024"
RERANK = "azureml://registries/azureml-cohere/models/Cohere-rerank-v3.5"
LLAMA = "azureml://registries/azureml-meta/models/Meta-Llama-3.1-8B-Instruct"
# About 1.8 s: long enough for the request to be answered waiting, short enough to expire within the test.
TINY_EXPIRY_HOURS = "0.0005"


@pytest.fixture(scope="module")
def emulator() -> Iterator[EmulatorHandle]:
    with running_emulator(timings={"lroSeconds": 0.5, "retryAfterMs": 200}) as handle:
        yield handle


@pytest.fixture(scope="module")
def broker(azurite, emulator, tmp_path_factory) -> Iterator[Broker]:
    log = tmp_path_factory.mktemp("approvals") / "host.log"
    with broker_on(
        emulator, azurite.connection_string, log, BROKER_APPROVALS_ENABLED="true", WATCHDOG_SCHEDULE=NEVER
    ) as broker:
        yield broker


def _request(broker: Broker, model: str, *, caller: str, ticket: str) -> dict[str, Any]:
    response = broker.call(
        "POST",
        "/api/deployments",
        caller=caller,
        json={"workspaceId": broker.workspace_id(), "modelId": model, "ticket": ticket},
    )
    assert response.status_code == 202, response.text
    return response.json()


def _decide(broker: Broker, run_id: str, verb: str, *, caller: str, comment: str | None = None) -> Any:
    body = {"comment": comment} if comment is not None else None
    return broker.call("POST", f"/api/runs/{run_id}/{verb}", caller=caller, json=body)


def _events_of(broker: Broker, ticket: str, *, until_kinds: set[str]) -> list[dict[str, Any]]:
    def complete(events: list[dict[str, Any]]) -> bool:
        return until_kinds <= {_kind(event) for event in events if event["data"].get("ticket") == ticket}

    collected = broker.events(timeout=30, until=complete)
    return [event for event in collected if event["data"].get("ticket") == ticket]


def _azure_writes(broker: Broker) -> list[str]:
    """The emulator's logged writes, less sign-ins (the tests' own tokens, and the broker's)."""
    return [write for write in broker.azure_writes() if not write.endswith("/oauth2/v2.0/token")]


def _kind(event: dict[str, Any]) -> str:
    return event["type"].removeprefix(EVENT_PREFIX)


def _waits_with_nothing_written(broker: Broker, run: dict[str, Any], settle: Callable[[], None]) -> None:
    """The run waits in PendingApproval, its deployment too, and nothing was written to Azure (`settle` gives the
    broker time to write, if it were going to)."""
    assert run["status"] == "PendingApproval", run
    assert run["approval"]["rule"] == "marketplace"
    settle()
    assert broker.run(run["id"])["status"] == "PendingApproval"
    assert broker.deployment(run["deploymentId"])["status"]["phase"] == "PendingApproval"
    assert _azure_writes(broker) == []


def test_a_marketplace_request_waits_without_writing_then_the_approver_approves_and_it_succeeds(broker: Broker):
    ticket = f"APPROVE-{uuid.uuid4().hex[:6]}"
    broker.emulator.admin.clear_requests()

    run = _request(broker, COHERE, caller=broker.requester, ticket=ticket)
    _waits_with_nothing_written(broker, run, lambda: time.sleep(2))

    response = _decide(broker, run["id"], "approve", caller=broker.approver, comment="Budget FIN-7")
    assert response.status_code == 200, response.text
    approved = response.json()
    assert approved["status"] in ("Subscribing", "Provisioning", "StoringKeys", "Verifying", "Succeeded")
    assert approved["approval"]["decision"] == "approved"
    assert (approved["approval"]["decidedBy"], approved["approval"]["comment"]) == (broker.approver, "Budget FIN-7")
    finished = broker.wait_for_run(run["id"])
    assert finished["status"] == "Succeeded", finished
    assert finished["approval"] == approved["approval"]
    assert broker.deployment(run["deploymentId"])["status"]["phase"] == "Ready"
    assert any("/marketplaceSubscriptions/" in write for write in _azure_writes(broker))

    events = _events_of(broker, ticket, until_kinds={"accepted", "approvalrequested", "approved", "succeeded"})
    assert [_kind(event) for event in events] == ["accepted", "approvalrequested", "approved", "succeeded"]
    requested = events[1]["data"]
    assert (requested["runId"], requested["approval"]["rule"]) == (run["id"], "marketplace")
    assert requested["approval"]["expiresAt"] == run["approval"]["expiresAt"]
    assert events[2]["data"]["approval"]["decidedBy"] == broker.approver


def test_an_approver_may_not_approve_their_own_request_and_a_non_approver_none(broker: Broker):
    ticket = f"SELF-{uuid.uuid4().hex[:6]}"
    run = _request(broker, COHERE_PLUS, caller=broker.approver, ticket=ticket)

    own = _decide(broker, run["id"], "approve", caller=broker.approver)
    outsider = _decide(broker, run["id"], "approve", caller=broker.requester)

    assert own.status_code == 403, own.text
    assert own.json()["type"] == f"{PROBLEMS}self-approval-forbidden"
    assert outsider.status_code == 403, outsider.text
    assert outsider.json()["type"] == f"{PROBLEMS}approver-required"
    assert broker.run(run["id"])["status"] == "PendingApproval"

    # Withdrawn by deleting the deployment: the waiting run ends Rejected, and nothing is left in Azure.
    deleted = broker.call("DELETE", f"/api/deployments/{run['deploymentId']}", caller=broker.approver)
    assert deleted.status_code == 202, deleted.text
    assert broker.wait_for_run(deleted.json()["id"])["status"] == "Deleted"
    withdrawn = broker.run(run["id"])
    assert (withdrawn["status"], withdrawn["error"]["code"]) == ("Rejected", "approval-withdrawn")
    events = _events_of(broker, ticket, until_kinds={"approvalrejected", "rejected"})
    assert [_kind(event) for event in events] == ["accepted", "approvalrequested", "approvalrejected", "rejected"]


def test_a_rejection_ends_the_run_with_the_comment(broker: Broker):
    ticket = f"REJECT-{uuid.uuid4().hex[:6]}"
    broker.emulator.admin.clear_requests()
    run = _request(broker, RERANK, caller=broker.requester, ticket=ticket)
    without_comment = _decide(broker, run["id"], "reject", caller=broker.approver)
    assert without_comment.status_code == 400, without_comment.text

    response = _decide(broker, run["id"], "reject", caller=broker.approver, comment="Use the embed model instead.")

    assert response.status_code == 200, response.text
    rejected = response.json()
    assert rejected["status"] == "Rejected"
    assert rejected["error"]["code"] == "approval-rejected"
    assert "Use the embed model instead." in rejected["error"]["message"]
    assert rejected["approval"]["comment"] == "Use the embed model instead."
    assert rejected["approval"]["decidedBy"] == broker.approver
    assert broker.deployment(run["deploymentId"])["status"]["phase"] == "Failed"
    assert _azure_writes(broker) == []
    events = _events_of(broker, ticket, until_kinds={"approvalrejected", "rejected"})
    assert [_kind(event) for event in events] == ["accepted", "approvalrequested", "approvalrejected", "rejected"]
    assert events[2]["data"]["approval"]["comment"] == "Use the embed model instead."
    assert _decide(broker, run["id"], "approve", caller=broker.approver).status_code == 409


def test_an_approval_nobody_gives_expires_and_the_watchdog_rejects_the_run(azurite, emulator, tmp_path):
    host = start_broker_host(
        emulator,
        azurite.connection_string,
        tmp_path / "expiring.log",
        BROKER_APPROVALS_ENABLED="true",
        BROKER_APPROVAL_EXPIRY_HOURS=TINY_EXPIRY_HOURS,
        WATCHDOG_SCHEDULE=NEVER,
    )
    broker = Broker(host, emulator, azurite.connection_string)
    try:
        ticket = f"EXPIRE-{uuid.uuid4().hex[:6]}"
        emulator.admin.clear_requests()
        run = _request(broker, LLAMA, caller=broker.requester, ticket=ticket)
        assert run["status"] == "PendingApproval", run

        def expired() -> dict[str, Any] | None:
            broker.invoke("watchdog")
            current = broker.run(run["id"])
            return current if current["status"] in TERMINAL else None

        ended = until(expired, timeout=20)
        assert (ended["status"], ended["error"]["code"]) == ("Rejected", "approval-expired")
        assert (ended["approval"]["decision"], ended["approval"]["decidedBy"]) == ("expired", None)
        assert _azure_writes(broker) == []
        events = _events_of(broker, ticket, until_kinds={"approvalrejected", "rejected"})
        assert [_kind(event) for event in events] == ["accepted", "approvalrequested", "approvalrejected", "rejected"]
        assert events[2]["data"]["approval"]["decision"] == "expired"
    finally:
        host.stop()
