"""Microsoft.Authorization (implements AuthorizationPort): the broker's own permissions and another principal's.

The permissions API answers only for the caller, so the requester's access is assembled from role assignments
(`assignedTo`, which includes group membership), their role definitions and deny assignments.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping, Sequence
from functools import cached_property
from typing import Any

from azure.core.credentials import TokenCredential
from azure.core.exceptions import HttpResponseError

from shared.adapters.arm import ARM_SCOPE, ArmClient
from shared.azure_errors import AzureCallError
from shared.ports import PrincipalAccess

AUTHORIZATION_API_VERSION = "2022-04-01"
EVERYONE = "00000000-0000-0000-0000-000000000000"


class AuthorizationAdapter:
    def __init__(self, arm: ArmClient, credential: TokenCredential, *, arm_url: str) -> None:
        self._arm = arm
        self._credential = credential
        self._arm_url = arm_url
        self._own_principal_id: str | None = None

    def own_principal_id(self) -> str:
        """The broker's object id, read from its own ARM token (the `oid` claim) so it needs no configuration."""
        if self._own_principal_id is None:
            token = self._credential.get_token(ARM_SCOPE).token
            self._own_principal_id = _claims(token)["oid"]
        return self._own_principal_id

    def own_permissions(self, scope: str) -> list[Mapping[str, Sequence[str]]]:
        path = f"{scope.rstrip('/')}/providers/Microsoft.Authorization/permissions"
        return list(self._arm.list(path, AUTHORIZATION_API_VERSION))

    def principal_access(self, principal_id: str, scope: str) -> PrincipalAccess:
        client = self._client
        try:
            assignments = [
                assignment
                for assignment in client.role_assignments.list_for_scope(scope, filter=f"assignedTo('{principal_id}')")
                if _applies_to(assignment.scope, scope)
            ]
            definitions = [
                client.role_definitions.get_by_id(role_id)
                for role_id in sorted({assignment.role_definition_id for assignment in assignments})
            ]
            denials = [
                deny
                for deny in client.deny_assignments.list_for_scope(scope, filter=f"principalId eq '{principal_id}'")
                if _applies_to(deny.scope, scope) and not _excluded(deny, principal_id)
            ]
        except HttpResponseError as error:
            code = getattr(error.error, "code", None) or f"Http{error.status_code}"
            raise AzureCallError(error.status_code, code, (error.message or "").splitlines()[0]) from error
        return PrincipalAccess(
            permissions=[_permission(block) for definition in definitions for block in definition.permissions],
            denials=[_permission(block) for deny in denials for block in deny.permissions],
            role_names=frozenset(definition.role_name for definition in definitions),
        )

    @cached_property
    def _client(self) -> Any:
        from azure.mgmt.authorization import AuthorizationManagementClient

        # The subscription id only builds URLs of subscription-bound operations, none of which are used here.
        return AuthorizationManagementClient(self._credential, EVERYONE, base_url=self._arm_url)


def _applies_to(assignment_scope: str | None, scope: str) -> bool:
    """An assignment counts at `scope` when made there or at an ancestor (assignedTo also returns descendants)."""
    if not assignment_scope:
        return False
    ancestor = assignment_scope.rstrip("/").lower()
    target = scope.rstrip("/").lower()
    return ancestor in ("", "/") or target == ancestor or target.startswith(ancestor + "/")


def _excluded(deny: Any, principal_id: str) -> bool:
    return any((excluded.id or "").lower() == principal_id.lower() for excluded in deny.exclude_principals or [])


def _permission(block: Any) -> dict[str, list[str]]:
    return {
        "actions": list(block.actions or []),
        "notActions": list(block.not_actions or []),
        "dataActions": list(block.data_actions or []),
        "notDataActions": list(block.not_data_actions or []),
    }


def _claims(token: str) -> dict[str, Any]:
    # Reading our own token's payload needs no signature check: it came straight from our credential.
    payload = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
