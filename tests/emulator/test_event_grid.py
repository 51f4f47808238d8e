"""The emulator's Event Grid topic, through azure-eventgrid unchanged and through the broker's adapter: CloudEvents
batches, Entra tokens for https://eventgrid.azure.net only, and EventGrid Data Sender enforced."""

from datetime import UTC, datetime

import pytest
import requests
from azure.core.credentials import AzureKeyCredential
from azure.core.exceptions import ClientAuthenticationError
from azure.core.messaging import CloudEvent
from azure.eventgrid import EventGridPublisherClient
from azure.identity import ManagedIdentityCredential

from shared.adapters.event_grid import EventGridTopic
from shared.azure_errors import AzureCallError

TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


def published(env: dict[str, str]) -> list[dict]:
    admin = env["EVENT_GRID_TOPIC_ENDPOINT"].replace("/api/events", "/_emulator/events")
    response = requests.get(admin, verify=env["REQUESTS_CA_BUNDLE"], timeout=10)
    response.raise_for_status()
    return response.json()["events"]


def instant(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def broker_event(event_id: str) -> dict:
    return {
        "specversion": "1.0",
        "id": event_id,
        "source": "/deployment-broker",
        "type": "com.contoso.broker.deployment.succeeded",
        "subject": "run-1",
        "time": "2026-01-02T03:04:05Z",
        "datacontenttype": "application/json",
        "traceparent": TRACEPARENT,
        "data": {"runId": "run-1", "ticket": "T-1"},
    }


def test_the_adapter_publishes_the_broker_event_as_it_is(emulator_env):
    topic = EventGridTopic(emulator_env["EVENT_GRID_TOPIC_ENDPOINT"], ManagedIdentityCredential())

    sent = [broker_event("run-1/succeeded"), broker_event("run-1/succeeded/req-2")]

    topic.publish(sent)

    received = published(emulator_env)
    # The SDK writes the time again, to the millisecond; everything else arrives as the broker wrote it.
    assert [{**event, "time": instant(event["time"])} for event in received] == [
        {**event, "time": instant(event["time"])} for event in sent
    ]


def test_the_sdk_sends_cloud_event_objects_with_extensions(emulator_env):
    client = EventGridPublisherClient(emulator_env["EVENT_GRID_TOPIC_ENDPOINT"], ManagedIdentityCredential())
    event = CloudEvent(
        source="/elsewhere",
        type="com.example.thing",
        data={"a": 1},
        subject="s",
        time=datetime(2026, 1, 2, tzinfo=UTC),
        extensions={"traceparent": TRACEPARENT},
    )

    client.send([event])

    (received,) = published(emulator_env)
    assert (received["id"], received["source"], received["type"], received["data"]) == (
        event.id,
        "/elsewhere",
        "com.example.thing",
        {"a": 1},
    )
    assert received["traceparent"] == TRACEPARENT
    assert received["specversion"] == "1.0"


def test_a_principal_without_eventgrid_data_sender_is_refused(emulator_env):
    # The reader holds Reader and data roles elsewhere, not EventGrid Data Sender on the topic.
    reader = ManagedIdentityCredential(client_id=emulator_env["DEMO_READER_CLIENT_ID"])
    topic = EventGridTopic(emulator_env["EVENT_GRID_TOPIC_ENDPOINT"], reader)

    with pytest.raises(AzureCallError) as refused:
        topic.publish([broker_event("run-2/accepted")])

    assert (refused.value.status, refused.value.code) == (401, "Unauthorized")
    assert "Microsoft.EventGrid/events/send/action" in refused.value.message
    assert not refused.value.transient
    assert published(emulator_env) == []


def test_keys_are_refused_because_local_auth_is_disabled(emulator_env):
    client = EventGridPublisherClient(emulator_env["EVENT_GRID_TOPIC_ENDPOINT"], AzureKeyCredential("a-key"))

    with pytest.raises(ClientAuthenticationError):
        client.send([broker_event("run-3/accepted")])

    assert published(emulator_env) == []


@pytest.mark.parametrize(
    ("headers", "body", "status", "code"),
    [
        ({}, b"[]", 401, "Unauthorized"),
        ({"Content-Type": "application/cloudevents-batch+json"}, b"[{}]", 400, "BadRequest"),
        ({"Content-Type": "application/json"}, b"[]", 400, "BadRequest"),
    ],
)
def test_refusals_come_in_event_grids_error_shape(emulator_env, headers, body, status, code):
    token = ManagedIdentityCredential().get_token("https://eventgrid.azure.net/.default").token
    if headers:
        headers = {**headers, "Authorization": f"Bearer {token}"}

    response = requests.post(
        f"{emulator_env['EVENT_GRID_TOPIC_ENDPOINT']}?api-version=2018-01-01",
        data=body,
        headers=headers,
        verify=emulator_env["REQUESTS_CA_BUNDLE"],
        timeout=10,
    )

    assert response.status_code == status
    error = response.json()["error"]
    assert error["code"] == code
    assert set(error) == {"code", "message", "timestamp", "trackingId"}


def test_a_token_for_another_audience_is_refused(emulator_env):
    arm_token = ManagedIdentityCredential().get_token("https://management.azure.com/.default").token

    response = requests.post(
        f"{emulator_env['EVENT_GRID_TOPIC_ENDPOINT']}?api-version=2018-01-01",
        data=b"[]",
        headers={"Authorization": f"Bearer {arm_token}", "Content-Type": "application/cloudevents-batch+json"},
        verify=emulator_env["REQUESTS_CA_BUNDLE"],
        timeout=10,
    )

    assert response.status_code == 401
    assert "audience" in response.json()["error"]["message"]
