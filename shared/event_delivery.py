"""Where a deployment event goes: the `deployment-events` queue always, and an Event Grid topic when configured.

Every event is stamped with the CloudEvents distributed-tracing extension (`traceparent`, and `tracestate` when there
is one) of the span it is sent under, so a subscriber can join it to the deployment's trace.

The queue copy is the durable record: it is sent first, and a failure there raises exactly as before, for the caller
to retry or record. The topic copy (same id, source, type, subject and data) is best effort: a topic that refuses it or
does not answer fails neither the event nor the step. The failure is logged, counted (`broker.events.topic_failures`)
and kept as a row in the runs table's `undelivered` partition (kind `topic-event`, with the event), for an operator
to resend; nothing retries it by itself.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

from shared.ports import EventTopicPort, MessageQueuePort, RunRepositoryPort
from shared.telemetry import BrokerTelemetry, TraceContext

LOGGER = logging.getLogger(__name__)
UNDELIVERED_KIND = "topic-event"
_LOGGED_ERROR = 1000


def traced(event: Mapping[str, Any], trace_context: TraceContext | None) -> dict[str, Any]:
    """`event` with the distributed-tracing extension of `trace_context` (none without one; tracestate only when
    there is one)."""
    stamped = {key: value for key, value in event.items() if key not in ("traceparent", "tracestate")}
    if trace_context is not None:
        stamped["traceparent"] = trace_context.traceparent
        if trace_context.tracestate:
            stamped["tracestate"] = trace_context.tracestate
    return stamped


class EventPublisher:
    """Sends each event (a CloudEvents 1.0 JSON document) to the events queue and, when there is one, to `topic`;
    it keeps the queue's `send(event)` shape, so everything that announces takes it in the queue's place."""

    def __init__(
        self,
        queue: MessageQueuePort,
        topic: EventTopicPort | None,
        *,
        runs: RunRepositoryPort,
        telemetry: BrokerTelemetry,
        clock: Callable[[], datetime],
    ) -> None:
        self._queue = queue
        self._topic = topic
        self._runs = runs
        self._telemetry = telemetry
        self._clock = clock

    def send(self, message: Mapping[str, Any], *, delay_seconds: float = 0) -> None:
        event = traced(message, TraceContext.current())
        self._queue.send(event, delay_seconds=delay_seconds)
        if self._topic is not None:
            self._publish(self._topic, event)

    def _publish(self, topic: EventTopicPort, event: dict[str, Any]) -> None:
        try:
            topic.publish([event])
        except Exception as error:  # noqa: BLE001 - the queue copy stands; the topic's is recorded, not retried
            reason = f"{type(error).__name__}: {str(error)[:_LOGGED_ERROR]}"
            LOGGER.error("event %s reached the queue but not the Event Grid topic (%s)", event["id"], reason)
            self._telemetry.topic_failed(str(event.get("type", "")))
            self._record(event, reason)

    def _record(self, event: dict[str, Any], reason: str) -> None:
        try:
            self._runs.record_undelivered(
                UNDELIVERED_KIND,
                event["id"],
                {"topic": "event-grid", "event": event, "error": reason, "at": self._clock().isoformat()},
            )
        except Exception:  # the log line above is then the only record
            LOGGER.exception("event %s could not be recorded as undelivered to the topic either", event["id"])
