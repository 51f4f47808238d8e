"""Findings: what a rule observed in one scan, and the persisted record that remembers it across scans.

The record's life is pending (observed, still inside its grace window) -> open -> resolved, and open again if the
condition comes back (a new occurrence). Alerts are not sent from here: a transition puts them in the record's
outbox, the record is written, and only then are they delivered; a delivery that fails stays in the outbox for the
next scan. So each opening and each resolution is announced once, however often the condition is observed.
Time always comes from the caller, never from a clock read here.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from pydantic import AwareDatetime, BaseModel, ConfigDict
from pydantic.alias_generators import to_camel

MAX_AUDIT_ENTRIES = 50
# What to_public_dict() leaves out: the alerts still to deliver are the scanner's business.
PRIVATE_FIELDS = ("outbox",)


class Severity(StrEnum):
    CRITICAL = "critical"
    HIGH = "high"
    MEDIUM = "medium"
    LOW = "low"
    INFO = "info"

    @property
    def azure_monitor(self) -> str:
        """Azure Monitor's Sev0 (critical) .. Sev4 (verbose) scale."""
        return f"Sev{list(Severity).index(self)}"


# What telemetry counts findings by: (rule, severity).
FindingKind = tuple[str, Severity]


class FindingState(StrEnum):
    PENDING = "pending"
    OPEN = "open"
    RESOLVED = "resolved"


class Outcome(StrEnum):
    PLANNED = "planned"
    DONE = "done"
    FAILED = "failed"
    SKIPPED = "skipped"


class AlertKind(StrEnum):
    OPENED = "opened"
    RESOLVED = "resolved"
    DELETION_SCHEDULED = "deletion-scheduled"


@dataclass(frozen=True)
class Finding:
    """One rule's observation of one resource in this scan. Evidence holds facts, never a key value."""

    rule: str
    severity: Severity
    resource_id: str
    workspace_id: str | None
    summary: str
    evidence: Mapping[str, Any]
    # How long the condition must last before the finding opens (and alerts); zero opens it at once.
    grace: timedelta = timedelta(0)
    endpoint_name: str | None = None
    secret_names: tuple[str, ...] = ()
    broker_managed: bool = False
    # The run the resource's own tag names (an endpoint's brokerRunId, a secret's run): how a finding finds its
    # deployment when no deployment records the endpoint's id. Not persisted.
    origin_run_id: str | None = None
    # The broker's Deployment resource the finding is about, the run that deployed it, its requests' tickets, and
    # the call that fixes it (set by linking.py after the rules ran).
    deployment_id: str | None = None
    run_id: str | None = None
    tickets: tuple[str, ...] = ()
    recommended_action: str = ""
    # False when the scan could not read the broker's deployments: the record keeps the link it had.
    linked: bool = True

    @property
    def key(self) -> str:
        return finding_key(self.rule, self.resource_id)


def finding_key(rule: str, resource_id: str) -> str:
    """Stable identity of a finding: its rule and resource (ARM ids compare case-insensitively)."""
    return hashlib.sha256(f"{rule}\n{resource_id.lower()}".encode()).hexdigest()[:40]


class _Value(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, validate_by_name=True, extra="forbid", frozen=True)


class AuditEntry(_Value):
    """One remediation step taken, planned (dry run), skipped or failed on a finding."""

    at: AwareDatetime
    action: str
    outcome: Outcome
    dry_run: bool = False
    detail: str = ""


class PendingAlert(_Value):
    kind: AlertKind
    channel: str


