"""Bad input on both intakes, end to end through the local host, Azurite and the emulator: every class of it gets a
single poison copy (queue) or a 4xx problem+json (HTTP), and a rejected event whenever its ticket is readable.

Redelivery of one message id cannot be provoked from outside (each send makes a new id); that the claim holds under
redelivery is shown by tests/deployments/test_service.py. Here each message must be handled by its first delivery
(one invocation, succeeded, dequeueCount 1), so the host never retries it or poisons it a second time itself.
"""

from __future__ import annotations

import base64
import contextlib
import json
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass

import pytest
from azure.core.exceptions import ResourceExistsError

from shared.events import MAX_REJECTED_EVENT_BYTES

pytestmark = pytest.mark.integration

MODEL = "azureml://registries/azureml/models/Phi-4"
AZURE_QUEUE_MESSAGE_BYTES = 64 * 1024


@dataclass(frozen=True)
class Bad:
    """One bad message: its bytes, the marker that finds its poison copy, and the ticket its event should carry."""

    name: str
    raw: bytes
    marker: str
    ticket: str | None  # the ticket the rejected event echoes (a prefix when it is cut short); None: no event
    words: str  # in the rejected event's error message


def _valid(broker, marker: str, **fields: object) -> dict[str, object]:
    return {
        "workspaceId": broker.workspace_id(),
        "modelId": MODEL,
        "requestedBy": broker.requester,
        "ticket": marker,
        **fields,
    }


def _bad_messages(broker) -> list[Bad]:
    def marker(name: str) -> str:
        return f"LIM-{name}-{uuid.uuid4().hex[:8]}"

    huge, deep, latin, utf16, duplicate, array, long_ticket = (
        marker(name) for name in ("huge", "deep", "latin", "utf16", "dup", "array", "ticket")
    )
    # Near Azure's 64 KiB limit once base64-encoded: the shape of the message that was copied six times.
    huge_body = json.dumps(_valid(broker, huge, endpointName="x" * (46 * 1024))).encode()
    deep_body = (f'{{"ticket": "{deep}", "tags": ' + "[" * 2000 + "]" * 2000 + "}").encode()
    latin_body = json.dumps(_valid(broker, latin, tags={"owner": "Zoë"}), ensure_ascii=False).encode("latin-1")
    duplicate_body = f'{{"ticket": "{duplicate}", "modelId": "{MODEL}", "ticket": "{duplicate}-again"}}'.encode()
    return [
        Bad("huge", huge_body, huge, huge, "string of 47,104 characters at endpointName"),
        Bad("deeply nested", deep_body, deep, deep, "more than 32 deep"),
        Bad("not UTF-8", latin_body, latin, latin, "is not UTF-8"),
        Bad("UTF-16", json.dumps(_valid(broker, utf16)).encode("utf-16"), utf16, None, ""),
        Bad("duplicate keys", duplicate_body, duplicate, duplicate, "'ticket' more than once"),
        Bad("not an object", json.dumps([_valid(broker, array)]).encode(), array, None, ""),
        Bad(
            "huge ticket",
            json.dumps(_valid(broker, long_ticket + "9" * 40_000)).encode(),
            long_ticket,
            long_ticket,
            "string of 40,019 characters at ticket",
        ),
    ]


def _send(broker, raw: bytes) -> str:
    text = base64.b64encode(raw).decode()
    assert len(text) <= AZURE_QUEUE_MESSAGE_BYTES, "Azure would not take it either"
    return broker.queue(broker.requests_queue).send_message(text).id


def _poison_copies(broker, markers: list[str], *, until: Callable[[dict[str, int]], bool], timeout: float):
    """Take every poison message naming one of `markers` off the poison queue (others are left for their tests),
    until `until(counts)` holds or the timeout passes; the copies found, per marker."""
    copies: dict[str, list[str]] = {marker: [] for marker in markers}
    queue = broker.queue(f"{broker.requests_queue}-poison")
    with contextlib.suppress(ResourceExistsError):
        queue.create_queue()  # the broker makes it on first use; this test may look first
    deadline = time.monotonic() + timeout
    while True:
        for message in queue.receive_messages(max_messages=32, visibility_timeout=5):
            text = base64.b64decode(message.content).decode("utf-8", errors="replace")
            plain = text.replace("\x00", "")  # UTF-16 arrives with its NULs
            mine = [marker for marker in markers if marker in plain]
            if mine:
                copies[mine[0]].append(text)
                queue.delete_message(message)
        counts = {marker: len(found) for marker, found in copies.items()}
        if until(counts) or time.monotonic() > deadline:
            return copies
        time.sleep(0.25)


