"""The scenario's world with approvals on: the deployment service wired with an approval policy and the broker's
approver role (held by the app role Broker.Approver or membership of APPROVER_GROUP)."""

from shared.access import DEFAULT_APPROVER_ROLE, AppRole, BrokerRoles
from shared.approvals import ApprovalPolicy
from shared.engine import StepTimings

from .scenario import World, build_world

APPROVER_GROUP = "6a0a0000-0000-4000-8000-0000000000aa"
ROLES = BrokerRoles(approver=AppRole(DEFAULT_APPROVER_ROLE, frozenset({APPROVER_GROUP})))
ENABLED = ApprovalPolicy(enabled=True)


def approving_world(approvals: ApprovalPolicy = ENABLED, *, timings: StepTimings | None = None) -> World:
    """The scenario's world, its deployment service wired with `approvals` and the broker's approver role."""
    return build_world(timings=timings, approvals=approvals, roles=ROLES)
