"""The scan report: when, how long, what was scanned, what was found, alerted and done, and what went wrong.

It is stored as one Table Storage property (at most 64 KiB), so long lists are cut and the full count kept. Callers
who see every workspace read it whole; others read `report_as_seen`, counted over the findings they may see.
"""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from shared.hygiene.context import ScanContext
from shared.hygiene.delivery import DeliveryCount
from shared.hygiene.deployment_status import DeploymentTally
from shared.hygiene.findings import FindingRecord, FindingState, Outcome
from shared.hygiene.key_drift import REPORT_KEY

MAX_REPORTED_ITEMS = 50
# Says whether a report was read whole or counted over what the caller may see.
SCOPE = "scope"
# What a report says of the scan itself, shown to every caller: it names no workspace and no resource.
_SCAN_FIELDS = ("scanId", "startedAt", "finishedAt", "durationSeconds", "dryRun", "rules")


@dataclass
class ScanTally:
    opened: int = 0
    resolved: int = 0
    alerts: DeliveryCount = field(default_factory=DeliveryCount)
    actions: list[dict[str, str]] = field(default_factory=list)
    deployments: DeploymentTally = field(default_factory=DeploymentTally)


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


def _finding_counts(records: Iterable[FindingRecord]) -> dict[str, Any]:
    """Open findings by rule and by severity, and how many are pending."""
    records = list(records)
    open_records = [record for record in records if record.state is FindingState.OPEN]
    return {
        "open": dict(sorted(Counter(record.rule for record in open_records).items())),
        "openBySeverity": dict(sorted(Counter(record.severity.value for record in open_records).items())),
        "pending": sum(record.state is FindingState.PENDING for record in records),
    }