def test_each_bad_message_is_poisoned_once_on_first_delivery_and_told_when_its_ticket_is_readable(broker):
    bad = _bad_messages(broker)
    ids = {_send(broker, item.raw): item for item in bad}
    markers = [item.marker for item in bad]

    copies = _poison_copies(broker, markers, until=lambda counts: all(counts.values()), timeout=60)
    told = [item for item in bad if item.ticket]
    events = broker.events(
        timeout=30,
        until=lambda seen: all(
            any(str(event["data"].get("ticket", "")).startswith(item.ticket) for event in seen) for item in told
        ),
    )
    # Long enough for the host to have retried anything that failed (visibilityTimeout 5 s): nothing more comes.
    time.sleep(7)
    copies_later = _poison_copies(broker, markers, until=lambda _: True, timeout=0)

    for item in bad:
        assert len(copies[item.marker]) == 1, f"{item.name}: {len(copies[item.marker])} poison copies"
        assert copies_later[item.marker] == [], f"{item.name}: copied again later"
    invocations = [record for record in broker.host.invocations() if record.get("messageId") in ids]
    assert sorted((record["messageId"], record["dequeueCount"], record["outcome"]) for record in invocations) == sorted(
        (message_id, 1, "Succeeded") for message_id in ids
    ), "every bad message is handled by its first delivery, without raising"
    deep_run = next(record for record in invocations if ids[record["messageId"]].name == "deeply nested")
    assert deep_run["durationMs"] < 5000

    rejected = [event for event in events if event["type"].endswith(".rejected") and event["data"]["runId"] is None]
    for item in bad:
        mine = [event for event in rejected if str(event["data"]["ticket"]).startswith(item.marker)]
        if item.ticket is None:
            assert mine == [], f"{item.name}: no ticket can be read, so no event"
            continue
        assert len(mine) == 1, f"{item.name}: {len(mine)} rejected events"
        (event,) = mine
        assert item.words in event["data"]["error"]["message"], item.name
        assert len(json.dumps(event)) <= MAX_REJECTED_EVENT_BYTES
        assert ids[event["subject"]] is item
    cut = next(event for event in rejected if event["data"]["ticket"].startswith(bad[-1].marker))
    assert cut["data"]["ticket"].endswith("…")
    assert len(cut["data"]["ticket"]) < 1024


def test_the_poison_copy_of_a_message_is_the_message_as_it_arrived(broker):
    ticket = f"LIM-copy-{uuid.uuid4().hex[:8]}"
    raw = (f'{{"ticket": "{ticket}", "tags": {{"owner": "Zoë"}}, "x": ' + "[" * 100 + "]" * 100 + "}").encode()
    _send(broker, raw)

    copies = _poison_copies(broker, [ticket], until=lambda counts: counts[ticket] > 0, timeout=30)

    assert [copy.encode() for copy in copies[ticket]] == [raw]


# HTTP: the same classes answered 4xx problem+json, nothing stored.


def _post(broker, raw: bytes, content_type: str | None = "application/json"):
    headers = {"Content-Type": content_type} if content_type else {}
    return broker.call("POST", "/api/deployments", caller=broker.requester, data=raw, headers=headers)


def _problem(response, status: int, slug: str) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["Content-Type"].startswith("application/problem+json")
    body = response.json()
    assert body["type"].endswith(f"/{slug}")
    return body


def test_bad_http_bodies_are_answered_with_4xx_problems_naming_the_limit(broker):
    valid = _valid(broker, "LIM-http")
    cases = [
        (
            json.dumps({**valid, "tags": {"pad": " " * (1024 * 1024)}}).encode(),
            "application/json",
            413,
            "payload-too-large",
            "the limit is 1,048,576 bytes",
        ),
        (
            b'{"ticket": "T", "tags": ' + b"[" * 2000 + b"]" * 2000 + b"}",
            "application/json",
            400,
            "validation-failed",
            "more than 32 deep",
        ),
        (
            json.dumps(valid, ensure_ascii=False).replace("LIM-http", "Zoë").encode("latin-1"),
            "application/json",
            400,
            "validation-failed",
            "is not UTF-8",
        ),
        (json.dumps(valid).encode("utf-16"), "application/json", 400, "validation-failed", "UTF-16LE"),
        (json.dumps(valid).encode(), "text/plain", 415, "unsupported-media-type", "'text/plain' is not JSON"),
        (
            json.dumps(valid).encode(),
            "application/json; charset=utf-16",
            415,
            "unsupported-media-type",
            "charset other than UTF-8",
        ),
        (json.dumps(valid).encode(), None, 415, "unsupported-media-type", "has no Content-Type"),
        (b'{"ticket": "a", "ticket": "b"}', "application/json", 400, "validation-failed", "more than once"),
        (json.dumps([valid]).encode(), "application/json", 400, "validation-failed", "not an array"),
        (
            json.dumps({**valid, "ticket": "T" * 40_000}).encode(),
            "application/json",
            400,
            "validation-failed",
            "string of 40,000 characters at ticket",
        ),
    ]
    for raw, content_type, status, slug, words in cases:
        body = _problem(_post(broker, raw, content_type), status, slug)
        assert words in body["detail"], (slug, body["detail"])

    assert broker.runs(ticket="LIM-http") == []


def test_a_body_of_several_mib_is_refused_and_the_host_keeps_serving(broker):
    raw = b'{"tags": {"pad": "' + b"x" * (8 * 1024 * 1024) + b'"}}'

    body = _problem(_post(broker, raw), 413, "payload-too-large")

    assert body["limit"] == {"name": "size", "maximum": 1024 * 1024}
    assert broker.host.is_running()
    assert broker.call("GET", "/api/health").status_code in (200, 503)


def test_a_json_body_in_utf8_with_a_byte_order_mark_is_accepted(broker):
    ticket = f"LIM-bom-{uuid.uuid4().hex[:8]}"
    raw = (
        b"\xef\xbb\xbf"
        + json.dumps({"workspaceId": broker.workspace_id(), "modelId": MODEL, "ticket": ticket}).encode()
    )

    response = _post(broker, raw, "application/json; charset=utf-8")

    assert response.status_code == 202, response.text
    assert response.json()["ticket"] == ticket
