"""Scenarios: the tenant, subscriptions, workspaces, vaults, principals, roles, model catalog and timings to emulate.

A scenario is JSON (schema in the emulator contract and README). Structural parts the core serves become dataclasses;
the RBAC parts (principals, role and deny assignments, custom roles) stay as the JSON objects the RBAC engine reads.
"""

from __future__ import annotations

import copy
import json
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

SCENARIOS_DIR = Path(__file__).resolve().parent / "scenarios"
DEMO_SCENARIO = SCENARIOS_DIR / "demo.json"


@dataclass(frozen=True)
class ResourceGroupSpec:
    name: str
    location: str


@dataclass(frozen=True)
class SubscriptionSpec:
    subscription_id: str
    display_name: str
    resource_groups: tuple[ResourceGroupSpec, ...]

    def resource_group(self, name: str) -> ResourceGroupSpec | None:
        return next((group for group in self.resource_groups if group.name.lower() == name.lower()), None)


@dataclass(frozen=True)
class WorkspaceSpec:
    subscription_id: str
    resource_group: str
    name: str
    location: str
    kind: str = "Project"
    # Stable per workspace, like the real service's workspaceId (reloading a scenario keeps it).
    workspace_id: str = ""

    @property
    def resource_id(self) -> str:
        return (
            f"/subscriptions/{self.subscription_id}/resourceGroups/{self.resource_group}"
            f"/providers/Microsoft.MachineLearningServices/workspaces/{self.name}"
        )


@dataclass(frozen=True)
class VaultSpec:
    subscription_id: str
    resource_group: str
    name: str

    @property
    def resource_id(self) -> str:
        return (
            f"/subscriptions/{self.subscription_id}/resourceGroups/{self.resource_group}"
            f"/providers/Microsoft.KeyVault/vaults/{self.name}"
        )


# ARM's poll delay for accepted operations when a scenario names none: the spec's minimum Retry-After (10..600 s).
DEFAULT_RETRY_AFTER_MS = 10_000


@dataclass(frozen=True)
class Timings:
    # How long a create or delete stays in progress before it completes by itself; None: only the admin API ends it.
    lro_seconds: float | None = 2.0
    # The poll delay accepted operations advertise: from one second up as Retry-After in whole seconds, as ARM sends
    # it; below one second (tests only) as retry-after-ms alone. The SDKs wait 30 s without either.
    retry_after_ms: int = DEFAULT_RETRY_AFTER_MS
    # regenerateKeys answers 200 with the keys, or (true) 202 with operation headers and changes the key when done.
    regenerate_keys_async: bool = False


@dataclass(frozen=True)
class BucketSpec:
    capacity: int
    refill_per_second: float


@dataclass(frozen=True)
class ThrottlingSpec:
    # ARM's published token buckets per subscription (reads 250 / 25 per s; writes and deletes 200 / 10 per s).
    enabled: bool = False
    reads: BucketSpec = BucketSpec(250, 25.0)
    writes: BucketSpec = BucketSpec(200, 10.0)
    deletes: BucketSpec = BucketSpec(200, 10.0)


@dataclass(frozen=True)
class Scenario:
    tenant_id: str
    subscriptions: tuple[SubscriptionSpec, ...]
    workspaces: tuple[WorkspaceSpec, ...]
    vaults: tuple[VaultSpec, ...]
    principals: list[dict[str, Any]]
    broker_principal_id: str
    identity_header: str
    role_assignments: list[dict[str, Any]]
    deny_assignments: list[dict[str, Any]]
    custom_roles: list[dict[str, Any]]
    # None: the catalog is seeded from data/serverless-region-availability.json.
    models: list[dict[str, Any]] | None
    timings: Timings
    unhealthy_endpoint_state: str = "Suspended"
    # False (the default): request bodies must validate against their api-version's schema (schemas/); True relaxes
    # that, like Azurite's --loose. The service's own rules apply either way.
    loose: bool = False
    page_size: int = 100
    throttling: ThrottlingSpec = field(default_factory=ThrottlingSpec)
    # The document it came from, so the admin API can show it and reset to it.
    source: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    def subscription(self, subscription_id: str) -> SubscriptionSpec | None:
        return next(
            (item for item in self.subscriptions if item.subscription_id.lower() == subscription_id.lower()), None
        )

    def workspace(self, subscription_id: str, resource_group: str, name: str) -> WorkspaceSpec | None:
        wanted = (subscription_id.lower(), resource_group.lower(), name.lower())
        return next(
            (
                item
                for item in self.workspaces
                if (item.subscription_id.lower(), item.resource_group.lower(), item.name.lower()) == wanted
            ),
            None,
        )

    def principal(self, object_id: str) -> dict[str, Any] | None:
        return next((item for item in self.principals if item["objectId"].lower() == object_id.lower()), None)


