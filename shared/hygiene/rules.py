"""Hygiene rules: small registered classes, each with an id, a severity, the sources it reads and the remediations
it allows (Cloud Custodian's filter pattern). A rule only observes; persisting, alerting and acting happen elsewhere.

"Unhealthy" is portal wording with no API value (azure-facts §1), so endpoint-unhealthy combines signals whose
mapping is configurable: the endpoint's Marketplace subscription no longer resolves, the subscription's status is
one of the unhealthy ones, or endpointState is not a healthy one for longer than a grace window.

Each rule also says what to do about its findings (`recommend`): the exact broker call when the finding is about a
Deployment resource (repair, re-POST, DELETE), what to do in Azure or in settings otherwise.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from datetime import timedelta
from enum import StrEnum
from typing import ClassVar

from shared.azure_ids import InvalidResourceIdError, WorkspaceId
from shared.deployment import Deployment, Phase
from shared.hygiene.context import ScanContext, Source
from shared.hygiene.findings import Finding, FindingRecord, Severity
from shared.hygiene.key_drift import compare, unfingerprinted
from shared.naming import InvalidNameError, SecretNames, key_vault_secret_names
from shared.ownership import MANAGED_BY_TAG, MANAGED_BY_VALUE
from shared.ports import Endpoint, StoredSecret
from shared.redaction import default_registry

FAILED_ENDPOINT_STATES = frozenset({"creationfailed", "deletionfailed"})
SUCCEEDED = "succeeded"
FAILED = "failed"
RUN_TAG = "brokerRunId"
# Signals of endpoint-unhealthy (the `signal` of each entry in its evidence's `signals`).
SUBSCRIPTION_MISSING = "subscription-missing"
SUBSCRIPTION_STATUS = "subscription-status"
ENDPOINT_STATE = "endpoint-state"
REPOST = "re-POST the same request (POST /api/deployments)"
OR_REPOST = "or re-POST the same request, POST /api/deployments"


class Remediation(StrEnum):
    REPORT = "report"
    DISABLE_SECRETS = "disable-secrets"
    DELETE = "delete"
    # endpoint-unhealthy only: repair the deployment, which re-subscribes a missing Marketplace subscription.
    RESUBSCRIBE = "resubscribe"


CLEAN_UP = frozenset({Remediation.REPORT, Remediation.DISABLE_SECRETS, Remediation.DELETE})


class Rule:
    id: ClassVar[str]
    severity: ClassVar[Severity]
    description: ClassVar[str]
    sources: ClassVar[frozenset[Source]] = frozenset({Source.WORKSPACE})
    remediations: ClassVar[frozenset[Remediation]] = frozenset({Remediation.REPORT})

    def evaluate(self, context: ScanContext) -> Iterable[Finding]:
        raise NotImplementedError

    def ready(self, context: ScanContext) -> bool:
        """Whether the scan-wide sources this rule reads loaded (per-workspace ones are checked per workspace)."""
        return all(context.available(source) for source in self.sources - {Source.WORKSPACE})

    def covers(self, context: ScanContext, record: FindingRecord) -> bool:
        """Whether this scan looked at `record`'s resource, so its absence from the findings means it is fixed."""
        if context.is_inconclusive(self.id, record.resource_id):
            return False
        return all(context.available(source, record.workspace_id) for source in self.sources)

    def recommend(self, finding: Finding, deployment: Deployment | None) -> str:
        """What to do about `finding`: the broker call that fixes it, naming `deployment` when it is about one."""
        if deployment is not None and deployment.in_flight:
            run = deployment.status.current_run_id
            return (
                f"Run {run} is working on deployment {deployment.id} ({deployment.status.phase}): follow it with "
                f"GET /api/runs/{run}, then look again; nothing to do while it runs"
            )
        return self.advice(finding, deployment)

    def advice(self, finding: Finding, deployment: Deployment | None) -> str:
        """The rule's own advice (`recommend` has dealt with deployments a run owns)."""
        return ""

    def finding(
        self,
        resource_id: str,
        workspace_id: str | None,
        summary: str,
        evidence: dict,
        *,
        origin_run_id: str | None = None,
    ) -> Finding:
        return Finding(
            rule=self.id,
            severity=self.severity,
            resource_id=resource_id,
            workspace_id=workspace_id,
            summary=summary,
            evidence=evidence,
            origin_run_id=origin_run_id,
        )

    def endpoint_finding(
        self,
        workspace_id: str,
        endpoint: Endpoint,
        summary: str,
        evidence: dict,
        *,
        grace: timedelta = timedelta(0),
    ) -> Finding:
        """A finding about an endpoint, naming what remediation may touch: the endpoint and, for one the broker
        made, its two Key Vault secrets."""
        managed = broker_managed(endpoint)
        names = endpoint_secret_names(workspace_id, endpoint.name) if managed else None
        return Finding(
            rule=self.id,
            severity=self.severity,
            resource_id=endpoint.id,
            workspace_id=workspace_id,
            summary=summary,
            evidence={**_endpoint_evidence(endpoint), **evidence},
            grace=grace,
            endpoint_name=endpoint.name,
            secret_names=(names.primary, names.secondary) if names else (),
            broker_managed=managed,
            origin_run_id=endpoint.tags.get(RUN_TAG) if managed else None,
        )


