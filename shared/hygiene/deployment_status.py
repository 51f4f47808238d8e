"""What a scan tells the broker's Deployment resources: their Healthy condition, phase and open findings.

After the findings are written, each deployment a finding is about (or that still lists open findings) is updated
with a change function, so a concurrent writer is re-read and the change re-applied (ETag concurrency):
- endpoint-unhealthy open for its endpoint: Healthy=False, with the reason the evidence gives (SubscriptionMissing
  when the subscription no longer resolves, SubscriptionSuspended, EndpointSuspended, ...), and Ready -> Degraded;
- that finding resolved: Healthy=True (the endpoint's state as reason, e.g. Online), and Degraded -> Ready when
  every other condition is True too; if the endpoint itself is gone, Healthy=False (EndpointMissing) instead;
- `status.openFindings`: the keys of the open findings about it.
A deployment a run owns (Provisioning, Deleting) is left alone: the run observes Azure itself and ends by writing
the conditions it saw. A deployment that cannot be written is an error in the scan report, never the scan's end.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

from shared.deployment import IN_FLIGHT_PHASES, Condition, ConditionType, Deployment, Phase, condition
from shared.hygiene.context import ScanContext, Source, endpoint_workspace
from shared.hygiene.findings import FindingRecord, FindingState, finding_key
from shared.hygiene.inventory import CallFailure
from shared.hygiene.rules import ENDPOINT_STATE, SUBSCRIPTION_MISSING, SUBSCRIPTION_STATUS, EndpointUnhealthy

LOGGER = logging.getLogger(__name__)
# Conditions describe what Azure holds; a deleted deployment holds nothing, so only its open findings are kept.
NO_CONDITIONS = frozenset({Phase.DELETED})


class DeploymentWriterPort(Protocol):
    """RunStore.update_deployment: apply `change` to the latest deployment, retrying on ETag conflicts."""

    def update_deployment(self, deployment_id: str, change: Callable[[Deployment], Deployment]) -> Deployment: ...


@dataclass
class DeploymentTally:
    updated: int = 0
    owned_by_run: int = 0
    failed: int = 0
    ids: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, object]:
        return {"updated": self.updated, "ownedByRun": self.owned_by_run, "failed": self.failed}


def update_deployments(
    context: ScanContext,
    writer: DeploymentWriterPort,
    records: Mapping[str, FindingRecord],
    *,
    now: datetime,
) -> DeploymentTally:
    """Write what this scan's findings say to the deployments they are about.

    `records` are every live finding as this scan left it: those it wrote, and open ones it could not judge.
    """
    tally = DeploymentTally()
    if not context.available(Source.DEPLOYMENTS):
        return tally
    by_deployment: dict[str, list[FindingRecord]] = {}
    for record in records.values():
        if record.deployment_id:
            by_deployment.setdefault(record.deployment_id, []).append(record)
    for deployment in context.deployments or ():
        linked = by_deployment.get(deployment.id, [])
        if not linked and not deployment.status.open_findings:
            continue
        if deployment.status.phase in IN_FLIGHT_PHASES:
            tally.owned_by_run += 1
            continue
        _update(context, writer, deployment, linked, tally, now=now)
    return tally


def _update(
    context: ScanContext,
    writer: DeploymentWriterPort,
    deployment: Deployment,
    linked: list[FindingRecord],
    tally: DeploymentTally,
    *,
    now: datetime,
) -> None:
    open_keys = tuple(
        record.key
        for record in sorted(linked, key=lambda item: (item.rule, item.key))
        if record.state is FindingState.OPEN
    )
    healthy = _healthy(context, deployment, linked, now=now)
    owned: list[bool] = []

    def change(current: Deployment) -> Deployment:
        owned.clear()
        if current.status.phase in IN_FLIGHT_PHASES:
            owned.append(True)  # a run claimed it since the scan read it
            return current
        updated = current
        if healthy is not None and current.status.phase not in NO_CONDITIONS:
            updated = _with_healthy(updated, healthy, now=now)
        if updated.status.open_findings != open_keys:
            updated = updated.changed(at=now, open_findings=open_keys)
        return updated

    try:
        written = writer.update_deployment(deployment.id, change)
    except Exception as error:  # noqa: BLE001 - one deployment's write must not end the scan
        failure = CallFailure.of(error)
        LOGGER.warning("deployment %s not updated from the scan: %s %s", deployment.id, failure.status, failure.code)
        context.errors.append({"scope": f"deployment {deployment.id}", **failure.as_dict()})
        tally.failed += 1
        return
    if owned:
        tally.owned_by_run += 1
    elif written != deployment:
        tally.updated += 1
        tally.ids.append(deployment.id)


def _healthy(
    context: ScanContext, deployment: Deployment, linked: Iterable[FindingRecord], *, now: datetime
) -> Condition | None:
    """The Healthy condition this scan's endpoint-unhealthy finding implies; None when it implies nothing."""
    endpoint_id = _endpoint_id(deployment, linked)
    if endpoint_id is None:
        return None
    key = finding_key(EndpointUnhealthy.id, endpoint_id)
    record = next((item for item in linked if item.key == key), None)
    if record is not None and record.state is FindingState.OPEN:
        return _unhealthy(record, now=now)
    # Resolved by this scan, or resolved earlier while the deployment still listed it as open.
    recovered = (record is not None and record.state is FindingState.RESOLVED) or (
        record is None and key in deployment.status.open_findings
    )
    if not recovered:
        return None
    workspace_id = record.workspace_id if record else endpoint_workspace(endpoint_id)
    inventory = context.inventory(workspace_id)
    if inventory is None or not inventory.reachable:
        return None
    endpoint = next((item for item in inventory.endpoints if item.id.lower() == endpoint_id.lower()), None)
    if endpoint is None:
        # The finding resolved because the endpoint is gone, not because it recovered.
        message = f"Endpoint {endpoint_id} no longer exists (hygiene scan)."
        return condition(ConditionType.HEALTHY, "False", "EndpointMissing", message, at=now)
    state = endpoint.endpoint_state or "Healthy"
    message = f"Endpoint '{endpoint.name}' is {state}: hygiene finding {key} resolved."
    return condition(ConditionType.HEALTHY, "True", _reason(state), message, at=now)


