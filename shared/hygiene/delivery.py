"""Delivering the alerts waiting in findings' outboxes: this scan's, and any an earlier scan failed to deliver.

An alert leaves the outbox only once its channel took it, so a failed delivery is retried by the next scan and a
delivered one is never sent again. A deletion's grace period begins when its warning is first delivered.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from shared.azure_errors import RecordChangedError
from shared.hygiene.alerts import AlertChannel
from shared.hygiene.context import ScanContext
from shared.hygiene.findings import AlertKind, FindingRecord
from shared.hygiene.inventory import CallFailure
from shared.hygiene.store import FindingStore

LOGGER = logging.getLogger(__name__)


@dataclass(frozen=True)
class DeliveryCount:
    delivered: int = 0
    failed: int = 0


class AlertDelivery:
    def __init__(self, store: FindingStore, channels: Mapping[str, AlertChannel], delete_grace: timedelta) -> None:
        self._store = store
        self._channels = channels
        self._delete_grace = delete_grace

    def deliver_pending(self, context: ScanContext, *, now: datetime) -> DeliveryCount:
        counts = context.parallel(
            lambda record: self._deliver(record, context, now), self._store.with_undelivered_alerts()
        )
        return DeliveryCount(sum(count.delivered for count in counts), sum(count.failed for count in counts))

    def _deliver(self, record: FindingRecord, context: ScanContext, now: datetime) -> DeliveryCount:
        stored = self._store.get(record.key)
        if stored is None:
            return DeliveryCount()
        record = stored.record
        remaining = []
        warned_at = record.deletion_warned_at
        for pending in record.outbox:
            channel = self._channels.get(pending.channel)
            if channel is None:
                continue  # that channel is no longer configured
            extra: dict[str, Any] = {}
            if pending.kind is AlertKind.DELETION_SCHEDULED:
                extra["deleteAfter"] = (now + self._delete_grace).isoformat()
            try:
                channel.deliver(record, pending.kind, time=now, extra=extra)
            except Exception as error:  # noqa: BLE001 - kept in the outbox and retried next scan
                remaining.append(pending)
                scope = f"alert {pending.kind} via {pending.channel}"
                context.errors.append({"scope": scope, **CallFailure.of(error).as_dict()})
                continue
            if pending.kind is AlertKind.DELETION_SCHEDULED and warned_at is None:
                warned_at = now
        try:
            self._store.save(
                record.model_copy(update={"outbox": tuple(remaining), "deletion_warned_at": warned_at}), stored.etag
            )
        except RecordChangedError:
            LOGGER.warning("finding %s changed while its alerts were delivered; they may be sent again", record.key)
        return DeliveryCount(len(record.outbox) - len(remaining), len(remaining))