RULES: dict[str, type[Rule]] = {}


def register(rule: type[Rule]) -> type[Rule]:
    RULES[rule.id] = rule
    return rule


def broker_managed(endpoint: Endpoint) -> bool:
    return endpoint.tags.get(MANAGED_BY_TAG) == MANAGED_BY_VALUE


def endpoint_secret_names(workspace_id: str, endpoint_name: str) -> SecretNames | None:
    """The Key Vault secrets the broker keeps an endpoint's keys in; None for names it could never have made."""
    try:
        return key_vault_secret_names(WorkspaceId.parse(workspace_id), endpoint_name)
    except (InvalidResourceIdError, InvalidNameError):
        return None


def _repair(deployment: Deployment) -> str:
    return f"POST /api/deployments/{deployment.id}/repair"


def _delete(deployment: Deployment) -> str:
    return f"DELETE /api/deployments/{deployment.id}"


def _not_the_brokers(finding: Finding) -> str | None:
    if not finding.broker_managed:
        return (
            f"Endpoint '{finding.endpoint_name}' was not made by the broker, which never touches it: fix or delete it "
            "in its workspace (Azure AI Foundry, az ml serverless-endpoint)"
        )
    return None


def _unrecorded(
    finding: Finding, deployment: Deployment | None, fix: str = "repair it (POST /api/deployments/{id}/repair)"
) -> str | None:
    """The advice for a broker endpoint no live deployment records; None when one does."""
    if deployment is None:
        return (
            f"No broker deployment records endpoint '{finding.endpoint_name}' (it predates deployment records, or its "
            f"record is gone): {REPOST} to bring it under a deployment, then {fix}; or delete it in its "
            "workspace"
        )
    if deployment.status.phase is Phase.DELETED:
        return (
            f"Deployment {deployment.id} was deleted by run {deployment.status.delete_run_id}, yet endpoint "
            f"'{finding.endpoint_name}' is still there: delete it in its workspace, or {REPOST} to deploy it "
            "again"
        )
    return None


def _endpoint_failed(endpoint: Endpoint) -> bool:
    return (
        endpoint.provisioning_state.lower() == FAILED
        or (endpoint.endpoint_state or "").lower() in FAILED_ENDPOINT_STATES
    )


def _endpoint_evidence(endpoint: Endpoint) -> dict[str, object]:
    return {
        "endpointName": endpoint.name,
        "modelId": endpoint.model_id,
        "provisioningState": endpoint.provisioning_state,
        "endpointState": endpoint.endpoint_state,
        "marketplaceSubscriptionId": endpoint.marketplace_subscription_id,
        "managedByBroker": broker_managed(endpoint),
    }


