"""The watchdog and the step tokens: a run whose chain of work messages died with its host is set going again, once,
and whatever the old chain still holds is dropped when it comes back."""

import json
import logging

import azure.functions as func
import pytest
from azure.functions.timer import TimerRequest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

from handlers import watchdog as handlers
from shared.config import Settings
from shared.engine import PROVISION, SUBSCRIBE, VERIFY, StepTimings, WorkItem
from shared.runs import RunStatus
from shared.watchdog import MAX_RECOVERIES, Watchdog, WatchdogTelemetry

from .scenario import DIRECT_MODEL, MARKETPLACE_MODEL, REQUESTER, build_world, request

STALL_SECONDS = 60.0


def watchdog(world, stall_seconds: float = STALL_SECONDS) -> Watchdog:
    return Watchdog(runs=world.runs, work=world.work, clock=world.clock, stall_seconds=stall_seconds)


def submit(world, model=MARKETPLACE_MODEL):
    submission = world.service.submit(request(model), caller=REQUESTER)
    assert submission.answer == "created"
    return submission.run


def lose(world):
    """The oldest work message, leased by a host that then died: it stays invisible for the whole lease."""
    return world.work.take()


def creates(world) -> list[str]:
    return [name for name in world.ml.call_names if name.startswith("begin_create")]


# Step tokens.


def test_every_status_change_moves_the_step_token_on_and_the_next_message_carries_it(stepwise):
    world = stepwise
    run = submit(world)

    world.drain()

    tokens = [message.body["step_token"] for message in world.processed]
    assert tokens == [2, 2, 2, 3, 3, 3, 4, 5]
    assert world.run(run.id).step_token == 6
    assert "stepToken" not in world.run(run.id).to_public_dict()
    assert '"stepToken": 6' in world.runs.stored_text()


def test_a_message_without_a_token_or_with_an_old_one_is_dropped_without_touching_azure(world, caplog):
    run = submit(world, DIRECT_MODEL)
    world.work.sent.clear()
    world.ml.calls.clear()

    with caplog.at_level(logging.INFO):
        world.deliver(WorkItem(run.id, PROVISION))
        world.deliver(WorkItem(run.id, PROVISION, step_token=run.step_token - 1))

    assert world.ml.calls == []
    assert world.work.sent == []
    assert world.run(run.id).status is RunStatus.PROVISIONING
    assert f"step token {run.step_token - 1} dropped" in caplog.text


def test_a_duplicate_delivery_under_the_same_token_moves_the_run_and_queues_the_next_step_once(stepwise):
    world = stepwise
    submit(world, DIRECT_MODEL)
    world.step()
    world.step()
    polled = world.work.take()  # the operation's last poll, delivered twice at once: both find it finished

    world.service.advance(polled.text)
    world.service.advance(polled.text)

    assert [message.body["step"] for message in world.work.sent] == ["store-keys"]


def test_a_duplicate_delivery_carries_the_run_on_once(world):
    run = submit(world, DIRECT_MODEL)
    world.step()
    world.step()
    polled = world.work.take()  # the last poll, delivered twice: the first carries the run to its end

    world.service.advance(polled.text)
    world.service.advance(polled.text)

    assert world.work.sent == []
    assert world.run(run.id).status is RunStatus.SUCCEEDED
    assert world.event_types() == ["accepted", "succeeded"]
    assert len(world.ml.calls_to("list_keys")) == 1


# The watchdog.


def test_a_run_whose_message_died_with_its_host_is_re_enqueued_once_under_a_new_token_and_finishes(world):
    run = submit(world)
    lost = lose(world)
    world.clock.advance(STALL_SECONDS)

    report = watchdog(world).sweep()
    again = watchdog(world).sweep()

    (recovery,) = report.recovered
    assert (recovery.run_id, recovery.step, recovery.status, recovery.silent_seconds) == (
        run.id,
        SUBSCRIBE,
        "Subscribing",
        STALL_SECONDS,
    )
    assert world.work.bodies == [{"run_id": run.id, "step": SUBSCRIBE, "attempt": 0, "step_token": run.step_token + 1}]
    assert (again.in_flight, again.recovered) == (1, [])
    assert world.run(run.id).recoveries == 1
    world.drain()
    assert world.run(run.id).status is RunStatus.SUCCEEDED
    assert world.event_types() == ["accepted", "succeeded"]
    assert creates(world) == ["begin_create_subscription", "begin_create_endpoint"]
    calls = len(world.ml.calls)
    world.service.advance(lost.text)  # its lease ran out at last
    assert len(world.ml.calls) == calls
    assert world.work.sent == []
    assert watchdog(world).sweep().in_flight == 0


