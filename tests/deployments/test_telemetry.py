"""The broker's spans and metrics, recorded on private providers (the global ones are never touched)."""

import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from shared.azure_errors import AzureCallError
from shared.engine import PROVISION, STORE_KEYS, SUBSCRIBE, VERIFY, StepTimings, WorkItem
from shared.plan import plan_for
from shared.runs import RunStatus
from shared.telemetry import BrokerTelemetry

from .scenario import CATALOG, DIRECT_MODEL, MARKETPLACE_MODEL, REQUESTER, WORKSPACE_ID, build_world, policy, request

REPO_ROOT = Path(__file__).resolve().parents[2]
RUN_SECONDS = 90


@dataclass
class Recorded:
    telemetry: BrokerTelemetry
    spans: InMemorySpanExporter
    metrics: InMemoryMetricReader

    def spans_named(self, name: str) -> list[ReadableSpan]:
        return [span for span in self.spans.get_finished_spans() if span.name == name]

    def steps(self) -> list[tuple[str, str]]:
        return [
            (span.attributes["broker.step"], span.attributes["broker.outcome"])
            for span in self.spans_named("deployment.step")
        ]

    def points(self, metric_name: str) -> list:
        data = self.metrics.get_metrics_data()
        return [
            point
            for resource in (data.resource_metrics if data else [])
            for scope in resource.scope_metrics
            for metric in scope.metrics
            if metric.name == metric_name
            for point in metric.data.data_points
        ]

    def finished(self) -> dict[str, int]:
        return {point.attributes["status"]: point.value for point in self.points("broker.runs.finished")}


@pytest.fixture
def recorded():
    spans = InMemorySpanExporter()
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(spans))
    reader = InMemoryMetricReader()
    meter_provider = MeterProvider(metric_readers=[reader])
    yield Recorded(BrokerTelemetry(tracer_provider=tracer_provider, meter_provider=meter_provider), spans, reader)
    tracer_provider.shutdown()
    meter_provider.shutdown()


@pytest.fixture
def world(recorded):
    return build_world(telemetry=recorded.telemetry)


def submit(world, model=MARKETPLACE_MODEL):
    submission = world.service.submit(request(model), caller=REQUESTER)
    assert submission.answer == "created"
    return submission.run


def test_a_marketplace_deployment_traces_each_step_and_counts_one_success(world, recorded):
    run = submit(world)
    world.clock.advance(RUN_SECONDS)

    world.drain()

    assert world.runs.get(run.id).run.status is RunStatus.SUCCEEDED
    # Each operation is started, polled while running, then seen finished (see test_workflow's happy path).
    assert recorded.steps() == [
        (SUBSCRIBE, "waiting"),
        (SUBSCRIBE, "waiting"),
        (SUBSCRIBE, "advanced"),
        (PROVISION, "waiting"),
        (PROVISION, "waiting"),
        (PROVISION, "advanced"),
        (STORE_KEYS, "advanced"),
        (VERIFY, "advanced"),
    ]
    assert {span.attributes["broker.run_id"] for span in recorded.spans_named("deployment.step")} == {run.id}
    assert recorded.finished() == {"Succeeded": 1}
    (duration,) = recorded.points("broker.run.duration")
    assert (duration.count, duration.sum, dict(duration.attributes)) == (1, RUN_SECONDS, {"status": "Succeeded"})
    (intake,) = recorded.spans_named("deployment.submit")
    assert dict(intake.attributes) == {"broker.run_id": run.id, "broker.created": True}


def test_no_span_carries_a_key_value(world, recorded):
    run = submit(world)
    world.drain()

    keys = world.ml.endpoint_keys(WORKSPACE_ID, plan_for(run.request, CATALOG).endpoint_name)
    texts = [
        str(value)
        for span in recorded.spans.get_finished_spans()
        for value in [*span.attributes.values(), span.status.description]
    ]
    assert recorded.spans_named("deployment.step")
    assert not [text for text in texts if keys.primary in text or keys.secondary in text]


