"""The Deployment resource: one per (project, model), the unit users manage; runs are operations on it.

Like a Kubernetes object or an Azure Service Operator resource it has a `spec` (what was asked for) and a `status`
(what Azure was last seen to hold): a phase, and four conditions recomputed from Azure's answers, never assumed.
`status.currentRunId` doubles as the single-flight claim: a run may write to Azure only while it is the
deployment's current run, and the store changes it with ETag concurrency. Like runs, deployments are immutable
values; time always comes from the caller.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from datetime import datetime
from enum import StrEnum
from typing import Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict
from pydantic.alias_generators import to_camel

from shared.azure_ids import WorkspaceId
from shared.model_ids import ModelId
from shared.requests import ContentSafety, DeploymentRequest
from shared.runs import EndpointInfo, RunError, RunRecord, RunStatus, SecretIds

# Every request is kept in the ticket index; the document keeps the newest ones inline, so it stays small. Requests
# that joined a run are kept in joiner rows instead and added to the history when it is read for the API.
MAX_INLINE_REQUESTS = 50
DEPLOYMENT_ID_HASH_LENGTH = 10


class Phase(StrEnum):
    PENDING_APPROVAL = "PendingApproval"
    PROVISIONING = "Provisioning"
    READY = "Ready"
    DEGRADED = "Degraded"
    DELETING = "Deleting"
    DELETED = "Deleted"
    FAILED = "Failed"


# A run holds the claim and has not ended: requests join it, hygiene leaves the deployment to it. A deployment
# PendingApproval holds nothing in Azure yet; its run waits for an approver.
IN_FLIGHT_PHASES = frozenset({Phase.PENDING_APPROVAL, Phase.PROVISIONING, Phase.DELETING})


class ConditionType(StrEnum):
    SUBSCRIPTION_READY = "SubscriptionReady"
    ENDPOINT_READY = "EndpointReady"
    KEYS_STORED = "KeysStored"
    HEALTHY = "Healthy"


ConditionStatus = Literal["True", "False", "Unknown"]
RequestOutcome = Literal["created", "joined", "repair", "ready", "deleted"]


class _Value(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, validate_by_name=True, extra="forbid", frozen=True)


class Condition(_Value):
    type: ConditionType
    status: ConditionStatus
    reason: str
    message: str
    last_transition_time: AwareDatetime

    @property
    def is_true(self) -> bool:
        return self.status == "True"


class DeploymentSpec(_Value):
    """What the deployment should be. A request joins an existing deployment only when it asks for the same."""

    workspace_id: str
    model_id: str
    endpoint_name: str
    content_safety: ContentSafety
    tags: dict[str, str] | None = None
    # The hub project holding the endpoint when the requester's region does not offer the model.
    cross_region_hub: str | None = None

    def differences(self, wanted: DeploymentSpec) -> list[str]:
        """The fields in which `wanted` asks for something else; tags count only when `wanted` names some."""
        names = ["endpoint_name", "content_safety", "cross_region_hub"]
        if wanted.tags is not None:
            names.append("tags")
        return [
            to_camel(name) for name in names if _comparable(getattr(self, name)) != _comparable(getattr(wanted, name))
        ]

    def to_request(self, *, ticket: str | None = None) -> DeploymentRequest:
        """The request that makes this spec (runs store one; the plan is derived from it)."""
        return DeploymentRequest(
            workspace_id=self.workspace_id,
            model_id=self.model_id,
            endpoint_name=self.endpoint_name,
            content_safety=self.content_safety,
            tags=self.tags,
            ticket=ticket,
            allow_cross_region=self.cross_region_hub is not None,
        )


class DeploymentRequester(_Value):
    """One request that asked for this deployment: who, under which ticket, and what the broker did with it."""

    caller: str
    ticket: str | None = None
    run_id: str | None = None
    outcome: RequestOutcome
    at: AwareDatetime


class DeploymentStatus(_Value):
    phase: Phase
    conditions: tuple[Condition, ...] = ()
    endpoint: EndpointInfo | None = None
    secret_ids: SecretIds | None = None
    current_run_id: str | None = None
    # The run whose Key Vault secrets hold the endpoint's keys; key rotations are recorded on it.
    keys_run_id: str | None = None
    delete_run_id: str | None = None
    open_findings: tuple[str, ...] = ()
    error: RunError | None = None
    observed_at: AwareDatetime | None = None


class Deployment(_Value):
    id: str
    spec: DeploymentSpec
    status: DeploymentStatus
    requests: tuple[DeploymentRequester, ...] = ()
    request_count: int = 0
    created_at: AwareDatetime
    updated_at: AwareDatetime

    @classmethod
    def new(
        cls,
        spec: DeploymentSpec,
        *,
        run_id: str,
        requester: DeploymentRequester,
        at: datetime,
        phase: Phase = Phase.PROVISIONING,
    ) -> Deployment:
        """A deployment whose first run, `run_id`, is about to start (or to wait for approval, `phase`)."""
        return cls(
            id=deployment_id_of(spec),
            spec=spec,
            status=DeploymentStatus(phase=phase, current_run_id=run_id, conditions=pending(at)),
            requests=(requester,),
            request_count=1,
            created_at=at,
            updated_at=at,
        )

    def recreated(
        self,
        spec: DeploymentSpec,
        *,
        run_id: str,
        requester: DeploymentRequester,
        at: datetime,
        phase: Phase = Phase.PROVISIONING,
    ) -> Deployment:
        """The same deployment id made again after it was deleted or failed: a fresh spec, status and history."""
        fresh = Deployment.new(spec, run_id=run_id, requester=requester, at=at, phase=phase)
        return fresh.model_copy(update={"request_count": self.request_count + 1})

    def changed(self, *, at: datetime, **status_changes: Any) -> Deployment:
        status = DeploymentStatus.model_validate({**dict(self.status), **status_changes})
        return self.model_copy(update={"status": status, "updated_at": at})

    def with_request(self, requester: DeploymentRequester, *, at: datetime) -> Deployment:
        requests = (*self.requests, requester)[-MAX_INLINE_REQUESTS:]
        return self.model_copy(update={"requests": requests, "request_count": self.request_count + 1, "updated_at": at})

    def with_joined(self, joined: Iterable[DeploymentRequester]) -> Deployment:
        """The deployment with the requests that joined its runs (kept in joiner rows, not on it) in its history: the
        newest MAX_INLINE_REQUESTS inline and all of them counted. Joiners from before it was made afresh
        (`recreated`) belong to the history it forgot."""
        since = [requester for requester in joined if requester.at >= self.created_at]
        merged = sorted((*self.requests, *since), key=lambda requester: requester.at)[-MAX_INLINE_REQUESTS:]
        return self.model_copy(update={"requests": tuple(merged), "request_count": self.request_count + len(since)})

    def with_conditions(self, conditions: Iterable[Condition], *, at: datetime) -> Deployment:
        """Conditions replaced by type; a condition keeps its lastTransitionTime while its status stays."""
        merged = {condition.type: condition for condition in self.status.conditions}
        for seen in conditions:
            before = merged.get(seen.type)
            kept = before is not None and before.status == seen.status
            merged[seen.type] = (
                seen.model_copy(update={"last_transition_time": before.last_transition_time}) if kept else seen
            )
        ordered = tuple(merged[kind] for kind in ConditionType if kind in merged)
        return self.changed(at=at, conditions=ordered, observed_at=at)

    def run_finished(
        self, run: RunRecord, *, at: datetime, conditions: Iterable[Condition] = (), keys_written: bool = False
    ) -> Deployment:
        """The deployment once its current run `run` has ended; unchanged when `run` is not its current run."""
        if self.status.current_run_id != run.id or not run.is_terminal:
            return self
        updated = self.with_conditions(conditions, at=at) if conditions else self
        if run.status is RunStatus.SUCCEEDED:
            return updated.changed(
                at=at,
                phase=Phase.READY,
                endpoint=run.endpoint,
                secret_ids=run.secret_ids,
                keys_run_id=run.id if keys_written else self.status.keys_run_id or run.id,
                error=None,
            )
        if run.status is RunStatus.DELETED:
            gone = [condition(kind, "False", "Deleted", f"Deleted by run {run.id}.", at=at) for kind in ConditionType]
            return updated.with_conditions(gone, at=at).changed(
                at=at, phase=Phase.DELETED, delete_run_id=run.id, secret_ids=None, error=None
            )
        # A failed repair leaves the deployment as broken as it was; a failed deploy or delete leaves it Failed, and so
        # does a rejected deploy (an approver said no): Failed is gone, so the next request makes it afresh.
        phase = Phase.DEGRADED if run.operation == "repair" else Phase.FAILED
        return updated.changed(at=at, phase=phase, error=run.error)

    def condition(self, kind: ConditionType) -> Condition | None:
        return next((condition for condition in self.status.conditions if condition.type is kind), None)

    @property
    def all_conditions_true(self) -> bool:
        return len(self.status.conditions) == len(ConditionType) and all(c.is_true for c in self.status.conditions)

    @property
    def workspace(self) -> WorkspaceId:
        return WorkspaceId.parse(self.spec.workspace_id)

    @property
    def in_flight(self) -> bool:
        """Whether its current run holds it: deploying, waiting for approval, or tearing it down."""
        return self.status.phase in IN_FLIGHT_PHASES

    @property
    def is_gone(self) -> bool:
        """Deleted, or failed before it held anything usable: the next request makes it afresh."""
        return self.status.phase in (Phase.DELETED, Phase.FAILED)

    def to_public_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json", by_alias=True)

    def to_storage_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json", by_alias=True)

    @classmethod
    def from_storage_dict(cls, data: dict[str, Any]) -> Deployment:
        return cls.model_validate(data)


def deployment_id(workspace: WorkspaceId, model: ModelId) -> str:
    """`<workspace>--<model>--<hash>`, lowercase: readable, URL-safe, and the same for the same (project, model)."""
    digest = hashlib.sha256(f"{workspace.key}\n{model.key}".encode()).hexdigest()[:DEPLOYMENT_ID_HASH_LENGTH]
    return f"{workspace.name.lower()}--{model.name.lower()}--{digest}"


def deployment_id_of(spec: DeploymentSpec) -> str:
    request = spec.to_request()
    return deployment_id(request.workspace, request.model)


def condition(kind: ConditionType, status: ConditionStatus, reason: str, message: str, *, at: datetime) -> Condition:
    return Condition(type=kind, status=status, reason=reason, message=message, last_transition_time=at)


def pending(at: datetime) -> tuple[Condition, ...]:
    return tuple(condition(kind, "Unknown", "Pending", "Not observed yet.", at=at) for kind in ConditionType)


def _comparable(value: Any) -> Any:
    return value.lower() if isinstance(value, str) else value
