"""Azure RBAC as the emulator enforces it.

Effective permissions at a scope are the union, over the role assignments at that scope and its ancestors held by the
principal or by any group it belongs to, of each role's (Actions - NotActions); data actions likewise. NotActions only
trims what its own permission block grants: another role can still grant the action. Wildcards may sit anywhere in a
pattern and matching ignores case. Deny assignments then block whatever they name, whatever the grants.
"""

from __future__ import annotations

import functools
import json
import re
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from devstack.emulator.errors import ArmError
from devstack.emulator.keyvault_store import KeyVaultError
from devstack.emulator.scenario import Scenario
from devstack.emulator.tokens import Principal

if TYPE_CHECKING:
    from devstack.emulator.state import EmulatorState

BUILTIN_ROLES_FILE = Path(__file__).resolve().parent / "data" / "builtin-roles.json"
# Deny assignments use this SystemDefined principal to mean "every principal".
EVERYONE = "00000000-0000-0000-0000-000000000000"
ROLE_DEFINITIONS_PATH = "/providers/Microsoft.Authorization/roleDefinitions/"


@functools.lru_cache(maxsize=2048)
def _compiled(pattern: str) -> re.Pattern[str]:
    return re.compile(".*".join(re.escape(part) for part in pattern.split("*")), re.IGNORECASE)


def action_matches(pattern: str, action: str) -> bool:
    """Whether an RBAC action pattern ('*', '*/read', 'Microsoft.Authorization/*/Delete', ...) covers an action."""
    return _compiled(pattern).fullmatch(action) is not None


def _matches_any(patterns: Iterable[str], action: str) -> bool:
    return any(action_matches(pattern, action) for pattern in patterns)


def scope_segments(scope: str) -> tuple[str, ...]:
    return tuple(segment.lower() for segment in scope.split("/") if segment)


def is_at_or_above(outer: str, inner: str) -> bool:
    """Whether scope `outer` is `inner` or one of its ancestors ('/' is above everything)."""
    outer_segments = scope_segments(outer)
    return scope_segments(inner)[: len(outer_segments)] == outer_segments


def subscription_of(scope: str) -> str | None:
    segments = [segment for segment in scope.split("/") if segment]
    if len(segments) >= 2 and segments[0].lower() == "subscriptions":
        return segments[1]
    return None


@dataclass(frozen=True)
class PermissionSet:
    actions: tuple[str, ...] = ()
    not_actions: tuple[str, ...] = ()
    data_actions: tuple[str, ...] = ()
    not_data_actions: tuple[str, ...] = ()

    @classmethod
    def from_json(cls, block: Mapping[str, Any]) -> PermissionSet:
        return cls(
            actions=tuple(block.get("actions") or ()),
            not_actions=tuple(block.get("notActions") or ()),
            data_actions=tuple(block.get("dataActions") or ()),
            not_data_actions=tuple(block.get("notDataActions") or ()),
        )

    def covers(self, action: str, *, data: bool) -> bool:
        granted, trimmed = (self.data_actions, self.not_data_actions) if data else (self.actions, self.not_actions)
        return _matches_any(granted, action) and not _matches_any(trimmed, action)

    def to_json(self) -> dict[str, list[str]]:
        return {
            "actions": list(self.actions),
            "notActions": list(self.not_actions),
            "dataActions": list(self.data_actions),
            "notDataActions": list(self.not_data_actions),
        }


@dataclass(frozen=True)
class RoleDefinition:
    guid: str
    role_name: str
    role_type: str
    description: str
    assignable_scopes: tuple[str, ...]
    permissions: tuple[PermissionSet, ...]

    @classmethod
    def from_json(cls, role: Mapping[str, Any]) -> RoleDefinition:
        guid = role.get("name") or str(uuid.uuid5(uuid.NAMESPACE_URL, f"customrole:{role['roleName']}"))
        return cls(
            guid=guid.lower(),
            role_name=role["roleName"],
            role_type=role.get("roleType") or role.get("type") or "CustomRole",
            description=role.get("description", ""),
            assignable_scopes=tuple(role.get("assignableScopes") or ("/",)),
            permissions=tuple(PermissionSet.from_json(block) for block in role.get("permissions") or ()),
        )

    def id_at(self, scope: str) -> str:
        """The definition's id as ARM prints it under a scope: subscription-qualified inside a subscription."""
        subscription = subscription_of(scope)
        prefix = f"/subscriptions/{subscription}" if subscription else ""
        return f"{prefix}{ROLE_DEFINITIONS_PATH}{self.guid}"


@dataclass(frozen=True)
class RoleAssignment:
    name: str
    principal_id: str
    principal_type: str
    role: RoleDefinition
    scope: str


@dataclass(frozen=True)
class PrincipalRef:
    id: str
    type: str


