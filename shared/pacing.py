"""Write pacing per subscription: send ARM only the writes it will accept.

ARM meters writes per subscription (and principal) in a token bucket and reports what is left on every write's answer
(`x-ms-ratelimit-remaining-subscription-writes`). The ARM adapter feeds each answer to `WritePacer.observe`; a step
about to write asks `WritePacer.admit` first. While more than `reserve` writes remain (counting the writes this process
has sent but not yet heard back from, and each slot it has promised, which the bucket refills for until it falls
due), the write goes at once. Otherwise the step gets a slot: the moment the bucket, refilling at the rate learnt from
successive answers, will hold a write for it and for every step slotted before it; the step comes back then and writes
without asking again. So a burst of steps is spread over the refill instead of meeting 429s, and each step comes back
once rather than in a herd. Until answers have measured the refill, slots reach only a few seconds ahead (a step that
would wait longer asks again), so a burst is not spread over the cautious default rate for long.

The pacer is per process: other instances and other clients spend the same bucket unseen until ARM's next answer
reports it, which corrects the estimate (and ARM's 429, re-queued by Retry-After, remains the backstop). A
subscription the process has not written to yet is not paced at all.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

# Writes left for other clients (an operator, another instance) and for answers still in flight: pacing starts here.
DEFAULT_RESERVE = 2
# The refill assumed until answers have shown one: ARM's documented rate is 10 writes/s per subscription and principal
# (request-limits-and-throttling); a trial subscription's may be lower, so the pacer starts cautious and learns.
DEFAULT_REFILL_PER_SECOND = 1.0
# Answers are grouped over at least this long to measure the refill, so concurrent answers arriving out of order do not
# read as bursts of refill.
LEARNING_WINDOW_SECONDS = 1.0
LEARNING_WEIGHT = 0.5
# A write sent but not answered within this long is taken as lost (its step failed before or while sending it).
IN_FLIGHT_SECONDS = 10.0
# A slot its step has not claimed within this long after it fell due is given up (the step went another way).
SLOT_GRACE_SECONDS = 30.0
# A step back this much before its slot (queue delays are whole seconds, rounded up) takes it all the same.
SLOT_EARLY_SECONDS = 0.25
# Until answers have measured the refill, no slot is promised further out than this: a step that would wait longer
# asks again then, when the rate is known, instead of holding a slot spaced at the cautious default rate.
UNMEASURED_HORIZON_SECONDS = 8.0


@dataclass
class _Bucket:
    """What this process knows of one subscription's write bucket."""

    tokens: float
    at: float
    refill: float
    capacity: float
    in_flight: deque[float] = field(default_factory=deque)
    slots: dict[str, float] = field(default_factory=dict)
    window_start: tuple[float, float] | None = None
    window_writes: int = 0
    measured: bool = False

    def estimate(self, now: float) -> float:
        return min(self.capacity, self.tokens + self.refill * max(0.0, now - self.at))

    def spend(self, now: float) -> None:
        self.tokens, self.at = self.estimate(now) - 1.0, now
        self.in_flight.append(now)

    def forget_stale(self, now: float) -> None:
        while self.in_flight and now - self.in_flight[0] > IN_FLIGHT_SECONDS:
            self.in_flight.popleft()
        for key in [key for key, slot in self.slots.items() if now - slot > SLOT_GRACE_SECONDS]:
            del self.slots[key]

    def learn(self, remaining: float, now: float, spent: bool) -> None:
        """Measure the refill over a window: what was left, plus what was spent since, over the time it took. A window
        in which the bucket may have been full says nothing (refill stops there) and is skipped."""
        self.window_writes += int(spent)
        if self.window_start is None:
            self.window_start, self.window_writes = (remaining, now), 0
            return
        start_remaining, start_at = self.window_start
        if now - start_at < LEARNING_WINDOW_SECONDS:
            return
        sample = max(0.0, remaining - start_remaining + self.window_writes) / (now - start_at)
        learnt = LEARNING_WEIGHT * sample + (1 - LEARNING_WEIGHT) * self.refill
        if max(start_remaining, remaining) + 1 < self.capacity:
            if sample > 0:
                self.refill, self.measured = learnt, True
        else:
            # The bucket may have been full part of the window, when it stops refilling: the sample is then only a
            # lower bound, still worth learning from when it is above the estimate (a pacer that started too cautious
            # lets the bucket fill up, and would otherwise never see its true rate).
            self.refill = max(self.refill, learnt)
        self.window_start, self.window_writes = (remaining, now), 0

    def room_now(self, now: float, reserve: int) -> bool:
        """Whether a write now leaves the reserve intact, both now and at every promised slot, with the bucket
        refilling at the learnt rate in between: slots promised at a slower rate than the one learnt since leave
        room for writes between them."""
        tokens = self.estimate(now)
        if tokens - 1.0 < reserve:
            return False
        for taken, slot in enumerate(sorted(self.slots.values()), start=1):
            if min(self.capacity, tokens + self.refill * max(0.0, slot - now)) - 1.0 - taken < reserve:
                return False
        return True


class WritePacer:
    """Per-process estimates of each subscription's ARM write bucket (thread-safe: a worker runs steps in parallel)."""

    def __init__(
        self,
        *,
        reserve: int = DEFAULT_RESERVE,
        refill_per_second: float = DEFAULT_REFILL_PER_SECOND,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._reserve = reserve
        self._default_refill = refill_per_second
        self._monotonic = monotonic
        self._lock = threading.Lock()
        self._buckets: dict[str, _Bucket] = {}

    def observe(self, subscription_id: str, remaining: int, *, spent: bool = True) -> None:
        """ARM's answer to a write: `remaining` writes left; `spent` is False for a refused (429) write, which cost
        none."""
        now = self._monotonic()
        with self._lock:
            bucket = self._buckets.get(subscription_id.lower())
            if bucket is None:
                bucket = _Bucket(tokens=remaining, at=now, refill=self._default_refill, capacity=remaining + 1.0)
                self._buckets[subscription_id.lower()] = bucket
            bucket.capacity = max(bucket.capacity, remaining + 1.0)
            bucket.learn(remaining, now, spent)
            if spent and bucket.in_flight:
                bucket.in_flight.popleft()
            bucket.forget_stale(now)
            # ARM's count is the truth; the writes still on their way are not in it yet.
            bucket.tokens, bucket.at = remaining - len(bucket.in_flight), now

    def admit(self, subscription_id: str, writer: str) -> float | None:
        """None: `writer` (a step, the same name each time it comes back) may write now, and the write is counted.
        Otherwise the seconds until its slot; coming back then, it is let through."""
        now = self._monotonic()
        with self._lock:
            bucket = self._buckets.get(subscription_id.lower())
            if bucket is None:
                return None
            bucket.forget_stale(now)
            slot = bucket.slots.pop(writer, None)
            if slot is not None and slot - now > SLOT_EARLY_SECONDS:
                bucket.slots[writer] = slot
                return slot - now
            if slot is not None or bucket.room_now(now, self._reserve):
                bucket.spend(now)
                return None
            # Slotted after everyone slotted already: the bucket must refill to the reserve, one write for each of
            # them, and this one.
            needed = self._reserve + len(bucket.slots) + 1.0 - bucket.estimate(now)
            wait = max(needed, 0.0) / max(bucket.refill, 1e-3)
            if not bucket.measured and wait > UNMEASURED_HORIZON_SECONDS:
                return UNMEASURED_HORIZON_SECONDS
            bucket.slots[writer] = now + wait
            return wait