@register
class EndpointUnhealthy(Rule):
    id = "endpoint-unhealthy"
    severity = Severity.HIGH
    description = (
        "An endpoint whose Marketplace subscription is gone, Suspended or Unsubscribed, or whose endpointState has "
        "not been healthy for longer than the grace window: it cannot serve requests."
    )
    remediations = CLEAN_UP | {Remediation.RESUBSCRIBE}

    def advice(self, finding: Finding, deployment: Deployment | None) -> str:
        blocked = _not_the_brokers(finding) or _unrecorded(finding, deployment)
        if blocked or deployment is None:
            return blocked or ""
        first = (finding.evidence.get("signals") or [{}])[0]
        status = str(first.get("status") or "").lower()
        if first.get("signal") == SUBSCRIPTION_MISSING or (
            first.get("signal") == SUBSCRIPTION_STATUS and status == "unsubscribed"
        ):
            return (
                f"Re-POST the same request (POST /api/deployments) or {_repair(deployment)} to re-subscribe; "
                f"or {_delete(deployment)}"
            )
        if first.get("signal") == SUBSCRIPTION_STATUS:
            return (
                f"The Marketplace subscription is {first.get('status')} (for Suspended, usually the Azure "
                f"subscription's billing): fix that, then {_repair(deployment)}; or {_delete(deployment)}"
            )
        return f"{_repair(deployment)} to provision the endpoint again ({OR_REPOST}); or {_delete(deployment)}"

    def evaluate(self, context: ScanContext) -> Iterable[Finding]:
        settings = context.settings
        for inventory in context.reachable():
            subscriptions = {subscription.id.lower(): subscription for subscription in inventory.subscriptions}
            for endpoint in inventory.endpoints:
                if _endpoint_failed(endpoint):
                    continue  # endpoint-failed reports it
                signals = []
                subscription_id = endpoint.marketplace_subscription_id
                if subscription_id:
                    subscription = subscriptions.get(subscription_id.lower())
                    if subscription is None and settings.missing_subscription_unhealthy:
                        signals.append(
                            {
                                "signal": SUBSCRIPTION_MISSING,
                                "subscriptionId": subscription_id,
                                "detail": f"subscription {subscription_id} not found",
                            }
                        )
                    elif (
                        subscription and (subscription.status or "").lower() in settings.unhealthy_subscription_statuses
                    ):
                        signals.append(
                            {
                                "signal": SUBSCRIPTION_STATUS,
                                "subscriptionId": subscription.id,
                                "status": subscription.status,
                                "detail": f"subscription {subscription.name} is {subscription.status}",
                            }
                        )
                # A subscription signal is conclusive at once; an endpoint state may be a passing transition.
                grace = timedelta(0) if signals else settings.endpoint_state_grace
                state = endpoint.endpoint_state
                if state and state.lower() not in settings.healthy_endpoint_states:
                    signals.append({"signal": ENDPOINT_STATE, "state": state, "detail": f"endpointState is {state}"})
                if signals:
                    details = "; ".join(signal["detail"] for signal in signals)
                    summary = f"Endpoint '{endpoint.name}' is unhealthy: {details}."
                    yield self.endpoint_finding(
                        inventory.workspace_id, endpoint, summary, {"signals": signals}, grace=grace
                    )


@register
class EndpointFailed(Rule):
    id = "endpoint-failed"
    severity = Severity.HIGH
    description = (
        "An endpoint whose creation or deletion failed (provisioningState Failed, CreationFailed, DeletionFailed)."
    )
    remediations = CLEAN_UP

    def advice(self, finding: Finding, deployment: Deployment | None) -> str:
        blocked = _not_the_brokers(finding) or _unrecorded(finding, deployment)
        if blocked or deployment is None:
            return blocked or ""
        if str(finding.evidence.get("endpointState") or "").lower() == "deletionfailed":
            return (
                f"{_delete(deployment)} to delete it again; or {_repair(deployment)} to keep it and provision it again"
            )
        return f"{_repair(deployment)} to provision it again ({OR_REPOST}); or {_delete(deployment)} to remove it"

    def evaluate(self, context: ScanContext) -> Iterable[Finding]:
        for inventory in context.reachable():
            for endpoint in inventory.endpoints:
                if _endpoint_failed(endpoint):
                    summary = (
                        f"Endpoint '{endpoint.name}' failed: provisioningState {endpoint.provisioning_state}, "
                        f"endpointState {endpoint.endpoint_state}."
                    )
                    yield self.endpoint_finding(inventory.workspace_id, endpoint, summary, {})


