"""The scan report: when, how long, what was scanned, what was found, alerted and done, and what went wrong.

It is stored as one Table Storage property (at most 64 KiB), so long lists are cut and the full count kept.
"""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from shared.hygiene.context import ScanContext
from shared.hygiene.delivery import DeliveryCount
from shared.hygiene.deployment_status import DeploymentTally
from shared.hygiene.findings import FindingRecord, FindingState, Outcome
from shared.hygiene.key_drift import REPORT_KEY

MAX_REPORTED_ITEMS = 50


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
    open_records = [record for record in records if record.state is FindingState.OPEN]
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
        "findings": {
            "open": dict(sorted(Counter(record.rule for record in open_records).items())),
            "openBySeverity": dict(sorted(Counter(record.severity.value for record in open_records).items())),
            "pending": sum(record.state is FindingState.PENDING for record in records),
            "opened": tally.opened,
            "resolved": tally.resolved,
        },
        "alerts": {"delivered": tally.alerts.delivered, "failed": tally.alerts.failed},
        "remediation": {
            **{outcome.value: outcomes.get(outcome.value, 0) for outcome in Outcome},
            "actions": tally.actions[:MAX_REPORTED_ITEMS],
        },
        REPORT_KEY: context.key_drift.as_report(),
        "errors": context.errors[:MAX_REPORTED_ITEMS],
        "errorCount": len(context.errors),
    }
