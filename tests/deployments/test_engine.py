"""The step engine: work messages, polling once per message, retries from the queue, and settling claims."""

import json

import pytest

from shared.azure_errors import AzureCallError
from shared.engine import (
    CLAIM_SETTLE_SECONDS,
    PROVISION,
    STEPS,
    STORE_KEYS,
    SUBSCRIBE,
    VERIFY,
    MalformedWorkItemError,
    StepFailedError,
    StepQueue,
    StepTimings,
    WorkItem,
    settled_run,
)
from shared.ports import Operation
from shared.runs import RunRecord
from shared.telemetry import StepOutcome

from .fakes import START, FakeMachineLearning, FakeQueue, FixedClock, InMemoryRunRepository
from .scenario import DIRECT_MODEL, REQUESTER, WORKSPACE_ID, Waiting, request

URL = "https://management.example.test/operations/1?api-version=2024-01-01-preview"
# When the engine's clock stands, as POSIX seconds: the moment a wait that begins now began.
NOW = START.timestamp()
THROTTLED = AzureCallError(429, "TooManyRequests", "Slow down.", retry_after=17)
DENIED = AzureCallError(403, "AuthorizationFailed", "No write on the workspace.")


class Engine:
    def __init__(self, timings: StepTimings | None = None) -> None:
        self.ml, self.work, self.clock = FakeMachineLearning(), FakeQueue(), FixedClock()
        self.steps = StepQueue(self.ml, self.work, timings or StepTimings(), clock=self.clock)
        self.failures: list[tuple[str, str]] = []

    def run(self, item: WorkItem, step) -> StepOutcome:
        return self.steps.run(item, step, lambda code, message: self.failures.append((code, message)))

    def queued(self) -> list[tuple[dict, float]]:
        return [(message.body, message.delay_seconds) for message in self.work.sent]

    def operation(self) -> Operation:
        self.ml.add_endpoint(WORKSPACE_ID, "ep", DIRECT_MODEL)
        operation = self.ml.begin_delete_endpoint(WORKSPACE_ID, "ep")
        assert operation is not None
        return operation


@pytest.fixture
def engine() -> Engine:
    return Engine()


def raising(error: Exception):
    def step():
        raise error

    return step


# Work items.


def test_a_message_leaves_out_the_operation_until_there_is_one():
    assert WorkItem("run-1", SUBSCRIBE).to_message() == {"run_id": "run-1", "step": SUBSCRIBE, "attempt": 0}
    assert WorkItem("run-1", SUBSCRIBE, URL, 2).to_message()["operation_url"] == URL


@pytest.mark.parametrize("item", [WorkItem("run-1", step) for step in STEPS] + [WorkItem("run-1", PROVISION, URL, 3)])
def test_a_message_reads_back_as_the_item_it_came_from(item):
    assert WorkItem.from_message(json.dumps(item.to_message())) == item


def test_verify_is_a_step():
    assert VERIFY in STEPS
    assert WorkItem.from_message('{"run_id": "run-1", "step": "verify"}') == WorkItem("run-1", VERIFY)


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("not json", "not a work item"),
        ("[1, 2]", "not a work item"),
        ("null", "not a work item"),
        ('{"run_id": "run-1", "step": "provision", "colour": "blue"}', "not a work item"),
        ('{"step": "provision"}', "not a work item"),
        ('{"run_id": "run-1", "step": "deploy"}', "unknown step 'deploy'"),
        ('{"run_id": 7, "step": "provision"}', "unknown step"),
        ('{"run_id": "run-1", "step": "provision", "attempt": "2"}', "attempt '2' is not a count"),
        ('{"run_id": "run-1", "step": "provision", "attempt": -1}', "attempt -1 is not a count"),
        ('{"run_id": "run-1", "step": "provision", "attempt": 1.5}', "attempt 1.5 is not a count"),
        ('{"run_id": "run-1", "step": "provision", "operation_url": 3}', "operation_url is not a URL"),
    ],
)
def test_anything_else_is_malformed(text, reason):
    with pytest.raises(MalformedWorkItemError, match=reason):
        WorkItem.from_message(text)


def test_polling_an_operation_starts_its_attempts_afresh_and_notes_when_the_wait_began():
    item = WorkItem("run-1", PROVISION, attempt=3).polling(URL, since=NOW)

    assert (item.operation_url, item.attempt, item.waiting_since) == (URL, 0, NOW)
    assert WorkItem.from_message(json.dumps(item.to_message())) == item