@register
class SecretsMissing(Rule):
    id = "secrets-missing"
    severity = Severity.HIGH
    description = (
        "A provisioned endpoint the broker made whose two Key Vault secrets are missing, or whose secrets no longer "
        "hold the endpoint's keys (listKeys, on the key-drift cadence; compared by fingerprint tag, never recorded)."
    )
    sources = frozenset({Source.WORKSPACE, Source.SECRETS, Source.RUNS})

    def advice(self, finding: Finding, deployment: Deployment | None) -> str:
        unrecorded = _unrecorded(finding, deployment)
        if unrecorded or deployment is None:
            return unrecorded or ""
        return (
            f"{_repair(deployment)} to store the endpoint's current keys in Key Vault again ({OR_REPOST}); "
            "consumers reading the old secret values fail until then"
        )

    def evaluate(self, context: ScanContext) -> Iterable[Finding]:
        verify = context.settings.verify_key_values
        reported = {record.resource_id.lower() for record in context.live_findings if record.rule == self.id}
        findings: list[Finding] = []
        to_verify: list[tuple[str, Endpoint, tuple[StoredSecret, StoredSecret]]] = []
        for inventory in context.reachable():
            if inventory.workspace_id.lower() in context.busy_workspaces:
                continue
            for endpoint in inventory.endpoints:
                if not broker_managed(endpoint) or endpoint.provisioning_state.lower() != SUCCEEDED:
                    continue
                names = endpoint_secret_names(inventory.workspace_id, endpoint.name)
                if names is None:
                    continue
                primary, secondary = (
                    context.secrets_by_name.get(name.lower()) for name in (names.primary, names.secondary)
                )
                missing = [
                    name for name, secret in ((names.primary, primary), (names.secondary, secondary)) if secret is None
                ]
                if missing:
                    summary = f"Endpoint '{endpoint.name}' has no Key Vault secret {', '.join(missing)}."
                    findings.append(
                        self.endpoint_finding(inventory.workspace_id, endpoint, summary, {"missingSecrets": missing})
                    )
                # Disabled secrets were disabled on purpose: nothing to compare.
                elif (
                    verify
                    and primary
                    and secondary
                    and primary.enabled
                    and secondary.enabled
                    and _key_check_due(context, endpoint, (primary, secondary), reported)
                ):
                    to_verify.append((inventory.workspace_id, endpoint, (primary, secondary)))
        mismatches = context.parallel(lambda item: self._mismatch(context, *item), to_verify)
        return findings + [finding for finding in mismatches if finding is not None]

    def _mismatch(
        self, context: ScanContext, workspace_id: str, endpoint: Endpoint, secrets: tuple[StoredSecret, StoredSecret]
    ) -> Finding | None:
        store = context.secret_store
        if store is None:
            return None
        try:
            keys = context.retrier.call(lambda: context.machine_learning.list_keys(workspace_id, endpoint.name))
            default_registry.register(keys.primary, keys.secondary)
            compared = [
                compare(store, secret, key, context.retrier.call)
                for secret, key in zip(secrets, (keys.primary, keys.secondary), strict=True)
            ]
        except Exception as error:  # noqa: BLE001 - one unreadable endpoint must not end the rule for the others
            context.mark_inconclusive(self.id, endpoint.id, error)
            context.key_drift.could_not_check(endpoint.id)
            return None
        context.key_drift.checked_by(by for _, by in compared)
        differing = [secret.name for secret, (matches, _) in zip(secrets, compared, strict=True) if not matches]
        if not differing:
            return None
        summary = f"Key Vault secret {', '.join(differing)} of endpoint '{endpoint.name}' no longer matches its keys."
        return self.endpoint_finding(workspace_id, endpoint, summary, {"mismatchedSecrets": differing})


