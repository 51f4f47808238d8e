"""The run record: one per request, from acceptance to its end, with every status change it went through.

Runs are immutable values: each change returns a new record, so storage code can compare, retry and write with
ETag concurrency without partial updates. Time always comes from the caller (`at=`), never from a clock read
here, so tests and replays are deterministic. The record holds Key Vault secret *ids* only, never key values:
`SecretIds` accepts nothing but Key Vault secret URLs.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from datetime import datetime
from enum import StrEnum
from typing import Any, Literal, Self
from urllib.parse import urlsplit

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic.alias_generators import to_camel
from pydantic_core import to_jsonable_python

from shared.approvals import MAX_APPROVAL_COMMENT
from shared.azure_ids import WorkspaceId
from shared.requests import DeploymentRequest

_SECRET_PATH = re.compile(r"^/secrets/[A-Za-z][A-Za-z0-9-]{0,126}(/[A-Za-z0-9]+)?$")


class RunStatus(StrEnum):
    ACCEPTED = "Accepted"
    VALIDATING = "Validating"
    PENDING_APPROVAL = "PendingApproval"
    SUBSCRIBING = "Subscribing"
    PROVISIONING = "Provisioning"
    STORING_KEYS = "StoringKeys"
    VERIFYING = "Verifying"
    SUCCEEDED = "Succeeded"
    REJECTED = "Rejected"
    FAILED = "Failed"
    DELETING = "Deleting"
    DELETED = "Deleted"


TERMINAL_STATUSES = frozenset({RunStatus.SUCCEEDED, RunStatus.REJECTED, RunStatus.FAILED, RunStatus.DELETED})

RunOperation = Literal["deploy", "repair", "delete"]

# Sold-directly models skip Subscribing; a repair starts where Azure's state first differs from the spec. Every
# deploy and repair run ends by re-reading Azure (Verifying), so Succeeded means Azure reports the deployment whole.
# A deploy run the approval policy names waits in PendingApproval, before any Azure write, and goes on from there to
# where intake would have started it, or ends Rejected. Delete runs go Validating -> Deleting -> Deleted.
ALLOWED_TRANSITIONS: dict[RunStatus, frozenset[RunStatus]] = {
    RunStatus.ACCEPTED: frozenset({RunStatus.VALIDATING, RunStatus.REJECTED, RunStatus.FAILED}),
    RunStatus.VALIDATING: frozenset(
        {
            RunStatus.SUBSCRIBING,
            RunStatus.PROVISIONING,
            RunStatus.STORING_KEYS,
            RunStatus.VERIFYING,
            RunStatus.DELETING,
            RunStatus.PENDING_APPROVAL,
            RunStatus.REJECTED,
            RunStatus.FAILED,
        }
    ),
    RunStatus.PENDING_APPROVAL: frozenset(
        {RunStatus.SUBSCRIBING, RunStatus.PROVISIONING, RunStatus.STORING_KEYS, RunStatus.REJECTED, RunStatus.FAILED}
    ),
    RunStatus.SUBSCRIBING: frozenset({RunStatus.PROVISIONING, RunStatus.FAILED}),
    RunStatus.PROVISIONING: frozenset({RunStatus.STORING_KEYS, RunStatus.FAILED}),
    RunStatus.STORING_KEYS: frozenset({RunStatus.VERIFYING, RunStatus.FAILED}),
    RunStatus.VERIFYING: frozenset({RunStatus.SUCCEEDED, RunStatus.FAILED}),
    RunStatus.DELETING: frozenset({RunStatus.DELETED, RunStatus.FAILED}),
    **{status: frozenset() for status in TERMINAL_STATUSES},
}
_DEPLOY_ONLY = frozenset(
    {
        RunStatus.PENDING_APPROVAL,
        RunStatus.SUBSCRIBING,
        RunStatus.PROVISIONING,
        RunStatus.STORING_KEYS,
        RunStatus.VERIFYING,
        RunStatus.SUCCEEDED,
    }
)
_DELETE_ONLY = frozenset({RunStatus.DELETING, RunStatus.DELETED})


class IllegalTransitionError(ValueError):
    """A status change the workflow does not allow; a bug or a stale record, never a user error."""


class _Value(BaseModel):
    # Inputs stay out of error texts: a key value put where a secret id belongs must not be echoed back.
    model_config = ConfigDict(
        alias_generator=to_camel, validate_by_name=True, extra="forbid", frozen=True, hide_input_in_errors=True
    )


class RunStep(_Value):
    status: RunStatus
    at: AwareDatetime
    detail: str | None = None


class EndpointInfo(_Value):
    name: str
    id: str
    scoring_uri: str | None = None


def _secret_id(value: str) -> str:
    # Refusing anything but a secret URL keeps a key value from ever landing here by mistake; the message
    # must not echo the value for the same reason.
    parts = urlsplit(value)
    if parts.scheme != "https" or not parts.hostname or not _SECRET_PATH.match(parts.path) or parts.query:
        raise ValueError("Not a Key Vault secret id (https://<vault>/secrets/<name>[/<version>]).")
    return value


class SecretIds(_Value):
    """Key Vault secret ids (`https://<vault>/secrets/<name>[/<version>]`) of the endpoint's keys."""

    primary: str
    secondary: str

    @field_validator("primary", "secondary")
    @classmethod
    def _secret_ids(cls, value: str) -> str:
        return _secret_id(value)


