"""Deployment events on the Event Grid topic as well as the queue, and one trace per request, through the local host,
Azurite and the emulator's topic (azure-eventgrid unchanged, identity auth, no mocked SDKs)."""

from __future__ import annotations

import secrets
import uuid
from datetime import datetime

import pytest

from .conftest import until

pytestmark = pytest.mark.integration

COHERE = "azureml://registries/azureml-cohere/models/Cohere-command-r-08-2024"
PHI = "azureml://registries/azureml/models/Phi-4"


def trace_id(traceparent: str) -> str:
    return traceparent.split("-")[1]


def on_topic(broker, ticket: str) -> list[dict]:
    return [event for event in broker.emulator.server.published_events.all() if event["data"].get("ticket") == ticket]


def same_event(queued: dict, published: dict) -> bool:
    """The topic's copy is the queue's, but for `time`, which the SDK writes again to the millisecond."""
    times = [datetime.fromisoformat(event["time"].replace("Z", "+00:00")) for event in (queued, published)]
    return times[0] == times[1] and {**queued, "time": ""} == {**published, "time": ""}


def test_a_posted_deployments_events_reach_the_topic_and_the_queue_in_the_posts_trace(broker):
    ticket = f"T-{uuid.uuid4().hex[:6]}"
    incoming_trace = secrets.token_hex(16)
    response = broker.call(
        "POST",
        "/api/deployments",
        caller=broker.requester,
        headers={"traceparent": f"00-{incoming_trace}-{secrets.token_hex(8)}-01"},
        json={"workspaceId": broker.workspace_id(), "modelId": COHERE, "ticket": ticket},
    )
    assert response.status_code == 202, response.text
    run = broker.wait_for_run(response.json()["id"])
    assert run["status"] == "Succeeded", run

    queued = broker.events(until=lambda events: any(event["type"].endswith(".succeeded") for event in events))
    queued = [event for event in queued if event["data"].get("ticket") == ticket]
    published = until(lambda: (events := on_topic(broker, ticket)) and len(events) == len(queued) and events)

    assert [event["type"].rsplit(".", 1)[1] for event in queued] == ["accepted", "succeeded"]
    by_id = {event["id"]: event for event in published}
    assert set(by_id) == {event["id"] for event in queued}
    assert all(same_event(event, by_id[event["id"]]) for event in queued)
    # The subscribe and provision steps ran from later queue messages, after poll delays: still the POST's trace.
    assert {trace_id(event["traceparent"]) for event in queued} == {incoming_trace}


def test_a_queued_requests_events_share_the_trace_of_its_intake(broker):
    ticket = f"T-{uuid.uuid4().hex[:6]}"
    broker.send_request_message(
        {
            "workspaceId": broker.workspace_id(),
            "modelId": PHI,
            "requestedBy": broker.requester,
            "ticket": ticket,
        }
    )

    published = until(
        lambda: (
            (events := on_topic(broker, ticket)) and any(e["type"].endswith(".succeeded") for e in events) and events
        ),
        timeout=60,
    )
    queued = broker.events(
        until=lambda events: any(e["type"].endswith(".succeeded") and e["data"].get("ticket") == ticket for e in events)
    )
    queued = [event for event in queued if event["data"].get("ticket") == ticket]

    assert {event["id"] for event in queued} == {event["id"] for event in published}
    (trace,) = {trace_id(event["traceparent"]) for event in queued + published}
    assert trace != "0" * 32
