"""ARM-like throttling: token buckets per subscription for reads, writes and deletes.

ARM refills each bucket continuously and answers 429 SubscriptionRequestsThrottled with Retry-After once a bucket is
empty; every answer carries the remaining count in x-ms-ratelimit-remaining-subscription-{reads,writes,deletes}
(with throttling off as well: the count is kept, it just never runs out into a 429).
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from devstack.emulator.errors import ArmError
from devstack.emulator.scenario import BucketSpec, ThrottlingSpec

_KIND_BY_METHOD = {"GET": "reads", "HEAD": "reads", "DELETE": "deletes"}
_WORD = {"reads": "read", "writes": "write", "deletes": "delete"}


def request_kind(method: str) -> str:
    return _KIND_BY_METHOD.get(method.upper(), "writes")


@dataclass
class _Bucket:
    spec: BucketSpec
    tokens: float
    updated: float

    def refill(self, now: float) -> None:
        self.tokens = min(self.spec.capacity, self.tokens + (now - self.updated) * self.spec.refill_per_second)
        self.updated = now


class Throttle:
    def __init__(self, spec: ThrottlingSpec, clock: Callable[[], float] = time.monotonic) -> None:
        self._lock = threading.Lock()
        self._clock = clock
        self._buckets: dict[tuple[str, str], _Bucket] = {}
        self.spec = spec

    def configure(self, spec: ThrottlingSpec) -> None:
        with self._lock:
            self.spec = spec
            self._buckets.clear()

    def take(self, subscription_id: str, method: str, actor: str) -> dict[str, str]:
        """Spend one token; the rate-limit headers to send, or ArmError(429) when the bucket is empty.

        ARM reports the remaining requests on every answer, so the buckets are kept (and reported) with throttling
        off too; only the 429 needs throttling on."""
        kind = request_kind(method)
        header = f"x-ms-ratelimit-remaining-subscription-{kind}"
        with self._lock:
            now = self._clock()
            spec: BucketSpec = getattr(self.spec, kind)
            bucket = self._buckets.setdefault((subscription_id.lower(), kind), _Bucket(spec, float(spec.capacity), now))
            bucket.refill(now)
            if not self.spec.enabled:
                bucket.tokens = max(0.0, bucket.tokens - 1.0)
                return {header: str(int(bucket.tokens))}
            if bucket.tokens < 1.0:
                wait = math.ceil((1.0 - bucket.tokens) / spec.refill_per_second) if spec.refill_per_second else 3600
                raise ArmError(
                    429,
                    "SubscriptionRequestsThrottled",
                    f"Number of '{_WORD[kind]}' requests for subscription '{subscription_id}' actor '{actor}' "
                    f"exceeded. Please try again after '{wait}' seconds after additional tokens are available. "
                    "Refer to https://aka.ms/arm-throttling for additional information.",
                    headers={"Retry-After": str(wait), header: "0"},
                )
            bucket.tokens -= 1.0
            return {header: str(int(bucket.tokens))}
