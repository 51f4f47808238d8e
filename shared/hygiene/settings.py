"""Every hygiene setting, read from the environment in one place (app settings in Azure, local.settings.json locally).

The timer's schedule (HYGIENE_SCHEDULE) is not here: the Functions host resolves it from app settings itself.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta

from shared.config import parse_flag

DEFAULT_FINDINGS_TABLE = "hygienefindings"
DEFAULT_ALERTS_QUEUE = "hygiene-alerts"


class HygieneSettingsError(ValueError):
    """A hygiene setting that cannot be understood; the message names the setting and the expected form."""


@dataclass(frozen=True, kw_only=True)
class HygieneSettings:
    workspaces: tuple[str, ...] = ()
    findings_table: str = DEFAULT_FINDINGS_TABLE
    alerts_queue: str = DEFAULT_ALERTS_QUEUE
    webhook_url: str | None = None
    webhook_attempts: int = 4
    webhook_timeout_seconds: float = 10.0
    max_workers: int = 8
    throttle_retries: int = 4
    transient_retries: int = 1
    retry_backoff_seconds: float = 2.0
    max_retry_after_seconds: float = 60.0
    unhealthy_subscription_statuses: frozenset[str] = frozenset({"suspended", "unsubscribed"})
    missing_subscription_unhealthy: bool = True
    healthy_endpoint_states: frozenset[str] = frozenset({"online"})
    endpoint_state_grace: timedelta = timedelta(minutes=30)
    run_stuck_after: timedelta = timedelta(minutes=60)
    verify_key_values: bool = True
    # Each endpoint's keys are compared with listKeys once per interval (0: on every scan), and sooner on a signal.
    key_drift_interval: timedelta = timedelta(hours=24)
    disabled_rules: frozenset[str] = frozenset()
    remediation: Mapping[str, str] = field(default_factory=dict)
    dry_run: bool = True
    delete_grace: timedelta = timedelta(hours=24)
    max_remediations: int = 10

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> HygieneSettings:
        env = os.environ if env is None else env
        defaults = cls()
        reader = _Reader(env)
        return cls(
            workspaces=tuple(reader.csv("HYGIENE_WORKSPACES")),
            findings_table=env.get("HYGIENE_FINDINGS_TABLE") or defaults.findings_table,
            alerts_queue=env.get("HYGIENE_ALERTS_QUEUE") or defaults.alerts_queue,
            webhook_url=env.get("HYGIENE_WEBHOOK_URL") or None,
            webhook_attempts=reader.integer("HYGIENE_WEBHOOK_ATTEMPTS", defaults.webhook_attempts, minimum=1),
            webhook_timeout_seconds=reader.number("HYGIENE_WEBHOOK_TIMEOUT_SECONDS", defaults.webhook_timeout_seconds),
            max_workers=reader.integer("HYGIENE_MAX_WORKERS", defaults.max_workers, minimum=1),
            throttle_retries=reader.integer("HYGIENE_THROTTLE_RETRIES", defaults.throttle_retries, minimum=0),
            transient_retries=reader.integer("HYGIENE_TRANSIENT_RETRIES", defaults.transient_retries, minimum=0),
            retry_backoff_seconds=reader.number("HYGIENE_RETRY_BACKOFF_SECONDS", defaults.retry_backoff_seconds),
            max_retry_after_seconds=reader.number("HYGIENE_MAX_RETRY_AFTER_SECONDS", defaults.max_retry_after_seconds),
            unhealthy_subscription_statuses=reader.lowered_set(
                "HYGIENE_UNHEALTHY_SUBSCRIPTION_STATUSES", defaults.unhealthy_subscription_statuses
            ),
            missing_subscription_unhealthy=reader.flag(
                "HYGIENE_MISSING_SUBSCRIPTION_UNHEALTHY", defaults.missing_subscription_unhealthy
            ),
            healthy_endpoint_states=reader.lowered_set(
                "HYGIENE_HEALTHY_ENDPOINT_STATES", defaults.healthy_endpoint_states
            ),
            endpoint_state_grace=timedelta(
                minutes=reader.number("HYGIENE_ENDPOINT_STATE_GRACE_MINUTES", _minutes(defaults.endpoint_state_grace))
            ),
            run_stuck_after=timedelta(
                minutes=reader.number("HYGIENE_RUN_STUCK_MINUTES", _minutes(defaults.run_stuck_after))
            ),
            verify_key_values=reader.flag("HYGIENE_VERIFY_KEY_VALUES", defaults.verify_key_values),
            key_drift_interval=timedelta(
                hours=reader.number("HYGIENE_KEY_DRIFT_INTERVAL_HOURS", _hours(defaults.key_drift_interval))
            ),
            disabled_rules=frozenset(reader.csv("HYGIENE_DISABLED_RULES")),
            remediation=reader.assignments("HYGIENE_REMEDIATION"),
            dry_run=reader.flag("HYGIENE_DRY_RUN", defaults.dry_run),
            delete_grace=timedelta(hours=reader.number("HYGIENE_DELETE_GRACE_HOURS", _hours(defaults.delete_grace))),
            max_remediations=reader.integer("HYGIENE_MAX_REMEDIATIONS", defaults.max_remediations, minimum=0),
        )


def _minutes(duration: timedelta) -> float:
    return duration.total_seconds() / 60


def _hours(duration: timedelta) -> float:
    return duration.total_seconds() / 3600


class _Reader:
    def __init__(self, env: Mapping[str, str]) -> None:
        self._env = env

    def _raw(self, name: str) -> str:
        return (self._env.get(name) or "").strip()

    def csv(self, name: str) -> list[str]:
        return [item.strip() for item in self._raw(name).split(",") if item.strip()]

    def lowered_set(self, name: str, default: frozenset[str]) -> frozenset[str]:
        # An unset setting keeps the default; set to "" it would be indistinguishable, so empty also means default.
        items = self.csv(name)
        return frozenset(item.lower() for item in items) if items else default

    def flag(self, name: str, default: bool) -> bool:
        try:
            return parse_flag(name, self._raw(name), default=default)
        except ValueError as error:
            raise HygieneSettingsError(str(error)) from error

    def number(self, name: str, default: float) -> float:
        raw = self._raw(name)
        if not raw:
            return default
        try:
            value = float(raw)
        except ValueError:
            raise HygieneSettingsError(f"{name}='{raw}' is not a number.") from None
        if value < 0:
            raise HygieneSettingsError(f"{name}={raw} must not be negative.")
        return value

    def integer(self, name: str, default: int, *, minimum: int) -> int:
        raw = self._raw(name)
        if not raw:
            return default
        try:
            value = int(raw)
        except ValueError:
            raise HygieneSettingsError(f"{name}='{raw}' is not a whole number.") from None
        if value < minimum:
            raise HygieneSettingsError(f"{name}={raw} must be at least {minimum}.")
        return value

    def assignments(self, name: str) -> dict[str, str]:
        """`rule=mode,rule=mode` as a mapping; which rules and modes are valid is checked by the remediation policy."""
        result: dict[str, str] = {}
        for item in self.csv(name):
            rule, separator, mode = item.partition("=")
            if not separator or not rule.strip() or not mode.strip():
                raise HygieneSettingsError(f"{name}: '{item}' is not of the form rule=mode.")
            result[rule.strip()] = mode.strip().lower()
        return result
