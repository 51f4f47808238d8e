"""CloudEvents 1.0 (JSON format) announcing deployment outcomes on the `deployment-events` queue.

Event ids are derived from the run, the event type and, for a request that joined the run, that request's id, so
publishing the same outcome twice (a redelivered message, a resumed step, a joiner and the run's announcer both)
yields the same id and consumers can drop the duplicate, as CloudEvents intends (source + id identify an event).
The data is built from a run record only, which carries Key Vault secret ids and never key values; no builder takes
a free-form payload that could smuggle one in. Each kind's `data` is validated by its pydantic model below, and the
AsyncAPI document (handlers/asyncapi.py) is generated from the same models, so the contract cannot drift from what is
sent.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import datetime
from enum import StrEnum
from typing import Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

from shared.runs import (
    Approval,
    ApprovalDecision,
    KeyRotation,
    KeyType,
    RotationStatus,
    RunError,
    RunOperation,
    RunRecord,
    RunRequester,
    RunStatus,
    SecretIds,
)

EVENT_TYPE_PREFIX = "com.contoso.broker.deployment"
DEFAULT_SOURCE = "/serverless-deployment-broker"
SPEC_VERSION = "1.0"


class EventKind(StrEnum):
    ACCEPTED = "accepted"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    REJECTED = "rejected"
    DELETED = "deleted"
    KEY_ROTATED = "keyrotated"
    KEY_ROTATION_FAILED = "keyrotationfailed"
    APPROVAL_REQUESTED = "approvalrequested"
    APPROVED = "approved"
    APPROVAL_REJECTED = "approvalrejected"

    @property
    def event_type(self) -> str:
        return f"{EVENT_TYPE_PREFIX}.{self.value}"


# The CloudEvents distributed-tracing extension: W3C trace context (https://www.w3.org/TR/trace-context/).
TRACEPARENT_PATTERN = r"^[0-9a-f]{2}-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$"


class _EventData(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, validate_by_name=True, extra="forbid", frozen=True)

    def to_wire(self) -> dict[str, Any]:
        """The camelCase JSON form, with exactly the top-level members the builder set."""
        left_out = set(type(self).model_fields) - self.model_fields_set
        return self.model_dump(mode="json", by_alias=True, exclude=left_out)


class _RunEventData(_EventData):
    """What every event about a run says: which run and deployment, the request's own ticket, and what was asked."""

    run_id: str | None = Field(description="The run; for a request answered without one, the run that made it so")
    deployment_id: str | None = Field(description="The Deployment resource (GET /api/deployments/{deploymentId})")
    operation: RunOperation
    ticket: str | None = Field(description="The ticket of the request this event answers")
    status: RunStatus = Field(description="The run's status when the event was built")
    workspace_id: str
    model_id: str


class DeploymentEventData(_RunEventData):
    """`data` of an accepted, succeeded, failed, rejected or deleted event about a run: the request's own ticket,
    the run's status when the event was built, the endpoint and the Key Vault secret ids of its keys (never a key)."""

    endpoint_name: str | None
    endpoint_id: str | None
    scoring_uri: str | None
    secret_ids: SecretIds | None
    error: RunError | None = Field(description="Why the run was rejected or failed (code: a problem slug or Azure's)")
    detail: str | None = Field(
        default=None, description="Only for a request answered without a run: what the deployment already was"
    )


class ApprovalEventData(_RunEventData):
    """`data` of an approvalrequested, approved or approvalrejected event: where the request's approval stands."""

    run_id: str = Field(description="The run waiting for (or given) the decision")
    approval: Approval


class KeyRotationEventData(_EventData):
    """`data` of a keyrotated or keyrotationfailed event: the new secret version's id, never the key."""

    run_id: str
    ticket: str | None
    workspace_id: str
    model_id: str
    endpoint_name: str | None
    endpoint_id: str | None
    rotation_id: str
    key_type: KeyType
    trigger: Literal["manual", "scheduled"]
    status: RotationStatus
    secret_id: str | None
    expires_on: AwareDatetime | None
    error: RunError | None


class RejectedMessageDetail(_EventData):
    field: str
    message: str


class RejectedMessageError(_EventData):
    code: str = Field(description="The problem slug, e.g. validation-failed")
    message: str = Field(description="Which rule or limit the message broke")
    details: list[RejectedMessageDetail]


class RejectedMessageEventData(_EventData):
    """`data` of the rejected event for a deployment-requests message that never became a run (malformed, or
    breaking a limit); every echoed value is cut short, ending in "…", so the event stays within 16 KiB."""

    run_id: None = Field(description="Always null: no run was made")
    ticket: str = Field(description="The ticket read from the message")
    status: Literal["Rejected"]
    error: RejectedMessageError


