"""Typed models of the broker's resources: deployments, runs, key rotations, findings, models and their availability,
problems.

Each model is a frozen dataclass read from the broker's JSON by `from_dict`, which ignores members it does not know,
so a newer broker adding fields does not break an older client; `as_dict()` gives back the JSON exactly as the broker
sent it (what `broker --output json` prints). Sets of values the broker may grow (run statuses, phases) are str
enums, and a value this client does not know yet stays a plain string. The client owns these models: it shares no
code with the broker.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any, Self, TypeVar

_Enum = TypeVar("_Enum", bound=StrEnum)
_Item = TypeVar("_Item")


class RunStatus(StrEnum):
    ACCEPTED = "Accepted"
    PENDING_APPROVAL = "PendingApproval"
    VALIDATING = "Validating"
    SUBSCRIBING = "Subscribing"
    PROVISIONING = "Provisioning"
    STORING_KEYS = "StoringKeys"
    VERIFYING = "Verifying"
    DELETING = "Deleting"
    SUCCEEDED = "Succeeded"
    REJECTED = "Rejected"
    FAILED = "Failed"
    DELETED = "Deleted"


TERMINAL_RUN_STATUSES = frozenset({RunStatus.SUCCEEDED, RunStatus.REJECTED, RunStatus.FAILED, RunStatus.DELETED})
UNSUCCESSFUL_RUN_STATUSES = frozenset({RunStatus.REJECTED, RunStatus.FAILED})


class DeploymentPhase(StrEnum):
    PROVISIONING = "Provisioning"
    READY = "Ready"
    DEGRADED = "Degraded"
    DELETING = "Deleting"
    DELETED = "Deleted"
    FAILED = "Failed"


class KeyType(StrEnum):
    PRIMARY = "primary"
    SECONDARY = "secondary"


class KeyRotationStatus(StrEnum):
    PENDING = "Pending"
    REGENERATING = "Regenerating"
    ROTATED = "Rotated"
    FAILED = "Failed"


def _enum(kind: type[_Enum], value: Any) -> _Enum | str:
    try:
        return kind(value)
    except ValueError:
        return str(value)


def _time(value: Any) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


def _required_time(value: Any) -> datetime:
    if not value:
        raise ValueError("a required timestamp is missing")
    return datetime.fromisoformat(value)


def _each(values: Iterable[Any] | None, read: Callable[[Any], _Item]) -> tuple[_Item, ...]:
    return tuple(read(value) for value in values or ())


def _optional(value: Mapping[str, Any] | None, read: Callable[[Mapping[str, Any]], _Item]) -> _Item | None:
    return None if value is None else read(value)


@dataclass(frozen=True)
class _Model:
    _raw: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False, kw_only=True)

    def as_dict(self) -> dict[str, Any]:
        """The JSON the broker sent for this value (a copy), with every member, known to this client or not."""
        return copy.deepcopy(dict(self._raw))


@dataclass(frozen=True)
class Problem(_Model):
    """An RFC 9457 problem; `extensions` holds the other members (`errors`, `runId`, `supportedRegions`, ...)."""

    type: str
    title: str | None
    status: int | None
    detail: str | None = None
    instance: str | None = None
    extensions: Mapping[str, Any] = field(default_factory=dict)

    @property
    def slug(self) -> str:
        """The stable failure code: the last segment of `type` (`region-unsupported`), also a run error's code."""
        return self.type.rstrip("/").rsplit("/", 1)[-1]

    @property
    def run_id(self) -> str | None:
        """The run that recorded this refusal (or the run it is about), when the broker recorded one."""
        value = self.extensions.get("runId")
        return value if isinstance(value, str) and value else None

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Self:
        standard = {"type", "title", "status", "detail", "instance"}
        status = data.get("status")
        return cls(
            # RFC 9457: a problem without a type is "about:blank".
            type=str(data.get("type") or "about:blank"),
            title=data.get("title"),
            status=status if isinstance(status, int) else None,
            detail=data.get("detail"),
            instance=data.get("instance"),
            extensions={name: value for name, value in data.items() if name not in standard},
            _raw=data,
        )


@dataclass(frozen=True)
class RunError(_Model):
    """Why a run was rejected or failed: a problem slug or Azure's error code, and a message."""

    code: str
    message: str
    details: tuple[Mapping[str, Any], ...] = ()

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Self:
        return cls(code=data["code"], message=data["message"], details=tuple(data.get("details") or ()), _raw=data)


