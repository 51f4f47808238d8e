"""A log of the requests the emulator served, with counts per route, for tests and benchmarks."""

from __future__ import annotations

import threading
from collections import Counter, deque
from dataclasses import asdict, dataclass
from typing import Any

MAX_ENTRIES = 5000


@dataclass(frozen=True)
class LoggedRequest:
    time: float
    method: str
    path: str
    route: str
    status: int
    duration_ms: float
    principal_id: str | None


class RequestLog:
    def __init__(self, max_entries: int = MAX_ENTRIES) -> None:
        self._lock = threading.Lock()
        self._entries: deque[LoggedRequest] = deque(maxlen=max_entries)
        self._counts: Counter[str] = Counter()
        self._statuses: Counter[str] = Counter()

    def record(self, entry: LoggedRequest) -> None:
        with self._lock:
            self._entries.append(entry)
            self._counts[f"{entry.method} {entry.route}"] += 1
            self._statuses[f"{entry.method} {entry.route} {entry.status}"] += 1

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self._counts.clear()
            self._statuses.clear()

    def snapshot(self, *, limit: int = 200) -> dict[str, Any]:
        with self._lock:
            entries = list(self._entries)[-limit:] if limit else []
            return {
                "total": sum(self._counts.values()),
                "counts": dict(self._counts),
                "countsByStatus": dict(self._statuses),
                "entries": [asdict(entry) for entry in entries],
            }