def _unhealthy(record: FindingRecord, *, now: datetime) -> Condition:
    signals = record.evidence.get("signals") or [{}]
    first = signals[0]
    if first.get("signal") == SUBSCRIPTION_MISSING:
        reason = "SubscriptionMissing"
    elif first.get("signal") == SUBSCRIPTION_STATUS:
        reason = "Subscription" + _reason(str(first.get("status") or "Inactive"))
    elif first.get("signal") == ENDPOINT_STATE:
        reason = "Endpoint" + _reason(str(first.get("state") or "Unhealthy"))
    else:
        reason = "Unhealthy"
    message = f"{record.summary} (hygiene finding {record.key})"
    return condition(ConditionType.HEALTHY, "False", reason, message, at=now)


def _with_healthy(deployment: Deployment, healthy: Condition, *, now: datetime) -> Deployment:
    before = deployment.condition(ConditionType.HEALTHY)
    updated = deployment
    if before is None or (before.status, before.reason, before.message) != (
        healthy.status,
        healthy.reason,
        healthy.message,
    ):
        updated = deployment.with_conditions([healthy], at=now)
    phase = updated.status.phase
    if not healthy.is_true and phase is Phase.READY:
        updated = updated.changed(at=now, phase=Phase.DEGRADED)
    elif healthy.is_true and phase is Phase.DEGRADED and updated.all_conditions_true:
        updated = updated.changed(at=now, phase=Phase.READY)
    return updated


def _endpoint_id(deployment: Deployment, linked: Iterable[FindingRecord]) -> str | None:
    if deployment.status.endpoint is not None:
        return deployment.status.endpoint.id
    unhealthy = next((record for record in linked if record.rule == EndpointUnhealthy.id), None)
    return unhealthy.resource_id if unhealthy else None


def _reason(text: str) -> str:
    """A condition reason (UpperCamelCase, like Kubernetes'): "Suspended" stays, "not found" -> "NotFound"."""
    words = [word for word in re.split(r"[^A-Za-z0-9]+", text) if word]
    return "".join(word[:1].upper() + word[1:] for word in words) or "Unknown"