@dataclass(frozen=True)
class Endpoint(_Model):
    name: str
    id: str
    scoring_uri: str | None = None

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Self:
        return cls(name=data["name"], id=data["id"], scoring_uri=data.get("scoringUri"), _raw=data)


@dataclass(frozen=True)
class SecretIds(_Model):
    """Key Vault secret ids of the endpoint's two keys; the broker never returns key values."""

    primary: str
    secondary: str

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Self:
        return cls(primary=data["primary"], secondary=data["secondary"], _raw=data)


@dataclass(frozen=True)
class RunStep(_Model):
    status: RunStatus | str
    at: datetime
    detail: str | None = None

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Self:
        return cls(
            status=_enum(RunStatus, data["status"]), at=_required_time(data["at"]), detail=data.get("detail"), _raw=data
        )


@dataclass(frozen=True)
class KeyRotation(_Model):
    """One regeneration of one endpoint key, recorded on the run whose secrets hold the keys."""

    id: str
    key_type: KeyType | str
    status: KeyRotationStatus | str
    trigger: str
    requested_at: datetime
    requested_by: str | None = None
    reason: str | None = None
    secret_id: str | None = None
    expires_on: datetime | None = None
    completed_at: datetime | None = None
    error: RunError | None = None

    @property
    def in_progress(self) -> bool:
        return self.status in (KeyRotationStatus.PENDING, KeyRotationStatus.REGENERATING)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Self:
        return cls(
            id=data["id"],
            key_type=_enum(KeyType, data["keyType"]),
            status=_enum(KeyRotationStatus, data["status"]),
            trigger=data.get("trigger", ""),
            requested_at=_required_time(data["requestedAt"]),
            requested_by=data.get("requestedBy"),
            reason=data.get("reason"),
            secret_id=data.get("secretId"),
            expires_on=_time(data.get("expiresOn")),
            completed_at=_time(data.get("completedAt")),
            error=_optional(data.get("error"), RunError.from_dict),
            _raw=data,
        )


@dataclass(frozen=True)
class JoinedRequest(_Model):
    """A request that joined a run already in flight."""

    caller: str
    at: datetime
    ticket: str | None = None

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Self:
        return cls(caller=data["caller"], at=_required_time(data["at"]), ticket=data.get("ticket"), _raw=data)


@dataclass(frozen=True)
class CrossRegion(_Model):
    """The hub project holding the endpoint when the requester's region does not offer the model."""

    hub_workspace_id: str
    connection_id: str | None = None

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Self:
        connection = data.get("connection") or {}
        return cls(hub_workspace_id=data["hubWorkspaceId"], connection_id=connection.get("id"), _raw=data)


@dataclass(frozen=True)
class Run(_Model):
    """A run: one operation (deploy, repair, delete) on a deployment, the status monitor `Operation-Location` names."""

    id: str
    status: RunStatus | str
    operation: str
    caller: str
    request: Mapping[str, Any]
    steps: tuple[RunStep, ...]
    created_at: datetime
    updated_at: datetime
    ticket: str | None = None
    deployment_id: str | None = None
    endpoint: Endpoint | None = None
    secret_ids: SecretIds | None = None
    error: RunError | None = None
    delete_subscription: bool = False
    joined: tuple[JoinedRequest, ...] = ()
    joined_count: int = 0
    warnings: tuple[str, ...] = ()
    cross_region: CrossRegion | None = None
    key_rotations: tuple[KeyRotation, ...] = ()
    resource_location: str | None = None

    @property
    def is_terminal(self) -> bool:
        return self.status in TERMINAL_RUN_STATUSES

    @property
    def workspace_id(self) -> str | None:
        return self.request.get("workspaceId")

    @property
    def model_id(self) -> str | None:
        return self.request.get("modelId")

    def key_rotation(self, rotation_id: str) -> KeyRotation | None:
        return next((rotation for rotation in self.key_rotations if rotation.id == rotation_id), None)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Self:
        return cls(
            id=data["id"],
            status=_enum(RunStatus, data["status"]),
            operation=data.get("operation", "deploy"),
            caller=data.get("caller", ""),
            request=data.get("request") or {},
            steps=_each(data.get("steps"), RunStep.from_dict),
            created_at=_required_time(data["createdAt"]),
            updated_at=_required_time(data["updatedAt"]),
            ticket=data.get("ticket"),
            deployment_id=data.get("deploymentId"),
            endpoint=_optional(data.get("endpoint"), Endpoint.from_dict),
            secret_ids=_optional(data.get("secretIds"), SecretIds.from_dict),
            error=_optional(data.get("error"), RunError.from_dict),
            delete_subscription=bool(data.get("deleteSubscription", False)),
            joined=_each(data.get("joined"), JoinedRequest.from_dict),
            joined_count=int(data.get("joinedCount") or 0),
            warnings=tuple(data.get("warnings") or ()),
            cross_region=_optional(data.get("crossRegion"), CrossRegion.from_dict),
            key_rotations=_each(data.get("keyRotations"), KeyRotation.from_dict),
            resource_location=data.get("resourceLocation"),
            _raw=data,
        )


