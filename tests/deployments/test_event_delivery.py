"""Events go to the queue and, when a topic is configured, to Event Grid; the topic never costs the queue copy."""

from datetime import UTC, datetime

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

from shared.event_delivery import UNDELIVERED_KIND, EventPublisher
from shared.telemetry import BrokerTelemetry, TraceContext, continued

from .fakes import FakeQueue, InMemoryRunRepository

AT = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
EVENT = {
    "specversion": "1.0",
    "id": "run-1/accepted",
    "source": "/deployment-broker",
    "type": "com.contoso.broker.deployment.accepted",
    "subject": "run-1",
    "time": "2026-01-02T03:04:05Z",
    "datacontenttype": "application/json",
    "data": {"runId": "run-1", "ticket": "T-1"},
}


class FakeTopic:
    def __init__(self, error: Exception | None = None) -> None:
        self.published: list[dict] = []
        self._error = error

    def publish(self, events):
        if self._error is not None:
            raise self._error
        self.published.extend(dict(event) for event in events)


class RefusingQueue(FakeQueue):
    def send(self, message, *, delay_seconds=0):
        raise ConnectionError("storage is unreachable")


@pytest.fixture
def meter():
    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader])
    yield provider, reader
    provider.shutdown()


def publisher(queue, topic, runs=None, meter_provider=None):
    return EventPublisher(
        queue,
        topic,
        runs=runs or InMemoryRunRepository(),
        telemetry=BrokerTelemetry(meter_provider=meter_provider),
        clock=lambda: AT,
    )


def test_the_topic_gets_the_queue_copy_with_the_trace_context():
    queue, topic = FakeQueue(), FakeTopic()

    with continued(TraceContext.of(TRACEPARENT, "congo=t61rcWkgMzE")):
        publisher(queue, topic).send(EVENT)

    (queued,) = [message.body for message in queue.sent]
    assert queued == {**EVENT, "traceparent": TRACEPARENT, "tracestate": "congo=t61rcWkgMzE"}
    assert topic.published == [queued]


def test_without_a_topic_or_a_trace_the_queue_gets_the_event_as_it_was():
    queue = FakeQueue()

    publisher(queue, None).send({**EVENT, "traceparent": "stale"})

    assert [message.body for message in queue.sent] == [EVENT]


def test_a_topic_failure_keeps_the_queue_copy_records_and_counts_it(meter, caplog):
    meter_provider, reader = meter
    queue, runs = FakeQueue(), InMemoryRunRepository()

    publisher(queue, FakeTopic(ConnectionError("topic down")), runs, meter_provider).send(EVENT)

    assert [message.body["id"] for message in queue.sent] == [EVENT["id"]]
    (row,) = runs.list_undelivered(kind=UNDELIVERED_KIND).documents
    assert (row["key"], row["event"], row["error"]) == (EVENT["id"], EVENT, "ConnectionError: topic down")
    assert "reached the queue but not the Event Grid topic" in caplog.text
    (point,) = [
        point
        for resource in reader.get_metrics_data().resource_metrics
        for scope in resource.scope_metrics
        for metric in scope.metrics
        if metric.name == "broker.events.topic_failures"
        for point in metric.data.data_points
    ]
    assert (point.value, dict(point.attributes)) == (1, {"type": EVENT["type"]})


def test_a_queue_failure_raises_as_before_and_the_topic_is_not_sent_the_event():
    topic = FakeTopic()

    with pytest.raises(ConnectionError):
        publisher(RefusingQueue(), topic).send(EVENT)

    assert topic.published == []
