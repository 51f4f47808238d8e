"""The run-stuck rule and approvals: a run waiting for an approver is not stuck, and a run that waited is timed from
its approval, not from its request."""

from __future__ import annotations

from datetime import timedelta

from shared.hygiene.rules import run_resource_id
from shared.runs import Approval, RunRecord, RunStatus

from .conftest import World
from .fakes import T0, WS_A, run


def waited(run_id: str, *, requested: timedelta, approved: timedelta | None = None) -> RunRecord:
    """A run requested `requested` before the scan, waiting for approval, or approved `approved` before it."""
    at = T0 - requested
    approval = Approval(rule="marketplace", reason="Marketplace", requested_at=at, expires_at=at + timedelta(days=3))
    record = run(run_id, WS_A, status=RunStatus.ACCEPTED, created=at).transition(RunStatus.VALIDATING, at=at)
    record = record.transition(RunStatus.PENDING_APPROVAL, at=at, approval=approval)
    if approved is None:
        return record
    decided = approval.decided("approved", at=T0 - approved, by="a99a0000-0000-4000-8000-00000000000a")
    return record.transition(RunStatus.PROVISIONING, at=T0 - approved, approval=decided)


def test_a_run_waiting_for_approval_is_not_stuck_and_an_approved_one_is_timed_from_its_approval(world: World):
    world.runs.add(
        waited("waiting", requested=timedelta(days=2)),
        waited("just-approved", requested=timedelta(days=2), approved=timedelta(minutes=10)),
        waited("approved-long-ago", requested=timedelta(days=2), approved=timedelta(hours=2)),
    )
    world.ml.add(WS_A)

    world.scan(run_stuck_after=timedelta(hours=1))

    assert sorted(record.resource_id for record in world.findings(rule="run-stuck") if record.state != "resolved") == [
        run_resource_id("approved-long-ago")
    ]
