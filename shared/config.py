"""Settings the broker reads from its environment (app settings in Azure, local.settings.json locally).

Every setting is listed in local.settings.sample.json and the README; names are read here and nowhere else.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from shared.access import DEFAULT_APPROVER_ROLE, DEFAULT_AUDITOR_ROLE

PUBLIC_ARM_URL = "https://management.azure.com"
# How long a run's chain of steps may be silent before the watchdog re-enqueues its step (shared/watchdog.py).
DEFAULT_WATCHDOG_STALL_SECONDS = 60.0
# Long-running operations are polled after max(floor, fraction x the wait's age), at most the ceiling (or after ARM's
# Retry-After when longer): ~20 polls for a 60 s operation, and a finished one seen within ~10 % of its age.
DEFAULT_POLL_SECONDS = 2.0
DEFAULT_POLL_MAX_SECONDS = 30.0
DEFAULT_POLL_AGE_FRACTION = 0.1
# How long preflight trusts what it read from Microsoft.Authorization (shared/adapters/authorization.py): access
# (permissions, role and deny assignments) is the window in which a revoked grant may still pass preflight; ARM
# still enforces every write. Role definitions change rarely and are kept for hours. 0 keeps nothing.
DEFAULT_ACCESS_CACHE_SECONDS = 120.0
DEFAULT_ROLE_DEFINITION_CACHE_SECONDS = 21600.0
# A request waiting for approval is rejected (approval-expired) after this many hours without a decision.
DEFAULT_APPROVAL_EXPIRY_HOURS = 72.0
_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off"})


STORAGE_CONNECTION = "AzureWebJobsStorage"
# The public cloud's storage endpoints, for `<connection>__accountName`.
_ACCOUNT_ENDPOINTS = {
    "queue": "https://{account}.queue.core.windows.net",
    "table": "https://{account}.table.core.windows.net",
}


@dataclass(frozen=True, kw_only=True)
class StorageCredentialSettings:
    """How an identity-based connection signs in: the Functions host's `<connection>__credential`, `__clientId`,
    `__managedIdentityResourceId`, `__managedIdentityObjectId`, `__tenantId` and `__clientSecret` properties.

    All unset (the default): the app's own credential chain (`DefaultAzureCredential`).
    """

    credential: str | None = None
    client_id: str | None = None
    managed_identity_resource_id: str | None = None
    managed_identity_object_id: str | None = None
    tenant_id: str | None = None
    client_secret: str | None = None

    @property
    def managed_identity(self) -> bool:
        return (self.credential or "").lower() == "managedidentity"


@dataclass(frozen=True, kw_only=True)
class StorageSettings:
    """Where queues and tables live, read as the Functions host reads a storage connection: the setting itself is a
    connection string (Azurite's, in tests); else `<connection>__queueServiceUri` / `__tableServiceUri` (or
    `__accountName`) with a token credential, which is what Azure and `make run` use (identity-based, no keys)."""

    connection_string: str | None
    queue_service_uri: str | None
    table_service_uri: str | None
    credential: StorageCredentialSettings = StorageCredentialSettings()

    @property
    def identity_based(self) -> bool:
        return not self.connection_string and bool(self.queue_service_uri or self.table_service_uri)

    @classmethod
    def from_env(cls, env: Mapping[str, str], connection: str = STORAGE_CONNECTION) -> StorageSettings:
        # Property names are matched ignoring case, as the host's configuration does (`__QueueServiceUri` works too).
        section = _section(env, connection)
        account = section.get("accountname")

        def service_uri(service: str) -> str | None:
            explicit = section.get(f"{service}serviceuri")
            if explicit:
                return explicit
            return _ACCOUNT_ENDPOINTS[service].format(account=account) if account else None

        return cls(
            connection_string=env.get(connection) or None,
            queue_service_uri=service_uri("queue"),
            table_service_uri=service_uri("table"),
            credential=StorageCredentialSettings(
                credential=section.get("credential"),
                client_id=section.get("clientid"),
                managed_identity_resource_id=section.get("managedidentityresourceid"),
                managed_identity_object_id=section.get("managedidentityobjectid"),
                tenant_id=section.get("tenantid"),
                client_secret=section.get("clientsecret"),
            ),
        )


def _section(env: Mapping[str, str], connection: str) -> dict[str, str]:
    """The non-empty `<connection>__<property>` settings, by lower-cased property name."""
    prefix = f"{connection}__".lower()
    return {
        name[len(prefix) :].lower(): value.strip()
        for name, value in env.items()
        if name.lower().startswith(prefix) and value and value.strip()
    }


@dataclass(frozen=True, kw_only=True)
class Settings:
    storage: StorageSettings
    arm_url: str
    key_vault_url: str | None
    requests_queue: str
    work_queue: str
    events_queue: str
    runs_table: str
    approved_registries: str
    approved_publishers: str
    approved_models: str
    allowed_subscriptions: str
    allowed_resource_groups: str
    allowed_workspaces: str
    catalog_overrides_path: str | None
    allow_uncatalogued_models: bool
    permission_strictness: str
    poll_seconds: float
    watchdog_stall_seconds: float = DEFAULT_WATCHDOG_STALL_SECONDS
    # The poll schedule's ceiling, and the share of a wait's age until the next look (shared/engine.StepTimings).
    poll_max_seconds: float = DEFAULT_POLL_MAX_SECONDS
    poll_age_fraction: float = DEFAULT_POLL_AGE_FRACTION
    access_cache_seconds: float = DEFAULT_ACCESS_CACHE_SECONDS
    role_definition_cache_seconds: float = DEFAULT_ROLE_DEFINITION_CACHE_SECONDS
    # Approvals (shared/approvals.py) and the broker's app roles (shared/access.py).
    approvals_enabled: bool = False
    approval_marketplace: bool = True
    approval_publishers: str = ""
    approval_models: str = ""
    approval_workspaces: str = ""
    approval_subscriptions: str = ""
    approval_expiry_hours: float = DEFAULT_APPROVAL_EXPIRY_HOURS
    approver_role: str = DEFAULT_APPROVER_ROLE
    approver_groups: str = ""
    auditor_role: str = DEFAULT_AUDITOR_ROLE
    auditor_groups: str = ""
    # Deployment events also go to this Event Grid topic (CloudEvents schema) when set (shared/event_delivery.py).
    event_grid_topic_endpoint: str | None = None

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env
        return cls(
            storage=StorageSettings.from_env(env),
            arm_url=env.get("AZURE_RESOURCE_MANAGER_URL") or PUBLIC_ARM_URL,
            key_vault_url=env.get("AZURE_KEYVAULT_URL") or None,
            requests_queue=env.get("DEPLOYMENT_REQUESTS_QUEUE") or "deployment-requests",
            work_queue=env.get("DEPLOYMENT_WORK_QUEUE") or "deployment-work",
            events_queue=env.get("DEPLOYMENT_EVENTS_QUEUE") or "deployment-events",
            runs_table=env.get("DEPLOYMENT_RUNS_TABLE") or "deploymentruns",
            approved_registries=env.get("BROKER_APPROVED_REGISTRIES", ""),
            approved_publishers=env.get("BROKER_APPROVED_PUBLISHERS", ""),
            approved_models=env.get("BROKER_APPROVED_MODELS", ""),
            allowed_subscriptions=env.get("BROKER_ALLOWED_SUBSCRIPTIONS", ""),
            allowed_resource_groups=env.get("BROKER_ALLOWED_RESOURCE_GROUPS", ""),
            allowed_workspaces=env.get("BROKER_ALLOWED_WORKSPACES", ""),
            catalog_overrides_path=env.get("BROKER_MODEL_CATALOG_OVERRIDES") or None,
            allow_uncatalogued_models=_flag(env, "BROKER_ALLOW_UNCATALOGUED_MODELS", default=False),
            permission_strictness=env.get("BROKER_PERMISSION_STRICTNESS", ""),
            poll_seconds=_seconds(env, "BROKER_POLL_SECONDS", default=DEFAULT_POLL_SECONDS),
            watchdog_stall_seconds=_seconds(env, "WATCHDOG_STALL_SECONDS", default=DEFAULT_WATCHDOG_STALL_SECONDS),
            poll_max_seconds=_seconds(env, "BROKER_POLL_MAX_SECONDS", default=DEFAULT_POLL_MAX_SECONDS),
            poll_age_fraction=_fraction(env, "BROKER_POLL_AGE_FRACTION", default=DEFAULT_POLL_AGE_FRACTION),
            access_cache_seconds=_cache_seconds(env, "BROKER_ACCESS_CACHE_SECONDS", DEFAULT_ACCESS_CACHE_SECONDS),
            role_definition_cache_seconds=_cache_seconds(
                env, "BROKER_ROLE_DEFINITION_CACHE_SECONDS", DEFAULT_ROLE_DEFINITION_CACHE_SECONDS
            ),
            approvals_enabled=_flag(env, "BROKER_APPROVALS_ENABLED", default=False),
            approval_marketplace=_flag(env, "BROKER_APPROVAL_MARKETPLACE", default=True),
            approval_publishers=env.get("BROKER_APPROVAL_PUBLISHERS", ""),
            approval_models=env.get("BROKER_APPROVAL_MODELS", ""),
            approval_workspaces=env.get("BROKER_APPROVAL_WORKSPACES", ""),
            approval_subscriptions=env.get("BROKER_APPROVAL_SUBSCRIPTIONS", ""),
            approval_expiry_hours=_seconds(env, "BROKER_APPROVAL_EXPIRY_HOURS", default=DEFAULT_APPROVAL_EXPIRY_HOURS),
            approver_role=(env.get("BROKER_APPROVER_ROLE") or "").strip() or DEFAULT_APPROVER_ROLE,
            approver_groups=env.get("BROKER_APPROVER_GROUPS", ""),
            auditor_role=(env.get("BROKER_AUDITOR_ROLE") or "").strip() or DEFAULT_AUDITOR_ROLE,
            auditor_groups=env.get("BROKER_AUDITOR_GROUPS", ""),
            event_grid_topic_endpoint=(env.get("EVENT_GRID_TOPIC_ENDPOINT") or "").strip() or None,
        )


def _seconds(env: Mapping[str, str], name: str, *, default: float) -> float:
    """A positive number of seconds."""
    return _number(env, name, default, lambda value: 0 < value < math.inf, "a positive number of seconds")


def _cache_seconds(env: Mapping[str, str], name: str, default: float) -> float:
    """How long a cache keeps what it read: a finite number of seconds, 0 to keep nothing."""
    return _number(env, name, default, lambda value: 0 <= value < math.inf, "a number of seconds (0 or more)")


def _fraction(env: Mapping[str, str], name: str, *, default: float) -> float:
    """A share above 0 and at most 1."""
    return _number(env, name, default, lambda value: 0 < value <= 1, "a fraction above 0 and at most 1")


def _number(
    env: Mapping[str, str], name: str, default: float, accepted: Callable[[float], bool], description: str
) -> float:
    """The setting as a number `accepted` allows; blank keeps `default`, anything else is refused by name."""
    raw = (env.get(name) or "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if not accepted(value):
        raise ValueError(f"{name}='{env[name]}' is not {description}.")
    return value


def _flag(env: Mapping[str, str], name: str, *, default: bool) -> bool:
    return parse_flag(name, env.get(name) or "", default=default)


def parse_flag(name: str, raw: str, *, default: bool) -> bool:
    """A boolean setting: true/false, 1/0, yes/no or on/off in any case; blank keeps `default`."""
    value = raw.strip().lower()
    if not value:
        return default
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ValueError(f"{name}='{raw.strip()}' is not a boolean; use true or false.")