def test_a_message_from_before_waits_were_timed_reads_without_a_start():
    text = json.dumps({"run_id": "run-1", "step": PROVISION, "operation_url": URL, "attempt": 0, "step_token": 2})

    assert WorkItem.from_message(text).waiting_since is None


@pytest.mark.parametrize("since", ["yesterday", True, None])
def test_a_wait_start_must_be_a_time(since):
    text = json.dumps({"run_id": "run-1", "step": PROVISION, "waiting_since": since})
    if since is None:
        assert WorkItem.from_message(text).waiting_since is None
        return
    with pytest.raises(MalformedWorkItemError, match="waiting_since"):
        WorkItem.from_message(text)


def test_an_earlier_wait_start_is_kept():
    item = WorkItem("run-1", PROVISION).waiting(since=NOW)

    assert item.waiting(since=NOW + 50).waiting_since == NOW


def test_a_retry_counts_the_attempt_and_keeps_the_operation():
    assert WorkItem("run-1", PROVISION, URL, 1).retried() == WorkItem("run-1", PROVISION, URL, 2)


def test_the_next_step_starts_clean():
    assert WorkItem("run-1", PROVISION, URL, 4).next(STORE_KEYS) == WorkItem("run-1", STORE_KEYS)


# Timings and failures.


@pytest.mark.parametrize(
    ("attempt", "retry_after", "expected"),
    [(0, None, 1.0), (4, None, 16.0), (9, None, 60.0), (9, 3.0, 3.0), (0, 0.0, 1.0), (2, 300.0, 300.0)],
)
def test_backoff_prefers_retry_after_and_caps_the_exponent(attempt, retry_after, expected):
    assert StepTimings().backoff(attempt, retry_after) == expected


def test_a_step_failure_carries_azures_code_and_message():
    failure = StepFailedError("QuotaExceeded", "No quota.")

    assert (failure.code, failure.message, str(failure)) == ("QuotaExceeded", "No quota.", "QuotaExceeded: No quota.")


# Polling an operation once per message.


def test_an_operation_still_running_is_polled_again_after_azures_retry_after_when_longer_than_the_floor(engine):
    item = WorkItem("run-1", PROVISION).polling(engine.operation().url, since=NOW)

    assert engine.steps.operation_finished(item) is False

    assert engine.queued() == [(item.to_message(), 4.0)]


def test_without_retry_after_the_poll_floor_applies_to_a_young_operation():
    engine = Engine(StepTimings(poll_seconds=2.5))
    engine.ml.poll_retry_after = None
    item = WorkItem("run-1", PROVISION).polling(engine.operation().url, since=NOW)

    engine.steps.operation_finished(item)

    assert engine.queued() == [(item.to_message(), 2.5)]


def test_an_older_operation_is_polled_after_a_share_of_its_age():
    engine = Engine(StepTimings(poll_seconds=2, poll_age_fraction=0.1, poll_max_seconds=30))
    engine.ml.poll_retry_after = None
    item = WorkItem("run-1", PROVISION).polling(engine.operation().url, since=NOW)
    engine.clock.advance(120)

    engine.steps.operation_finished(item)

    assert engine.queued() == [(item.to_message(), 12.0)]


def test_an_operation_polled_from_a_message_without_a_start_is_timed_from_now():
    engine = Engine(StepTimings(poll_seconds=2))
    engine.ml.poll_retry_after = None
    item = WorkItem("run-1", PROVISION, operation_url=engine.operation().url)

    engine.steps.operation_finished(item)

    assert engine.queued() == [({**item.to_message(), "waiting_since": NOW}, 2.0)]


def test_a_finished_operation_queues_nothing(engine):
    engine.ml.polls_before_done = 0
    item = WorkItem("run-1", PROVISION).polling(engine.operation().url, since=NOW)

    assert engine.steps.operation_finished(item) is True

    assert engine.work.sent == []
    assert engine.ml.endpoint(WORKSPACE_ID, "ep") is None


@pytest.mark.parametrize(
    ("error", "expected"),
    [(("QuotaExceeded", "No quota."), ("QuotaExceeded", "No quota.")), ((None, None), ("OperationFailed", None))],
)
def test_a_failed_operation_raises_with_azures_error(engine, error, expected):
    engine.ml.polls_before_done = 0
    engine.ml.fail_next_operation = error
    item = WorkItem("run-1", PROVISION).polling(engine.operation().url, since=NOW)

    with pytest.raises(StepFailedError) as raised:
        engine.steps.operation_finished(item)

    code, message = expected
    assert raised.value.code == code
    assert raised.value.message == (message or "Azure reported failure.")
    assert engine.work.sent == []