def _key_check_due(
    context: ScanContext, endpoint: Endpoint, secrets: tuple[StoredSecret, StoredSecret], reported: set[str]
) -> bool:
    """Whether this scan compares the endpoint's keys with its secrets (key_drift.py says when)."""
    return endpoint.id.lower() in reported or unfingerprinted(secrets) or context.key_drift.window.due(endpoint.id)


@register
class SecretsOrphaned(Rule):
    id = "secrets-orphaned"
    severity = Severity.MEDIUM
    description = "Key Vault secrets the broker wrote for an endpoint that no longer exists in its workspace."
    sources = frozenset({Source.WORKSPACE, Source.SECRETS, Source.RUNS})
    remediations = CLEAN_UP

    def advice(self, finding: Finding, deployment: Deployment | None) -> str:
        names = ", ".join(finding.secret_names)
        if deployment is None or deployment.status.phase is Phase.DELETED:
            return (
                f"Delete the leftover secrets {names} in Key Vault (or set "
                "HYGIENE_REMEDIATION=secrets-orphaned=delete to have the scan do it after a warned grace period); "
                f"{REPOST} instead if the endpoint should exist"
            )
        name = finding.evidence.get("endpointName")
        return (
            f"Endpoint '{name}' of deployment {deployment.id} is gone: {_repair(deployment)} to provision it again "
            f"({OR_REPOST}); or {_delete(deployment)} to remove the deployment and its secrets"
        )

    def evaluate(self, context: ScanContext) -> Iterable[Finding]:
        groups: dict[tuple[str, str], list[StoredSecret]] = defaultdict(list)
        for secret in context.secrets or ():
            tags = secret.tags
            if tags.get(MANAGED_BY_TAG) == MANAGED_BY_VALUE and tags.get("workspace") and tags.get("endpoint"):
                groups[(tags["workspace"].lower(), tags["endpoint"].lower())].append(secret)
        for (workspace_key, endpoint_name), secrets in sorted(groups.items()):
            inventory = context.inventory(workspace_key)
            if inventory is None or not inventory.reachable or workspace_key in context.busy_workspaces:
                continue
            if any(endpoint.name.lower() == endpoint_name for endpoint in inventory.endpoints):
                continue
            names = tuple(sorted(secret.name for secret in secrets))
            yield Finding(
                rule=self.id,
                severity=self.severity,
                resource_id=f"{inventory.workspace_id}/serverlessEndpoints/{endpoint_name}",
                workspace_id=inventory.workspace_id,
                summary=f"Key Vault secrets {', '.join(names)} belong to endpoint '{endpoint_name}', which is gone.",
                evidence={
                    "endpointName": endpoint_name,
                    "secrets": [{"name": secret.name, "enabled": secret.enabled} for secret in secrets],
                    "runId": secrets[0].tags.get("run"),
                },
                secret_names=names,
                broker_managed=True,
                origin_run_id=secrets[0].tags.get("run"),
            )


@register
class EndpointUnmanaged(Rule):
    id = "endpoint-unmanaged"
    severity = Severity.INFO
    description = (
        "An endpoint the broker did not make (no managedBy tag): it has no run record, audit or Key Vault keys."
    )

    def advice(self, finding: Finding, deployment: Deployment | None) -> str:
        return (
            f"Endpoint '{finding.endpoint_name}' was made outside the broker (no {MANAGED_BY_TAG} tag), so the broker "
            "never touches it: leave it to its owner, delete it in its workspace if it has none, or set "
            f"HYGIENE_DISABLED_RULES={self.id} to stop reporting such endpoints"
        )

    def evaluate(self, context: ScanContext) -> Iterable[Finding]:
        for inventory in context.reachable():
            for endpoint in inventory.endpoints:
                if not broker_managed(endpoint):
                    summary = f"Endpoint '{endpoint.name}' was not made by the broker."
                    yield self.endpoint_finding(inventory.workspace_id, endpoint, summary, {})