class CloudEvent(BaseModel):
    """The CloudEvents 1.0 envelope (JSON format) of every event the broker sends, deployment events and hygiene
    alerts alike. `traceparent` and `tracestate` are the distributed-tracing extension: the W3C trace context of
    the request the event belongs to. Other extension attributes (lowercase letters and digits) may appear."""

    model_config = ConfigDict(extra="allow", frozen=True)

    specversion: Literal["1.0"]
    id: str = Field(description="Unique per source; a repeated announcement carries the same id")
    source: str = Field(json_schema_extra={"format": "uri-reference"})
    type: str
    subject: str
    time: AwareDatetime
    datacontenttype: Literal["application/json"]
    traceparent: str | None = Field(default=None, pattern=TRACEPARENT_PATTERN)
    tracestate: str | None = None
    data: dict[str, Any]


# What each kind's data is; a rejected event about a malformed queue message is RejectedMessageEventData instead.
DATA_MODELS: dict[EventKind, type[_EventData]] = {
    EventKind.ACCEPTED: DeploymentEventData,
    EventKind.SUCCEEDED: DeploymentEventData,
    EventKind.FAILED: DeploymentEventData,
    EventKind.REJECTED: DeploymentEventData,
    EventKind.DELETED: DeploymentEventData,
    EventKind.KEY_ROTATED: KeyRotationEventData,
    EventKind.KEY_ROTATION_FAILED: KeyRotationEventData,
    EventKind.APPROVAL_REQUESTED: ApprovalEventData,
    EventKind.APPROVED: ApprovalEventData,
    EventKind.APPROVAL_REJECTED: ApprovalEventData,
}

_KIND_OF_STATUS = {
    RunStatus.ACCEPTED: EventKind.ACCEPTED,
    RunStatus.SUCCEEDED: EventKind.SUCCEEDED,
    RunStatus.FAILED: EventKind.FAILED,
    RunStatus.REJECTED: EventKind.REJECTED,
    RunStatus.DELETED: EventKind.DELETED,
}


def event_kind_for(status: RunStatus) -> EventKind | None:
    """The event a run in `status` announces; None for intermediate statuses, which publish nothing."""
    return _KIND_OF_STATUS.get(status)


def deployment_event(
    run: RunRecord,
    *,
    time: datetime,
    requester: RunRequester | None = None,
    announced_status: RunStatus | None = None,
    source: str = DEFAULT_SOURCE,
) -> dict[str, Any]:
    """The CloudEvent announcing `run`'s current status (or `announced_status`) to one of its requesters.

    Without `requester` it goes to the request that started the run; a request that joined it gets its own event
    carrying its own ticket, with an id named by its request id, so none is taken for another's duplicate and
    whoever builds it again (a repeated announce, the joiner itself) builds the same id.
    """
    status = announced_status or run.status
    kind = event_kind_for(status)
    if kind is None:
        raise ValueError(f"Run {run.id} is {status}; only {', '.join(_KIND_OF_STATUS)} publish events.")
    public = run.to_public_dict()
    endpoint = public["endpoint"] or {}
    data = DeploymentEventData(
        **_run_fields(run, requester),
        endpoint_name=endpoint.get("name"),
        endpoint_id=endpoint.get("id"),
        scoring_uri=endpoint.get("scoringUri"),
        secret_ids=run.secret_ids,
        error=run.error,
    ).to_wire()
    return _run_event(kind, run, requester, time=time, source=source, data=data)


def accepted_event(run: RunRecord, *, time: datetime, requester: RunRequester | None = None) -> dict[str, Any]:
    """The accepted event of a run that intake already moved on (its data carries the current status)."""
    return deployment_event(run, time=time, requester=requester, announced_status=RunStatus.ACCEPTED)


def outcome_events(run: RunRecord, joiners: Iterable[RunRequester], *, time: datetime) -> Iterator[dict[str, Any]]:
    """The terminal event of a finished run, to the request that started it and then to every one that joined it."""
    yield deployment_event(run, time=time)
    for joiner in joiners:
        yield deployment_event(run, time=time, requester=joiner)


# The approval event a decision announces; an expired or withdrawn approval is a rejection too.
_KIND_OF_DECISION: dict[ApprovalDecision | None, EventKind] = {
    None: EventKind.APPROVAL_REQUESTED,
    "approved": EventKind.APPROVED,
    "rejected": EventKind.APPROVAL_REJECTED,
    "expired": EventKind.APPROVAL_REJECTED,
    "withdrawn": EventKind.APPROVAL_REJECTED,
}


