"""The running host: HTTP server, queue listeners and timers, and a clean stop on SIGINT/SIGTERM."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import uuid
from collections.abc import Coroutine
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

from aiohttp import web
from azure.functions.queue import QueueMessage

from devstack.host.easy_auth import EasyAuth, EasyAuthConfig
from devstack.host.host_config import HostConfig
from devstack.host.http_front import HttpFront
from devstack.host.indexing import FunctionSpec, HttpTriggerSpec, QueueTriggerSpec, TimerTriggerSpec
from devstack.host.invocation import InFlight, Invoker
from devstack.host.keys import FUNCTION_KEY_SETTING, MASTER_KEY_SETTING, HostKeys
from devstack.host.queue_listener import QueueListener
from devstack.host.queue_storage import MessageCodec, QueueConnections, QueueOutputs
from devstack.host.timer_runner import TimerRunner, utc_now

LOOPBACK = "127.0.0.1"
# In-flight requests are drained through InFlight first; the server's own wait only lets their responses go out.
RESPONSE_FLUSH_SECONDS = 2.0
THREAD_COUNT_SETTING = "PYTHON_THREADPOOL_THREAD_COUNT"
log = logging.getLogger("devstack.host")


@dataclass(frozen=True, kw_only=True)
class HostOptions:
    app_dir: Path
    port: int
    config: HostConfig
    keys: HostKeys
    enforce_keys: bool
    queue_lease: timedelta
    drain_timeout: float
    # App Service authentication in front of the HTTP routes; None: off (--no-easy-auth).
    easy_auth: EasyAuthConfig | None = None


class Host:
    def __init__(self, options: HostOptions, functions: list[FunctionSpec]) -> None:
        self._options = options
        self._functions = functions
        self._in_flight = InFlight()
        self._background: set[asyncio.Task[Any]] = set()
        # The worker's pool: PYTHON_THREADPOOL_THREAD_COUNT when set, else Python's default size.
        threads = os.environ.get(THREAD_COUNT_SETTING)
        self._executor = ThreadPoolExecutor(
            max_workers=int(threads) if threads else None, thread_name_prefix="function"
        )
        self._connections = QueueConnections(os.environ)
        codec = MessageCodec(options.config.queues.message_encoding)
        self._invoker = Invoker(
            app_dir=options.app_dir,
            executor=self._executor,
            outputs=QueueOutputs(self._connections, codec),
            timeout=options.config.function_timeout,
        )
        self._listeners = [
            QueueListener(
                spec,
                options=options.config.queues,
                connections=self._connections,
                codec=codec,
                invoker=self._invoker,
                in_flight=self._in_flight,
                lease=options.queue_lease,
            )
            for spec in functions
            if isinstance(spec.trigger, QueueTriggerSpec)
        ]
        self._timers = {
            spec.name: TimerRunner(spec, invoker=self._invoker, in_flight=self._in_flight)
            for spec in functions
            if isinstance(spec.trigger, TimerTriggerSpec)
        }

    async def run(self) -> bool:
        """Serve until SIGINT/SIGTERM; True if every in-flight invocation finished within the drain timeout."""
        stop = asyncio.Event()
        _on_stop_signals(stop)
        runner = await self._serve_http()
        self._announce()
        for worker in [*self._listeners, *self._timers.values()]:
            self._spawn(worker.run())
        await stop.wait()
        return await self._stop(runner)

    async def _serve_http(self) -> web.AppRunner:
        options = self._options
        front = HttpFront(
            functions=self._functions,
            route_prefix=options.config.route_prefix,
            keys=options.keys,
            enforce_keys=options.enforce_keys,
            invoker=self._invoker,
            in_flight=self._in_flight,
            admin_invoke=self._invoke_by_admin,
            easy_auth=EasyAuth(options.easy_auth, realm=f"{LOOPBACK}:{options.port}") if options.easy_auth else None,
        )
        runner = web.AppRunner(front.application(), access_log=None, shutdown_timeout=RESPONSE_FLUSH_SECONDS)
        await runner.setup()
        await web.TCPSite(runner, LOOPBACK, options.port).start()
        return runner

    async def _stop(self, runner: web.AppRunner) -> bool:
        log.info(
            "stopping: no new work; waiting up to %.0fs for %d in-flight invocation(s)",
            self._options.drain_timeout,
            self._in_flight.count,
        )
        for worker in [*self._listeners, *self._timers.values()]:
            worker.stop()
        for site in list(runner.sites):
            await site.stop()
        drained = await self._in_flight.wait_idle(self._options.drain_timeout)
        for task in list(self._background):
            task.cancel()
        await asyncio.gather(*self._background, return_exceptions=True)
        await runner.cleanup()
        await self._connections.close()
        self._executor.shutdown(wait=drained, cancel_futures=True)
        if not drained:
            log.warning("stopped with %d invocation(s) unfinished", self._in_flight.count)
        log.info("host stopped")
        return drained

    def _invoke_by_admin(self, spec: FunctionSpec, text: str) -> None:
        if spec.name in self._timers:
            self._spawn(self._timers[spec.name].fire(utc_now(), past_due=False))
        else:
            self._spawn(self._invoke_queue_function(spec, text))

    async def _invoke_queue_function(self, spec: FunctionSpec, text: str) -> None:
        # As the host's admin invoke: a message built from the input, never stored in a queue.
        message = QueueMessage(id=str(uuid.uuid4()), body=text.encode("utf-8"), dequeue_count=1)
        with self._in_flight:
            await self._invoker.invoke(spec, message, log_fields={"source": "admin"})

    def _spawn(self, coroutine: Coroutine[Any, Any, object]) -> None:
        task = asyncio.create_task(coroutine)
        self._background.add(task)
        task.add_done_callback(self._forget)

    def _forget(self, task: asyncio.Task[Any]) -> None:
        self._background.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("a host task crashed", exc_info=task.exception())

    def _announce(self) -> None:
        base = f"http://{LOOPBACK}:{self._options.port}"
        prefix = self._options.config.route_prefix
        lines = [f"host listening on {base}", "functions:"]
        for spec in self._functions:
            trigger = spec.trigger
            if isinstance(trigger, HttpTriggerSpec):
                methods = ",".join(sorted(trigger.methods)) if trigger.methods else "*"
                route = f"{prefix}/{trigger.route}" if prefix else trigger.route
                lines.append(f"  {spec.name}: [{methods}] {base}/{route} ({trigger.auth_level})")
            elif isinstance(trigger, QueueTriggerSpec):
                lines.append(f"  {spec.name}: queueTrigger on {trigger.queue_name}")
            elif isinstance(trigger, TimerTriggerSpec):
                lines.append(f"  {spec.name}: timerTrigger {trigger.schedule.expression}")
        keys = self._options.keys
        values = {MASTER_KEY_SETTING: keys.master, FUNCTION_KEY_SETTING: keys.function}
        for setting in keys.generated:
            lines.append(f"{setting} was not set; generated for this run: {values[setting]}")
        if not self._options.enforce_keys:
            lines.append("keys are not enforced (--no-auth)")
        easy_auth = self._options.easy_auth
        lines.append(easy_auth.describe() if easy_auth else "Easy Auth off: principal headers pass as sent")
        log.info("\n".join(lines))


def _on_stop_signals(stop: asyncio.Event) -> None:
    loop = asyncio.get_running_loop()

    def request_stop() -> None:
        if stop.is_set():
            # A second Ctrl-C means now.
            os._exit(130)
        stop.set()

    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, request_stop)