# Waiting and looking again.


def test_waiting_on_an_operation_polls_it_after_retry_after_or_the_floor_whichever_is_longer():
    engine = Engine(StepTimings(poll_seconds=2))
    item = WorkItem("run-1", PROVISION, attempt=2)

    assert engine.steps.wait(item, Operation(URL, retry_after=10)) is StepOutcome.WAITING
    engine.steps.wait(item, Operation(URL, retry_after=0.5))
    engine.steps.wait(item, Operation(URL))

    polling = {"run_id": "run-1", "step": PROVISION, "operation_url": URL, "attempt": 0, "waiting_since": NOW}
    assert engine.queued() == [(polling, 10), (polling, 2), (polling, 2)]


def test_a_write_that_finished_at_once_is_looked_at_again_shortly(engine):
    assert engine.steps.wait(WorkItem("run-1", PROVISION), None) is StepOutcome.WAITING

    assert engine.queued() == [({"run_id": "run-1", "step": PROVISION, "attempt": 1}, 1)]


def test_later_looks_at_the_same_step_on_the_poll_schedule_counting_the_attempt():
    engine = Engine(StepTimings(poll_seconds=7))

    assert engine.steps.later(WorkItem("run-1", VERIFY, attempt=4)) is StepOutcome.WAITING

    assert engine.queued() == [({"run_id": "run-1", "step": VERIFY, "attempt": 5, "waiting_since": NOW}, 7)]


def test_looking_again_keeps_the_attempt_and_backs_off_with_the_waits_age():
    engine = Engine(StepTimings(poll_seconds=2, poll_age_fraction=0.1, poll_max_seconds=30))
    item = WorkItem("run-1", PROVISION, attempt=1, waiting_since=NOW - 1000)

    assert engine.steps.look_again(item) is StepOutcome.WAITING

    assert engine.queued() == [(item.to_message(), 30)]


# The poll schedule.


@pytest.mark.parametrize(
    ("age", "retry_after", "expected"),
    [
        (0, None, 2.0),
        (15, None, 2.0),
        (40, None, 4.0),
        (120, None, 12.0),
        (3600, None, 30.0),
        (-5, None, 2.0),
        (0, 0.5, 2.0),
        (0, 10, 10),
        (120, 10, 12.0),
        (3600, 120, 120),
    ],
)
def test_the_poll_delay_grows_with_the_waits_age_between_floor_and_ceiling_and_honours_a_longer_retry_after(
    age, retry_after, expected
):
    timings = StepTimings(poll_seconds=2, poll_max_seconds=30, poll_age_fraction=0.1)

    assert timings.poll_delay(age, retry_after) == expected


def test_a_minute_long_operation_costs_about_twenty_polls_and_is_seen_finished_within_a_tenth_of_its_age():
    timings = StepTimings(poll_seconds=2, poll_max_seconds=30, poll_age_fraction=0.1)
    polls, age = [], 0.0
    while age < 60:
        age += timings.poll_delay(age)
        polls.append(age)

    assert len(polls) <= 24
    assert polls[-1] - 60 <= 0.1 * 60 + timings.poll_seconds


# Running a step.


def test_a_step_that_returns_nothing_advanced(engine):
    assert engine.run(WorkItem("run-1", PROVISION), lambda: None) is StepOutcome.ADVANCED
    assert engine.run(WorkItem("run-1", PROVISION), lambda: StepOutcome.WAITING) is StepOutcome.WAITING

    assert (engine.work.sent, engine.failures) == ([], [])


def test_a_step_failure_fails_the_run_with_its_code(engine):
    outcome = engine.run(WorkItem("run-1", PROVISION), raising(StepFailedError("NotHealthy", "Offline.")))

    assert outcome is StepOutcome.FAILED
    assert engine.failures == [("NotHealthy", "Offline.")]
    assert engine.work.sent == []


