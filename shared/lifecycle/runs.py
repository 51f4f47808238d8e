"""Run-record chores the lifecycle operations share: refusing with a stored, announced rejection, checking the
requester's permission, and waiting out the moment between a claim and its run record."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime
from typing import Any

from shared.azure_ids import WorkspaceId
from shared.deployments.service import CLAIM_POLL_SECONDS, CLAIM_SETTLE_SECONDS
from shared.events import deployment_event
from shared.ports import AuthorizationPort, MessageQueuePort, RunRepositoryPort
from shared.problems import Problem
from shared.rbac import PermissionSet
from shared.required_permissions import check_requester_permission
from shared.runs import RunError, RunRecord, RunStatus
from shared.telemetry import BROKER_TELEMETRY, BrokerTelemetry


def requester_problem(
    authorization: AuthorizationPort, workspace: WorkspaceId, caller: str, action: str
) -> Problem | None:
    """A requester-forbidden problem unless `caller` may perform `action` on the workspace."""
    access = authorization.principal_access(caller, workspace.resource_id)
    result = check_requester_permission(
        workspace, caller, PermissionSet.from_rest(access.permissions, access.denials), action=action
    )
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


def accepted_event(run: RunRecord, now: datetime) -> dict[str, Any]:
    """The accepted event of a run that intake already moved on (its data carries the current status)."""
    event = deployment_event(run.model_copy(update={"status": RunStatus.ACCEPTED}), time=now)
    event["data"]["status"] = run.status.value
    return event


def announce(
    events: MessageQueuePort, run: RunRecord, now: datetime, telemetry: BrokerTelemetry = BROKER_TELEMETRY
) -> None:
    events.send(deployment_event(run, time=now))
    telemetry.run_finished(run)


def settled_run(
    runs: RunRepositoryPort,
    run_id: str,
    *,
    sleep: Callable[[float], None] = time.sleep,
    monotonic: Callable[[], float] = time.monotonic,
) -> RunRecord | None:
    """A claim holder's run, allowing it the moment between claiming and storing its record (as intake does)."""
    deadline = monotonic() + CLAIM_SETTLE_SECONDS
    while (stored := runs.get(run_id)) is None and monotonic() < deadline:
        sleep(CLAIM_POLL_SECONDS)
    return stored.run if stored else None
