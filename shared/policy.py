"""Which models may be deployed, and into which workspaces: fail fast, before any Azure write.

Both policies are built from plain app-setting strings (comma-separated). Each list is one filter; an empty list
puts no restriction on its dimension, and a request must pass every configured filter. Comparisons ignore case,
because ARM ids and registry names are case-insensitive. The model filter mirrors the Azure Policy built-in
"Azure Machine Learning Deployments should only use approved Registry Models", so a broker-side rejection names
the same rule Azure would apply later.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from shared.azure_ids import WorkspaceId, normalize_scope
from shared.model_ids import ModelId, parse_model_id

_REGISTRY_PUBLISHER_PREFIX = "azureml-"


@dataclass(frozen=True)
class PolicyDecision:
    """The outcome of a policy check; `rule` names the filter that rejected (None when allowed)."""

    allowed: bool
    rule: str | None = None
    reason: str = ""


ALLOWED = PolicyDecision(allowed=True)


def split_setting(value: str | None) -> tuple[str, ...]:
    """Items of a comma-separated setting, trimmed, blanks dropped ("a, ,b" -> ("a", "b"))."""
    return tuple(item.strip() for item in (value or "").split(",") if item.strip())


def publisher_of(model: ModelId) -> str:
    """The publisher named by a registry: 'azureml-meta' -> 'meta'; Microsoft's own registry is 'azureml'."""
    registry = model.registry.lower()
    return registry.removeprefix(_REGISTRY_PUBLISHER_PREFIX) or registry


@dataclass(frozen=True)
class ApprovedModelPolicy:
    """Allowed registries, publishers (or catalog families) and exact model ids (versionless)."""

    registries: frozenset[str] = frozenset()
    publishers: frozenset[str] = frozenset()
    model_ids: frozenset[str] = frozenset()

    @classmethod
    def from_settings(
        cls, *, registries: str | None = None, publishers: str | None = None, model_ids: str | None = None
    ) -> ApprovedModelPolicy:
        """Build from settings; an unparsable model id raises ValueError, so a typo fails at start-up."""
        return cls(
            registries=_lowered(split_setting(registries)),
            publishers=_lowered(split_setting(publishers)),
            model_ids=frozenset(parse_model_id(item).key for item in split_setting(model_ids)),
        )

    def evaluate(self, model: ModelId, *, family: str | None = None) -> PolicyDecision:
        """Check every configured filter; `family` is the catalog family, accepted as a publisher name too."""
        if self.registries and model.registry.lower() not in self.registries:
            return PolicyDecision(
                False,
                "registry",
                f"Model {model} comes from registry '{model.registry}', which is not in the approved registries "
                f"({_listed(self.registries)}).",
            )
        publisher_names = {publisher_of(model)} | ({family.lower()} if family else set())
        if self.publishers and not publisher_names & self.publishers:
            return PolicyDecision(
                False,
                "publisher",
                f"Model {model} is published by '{publisher_of(model)}'"
                f"{f' (family {family!r})' if family else ''}, which is not an approved publisher "
                f"({_listed(self.publishers)}).",
            )
        if self.model_ids and model.key not in self.model_ids:
            return PolicyDecision(False, "modelId", f"Model {model} is not in the list of approved model ids.")
        return ALLOWED


@dataclass(frozen=True)
class TargetAllowList:
    """Subscriptions, resource groups and workspaces the broker may deploy into.

    A resource group entry is either a full id (`/subscriptions/{id}/resourceGroups/{name}`) or a bare name,
    which then matches that name in any allowed subscription.
    """

    subscription_ids: frozenset[str] = frozenset()
    resource_groups: frozenset[str] = frozenset()
    workspace_ids: frozenset[str] = frozenset()

    @classmethod
    def from_settings(
        cls,
        *,
        subscription_ids: str | None = None,
        resource_groups: str | None = None,
        workspace_ids: str | None = None,
    ) -> TargetAllowList:
        """Build from settings; an unparsable workspace id raises ValueError, so a typo fails at start-up."""
        return cls(
            subscription_ids=_lowered(split_setting(subscription_ids)),
            resource_groups=frozenset(_resource_group_entry(item) for item in split_setting(resource_groups)),
            workspace_ids=frozenset(WorkspaceId.parse(item).key for item in split_setting(workspace_ids)),
        )

    @property
    def unrestricted(self) -> bool:
        """True when nothing is configured: every workspace is allowed (worth a warning at start-up)."""
        return not (self.subscription_ids or self.resource_groups or self.workspace_ids)

    def evaluate(self, workspace: WorkspaceId) -> PolicyDecision:
        if self.subscription_ids and workspace.subscription_id not in self.subscription_ids:
            return PolicyDecision(
                False,
                "subscription",
                f"Subscription {workspace.subscription_id} is not in the broker's allowed subscriptions.",
            )
        if self.resource_groups and not any(self._group_matches(workspace, item) for item in self.resource_groups):
            return PolicyDecision(
                False,
                "resourceGroup",
                f"Resource group {workspace.resource_group_scope} is not in the broker's allowed resource groups.",
            )
        if self.workspace_ids and workspace.key not in self.workspace_ids:
            return PolicyDecision(
                False, "workspace", f"Workspace {workspace} is not in the broker's allowed workspaces."
            )
        return ALLOWED

    @staticmethod
    def _group_matches(workspace: WorkspaceId, entry: str) -> bool:
        if entry.startswith("/"):
            return normalize_scope(workspace.resource_group_scope) == entry
        return workspace.resource_group.lower() == entry


def _resource_group_entry(item: str) -> str:
    entry = normalize_scope(item)
    parts = entry.split("/")
    if entry.startswith("/") and (len(parts) != 5 or parts[1] != "subscriptions" or parts[3] != "resourcegroups"):
        raise ValueError(
            f"Allowed resource group '{item}' is neither a name nor an id of the form "
            "/subscriptions/{subscriptionId}/resourceGroups/{name}."
        )
    return entry


def _lowered(items: Iterable[str]) -> frozenset[str]:
    return frozenset(item.lower() for item in items)


def _listed(items: Iterable[str]) -> str:
    return ", ".join(sorted(items))
