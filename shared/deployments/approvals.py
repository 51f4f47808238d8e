"""Approvals: an approver's decision on a deploy run waiting in PendingApproval, and the wait's expiry.

Intake stores a run the approval policy names (shared/approvals.py) in PendingApproval, holding its deployment's
claim, before anything is written to Azure, and queues no work. From there:
- an approver (the broker's approver app role or group, shared/access.py) who neither made the request nor joined
  it approves it: the full preflight runs again for the original request and caller (access may have changed while
  it waited), and the run goes on where intake would have started it, or ends Rejected with the problem preflight
  found;
- such an approver rejects it, with a comment: the run ends Rejected (`approval-rejected`);
- nobody decides by its `expiresAt`: the watchdog ends it Rejected (`approval-expired`).

Every decision is one ETag-conditional write of the run that only succeeds while the run still waits, so of two
concurrent decisions (or a decision and the watchdog's expiry) exactly one is made; the other answers from what
won: the same decision converges (200, the run as it is), the other one is a conflict. The decision is recorded on
the run's approval (who, when, why), and announced to the request that started the run and to every one that joined
it, each with its own ticket.

An approval is written before the first step is queued: a host dying in between leaves the run silent in its first
status, and the watchdog's ordinary silence rule queues that step.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from shared.access import BrokerRoles, Caller
from shared.deployment import Deployment, Phase
from shared.events import approval_events
from shared.ports import MessageQueuePort, RunRepositoryPort
from shared.problems import Problem
from shared.run_outcomes import close_approval, update_once
from shared.runs import ApprovalDecision, RunRecord, RunStatus
from shared.telemetry import BROKER_TELEMETRY, BrokerTelemetry

LOGGER = logging.getLogger(__name__)

# Where an approved run goes on (its first status and the step's detail), from the full preflight run again for its
# request and original caller; the problem that preflight found instead, if any.
Restart = Callable[[RunRecord], tuple[RunStatus, str] | Problem]


@dataclass(frozen=True)
class Decision:
    """The answer to an approve or reject: the run as the decision left it, or the problem refusing the call.

    `repeated` says that this decision had been made already (by this caller or another), so nothing changed."""

    run: RunRecord | None = None
    problem: Problem | None = None
    repeated: bool = False


class ApprovalExpiry:
    """Ends runs whose approval ran out: the watchdog's callable, which needs nothing but the run store and events."""

    def __init__(
        self,
        *,
        runs: RunRepositoryPort,
        events: MessageQueuePort,
        clock: Callable[[], datetime],
        telemetry: BrokerTelemetry = BROKER_TELEMETRY,
    ) -> None:
        self._runs = runs
        self._events = events
        self._clock = clock
        self._telemetry = telemetry

    def __call__(self, run: RunRecord) -> bool:
        """End `run` Rejected (`approval-expired`) if it still waits past its `expiresAt`; whether this call did."""
        now = self._clock()
        approval = run.approval
        if not run.awaiting_approval or approval is None or not approval.expired_by(now):
            return False
        problem = Problem.of(
            "approval-expired",
            f"No approver decided on this request between {approval.requested_at.isoformat()} and "
            f"{approval.expires_at.isoformat()}, so it expired. Request it again to ask for approval afresh.",
            rule=approval.rule,
        )
        _, made = close_approval(
            self._runs, self._events, run.id, decision="expired", problem=problem, at=now, telemetry=self._telemetry
        )
        if made:
            LOGGER.info("run %s: approval expired at %s; rejected", run.id, approval.expires_at.isoformat())
        return made


