"""Remediation of open findings, only as far as configuration allows, every step audited on the finding.

- report (every rule's default): nothing is touched.
- disable-secrets: the endpoint's Key Vault secrets are disabled, so consumers fail closed (reversible).
- delete: the endpoint and its secrets are deleted (secrets soft-deleted, never purged), but only after a grace
  period that began when a warning alert was delivered (Cloud Custodian's mark-for-op): the first scan schedules
  it, a later scan past the grace period acts, and a finding that resolves meanwhile cancels it.
- resubscribe (endpoint-unhealthy only, `HYGIENE_REMEDIATION=endpoint-unhealthy=resubscribe`): the endpoint's
  Deployment is repaired, as `POST /api/deployments/{id}/repair` by the broker's own identity would: a repair run
  re-subscribes the deleted (or Unsubscribed) Marketplace subscription, provisions the endpoint and stores its keys
  again, and ends Succeeded only when Azure reports every condition True. It acts only when the evidence names the
  subscription, only on a broker-made endpoint that has a deployment no run owns, and once per occurrence of the
  finding (a repair the broker refused is tried again next scan; one it started is never started twice). It is off
  by default, like every remediation, and deliberately so: re-subscribing accepts the Marketplace offer's terms and
  its billing again, on the Azure subscription's account; that is a person's decision, taken here once, in
  configuration, or per deployment with POST /api/deployments/{id}/repair.
Only resources the broker made are ever touched. Dry run plans and audits but touches nothing and warns nobody.
When a scan would take more actions than the cap (every action but scheduling a deletion counts), it takes none
(Cloud Custodian's max-resources): so many at once more likely means an outage or a bug than that many broken
endpoints.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum

from shared.deployment import IN_FLIGHT_PHASES, Deployment, Phase
from shared.hygiene.findings import AlertKind, AuditEntry, FindingRecord, FindingState, Outcome
from shared.hygiene.inventory import CallFailure, ScanMachineLearningPort
from shared.hygiene.rules import RULES, SUBSCRIPTION_MISSING, SUBSCRIPTION_STATUS, Remediation
from shared.hygiene.settings import HygieneSettings, HygieneSettingsError
from shared.ports import SecretStorePort

LOGGER = logging.getLogger(__name__)
# Repairs a deployment by id, as POST /api/deployments/{id}/repair does (DeploymentService.repair): its answer,
# a Submission (None when there is no such deployment).
RepairPort = Callable[[str], object]
# A run owns these deployments; a deleted one has nothing to re-subscribe.
NOT_REPAIRABLE = IN_FLIGHT_PHASES | {Phase.DELETED}


class Action(StrEnum):
    DISABLE_SECRETS = "disable-secrets"
    SCHEDULE_DELETION = "schedule-deletion"
    DELETE = "delete"
    RESUBSCRIBE = "resubscribe"

    @property
    def capped(self) -> bool:
        """Whether it counts against HYGIENE_MAX_REMEDIATIONS (all but a warning, which changes nothing in Azure)."""
        return self is not Action.SCHEDULE_DELETION


@dataclass(frozen=True)
class RemediationPolicy:
    modes: Mapping[str, Remediation] = field(default_factory=dict)
    dry_run: bool = True
    delete_grace: timedelta = timedelta(hours=24)
    max_actions: int = 10

    @classmethod
    def from_settings(cls, settings: HygieneSettings) -> RemediationPolicy:
        """The policy, refusing unknown rules, unknown modes and modes a rule does not allow (e.g. deleting an
        endpoint the broker did not make)."""
        modes: dict[str, Remediation] = {}
        for rule_id, mode in settings.remediation.items():
            rule = RULES.get(rule_id)
            if rule is None:
                raise HygieneSettingsError(f"HYGIENE_REMEDIATION: no rule '{rule_id}'; rules: {', '.join(RULES)}.")
            allowed = ", ".join(sorted(rule.remediations))
            if mode not in rule.remediations:
                raise HygieneSettingsError(f"HYGIENE_REMEDIATION: {rule_id} allows {allowed}, not '{mode}'.")
            modes[rule_id] = Remediation(mode)
        return cls(
            modes=modes,
            dry_run=settings.dry_run,
            delete_grace=settings.delete_grace,
            max_actions=settings.max_remediations,
        )

    def mode_for(self, rule_id: str) -> Remediation:
        return self.modes.get(rule_id, Remediation.REPORT)


@dataclass(frozen=True)
class PlannedAction:
    finding_key: str
    action: Action
    detail: str


def plan(
    policy: RemediationPolicy,
    records: Iterable[FindingRecord],
    *,
    now: datetime,
    deployments: Mapping[str, Deployment] | None = None,
) -> list[PlannedAction]:
    """What this scan would do about the open findings, before the cap and dry run are applied. `deployments` are
    the broker's, by id, as this scan read them (resubscribe acts only on one of them)."""
    deployments = deployments or {}
    planned = []
    for record in records:
        mode = policy.mode_for(record.rule)
        if mode is Remediation.REPORT or record.state is not FindingState.OPEN or not record.broker_managed:
            continue
        if mode is Remediation.DISABLE_SECRETS and record.secret_names:
            if not record.done_since_opened(Action.DISABLE_SECRETS):
                planned.append(
                    PlannedAction(record.key, Action.DISABLE_SECRETS, f"disable {', '.join(record.secret_names)}")
                )
        elif mode is Remediation.DELETE and not record.done_since_opened(Action.DELETE):
            if record.deletion_warned_at is None:
                if record.done_since_opened(Action.SCHEDULE_DELETION):
                    continue  # the warning is queued but not delivered yet; the grace period has not begun
                detail = f"warn, then {_deletion_detail(record)} once {policy.delete_grace} have passed"
                planned.append(PlannedAction(record.key, Action.SCHEDULE_DELETION, detail))
            elif now >= record.deletion_warned_at + policy.delete_grace:
                planned.append(PlannedAction(record.key, Action.DELETE, _deletion_detail(record)))
        elif mode is Remediation.RESUBSCRIBE and _resubscribable(record, deployments):
            detail = (
                f"repair deployment {record.deployment_id} (POST /api/deployments/{record.deployment_id}/repair), "
                "re-subscribing its Marketplace subscription"
            )
            planned.append(PlannedAction(record.key, Action.RESUBSCRIBE, detail))
    return planned


