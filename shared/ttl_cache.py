"""A small thread-safe cache whose entries expire a fixed time after they were loaded.

Only values a loader returns are kept: a loader that raises leaves nothing behind, so an Azure error is never
remembered as an answer. Concurrent lookups of one missing key load it once (the others wait for that load), which
keeps a burst of requests for one workspace from reading the same thing from Azure many times over.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")

DEFAULT_MAX_ENTRIES = 10_000


@dataclass(frozen=True)
class Lookup(Generic[V]):
    value: V
    # True when the value was loaded earlier and may be up to the cache's TTL old.
    hit: bool


@dataclass(frozen=True)
class _Entry(Generic[V]):
    value: V
    expires_at: float


class TtlCache(Generic[K, V]):
    """`ttl_seconds` of 0 keeps nothing: every lookup loads."""

    def __init__(
        self,
        ttl_seconds: float,
        *,
        clock: Callable[[], float] = time.monotonic,
        max_entries: int = DEFAULT_MAX_ENTRIES,
    ) -> None:
        if ttl_seconds < 0:
            raise ValueError("a cache's TTL cannot be negative")
        self._ttl = ttl_seconds
        self._clock = clock
        self._max_entries = max_entries
        self._lock = threading.Lock()
        self._entries: dict[K, _Entry[V]] = {}
        self._loading: dict[K, threading.Lock] = {}

    def get(self, key: K, load: Callable[[], V], *, fresh: bool = False) -> V:
        return self.lookup(key, load, fresh=fresh).value

    def lookup(self, key: K, load: Callable[[], V], *, fresh: bool = False) -> Lookup[V]:
        """The cached value of `key`, else (or when `fresh`) what `load` returns, which is then kept."""
        if not fresh:
            cached = self._fresh_entry(key)
            if cached is not None:
                return Lookup(cached.value, hit=True)
        with self._lock:
            key_lock = self._loading.setdefault(key, threading.Lock())
        with key_lock:
            if not fresh:
                # Another thread may have loaded it while this one waited.
                cached = self._fresh_entry(key)
                if cached is not None:
                    return Lookup(cached.value, hit=True)
            try:
                value = load()
            finally:
                with self._lock:
                    self._loading.pop(key, None)
            if self._ttl > 0:
                with self._lock:
                    self._store(key, value)
        return Lookup(value, hit=False)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)

    def _fresh_entry(self, key: K) -> _Entry[V] | None:
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                return None
            if entry.expires_at > self._clock():
                return entry
            del self._entries[key]
            return None

    def _store(self, key: K, value: V) -> None:
        """Keep `value` (the lock is held); when full, drop what has expired, then the oldest entries."""
        now = self._clock()
        self._entries.pop(key, None)
        if len(self._entries) >= self._max_entries:
            for stale in [name for name, entry in self._entries.items() if entry.expires_at <= now]:
                del self._entries[stale]
            while len(self._entries) >= self._max_entries:
                del self._entries[next(iter(self._entries))]
        self._entries[key] = _Entry(value, now + self._ttl)