def approval_event(
    run: RunRecord, *, time: datetime, requester: RunRequester | None = None, source: str = DEFAULT_SOURCE
) -> dict[str, Any]:
    """The CloudEvent telling one of `run`'s requesters where its approval stands: requested (undecided), approved,
    or rejected (by an approver, by expiry, or withdrawn). Its data carries the requester's ticket and the approval
    (rule, reason, expiresAt and, once decided, decision, decidedBy, decidedAt, comment), so a ticketing system can
    mirror it; ids follow the terminal events' (`<run>/<kind>[/<request id>]`)."""
    if run.approval is None:
        raise ValueError(f"Run {run.id} never waited for approval.")
    kind = _KIND_OF_DECISION[run.approval.decision]
    data = ApprovalEventData(**_run_fields(run, requester), approval=run.approval).to_wire()
    return _run_event(kind, run, requester, time=time, source=source, data=data)


def approval_events(run: RunRecord, joiners: Iterable[RunRequester], *, time: datetime) -> Iterator[dict[str, Any]]:
    """`run`'s approval event to the request that started it and then to every one that joined it."""
    yield approval_event(run, time=time)
    for joiner in joiners:
        yield approval_event(run, time=time, requester=joiner)


# What a request answered without a run hears: the deployment was already as asked (succeeded, naming the run that
# made it Ready) or already deleted (naming its delete run).
_ANSWERED_WITHOUT_A_RUN = {
    EventKind.SUCCEEDED: ("currentRunId", "deploy", RunStatus.SUCCEEDED, "The deployment was already Ready"),
    EventKind.DELETED: ("deleteRunId", "delete", RunStatus.DELETED, "The deployment was already deleted"),
}


def answered_without_a_run_events(
    deployment: Mapping[str, Any],
    outcome: EventKind,
    *,
    ticket: str | None,
    request_number: int,
    time: datetime,
    source: str = DEFAULT_SOURCE,
) -> list[dict[str, Any]]:
    """Accepted, then `outcome` (succeeded or deleted), for a request the deployment answered as it already was;
    `deployment` is its public form. Ids follow the deployment's request count, so each request gets its own."""
    run_field, operation, status_value, detail = _ANSWERED_WITHOUT_A_RUN[outcome]
    status = deployment["status"]
    endpoint = status.get("endpoint") or {}
    spec = deployment["spec"]
    data = DeploymentEventData.model_validate(
        {
            "runId": status.get(run_field),
            "deploymentId": deployment["id"],
            "operation": operation,
            "ticket": ticket,
            "status": status_value,
            "workspaceId": spec["workspaceId"],
            "modelId": spec["modelId"],
            "endpointName": endpoint.get("name"),
            "endpointId": endpoint.get("id"),
            "scoringUri": endpoint.get("scoringUri"),
            "secretIds": status.get("secretIds"),
            "error": None,
            "detail": f"{detail}; nothing was changed.",
        }
    ).to_wire()
    base = f"{deployment['id']}/request-{request_number}"
    return [
        _envelope(kind, event_id=f"{base}/{kind.value}", subject=deployment["id"], time=time, source=source, data=data)
        for kind in (EventKind.ACCEPTED, outcome)
    ]


def key_rotation_event(
    run: RunRecord, rotation: KeyRotation, *, time: datetime, source: str = DEFAULT_SOURCE
) -> dict[str, Any]:
    """The CloudEvent announcing how a key rotation of `run`'s endpoint ended (the new secret version's id, never
    the key)."""
    if rotation.in_progress:
        raise ValueError(f"Rotation {rotation.id} of run {run.id} has not finished.")
    kind = EventKind.KEY_ROTATED if rotation.status == "Rotated" else EventKind.KEY_ROTATION_FAILED
    endpoint = run.endpoint
    data = KeyRotationEventData(
        run_id=run.id,
        ticket=run.ticket,
        workspace_id=run.request.workspace_id,
        model_id=run.request.model_id,
        endpoint_name=endpoint.name if endpoint else None,
        endpoint_id=endpoint.id if endpoint else None,
        rotation_id=rotation.id,
        key_type=rotation.key_type,
        trigger=rotation.trigger,
        status=rotation.status,
        secret_id=rotation.secret_id,
        expires_on=rotation.expires_on,
        error=rotation.error,
    ).to_wire()
    event_id = f"{run.id}/{kind.value}/{rotation.id}"
    return _envelope(kind, event_id=event_id, subject=run.id, time=time, source=source, data=data)


