"""What every operation's intake shares: how a request was answered, refusing with a stored, announced rejection,
checking the requester's permission, and ending a run that waits for approval."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from shared.azure_errors import RecordChangedError
from shared.azure_ids import WorkspaceId
from shared.deployment import Deployment
from shared.events import accepted_event, approval_event, approval_events, deployment_event, outcome_events
from shared.ports import AuthorizationPort, MessageQueuePort, PrincipalAccess, RunRepositoryPort
from shared.problems import Problem
from shared.rbac import PermissionSet
from shared.required_permissions import RequesterCheck, check_requester_permission
from shared.runs import ApprovalDecision, RunError, RunRecord, RunRequester, RunStatus
from shared.telemetry import BROKER_TELEMETRY, BrokerTelemetry

LOGGER = logging.getLogger(__name__)


def requester_problem(
    authorization: AuthorizationPort, workspace: WorkspaceId, caller: str, action: str
) -> Problem | None:
    """A requester-forbidden problem unless `caller` may perform `action` on the workspace.

    A grant may be read from the adapter's cache; a refusal never is: access read from it is read again first, so a
    role just assigned is seen at once.
    """

    def check(access: PrincipalAccess) -> RequesterCheck:
        permission_set = PermissionSet.from_rest(access.permissions, access.denials)
        return check_requester_permission(workspace, caller, permission_set, action=action)

    access = authorization.principal_access(caller, workspace.resource_id)
    result = check(access)
    if not result.allowed and access.cached:
        result = check(authorization.principal_access(caller, workspace.resource_id, fresh=True))
    return None if result.allowed else Problem.of("requester-forbidden", result.rejection_text)


def rejected(run: RunRecord, problem: Problem, *, at: datetime, **changes: Any) -> RunRecord:
    """`run` ended Rejected with `problem` as its error; `changes` are other fields the transition sets (the decided
    approval)."""
    extensions = dict(problem.extensions)
    return run.transition(
        RunStatus.REJECTED,
        at=at,
        detail=problem.kind.slug,
        error=RunError(
            code=problem.kind.slug,
            message=problem.detail or problem.kind.title,
            details=[extensions] if extensions else [],
        ),
        **changes,
    )


def problem_of(run: RunRecord) -> Problem | None:
    """The problem a Rejected run was refused with (for replays)."""
    if run.status is not RunStatus.REJECTED or run.error is None:
        return None
    extensions = dict(run.error.details[0]) if run.error.details else {}
    return Problem.of(run.error.code, run.error.message, **extensions)


def announce(
    events: MessageQueuePort,
    run: RunRecord,
    now: datetime,
    telemetry: BrokerTelemetry = BROKER_TELEMETRY,
    *,
    joiners: Iterable[RunRequester] = (),
) -> None:
    """The terminal event to every request `run` answers (the one that started it and `joiners`, read by the caller
    after the run's end was stored, so that a request joining later sees the end itself), and the finished-run
    metric."""
    for event in outcome_events(run, joiners, time=now):
        events.send(event)
    telemetry.run_finished(run)


Answer = Literal["created", "repair", "joined", "ready", "deleted", "replayed", "rejected"]


@dataclass(frozen=True)
class Submission:
    """How the broker answered one request: a run it started or joined, or the deployment as it already is.

    - created / repair: a new deploy, repair or delete run (HTTP 202);
    - joined: the run already in flight for the same spec, which now answers this request too (202);
    - ready: the deployment was already Ready as asked, so nothing ran (200);
    - deleted: the deployment was already deleted, by its original delete run (200);
    - replayed: the answer an earlier request with the same Idempotency-Key got (200);
    - rejected: refused, with a problem (and a Rejected run recording it).
    """

    answer: Answer
    run: RunRecord | None = None
    deployment: Deployment | None = None
    problem: Problem | None = None

    @property
    def accepted(self) -> bool:
        return self.answer in ("created", "repair", "joined")


def join_in_flight(
    runs: RunRepositoryPort,
    events: MessageQueuePort,
    current: RunRecord,
    deployment: Deployment,
    *,
    request_id: str,
    caller: str,
    ticket: str | None,
    idempotency_key: str | None,
    at: datetime,
) -> Submission:
    """Answer a request by the run in flight, `current` (as just read), which then answers it too: its own accepted
    event now (and, while the run waits for approval, its own approvalrequested event), its own approval decision
    and terminal event when they come. RecordChangedError when that run has ended already, so the caller looks again.

    The join writes only the request's own rows (joiner and ticket), so joins never contend with each other or with
    the workflow. The run may be decided or end between the read of `current` and that write, and its announcer may
    have listed the joiners before this one was written: the run is read again after the write, and what this
    request missed is sent here, under the ids the announcer would give it (a duplicate at worst, never a miss).
    """
    if current.is_terminal:
        raise RecordChangedError(f"run {current.id} ended while a request joined it")
    joiner = RunRequester(caller=caller, ticket=ticket, at=at, request_id=request_id)
    runs.join_run(current.id, joiner, deployment_id=deployment.id)
    if idempotency_key:
        runs.answer_idempotency_key(caller, idempotency_key, run_id=current.id)
    events.send(accepted_event(current, time=at, requester=joiner))
    waited = current.awaiting_approval
    if waited:
        events.send(approval_event(current, time=at, requester=joiner))
    latest = runs.run_view(current.id)
    assert latest is not None, "runs are never removed"
    if waited and latest.approval is not None and not latest.approval.pending:
        events.send(approval_event(latest, time=at, requester=joiner))
    if latest.is_terminal:
        events.send(deployment_event(latest, time=at, requester=joiner))
    return Submission("joined", run=latest, deployment=deployment)


def close_approval(
    runs: RunRepositoryPort,
    events: MessageQueuePort,
    run_id: str,
    *,
    decision: ApprovalDecision,
    problem: Problem,
    at: datetime,
    by: str | None = None,
    comment: str | None = None,
    telemetry: BrokerTelemetry = BROKER_TELEMETRY,
) -> tuple[RunRecord, bool]:
    """End run `run_id` Rejected with `problem`, recording `decision` on its approval, if it still waits for one:
    the run as stored, and whether this call ended it (False when a concurrent decision, expiry or withdrawal came
    first; the ETag-conditional write lets exactly one of them through).

    The run is written first and its deployment second, which releases it (`Deployment.run_finished`: a rejected
    deploy leaves it Failed, so the next request makes it afresh); should the host die in between, the next request
    for the deployment catches it up. Only the call that ended the run announces it: the approval event, then the
    rejected event, to the request that started it and to every one that joined it.
    """

    def close(current: RunRecord) -> RunRecord | None:
        if not current.awaiting_approval or current.approval is None:
            return None
        approval = current.approval.decided(decision, at=at, by=by, comment=comment)
        return rejected(current, problem, at=at, approval=approval)

    ended, made = update_once(runs, run_id, close)
    if ended.is_terminal and ended.deployment_id:
        runs.update_deployment(ended.deployment_id, lambda deployment: deployment.run_finished(ended, at=at))
    if made:
        joiners = runs.joiners(run_id)
        for event in approval_events(ended, joiners, time=at):
            events.send(event)
        announce(events, ended, at, telemetry, joiners=joiners)
    return ended, made


def update_once(
    runs: RunRepositoryPort, run_id: str, change: Callable[[RunRecord], RunRecord | None]
) -> tuple[RunRecord, bool]:
    """Apply `change` to the run unless it returns None for the latest record (the change was made already, by a
    duplicate delivery or another chain): the run as stored, and whether this call made the change. Only the call
    that made an ending announces it, so two copies of one step never send two end events."""
    made = False

    def once(current: RunRecord) -> RunRecord:
        nonlocal made
        changed = change(current)
        made = changed is not None
        return current if changed is None else changed

    return runs.update(run_id, once), made