def test_a_chain_lost_while_polling_an_operation_waits_for_it_rather_than_starting_it_again(world):
    run = submit(world)
    world.step()  # the subscription is being created; its first poll is queued
    lose(world)
    world.clock.advance(STALL_SECONDS)

    watchdog(world).sweep()
    world.step()  # the new chain finds the subscription still Creating, without an operation to poll

    assert world.work.sent[-1].delay_seconds == StepTimings().poll_seconds
    world.ml.finish_operations()  # Azure finishes it meanwhile
    world.drain()
    world.ml.finish_operations()
    world.drain()
    assert world.run(run.id).status is RunStatus.SUCCEEDED
    assert creates(world) == ["begin_create_subscription", "begin_create_endpoint"]
    assert world.event_types() == ["accepted", "succeeded"]


def test_a_lost_provisioning_poll_is_recovered_without_a_second_endpoint(world):
    run = submit(world, DIRECT_MODEL)
    world.step()  # PUT the endpoint
    lose(world)
    world.clock.advance(STALL_SECONDS)

    watchdog(world).sweep()
    world.ml.finish_operations()
    world.drain()

    assert world.run(run.id).status is RunStatus.SUCCEEDED
    assert creates(world) == ["begin_create_endpoint"]
    assert world.event_types() == ["accepted", "succeeded"]


def test_a_run_whose_host_died_before_its_first_step_was_queued_is_started(world):
    world.work.send = lambda message, delay_seconds=0: None  # intake stored the run and died before queueing
    run = submit(world, DIRECT_MODEL)
    del world.work.send
    world.clock.advance(STALL_SECONDS)

    (recovery,) = watchdog(world).sweep().recovered

    assert recovery.step == PROVISION
    world.drain()
    assert world.run(run.id).status is RunStatus.SUCCEEDED


def test_a_healthy_run_younger_than_the_threshold_is_left_alone(world):
    submit(world)
    world.clock.advance(STALL_SECONDS - 1)

    report = watchdog(world).sweep()

    assert (report.in_flight, report.recovered, report.raced) == (1, [], 0)
    assert len(world.work.sent) == 1


def test_a_step_polling_a_long_operation_keeps_a_heartbeat_so_its_chain_is_never_replaced(world):
    world.ml.polls_before_done = 60  # five minutes of polls, 5 s apart
    world.ml.poll_retry_after = 5.0
    run = submit(world, DIRECT_MODEL)
    the_watchdog = watchdog(world)
    recovered, beats, polls = [], [], 0
    save = world.runs.save

    def counted(record, etag):
        beats.append(record.stepped_at)
        return save(record, etag)

    world.runs.save = counted
    while world.run(run.id).status is RunStatus.PROVISIONING:
        world.clock.advance(5)
        world.step()
        polls += 1
        if polls % 6 == 0:
            recovered += the_watchdog.sweep().recovered
    del world.runs.save

    assert recovered == []
    assert polls > 60
    # A heartbeat every other poll (10 s), not one per poll: the few other writes are the status changes.
    assert polls / 2 - 2 <= len(set(beats) - {None}) <= polls / 2 + 1
    world.drain()
    assert world.event_types() == ["accepted", "succeeded"]


def test_two_sweeps_at_once_re_enqueue_the_run_once(world):
    run = submit(world)
    lose(world)
    world.clock.advance(STALL_SECONDS)
    first, second = watchdog(world), watchdog(world)
    reports = []
    world.runs.before_next("save", lambda: reports.append(second.sweep()))

    reports.append(first.sweep())

    assert [len(report.recovered) for report in reports] == [1, 0]
    assert reports[1].raced == 1
    assert len(world.work.sent) == 1
    world.drain()
    assert world.run(run.id).status is RunStatus.SUCCEEDED
    assert world.event_types() == ["accepted", "succeeded"]


def test_a_step_under_way_when_the_watchdog_replaces_its_chain_writes_no_status_and_queues_nothing(world):
    run = submit(world, DIRECT_MODEL)
    world.ml.synchronous = True  # the endpoint is provisioned by the PUT itself
    world.step()  # PUT; the step comes back to look at the endpoint
    (looking,) = world.work.sent
    world.work.sent.clear()
    world.clock.advance(STALL_SECONDS)

    def stall_then_sweep():
        # The step's heartbeat is written; the step is then slow, long enough for the watchdog to step in.
        world.clock.advance(STALL_SECONDS)
        world.runs.before_next("save", lambda: watchdog(world).sweep())

    world.runs.before_next("save", stall_then_sweep)
    world.service.advance(looking.text)

    assert [message.body["step"] for message in world.work.sent] == [PROVISION]  # the watchdog's, nothing else
    assert world.run(run.id).status is RunStatus.PROVISIONING
    world.drain()
    assert world.run(run.id).status is RunStatus.SUCCEEDED
    assert world.event_types() == ["accepted", "succeeded"]
    assert creates(world) == ["begin_create_endpoint"]


