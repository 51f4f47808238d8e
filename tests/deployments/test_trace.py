"""One trace per request: intake, every step (across queue hops and poll delays) and every event of a deployment share
the trace of the request's own span, recorded here with an in-memory exporter."""

from dataclasses import replace

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from shared.engine import WorkItem
from shared.runs import RunStatus
from shared.telemetry import BrokerTelemetry, TraceContext, continued

from .scenario import MARKETPLACE_MODEL, REQUESTER, build_world, request

# The trace context a caller (or the Functions host) hands the POST.
INCOMING = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
INCOMING_TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
RUN_SECONDS = 90


@pytest.fixture
def spans():
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    yield provider, exporter
    provider.shutdown()


def trace_id_of(traceparent: str) -> str:
    return traceparent.split("-")[1]


def test_one_trace_spans_the_post_every_step_and_every_event(spans):
    provider, exporter = spans
    world = build_world(telemetry=BrokerTelemetry(tracer_provider=provider))
    tracer = provider.get_tracer("the-host")

    with tracer.start_as_current_span("POST /api/deployments") as server_span:
        submission = world.service.submit(request(MARKETPLACE_MODEL), caller=REQUESTER, ticket="T-1")
    root_trace = server_span.get_span_context().trace_id
    world.clock.advance(RUN_SECONDS)
    work_messages = []
    while world.work.sent:
        work_messages.append(world.step())

    assert world.run(submission.run.id).status is RunStatus.SUCCEEDED
    finished = exporter.get_finished_spans()
    (intake,) = [span for span in finished if span.name == "deployment.submit"]
    steps = [span for span in finished if span.name == "deployment.step"]
    # Subscribe and provision each wait on Azure twice: the delayed polls stay in the trace too.
    assert len(steps) == 8
    assert {span.context.trace_id for span in finished} == {root_trace}
    assert intake.parent.span_id == server_span.get_span_context().span_id
    # Every step, whichever delivery ran it, is a child of the intake span that queued the chain.
    assert {span.parent.span_id for span in steps} == {intake.context.span_id}
    assert {span.attributes["broker.run_id"] for span in steps} == {submission.run.id}
    assert work_messages
    assert {trace_id_of(message.body["traceparent"]) for message in work_messages} == {format(root_trace, "032x")}
    events = [message.body for message in world.events.sent]
    assert [event["type"].rsplit(".", 1)[1] for event in events] == ["accepted", "succeeded"]
    assert {trace_id_of(event["traceparent"]) for event in events} == {format(root_trace, "032x")}
    # The accepted event is sent under intake's span, the succeeded one under the last step's.
    step_ids = {format(span.context.span_id, "016x") for span in steps}
    assert events[0]["traceparent"].split("-")[2] == format(intake.context.span_id, "016x")
    assert events[1]["traceparent"].split("-")[2] in step_ids


def test_without_a_tracer_provider_the_incoming_context_still_travels():
    """No exporter configured (no Application Insights): nothing is recorded, but the caller's context is passed on
    unchanged in every work message and event, so a downstream system can still join them."""
    world = build_world(telemetry=BrokerTelemetry(tracer_provider=trace.NoOpTracerProvider()))

    with continued(TraceContext.of(INCOMING)):
        world.service.submit(request(MARKETPLACE_MODEL), caller=REQUESTER)
    world.clock.advance(RUN_SECONDS)
    traced_messages = []
    while world.work.sent:
        traced_messages.append(world.step().body.get("traceparent"))

    assert traced_messages
    assert set(traced_messages) == {INCOMING}
    assert {message.body["traceparent"] for message in world.events.sent} == {INCOMING}


def test_a_rejected_request_and_a_teardown_carry_their_own_requests_traces(spans):
    provider, _exporter = spans
    world = build_world(telemetry=BrokerTelemetry(tracer_provider=provider))
    tracer = provider.get_tracer("the-host")
    run = world.deploy()
    world.events.sent.clear()

    with tracer.start_as_current_span("DELETE") as delete_span:
        world.service.lifecycle.delete(run.deployment_id, caller=REQUESTER, delete_subscription=False)
    world.drain()
    with tracer.start_as_current_span("POST") as rejected_span:
        world.service.submit(request("azureml://registries/unknown/models/nothing"), caller=REQUESTER)

    delete_trace = format(delete_span.get_span_context().trace_id, "032x")
    rejected_trace = format(rejected_span.get_span_context().trace_id, "032x")
    kinds = {
        event.body["type"].rsplit(".", 1)[1]: trace_id_of(event.body["traceparent"]) for event in world.events.sent
    }
    assert kinds == {"accepted": delete_trace, "deleted": delete_trace, "rejected": rejected_trace}


def test_a_message_without_a_trace_context_runs_in_the_delivering_invocations_trace(spans):
    """What the watchdog re-enqueues carries no trace context (the run keeps none): the step joins the trace of the
    invocation that delivered it."""
    provider, exporter = spans
    world = build_world(telemetry=BrokerTelemetry(tracer_provider=provider))
    submission = world.submit()
    # As the watchdog writes it: the run's current step under its token, and no trace context.
    item = replace(WorkItem.from_message(world.work.take().text), traceparent=None)

    tracer = provider.get_tracer("the-host")
    with tracer.start_as_current_span("queue invocation") as invocation:
        world.deliver(item)

    (step,) = [span for span in exporter.get_finished_spans() if span.name == "deployment.step"]
    assert step.context.trace_id == invocation.get_span_context().trace_id
    assert step.attributes["broker.run_id"] == submission.run.id


@pytest.mark.parametrize(
    ("traceparent", "continued_as"),
    [(INCOMING, INCOMING_TRACE_ID), ("not-a-traceparent", None), ("00-" + "0" * 32 + "-00f067aa0ba902b7-01", None)],
)
def test_a_work_item_continues_only_a_valid_traceparent(traceparent, continued_as):
    item = WorkItem.from_message(f'{{"run_id": "r", "step": "provision", "traceparent": "{traceparent}"}}')

    context = item.trace_context
    assert (context.trace_id if context else None) == continued_as
    assert item.next("store-keys").traceparent == traceparent  # the chain keeps what it was given


def test_a_work_item_with_a_trace_context_that_is_not_text_is_malformed():
    from shared.engine import MalformedWorkItemError

    with pytest.raises(MalformedWorkItemError):
        WorkItem.from_message('{"run_id": "r", "step": "provision", "traceparent": 7}')
