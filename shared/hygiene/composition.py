"""Builds the hygiene scanner and the findings store from settings, once per worker process (the composition root).

The run store is both the scan's run source and its deployment source (listing and ETag-safe updates). The repair
port behind the resubscribe remediation builds the deployment service only when first called, so scans that never
resubscribe (the default) never build it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime
from functools import cache

from azure.core.credentials import TokenCredential

from shared.adapters.arm import ArmClient
from shared.adapters.authorization import AuthorizationAdapter
from shared.adapters.identity import broker_credential
from shared.adapters.keyvault import KeyVaultAdapter
from shared.adapters.machine_learning import MachineLearningAdapter
from shared.adapters.monitor import configure_telemetry
from shared.adapters.queues import JsonQueue
from shared.adapters.run_store import RunStore
from shared.adapters.tables import DocumentTable
from shared.config import Settings
from shared.hygiene.alerts import AlertChannel, QueueAlertChannel, WebhookAlertChannel
from shared.hygiene.remediation import RepairPort
from shared.hygiene.scan import HygieneScanner
from shared.hygiene.settings import HygieneSettings
from shared.hygiene.store import FindingStore


def utc_now() -> datetime:
    return datetime.now(UTC)


@cache
def hygiene_scanner() -> HygieneScanner:
    return build_hygiene_scanner(Settings.from_env(), HygieneSettings.from_env())


@cache
def finding_store() -> FindingStore:
    return build_finding_store(Settings.from_env(), HygieneSettings.from_env())


def build_finding_store(settings: Settings, hygiene: HygieneSettings) -> FindingStore:
    return FindingStore(DocumentTable.open(settings.storage, hygiene.findings_table))


def build_hygiene_scanner(
    settings: Settings,
    hygiene: HygieneSettings,
    *,
    credential: TokenCredential | None = None,
    clock: Callable[[], datetime] = utc_now,
    sleep: Callable[[float], None] = time.sleep,
) -> HygieneScanner:
    configure_telemetry()
    credential = credential or broker_credential()
    # No pipeline retries: the scan's own policy retries, bounded, so one bad workspace cannot stall the scan.
    arm = ArmClient(settings.arm_url, credential, retry_total=0)
    channels: list[AlertChannel] = [QueueAlertChannel(JsonQueue.open(settings.storage, hygiene.alerts_queue))]
    if hygiene.webhook_url:
        channels.append(
            WebhookAlertChannel(
                hygiene.webhook_url,
                attempts=hygiene.webhook_attempts,
                timeout_seconds=hygiene.webhook_timeout_seconds,
                backoff_seconds=hygiene.retry_backoff_seconds,
                max_wait_seconds=hygiene.max_retry_after_seconds,
                sleep=sleep,
            )
        )
    return HygieneScanner(
        settings=hygiene,
        machine_learning=MachineLearningAdapter(arm),
        secret_store=KeyVaultAdapter(settings.key_vault_url, credential) if settings.key_vault_url else None,
        runs=RunStore(DocumentTable.open(settings.storage, settings.runs_table)),
        store=build_finding_store(settings, hygiene),
        channels=channels,
        clock=clock,
        sleep=sleep,
        repair=repair_port(AuthorizationAdapter(arm, credential, arm_url=settings.arm_url)),
    )


def repair_port(authorization: AuthorizationAdapter) -> RepairPort:
    """`deployment_service().repair(id, caller=<the broker's own object id>)`: the broker repairs as itself, so the
    run, its events and the deployment's requests name the broker as the caller."""

    def repair(deployment_id: str) -> object:
        from shared.deployments.composition import deployment_service

        return deployment_service().repair(deployment_id, caller=authorization.own_principal_id())

    return repair
