"""The scan report: when, how long, what was scanned, what was found, alerted and done, and what went wrong.

It is stored as one Table Storage property (at most 64 KiB), so long lists are cut and the full count kept. Callers
who see every workspace read it whole; others read `report_as_seen`, counted over the findings they may see.
`ScanReport` and `VisibleScanReport` describe the two forms for the OpenAPI document; tests hold the dicts built
here to them.
"""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

from shared.hygiene.context import ScanContext
from shared.hygiene.delivery import DeliveryCount
from shared.hygiene.deployment_status import DeploymentTally
from shared.hygiene.findings import FindingKind, FindingRecord, FindingState, Outcome, Severity
from shared.hygiene.key_drift import REPORT_KEY, ComparedBy

MAX_REPORTED_ITEMS = 50
# Says whether a report was read whole or counted over what the caller may see.
SCOPE = "scope"
# What a report says of the scan itself, shown to every caller: it names no workspace and no resource.
_SCAN_FIELDS = ("scanId", "startedAt", "finishedAt", "durationSeconds", "dryRun", "rules")


class _ReportPart(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, validate_by_name=True, extra="forbid", frozen=True)


class WorkspaceCounts(_ReportPart):
    scanned: int
    reachable: int
    unreachable: int


class ResourceCounts(_ReportPart):
    """What the reachable workspaces held; None where the scan could not read it."""

    endpoints: int
    marketplace_subscriptions: int
    secrets: int | None
    active_runs: int | None


class DeploymentCounts(_ReportPart):
    read: int | None = Field(description="None: the deployments could not be read, so none was updated")
    updated: int
    owned_by_run: int = Field(description="Left alone because a run was working on them")
    failed: int
    updated_ids: list[str] = Field(description=f"The first {MAX_REPORTED_ITEMS} deployments updated")


class RuleNames(_ReportPart):
    evaluated: list[str]
    skipped: list[str]


class VisibleFindingCounts(_ReportPart):
    open: dict[str, int] = Field(description="Open findings by rule")
    open_by_severity: dict[Severity, int]
    pending: int = Field(description="Findings observed but still inside their grace window")


class FindingCounts(VisibleFindingCounts):
    opened: int = Field(description="Opened by this scan")
    resolved: int = Field(description="Resolved by this scan")


class AlertCounts(_ReportPart):
    delivered: int
    failed: int


class RemediationAction(_ReportPart):
    finding_id: str
    action: str
    outcome: Outcome
    detail: str


class RemediationCounts(_ReportPart):
    planned: int
    done: int
    failed: int
    skipped: int
    actions: list[RemediationAction] = Field(description=f"The first {MAX_REPORTED_ITEMS} actions")


class KeyDriftReport(_ReportPart):
    checked_until: AwareDatetime | None
    interval_hours: float
    checked: int
    compared_by: dict[ComparedBy, int]
    retry: list[str] = Field(description="Endpoint ids whose check failed, checked again by the next scan")


class ScanError(_ReportPart):
    """A read or delivery that failed: what it was about, and Azure's status, code and message."""

    scope: str
    rule: str | None = None
    status: int | None
    code: str
    message: str


class ScanReport(_ReportPart):
    """GET /api/hygiene/report for a caller who sees every workspace (scope: all): the whole latest scan."""

    scan_id: str
    started_at: AwareDatetime
    finished_at: AwareDatetime
    duration_seconds: float
    dry_run: bool
    workspaces: WorkspaceCounts
    resources: ResourceCounts
    deployments: DeploymentCounts
    rules: RuleNames
    findings: FindingCounts
    alerts: AlertCounts
    remediation: RemediationCounts
    key_drift: KeyDriftReport
    errors: list[ScanError] = Field(description=f"The first {MAX_REPORTED_ITEMS} errors")
    error_count: int
    scope: Literal["all"]


class VisibleScanReport(_ReportPart):
    """GET /api/hygiene/report for any other caller (scope: visible): when the scan ran and with which rules, and
    the open and pending findings counted over those the caller may see."""

    scan_id: str
    started_at: AwareDatetime
    finished_at: AwareDatetime
    duration_seconds: float
    dry_run: bool
    rules: RuleNames
    scope: Literal["visible"]
    findings: VisibleFindingCounts


