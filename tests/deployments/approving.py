"""The scenario's world with approvals on: the deployment service wired with an approval policy and the broker's
approver role (held by the app role Broker.Approver or membership of APPROVER_GROUP)."""

from dataclasses import replace
from itertools import count

from shared.access import DEFAULT_APPROVER_ROLE, AppRole, BrokerRoles
from shared.approvals import ApprovalPolicy
from shared.deployments.assembly import assemble_deployment_service
from shared.deployments.service import Queues
from shared.engine import StepTimings
from shared.lifecycle.settings import LifecycleSettings

from .scenario import World, build_world

APPROVER_GROUP = "6a0a0000-0000-4000-8000-0000000000aa"
ROLES = BrokerRoles(approver=AppRole(DEFAULT_APPROVER_ROLE, frozenset({APPROVER_GROUP})))
ENABLED = ApprovalPolicy(enabled=True)


def approving_world(approvals: ApprovalPolicy = ENABLED, *, timings: StepTimings | None = None) -> World:
    """The scenario's world, its deployment service wired with `approvals` and the broker's approver role."""
    timings = timings or StepTimings()
    world = build_world(timings=timings)
    ids = count(1)
    service = assemble_deployment_service(
        runs=world.runs,
        machine_learning=world.ml,
        authorization=world.authorization,
        secrets=world.secrets,
        connections=world.connections,
        queues=Queues(work=world.work, events=world.events, requests_poison=world.poison),
        policy=world.policy,
        timings=timings,
        lifecycle_settings=LifecycleSettings(hubs=world.policy.hubs),
        clock=world.clock,
        new_id=lambda: f"run-{next(ids):04d}",
        sleep=world.waiting.sleep,
        monotonic=world.waiting.monotonic,
        approvals=approvals,
        roles=ROLES,
    )
    return replace(world, service=service)
