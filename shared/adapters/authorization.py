"""Microsoft.Authorization (implements AuthorizationPort): the broker's own permissions and another principal's.

The permissions API answers only for the caller, so the requester's access is assembled from role assignments
(`assignedTo`, which includes group membership), their role definitions and deny assignments.

Reads are kept in TTL caches (shared/ttl_cache.py), so a burst of requests for one workspace reads Azure once:
role definitions, which change rarely, for `role_definition_ttl_seconds`; permissions, role assignments and deny
assignments for `access_ttl_seconds`, the window in which a revoked grant may still pass preflight (ARM still
enforces every write). Deny assignments are listed once per subscription (at, above and below it) and shared by every
scope and principal in it: each scope keeps only those made at it or an ancestor, so a deny on a sibling workspace
or a child resource never applies. Only when one that applies names a principal other than Everyone (perhaps a group
the principal belongs to) are they listed for that principal too, once per subscription, for ARM to resolve
membership.
"""

from __future__ import annotations

import base64
import json
import re
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cached_property
from typing import Any

from azure.core.credentials import TokenCredential
from azure.core.exceptions import HttpResponseError

from shared.adapters.arm import ARM_SCOPE, ArmClient
from shared.azure_errors import AzureCallError
from shared.config import DEFAULT_ACCESS_CACHE_SECONDS, DEFAULT_ROLE_DEFINITION_CACHE_SECONDS
from shared.ports import PrincipalAccess
from shared.ttl_cache import Lookup, TtlCache

AUTHORIZATION_API_VERSION = "2022-04-01"
EVERYONE = "00000000-0000-0000-0000-000000000000"
_SUBSCRIPTION_SCOPE = re.compile(r"^/subscriptions/[^/]+", re.IGNORECASE)

Blocks = list[dict[str, list[str]]]


@dataclass(frozen=True)
class _Assignment:
    scope: str
    role_definition_id: str


@dataclass(frozen=True)
class _Definition:
    role_name: str
    permissions: Blocks


@dataclass(frozen=True)
class _Deny:
    id: str
    scope: str
    principals: frozenset[str]
    excluded: frozenset[str]
    permissions: Blocks

    def names_only(self, principal_id: str) -> bool:
        """Whether every principal it names is Everyone or `principal_id`, so applying it needs no membership."""
        return self.principals <= {EVERYONE, principal_id}

    def blocks(self, principal_id: str) -> bool:
        return bool(self.principals & {EVERYONE, principal_id}) and principal_id not in self.excluded


