"""What the broker's identity and the requester must be allowed to do before anything is written.

The seed ("Permissions required to subscribe to model offerings") lists actions at three scopes. The docs contradict
themselves: they call Owner, Contributor or Azure AI Developer sufficient, yet Azure AI Developer holds none of the
Marketplace/SaaS actions. The Machine Learning resource provider makes the Marketplace purchase itself, so what the
broker's token needs for its own calls are the workspace actions. Hence:

- workspace actions are always required;
- Marketplace/SaaS actions (subscription and resource group) are required only for Marketplace models, and then
  - `strict`: always;
  - `role-based` (default): only when the identity holds none of Owner, Contributor or Azure AI Developer at the
    resource group (the scope the seed's prerequisites name), directly or inherited.

The seed grants workspace access by wildcard (`serverlessEndpoints/*`); the broker checks the concrete operations
it performs instead, because roles such as Azure AI Developer grant them as `workspaces/*/write` etc., which cover
every operation yet not the wildcard itself.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from shared.azure_ids import ScopeLevel, WorkspaceId
from shared.rbac import PermissionSet

_ML = "Microsoft.MachineLearningServices/workspaces"
REQUESTER_DEPLOY_ACTION = f"{_ML}/serverlessEndpoints/write"
REQUESTER_DELETE_ACTION = f"{_ML}/serverlessEndpoints/delete"
REQUESTER_ROTATE_ACTION = f"{_ML}/serverlessEndpoints/regenerateKeys/action"

OWNER_ROLE_ID = "8e3af657-a8ff-443c-a75c-2fe8c4bcb635"
CONTRIBUTOR_ROLE_ID = "b24988ac-6180-42a0-ab88-20f7382dd24c"
AZURE_AI_DEVELOPER_ROLE_ID = "64702f94-c441-49e6-a78b-ef80e0188fee"
SUFFICIENT_ROLES: Mapping[str, str] = {
    OWNER_ROLE_ID: "Owner",
    CONTRIBUTOR_ROLE_ID: "Contributor",
    AZURE_AI_DEVELOPER_ROLE_ID: "Azure AI Developer",
}


class Strictness(StrEnum):
    """How the docs' contradiction about Marketplace/SaaS actions is resolved (see the module docstring)."""

    STRICT = "strict"
    ROLE_BASED = "role-based"

    @classmethod
    def from_setting(cls, value: str | None) -> Strictness:
        """Parse the setting; blank means the default (role-based), anything unknown is a configuration error."""
        text = (value or "").strip().lower()
        if not text:
            return cls.ROLE_BASED
        try:
            return cls(text)
        except ValueError:
            allowed = ", ".join(f"'{member.value}'" for member in cls)
            raise ValueError(f"Unknown permission strictness '{value}'; use one of {allowed}.") from None


@dataclass(frozen=True)
class RequiredAction:
    """An action the broker needs at a scope; any of `alternatives` satisfies it just as well."""

    action: str
    scope: ScopeLevel
    marketplace: bool = False
    alternatives: tuple[str, ...] = ()

    def held_by(self, permission_set: PermissionSet) -> bool:
        return any(permission_set.allows(action) for action in (self.action, *self.alternatives))


def _subscription_action(name: str) -> RequiredAction:
    # The seed names the type marketplaceModelSubscriptions; ARM calls it marketplaceSubscriptions: accept either.
    return RequiredAction(
        f"{_ML}/marketplaceSubscriptions/{name}",
        ScopeLevel.WORKSPACE,
        alternatives=(f"{_ML}/marketplaceModelSubscriptions/{name}",),
    )


BROKER_REQUIRED_ACTIONS: tuple[RequiredAction, ...] = (
    RequiredAction("Microsoft.MarketplaceOrdering/agreements/offers/plans/read", ScopeLevel.SUBSCRIPTION, True),
    RequiredAction("Microsoft.MarketplaceOrdering/agreements/offers/plans/sign/action", ScopeLevel.SUBSCRIPTION, True),
    RequiredAction(
        "Microsoft.MarketplaceOrdering/offerTypes/publishers/offers/plans/agreements/read",
        ScopeLevel.SUBSCRIPTION,
        True,
    ),
    RequiredAction(
        "Microsoft.Marketplace/offerTypes/publishers/offers/plans/agreements/read", ScopeLevel.SUBSCRIPTION, True
    ),
    RequiredAction("Microsoft.SaaS/register/action", ScopeLevel.SUBSCRIPTION, True),
    RequiredAction("Microsoft.SaaS/resources/read", ScopeLevel.RESOURCE_GROUP, True),
    RequiredAction("Microsoft.SaaS/resources/write", ScopeLevel.RESOURCE_GROUP, True),
    RequiredAction(f"{_ML}/serverlessEndpoints/read", ScopeLevel.WORKSPACE),
    RequiredAction(f"{_ML}/serverlessEndpoints/write", ScopeLevel.WORKSPACE),
    RequiredAction(f"{_ML}/serverlessEndpoints/delete", ScopeLevel.WORKSPACE),
    RequiredAction(f"{_ML}/serverlessEndpoints/listKeys/action", ScopeLevel.WORKSPACE),
    _subscription_action("read"),
    _subscription_action("write"),
)


def holds_sufficient_role(roles: Iterable[str]) -> bool:
    """Whether any of `roles` (names, GUIDs or role definition ids, any casing) is Owner/Contributor/AI Developer."""
    sufficient = set(SUFFICIENT_ROLES) | {name.lower() for name in SUFFICIENT_ROLES.values()}
    return any(role.strip().rstrip("/").rsplit("/", 1)[-1].lower() in sufficient for role in roles)


