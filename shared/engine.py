"""The step engine every operation runs on: deploy, repair, delete and key rotation alike.

Work travels as small messages on the internal work queue, one idempotent step each. A step reads Azure's state,
acts at most once, and either moves its run on (queueing the next step), or starts a long-running operation and
comes back through a delayed message, or fails the run with Azure's code and message. Transient failures (429, 5xx,
connection errors) are queued again with backoff: no function ever sleeps on Azure.

Polling costs little (`StepTimings.poll_delay`): a message that waits on Azure carries the moment the wait began
(`WorkItem.waiting_since`), and the next look comes after a share of that age, between a floor and a ceiling, or after
ARM's Retry-After when that is longer. Throttling never fails a run: a 429 re-queues the step after its Retry-After
without spending one of its transient attempts, and a write step asks the process's write pacer (shared/pacing.py)
first, so most writes ARM would refuse are never sent.

One chain of messages at a time carries a run. Each message carries the run's step token (`RunRecord.step_token`),
which moves on whenever the run changes status, a key rotation starts, or the watchdog (shared/watchdog.py)
re-enqueues a run whose chain was lost with a dead host; `StepQueue.admit` drops every message that is not for the
run's current step or does not carry its current token, so a message that comes back after its lease, or a chain the
watchdog replaced, dies at its next delivery. A message without a token (none were ever written in production) is
dropped the same way; if it carried a run, the watchdog re-enqueues that run.

Every message also carries the W3C trace context its chain was started under (`WorkItem.traceparent`, stamped by
`StepQueue.send` from the current span when the chain's first message is sent): the request's, so each step, polls
and retries included, is a child of the request's span and a deployment is one trace. A chain the watchdog replaces
starts a trace of its own: the run record keeps no trace context; its spans name the run id, which joins them.
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from shared.azure_errors import AzureCallError
from shared.pacing import WritePacer
from shared.ports import MachineLearningPort, MessageQueuePort, Operation, OperationProgress, RunRepositoryPort
from shared.runs import RunRecord, RunStatus
from shared.telemetry import StepOutcome, TraceContext

LOGGER = logging.getLogger(__name__)

SUBSCRIBE = "subscribe"
PROVISION = "provision"
STORE_KEYS = "store-keys"
VERIFY = "verify"
DELETE_ENDPOINT = "delete-endpoint"
DELETE_SUBSCRIPTION = "delete-subscription"
ROTATE_KEY = "rotate-key"
DEPLOY_STEPS = (SUBSCRIBE, PROVISION, STORE_KEYS, VERIFY)
LIFECYCLE_STEPS = (DELETE_ENDPOINT, DELETE_SUBSCRIPTION, ROTATE_KEY)
STEPS = (*DEPLOY_STEPS, *LIFECYCLE_STEPS)
# The status a run is in while each step is its current one (a rotation's step runs on a Succeeded run).
STEP_STATUS = {
    SUBSCRIBE: RunStatus.SUBSCRIBING,
    PROVISION: RunStatus.PROVISIONING,
    STORE_KEYS: RunStatus.STORING_KEYS,
    VERIFY: RunStatus.VERIFYING,
    DELETE_ENDPOINT: RunStatus.DELETING,
    DELETE_SUBSCRIPTION: RunStatus.DELETING,
    ROTATE_KEY: RunStatus.SUCCEEDED,
}
# Where a chain starts again from a run's status alone: every step re-reads Azure first, so a teardown that had got
# as far as its subscription starts again at the (already deleted) endpoint and moves straight on.
RESUME_STEP = {
    RunStatus.SUBSCRIBING: SUBSCRIBE,
    RunStatus.PROVISIONING: PROVISION,
    RunStatus.STORING_KEYS: STORE_KEYS,
    RunStatus.VERIFYING: VERIFY,
    RunStatus.DELETING: DELETE_ENDPOINT,
}
# A concurrent request stores its run within milliseconds of claiming; a claim without a run after this is abandoned.
CLAIM_SETTLE_SECONDS = 3.0
CLAIM_POLL_SECONDS = 0.05
THROTTLED = 429


class MalformedWorkItemError(ValueError):
    """A work message the broker did not write; it cannot be retried into shape."""


class StepFailedError(Exception):
    """Azure finished an operation unsuccessfully, or left the run unable to go on; the run fails with this."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


