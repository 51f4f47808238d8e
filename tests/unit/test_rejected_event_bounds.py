"""The rejected event of a malformed queue message echoes what it held, cut short so it always fits a queue message."""

import base64
import json
from datetime import UTC, datetime

import pytest

from shared.events import MAX_ECHOED_DETAILS, MAX_REJECTED_EVENT_BYTES, malformed_request_rejected_event

T0 = datetime(2026, 11, 27, 9, 0, tzinfo=UTC)


def event(**fields):
    arguments = {"message_id": "m-1", "ticket": "INC-1", "code": "validation-failed", "message": "bad", "time": T0}
    return malformed_request_rejected_event(**{**arguments, **fields})


def test_short_values_are_echoed_as_they_are():
    sent = event(details=[{"field": "modelId", "message": "This field is required."}])

    assert sent["data"] == {
        "runId": None,
        "ticket": "INC-1",
        "status": "Rejected",
        "error": {
            "code": "validation-failed",
            "message": "bad",
            "details": [{"field": "modelId", "message": "This field is required."}],
        },
    }


@pytest.mark.parametrize(
    "text", ["x" * 100_000, "é" * 100_000, "\U0001f600" * 100_000, '"\\' * 50_000, "\x00" * 99_999]
)
def test_whatever_the_values_the_event_keeps_its_shape_and_stays_within_the_bound(text):
    sent = event(
        message_id=text,
        ticket=text,
        code=text,
        message=text,
        details=[{"field": text, "message": text}] * 100,
    )

    serialised = json.dumps(sent)
    assert len(serialised) <= MAX_REJECTED_EVENT_BYTES
    assert len(base64.b64encode(serialised.encode())) <= 64 * 1024
    assert set(sent) == set(event())
    assert set(sent["data"]) == {"runId", "ticket", "status", "error"}
    assert set(sent["data"]["error"]) == {"code", "message", "details"}
    for value in (sent["subject"], sent["data"]["ticket"], sent["data"]["error"]["message"]):
        assert value.endswith("…")
        assert text.startswith(value[:-1])
    assert sent["id"] == f"message-{sent['subject']}/rejected"
    details = sent["data"]["error"]["details"]
    assert len(details) == MAX_ECHOED_DETAILS
    assert details[-1] == {"field": "(more)", "message": "93 more errors left out."}


def test_a_ticket_is_cut_only_when_it_is_far_longer_than_any_valid_one():
    assert event(ticket="T" * 256)["data"]["ticket"] == "T" * 256
    assert len(event(ticket="T" * 5000)["data"]["ticket"]) < 1024