def test_a_throttled_step_is_queued_again_after_azures_retry_after_without_spending_an_attempt(engine):
    outcome = engine.run(WorkItem("run-1", PROVISION, URL, attempt=2), raising(THROTTLED))

    assert outcome is StepOutcome.RETRIED
    assert engine.queued() == [({"run_id": "run-1", "step": PROVISION, "operation_url": URL, "attempt": 2}, 17)]
    assert engine.failures == []


def test_sustained_throttling_never_fails_the_run():
    engine = Engine(StepTimings(max_transient_attempts=2))
    item = WorkItem("run-1", PROVISION)

    for _ in range(10):
        assert engine.run(item, raising(THROTTLED)) is StepOutcome.RETRIED

    assert engine.failures == []
    assert {body["attempt"] for body, _ in engine.queued()} == {0}


def test_a_throttled_answer_without_retry_after_backs_off_briefly(engine):
    engine.run(WorkItem("run-1", PROVISION), raising(AzureCallError(429, "TooManyRequests", "Slow down.")))

    assert engine.queued() == [({"run_id": "run-1", "step": PROVISION, "attempt": 0}, 2.0)]


def test_a_transient_error_is_queued_again_after_azures_retry_after_spending_an_attempt(engine):
    unavailable = AzureCallError(503, "ServiceUnavailable", "Busy.", retry_after=5)

    assert engine.run(WorkItem("run-1", PROVISION, URL, attempt=2), raising(unavailable)) is StepOutcome.RETRIED

    assert engine.queued() == [({"run_id": "run-1", "step": PROVISION, "operation_url": URL, "attempt": 3}, 5)]


def test_a_transient_error_without_retry_after_backs_off(engine):
    engine.run(WorkItem("run-1", PROVISION, attempt=3), raising(AzureCallError(None, "ConnectionReset", "Reset.")))

    assert engine.queued() == [({"run_id": "run-1", "step": PROVISION, "attempt": 4}, 8.0)]


def test_a_transient_error_past_the_last_attempt_fails_the_run():
    engine = Engine(StepTimings(max_transient_attempts=2))
    unavailable = AzureCallError(503, "ServiceUnavailable", "Busy.")

    assert engine.run(WorkItem("run-1", PROVISION, attempt=1), raising(unavailable)) is StepOutcome.RETRIED
    assert engine.run(WorkItem("run-1", PROVISION, attempt=2), raising(unavailable)) is StepOutcome.FAILED

    assert [body["attempt"] for body, _ in engine.queued()] == [2]
    assert engine.failures == [("ServiceUnavailable", "Busy.")]


def test_a_permanent_error_fails_the_run_at_once(engine):
    assert engine.run(WorkItem("run-1", PROVISION), raising(DENIED)) is StepOutcome.FAILED

    assert engine.failures == [("AuthorizationFailed", "No write on the workspace.")]
    assert engine.work.sent == []


def test_an_unexpected_error_is_left_to_the_host(engine):
    with pytest.raises(RuntimeError, match="bug"):
        engine.run(WorkItem("run-1", PROVISION), raising(RuntimeError("bug")))

    assert (engine.work.sent, engine.failures) == ([], [])


# A claim holder's run.


def stored_run(runs: InMemoryRunRepository, run_id: str = "run-1") -> RunRecord:
    run = RunRecord.new(run_id=run_id, caller=REQUESTER, request=request(DIRECT_MODEL), at=START)
    runs.create(run)
    return run


def test_a_stored_run_is_found_without_waiting():
    runs, waiting = InMemoryRunRepository(), Waiting()
    run = stored_run(runs)

    assert settled_run(runs, "run-1", sleep=waiting.sleep, monotonic=waiting.monotonic) == run
    assert waiting.slept == 0


def test_a_run_stored_moments_after_its_claim_is_waited_for():
    runs, waiting = InMemoryRunRepository(), Waiting()
    stored: list[RunRecord] = []
    waiting.on_sleep.append(lambda: stored.append(stored_run(runs)))

    found = settled_run(runs, "run-1", sleep=waiting.sleep, monotonic=waiting.monotonic)

    assert found == stored[0]
    assert 0 < waiting.slept < CLAIM_SETTLE_SECONDS


def test_a_run_that_never_appears_is_given_up_after_the_settle_window():
    runs, waiting = InMemoryRunRepository(), Waiting()

    assert settled_run(runs, "run-crashed", sleep=waiting.sleep, monotonic=waiting.monotonic) is None
    assert CLAIM_SETTLE_SECONDS <= waiting.slept < CLAIM_SETTLE_SECONDS + 0.1