@dataclass(frozen=True)
class WorkItem:
    run_id: str
    step: str
    operation_url: str | None = None
    attempt: int = 0
    # The run's step token when this message's chain was sent on its way (RunRecord.step_token).
    step_token: int | None = None
    # When this step began waiting on Azure (POSIX seconds): the age the poll schedule grows with. Messages written
    # before it existed have none and are polled as a wait just begun.
    waiting_since: float | None = None
    # The W3C trace context of the request that started this chain; every step of the chain continues it.
    traceparent: str | None = None
    tracestate: str | None = None

    @property
    def trace_context(self) -> TraceContext | None:
        return TraceContext.of(self.traceparent, self.tracestate)

    def traced(self, trace_context: TraceContext | None) -> WorkItem:
        """The same message carrying `trace_context`, unless it carries a chain's context already."""
        if self.traceparent is not None or trace_context is None:
            return self
        return replace(self, traceparent=trace_context.traceparent, tracestate=trace_context.tracestate)

    def to_message(self) -> dict[str, Any]:
        return {key: value for key, value in asdict(self).items() if value is not None}

    @classmethod
    def from_message(cls, text: str) -> WorkItem:
        try:
            data = json.loads(text)
            item = cls(**data)
        except (json.JSONDecodeError, TypeError) as error:
            raise MalformedWorkItemError(f"not a work item: {error}") from error
        if item.step not in STEPS or not isinstance(item.run_id, str):
            raise MalformedWorkItemError(f"unknown step '{item.step}'")
        # The broker writes a whole, non-negative attempt count and a text URL; anything else would fail each retry.
        if type(item.attempt) is not int or item.attempt < 0:
            raise MalformedWorkItemError(f"attempt {item.attempt!r} is not a count")
        if item.operation_url is not None and not isinstance(item.operation_url, str):
            raise MalformedWorkItemError("operation_url is not a URL")
        if item.step_token is not None and (type(item.step_token) is not int or item.step_token < 0):
            raise MalformedWorkItemError(f"step_token {item.step_token!r} is not a token")
        since = item.waiting_since
        if since is not None and (type(since) not in (int, float) or not math.isfinite(since)):
            raise MalformedWorkItemError(f"waiting_since {since!r} is not a time")
        # A trace context that is text but not a valid traceparent is only not continued; other types are not ours.
        if not all(isinstance(value, str | None) for value in (item.traceparent, item.tracestate)):
            raise MalformedWorkItemError("traceparent and tracestate are text")
        return item

    def polling(self, operation_url: str, *, since: float) -> WorkItem:
        return replace(self, operation_url=operation_url, attempt=0, waiting_since=since)

    def waiting(self, *, since: float) -> WorkItem:
        """The same message, noting when its wait began unless an earlier delivery noted it already."""
        return self if self.waiting_since is not None else replace(self, waiting_since=since)

    def retried(self) -> WorkItem:
        return replace(self, attempt=self.attempt + 1)

    def next(self, step: str, *, step_token: int | None = None) -> WorkItem:
        """The first message of `step`: in the same chain, or under `step_token` when the run moved to a new status."""
        return WorkItem(
            run_id=self.run_id,
            step=step,
            step_token=self.step_token if step_token is None else step_token,
            traceparent=self.traceparent,
            tracestate=self.tracestate,
        )


def is_current_step(run: RunRecord, step: str) -> bool:
    """Whether `step` is what `run` is waiting for: its status is the step's, and a rotation's step has a rotation."""
    if step == ROTATE_KEY:
        return run.pending_rotation is not None
    return run.status is STEP_STATUS[step]


def resume_step(run: RunRecord) -> str | None:
    """The step that carries `run` on from where it stands; None when no step does (ended, or not yet started)."""
    if run.pending_rotation is not None:
        return ROTATE_KEY
    return RESUME_STEP.get(run.status)