@dataclass(frozen=True)
class Condition(_Model):
    """One observation of the deployment in Azure: `SubscriptionReady`, `EndpointReady`, `KeysStored`, `Healthy`."""

    type: str
    status: str
    reason: str
    message: str
    last_transition_time: datetime | None = None

    @property
    def is_true(self) -> bool:
        return self.status == "True"

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Self:
        return cls(
            type=data["type"],
            status=data["status"],
            reason=data.get("reason", ""),
            message=data.get("message", ""),
            last_transition_time=_time(data.get("lastTransitionTime")),
            _raw=data,
        )


@dataclass(frozen=True)
class DeploymentSpec(_Model):
    """What the deployment was asked to be."""

    workspace_id: str
    model_id: str
    endpoint_name: str
    content_safety: str
    tags: Mapping[str, str] | None = None
    cross_region_hub: str | None = None

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Self:
        return cls(
            workspace_id=data["workspaceId"],
            model_id=data["modelId"],
            endpoint_name=data["endpointName"],
            content_safety=data.get("contentSafety", "Enabled"),
            tags=data.get("tags"),
            cross_region_hub=data.get("crossRegionHub"),
            _raw=data,
        )


@dataclass(frozen=True)
class DeploymentRequester(_Model):
    """One request that asked for the deployment, and how the broker answered it (`created`, `joined`, ...)."""

    caller: str
    outcome: str
    at: datetime
    ticket: str | None = None
    run_id: str | None = None

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Self:
        return cls(
            caller=data["caller"],
            outcome=data["outcome"],
            at=_required_time(data["at"]),
            ticket=data.get("ticket"),
            run_id=data.get("runId"),
            _raw=data,
        )


@dataclass(frozen=True)
class DeploymentStatus(_Model):
    """What Azure was last seen to hold: the phase and four conditions, recomputed from Azure's answers."""

    phase: DeploymentPhase | str
    conditions: tuple[Condition, ...] = ()
    endpoint: Endpoint | None = None
    secret_ids: SecretIds | None = None
    current_run_id: str | None = None
    keys_run_id: str | None = None
    delete_run_id: str | None = None
    open_findings: tuple[str, ...] = ()
    error: RunError | None = None
    observed_at: datetime | None = None

    def condition(self, kind: str) -> Condition | None:
        return next((condition for condition in self.conditions if condition.type == kind), None)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Self:
        return cls(
            phase=_enum(DeploymentPhase, data["phase"]),
            conditions=_each(data.get("conditions"), Condition.from_dict),
            endpoint=_optional(data.get("endpoint"), Endpoint.from_dict),
            secret_ids=_optional(data.get("secretIds"), SecretIds.from_dict),
            current_run_id=data.get("currentRunId"),
            keys_run_id=data.get("keysRunId"),
            delete_run_id=data.get("deleteRunId"),
            open_findings=tuple(data.get("openFindings") or ()),
            error=_optional(data.get("error"), RunError.from_dict),
            observed_at=_time(data.get("observedAt")),
            _raw=data,
        )


@dataclass(frozen=True)
class Deployment(_Model):
    """A deployment, one per (project, model): its spec, its status, and the requests that asked for it."""

    id: str
    spec: DeploymentSpec
    status: DeploymentStatus
    created_at: datetime
    updated_at: datetime
    requests: tuple[DeploymentRequester, ...] = ()
    request_count: int = 0

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Self:
        return cls(
            id=data["id"],
            spec=DeploymentSpec.from_dict(data["spec"]),
            status=DeploymentStatus.from_dict(data["status"]),
            created_at=_required_time(data["createdAt"]),
            updated_at=_required_time(data["updatedAt"]),
            requests=_each(data.get("requests"), DeploymentRequester.from_dict),
            request_count=int(data.get("requestCount") or 0),
            _raw=data,
        )


