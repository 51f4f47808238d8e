"""The broker's own telemetry: a span for intake and for each workflow step, run outcomes as metrics.

One deployment is one trace. Intake runs under the invocation's trace context (the POST's or the queue message's,
given by the Functions host), every work message carries the W3C trace context it was sent under
(`WorkItem.traceparent`), and each step continues it, across queue hops and poll delays alike, so its span is a child
of the span that queued the chain; events carry the context they were sent under (shared/event_delivery.py).

Only the vendor-neutral OpenTelemetry API is used. Until a provider is installed (by the Functions worker, or by
shared/adapters/monitor.py) the default instruments record nothing; they start exporting once one is, because the
API hands out proxies to the global providers. Attributes carry ids, statuses and problem slugs only: never key
values, request bodies or secret values. Exceptions are recorded by type alone, as their messages may quote Azure.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from enum import StrEnum

from opentelemetry import context, metrics, trace
from opentelemetry.trace import Span, Status, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
from opentelemetry.util.types import AttributeValue

from shared.hygiene.findings import FindingKind
from shared.problems import Problem
from shared.runs import RunRecord
from shared.version import broker_version

NAME = "serverless_deployment_broker"
RUN_ID = "broker.run_id"
STEP = "broker.step"
OUTCOME = "broker.outcome"
CREATED = "broker.created"
PROBLEM = "broker.problem"


_PROPAGATOR = TraceContextTextMapPropagator()


@dataclass(frozen=True)
class TraceContext:
    """A W3C trace context as it travels in work messages and events: `traceparent` and, when there is one,
    `tracestate`."""

    traceparent: str
    tracestate: str | None = None

    @classmethod
    def current(cls) -> TraceContext | None:
        """The context of the current span; None outside any valid one."""
        carrier: dict[str, str] = {}
        _PROPAGATOR.inject(carrier)
        if "traceparent" not in carrier:
            return None
        return cls(carrier["traceparent"], carrier.get("tracestate") or None)

    @classmethod
    def of(cls, traceparent: str | None, tracestate: str | None = None) -> TraceContext | None:
        """The context `traceparent` names; None when there is none, or it is not a valid W3C traceparent."""
        if not traceparent:
            return None
        carrier = {"traceparent": traceparent, **({"tracestate": tracestate} if tracestate else {})}
        if not trace.get_current_span(_PROPAGATOR.extract(carrier)).get_span_context().is_valid:
            return None
        return cls(traceparent, tracestate or None)

    @property
    def trace_id(self) -> str:
        return self.traceparent.split("-")[1]


@contextmanager
def continued(trace_context: TraceContext | None) -> Iterator[None]:
    """Make `trace_context` (a work message's, an invocation's) the current one for the block; without one, the
    current context stays as it is."""
    if trace_context is None:
        yield
        return
    carrier = {"traceparent": trace_context.traceparent}
    if trace_context.tracestate:
        carrier["tracestate"] = trace_context.tracestate
    token = context.attach(_PROPAGATOR.extract(carrier))
    try:
        yield
    finally:
        context.detach(token)


class StepOutcome(StrEnum):
    ADVANCED = "advanced"  # the run moved on to its next status (or finished)
    WAITING = "waiting"  # an operation is still running; a delayed message looks again
    RETRIED = "retried"  # a transient Azure error; the step is queued again with backoff
    FAILED = "failed"
    DROPPED = "dropped"  # an unknown run, or a duplicate or stale delivery


class BrokerTelemetry:
    """The broker's tracer, meter and instruments; the providers default to the global ones."""

    def __init__(
        self,
        *,
        tracer_provider: trace.TracerProvider | None = None,
        meter_provider: metrics.MeterProvider | None = None,
    ) -> None:
        version = broker_version()
        self._tracer = trace.get_tracer(NAME, version, tracer_provider=tracer_provider)
        meter = metrics.get_meter(NAME, version, meter_provider=meter_provider)
        self._runs_finished = meter.create_counter(
            "broker.runs.finished", unit="{run}", description="Runs that reached a terminal status, by status."
        )
        self._run_duration = meter.create_histogram(
            "broker.run.duration", unit="s", description="Seconds from a run's creation to its terminal status."
        )
        self._findings = meter.create_counter(
            "broker.hygiene.findings",
            unit="{finding}",
            description="Hygiene findings opened and resolved, by change, rule and severity.",
        )
        # A histogram, not a gauge: Azure Monitor exports histograms as deltas, so each scan's count is sent once. A
        # synchronous gauge is cumulative there, and every instance that ever scanned would keep re-sending its
        # last count as if it were current.
        self._open_findings = meter.create_histogram(
            "broker.hygiene.findings.open",
            unit="{finding}",
            description="Findings open after a hygiene scan, by rule and severity: one point per rule and scan.",
        )
        self._topic_failures = meter.create_counter(
            "broker.events.topic_failures",
            unit="{event}",
            description="Events the queue took but the Event Grid topic refused or did not answer for.",
        )

    @contextmanager
    def step_span(self, run_id: str, step: str) -> Iterator[Span]:
        """The span of one workflow step; the caller sets OUTCOME on it."""
        with self._span("deployment.step", {RUN_ID: run_id, STEP: step}) as span:
            yield span

    @contextmanager
    def submit_span(self) -> Iterator[Span]:
        """The span around intake; the run id is known only once intake has made (or found) the run."""
        with self._span("deployment.submit", {}) as span:
            yield span

    @staticmethod
    def describe_submission(span: Span, run_id: str, *, created: bool, problem: Problem | None) -> None:
        span.set_attributes({RUN_ID: run_id, CREATED: created})
        if problem is not None:
            span.set_attribute(PROBLEM, problem.kind.slug)

    def run_finished(self, run: RunRecord) -> None:
        """Count a run that reached a terminal status, and how long it took from creation to get there."""
        if not run.is_terminal:
            return
        attributes = {"status": run.status.value}
        self._runs_finished.add(1, attributes)
        self._run_duration.record((run.steps[-1].at - run.created_at).total_seconds(), attributes)

    def findings_changed(self, *, opened: Mapping[FindingKind, int], resolved: Mapping[FindingKind, int]) -> None:
        """Count the findings a scan opened and resolved; both are counts by (rule, severity)."""
        for change, counts in (("opened", opened), ("resolved", resolved)):
            for (rule, severity), count in counts.items():
                if count:
                    self._findings.add(count, {"change": change, "rule": rule, "severity": severity.value})

    def findings_open(self, counts: Mapping[FindingKind, int]) -> None:
        """Record the findings open after a scan, by (rule, severity). Zero counts are recorded too: a rule whose
        findings all resolved reports 0 rather than leaving its last count standing."""
        for (rule, severity), count in counts.items():
            self._open_findings.record(count, {"rule": rule, "severity": severity.value})

    def topic_failed(self, event_type: str) -> None:
        self._topic_failures.add(1, {"type": event_type})

    @contextmanager
    def _span(self, name: str, attributes: Mapping[str, AttributeValue]) -> Iterator[Span]:
        with self._tracer.start_as_current_span(
            name, attributes=attributes, record_exception=False, set_status_on_exception=False
        ) as span:
            try:
                yield span
            except Exception as error:
                span.set_attribute("error.type", type(error).__qualname__)
                span.set_status(Status(StatusCode.ERROR))
                raise


# Bound to the global providers; tests give the workflow and the service their own BrokerTelemetry instead.
BROKER_TELEMETRY = BrokerTelemetry()