def test_a_failed_run_is_counted_failed(world, recorded):
    run = submit(world)
    world.ml.fail_next_operation = ("MarketplaceSubscriptionPurchaseFailed", "Purchase eligibility check failed.")

    world.drain()

    assert world.runs.get(run.id).run.status is RunStatus.FAILED
    assert recorded.steps()[-1] == (SUBSCRIBE, "failed")
    assert recorded.finished() == {"Failed": 1}
    assert [point.count for point in recorded.points("broker.run.duration")] == [1]


def test_a_transient_error_is_a_retried_step_and_a_stale_message_a_dropped_one(world, recorded):
    run = submit(world, DIRECT_MODEL)
    world.ml.fail_next("begin_create_endpoint", AzureCallError(429, "TooManyRequests", "Slow down.", retry_after=5))

    world.step()
    world.deliver(WorkItem(run.id, SUBSCRIBE))

    assert recorded.steps() == [(PROVISION, "retried"), (SUBSCRIBE, "dropped")]
    assert recorded.finished() == {}


def test_a_request_a_ready_deployment_answers_runs_nothing_and_counts_nothing(world, recorded):
    run = submit(world)
    world.drain()
    steps_before = recorded.steps()

    submission = world.service.submit(request(MARKETPLACE_MODEL), caller=REQUESTER)

    assert (submission.answer, submission.run) == ("ready", None)
    assert recorded.steps() == steps_before
    assert recorded.finished() == {"Succeeded": 1}
    first, again = recorded.spans_named("deployment.submit")
    assert dict(first.attributes) == {"broker.run_id": run.id, "broker.created": True}
    assert again.attributes["broker.created"] is False


def test_a_failed_verification_is_a_failed_verify_step(recorded):
    world = build_world(telemetry=recorded.telemetry, timings=StepTimings(carry_on_seconds=0))
    run = submit(world, DIRECT_MODEL)
    world.step_until(VERIFY)
    world.ml.set_endpoint_health(WORKSPACE_ID, run.endpoint.name, "Offline")

    world.drain()

    assert recorded.steps()[-1] == (VERIFY, "failed")
    assert recorded.finished() == {"Failed": 1}


def test_a_rejected_request_is_counted_and_its_problem_named_on_the_intake_span(recorded):
    world = build_world(preflight_policy=policy(registries="azureml-deepseek"), telemetry=recorded.telemetry)

    submission = world.service.submit(request(MARKETPLACE_MODEL), caller=REQUESTER)

    assert submission.run.status is RunStatus.REJECTED
    (intake,) = recorded.spans_named("deployment.submit")
    assert intake.attributes["broker.problem"] == submission.problem.kind.slug
    assert recorded.finished() == {"Rejected": 1}


def test_an_unexpected_error_marks_the_step_span_by_its_type_alone(world, recorded):
    run = submit(world, DIRECT_MODEL)
    world.ml.fail_next("begin_create_endpoint", RuntimeError("a message that could quote anything"))

    with pytest.raises(RuntimeError):
        world.step()

    (span,) = recorded.spans_named("deployment.step")
    assert span.attributes["error.type"] == "RuntimeError"
    assert not span.status.is_ok
    assert "quote" not in str(span.status.description)
    assert not span.events
    assert span.attributes["broker.run_id"] == run.id


@pytest.mark.parametrize(
    "environ",
    [
        {},
        {
            "APPLICATIONINSIGHTS_CONNECTION_STRING": "InstrumentationKey=x",
            "PYTHON_APPLICATIONINSIGHTS_ENABLE_TELEMETRY": "true",
        },
    ],
    ids=["no connection string", "the worker exports"],
)
def test_configure_telemetry_leaves_the_providers_alone(environ):
    # A fresh interpreter, so the check sees this call's imports and global providers only.
    script = (
        "import json, sys; from opentelemetry import trace; from shared.adapters.monitor import configure_telemetry; "
        f"done = configure_telemetry({environ!r}); "
        "provider = type(trace.get_tracer_provider()).__name__; "
        "print(json.dumps([done, 'azure.monitor.opentelemetry' in sys.modules, provider]))"
    )
    result = subprocess.run([sys.executable, "-c", script], cwd=REPO_ROOT, capture_output=True, text=True, check=True)

    assert json.loads(result.stdout.strip().splitlines()[-1]) == [False, False, "ProxyTracerProvider"]