def _resubscribable(record: FindingRecord, deployments: Mapping[str, Deployment]) -> bool:
    deployment = deployments.get(record.deployment_id) if record.deployment_id else None
    if deployment is None or deployment.status.phase in NOT_REPAIRABLE:
        return False
    signals = {signal.get("signal") for signal in record.evidence.get("signals") or ()}
    about_subscription = bool(signals & {SUBSCRIPTION_MISSING, SUBSCRIPTION_STATUS})
    return about_subscription and not record.done_since_opened(Action.RESUBSCRIBE)


def _deletion_detail(record: FindingRecord) -> str:
    targets = ([f"endpoint {record.endpoint_name}"] if record.endpoint_name else []) + list(record.secret_names)
    return f"delete {', '.join(targets)}"


class Remediator:
    def __init__(
        self,
        policy: RemediationPolicy,
        machine_learning: ScanMachineLearningPort,
        secret_store: SecretStorePort | None,
        *,
        alert_channels: Sequence[str],
        repair: RepairPort | None = None,
    ) -> None:
        self.policy = policy
        self._ml = machine_learning
        self._secrets = secret_store
        self._alert_channels = list(alert_channels)
        self._repair = repair

    def take(
        self, action: PlannedAction, record: FindingRecord, *, capped_planned: int, now: datetime
    ) -> tuple[FindingRecord, AuditEntry]:
        """Take one planned action as dry run, the cap and the action allow: the record to save (a scheduled
        deletion queues its warning alert on it) and the audit entry saying what happened."""
        policy = self.policy
        if policy.dry_run:
            return record, AuditEntry(
                at=now, action=action.action, outcome=Outcome.PLANNED, dry_run=True, detail=action.detail
            )
        if action.action is Action.SCHEDULE_DELETION:
            # The grace period starts when this warning is delivered, not now (see delivery.py).
            warned = record.with_alerts(AlertKind.DELETION_SCHEDULED, self._alert_channels)
            return warned, AuditEntry(at=now, action=action.action, outcome=Outcome.DONE, detail=action.detail)
        if capped_planned > policy.max_actions:
            detail = (
                f"{action.detail}: not done, {capped_planned} actions planned exceed "
                f"HYGIENE_MAX_REMEDIATIONS={policy.max_actions}"
            )
            return record, AuditEntry(at=now, action=action.action, outcome=Outcome.SKIPPED, detail=detail)
        return record, self._apply(action, record, now=now)

    def _apply(self, action: PlannedAction, record: FindingRecord, *, now: datetime) -> AuditEntry:
        detail = action.detail
        try:
            if action.action is Action.RESUBSCRIBE:
                detail = self._resubscribe(record, action.detail)
            elif action.action is Action.DISABLE_SECRETS:
                for name in record.secret_names:
                    self._secret_store().set_enabled(name, False)
            elif action.action is Action.DELETE:
                if record.endpoint_name and record.workspace_id:
                    self._ml.begin_delete_endpoint(record.workspace_id, record.endpoint_name)
                for name in record.secret_names:
                    self._secret_store().delete_secret(name)
        except Exception as error:  # noqa: BLE001 - a failed action is audited and retried next scan
            failure = CallFailure.of(error)
            LOGGER.warning("remediation %s of finding %s failed: %s", action.action, record.key, failure.code)
            detail = f"{action.detail}: {failure.status} {failure.code}: {failure.message}"
            return AuditEntry(at=now, action=action.action, outcome=Outcome.FAILED, detail=detail)
        return AuditEntry(at=now, action=action.action, outcome=Outcome.DONE, detail=detail)

    def _resubscribe(self, record: FindingRecord, detail: str) -> str:
        """Repair the finding's deployment; what the broker answered, or RepairRefusedError."""
        if self._repair is None:
            raise HygieneSettingsError("no repair port is wired, so endpoint-unhealthy cannot be resubscribed.")
        assert record.deployment_id, "only findings with a deployment are planned for resubscribe"
        answer = self._repair(record.deployment_id)
        if answer is None:
            raise RepairRefusedError(f"deployment {record.deployment_id} no longer exists")
        problem = getattr(answer, "problem", None)
        if problem is not None:
            raise RepairRefusedError(f"{problem.kind.slug}: {problem.detail}")
        run = getattr(answer, "run", None)
        kind = getattr(answer, "answer", "answered")
        if run is None:
            return f"{detail}: {kind}, no run needed (Azure already reports the deployment whole)"
        return f"{detail}: {kind} run {run.id}"

    def _secret_store(self) -> SecretStorePort:
        if self._secrets is None:
            raise HygieneSettingsError("AZURE_KEYVAULT_URL is not set, so secrets cannot be remediated.")
        return self._secrets


class RepairRefusedError(Exception):
    """The broker refused to repair the deployment (it is gone, being deleted, or a preflight check failed)."""