@register
class RunStuck(Rule):
    id = "run-stuck"
    severity = Severity.MEDIUM
    description = (
        "A deployment run that has not reached a terminal status within the timeout (counted from its approval for a "
        "run that waited for one; a run waiting for an approver is not stuck)."
    )
    sources = frozenset({Source.RUNS})

    def recommend(self, finding: Finding, deployment: Deployment | None) -> str:
        # The run is the deployment's current one: the base class's "a run is working on it" is this very finding.
        return self.advice(finding, deployment)

    def advice(self, finding: Finding, deployment: Deployment | None) -> str:
        run_id = finding.evidence.get("runId")
        blocked = (
            f"; until it ends, requests for deployment {deployment.id} join it instead of starting a repair"
            if deployment is not None
            else ""
        )
        return (
            f"GET /api/runs/{run_id} to see the step it stopped at, and look for its work item in the "
            f"deployment-work-poison queue and the worker's logs{blocked}"
        )

    def evaluate(self, context: ScanContext) -> Iterable[Finding]:
        timeout = context.settings.run_stuck_after
        for run in context.active_runs or ():
            if run.awaiting_approval:
                continue
            decided_at = run.approval.decided_at if run.approval else None
            if context.now - (decided_at or run.created_at) > timeout:
                yield self.finding(
                    run_resource_id(run.id),
                    run.request.workspace_id,
                    f"Run {run.id} has been {run.status.value} since {run.updated_at.isoformat()} "
                    f"(created {run.created_at.isoformat()}).",
                    {
                        "runId": run.id,
                        "status": run.status.value,
                        "operation": run.operation,
                        "ticket": run.ticket,
                        "createdAt": run.created_at.isoformat(),
                        "updatedAt": run.updated_at.isoformat(),
                    },
                    origin_run_id=run.id,
                )


def run_resource_id(run_id: str) -> str:
    return f"runs/{run_id}"


@register
class WorkspaceUnreachable(Rule):
    id = "workspace-unreachable"
    severity = Severity.HIGH
    description = "A workspace the scan could not read (403, 404, 5xx, throttled past the retry budget)."
    sources = frozenset()

    def advice(self, finding: Finding, deployment: Deployment | None) -> str:
        status = finding.evidence.get("status")
        if status in (401, 403):
            return (
                "Give the broker's identity a role on the workspace that can read serverless endpoints and "
                "Marketplace subscriptions (Azure AI Developer), or remove it from HYGIENE_WORKSPACES"
            )
        if finding.evidence.get("code") == "InvalidResourceIdError":
            return "Correct or remove this id in HYGIENE_WORKSPACES: it is not a workspace's ARM resource id"
        if status == 404:
            return (
                "Remove the workspace from HYGIENE_WORKSPACES; if the broker deployed there, list its deployments "
                f"(GET /api/deployments?workspaceId={finding.resource_id}) and DELETE /api/deployments/{{id}} each"
            )
        return (
            "Usually transient (throttling, a 5xx): it resolves when Azure answers again; if it persists, check Azure"
        )

    def evaluate(self, context: ScanContext) -> Iterable[Finding]:
        for inventory in context.inventories.values():
            if inventory.failure is not None:
                failure = inventory.failure
                yield self.finding(
                    inventory.workspace_id,
                    inventory.workspace_id,
                    f"Workspace could not be scanned: {failure.status} {failure.code}: {failure.message}",
                    failure.as_dict(),
                )

    def covers(self, context: ScanContext, record: FindingRecord) -> bool:
        return context.inventory(record.workspace_id) is not None
