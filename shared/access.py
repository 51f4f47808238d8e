"""Who is calling and what the broker's own app roles let them do, beyond Azure RBAC.

Azure RBAC decides who may deploy into a project and who may read it; two things have no Azure role, so the broker
defines them as Entra app roles of its API (or, for tenants that manage people by group, as groups): approving a
request that needs a human decision, and auditing every workspace. Easy Auth puts both the `roles` and the `groups`
claims of the caller's token in the principal the handlers read.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

DEFAULT_APPROVER_ROLE = "Broker.Approver"
DEFAULT_AUDITOR_ROLE = "Broker.Auditor"


@dataclass(frozen=True)
class Caller:
    """A signed-in caller: its Entra object id (lower case), the app roles its token carries and its groups."""

    object_id: str
    roles: frozenset[str] = frozenset()
    groups: frozenset[str] = frozenset()

    @classmethod
    def of(cls, object_id: str, *, roles: Iterable[str] = (), groups: Iterable[str] = ()) -> Caller:
        return cls(object_id.lower(), frozenset(roles), frozenset(group.lower() for group in groups))


@dataclass(frozen=True)
class AppRole:
    """Held by a caller whose token carries the app role `role`, or who is in one of `groups` (object ids)."""

    role: str
    groups: frozenset[str] = frozenset()

    def held_by(self, caller: Caller) -> bool:
        # App role values are case-sensitive in Entra ID; object ids are not.
        return self.role in caller.roles or bool(self.groups & caller.groups)

    @property
    def description(self) -> str:
        groups = f" or membership of group {', '.join(sorted(self.groups))}" if self.groups else ""
        return f"the app role '{self.role}'{groups}"


@dataclass(frozen=True)
class BrokerRoles:
    """The broker's two app roles: approvers decide requests that need approval; auditors see every workspace."""

    approver: AppRole = field(default_factory=lambda: AppRole(DEFAULT_APPROVER_ROLE))
    auditor: AppRole = field(default_factory=lambda: AppRole(DEFAULT_AUDITOR_ROLE))
