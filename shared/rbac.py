"""Azure RBAC evaluation, as ARM does it, over permissions fetched from the Authorization API.

Effective access is the union, over every role assignment at a scope and its ancestors, of (Actions - NotActions).
NotActions only trims the role that lists it: another role can still grant the action. Deny assignments block
whatever they match, regardless of grants. Patterns may hold `*` anywhere (`*/read`,
`Microsoft.Authorization/*/Delete`) and match case-insensitively.

Required actions should be concrete operations. A required action that itself holds `*` is treated as a pattern
that a grant must cover entirely (so `*` or `.../workspaces/*` cover `.../workspaces/serverlessEndpoints/*`, but
`.../workspaces/*/write` does not), and any overlapping NotActions or deny entry counts against it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from typing import Any


def action_matches(pattern: str, action: str) -> bool:
    """Whether an RBAC action pattern grants `action`; a `*` in `action` is matched as a literal character."""
    return _compiled(pattern).fullmatch(action.casefold()) is not None


def patterns_overlap(first: str, second: str) -> bool:
    """Whether some action matches both patterns (both may hold `*`), case-insensitively."""
    a, b = first.casefold(), second.casefold()

    @cache
    def overlap(i: int, j: int) -> bool:
        if i == len(a) and j == len(b):
            return True
        if i < len(a) and a[i] == "*":
            return overlap(i + 1, j) or (j < len(b) and overlap(i, j + 1))
        if j < len(b) and b[j] == "*":
            return overlap(i, j + 1) or (i < len(a) and overlap(i + 1, j))
        return i < len(a) and j < len(b) and a[i] == b[j] and overlap(i + 1, j + 1)

    return overlap(0, 0)


@cache
def _compiled(pattern: str) -> re.Pattern[str]:
    return re.compile(".*".join(re.escape(part) for part in pattern.casefold().split("*")), re.DOTALL)


def _matches_any(patterns: Iterable[str], action: str) -> bool:
    return any(action_matches(pattern, action) for pattern in patterns)


def _overlaps_any(patterns: Iterable[str], action: str) -> bool:
    return any(patterns_overlap(pattern, action) for pattern in patterns)


@dataclass(frozen=True)
class Permission:
    """One `permissions[]` block of a role definition, a deny assignment or the permissions API."""

    actions: tuple[str, ...] = ()
    not_actions: tuple[str, ...] = ()
    data_actions: tuple[str, ...] = ()
    not_data_actions: tuple[str, ...] = ()

    @classmethod
    def from_dict(cls, body: Mapping[str, Any]) -> Permission:
        """From the REST shape `{"actions", "notActions", "dataActions", "notDataActions"}` (keys optional)."""
        return cls(
            actions=tuple(body.get("actions") or ()),
            not_actions=tuple(body.get("notActions") or ()),
            data_actions=tuple(body.get("dataActions") or ()),
            not_data_actions=tuple(body.get("notDataActions") or ()),
        )

    def grants(self, action: str) -> bool:
        return _matches_any(self.actions, action) and not _overlaps_any(self.not_actions, action)

    def grants_data(self, data_action: str) -> bool:
        return _matches_any(self.data_actions, data_action) and not _overlaps_any(self.not_data_actions, data_action)

    def denies(self, action: str) -> bool:
        """Read as a deny assignment's permissions: the deny reaches any part of `action` it does not exclude."""
        return _overlaps_any(self.actions, action) and not _matches_any(self.not_actions, action)

    def denies_data(self, data_action: str) -> bool:
        return _overlaps_any(self.data_actions, data_action) and not _matches_any(self.not_data_actions, data_action)


@dataclass(frozen=True)
class PermissionSet:
    """A principal's effective permissions at one scope: grants plus the deny assignments that apply to it."""

    permissions: tuple[Permission, ...] = ()
    denies: tuple[Permission, ...] = ()

    @classmethod
    def from_rest(
        cls, permissions: Iterable[Mapping[str, Any]], deny_permissions: Iterable[Mapping[str, Any]] = ()
    ) -> PermissionSet:
        """From REST `permissions[]` blocks (permissions API, role definitions) and deny assignments' blocks."""
        return cls(
            permissions=tuple(Permission.from_dict(body) for body in permissions),
            denies=tuple(Permission.from_dict(body) for body in deny_permissions),
        )

    def allows(self, action: str) -> bool:
        return not self.is_denied(action) and any(permission.grants(action) for permission in self.permissions)

    def allows_data(self, data_action: str) -> bool:
        return not any(deny.denies_data(data_action) for deny in self.denies) and any(
            permission.grants_data(data_action) for permission in self.permissions
        )

    def is_denied(self, action: str) -> bool:
        """True when a deny assignment blocks the action (so granting a role will not help)."""
        return any(deny.denies(action) for deny in self.denies)


def missing_actions(required: Sequence[str], permission_set: PermissionSet) -> list[str]:
    """The required actions `permission_set` does not allow, in the order given."""
    return [action for action in required if not permission_set.allows(action)]