class RunError(_Value):
    """Why a run was rejected or failed: a stable code (a problem type slug or Azure's code) and a message."""

    code: str
    message: str
    details: list[dict[str, Any]] = []


KeyType = Literal["primary", "secondary"]
RotationStatus = Literal["Pending", "Regenerating", "Rotated", "Failed"]


class KeyRotation(_Value):
    """One regeneration of one endpoint key, from request to the new Key Vault secret version (ids only)."""

    id: str
    key_type: KeyType
    trigger: Literal["manual", "scheduled"]
    status: RotationStatus
    requested_at: AwareDatetime
    requested_by: str | None = None
    # Scheduled rotations name the expiring secret version that caused them, so it causes only one.
    reason: str | None = None
    trigger_secret: str | None = None
    operation_url: str | None = None
    secret_id: str | None = None
    expires_on: AwareDatetime | None = None
    completed_at: AwareDatetime | None = None
    error: RunError | None = None

    @field_validator("secret_id")
    @classmethod
    def _secret_id(cls, value: str | None) -> str | None:
        return None if value is None else _secret_id(value)

    @property
    def in_progress(self) -> bool:
        return self.status in ("Pending", "Regenerating")


class ConnectionInfo(_Value):
    """The workspace connection through which the requester's project reaches an endpoint in a hub project."""

    workspace_id: str
    name: str
    id: str
    key_type: KeyType


class CrossRegion(_Value):
    """A deployment made (or torn down) in a hub project because the requester's region does not offer the model;
    the connection is the deployment's only."""

    hub_workspace_id: str
    connection: ConnectionInfo | None = None


ApprovalDecision = Literal["approved", "rejected", "expired", "withdrawn"]


class Approval(_Value):
    """A run's wait for an approver: why it waits and until when, then who decided what, when and why.

    `expired` is the watchdog's decision when nobody decided in time (decidedBy stays empty); `withdrawn` is a delete
    of the deployment before anybody decided (decidedBy is who deleted it).
    """

    rule: str
    reason: str
    requested_at: AwareDatetime
    expires_at: AwareDatetime
    decision: ApprovalDecision | None = None
    decided_by: str | None = None
    decided_at: AwareDatetime | None = None
    comment: str | None = Field(default=None, max_length=MAX_APPROVAL_COMMENT)

    @property
    def pending(self) -> bool:
        return self.decision is None

    def expired_by(self, now: datetime) -> bool:
        """Whether nobody decided before `now` and the wait has run out."""
        return self.pending and now >= self.expires_at

    def decided(
        self, decision: ApprovalDecision, *, at: datetime, by: str | None = None, comment: str | None = None
    ) -> Approval:
        return self.model_copy(
            update={"decision": decision, "decided_by": by, "decided_at": at, "comment": comment or None}
        )


# The public run lists this many of its joiners (the first to join) and counts them all.
MAX_LISTED_JOINERS = 50


class RunRequester(_Value):
    """A request that joined a run already in flight; it is answered with its own events when the run ends."""

    caller: str
    ticket: str | None = None
    at: AwareDatetime
    # The id the request would have had as a run of its own, private to the broker: it names the request's events,
    # so every announcer of the run's end (and the request itself) builds the same ids for it.
    request_id: str | None = Field(default=None, exclude=True)