class AuthorizationAdapter:
    def __init__(
        self,
        arm: ArmClient,
        credential: TokenCredential,
        *,
        arm_url: str,
        access_ttl_seconds: float = DEFAULT_ACCESS_CACHE_SECONDS,
        role_definition_ttl_seconds: float = DEFAULT_ROLE_DEFINITION_CACHE_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._arm = arm
        self._credential = credential
        self._arm_url = arm_url
        self._own_principal_id: str | None = None
        self._own_permissions: TtlCache[str, Blocks] = TtlCache(access_ttl_seconds, clock=clock)
        self._assignments: TtlCache[tuple[str, str], list[_Assignment]] = TtlCache(access_ttl_seconds, clock=clock)
        self._subscription_denials: TtlCache[str, list[_Deny]] = TtlCache(access_ttl_seconds, clock=clock)
        self._principal_denials: TtlCache[tuple[str, str], list[_Deny]] = TtlCache(access_ttl_seconds, clock=clock)
        self._definitions: TtlCache[str, _Definition] = TtlCache(role_definition_ttl_seconds, clock=clock)

    def own_principal_id(self) -> str:
        """The broker's object id, read from its own ARM token (the `oid` claim) so it needs no configuration."""
        if self._own_principal_id is None:
            token = self._credential.get_token(ARM_SCOPE).token
            self._own_principal_id = _claims(token)["oid"]
        return self._own_principal_id

    def own_permissions(self, scope: str) -> list[Mapping[str, Sequence[str]]]:
        path = f"{scope.rstrip('/')}/providers/Microsoft.Authorization/permissions"
        return list(
            self._own_permissions.get(_key(scope), lambda: list(self._arm.list(path, AUTHORIZATION_API_VERSION)))
        )

    def principal_access(self, principal_id: str, scope: str, *, fresh: bool = False) -> PrincipalAccess:
        principal = principal_id.lower()
        with _azure_errors():
            assignments = self._assignments_at(principal, scope, fresh=fresh)
            definitions = [
                self._definitions.lookup(
                    role_id.lower(), lambda role_id=role_id: self._definition(role_id), fresh=fresh
                )
                for role_id in sorted({assignment.role_definition_id for assignment in assignments.value})
            ]
            denials, denials_cached = self._denials_at(principal, scope, fresh=fresh)
        return PrincipalAccess(
            permissions=[block for definition in definitions for block in definition.value.permissions],
            denials=[block for deny in denials for block in deny.permissions],
            role_names=frozenset(definition.value.role_name for definition in definitions),
            cached=assignments.hit or denials_cached or any(definition.hit for definition in definitions),
        )

    def assigned_role_ids(self, principal_id: str, scope: str) -> frozenset[str]:
        with _azure_errors():
            assignments = self._assignments_at(principal_id.lower(), scope, fresh=False).value
        return frozenset(
            assignment.role_definition_id.rstrip("/").rsplit("/", 1)[-1].lower() for assignment in assignments
        )

    def _assignments_at(self, principal: str, scope: str, *, fresh: bool) -> Lookup[list[_Assignment]]:
        def load() -> list[_Assignment]:
            listed = self._client.role_assignments.list_for_scope(scope, filter=f"assignedTo('{principal}')")
            return [
                _Assignment(assignment.scope, assignment.role_definition_id)
                for assignment in listed
                if _applies_to(assignment.scope, scope)
            ]

        return self._assignments.lookup((_key(scope), principal), load, fresh=fresh)

    def _definition(self, role_definition_id: str) -> _Definition:
        definition = self._client.role_definitions.get_by_id(role_definition_id)
        return _Definition(definition.role_name, [_permission(block) for block in definition.permissions])

    def _denials_at(self, principal: str, scope: str, *, fresh: bool) -> tuple[list[_Deny], bool]:
        """The deny assignments blocking `principal` at `scope`, and whether any came from the cache."""
        listing_scope = _listing_scope(scope)
        listed = self._subscription_denials.lookup(
            listing_scope, lambda: self._list_denials(listing_scope, query=None), fresh=fresh
        )
        applying = [deny for deny in listed.value if _applies_to(deny.scope, scope)]
        found = {deny.id: deny for deny in applying if deny.blocks(principal)}
        cached = listed.hit
        if not all(deny.names_only(principal) for deny in applying):
            # ARM resolves group membership for a principal filter; this adapter cannot.
            named = self._principal_denials.lookup(
                (listing_scope, principal),
                lambda: self._list_denials(listing_scope, query=f"principalId eq '{principal}'"),
                fresh=fresh,
            )
            found.update(
                {
                    deny.id: deny
                    for deny in named.value
                    if _applies_to(deny.scope, scope) and principal not in deny.excluded
                }
            )
            cached = cached or named.hit
        return list(found.values()), cached

    def _list_denials(self, scope: str, *, query: str | None) -> list[_Deny]:
        """Deny assignments at, above and below `scope` (listed without atScope()), for each scope to pick from."""
        return [
            _Deny(
                id=(deny.id or deny.name or "").lower(),
                scope=deny.scope or "",
                principals=frozenset((principal.id or "").lower() for principal in deny.principals or []),
                excluded=frozenset((excluded.id or "").lower() for excluded in deny.exclude_principals or []),
                permissions=[_permission(block) for block in deny.permissions or []],
            )
            for deny in self._client.deny_assignments.list_for_scope(scope, filter=query)
        ]

    @cached_property
    def _client(self) -> Any:
        from azure.mgmt.authorization import AuthorizationManagementClient

        # The subscription id only builds URLs of subscription-bound operations, none of which are used here.
        return AuthorizationManagementClient(self._credential, EVERYONE, base_url=self._arm_url)


@contextmanager
def _azure_errors() -> Iterator[None]:
    try:
        yield
    except HttpResponseError as error:
        code = getattr(error.error, "code", None) or f"Http{error.status_code}"
        raise AzureCallError(error.status_code, code, (error.message or "").splitlines()[0]) from error


def _key(scope: str) -> str:
    return scope.rstrip("/").lower()


def _listing_scope(scope: str) -> str:
    """The subscription `scope` lies in (deny assignments are listed per subscription), else `scope` itself."""
    found = _SUBSCRIPTION_SCOPE.match(_key(scope))
    return found.group(0) if found else _key(scope)


def _applies_to(assignment_scope: str | None, scope: str) -> bool:
    """An assignment counts at `scope` when made there or at an ancestor (assignedTo also returns descendants)."""
    if not assignment_scope:
        return False
    ancestor = assignment_scope.rstrip("/").lower()
    target = scope.rstrip("/").lower()
    return ancestor in ("", "/") or target == ancestor or target.startswith(ancestor + "/")


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