@dataclass(frozen=True)
class FindingAction(_Model):
    """One remediation step taken, planned (dry run), skipped or failed on a finding."""

    at: datetime
    action: str
    outcome: str
    dry_run: bool = False
    detail: str = ""

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Self:
        return cls(
            at=_required_time(data["at"]),
            action=data["action"],
            outcome=data["outcome"],
            dry_run=bool(data.get("dryRun", False)),
            detail=data.get("detail", ""),
            _raw=data,
        )


@dataclass(frozen=True)
class Finding(_Model):
    """What the hygiene scan found wrong with one resource, and the call that fixes it (`recommended_action`)."""

    key: str
    rule: str
    severity: str
    state: str
    resource_id: str
    summary: str
    first_seen: datetime
    last_seen: datetime
    workspace_id: str | None = None
    evidence: Mapping[str, Any] = field(default_factory=dict)
    occurrence: int = 1
    opened_at: datetime | None = None
    resolved_at: datetime | None = None
    endpoint_name: str | None = None
    deployment_id: str | None = None
    run_id: str | None = None
    tickets: tuple[str, ...] = ()
    recommended_action: str = ""
    actions: tuple[FindingAction, ...] = ()

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Self:
        return cls(
            key=data["key"],
            rule=data["rule"],
            severity=data["severity"],
            state=data["state"],
            resource_id=data["resourceId"],
            summary=data.get("summary", ""),
            first_seen=_required_time(data["firstSeen"]),
            last_seen=_required_time(data["lastSeen"]),
            workspace_id=data.get("workspaceId"),
            evidence=data.get("evidence") or {},
            occurrence=int(data.get("occurrence") or 1),
            opened_at=_time(data.get("openedAt")),
            resolved_at=_time(data.get("resolvedAt")),
            endpoint_name=data.get("endpointName"),
            deployment_id=data.get("deploymentId"),
            run_id=data.get("runId"),
            tickets=tuple(data.get("tickets") or ()),
            recommended_action=data.get("recommendedAction", ""),
            actions=_each(data.get("actions"), FindingAction.from_dict),
            _raw=data,
        )


@dataclass(frozen=True)
class WorkspaceFit(_Model):
    """Whether a workspace's region offers a model."""

    id: str
    location: str
    supported: bool | None

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Self:
        return cls(id=data["id"], location=data["location"], supported=data.get("supported"), _raw=data)


@dataclass(frozen=True)
class ModelAvailability(_Model):
    """Where a model deploys and how it is sold; with a workspace, whether that workspace's region fits."""

    model_id: str
    sold_directly: bool
    requires_marketplace_subscription: bool
    source: str = ""
    explanation: str = ""
    # None: the catalog does not say (an uncatalogued model the prefix rule classified).
    supported_regions: tuple[str, ...] | None = None
    workspace: WorkspaceFit | None = None

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Self:
        regions = data.get("supportedRegions")
        return cls(
            model_id=data["modelId"],
            sold_directly=bool(data["soldDirectly"]),
            requires_marketplace_subscription=bool(data["requiresMarketplaceSubscription"]),
            source=data.get("source", ""),
            explanation=data.get("explanation", ""),
            supported_regions=None if regions is None else tuple(regions),
            workspace=_optional(data.get("workspace"), WorkspaceFit.from_dict),
            _raw=data,
        )


@dataclass(frozen=True)
class PolicyVerdict(_Model):
    """A policy's answer: allowed, or the rule that refuses and why."""

    allowed: bool
    rule: str | None = None
    reason: str | None = None

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Self:
        return cls(allowed=bool(data["allowed"]), rule=data.get("rule"), reason=data.get("reason"), _raw=data)


@dataclass(frozen=True)
class CrossRegionHub(_Model):
    """The configured hub project, in a region that offers the model, a cross-region request would deploy in."""

    workspace_id: str
    location: str

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Self:
        return cls(workspace_id=data["workspaceId"], location=data["location"], _raw=data)


