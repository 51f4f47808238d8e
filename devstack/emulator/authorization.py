"""Microsoft.Authorization reads at any scope: permissions, roleAssignments, roleDefinitions, denyAssignments.

Bodies follow the 2022-04-01 examples. `$filter` follows the spec's parameter text: atScope() keeps what sits at or
above the scope, principalId eq '{id}' and assignedTo('{id}') also reach below it (assignedTo counts the principal's
groups too). The spec marks $filter x-ms-skip-url-encoding, so clients send it raw or encoded; both parse the same.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from aiohttp import web

from devstack.emulator.errors import ArmError, request_id_headers
from devstack.emulator.rbac import (
    Authorizer,
    DenyAssignment,
    RbacDirectory,
    RoleAssignment,
    RoleDefinition,
    is_at_or_above,
    scope_segments,
)
from devstack.emulator.tokens import ARM_AUDIENCE

if TYPE_CHECKING:
    from devstack.emulator.state import EmulatorState

API_VERSIONS = ("2022-04-01",)
_PATH = re.compile(
    r"^(?P<scope>.*?)/providers/Microsoft\.Authorization/"
    r"(?P<collection>permissions|roleAssignments|roleDefinitions|denyAssignments)(?:/(?P<name>[^/]+))?/?$",
    re.IGNORECASE,
)
_CLAUSES = {
    "atScope": re.compile(r"atScope\(\)", re.IGNORECASE),
    "assignedTo": re.compile(r"assignedTo\('(?P<value>[^']*)'\)", re.IGNORECASE),
    "principalId": re.compile(r"principalId\s+eq\s+'(?P<value>[^']*)'", re.IGNORECASE),
    "roleName": re.compile(r"roleName\s+eq\s+'(?P<value>[^']*)'", re.IGNORECASE),
    "type": re.compile(r"type\s+eq\s+'(?P<value>[^']*)'", re.IGNORECASE),
    "denyAssignmentName": re.compile(r"denyAssignmentName\s+eq\s+'(?P<value>[^']*)'", re.IGNORECASE),
}
_AND = re.compile(r"\s+and\s+", re.IGNORECASE)
_SUPPORTED_FILTERS = {
    "roleassignments": ("atScope", "assignedTo", "principalId"),
    "roledefinitions": ("roleName", "type"),
    "denyassignments": ("atScope", "principalId", "denyAssignmentName"),
}
_FILTER_HELP = {
    "roleassignments": "Supported filters are either 'atScope()' or 'principalId eq '{value}'' or "
    "'assignedTo('{value}')'.",
    "roledefinitions": "Supported filters are 'roleName eq '{value}'' and 'type eq 'BuiltInRole|CustomRole''.",
    "denyassignments": "Supported filters are 'atScope()', 'principalId eq '{value}'' and "
    "'denyAssignmentName eq '{value}''.",
}
# Role definitions are readable by every signed-in principal, as in Azure; assignments need a read permission.
_READ_ACTIONS = {
    "roleassignments": "Microsoft.Authorization/roleAssignments/read",
    "denyassignments": "Microsoft.Authorization/denyAssignments/read",
}
EMULATOR_CREATED_ON = "2024-01-01T00:00:00.0000000Z"


@dataclass(frozen=True)
class AuthorizationRequest:
    scope: str
    collection: str
    name: str | None


def parse_filter(raw: str | None, collection: str) -> dict[str, str]:
    """'atScope() and assignedTo('id')' -> {'atScope': '', 'assignedTo': 'id'}; 400 for anything else."""
    if raw is None or not raw.strip():
        return {}
    found: dict[str, str] = {}
    for clause in _AND.split(raw.strip()):
        for key in _SUPPORTED_FILTERS[collection]:
            match = _CLAUSES[key].fullmatch(clause.strip())
            if match:
                found[key] = match.groupdict().get("value") or ""
                break
        else:
            raise ArmError(400, "UnsupportedQuery", f"The filter '{raw}' is not supported. {_FILTER_HELP[collection]}")
    return found


def parse_path(path: str) -> AuthorizationRequest | None:
    match = _PATH.match(path)
    if match is None:
        return None
    scope = "/" + "/".join(segment for segment in match["scope"].split("/") if segment)
    return AuthorizationRequest(scope, match["collection"].lower(), match["name"])


def _json(body: Any) -> web.Response:
    return web.json_response(body, headers=request_id_headers())


def _check_api_version(request: web.Request) -> None:
    version = request.query.get("api-version")
    if not version:
        raise ArmError(
            400,
            "MissingApiVersionParameter",
            "The api-version query parameter (?api-version=) is required for all requests.",
        )
    if version not in API_VERSIONS:
        raise ArmError(
            400,
            "InvalidApiVersionParameter",
            f"The api-version '{version}' is invalid. The supported versions are '{','.join(API_VERSIONS)}'.",
        )


def role_assignment_json(assignment: RoleAssignment) -> dict[str, Any]:
    name = assignment.name
    # The 2022-04-01 schema's fields beyond the examples, as ARM returns them for an unconditional assignment.
    return {
        "properties": {
            "roleDefinitionId": assignment.role.id_at(assignment.scope),
            "principalId": assignment.principal_id,
            "principalType": assignment.principal_type,
            "scope": assignment.scope,
            "condition": None,
            "conditionVersion": None,
            "createdOn": EMULATOR_CREATED_ON,
            "updatedOn": EMULATOR_CREATED_ON,
            "createdBy": None,
            "updatedBy": None,
            "delegatedManagedIdentityResourceId": None,
            "description": None,
        },
        "id": f"{'' if assignment.scope == '/' else assignment.scope}/providers/Microsoft.Authorization/"
        f"roleAssignments/{name}",
        "type": "Microsoft.Authorization/roleAssignments",
        "name": name,
    }


def role_definition_json(role: RoleDefinition, scope: str) -> dict[str, Any]:
    return {
        "properties": {
            "roleName": role.role_name,
            "type": role.role_type,
            "description": role.description,
            "assignableScopes": list(role.assignable_scopes),
            "permissions": [block.to_json() for block in role.permissions],
            "createdOn": EMULATOR_CREATED_ON,
            "updatedOn": EMULATOR_CREATED_ON,
            "createdBy": None,
            "updatedBy": None,
        },
        "id": role.id_at(scope),
        "type": "Microsoft.Authorization/roleDefinitions",
        "name": role.guid,
    }


def deny_assignment_json(deny: DenyAssignment) -> dict[str, Any]:
    return {
        "properties": {
            "denyAssignmentName": deny.deny_assignment_name,
            "description": deny.description,
            "permissions": [block.to_json() for block in deny.permissions],
            "scope": deny.scope,
            "doNotApplyToChildScopes": deny.do_not_apply_to_child_scopes,
            "principals": [{"id": ref.id, "type": ref.type} for ref in deny.principals],
            "excludePrincipals": [{"id": ref.id, "type": ref.type} for ref in deny.exclude_principals],
            "isSystemProtected": deny.is_system_protected,
        },
        "id": f"{'' if deny.scope == '/' else deny.scope}/providers/Microsoft.Authorization/denyAssignments/"
        f"{deny.name}",
        "type": "Microsoft.Authorization/denyAssignments",
        "name": deny.name,
    }


def _related(item_scope: str, scope: str, *, below_too: bool) -> bool:
    return is_at_or_above(item_scope, scope) or (below_too and is_at_or_above(scope, item_scope))


def list_role_assignments(directory: RbacDirectory, scope: str, filters: dict[str, str]) -> list[RoleAssignment]:
    below_too = "atScope" not in filters
    if "assignedTo" in filters:
        identities = directory.identities_of(filters["assignedTo"])
    elif "principalId" in filters:
        identities = {filters["principalId"].lower()}
    else:
        identities = None
    return [
        assignment
        for assignment in directory.role_assignments
        if _related(assignment.scope, scope, below_too=below_too)
        and (identities is None or assignment.principal_id.lower() in identities)
    ]


def list_role_definitions(directory: RbacDirectory, scope: str, filters: dict[str, str]) -> list[RoleDefinition]:
    return [
        role
        for role in directory.roles.values()
        if any(is_at_or_above(assignable, scope) for assignable in role.assignable_scopes)
        and ("roleName" not in filters or role.role_name.lower() == filters["roleName"].lower())
        and ("type" not in filters or role.role_type.lower() == filters["type"].lower())
    ]


def list_deny_assignments(directory: RbacDirectory, scope: str, filters: dict[str, str]) -> list[DenyAssignment]:
    below_too = "atScope" not in filters and "denyAssignmentName" not in filters
    identities = directory.identities_of(filters["principalId"]) if "principalId" in filters else None
    return [
        deny
        for deny in directory.deny_assignments
        if _related(deny.scope, scope, below_too=below_too)
        and (identities is None or any(ref.id.lower() in identities for ref in deny.principals))
        and ("denyAssignmentName" not in filters or deny.deny_assignment_name == filters["denyAssignmentName"])
    ]


def _not_found(kind: str, name: str) -> ArmError:
    messages = {
        "roleassignments": ("RoleAssignmentNotFound", f"The role assignment '{name}' is not found."),
        "roledefinitions": (
            "RoleDefinitionDoesNotExist",
            f"The specified role definition with ID '{name}' does not exist.",
        ),
        "denyassignments": ("DenyAssignmentNotFound", f"The deny assignment '{name}' is not found."),
    }
    code, message = messages[kind]
    return ArmError(404, code, message)


def _one(directory: RbacDirectory, request: AuthorizationRequest) -> dict[str, Any]:
    name = request.name or ""
    if request.collection == "roledefinitions":
        role = directory.role_by_id(name)
        if role is None:
            raise _not_found(request.collection, name)
        return role_definition_json(role, request.scope)
    if request.collection == "roleassignments":
        found = next(
            (
                role_assignment_json(item)
                for item in directory.role_assignments
                if item.name.lower() == name.lower() and scope_segments(item.scope) == scope_segments(request.scope)
            ),
            None,
        )
    else:
        found = next(
            (deny_assignment_json(deny) for deny in directory.deny_assignments if deny.name.lower() == name.lower()),
            None,
        )
    if found is None:
        raise _not_found(request.collection, name)
    return found


def _listing(directory: RbacDirectory, request: AuthorizationRequest, filters: dict[str, str]) -> list[dict]:
    if request.collection == "roleassignments":
        return [role_assignment_json(item) for item in list_role_assignments(directory, request.scope, filters)]
    if request.collection == "roledefinitions":
        return [
            role_definition_json(role, request.scope)
            for role in list_role_definitions(directory, request.scope, filters)
        ]
    return [deny_assignment_json(deny) for deny in list_deny_assignments(directory, request.scope, filters)]


class AuthorizationApi:
    """The handlers; the ARM gate in front of them has already checked that the subscription and group exist."""

    def __init__(self, state: EmulatorState) -> None:
        self._state = state
        self._authorizer = Authorizer(state)

    async def handle(self, request: web.Request) -> web.Response:
        principal = self._state.tokens.verify(request.headers.get("Authorization"), audience=ARM_AUDIENCE)
        parsed = parse_path(request.path)
        if parsed is None or (parsed.collection == "permissions" and parsed.name is not None):
            raise ArmError(
                404, "InvalidResourceType", f"The resource type could not be found for path '{request.path}'."
            )
        _check_api_version(request)
        if parsed.collection == "permissions":
            return _json({"value": self._authorizer.effective_permissions(principal.object_id, parsed.scope)})
        if parsed.collection in _READ_ACTIONS:
            self._authorizer.require(principal, _READ_ACTIONS[parsed.collection], parsed.scope)
        directory = self._authorizer.directory()
        if parsed.name is not None:
            return _json(_one(directory, parsed))
        filters = parse_filter(request.query.get("$filter"), parsed.collection)
        return _json({"value": _listing(directory, parsed, filters)})


def register_authorization_routes(app: web.Application, state: EmulatorState) -> None:
    """GET routes for .../providers/Microsoft.Authorization/... at any scope; register before any catch-all route."""
    api = AuthorizationApi(state)
    app.router.add_get(r"/subscriptions/{tail:.*/(?i:providers/microsoft\.authorization)/.+}", api.handle)
    app.router.add_get(r"/providers/{tail:(?i:microsoft\.authorization)/.+}", api.handle)
