"""Health of the broker: its version, whether each dependency answers, and whether its callers' identity can be
trusted (the principal headers are refused in Azure without App Service authentication)."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from shared.version import broker_version

Probe = Callable[[], None]


@dataclass(frozen=True)
class DependencyHealth:
    name: str
    healthy: bool
    latency_ms: float
    error: str | None = None

    def as_dict(self) -> dict[str, object]:
        body: dict[str, object] = {
            "status": "ok" if self.healthy else "unavailable",
            "latencyMs": round(self.latency_ms, 1),
        }
        if self.error:
            body["error"] = self.error
        return body


@dataclass(frozen=True)
class AuthenticationHealth:
    """Whether the broker can believe who its callers say they are (the principal headers), and why."""

    trusted: bool
    easy_auth: bool
    in_azure: bool
    detail: str

    def as_dict(self) -> dict[str, object]:
        return {
            "status": "ok" if self.trusted else "misconfigured",
            "easyAuth": "enabled" if self.easy_auth else "disabled",
            "inAzure": self.in_azure,
            "detail": self.detail,
        }


@dataclass(frozen=True)
class HealthReport:
    version: str
    dependencies: tuple[DependencyHealth, ...]
    authentication: AuthenticationHealth | None = None

    @property
    def healthy(self) -> bool:
        trusted = self.authentication is None or self.authentication.trusted
        return trusted and all(dependency.healthy for dependency in self.dependencies)

    def as_dict(self) -> dict[str, object]:
        body: dict[str, object] = {
            "status": "healthy" if self.healthy else "degraded",
            "version": self.version,
            "dependencies": {dependency.name: dependency.as_dict() for dependency in self.dependencies},
        }
        if self.authentication is not None:
            body["authentication"] = self.authentication.as_dict()
        return body


def check_health(
    probes: Mapping[str, Probe],
    *,
    authentication: AuthenticationHealth | None = None,
    clock: Callable[[], float] = time.perf_counter,
) -> HealthReport:
    """Run every probe; a probe fails by raising, and its exception's type and message become the error.

    `authentication` is reported as given; an untrusted one (in Azure without Easy Auth) degrades the report.
    """
    results = []
    for name, probe in probes.items():
        started = clock()
        try:
            probe()
        except Exception as error:  # noqa: BLE001 - any failure of a dependency is reported, never raised
            results.append(DependencyHealth(name, False, (clock() - started) * 1000, _describe(error)))
        else:
            results.append(DependencyHealth(name, True, (clock() - started) * 1000))
    return HealthReport(broker_version(), tuple(results), authentication)


def _describe(error: Exception) -> str:
    first_line = str(error).strip().splitlines()[0] if str(error).strip() else ""
    return f"{type(error).__name__}: {first_line}" if first_line else type(error).__name__