@dataclass(frozen=True)
class StepTimings:
    """When to look again.

    A wait of age `a` is looked at again after `min(poll_max_seconds, max(poll_seconds, poll_age_fraction * a))`, or
    after ARM's Retry-After when that is longer: a short operation is seen finished within a floor's length, and a
    long one costs a number of polls that grows with the logarithm of its length, while the time lost after it
    finishes stays within `poll_age_fraction` of its age (plus the queue's own pick-up delay)."""

    poll_seconds: float = 2.0
    poll_max_seconds: float = 30.0
    poll_age_fraction: float = 0.1
    max_transient_attempts: int = 8
    max_backoff_seconds: float = 60.0
    # How often the last step re-reads an endpoint Azure is still settling (Reinstating, Creating) before failing.
    max_verify_attempts: int = 12
    # A step hands the run to the next step in the same invocation only while the invocation has run less than this;
    # later hand-offs go through the queue, so carrying on never makes one invocation long.
    carry_on_seconds: float = 1.0
    # A step that runs this long after the run's last activity notes that it ran (RunRecord.stepped_at), so the
    # watchdog, which waits WATCHDOG_STALL_SECONDS (60) of silence, leaves a chain polling a long operation alone.
    heartbeat_seconds: float = 10.0

    def backoff(self, attempt: int, retry_after: float | None) -> float:
        return retry_after if retry_after else min(self.max_backoff_seconds, 2.0**attempt)

    def poll_delay(self, age_seconds: float, retry_after: float | None = None) -> float:
        """Seconds until a wait that began `age_seconds` ago is looked at again (ARM's Retry-After is a minimum)."""
        scheduled = min(self.poll_max_seconds, max(self.poll_seconds, self.poll_age_fraction * max(0.0, age_seconds)))
        return max(scheduled, retry_after or 0.0)


def utc_now() -> datetime:
    return datetime.now(UTC)