# A rejected event for a malformed message echoes what the message held, so it is bounded to fit any queue message
# (Azure's 64 KiB, base64 included: 16 KiB of JSON becomes under 22 KiB) and a webhook body. Budgets are in
# serialised characters (json.dumps escapes everything beyond ASCII, so characters are bytes).
MAX_REJECTED_EVENT_BYTES = 16 * 1024
_ECHO_BUDGETS = {"messageId": 256, "ticket": 1024, "code": 128, "message": 4096, "field": 128, "detail": 768}
MAX_ECHOED_DETAILS = 8
TRUNCATED = "…"


def malformed_request_rejected_event(
    *,
    message_id: str,
    ticket: str,
    code: str,
    message: str,
    time: datetime,
    details: Sequence[Mapping[str, str]] = (),
    source: str = DEFAULT_SOURCE,
) -> dict[str, Any]:
    """The rejected event for a queue message that never became a run (subject = the queue message id).

    Every echoed value is cut (ending in "…") to its budget and at most MAX_ECHOED_DETAILS details are kept (the
    last saying how many were left out), so the event never exceeds MAX_REJECTED_EVENT_BYTES serialised, whatever
    the message held.
    """
    subject = _clipped(message_id, "messageId")
    kept = [
        {
            "field": _clipped(str(item.get("field", "")), "field"),
            "message": _clipped(str(item.get("message", "")), "detail"),
        }
        for item in list(details)[:MAX_ECHOED_DETAILS]
    ]
    if len(details) > MAX_ECHOED_DETAILS:
        left_out = len(details) - MAX_ECHOED_DETAILS + 1
        kept[-1] = {"field": "(more)", "message": f"{left_out} more errors left out."}
    data = RejectedMessageEventData.model_validate(
        {
            "runId": None,
            "ticket": _clipped(ticket, "ticket"),
            "status": RunStatus.REJECTED.value,
            "error": {"code": _clipped(code, "code"), "message": _clipped(message, "message"), "details": kept},
        }
    ).to_wire()
    event = _envelope(
        EventKind.REJECTED,
        event_id=f"message-{subject}/{EventKind.REJECTED.value}",
        subject=subject,
        time=time,
        source=source,
        data=data,
    )
    # The budgets keep it within the bound; this keeps the promise should a budget or the envelope ever grow.
    while len(json.dumps(event)) > MAX_REJECTED_EVENT_BYTES and data["error"]["details"]:
        data["error"]["details"].pop()
    return event


def _clipped(text: str, budget: str) -> str:
    """`text`, cut so that its JSON form (escapes counted) takes at most its budget's characters."""
    limit = _ECHO_BUDGETS[budget]
    if len(text) * 12 + 2 <= limit or len(json.dumps(text)) <= limit:  # 12: an escaped astral character
        return text
    low, high = 0, min(len(text), limit)  # the longest prefix that fits, found by halving
    while low < high:
        middle = (low + high + 1) // 2
        if len(json.dumps(text[:middle] + TRUNCATED)) <= limit:
            low = middle
        else:
            high = middle - 1
    return text[:low] + TRUNCATED


def _run_fields(run: RunRecord, requester: RunRequester | None) -> dict[str, Any]:
    """The members every event about `run` carries, for the request it goes to (a joiner's own ticket)."""
    return {
        "run_id": run.id,
        "deployment_id": run.deployment_id,
        "operation": run.operation,
        "ticket": requester.ticket if requester else run.ticket,
        "status": run.status,
        "workspace_id": run.request.workspace_id,
        "model_id": run.request.model_id,
    }


def _run_event(
    kind: EventKind,
    run: RunRecord,
    requester: RunRequester | None,
    *,
    time: datetime,
    source: str,
    data: dict[str, Any],
) -> dict[str, Any]:
    """`run`'s event of `kind` to one requester: `<run>/<kind>` for the starter, `<run>/<kind>/<request id>` for a
    joiner, so whoever builds it again (a repeated announce, the joiner itself) builds the same id."""
    event_id = f"{run.id}/{kind.value}"
    if requester is not None:
        assert requester.request_id, "a joiner's events are named by its request id"
        event_id += f"/{requester.request_id}"
    return _envelope(kind, event_id=event_id, subject=run.id, time=time, source=source, data=data)


def _envelope(
    kind: EventKind, *, event_id: str, subject: str, time: datetime, source: str, data: dict[str, Any]
) -> dict[str, Any]:
    if time.tzinfo is None:
        raise ValueError("CloudEvents time must carry a time zone (use UTC).")
    return {
        "specversion": SPEC_VERSION,
        "id": event_id,
        "source": source,
        "type": kind.event_type,
        "subject": subject,
        "time": time.isoformat().replace("+00:00", "Z"),
        "datacontenttype": "application/json",
        "data": data,
    }