@dataclass(frozen=True)
class DenyAssignment:
    name: str
    deny_assignment_name: str
    description: str
    scope: str
    principals: tuple[PrincipalRef, ...]
    exclude_principals: tuple[PrincipalRef, ...]
    permissions: tuple[PermissionSet, ...]
    do_not_apply_to_child_scopes: bool
    is_system_protected: bool

    def applies_at(self, scope: str) -> bool:
        if self.do_not_apply_to_child_scopes:
            return scope_segments(self.scope) == scope_segments(scope)
        return is_at_or_above(self.scope, scope)

    def blocks(self, action: str, *, data: bool) -> bool:
        return any(block.covers(action, data=data) for block in self.permissions)


@functools.lru_cache(maxsize=1)
def builtin_roles() -> tuple[tuple[RoleDefinition, ...], dict[str, str]]:
    """The built-in role definitions and the alias names the docs also use for some of them."""
    document = json.loads(BUILTIN_ROLES_FILE.read_text(encoding="utf-8"))
    roles = tuple(RoleDefinition.from_json(role) for role in document["roles"] + document["additionalRoles"])
    return roles, dict(document.get("nameAliases", {}))


class RbacDirectory:
    """The principals, groups, role definitions and assignments of one scenario, indexed for evaluation."""

    def __init__(
        self,
        *,
        principals: Iterable[Mapping[str, Any]],
        role_assignments: Iterable[Mapping[str, Any]],
        deny_assignments: Iterable[Mapping[str, Any]] = (),
        custom_roles: Iterable[Mapping[str, Any]] = (),
    ) -> None:
        builtins, aliases = builtin_roles()
        self.roles: dict[str, RoleDefinition] = {role.guid: role for role in builtins}
        for custom in custom_roles:
            role = RoleDefinition.from_json({"roleType": "CustomRole", **custom})
            self.roles[role.guid] = role
        self._roles_by_name = {role.role_name.lower(): role for role in self.roles.values()}
        for alias, name in aliases.items():
            self._roles_by_name.setdefault(alias.lower(), self._roles_by_name[name.lower()])
        self.principal_types: dict[str, str] = {}
        self._groups_of: dict[str, set[str]] = {}
        for principal in principals:
            object_id = principal["objectId"].lower()
            self.principal_types[object_id] = principal.get("type", "User")
            for member in principal.get("members") or ():
                self._groups_of.setdefault(member.lower(), set()).add(object_id)
        self.role_assignments = [self._role_assignment(spec) for spec in role_assignments]
        self.deny_assignments = [self._deny_assignment(spec) for spec in deny_assignments]

    def role_named(self, role_name: str) -> RoleDefinition:
        try:
            return self._roles_by_name[role_name.lower()]
        except KeyError:
            raise ValueError(f"unknown role '{role_name}'") from None

    def role_by_id(self, role_definition_id: str) -> RoleDefinition | None:
        return self.roles.get(role_definition_id.rstrip("/").rsplit("/", 1)[-1].lower())

    def identities_of(self, principal_id: str) -> set[str]:
        """The principal and every group it belongs to, directly or through nested groups."""
        found = {principal_id.lower()}
        pending = [principal_id.lower()]
        while pending:
            for group in self._groups_of.get(pending.pop(), ()):
                if group not in found:
                    found.add(group)
                    pending.append(group)
        return found

    def assignments_applying(self, principal_id: str, scope: str) -> list[RoleAssignment]:
        identities = self.identities_of(principal_id)
        return [
            assignment
            for assignment in self.role_assignments
            if assignment.principal_id.lower() in identities and is_at_or_above(assignment.scope, scope)
        ]

    def denies_applying(self, principal_id: str, scope: str) -> list[DenyAssignment]:
        identities = self.identities_of(principal_id) | {EVERYONE}
        return [
            deny
            for deny in self.deny_assignments
            if deny.applies_at(scope)
            and any(ref.id.lower() in identities for ref in deny.principals)
            and not any(ref.id.lower() in identities - {EVERYONE} for ref in deny.exclude_principals)
        ]

    def grants(self, principal_id: str, action: str, scope: str, *, data: bool) -> bool:
        return any(
            block.covers(action, data=data)
            for assignment in self.assignments_applying(principal_id, scope)
            for block in assignment.role.permissions
        )

    def blocking_deny(self, principal_id: str, action: str, scope: str, *, data: bool) -> DenyAssignment | None:
        return next(
            (deny for deny in self.denies_applying(principal_id, scope) if deny.blocks(action, data=data)), None
        )

    def _role_assignment(self, spec: Mapping[str, Any]) -> RoleAssignment:
        if spec.get("roleDefinitionId"):
            role = self.role_by_id(spec["roleDefinitionId"])
            if role is None:
                raise ValueError(f"unknown role definition '{spec['roleDefinitionId']}'")
        else:
            role = self.role_named(spec["roleName"])
        principal_id = spec["principalId"]
        scope = spec["scope"]
        # Stable names, like Bicep's guid(scope, principal, role): reloading a scenario keeps assignment ids.
        name = spec.get("name") or str(uuid.uuid5(uuid.NAMESPACE_URL, f"{scope.lower()}|{principal_id}|{role.guid}"))
        principal_type = spec.get("principalType") or self.principal_types.get(principal_id.lower(), "User")
        return RoleAssignment(name, principal_id, principal_type, role, scope)

    def _principal_refs(self, refs: Iterable[Mapping[str, str]]) -> tuple[PrincipalRef, ...]:
        def type_of(principal_id: str) -> str:
            if principal_id == EVERYONE:
                return "SystemDefined"
            return self.principal_types.get(principal_id.lower(), "User")

        return tuple(PrincipalRef(ref["id"], ref.get("type") or type_of(ref["id"])) for ref in refs)

    def _deny_assignment(self, spec: Mapping[str, Any]) -> DenyAssignment:
        if spec.get("principals"):
            principals = self._principal_refs(spec["principals"])
        else:
            principal_id = spec["principalId"]
            principals = self._principal_refs([{"id": principal_id}])
        excluded = self._principal_refs(spec.get("excludePrincipals") or ())
        permissions = spec.get("permissions") or [spec]
        display_name = spec.get("denyAssignmentName") or "Emulator deny assignment"
        name = spec.get("name") or uuid.uuid5(uuid.NAMESPACE_URL, f"deny:{spec['scope'].lower()}|{display_name}").hex
        return DenyAssignment(
            name=name,
            deny_assignment_name=display_name,
            description=spec.get("description", ""),
            scope=spec["scope"],
            principals=principals,
            exclude_principals=excluded,
            permissions=tuple(PermissionSet.from_json(block) for block in permissions),
            do_not_apply_to_child_scopes=bool(spec.get("doNotApplyToChildScopes", False)),
            is_system_protected=bool(spec.get("isSystemProtected", False)),
        )