class FindingRecord(_Value):
    key: str
    rule: str
    severity: Severity
    resource_id: str
    workspace_id: str | None
    summary: str
    evidence: dict[str, Any]
    state: FindingState
    occurrence: int = 1
    first_seen: AwareDatetime
    last_seen: AwareDatetime
    opened_at: AwareDatetime | None = None
    resolved_at: AwareDatetime | None = None
    endpoint_name: str | None = None
    secret_names: tuple[str, ...] = ()
    broker_managed: bool = False
    deployment_id: str | None = None
    run_id: str | None = None
    tickets: tuple[str, ...] = ()
    recommended_action: str = ""
    deletion_warned_at: AwareDatetime | None = None
    actions: tuple[AuditEntry, ...] = ()
    outbox: tuple[PendingAlert, ...] = ()

    def to_storage_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json", by_alias=True)

    def to_public_dict(self) -> dict[str, Any]:
        public = self.to_storage_dict()
        for name in PRIVATE_FIELDS:
            public.pop(name)
        return public

    @classmethod
    def from_storage_dict(cls, data: Mapping[str, Any]) -> FindingRecord:
        return cls.model_validate(data)

    def with_alerts(self, kind: AlertKind, channels: Sequence[str]) -> FindingRecord:
        queued = tuple(PendingAlert(kind=kind, channel=channel) for channel in channels)
        return self.model_copy(update={"outbox": (*self.outbox, *queued)})

    def audited(self, entry: AuditEntry) -> FindingRecord:
        """The record with `entry` appended, unless it repeats the latest entry (dry runs re-plan every scan)."""
        if self.actions:
            last = self.actions[-1]
            if (last.action, last.outcome, last.dry_run, last.detail) == (
                entry.action,
                entry.outcome,
                entry.dry_run,
                entry.detail,
            ):
                return self
        return self.model_copy(update={"actions": (*self.actions, entry)[-MAX_AUDIT_ENTRIES:]})

    def done_since_opened(self, action: str) -> bool:
        """Whether `action` already succeeded for this occurrence of the finding."""
        opened = self.opened_at
        return any(
            entry.action == action and entry.outcome is Outcome.DONE and (opened is None or entry.at >= opened)
            for entry in self.actions
        )


@dataclass
class Transition:
    """What reconciling one finding did: the record to write (None: forget it) and whether it opened/resolved."""

    record: FindingRecord | None
    opened: bool = False
    resolved: bool = False


def observe(existing: FindingRecord | None, finding: Finding, *, now: datetime, channels: Sequence[str]) -> Transition:
    """The record after `finding` was observed again (or for the first time) at `now`."""
    facts: dict[str, Any] = {
        "severity": finding.severity,
        "summary": finding.summary,
        "evidence": dict(finding.evidence),
        "workspace_id": finding.workspace_id,
        "last_seen": now,
        "endpoint_name": finding.endpoint_name,
        "secret_names": finding.secret_names,
        "broker_managed": finding.broker_managed,
        **_link_facts(existing, finding),
    }
    if existing is None:
        fresh = FindingRecord(
            key=finding.key,
            rule=finding.rule,
            resource_id=finding.resource_id,
            state=FindingState.PENDING,
            first_seen=now,
            **facts,
        )
        return _open_if_due(fresh, finding, now=now, channels=channels)
    if existing.state is FindingState.RESOLVED:
        # The condition came back: a new occurrence, with its own grace window, alerts and remediation.
        recurred = existing.model_copy(
            update={
                **facts,
                "state": FindingState.PENDING,
                "occurrence": existing.occurrence + 1,
                "first_seen": now,
                "opened_at": None,
                "resolved_at": None,
                "deletion_warned_at": None,
            }
        )
        return _open_if_due(recurred, finding, now=now, channels=channels)
    updated = existing.model_copy(update=facts)
    if existing.state is FindingState.PENDING:
        return _open_if_due(updated, finding, now=now, channels=channels)
    return Transition(updated)


def _link_facts(existing: FindingRecord | None, finding: Finding) -> dict[str, Any]:
    if not finding.linked and existing is not None:
        return {}  # the deployments were unreadable: keep what the record knew
    return {
        "deployment_id": finding.deployment_id,
        "run_id": finding.run_id,
        "tickets": finding.tickets,
        "recommended_action": finding.recommended_action,
    }


def _open_if_due(record: FindingRecord, finding: Finding, *, now: datetime, channels: Sequence[str]) -> Transition:
    if now - record.first_seen < finding.grace:
        return Transition(record)
    opened = record.model_copy(update={"state": FindingState.OPEN, "opened_at": now})
    return Transition(opened.with_alerts(AlertKind.OPENED, channels), opened=True)


def resolve(record: FindingRecord, *, now: datetime, channels: Sequence[str]) -> Transition:
    """The record once its condition is gone: resolved (and announced) if it had opened, forgotten if pending."""
    if record.state is FindingState.PENDING:
        return Transition(None)
    if record.state is FindingState.RESOLVED:
        return Transition(record)
    resolved = record.model_copy(update={"state": FindingState.RESOLVED, "resolved_at": now})
    return Transition(resolved.with_alerts(AlertKind.RESOLVED, channels), resolved=True)
