"""The broker's own telemetry: a span for intake and for each workflow step, run outcomes as metrics.

Only the vendor-neutral OpenTelemetry API is used. Until a provider is installed (by the Functions worker, or by
shared/adapters/monitor.py) the default instruments record nothing; they start exporting once one is, because the
API hands out proxies to the global providers. Attributes carry ids, statuses and problem slugs only: never key
values, request bodies or secret values. Exceptions are recorded by type alone, as their messages may quote Azure.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from enum import StrEnum

from opentelemetry import metrics, trace
from opentelemetry.trace import Span, Status, StatusCode
from opentelemetry.util.types import AttributeValue

from shared.problems import Problem
from shared.runs import RunRecord
from shared.version import broker_version

NAME = "serverless_deployment_broker"
RUN_ID = "broker.run_id"
STEP = "broker.step"
OUTCOME = "broker.outcome"
CREATED = "broker.created"
PROBLEM = "broker.problem"


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
            "broker.hygiene.findings", unit="{finding}", description="Hygiene findings opened and resolved."
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

    def findings_changed(self, *, opened: int, resolved: int) -> None:
        for change, count in (("opened", opened), ("resolved", resolved)):
            if count:
                self._findings.add(count, {"change": change})

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
