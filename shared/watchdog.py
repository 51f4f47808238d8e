"""The watchdog: a run whose chain of work messages went quiet is set going again, without waiting for any lease.

A host that dies mid-step keeps the message it leased invisible for the whole lease (10 minutes, locally as on Azure),
and a host that dies between a status change and queueing the next step leaves no message at all: either way the
run's chain is lost, and the run would stall. On a timer (WATCHDOG_SCHEDULE, every 30 s by default) the watchdog
lists the runs in flight (not ended, or rotating a key: the runs table's InFlight column) and, for each one that has
been silent for the stall threshold (WATCHDOG_STALL_SECONDS, 60 s by default: no status change and no step run;
a step polling a long operation notes a heartbeat every few polls, shared/engine.py), re-enqueues the step its
status calls for under a new step token.

The new token is written (ETag concurrency) before the message goes out, and only by a sweep that still finds the
run silent under the token it listed, so of two sweeps at once exactly one re-enqueues. The lost chain's message,
should its lease ever run out, carries the old token and is dropped. Steps re-read Azure before acting, so a step
started again repeats nothing that was done: a provisioned endpoint is kept, a subscription being created is waited
for, keys already in Key Vault are not written again, and only the status change that wins announces the run's end.

A run re-enqueued MAX_RECOVERIES times without moving is left alone (a step that fails the same way each time is a
bug, not a lost message); hygiene's run-stuck rule reports it. Runs are stored only once intake has moved them past
Validating, so an Accepted or Validating run in flight has no step to resume; it is reported, never guessed at.

A run waiting for approval (PendingApproval) has no chain to lose: it is never silent here. Once its approval has
expired the watchdog hands it to `expire` (shared/deployments/approvals.py, wired by the timer's handler), which ends
it Rejected with an ETag-conditional write, so of two sweeps at once exactly one expires it and announces that.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from opentelemetry import metrics

from shared.engine import WorkItem, resume_step
from shared.ports import MessageQueuePort, RunRepositoryPort
from shared.runs import RunRecord
from shared.telemetry import NAME
from shared.version import broker_version

LOGGER = logging.getLogger(__name__)
PAGE_SIZE = 100
# Re-enqueues of one step (since the run last changed status, or a rotation started) before the watchdog gives up.
MAX_RECOVERIES = 10


@dataclass(frozen=True)
class Recovery:
    """One run the watchdog set going again."""

    run_id: str
    status: str
    step: str
    silent_seconds: float
    step_token: int


@dataclass
class SweepReport:
    in_flight: int = 0
    recovered: list[Recovery] = field(default_factory=list)
    # Runs another writer (a step, or another sweep) moved on between this sweep's read and its write.
    raced: int = 0
    # Runs re-enqueued MAX_RECOVERIES times without moving: left to hygiene's run-stuck rule.
    exhausted: list[str] = field(default_factory=list)
    # Runs in flight with no step to resume (Accepted, Validating).
    unresumable: list[str] = field(default_factory=list)
    # Runs waiting for an approver, and those of them this sweep ended because their approval expired.
    awaiting_approval: int = 0
    expired: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, object]:
        return {
            "inFlight": self.in_flight,
            "recovered": [recovery.run_id for recovery in self.recovered],
            "raced": self.raced,
            "exhausted": self.exhausted,
            "unresumable": self.unresumable,
            "awaitingApproval": self.awaiting_approval,
            "expired": self.expired,
        }


class WatchdogTelemetry:
    """The `broker.watchdog.recoveries` counter (OpenTelemetry API only, like shared/telemetry.py)."""

    def __init__(self, *, meter_provider: metrics.MeterProvider | None = None) -> None:
        meter = metrics.get_meter(NAME, broker_version(), meter_provider=meter_provider)
        self._recoveries = meter.create_counter(
            "broker.watchdog.recoveries",
            unit="{run}",
            description="Runs whose lost chain of steps the watchdog re-enqueued, by status and step.",
        )

    def recovered(self, recovery: Recovery) -> None:
        self._recoveries.add(1, {"status": recovery.status, "step": recovery.step})


WATCHDOG_TELEMETRY = WatchdogTelemetry()


class Watchdog:
    def __init__(
        self,
        *,
        runs: RunRepositoryPort,
        work: MessageQueuePort,
        clock: Callable[[], datetime],
        stall_seconds: float,
        max_recoveries: int = MAX_RECOVERIES,
        telemetry: WatchdogTelemetry = WATCHDOG_TELEMETRY,
        expire: Callable[[RunRecord], bool] | None = None,
    ) -> None:
        """`expire` ends a run whose approval has expired (True when this call ended it); without it, runs waiting
        for approval are only counted."""
        self._runs = runs
        self._work = work
        self._clock = clock
        self._stall = timedelta(seconds=stall_seconds)
        self._max_recoveries = max_recoveries
        self._telemetry = telemetry
        self._expire = expire

    def sweep(self) -> SweepReport:
        """One pass over the runs in flight: re-enqueue the step of each one silent for the stall threshold."""
        report = SweepReport()
        token: str | None = None
        while True:
            page = self._runs.list_in_flight(page_size=PAGE_SIZE, continuation_token=token)
            for run in page.runs:
                report.in_flight += 1
                self._look_at(run, report)
            token = page.continuation_token
            if not token:
                break
        return report

    def _look_at(self, run: RunRecord, report: SweepReport) -> None:
        now = self._clock()
        if run.awaiting_approval:
            report.awaiting_approval += 1
            expired = run.approval is not None and run.approval.expired_by(now)
            if expired and self._expire is not None and self._expire(run):
                report.expired.append(run.id)
            return
        if not self._silent(run, now):
            return
        step = resume_step(run)
        if step is None:
            LOGGER.warning("watchdog: run %s is %s and silent, but no step resumes it", run.id, run.status)
            report.unresumable.append(run.id)
            return
        if run.recoveries >= self._max_recoveries:
            report.exhausted.append(run.id)
            return
        recovered = self._rechain(run, now)
        if recovered is None:
            report.raced += 1
            return
        # Written first, sent second: a sweep that dies in between leaves the run silent, and the next one tries again.
        self._work.send(WorkItem(run.id, step, step_token=recovered.step_token).to_message())
        recovery = Recovery(
            run_id=run.id,
            status=run.status.value,
            step=step,
            silent_seconds=(now - run.last_activity).total_seconds(),
            step_token=recovered.step_token,
        )
        report.recovered.append(recovery)
        self._telemetry.recovered(recovery)
        log = LOGGER.error if recovered.recoveries >= self._max_recoveries else LOGGER.warning
        log(
            "watchdog: run %s (%s) silent for %.0fs; %s re-enqueued under step token %s (recovery %s of at most %s)",
            run.id,
            run.status,
            recovery.silent_seconds,
            step,
            recovered.step_token,
            recovered.recoveries,
            self._max_recoveries,
        )

    def _silent(self, run: RunRecord, now: datetime) -> bool:
        return run.in_flight and now - run.last_activity >= self._stall

    def _rechain(self, seen: RunRecord, now: datetime) -> RunRecord | None:
        """The run under a new step token, when it is still silent under the token `seen` has; None when something
        moved it first (a step, or another sweep)."""
        made = False

        def rechain(current: RunRecord) -> RunRecord:
            nonlocal made
            made = current.step_token == seen.step_token and self._silent(current, now)
            return current.recovered(at=now) if made else current

        updated = self._runs.update(seen.id, rechain)
        return updated if made else None