@dataclass(frozen=True)
class ModelRegion(_Model):
    """Whether the project's region offers the model (None: the catalog does not know, or the broker did not read
    the region of a project it does not deploy into), and where the model is offered."""

    location: str | None
    offered: bool | None
    supported_regions: tuple[str, ...] | None = None
    cross_region_hub: CrossRegionHub | None = None

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Self:
        regions = data.get("supportedRegions")
        return cls(
            location=data.get("location"),
            offered=data.get("offered"),
            supported_regions=None if regions is None else tuple(regions),
            cross_region_hub=_optional(data.get("crossRegionHub"), CrossRegionHub.from_dict),
            _raw=data,
        )


@dataclass(frozen=True)
class ApprovalNeed(_Model):
    """Whether a new deployment of the model into the project would wait for an approver, by which rule and why."""

    required: bool
    rule: str | None = None
    reason: str | None = None

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Self:
        return cls(required=bool(data["required"]), rule=data.get("rule"), reason=data.get("reason"), _raw=data)


@dataclass(frozen=True)
class ModelListing(_Model):
    """One catalogued model as a project sees it (`list_models`): how it is sold, whether the project's region
    offers it, whether the approved-model policy allows it, whether the broker deploys into the project at all
    (`workspace`), and whether an approver must agree."""

    model_id: str
    name: str
    publisher: str
    sold_directly: bool
    requires_marketplace_subscription: bool
    region: ModelRegion
    policy: PolicyVerdict
    workspace: PolicyVerdict
    approval: ApprovalNeed
    registry: str = ""
    family: str | None = None

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Self:
        return cls(
            model_id=data["modelId"],
            name=data.get("name", ""),
            publisher=data["publisher"],
            sold_directly=bool(data["soldDirectly"]),
            requires_marketplace_subscription=bool(data["requiresMarketplaceSubscription"]),
            region=ModelRegion.from_dict(data["region"]),
            policy=PolicyVerdict.from_dict(data["policy"]),
            workspace=PolicyVerdict.from_dict(data["workspace"]),
            approval=ApprovalNeed.from_dict(data["approval"]),
            registry=data.get("registry", ""),
            family=data.get("family"),
            _raw=data,
        )


class WhatIfVerdict(StrEnum):
    ALLOWED = "allowed"
    REJECTED = "rejected"
    NEEDS_APPROVAL = "needsApproval"


@dataclass(frozen=True)
class WhatIfCheck(_Model):
    """One preflight check as the request would meet it: `passed`, `failed`, `skipped` or `notNeeded`."""

    name: str
    outcome: str
    detail: str
    # The failure's problem slug, and for a skipped check the check that failed first.
    problem_slug: str | None = None
    blocked_by: str | None = None

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Self:
        problem = data.get("problem") or {}
        return cls(
            name=data["name"],
            outcome=data["outcome"],
            detail=data.get("detail", ""),
            problem_slug=problem.get("slug"),
            blocked_by=data.get("blockedBy"),
            _raw=data,
        )


@dataclass(frozen=True)
class WhatIfPlanStep(_Model):
    """One thing a run would do in Azure, and whether it writes (`always`, `ifDifferent`, `none`)."""

    action: str
    target: str
    write: str
    description: str

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Self:
        return cls(
            action=data["action"],
            target=data["target"],
            write=data["write"],
            description=data.get("description", ""),
            _raw=data,
        )


@dataclass(frozen=True)
class WhatIf(_Model):
    """What a deployment request would do now, written nowhere: the verdict, the checks, and the plan."""

    verdict: WhatIfVerdict | str
    outcome: str
    deployment_id: str
    summary: str
    checks: tuple[WhatIfCheck, ...] = ()
    plan: tuple[WhatIfPlanStep, ...] = ()
    # The run a request would join, and why one would wait for an approver.
    run_id: str | None = None
    approval_reason: str | None = None
    warnings: tuple[str, ...] = ()

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Self:
        return cls(
            verdict=_enum(WhatIfVerdict, data["verdict"]),
            outcome=data["outcome"],
            deployment_id=data["deploymentId"],
            summary=data.get("summary", ""),
            checks=_each(data.get("checks"), WhatIfCheck.from_dict),
            plan=_each(data.get("plan"), WhatIfPlanStep.from_dict),
            run_id=(data.get("run") or {}).get("id"),
            approval_reason=(data.get("approval") or {}).get("reason"),
            warnings=tuple(data.get("warnings") or ()),
            _raw=data,
        )
