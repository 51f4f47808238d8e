"""What every operation's intake shares: how a request was answered, refusing with a stored, announced rejection,
and checking the requester's permission."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from shared.azure_errors import RecordChangedError
from shared.azure_ids import WorkspaceId
from shared.deployment import Deployment
from shared.events import accepted_event, deployment_event, outcome_events
from shared.ports import AuthorizationPort, MessageQueuePort, PrincipalAccess, RunRepositoryPort
from shared.problems import Problem
from shared.rbac import PermissionSet
from shared.required_permissions import RequesterCheck, check_requester_permission
from shared.runs import RunError, RunRecord, RunRequester, RunStatus
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


def rejected(run: RunRecord, problem: Problem, *, at: datetime) -> RunRecord:
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
    event now, its own terminal event when the run ends. RecordChangedError when that run has ended already, so the
    caller looks again.

    The join writes only the request's own rows (joiner and ticket), so joins never contend with each other or with
    the workflow. The run may end between the read of `current` and that write, and its announcer may have listed
    the joiners before this one was written: the run is read again after the write, and if it has ended this request
    is sent its terminal event here, under the id the announcer would give it (a duplicate at worst, never a miss).
    """
    if current.is_terminal:
        raise RecordChangedError(f"run {current.id} ended while a request joined it")
    joiner = RunRequester(caller=caller, ticket=ticket, at=at, request_id=request_id)
    runs.join_run(current.id, joiner, deployment_id=deployment.id)
    if idempotency_key:
        runs.answer_idempotency_key(caller, idempotency_key, run_id=current.id)
    events.send(accepted_event(current, time=at, requester=joiner))
    latest = runs.run_view(current.id)
    assert latest is not None, "runs are never removed"
    if latest.is_terminal:
        events.send(deployment_event(latest, time=at, requester=joiner))
    return Submission("joined", run=latest, deployment=deployment)


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
