"""One hygiene scan: collect, evaluate the rules, link findings to deployments, reconcile findings, update the
deployments they are about, remediate, deliver alerts, store the report.

Every source is read once per scan. A source that fails (the run store, Key Vault, one workspace) is reported and
makes only the rules that need it inconclusive; the scan itself always finishes and always writes its report.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any, Protocol

from shared.azure_errors import RecordChangedError, RecordExistsError
from shared.deployment import Deployment, Phase
from shared.hygiene.alerts import AlertChannel
from shared.hygiene.context import ScanContext, endpoint_workspace
from shared.hygiene.delivery import AlertDelivery
from shared.hygiene.deployment_status import update_deployments
from shared.hygiene.findings import (
    Finding,
    FindingRecord,
    FindingState,
    Transition,
    observe,
    resolve,
)
from shared.hygiene.inventory import (
    CallFailure,
    Retrier,
    RetryPolicy,
    ScanMachineLearningPort,
    collect_inventories,
)
from shared.hygiene.key_drift import DriftTally, DriftWindow, ScanSecretStorePort
from shared.hygiene.linking import link_findings
from shared.hygiene.remediation import RemediationPolicy, Remediator, RepairPort, plan
from shared.hygiene.report import ScanTally, build_report, open_counts
from shared.hygiene.rules import RULES, Rule
from shared.hygiene.settings import HygieneSettings, HygieneSettingsError
from shared.hygiene.store import FindingStore, StoredFinding
from shared.ports import StoredSecret
from shared.runs import RunRecord, RunStatus
from shared.telemetry import BROKER_TELEMETRY, BrokerTelemetry

LOGGER = logging.getLogger(__name__)
RUN_PAGE_SIZE = 500


class RunSourcePort(Protocol):
    """Paged runs and deployments, and ETag-safe deployment updates (RunStore implements it)."""

    def list(self, *, page_size: int = 50, continuation_token: str | None = None) -> Any: ...
    def list_deployments(self, *, page_size: int = 50, continuation_token: str | None = None) -> Any: ...
    def update_deployment(self, deployment_id: str, change: Callable[[Deployment], Deployment]) -> Deployment: ...


class HygieneScanner:
    def __init__(
        self,
        *,
        settings: HygieneSettings,
        machine_learning: ScanMachineLearningPort,
        secret_store: ScanSecretStorePort | None,
        runs: RunSourcePort,
        store: FindingStore,
        channels: Sequence[AlertChannel],
        clock: Callable[[], datetime],
        sleep: Callable[[float], None] = time.sleep,
        repair: RepairPort | None = None,
        telemetry: BrokerTelemetry = BROKER_TELEMETRY,
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
        self._telemetry = telemetry
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
        self._remediator = Remediator(
            self._policy, machine_learning, secret_store, alert_channels=list(self._channels), repair=repair
        )
        self._delivery = AlertDelivery(store, self._channels, settings.delete_grace)

    def scan(self) -> dict[str, Any]:
        """Run one scan and return its report (also stored as the latest report)."""
        started_at, started = self._clock(), time.monotonic()
        errors: list[dict[str, object]] = []
        runs = self._load_runs(errors)
        deployments = self._load_deployments(errors)
        secrets = self._load_secrets(errors)
        workspace_ids = self._workspace_ids(runs, deployments, secrets)
        inventories = collect_inventories(
            workspace_ids, self._ml, self._retrier, max_workers=self._settings.max_workers
        )
        live = self._store.live()
        context = ScanContext(
            now=started_at,
            settings=self._settings,
            inventories={inventory.workspace_id.lower(): inventory for inventory in inventories},
            secrets=secrets,
            active_runs=runs[1] if runs else None,
            machine_learning=self._ml,
            secret_store=self._secret_store,
            retrier=self._retrier,
            key_drift=DriftTally(self._drift_window(started_at, errors)),
            deployments=deployments,
            live_findings=live,
            run_deployments=runs[2] if runs else {},
            errors=errors,
        )
        findings, evaluated = self._evaluate(context)
        findings = link_findings(context, findings, evaluated)
        tally = ScanTally()
        current = self._reconcile(context, findings, evaluated, tally, live)
        # Before remediation: a repair it starts claims the deployment, which the scan then leaves to the run.
        tally.deployments = update_deployments(
            context,
            self._runs,
            {**{record.key: record for record in live}, **{key: stored.record for key, stored in current.items()}},
            now=started_at,
        )
        self._remediate(context, current, tally, now=started_at)
        tally.alerts = self._delivery.deliver_pending(context, now=started_at)
        records = [stored.record for stored in current.values()]
        report = build_report(
            started_at=started_at,
            finished_at=self._clock(),
            duration_seconds=time.monotonic() - started,
            dry_run=self._policy.dry_run,
            context=context,
            records=records,
            evaluated=evaluated,
            skipped=(rule.id for rule in self._rules if rule.id not in evaluated),
            tally=tally,
        )
        self._store.save_report(report)
        self._telemetry.findings_changed(opened=tally.opened_by_kind, resolved=tally.resolved_by_kind)
        # Every rule evaluated reports, zero included, so the latest count of each is current; a skipped rule's
        # findings went unchecked, and its last count stands.
        self._telemetry.findings_open(
            {**{(rule.id, rule.severity): 0 for rule in evaluated.values()}, **open_counts(records)}
        )
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

    def _load_runs(self, errors: list[dict[str, object]]) -> tuple[list[str], list[RunRecord], dict[str, str]] | None:
        """Workspaces the broker acted in (every run but rejected ones, which never touched Azure), active runs, and
        each run's deployment id by run id."""
        workspaces: list[str] = []
        active: list[RunRecord] = []
        deployment_ids: dict[str, str] = {}
        token: str | None = None
        try:
            while True:
                page = self._runs.list(page_size=RUN_PAGE_SIZE, continuation_token=token)
                for run in page.runs:
                    if run.status is not RunStatus.REJECTED:
                        workspaces.append(run.request.workspace_id)
                    if not run.is_terminal:
                        active.append(run)
                    if run.deployment_id:
                        deployment_ids[run.id] = run.deployment_id
                token = page.continuation_token
                if not token:
                    return workspaces, active, deployment_ids
        except Exception as error:  # noqa: BLE001 - the scan goes on without the run-based rules
            errors.append({"scope": "runs", **CallFailure.of(error).as_dict()})
            return None

    def _load_deployments(self, errors: list[dict[str, object]]) -> list[Deployment] | None:
        """The broker's deployments, every page; None when they cannot be read (findings then keep their links)."""
        deployments: list[Deployment] = []
        token: str | None = None
        try:
            while True:
                page = self._runs.list_deployments(page_size=RUN_PAGE_SIZE, continuation_token=token)
                deployments.extend(page.deployments)
                token = page.continuation_token
                if not token:
                    return deployments
        except Exception as error:  # noqa: BLE001 - the scan goes on; findings are just not linked this time
            errors.append({"scope": "deployments", **CallFailure.of(error).as_dict()})
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

    def _drift_window(self, now: datetime, errors: list[dict[str, object]]) -> DriftWindow:
        """The key-drift window after the one the latest report covered; unreadable, every endpoint is due."""
        interval = self._settings.key_drift_interval
        try:
            previous = self._store.latest_report()
        except Exception as error:  # noqa: BLE001 - checking every endpoint's keys is slower, never wrong
            errors.append({"scope": "report", **CallFailure.of(error).as_dict()})
            previous = None
        return DriftWindow.after(previous, now=now, interval=interval)

    def _workspace_ids(
        self,
        runs: tuple[list[str], Any, Any] | None,
        deployments: list[Deployment] | None,
        secrets: list[StoredSecret] | None,
    ) -> list[str]:
        """Configured workspaces, then those of the broker's runs, of its deployments' endpoints (a cross-region
        deployment's endpoint is in a hub project) and of its secrets' tags, each once."""
        from_secrets = [secret.tags.get("workspace", "") for secret in secrets or ()]
        from_deployments = [
            endpoint_workspace(deployment.status.endpoint.id) or ""
            for deployment in deployments or ()
            if deployment.status.endpoint is not None and deployment.status.phase is not Phase.DELETED
        ]
        unique: dict[str, str] = {}
        for workspace_id in (
            *self._settings.workspaces,
            *(runs[0] if runs else ()),
            *from_deployments,
            *from_secrets,
        ):
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
        self,
        context: ScanContext,
        findings: Mapping[str, Finding],
        evaluated: Mapping[str, Rule],
        tally: ScanTally,
        live: Sequence[FindingRecord],
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
            for record in live
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
            tally.count(written.record, opened=transition.opened, resolved=transition.resolved)
        return current

    def _write(self, stored: StoredFinding | None, transition: Transition) -> StoredFinding | None:
        record = transition.record
        if record is None:
            if stored is not None:
                self._store.delete(stored.record.key)
            return None
        try:
            return self._store.save(record, stored.etag) if stored else self._store.create(record)
        except (RecordExistsError, RecordChangedError):
            LOGGER.info("a concurrent scan wrote finding %s first; its alerts are that scan's to send", record.key)
            transition.opened = transition.resolved = False
            return None

    # -- remediate -------------------------------------------------------------------------------------------------

    def _remediate(
        self, context: ScanContext, current: dict[str, StoredFinding], tally: ScanTally, *, now: datetime
    ) -> None:
        records = (stored.record for stored in current.values())
        actions = plan(self._policy, records, now=now, deployments=context.deployments_by_id)
        capped = sum(action.action.capped for action in actions)
        for action in actions:
            stored = current[action.finding_key]
            record, entry = self._remediator.take(action, stored.record, capped_planned=capped, now=now)
            tally.actions.append(
                {"findingId": record.key, "action": entry.action, "outcome": entry.outcome, "detail": entry.detail}
            )
            try:
                current[record.key] = self._store.save(record.audited(entry), stored.etag)
            except RecordChangedError:
                LOGGER.warning("finding %s changed during remediation; its audit entry is lost", record.key)