def required_actions(
    *, marketplace_model: bool, strictness: Strictness, resource_group_roles: Iterable[str] = ()
) -> tuple[RequiredAction, ...]:
    """The broker's required actions for one deployment, after the Marketplace and strictness rules."""
    marketplace_needed = marketplace_model and (
        strictness is Strictness.STRICT or not holds_sufficient_role(resource_group_roles)
    )
    return tuple(item for item in BROKER_REQUIRED_ACTIONS if marketplace_needed or not item.marketplace)


@dataclass(frozen=True)
class ScopeCheck:
    """Missing actions at one scope."""

    scope: ScopeLevel
    scope_id: str
    missing: tuple[str, ...]


@dataclass(frozen=True)
class BrokerPermissionCheck:
    """The outcome of checking the broker's own identity; `rejection_text` is None when nothing is missing."""

    workspace: WorkspaceId
    marketplace_model: bool
    strictness: Strictness
    sufficient_role_held: bool
    scopes: tuple[ScopeCheck, ...]

    @property
    def ok(self) -> bool:
        return not any(scope.missing for scope in self.scopes)

    def missing_by_scope(self) -> dict[str, list[str]]:
        """Scope id -> missing actions, for problem details and run errors (only scopes with gaps)."""
        return {scope.scope_id: list(scope.missing) for scope in self.scopes if scope.missing}

    def details(self) -> list[dict[str, Any]]:
        return [
            {"scope": scope.scope.value, "scopeId": scope.scope_id, "missingActions": list(scope.missing)}
            for scope in self.scopes
            if scope.missing
        ]

    @property
    def rejection_text(self) -> str | None:
        if self.ok:
            return None
        kind = "a Marketplace model" if self.marketplace_model else "a model sold directly by Azure"
        gaps = "; ".join(
            f"at {scope.scope.value} {scope.scope_id}: {', '.join(scope.missing)}"
            for scope in self.scopes
            if scope.missing
        )
        return (
            f"The broker's identity lacks permissions needed to deploy {kind} (permission strictness "
            f"'{self.strictness.value}'): {gaps}. {self._fix()}"
        )

    def _fix(self) -> str:
        marketplace_missing = any(scope.missing for scope in self.scopes if scope.scope is not ScopeLevel.WORKSPACE)
        rg = self.workspace.resource_group_scope
        if not marketplace_missing:
            return (
                f"Fix: assign the Azure AI Developer role to the broker's identity at resource group scope {rg} "
                f"(or at workspace scope {self.workspace}), or grant the listed actions through a custom role."
            )
        if self.strictness is Strictness.STRICT:
            return (
                "Fix: grant the listed Marketplace/SaaS actions through a custom role at the scopes named (strict "
                "mode requires them even with Owner, Contributor or Azure AI Developer), or set the strictness to "
                "'role-based' and assign the Azure AI Developer role at resource group scope "
                f"{rg}."
            )
        return (
            f"Fix: assign the Azure AI Developer role (or Owner/Contributor) to the broker's identity at resource "
            f"group scope {rg}; in 'role-based' mode that role waives the Marketplace/SaaS actions. Otherwise grant "
            "the listed actions through a custom role at the scopes named."
        )


def check_broker_permissions(
    workspace: WorkspaceId,
    permissions: Mapping[ScopeLevel, PermissionSet],
    *,
    marketplace_model: bool,
    strictness: Strictness = Strictness.ROLE_BASED,
    resource_group_roles: Iterable[str] = (),
) -> BrokerPermissionCheck:
    """Check the broker's effective permissions (permissions API, one set per scope) against its needs.

    `resource_group_roles`: role names or ids the identity holds at the workspace's resource group or above.
    A scope without a permission set counts as holding nothing.
    """
    roles = tuple(resource_group_roles)
    needed = required_actions(marketplace_model=marketplace_model, strictness=strictness, resource_group_roles=roles)
    scopes = tuple(
        ScopeCheck(
            scope=level,
            scope_id=workspace.scope(level),
            missing=tuple(
                item.action
                for item in needed
                if item.scope is level and not item.held_by(permissions.get(level, PermissionSet()))
            ),
        )
        for level in ScopeLevel
    )
    return BrokerPermissionCheck(
        workspace=workspace,
        marketplace_model=marketplace_model,
        strictness=strictness,
        sufficient_role_held=holds_sufficient_role(roles),
        scopes=scopes,
    )


@dataclass(frozen=True)
class RequesterCheck:
    """Whether the requester may deploy into the workspace; `rejection_text` explains a refusal."""

    allowed: bool
    denied_by_assignment: bool
    rejection_text: str | None


def check_requester_permission(
    workspace: WorkspaceId,
    principal_id: str,
    permission_set: PermissionSet,
    *,
    action: str = REQUESTER_DEPLOY_ACTION,
) -> RequesterCheck:
    """Check that the requester may perform `action` (by default: deploy) at the workspace (role assignments +
    deny assignments)."""
    if permission_set.allows(action):
        return RequesterCheck(allowed=True, denied_by_assignment=False, rejection_text=None)
    if permission_set.is_denied(action):
        return RequesterCheck(
            allowed=False,
            denied_by_assignment=True,
            rejection_text=(
                f"Principal {principal_id} is blocked from '{action}' on workspace {workspace} by "
                "a deny assignment; no role assignment can override it. Ask the owner of the deny assignment "
                "(often a managed application or deployment stack) to exclude the principal."
            ),
        )
    return RequesterCheck(
        allowed=False,
        denied_by_assignment=False,
        rejection_text=(
            f"Principal {principal_id} may not perform '{action}' on workspace {workspace}. Ask "
            "the workspace owner to assign the Azure AI Developer role (or a role granting that action) at the "
            "workspace or its resource group."
        ),
    )
