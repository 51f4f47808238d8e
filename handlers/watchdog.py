"""The watchdog timer (%WATCHDOG_SCHEDULE%, every 30 s by default; run it now with POST /admin/functions/watchdog and
the master key): re-enqueues the step of every run whose chain of work messages went quiet, and rejects every run
whose approval expired (shared/watchdog.py).

The adapters are imported inside the composition below, so importing function_app (every cold start) loads no Azure
SDK; one watchdog is built per worker process.
"""

from __future__ import annotations

import logging
from functools import cache
from typing import TYPE_CHECKING

import azure.functions as func

if TYPE_CHECKING:
    from shared.watchdog import Watchdog

LOGGER = logging.getLogger(__name__)

blueprint = func.Blueprint()


# No schedule monitor: an occurrence missed while no host ran is made up by the next one, 30 seconds later.
@blueprint.function_name("watchdog")
@blueprint.schedule(arg_name="timer", schedule="%WATCHDOG_SCHEDULE%", run_on_startup=False, use_monitor=False)
def watchdog(timer: func.TimerRequest) -> None:
    report = run_watchdog().sweep()
    acted = report.recovered or report.raced or report.exhausted or report.unresumable or report.expired
    LOGGER.log(
        logging.INFO if acted else logging.DEBUG,
        "watchdog%s: %s",
        " (past due)" if timer.past_due else "",
        report.as_dict(),
    )


@cache
def run_watchdog() -> Watchdog:
    from datetime import UTC, datetime

    from shared.adapters.identity import broker_credential
    from shared.adapters.monitor import configure_telemetry
    from shared.adapters.queues import JsonQueue
    from shared.adapters.run_store import RunStore
    from shared.adapters.tables import DocumentTable
    from shared.config import Settings
    from shared.deployments.approvals import ApprovalExpiry
    from shared.deployments.composition import event_topic
    from shared.event_delivery import EventPublisher
    from shared.telemetry import BROKER_TELEMETRY
    from shared.watchdog import Watchdog

    configure_telemetry()
    settings = Settings.from_env()
    runs = RunStore(DocumentTable.open(settings.storage, settings.runs_table))

    def clock() -> datetime:
        return datetime.now(UTC)

    # Expired approvals are announced like every other event: on the queue, and on the topic when one is set.
    events = EventPublisher(
        JsonQueue.open(settings.storage, settings.events_queue),
        event_topic(settings, broker_credential()),
        runs=runs,
        telemetry=BROKER_TELEMETRY,
        clock=clock,
    )
    return Watchdog(
        runs=runs,
        work=JsonQueue.open(settings.storage, settings.work_queue),
        clock=clock,
        stall_seconds=settings.watchdog_stall_seconds,
        expire=ApprovalExpiry(runs=runs, events=events, clock=clock),
    )