def scenario_directory(scenario: Scenario) -> RbacDirectory:
    """The RBAC view of a scenario; ValueError names a role it cannot resolve, so loaders can refuse the scenario."""
    return RbacDirectory(
        principals=scenario.principals,
        role_assignments=scenario.role_assignments,
        deny_assignments=scenario.deny_assignments,
        custom_roles=scenario.custom_roles,
    )


def _keyvault_forbidden(principal: Principal, data_action: str, scope: str, reason: str, deny_id: str) -> ArmError:
    vault = scope_segments(scope)[7] if len(scope_segments(scope)) > 7 else ""
    message = (
        "Caller is not authorized to perform action on resource.\r\n"
        "If role assignments, deny assignments or role definitions were changed recently, please observe "
        "propagation time.\r\n"
        f"Caller: appid={principal.client_id};oid={principal.object_id};"
        f"iss=https://sts.windows.net/{principal.tenant_id}/\r\n"
        f"Action: '{data_action}'\r\n"
        f"Resource: '{scope.lower()}'\r\n"
        "Assignment: (not found)\r\n"
        f"DenyAssignmentId: {deny_id}\r\n"
        f"DecisionReason: '{reason}' \r\n"
        f"Vault: {vault};location=\r\n"
    )
    return KeyVaultError(403, "Forbidden", message, inner_code="ForbiddenByRbac")


class Authorizer:
    """The permission checks every ARM and Key Vault handler goes through, read from the live scenario."""

    def __init__(self, state: EmulatorState) -> None:
        self._state = state

    def directory(self) -> RbacDirectory:
        # Rebuilt per check (microseconds for a scenario's handful of assignments), so reloads apply at once.
        return scenario_directory(self._state.scenario)

    def require(self, principal: Principal, action: str, scope: str) -> None:
        directory = self.directory()
        if not directory.grants(principal.object_id, action, scope, data=False):
            raise ArmError(
                403,
                "AuthorizationFailed",
                f"The client '{principal.object_id}' with object id '{principal.object_id}' does not have "
                f"authorization to perform action '{action}' over scope '{scope}' or the scope is invalid. "
                "If access was recently granted, please refresh your credentials.",
            )
        deny = directory.blocking_deny(principal.object_id, action, scope, data=False)
        if deny is not None:
            raise ArmError(
                403,
                "DenyAssignmentAuthorizationFailed",
                f"The client '{principal.object_id}' with object id '{principal.object_id}' has permission to "
                f"perform action '{action}' on scope '{scope}'; however, the access is denied because of the deny "
                f"assignment with name '{deny.deny_assignment_name}' and Id '{deny.name}' at scope '{deny.scope}'.",
            )

    def require_data(self, principal: Principal, data_action: str, scope: str) -> None:
        directory = self.directory()
        if not directory.grants(principal.object_id, data_action, scope, data=True):
            raise _keyvault_forbidden(principal, data_action, scope, "DeniedWithNoValidRBAC", "null")
        deny = directory.blocking_deny(principal.object_id, data_action, scope, data=True)
        if deny is not None:
            raise _keyvault_forbidden(principal, data_action, scope, "DeniedWithDenyAssignment", deny.name)

    def effective_permissions(self, principal_id: str, scope: str) -> list[dict[str, list[str]]]:
        """One entry per permission block of every role assignment that reaches the scope, like the real API."""
        return [
            block.to_json()
            for assignment in self.directory().assignments_applying(principal_id, scope)
            for block in assignment.role.permissions
        ]
