"""The timer trigger: fire on an NCRONTAB schedule, one run at a time per function.

An occurrence that passed while the previous run was still executing is not replayed one by one: the next run
starts at once with `past_due` true, as the host reports a late invocation.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from datetime import UTC, datetime

from azure.functions.timer import TimerRequest

from devstack.host.indexing import FunctionSpec, TimerTriggerSpec
from devstack.host.invocation import InFlight, InvocationOutcome, Invoker

Clock = Callable[[], datetime]


def utc_now() -> datetime:
    return datetime.now(UTC)


class TimerRunner:
    def __init__(self, spec: FunctionSpec, *, invoker: Invoker, in_flight: InFlight, clock: Clock = utc_now) -> None:
        assert isinstance(spec.trigger, TimerTriggerSpec)
        self._spec = spec
        self._trigger: TimerTriggerSpec = spec.trigger
        self._invoker = invoker
        self._in_flight = in_flight
        self._clock = clock
        self._one_at_a_time = asyncio.Lock()
        self._stop = asyncio.Event()
        self._last: datetime | None = None

    def stop(self) -> None:
        self._stop.set()

    async def run(self) -> None:
        cursor = self._clock()
        if self._trigger.run_on_startup:
            await self.fire(cursor, past_due=False)
        while not self._stop.is_set():
            due = self._trigger.schedule.next_after(cursor)
            past_due = due <= self._clock()
            if past_due:
                due = self._latest_occurrence_since(due)
            elif not await self._sleep_until(due):
                break
            await self.fire(due, past_due=past_due)
            cursor = due

    async def fire(self, scheduled: datetime, *, past_due: bool) -> InvocationOutcome:
        """Run the function once (the schedule and admin invocations share the one-at-a-time rule)."""
        async with self._one_at_a_time:
            with self._in_flight:
                now = self._clock()
                status = {
                    "Last": (self._last or scheduled).isoformat(),
                    "Next": self._trigger.schedule.next_after(scheduled).isoformat(),
                    "LastUpdated": now.isoformat(),
                }
                self._last = scheduled
                request = TimerRequest(past_due=past_due, schedule_status=status, schedule={"AdjustForDST": True})
                return await self._invoker.invoke(self._spec, request, log_fields={"pastDue": past_due})

    def _latest_occurrence_since(self, occurrence: datetime) -> datetime:
        now = self._clock()
        while (following := self._trigger.schedule.next_after(occurrence)) <= now:
            occurrence = following
        return occurrence

    async def _sleep_until(self, moment: datetime) -> bool:
        """Wait for `moment`; False if the host is stopping first."""
        while (remaining := (moment - self._clock()).total_seconds()) > 0:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), remaining)
            if self._stop.is_set():
                return False
        return True