class ApprovalDesk:
    """Approve and reject, for the deployment service (`restart` and `start` are its preflight and workflow)."""

    def __init__(
        self,
        *,
        runs: RunRepositoryPort,
        events: MessageQueuePort,
        roles: BrokerRoles,
        clock: Callable[[], datetime],
        restart: Restart,
        start: Callable[[RunRecord], None],
        telemetry: BrokerTelemetry = BROKER_TELEMETRY,
    ) -> None:
        self._runs = runs
        self._events = events
        self._roles = roles
        self._clock = clock
        self._restart = restart
        self._start = start
        self._telemetry = telemetry
        self._expire = ApprovalExpiry(runs=runs, events=events, clock=clock, telemetry=telemetry)

    def approve(self, run_id: str, *, caller: Caller, comment: str | None = None) -> Decision:
        """Approve run `run_id` for `caller`: it goes on to its first step, or ends Rejected when the preflight run
        again refuses it now."""
        run = self._decidable(run_id, caller, "approved")
        if isinstance(run, Decision):
            return run
        restart = self._restart(run)
        at = self._clock()
        if isinstance(restart, Problem):
            LOGGER.info(
                "run %s: approved by %s, but preflight now refuses it (%s)", run.id, caller.object_id, restart.kind.slug
            )
            ended, made = close_approval(
                self._runs,
                self._events,
                run.id,
                decision="approved",
                problem=restart,
                at=at,
                by=caller.object_id,
                comment=comment,
                telemetry=self._telemetry,
            )
            return self._answer(ended, "approved") if not made else Decision(self._view(ended))
        status, detail = restart

        def approved(current: RunRecord) -> RunRecord | None:
            if not current.awaiting_approval or current.approval is None:
                return None
            approval = current.approval.decided("approved", at=at, by=caller.object_id, comment=comment)
            detail_text = f"approved by {caller.object_id}; {detail}"
            return current.transition(status, at=at, detail=detail_text, approval=approval)

        moved, made = update_once(self._runs, run.id, approved)
        if not made:
            return self._answer(moved, "approved")
        if moved.deployment_id:
            self._runs.update_deployment(moved.deployment_id, lambda current: _provisioning(current, moved, at))
        self._start(moved)
        for event in approval_events(moved, self._runs.joiners(moved.id), time=at):
            self._events.send(event)
        LOGGER.info("run %s: approved by %s; %s", moved.id, caller.object_id, moved.status)
        return Decision(self._view(moved))

    def reject(self, run_id: str, *, caller: Caller, comment: str) -> Decision:
        """Reject run `run_id` for `caller`, with `comment`: it ends Rejected (`approval-rejected`)."""
        run = self._decidable(run_id, caller, "rejected")
        if isinstance(run, Decision):
            return run
        problem = Problem.of(
            "approval-rejected",
            f"Approver {caller.object_id} rejected the request: {comment}",
            decidedBy=caller.object_id,
        )
        ended, made = close_approval(
            self._runs,
            self._events,
            run.id,
            decision="rejected",
            problem=problem,
            at=self._clock(),
            by=caller.object_id,
            comment=comment,
            telemetry=self._telemetry,
        )
        if not made:
            return self._answer(ended, "rejected")
        LOGGER.info("run %s: rejected by %s", ended.id, caller.object_id)
        return Decision(self._view(ended))

    def _decidable(self, run_id: str, caller: Caller, decision: ApprovalDecision) -> RunRecord | Decision:
        """The run `caller` may make `decision` on now; otherwise the answer (a refusal, or the decision made
        already). The role is checked before the run is read, so a caller who may not decide learns nothing of it."""
        if not self._roles.approver.held_by(caller):
            return Decision(
                problem=Problem.of(
                    "approver-required",
                    f"Deciding on requests that need approval takes {self._roles.approver.description}.",
                )
            )
        stored = self._runs.get(run_id)
        if stored is None:
            return Decision(problem=Problem.of("not-found", f"There is no run '{run_id}'."))
        run: RunRecord = stored.run
        requesters = {run.caller, *(joiner.caller for joiner in self._runs.joiners(run.id))}
        if caller.object_id in {requester.lower() for requester in requesters}:
            return Decision(
                problem=Problem.of(
                    "self-approval-forbidden",
                    f"{caller.object_id} made or joined the request of run {run.id}; another approver must decide.",
                    runId=run.id,
                )
            )
        if run.awaiting_approval and self._expire(run):
            run = self._latest(run.id)
        return run if run.awaiting_approval else self._answer(run, decision)

    def _answer(self, run: RunRecord, wanted: ApprovalDecision) -> Decision:
        """The answer to `wanted` on a run that no longer waits: the same decision converges, anything else is a
        conflict naming the run's status and decision."""
        decided = run.approval.decision if run.approval else None
        if decided == wanted:
            return Decision(self._view(run), repeated=True)
        state = f"was {decided} already" if decided else "never waited for approval"
        return Decision(
            self._view(run),
            problem=Problem.of(
                "run-state-conflict",
                f"Run {run.id} is {run.status.value} and {state}, so it cannot be {wanted}.",
                runId=run.id,
                runStatus=run.status.value,
                decision=decided,
            ),
        )

    def _latest(self, run_id: str) -> RunRecord:
        stored = self._runs.get(run_id)
        assert stored is not None, "runs are never removed"
        return stored.run

    def _view(self, run: RunRecord) -> RunRecord:
        return self._runs.with_joiners(run)


def _provisioning(deployment: Deployment, run: RunRecord, at: datetime) -> Deployment:
    """The deployment once its run waiting for approval was approved (unchanged if another run holds it by now)."""
    if deployment.status.current_run_id != run.id or deployment.status.phase is not Phase.PENDING_APPROVAL:
        return deployment
    return deployment.changed(at=at, phase=Phase.PROVISIONING)
