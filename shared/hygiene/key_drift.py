"""Key drift: whether the keys kept in Key Vault are still the endpoint's keys, checked on a cadence of its own.

listKeys is a write-class POST, and reading a secret's value needs more than listing it, so neither happens for every
endpoint on every scan. Ordinary scans see the secrets through their listed properties only (present, enabled,
tagged). Each endpoint's keys are compared with listKeys once per HYGIENE_KEY_DRIFT_INTERVAL_HOURS, the endpoints
spread evenly over the scans of the interval: each has a fixed moment in the interval (a hash of its id), and a scan
checks those whose moment passed since the window the previous scan covered. A scan that never wrote its report
leaves the window where it was, so the next one covers its share too. An endpoint is also checked at once when
  - it has an open secrets-missing finding (so a fix is seen on the next scan, never left to the cadence),
  - one of its secrets' current version has no fingerprint tag (written before fingerprints, or not by the broker),
  - the previous scan could not finish its check (listed in that scan's report).

A check compares the `keyFingerprint` tag with the fingerprint of listKeys' key: no Key Vault call. A version
without a fingerprint is read once; when its value matches, that version is given the fingerprint tag (no new
version, the value untouched), so it is never read again.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import math
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any, Protocol

from shared.key_secrets import KEY_FINGERPRINT_TAG, fingerprint_matches, key_fingerprint
from shared.ports import SecretStorePort, StoredSecret
from shared.redaction import default_registry

LOGGER = logging.getLogger(__name__)
REPORT_KEY = "keyDrift"
# Checks to repeat on the next scan, by endpoint id; with more failures than this the window does not move on.
MAX_RETRIES = 50
PHASE_BITS = 64


class ScanSecretStorePort(SecretStorePort, Protocol):
    """The secret store as the scan uses it (KeyVaultAdapter implements it)."""

    def read_secret(self, name: str) -> tuple[StoredSecret, str] | None: ...
    def set_version_tags(self, name: str, version: str, tags: Mapping[str, str]) -> None: ...


class ComparedBy(StrEnum):
    FINGERPRINT = "fingerprint"
    VALUE = "value"
    # Compared by value, then given its fingerprint tag.
    TAGGED = "tagged"


@dataclass(frozen=True)
class DriftWindow:
    """The span of time this scan checks endpoints' keys for; `start` None: no earlier scan, so every one is due."""

    start: datetime | None
    end: datetime
    interval: timedelta
    retry: frozenset[str] = frozenset()

    @classmethod
    def after(cls, previous: Mapping[str, Any] | None, *, now: datetime, interval: timedelta) -> DriftWindow:
        """The window following the one the previous scan's report (`previous`) says it covered."""
        drift = (previous or {}).get(REPORT_KEY) or {}
        until = drift.get("checkedUntil")
        start = datetime.fromisoformat(until) if until else None
        return cls(start, now, interval, frozenset(str(item).lower() for item in drift.get("retry") or ()))

    def due(self, endpoint_id: str) -> bool:
        key = endpoint_id.lower()
        if key in self.retry or self.start is None or not self.interval or self.end - self.start >= self.interval:
            return True
        if self.end <= self.start:
            return False
        period = self.interval.total_seconds()
        moment = _phase(key) * period
        before = math.floor((self.start.timestamp() - moment) / period)
        return math.floor((self.end.timestamp() - moment) / period) > before


def _phase(endpoint_key: str) -> float:
    """Where in the interval an endpoint's check falls, in [0, 1): the same on every scan and every host."""
    digest = hashlib.sha256(endpoint_key.encode()).digest()
    return int.from_bytes(digest[: PHASE_BITS // 8], "big") / 2**PHASE_BITS


@dataclass
class DriftTally:
    """What this scan's drift checks did, for its report (which the next scan reads its window from)."""

    window: DriftWindow
    checked: int = 0
    compared: dict[str, int] = field(default_factory=lambda: {by.value: 0 for by in ComparedBy})
    failed: list[str] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def checked_by(self, compared: Iterable[ComparedBy]) -> None:
        with self._lock:
            self.checked += 1
            for by in compared:
                self.compared[by.value] += 1

    def could_not_check(self, endpoint_id: str) -> None:
        with self._lock:
            self.failed.append(endpoint_id)

    def as_report(self) -> dict[str, Any]:
        window = self.window
        if len(self.failed) > MAX_RETRIES:
            # Too many to list: the next scan covers this window again, and so repeats these checks.
            until, retry = window.start, []
        else:
            until, retry = window.end, self.failed
        return {
            "checkedUntil": until.isoformat() if until else None,
            "intervalHours": round(window.interval.total_seconds() / 3600, 3),
            "checked": self.checked,
            "comparedBy": dict(self.compared),
            "retry": retry,
        }


def unfingerprinted(secrets: tuple[StoredSecret, ...]) -> bool:
    return any(KEY_FINGERPRINT_TAG not in secret.tags for secret in secrets)


def compare(store: ScanSecretStorePort, secret: StoredSecret, key: str, call: Any) -> tuple[bool, ComparedBy]:
    """Whether `secret` holds `key`: by its listed fingerprint tag, else by its value once (`call` retries a read)."""
    matches = fingerprint_matches(secret.tags, key)
    if matches is not None:
        return matches, ComparedBy.FINGERPRINT
    read = call(lambda: store.read_secret(secret.name))
    if read is None:
        return False, ComparedBy.VALUE
    current, value = read
    default_registry.register(value)
    matches = fingerprint_matches(current.tags, key)
    if matches is not None:  # the broker wrote a version since the listing
        return matches, ComparedBy.FINGERPRINT
    if not hmac.compare_digest(key.encode(), value.encode()):
        return False, ComparedBy.VALUE
    try:
        call(lambda: store.set_version_tags(secret.name, current.version, _fingerprinted(current.tags, value)))
    except Exception as error:  # noqa: BLE001 - the check stands; the value is only read again next time
        LOGGER.warning("could not tag secret %s with its fingerprint: %s", secret.name, type(error).__name__)
        return True, ComparedBy.VALUE
    return True, ComparedBy.TAGGED


def _fingerprinted(tags: Mapping[str, str], value: str) -> dict[str, str]:
    return {**tags, KEY_FINGERPRINT_TAG: key_fingerprint(value)}