@dataclass
class ScanTally:
    opened_by_kind: Counter[FindingKind] = field(default_factory=Counter)
    resolved_by_kind: Counter[FindingKind] = field(default_factory=Counter)
    alerts: DeliveryCount = field(default_factory=DeliveryCount)
    actions: list[dict[str, str]] = field(default_factory=list)
    deployments: DeploymentTally = field(default_factory=DeploymentTally)

    @property
    def opened(self) -> int:
        return self.opened_by_kind.total()

    @property
    def resolved(self) -> int:
        return self.resolved_by_kind.total()

    def count(self, record: FindingRecord, *, opened: bool, resolved: bool) -> None:
        """Count `record` as opened or resolved (or neither) by this scan."""
        kind = (record.rule, record.severity)
        if opened:
            self.opened_by_kind[kind] += 1
        if resolved:
            self.resolved_by_kind[kind] += 1


def build_report(
    *,
    started_at: datetime,
    finished_at: datetime,
    duration_seconds: float,
    dry_run: bool,
    context: ScanContext,
    records: Iterable[FindingRecord],
    evaluated: Iterable[str],
    skipped: Iterable[str],
    tally: ScanTally,
) -> dict[str, Any]:
    """`records` are the findings this scan wrote; "open" counts those of them that are open, by rule."""
    inventories = list(context.inventories.values())
    reachable = [inventory for inventory in inventories if inventory.reachable]
    records = list(records)
    outcomes = Counter(action["outcome"] for action in tally.actions)
    return {
        "scanId": str(uuid.uuid4()),
        "startedAt": started_at.isoformat(),
        "finishedAt": finished_at.isoformat(),
        "durationSeconds": round(duration_seconds, 3),
        "dryRun": dry_run,
        "workspaces": {
            "scanned": len(inventories),
            "reachable": len(reachable),
            "unreachable": len(inventories) - len(reachable),
        },
        "resources": {
            "endpoints": sum(len(inventory.endpoints) for inventory in reachable),
            "marketplaceSubscriptions": sum(len(inventory.subscriptions) for inventory in reachable),
            "secrets": None if context.secrets is None else len(context.secrets),
            "activeRuns": None if context.active_runs is None else len(context.active_runs),
        },
        "deployments": {
            # None: the broker's deployments could not be read, so findings kept their links and none was updated.
            "read": None if context.deployments is None else len(context.deployments),
            **tally.deployments.as_dict(),
            "updatedIds": tally.deployments.ids[:MAX_REPORTED_ITEMS],
        },
        "rules": {"evaluated": sorted(evaluated), "skipped": sorted(skipped)},
        "findings": {**_finding_counts(records), "opened": tally.opened, "resolved": tally.resolved},
        "alerts": {"delivered": tally.alerts.delivered, "failed": tally.alerts.failed},
        "remediation": {
            **{outcome.value: outcomes.get(outcome.value, 0) for outcome in Outcome},
            "actions": tally.actions[:MAX_REPORTED_ITEMS],
        },
        REPORT_KEY: context.key_drift.as_report(),
        "errors": context.errors[:MAX_REPORTED_ITEMS],
        "errorCount": len(context.errors),
    }


def report_as_seen(report: Mapping[str, Any], visible: Iterable[FindingRecord] | None) -> dict[str, Any]:
    """The latest report as a caller sees it: whole when `visible` is None (they see every workspace); otherwise
    what it says of the scan and the findings counted over `visible`, the live (open and pending) findings they may
    see as stored now. Left out then is what describes the whole estate: workspaces, resources and deployments
    scanned or updated, alerts, remediation actions, key drift and errors."""
    if visible is None:
        return {**report, SCOPE: "all"}
    return {
        **{name: report[name] for name in _SCAN_FIELDS if name in report},
        SCOPE: "visible",
        "findings": _finding_counts(visible),
    }


def open_counts(records: Iterable[FindingRecord]) -> Counter[FindingKind]:
    """Open findings by (rule, severity): what a report's open counts by rule and by severity add up."""
    return Counter((record.rule, record.severity) for record in records if record.state is FindingState.OPEN)


def _finding_counts(records: Iterable[FindingRecord]) -> dict[str, Any]:
    """Open findings by rule and by severity, and how many are pending."""
    records = list(records)
    by_rule: Counter[str] = Counter()
    by_severity: Counter[str] = Counter()
    for (rule, severity), count in open_counts(records).items():
        by_rule[rule] += count
        by_severity[severity.value] += count
    return {
        "open": dict(sorted(by_rule.items())),
        "openBySeverity": dict(sorted(by_severity.items())),
        "pending": sum(record.state is FindingState.PENDING for record in records),
    }
