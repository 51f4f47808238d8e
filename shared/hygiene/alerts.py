"""Alerts about findings: CloudEvents on the `hygiene-alerts` queue and, when configured, a webhook posting the
Azure Monitor common alert schema (what Logic Apps, ITSM connectors and action-group consumers already parse).

Event ids derive from the finding, its occurrence and the alert kind, so a re-delivered alert carries the same id
and consumers can drop the duplicate. Alert data is built from the finding record, whose evidence never holds a key.
Both carry the deployment the finding is about (deploymentId, the deploying runId, its requests' tickets) and the
recommended action, so whoever receives the alert knows which call fixes it; a CloudEvent also carries the
deployment id as its `deploymentid` extension attribute, for subscriptions that filter on it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any, Protocol

import requests

from shared.hygiene.findings import AlertKind, FindingRecord
from shared.ports import MessageQueuePort

LOGGER = logging.getLogger(__name__)
EVENT_TYPE_PREFIX = "com.contoso.broker.hygiene.finding"
EVENT_SOURCE = "/serverless-deployment-broker/hygiene"
QUEUE_CHANNEL = "queue"
WEBHOOK_CHANNEL = "webhook"
RETRYABLE_STATUSES = frozenset({408, 429, 500, 502, 503, 504})
# CloudEvents extension attribute names are lowercase letters and digits only.
DEPLOYMENT_EXTENSION = "deploymentid"


class AlertDeliveryError(Exception):
    """An alert could not be delivered; it stays in the finding's outbox for the next scan."""


class AlertChannel(Protocol):
    name: str

    def deliver(self, record: FindingRecord, kind: AlertKind, *, time: datetime, extra: Mapping[str, Any]) -> None: ...


def event_type(kind: AlertKind) -> str:
    return f"{EVENT_TYPE_PREFIX}.{kind.value}"


def _finding_data(record: FindingRecord, kind: AlertKind, extra: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "findingId": record.key,
        "occurrence": record.occurrence,
        "kind": kind.value,
        "rule": record.rule,
        "severity": record.severity.value,
        "state": record.state.value,
        "workspaceId": record.workspace_id,
        "resourceId": record.resource_id,
        "summary": record.summary,
        "deploymentId": record.deployment_id,
        "runId": record.run_id,
        "tickets": list(record.tickets),
        "recommendedAction": record.recommended_action,
        "evidence": record.evidence,
        "firstSeen": record.first_seen.isoformat(),
        "lastSeen": record.last_seen.isoformat(),
        "resolvedAt": record.resolved_at.isoformat() if record.resolved_at else None,
        **extra,
    }


def cloud_event(
    record: FindingRecord, kind: AlertKind, *, time: datetime, extra: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    event = {
        "specversion": "1.0",
        "id": f"{record.key}/{record.occurrence}/{kind.value}",
        "source": EVENT_SOURCE,
        "type": event_type(kind),
        "subject": record.resource_id,
        "time": time.isoformat(),
        "datacontenttype": "application/json",
        "data": _finding_data(record, kind, extra or {}),
    }
    if record.deployment_id:
        event[DEPLOYMENT_EXTENSION] = record.deployment_id
    return event


def common_alert(
    record: FindingRecord, kind: AlertKind, *, time: datetime, extra: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """The Azure Monitor common alert schema: essentials for routing, the finding itself as alert context."""
    resolved = kind is AlertKind.RESOLVED
    fired_at = record.opened_at or record.first_seen
    return {
        "schemaId": "azureMonitorCommonAlertSchema",
        "data": {
            "essentials": {
                "alertId": f"{EVENT_SOURCE}/findings/{record.key}/{record.occurrence}",
                "alertRule": record.rule,
                "severity": record.severity.azure_monitor,
                "signalType": "Log",
                "monitorCondition": "Resolved" if resolved else "Fired",
                "monitoringService": "Custom",
                "alertTargetIDs": [record.resource_id.lower()],
                "configurationItems": [record.resource_id.rstrip("/").rsplit("/", 1)[-1]],
                "originAlertId": f"{record.key}/{record.occurrence}/{kind.value}",
                "firedDateTime": fired_at.isoformat(),
                "resolvedDateTime": (record.resolved_at or time).isoformat() if resolved else None,
                "description": record.summary,
                "essentialsVersion": "1.0",
                "alertContextVersion": "1.0",
            },
            "alertContext": _finding_data(record, kind, extra or {}),
            # Action groups and ITSM connectors show customProperties as they are: strings only.
            "customProperties": {
                "eventType": event_type(kind),
                **({"deploymentId": record.deployment_id} if record.deployment_id else {}),
                **({"runId": record.run_id} if record.run_id else {}),
                **({"tickets": ", ".join(record.tickets)} if record.tickets else {}),
                **({"recommendedAction": record.recommended_action} if record.recommended_action else {}),
            },
        },
    }


class QueueAlertChannel:
    name = QUEUE_CHANNEL

    def __init__(self, queue: MessageQueuePort) -> None:
        self._queue = queue

    def deliver(self, record: FindingRecord, kind: AlertKind, *, time: datetime, extra: Mapping[str, Any]) -> None:
        self._queue.send(cloud_event(record, kind, time=time, extra=extra))


class WebhookAlertChannel:
    """POSTs the common alert schema; retries connection failures, 408, 429 and 5xx, honouring Retry-After."""

    name = WEBHOOK_CHANNEL

    def __init__(
        self,
        url: str,
        *,
        attempts: int,
        timeout_seconds: float,
        backoff_seconds: float,
        max_wait_seconds: float,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._url = url
        self._attempts = attempts
        self._timeout = timeout_seconds
        self._backoff = backoff_seconds
        self._max_wait = max_wait_seconds
        self._sleep = sleep
        self._session = requests.Session()

    def deliver(self, record: FindingRecord, kind: AlertKind, *, time: datetime, extra: Mapping[str, Any]) -> None:
        payload = common_alert(record, kind, time=time, extra=extra)
        problem = ""
        for attempt in range(self._attempts):
            retry_after = None
            try:
                response = self._session.post(self._url, json=payload, timeout=self._timeout)
            except requests.RequestException as error:
                problem = type(error).__name__
            else:
                if response.status_code < 300:
                    return
                problem = f"HTTP {response.status_code}"
                if response.status_code not in RETRYABLE_STATUSES:
                    break
                retry_after = _seconds(response.headers.get("Retry-After"))
            if attempt + 1 < self._attempts:
                self._sleep(min(retry_after or self._backoff * 2**attempt, self._max_wait))
        # The URL may embed a key (Logic Apps signatures), so it stays out of the message.
        raise AlertDeliveryError(f"webhook answered {problem} after {attempt + 1} attempt(s)")


def _seconds(value: str | None) -> float | None:
    try:
        seconds = float(value) if value else None
    except ValueError:
        return None
    return seconds if seconds and seconds > 0 else None
