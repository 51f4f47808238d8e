"""One hygiene scan: collect, evaluate the rules, reconcile findings, remediate, deliver alerts, store the report.

Every source is read once per scan. A source that fails (the run store, Key Vault, one workspace) is reported and
makes only the rules that need it inconclusive; the scan itself always finishes and always writes its report.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from shared.azure_errors import RecordChangedError, RecordExistsError
from shared.hygiene.alerts import AlertChannel
from shared.hygiene.context import ScanContext
from shared.hygiene.findings import (
    AlertKind,
    AuditEntry,
    Finding,
    FindingRecord,
    FindingState,
    Outcome,
    Transition,
    observe,
    resolve,
)
from shared.hygiene.inventory import (
    CallFailure,
    Retrier,
    RetryPolicy,
    ScanMachineLearningPort,
    WorkspaceInventory,
    collect_inventories,
)
from shared.hygiene.remediation import Action, PlannedAction, RemediationPolicy, Remediator, plan
from shared.hygiene.rules import RULES, Rule
from shared.hygiene.settings import HygieneSettings, HygieneSettingsError
from shared.hygiene.store import FindingStore, StoredFinding
from shared.ports import SecretStorePort, StoredSecret
from shared.runs import RunRecord, RunStatus

LOGGER = logging.getLogger(__name__)
RUN_PAGE_SIZE = 500
# A report is one Table Storage property (at most 64 KiB), so long lists are cut and the cut is counted.
MAX_REPORTED_ITEMS = 50


class RunSourcePort(Protocol):
    """Paged run listing (RunStore implements it)."""

    def list(self, *, page_size: int = 50, continuation_token: str | None = None) -> Any: ...


@dataclass
class _Tally:
    opened: int = 0
    resolved: int = 0
    alerts_delivered: int = 0
    alerts_failed: int = 0
    actions: list[dict[str, str]] = field(default_factory=list)


class HygieneScanner:
    def __init__(
        self,
        *,
        settings: HygieneSettings,
        machine_learning: ScanMachineLearningPort,
        secret_store: SecretStorePort | None,
        runs: RunSourcePort,
        store: FindingStore,
        channels: Sequence[AlertChannel],
        clock: Callable[[], datetime],
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        unknown = settings.disabled_rules - RULES.keys()
        if unknown:
            raise HygieneSettingsError(f"HYGIENE_DISABLED_RULES: no rule {', '.join(sorted(unknown))}.")
        self._settings = settings
        self._ml = machine_learning
        self._secret_store = secret_store
        self._runs = runs
        self._store = store
        self._channels = {channel.name: channel for channel in channels}
        self._clock = clock
        self._rules = [rule() for rule_id, rule in RULES.items() if rule_id not in settings.disabled_rules]
        self._retrier = Retrier(
            RetryPolicy(
                throttle_retries=settings.throttle_retries,
                transient_retries=settings.transient_retries,
                backoff_seconds=settings.retry_backoff_seconds,
                max_retry_after_seconds=settings.max_retry_after_seconds,
            ),
            sleep,
        )
        self._policy = RemediationPolicy.from_settings(settings)
        self._remediator = Remediator(self._policy, machine_learning, secret_store)

    def scan(self) -> dict[str, Any]:
        """Run one scan and return its report (also stored as the latest report)."""
        started_at, started = self._clock(), time.monotonic()
        errors: list[dict[str, object]] = []
        runs = self._load_runs(errors)
        secrets = self._load_secrets(errors)
        workspace_ids = self._workspace_ids(runs, secrets)
        inventories = collect_inventories(
            workspace_ids, self._ml, self._retrier, max_workers=self._settings.max_workers
        )
        context = ScanContext(
            now=started_at,
            settings=self._settings,
            inventories={inventory.workspace_id.lower(): inventory for inventory in inventories},
            secrets=secrets,
            active_runs=runs[1] if runs else None,
            machine_learning=self._ml,
            secret_store=self._secret_store,
            retrier=self._retrier,
            errors=errors,
        )
        findings, evaluated = self._evaluate(context)
        tally = _Tally()
        current = self._reconcile(context, findings, evaluated, tally)
        self._remediate(current, tally, now=started_at)
        self._deliver_alerts(context, tally, now=started_at)
        report = self._report(
            started_at=started_at,
            duration=time.monotonic() - started,
            context=context,
            findings=current.values(),
            evaluated=evaluated,
            tally=tally,
        )
        self._store.save_report(report)
        LOGGER.info(
            "hygiene scan %s: %d workspaces, %d findings opened, %d resolved, %d errors in %.1f s",
            report["scanId"],
            len(inventories),
            tally.opened,
            tally.resolved,
            len(errors),
            report["durationSeconds"],
        )
        return report

    # -- collect ---------------------------------------------------------------------------------------------------

    def _load_runs(self, errors: list[dict[str, object]]) -> tuple[list[str], list[RunRecord]] | None:
        """Workspaces the broker acted in (every run but rejected ones, which never touched Azure) and active runs."""
        workspaces: list[str] = []
        active: list[RunRecord] = []
        token: str | None = None
        try:
            while True:
                page = self._runs.list(page_size=RUN_PAGE_SIZE, continuation_token=token)
                for run in page.runs:
                    if run.status is not RunStatus.REJECTED:
                        workspaces.append(run.request.workspace_id)
                    if not run.is_terminal:
                        active.append(run)
                token = page.continuation_token
                if not token:
                    return workspaces, active
        except Exception as error:  # noqa: BLE001 - the scan goes on without the run-based rules
            errors.append({"scope": "runs", **CallFailure.of(error).as_dict()})
            return None

    def _load_secrets(self, errors: list[dict[str, object]]) -> list[StoredSecret] | None:
        store = self._secret_store
        if store is None:
            errors.append({"scope": "secrets", "status": None, "code": "NotConfigured", "message": "no Key Vault URL"})
            return None
        try:
            return self._retrier.call(store.list_secrets)
        except Exception as error:  # noqa: BLE001 - the scan goes on without the secret-based rules
            errors.append({"scope": "secrets", **CallFailure.of(error).as_dict()})
            return None

    def _workspace_ids(
        self, runs: tuple[list[str], list[RunRecord]] | None, secrets: list[StoredSecret] | None
    ) -> list[str]:
        """Configured workspaces, then those of the broker's runs and of its secrets' tags, each once."""
        from_secrets = [secret.tags.get("workspace", "") for secret in secrets or ()]
        unique: dict[str, str] = {}
        for workspace_id in (*self._settings.workspaces, *(runs[0] if runs else ()), *from_secrets):
            if workspace_id:
                unique.setdefault(workspace_id.lower(), workspace_id)
        return list(unique.values())

    # -- evaluate and reconcile ------------------------------------------------------------------------------------

    def _evaluate(self, context: ScanContext) -> tuple[dict[str, Finding], dict[str, Rule]]:
        findings: dict[str, Finding] = {}
        evaluated: dict[str, Rule] = {}
        for rule in self._rules:
            if not rule.ready(context):
                continue
            try:
                found = list(rule.evaluate(context))
            except Exception as error:  # a broken rule must not hide the others' findings
                LOGGER.exception("hygiene rule %s failed", rule.id)
                context.errors.append({"scope": f"rule {rule.id}", **CallFailure.of(error).as_dict()})
                continue
            evaluated[rule.id] = rule
            findings.update((finding.key, finding) for finding in found)
        return findings, evaluated

    def _reconcile(
        self, context: ScanContext, findings: Mapping[str, Finding], evaluated: Mapping[str, Rule], tally: _Tally
    ) -> dict[str, StoredFinding]:
        """Write what was observed; resolve what is gone from scopes this scan covered. Alerts go to outboxes."""
        channels = list(self._channels)
        now = context.now

        def observed(finding: Finding) -> tuple[StoredFinding | None, Transition]:
            stored = self._store.get(finding.key)
            transition = observe(stored.record if stored else None, finding, now=now, channels=channels)
            return self._write(stored, transition), transition

        def vanished(record: FindingRecord) -> tuple[StoredFinding | None, Transition]:
            stored = self._store.get(record.key)
            if stored is None or stored.record.state is FindingState.RESOLVED:
                return None, Transition(None)
            transition = resolve(stored.record, now=now, channels=channels)
            return self._write(stored, transition), transition

        gone = [
            record
            for record in self._store.live()
            if record.key not in findings
            and record.rule in evaluated
            and evaluated[record.rule].covers(context, record)
        ]
        current: dict[str, StoredFinding] = {}
        for written, transition in [
            *context.parallel(observed, list(findings.values())),
            *context.parallel(vanished, gone),
        ]:
            if written is None:
                continue  # forgotten, or a concurrent scan wrote it first (and announces it)
            current[written.record.key] = written
            tally.opened += transition.opened
            tally.resolved += transition.resolved
        return current

    def _write(self, stored: StoredFinding | None, transition: Transition) -> StoredFinding | None:
        record = transition.record
        try:
            if record is None:
                if stored is not None:
                    self._store.delete(stored.record.key)
                return None
            if stored is None:
                return self._store.create(record)
            return self._store.save(record, stored.etag)
        except (RecordExistsError, RecordChangedError):
            LOGGER.info("finding %s was written by a concurrent scan; leaving it to that scan", record and record.key)
            transition.opened = transition.resolved = False
            return None

    # -- remediate -------------------------------------------------------------------------------------------------

    def _remediate(self, current: dict[str, StoredFinding], tally: _Tally, *, now: datetime) -> None:
        policy = self._policy
        actions = plan(policy, (stored.record for stored in current.values()), now=now)
        destructive = sum(action.action.destructive for action in actions)
        over_cap = destructive > policy.max_actions
        for action in actions:
            stored = current[action.finding_key]
            record, entry = self._act(action, stored.record, over_cap=over_cap, destructive=destructive, now=now)
            tally.actions.append(
                {"findingId": record.key, "action": entry.action, "outcome": entry.outcome, "detail": entry.detail}
            )
            try:
                current[record.key] = self._store.save(record.audited(entry), stored.etag)
            except RecordChangedError:
                LOGGER.warning("finding %s changed during remediation; its audit entry is lost", record.key)

    def _act(
        self, action: PlannedAction, record: FindingRecord, *, over_cap: bool, destructive: int, now: datetime
    ) -> tuple[FindingRecord, AuditEntry]:
        if self._policy.dry_run:
            return record, AuditEntry(
                at=now, action=action.action, outcome=Outcome.PLANNED, dry_run=True, detail=action.detail
            )
        if action.action is Action.SCHEDULE_DELETION:
            # The grace period starts when this warning is delivered, not now (see _deliver_alerts).
            warned = record.with_alerts(AlertKind.DELETION_SCHEDULED, list(self._channels))
            return warned, AuditEntry(at=now, action=action.action, outcome=Outcome.DONE, detail=action.detail)
        if over_cap:
            detail = (
                f"{action.detail}: not done, {destructive} destructive actions planned exceed "
                f"HYGIENE_MAX_REMEDIATIONS={self._policy.max_actions}"
            )
            return record, AuditEntry(at=now, action=action.action, outcome=Outcome.SKIPPED, detail=detail)
        return record, self._remediator.apply(action, record, now=now)

    # -- alert -----------------------------------------------------------------------------------------------------

    def _deliver_alerts(self, context: ScanContext, tally: _Tally, *, now: datetime) -> None:
        """Deliver every outbox entry, this scan's and earlier failures'; what fails stays for the next scan."""

        def deliver(record: FindingRecord) -> tuple[int, int]:
            stored = self._store.get(record.key)
            if stored is None:
                return 0, 0
            record = stored.record
            remaining = []
            warned_at = record.deletion_warned_at
            for pending in record.outbox:
                channel = self._channels.get(pending.channel)
                if channel is None:
                    continue  # that channel is no longer configured
                extra: dict[str, Any] = {}
                if pending.kind is AlertKind.DELETION_SCHEDULED:
                    extra["deleteAfter"] = (now + self._policy.delete_grace).isoformat()
                try:
                    channel.deliver(record, pending.kind, time=now, extra=extra)
                except Exception as error:  # noqa: BLE001 - kept in the outbox and retried next scan
                    remaining.append(pending)
                    context.errors.append(
                        {"scope": f"alert {pending.kind} via {pending.channel}", **CallFailure.of(error).as_dict()}
                    )
                    continue
                if pending.kind is AlertKind.DELETION_SCHEDULED and warned_at is None:
                    warned_at = now
            update = {"outbox": tuple(remaining), "deletion_warned_at": warned_at}
            try:
                self._store.save(record.model_copy(update=update), stored.etag)
            except RecordChangedError:
                LOGGER.warning("finding %s changed while its alerts were delivered; they may be sent again", record.key)
            return len(record.outbox) - len(remaining), len(remaining)

        for delivered, failed in context.parallel(deliver, self._store.with_undelivered_alerts()):
            tally.alerts_delivered += delivered
            tally.alerts_failed += failed

    # -- report ----------------------------------------------------------------------------------------------------

    def _report(
        self,
        *,
        started_at: datetime,
        duration: float,
        context: ScanContext,
        findings: Iterable[StoredFinding],
        evaluated: Mapping[str, Rule],
        tally: _Tally,
    ) -> dict[str, Any]:
        inventories: list[WorkspaceInventory] = list(context.inventories.values())
        reachable = [inventory for inventory in inventories if inventory.reachable]
        records = [stored.record for stored in findings]
        open_records = [record for record in records if record.state is FindingState.OPEN]
        outcomes = Counter(action["outcome"] for action in tally.actions)
        return {
            "scanId": str(uuid.uuid4()),
            "startedAt": started_at.isoformat(),
            "finishedAt": self._clock().isoformat(),
            "durationSeconds": round(duration, 3),
            "dryRun": self._policy.dry_run,
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
            "rules": {
                "evaluated": sorted(evaluated),
                "skipped": sorted(rule.id for rule in self._rules if rule.id not in evaluated),
            },
            "findings": {
                "open": dict(sorted(Counter(record.rule for record in open_records).items())),
                "openBySeverity": dict(sorted(Counter(record.severity.value for record in open_records).items())),
                "pending": sum(record.state is FindingState.PENDING for record in records),
                "opened": tally.opened,
                "resolved": tally.resolved,
            },
            "alerts": {"delivered": tally.alerts_delivered, "failed": tally.alerts_failed},
            "remediation": {
                **{outcome.value: outcomes.get(outcome.value, 0) for outcome in Outcome},
                "actions": tally.actions[:MAX_REPORTED_ITEMS],
            },
            "errors": context.errors[:MAX_REPORTED_ITEMS],
            "errorCount": len(context.errors),
        }