def test_only_the_chain_that_ends_the_run_announces_it(stepwise):
    world = stepwise
    run = submit(world, DIRECT_MODEL)
    world.step_until(VERIFY)
    verify = world.work.take()
    world.clock.advance(STALL_SECONDS)
    watchdog(world).sweep()

    world.service.advance(verify.text)  # the replaced chain's message: dropped
    world.drain()

    assert world.run(run.id).status is RunStatus.SUCCEEDED
    assert world.event_types() == ["accepted", "succeeded"]


def test_a_run_re_enqueued_the_most_times_without_moving_is_left_to_hygiene(world, caplog):
    run = submit(world)
    the_watchdog = watchdog(world)

    with caplog.at_level(logging.WARNING):
        for _ in range(MAX_RECOVERIES + 2):
            world.work.sent.clear()  # each re-enqueued message dies too
            world.clock.advance(STALL_SECONDS)
            report = the_watchdog.sweep()

    assert report.exhausted == [run.id]
    assert world.run(run.id).recoveries == MAX_RECOVERIES
    assert caplog.records[-1].levelno == logging.ERROR  # the last recovery said it was the last


def test_a_run_in_flight_without_a_step_to_resume_is_reported_not_guessed_at(world):
    run = submit(world)
    validating = world.run(run.id).model_copy(update={"status": RunStatus.VALIDATING, "steps": run.steps[:2]})
    stored = world.runs.get(run.id)
    world.runs.save(validating, stored.etag)
    world.work.sent.clear()
    world.clock.advance(STALL_SECONDS)

    report = watchdog(world).sweep()

    assert (report.unresumable, report.recovered, world.work.sent) == ([run.id], [], [])


def test_finished_runs_are_not_in_flight_and_the_sweep_pages_through_the_rest():
    world = build_world()
    done = world.deploy(DIRECT_MODEL)
    pending = [
        world.runs.create(
            done.model_copy(update={"id": f"pending-{n}", "status": RunStatus.PROVISIONING, "steps": done.steps[:3]})
        )
        for n in range(150)
    ]
    world.clock.advance(STALL_SECONDS)

    report = watchdog(world).sweep()

    assert report.in_flight == len(pending) == len(report.recovered)
    assert done.id not in {recovery.run_id for recovery in report.recovered}
    assert {json.loads(message.text)["step"] for message in world.work.sent} == {PROVISION}


def test_each_recovery_is_counted_by_status_and_step(world):
    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader])
    telemetry = WatchdogTelemetry(meter_provider=provider)
    submit(world)
    world.work.sent.clear()
    world.clock.advance(STALL_SECONDS)

    Watchdog(runs=world.runs, work=world.work, clock=world.clock, stall_seconds=60, telemetry=telemetry).sweep()

    points = [
        point
        for resource in reader.get_metrics_data().resource_metrics
        for scope in resource.scope_metrics
        for metric in scope.metrics
        if metric.name == "broker.watchdog.recoveries"
        for point in metric.data.data_points
    ]
    assert [(dict(point.attributes), point.value) for point in points] == [
        ({"status": "Subscribing", "step": SUBSCRIBE}, 1)
    ]
    provider.shutdown()


# Settings.


def test_the_stall_threshold_defaults_to_sixty_seconds_and_must_be_a_positive_number():
    assert Settings.from_env({}).watchdog_stall_seconds == 60
    assert Settings.from_env({"WATCHDOG_STALL_SECONDS": "5"}).watchdog_stall_seconds == 5
    for bad in ("0", "-1", "soon", "nan", "inf"):
        with pytest.raises(ValueError, match="WATCHDOG_STALL_SECONDS"):
            Settings.from_env({"WATCHDOG_STALL_SECONDS": bad})


# The timer.


def test_the_blueprint_binds_a_timer_on_the_schedule_setting_without_a_schedule_monitor():
    app = func.FunctionApp()
    app.register_functions(handlers.blueprint)
    (function,) = app.get_functions()

    timer = function.get_trigger()
    assert function.get_function_name() == "watchdog"
    assert (timer.schedule, timer.use_monitor, timer.run_on_startup) == ("%WATCHDOG_SCHEDULE%", False, False)


def test_the_timer_sweeps_once_and_logs_what_it_did(world, monkeypatch, caplog):
    run = submit(world)
    world.work.sent.clear()
    world.clock.advance(STALL_SECONDS)
    monkeypatch.setattr(handlers, "run_watchdog", lambda: watchdog(world))

    with caplog.at_level(logging.INFO):
        handlers.watchdog(TimerRequest(past_due=True))

    assert [message.body["step"] for message in world.work.sent] == [SUBSCRIBE]
    assert f"run {run.id} (Subscribing) silent for 60s; subscribe re-enqueued" in caplog.text
    assert f"watchdog (past due): {{'inFlight': 1, 'recovered': ['{run.id}']" in caplog.text
