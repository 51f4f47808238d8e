"""Fault injection: rules that make matching requests fail, slow down or lose their connection.

A rule matches a path regex (searched, case-insensitive) and a method ("*" for any); it then fires for a count of
matching requests and/or with a probability. Firing adds latency, then either resets the connection or answers with
the rule's status (ARM error envelope, optional Retry-After); a rule with neither only adds latency.
"""

from __future__ import annotations

import itertools
import random
import re
import threading
from dataclasses import dataclass, field
from typing import Any

_ERROR_CODES = {
    408: "RequestTimeout",
    409: "Conflict",
    429: "TooManyRequests",
    500: "InternalServerError",
    502: "BadGateway",
    503: "ServiceUnavailable",
    504: "GatewayTimeout",
}


@dataclass
class FaultRule:
    id: str
    path_regex: str
    method: str = "*"
    status: int | None = None
    retry_after: float | None = None
    latency_ms: int = 0
    reset_connection: bool = False
    probability: float = 1.0
    # How many more times the rule fires; None: no limit.
    remaining: int | None = None
    error_code: str | None = None
    error_message: str | None = None
    hits: int = 0
    _pattern: re.Pattern[str] = field(init=False, repr=False)
    _random: random.Random = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._pattern = re.compile(self.path_regex, re.IGNORECASE)
        self._random = random.Random()

    def matches(self, method: str, path: str) -> bool:
        return (self.method == "*" or self.method.upper() == method.upper()) and bool(self._pattern.search(path))

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "pathRegex": self.path_regex,
            "method": self.method,
            "status": self.status,
            "retryAfter": self.retry_after,
            "latencyMs": self.latency_ms,
            "resetConnection": self.reset_connection,
            "probability": self.probability,
            "remaining": self.remaining,
            "errorCode": self.error_code,
            "errorMessage": self.error_message,
            "hits": self.hits,
        }

    @property
    def code(self) -> str:
        return self.error_code or _ERROR_CODES.get(self.status or 500, "InternalServerError")

    @property
    def message(self) -> str:
        return self.error_message or f"The emulator injected a {self.status} fault (rule {self.id})."


def rule_from_json(rule_id: str, raw: dict[str, Any]) -> FaultRule:
    if "pathRegex" not in raw:
        raise ValueError("a fault rule needs 'pathRegex'")
    status = raw.get("status")
    reset = bool(raw.get("resetConnection", False))
    latency = int(raw.get("latencyMs", 0))
    if status is None and not reset and latency <= 0:
        raise ValueError("a fault rule needs 'status', 'resetConnection' or 'latencyMs'")
    probability = float(raw.get("probability", 1.0))
    if not 0.0 <= probability <= 1.0:
        raise ValueError("'probability' must be between 0 and 1")
    rule = FaultRule(
        id=rule_id,
        path_regex=raw["pathRegex"],
        method=raw.get("method", "*"),
        status=int(status) if status is not None else None,
        retry_after=raw.get("retryAfter"),
        latency_ms=latency,
        reset_connection=reset,
        probability=probability,
        remaining=raw.get("count"),
        error_code=raw.get("errorCode"),
        error_message=raw.get("errorMessage"),
    )
    if raw.get("seed") is not None:
        rule._random.seed(raw["seed"])
    return rule


class FaultRules:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._rules: list[FaultRule] = []
        self._ids = itertools.count(1)

    def add(self, raw: dict[str, Any]) -> FaultRule:
        with self._lock:
            rule = rule_from_json(raw.get("id") or f"fault-{next(self._ids)}", raw)
            self._rules.append(rule)
            return rule

    def remove(self, rule_id: str) -> bool:
        with self._lock:
            before = len(self._rules)
            self._rules = [rule for rule in self._rules if rule.id != rule_id]
            return len(self._rules) != before

    def clear(self) -> None:
        with self._lock:
            self._rules.clear()

    def list(self) -> list[dict[str, Any]]:
        with self._lock:
            return [rule.to_json() for rule in self._rules]

    def fire(self, method: str, path: str) -> FaultRule | None:
        """The first matching rule that fires for this request, its count already spent."""
        with self._lock:
            for rule in self._rules:
                if not rule.matches(method, path) or rule.remaining == 0:
                    continue
                if rule.probability < 1.0 and rule._random.random() >= rule.probability:
                    continue
                if rule.remaining is not None:
                    rule.remaining -= 1
                rule.hits += 1
                return rule
            return None