def positive_milliseconds(value: Any) -> int:
    milliseconds = int(value)
    if milliseconds < 1:
        raise ValueError(f"timings.retryAfterMs must be a positive number of milliseconds, not {value!r}")
    return milliseconds


def _bucket(raw: dict[str, Any] | None, default: BucketSpec) -> BucketSpec:
    if not raw:
        return default
    return BucketSpec(
        capacity=int(raw.get("capacity", default.capacity)),
        refill_per_second=float(raw.get("refillPerSecond", default.refill_per_second)),
    )


def throttling_from_json(raw: dict[str, Any] | None) -> ThrottlingSpec:
    raw = raw or {}
    defaults = ThrottlingSpec()
    return ThrottlingSpec(
        enabled=bool(raw.get("enabled", False)),
        reads=_bucket(raw.get("reads"), defaults.reads),
        writes=_bucket(raw.get("writes"), defaults.writes),
        deletes=_bucket(raw.get("deletes"), defaults.deletes),
    )


def _workspace(raw: dict[str, Any], default_subscription: str) -> WorkspaceSpec:
    subscription_id = raw.get("subscriptionId", default_subscription)
    resource_group = raw["resourceGroup"]
    name = raw["name"]
    stable_id = str(uuid.uuid5(uuid.NAMESPACE_URL, f"workspace:{subscription_id}/{resource_group}/{name}".lower()))
    return WorkspaceSpec(
        subscription_id=subscription_id,
        resource_group=resource_group,
        name=name,
        location=raw["location"].replace(" ", "").lower(),
        kind=raw.get("kind", "Project"),
        workspace_id=raw.get("workspaceId", stable_id),
    )


def scenario_from_dict(document: dict[str, Any]) -> Scenario:
    source = copy.deepcopy(document)
    subscriptions = tuple(
        SubscriptionSpec(
            subscription_id=raw["subscriptionId"],
            display_name=raw.get("displayName", raw["subscriptionId"]),
            resource_groups=tuple(
                ResourceGroupSpec(group["name"], group.get("location", "eastus2"))
                for group in raw.get("resourceGroups", ())
            ),
        )
        for raw in document.get("subscriptions", ())
    )
    if not subscriptions:
        raise ValueError("a scenario needs at least one subscription")
    default_subscription = subscriptions[0].subscription_id
    timings = document.get("timings") or {}
    return Scenario(
        tenant_id=document["tenantId"],
        subscriptions=subscriptions,
        workspaces=tuple(_workspace(raw, default_subscription) for raw in document.get("workspaces", ())),
        vaults=tuple(
            VaultSpec(raw.get("subscriptionId", default_subscription), raw["resourceGroup"], raw["name"])
            for raw in document.get("vaults", ())
        ),
        principals=list(document.get("principals", [])),
        broker_principal_id=document.get("brokerPrincipalId", ""),
        identity_header=document.get("identityHeader", ""),
        role_assignments=list(document.get("roleAssignments", [])),
        deny_assignments=list(document.get("denyAssignments", [])),
        custom_roles=list(document.get("customRoles", [])),
        models=document.get("models"),
        timings=Timings(
            lro_seconds=timings.get("lroSeconds", Timings.lro_seconds),
            retry_after_ms=positive_milliseconds(timings.get("retryAfterMs", Timings.retry_after_ms)),
            regenerate_keys_async=bool(timings.get("regenerateKeysAsync", Timings.regenerate_keys_async)),
        ),
        unhealthy_endpoint_state=document.get("unhealthyEndpointState", "Suspended"),
        loose=bool(document.get("loose", False)),
        page_size=int(document.get("pageSize", 100)),
        throttling=throttling_from_json(document.get("throttling")),
        source=source,
    )


def load_scenario_document(path: Path | str | None = None) -> dict[str, Any]:
    return json.loads(Path(path or DEMO_SCENARIO).read_text(encoding="utf-8"))


def merge_overrides(document: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    """A copy of the document with top-level keys replaced and dict values (timings, throttling) merged one level."""
    merged = copy.deepcopy(document)
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = {**merged[key], **value}
        else:
            merged[key] = value
    return merged