class StepQueue:
    """Sends work items, polls operations once per message, paces writes and retries transient failures from the
    queue."""

    def __init__(
        self,
        machine_learning: MachineLearningPort,
        work_queue: MessageQueuePort,
        timings: StepTimings,
        *,
        clock: Callable[[], datetime] = utc_now,
        pacer: WritePacer | None = None,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._ml = machine_learning
        self._work = work_queue
        self.timings = timings
        self._clock = clock
        self._pacer = pacer or WritePacer()
        self._monotonic = monotonic

    def started(self) -> float:
        """A mark for `carry_on`: when this invocation began its first step."""
        return self._monotonic()

    def carry_on(self, item: WorkItem, *, started: float) -> bool:
        """Whether the invocation that began at `started` runs `item` itself; if not, `item` is queued."""
        if self._monotonic() - started < self.timings.carry_on_seconds:
            return True
        self.send(item)
        return False

    def send(self, item: WorkItem, *, delay_seconds: float = 0) -> None:
        """Queue `item`; a chain's first message takes the current trace context, which its later ones keep."""
        self._work.send(item.traced(TraceContext.current()).to_message(), delay_seconds=delay_seconds)

    def admit(self, runs: RunRepositoryPort, item: WorkItem, *, now: datetime) -> RunRecord | None:
        """The run `item` works on, when `item` is its current step and carries its current step token; None (and the
        message is dropped) otherwise. A step running long after the run's last activity records a heartbeat first."""
        stored = runs.get(item.run_id)
        if stored is None:
            LOGGER.warning("work item for unknown run %s dropped", item.run_id)
            return None
        run: RunRecord = stored.run
        if not is_current_step(run, item.step):
            # A duplicate or stale delivery: the run already moved past (or never reached) this step.
            LOGGER.info("run %s is %s; %s message dropped", run.id, run.status, item.step)
            return None
        if item.step_token != run.step_token:
            LOGGER.info(
                "run %s: %s message of step token %s dropped; the run's chain carries token %s",
                run.id,
                item.step,
                item.step_token,
                run.step_token,
            )
            return None
        if now - run.last_activity < timedelta(seconds=self.timings.heartbeat_seconds):
            return run
        beat = runs.update(
            run.id, lambda current: current.stepped(at=now) if current.step_token == item.step_token else current
        )
        if beat.step_token != item.step_token:
            LOGGER.info("run %s: %s message dropped; the run moved on to token %s", run.id, item.step, beat.step_token)
            return None
        return beat

    def operation_finished(self, item: WorkItem) -> bool:
        """Poll `item`'s operation once; False (a delayed re-poll queued) while it runs; StepFailedError if it
        failed."""
        progress = self.poll(item)
        if progress is None:
            return False
        self.require_success(progress)
        return True

    def poll(self, item: WorkItem) -> OperationProgress | None:
        """Poll `item`'s operation once: None while it runs (a delayed re-poll is queued), else how it ended."""
        assert item.operation_url is not None
        progress = self._ml.get_operation(Operation(item.operation_url))
        if not progress.done:
            self._poll_again(item, progress.retry_after)
            return None
        return progress

    @staticmethod
    def require_success(progress: OperationProgress) -> None:
        """StepFailedError with Azure's code and message unless the finished operation succeeded."""
        if not progress.succeeded:
            raise StepFailedError(
                progress.error_code or "OperationFailed", progress.error_message or "Azure reported failure."
            )

    def wait(self, item: WorkItem, operation: Operation | None) -> StepOutcome:
        """Come back when ARM says the operation is worth polling; without one (finished synchronously), look at
        the resource again shortly."""
        if operation is None:
            self.send(item.retried(), delay_seconds=1)
        else:
            polling = item.polling(operation.url, since=self._clock().timestamp())
            self.send(polling, delay_seconds=self.timings.poll_delay(0.0, operation.retry_after))
        return StepOutcome.WAITING

    def look_again(self, item: WorkItem) -> StepOutcome:
        """Come back to the same step on the poll schedule: Azure is still moving the resource (someone else's
        operation, or one whose URL went with a replaced chain)."""
        self._poll_again(item, None)
        return StepOutcome.WAITING

    def later(self, item: WorkItem) -> StepOutcome:
        """Look at the same step again on the poll schedule, spending one of its attempts (verify's settling)."""
        self._poll_again(item.retried(), None)
        return StepOutcome.WAITING

    def paced(self, item: WorkItem, subscription_id: str) -> StepOutcome | None:
        """None when `item` may send its write to ARM in `subscription_id` now; otherwise the step is queued again for
        the moment the pacer expects a write to be accepted (WAITING), and the write is not sent."""
        delay = self._pacer.admit(subscription_id, f"{item.run_id}/{item.step}")
        if delay is None:
            return None
        LOGGER.info("run %s step %s: ARM writes nearly spent, writing in %.1fs", item.run_id, item.step, delay)
        self.send(item, delay_seconds=delay)
        return StepOutcome.WAITING

    def _poll_again(self, item: WorkItem, retry_after: float | None) -> None:
        now = self._clock().timestamp()
        waiting = item.waiting(since=now)
        assert waiting.waiting_since is not None
        self.send(waiting, delay_seconds=self.timings.poll_delay(now - waiting.waiting_since, retry_after))

    def run(
        self, item: WorkItem, step: Callable[[], StepOutcome | None], fail: Callable[[str, str], None]
    ) -> StepOutcome:
        """Run `step`; a transient Azure failure is retried later from the queue, anything permanent `fail`s."""
        try:
            return step() or StepOutcome.ADVANCED
        except StepFailedError as failure:
            fail(failure.code, failure.message)
        except AzureCallError as error:
            if error.status == THROTTLED:
                # ARM refills its buckets by itself: throttling delays a run as long as ARM asks, never fails it.
                delay = error.retry_after or self.timings.backoff(1, None)
                LOGGER.info("run %s step %s: throttled, again in %.0fs", item.run_id, item.step, delay)
                self.send(item, delay_seconds=delay)
                return StepOutcome.RETRIED
            if error.transient and item.attempt < self.timings.max_transient_attempts:
                delay = self.timings.backoff(item.attempt, error.retry_after)
                LOGGER.info(
                    "run %s step %s: transient %s, retrying in %.0fs", item.run_id, item.step, error.code, delay
                )
                self.send(item.retried(), delay_seconds=delay)
                return StepOutcome.RETRIED
            fail(error.code, error.message)
        return StepOutcome.FAILED


def settled_run(
    runs: RunRepositoryPort,
    run_id: str,
    *,
    sleep: Callable[[float], None] = time.sleep,
    monotonic: Callable[[], float] = time.monotonic,
) -> RunRecord | None:
    """A claim holder's run, allowing it the moment between claiming and storing its record.

    A holder still missing after that window crashed before storing its run, and its claim may be taken over.
    """
    deadline = monotonic() + CLAIM_SETTLE_SECONDS
    while (stored := runs.get(run_id)) is None and monotonic() < deadline:
        sleep(CLAIM_POLL_SECONDS)
    return stored.run if stored else None