class RunRecord(_Value):
    id: str
    caller: str
    ticket: str | None = None
    operation: RunOperation = "deploy"
    deployment_id: str | None = None
    request: DeploymentRequest
    status: RunStatus
    steps: tuple[RunStep, ...]
    endpoint: EndpointInfo | None = None
    secret_ids: SecretIds | None = None
    error: RunError | None = None
    created_at: AwareDatetime
    updated_at: AwareDatetime
    idempotency_key: str | None = None
    # Whether a delete run also deletes the Marketplace subscription.
    delete_subscription: bool = False
    # Who joined it, a view made from its joiner rows when the run is read for the API (RunStore.run_view), never
    # stored on the run: the first MAX_LISTED_JOINERS to join, and how many did.
    joined: tuple[RunRequester, ...] = ()
    joined_count: int = Field(default=0, ge=0)
    warnings: tuple[str, ...] = ()
    cross_region: CrossRegion | None = None
    key_rotations: tuple[KeyRotation, ...] = ()
    # Set when the approval policy named the request: the wait, then the decision (kept once decided).
    approval: Approval | None = None
    # The step chain (shared/engine.py), private to the broker: a work message counts only while it carries the run's
    # current step token, which every status change, every new rotation and every watchdog re-enqueue moves on, so one
    # chain of messages at a time carries a run. `stepped_at` is when a step of that chain last ran (refreshed every
    # few polls, never on every one) and `recoveries` how often the watchdog re-enqueued it since the run last moved.
    step_token: int = Field(default=0, ge=0, exclude=True)
    stepped_at: AwareDatetime | None = Field(default=None, exclude=True)
    recoveries: int = Field(default=0, ge=0, exclude=True)

    @model_validator(mode="after")
    def _steps_end_in_status(self) -> Self:
        if not self.steps or self.steps[-1].status is not self.status:
            raise ValueError("The last step must record the current status.")
        return self

    @classmethod
    def new(
        cls,
        *,
        run_id: str,
        caller: str,
        request: DeploymentRequest,
        at: datetime,
        operation: RunOperation = "deploy",
        deployment_id: str | None = None,
        ticket: str | None = None,
        idempotency_key: str | None = None,
        detail: str | None = None,
    ) -> RunRecord:
        """A freshly accepted run; the ticket defaults to the one in the request."""
        return cls(
            id=run_id,
            caller=caller,
            ticket=ticket if ticket is not None else request.ticket,
            operation=operation,
            deployment_id=deployment_id,
            request=request,
            status=RunStatus.ACCEPTED,
            steps=(RunStep(status=RunStatus.ACCEPTED, at=at, detail=detail),),
            created_at=at,
            updated_at=at,
            idempotency_key=idempotency_key,
        )

    @property
    def is_terminal(self) -> bool:
        return self.status in TERMINAL_STATUSES

    def transition(
        self,
        status: RunStatus,
        *,
        at: datetime,
        detail: str | None = None,
        endpoint: EndpointInfo | None = None,
        secret_ids: SecretIds | None = None,
        error: RunError | None = None,
        approval: Approval | None = None,
    ) -> RunRecord:
        """The record after moving to `status`; moving to the current status again changes nothing.

        Re-entering the current status is a no-op because a resumed or redelivered step may announce a status
        it already recorded. Anything the table does not allow raises IllegalTransitionError.
        """
        status = RunStatus(status)
        if status is self.status:
            return self
        if status not in ALLOWED_TRANSITIONS[self.status]:
            raise IllegalTransitionError(f"Run {self.id} cannot go from {self.status} to {status}.")
        if status in (_DEPLOY_ONLY if self.operation == "delete" else _DELETE_ONLY):
            raise IllegalTransitionError(f"A {self.operation} run ({self.id}) never enters {status}.")
        changes: dict[str, Any] = {
            "status": status,
            "steps": (*self.steps, RunStep(status=status, at=at, detail=detail)),
            "updated_at": at,
            # A new status is a new step: the messages of the old one no longer count.
            "step_token": self.step_token + 1,
            "recoveries": 0,
        }
        given = {"endpoint": endpoint, "secret_ids": secret_ids, "error": error, "approval": approval}
        changes.update({name: value for name, value in given.items() if value is not None})
        updated = RunRecord.model_validate({**dict(self), **changes})
        _check_outcome(updated)
        return updated

    @property
    def deployment_target(self) -> WorkspaceId | None:
        """The hub project holding the endpoint of a cross-region deployment; None when it is the requested one."""
        return WorkspaceId.parse(self.cross_region.hub_workspace_id) if self.cross_region else None

    @property
    def requesters(self) -> tuple[RunRequester, ...]:
        """The request that started this run, then those its `joined` view lists."""
        return (RunRequester(caller=self.caller, ticket=self.ticket, at=self.created_at), *self.joined)

    def with_joiners(self, joiners: Iterable[RunRequester]) -> RunRecord:
        """The record with its `joined` view made from every request that joined it."""
        ordered = sorted(joiners, key=lambda joiner: (joiner.at, joiner.request_id or ""))
        return self.model_copy(update={"joined": tuple(ordered[:MAX_LISTED_JOINERS]), "joined_count": len(ordered)})

    @property
    def pending_rotation(self) -> KeyRotation | None:
        return next((rotation for rotation in reversed(self.key_rotations) if rotation.in_progress), None)

    def with_changes(self, *, at: datetime, **changes: Any) -> RunRecord:
        """The record with fields other than the status changed (validated), stamped `at`."""
        return RunRecord.model_validate({**dict(self), **changes, "updated_at": at})

    # -- the step chain --------------------------------------------------------------------------------------------

    @property
    def in_flight(self) -> bool:
        """Whether the watchdog should watch this run: it has not ended, or a key rotation on it has not. A run waiting
        for approval has no chain of work messages yet, but the watchdog ends it when its approval expires."""
        return not self.is_terminal or self.pending_rotation is not None

    @property
    def awaiting_approval(self) -> bool:
        return self.status is RunStatus.PENDING_APPROVAL

    @property
    def last_activity(self) -> datetime:
        """When the run last changed or one of its steps last ran."""
        return max(self.updated_at, self.stepped_at) if self.stepped_at else self.updated_at

    def stepped(self, *, at: datetime) -> RunRecord:
        """The record noting that a step of its current chain ran `at` (a heartbeat; the public record is unchanged)."""
        return self._chain(stepped_at=at)

    def rechained(self, *, at: datetime) -> RunRecord:
        """The record with a new step token for a new chain (a key rotation starting), the old one's messages void."""
        return self._chain(step_token=self.step_token + 1, stepped_at=at, recoveries=0)

    def recovered(self, *, at: datetime) -> RunRecord:
        """The record after the watchdog re-enqueued its current step `at` under a new token."""
        return self._chain(step_token=self.step_token + 1, stepped_at=at, recoveries=self.recoveries + 1)

    def _chain(self, **changes: Any) -> RunRecord:
        return RunRecord.model_validate({**dict(self), **changes})

    def to_public_dict(self) -> dict[str, Any]:
        """The JSON body for HTTP responses and events; the idempotency key stays private to its caller, and the step
        chain (token, heartbeat, recoveries) to the broker."""
        return self.model_dump(mode="json", by_alias=True, exclude={"idempotency_key"})

    def to_storage_dict(self) -> dict[str, Any]:
        """Everything but the `joined` view, JSON-ready, for the run store; `from_storage_dict` reverses it."""
        chain = {"stepToken": self.step_token, "steppedAt": self.stepped_at, "recoveries": self.recoveries}
        stored = self.model_dump(mode="json", by_alias=True, exclude={"joined", "joined_count"})
        return {**stored, **to_jsonable_python(chain)}

    @classmethod
    def from_storage_dict(cls, data: dict[str, Any]) -> RunRecord:
        return cls.model_validate(data)


def _check_outcome(run: RunRecord) -> None:
    # Succeeded promises a usable endpoint whose keys are in Key Vault; Rejected/Failed promise a reason.
    if run.status is RunStatus.SUCCEEDED and (run.endpoint is None or run.secret_ids is None):
        raise IllegalTransitionError(f"Run {run.id} cannot succeed before its endpoint and secret ids are recorded.")
    if run.status in (RunStatus.REJECTED, RunStatus.FAILED) and run.error is None:
        raise IllegalTransitionError(f"Run {run.id} cannot end {run.status} without an error.")
    # Waiting for approval needs a wait that is still open; moving on from it needs the decision recorded.
    if run.status is RunStatus.PENDING_APPROVAL and (run.approval is None or not run.approval.pending):
        raise IllegalTransitionError(f"Run {run.id} cannot wait for approval without an undecided approval.")
    waited = any(step.status is RunStatus.PENDING_APPROVAL for step in run.steps)
    if waited and run.status is not RunStatus.PENDING_APPROVAL and (run.approval is None or run.approval.pending):
        raise IllegalTransitionError(f"Run {run.id} cannot leave PendingApproval before a decision is recorded.")
