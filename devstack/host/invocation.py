"""One invocation as the worker runs it: bind the arguments, run sync code in the thread pool and async code on
the loop, write output bindings only once the function has succeeded, fail it past host.json's functionTimeout, and
log one JSON line."""

from __future__ import annotations

import asyncio
import contextvars
import json
import logging
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping
from concurrent.futures import Executor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Protocol

from devstack.host.context import InvocationContext, Out, new_trace_parent
from devstack.host.indexing import RETURN_BINDING, FunctionSpec, QueueOutputSpec

INVOCATION_LOGGER = logging.getLogger("devstack.host.invocations")


class OutputWriter(Protocol):
    async def write(self, target: QueueOutputSpec, value: object) -> None: ...


@dataclass(frozen=True)
class InvocationOutcome:
    invocation_id: str
    error: Exception | None = None
    result: Any = None
    """The HTTP response value, after the caller's conversion."""

    @property
    def succeeded(self) -> bool:
        return self.error is None


class InFlight:
    """Counts work that a clean stop must let finish (an invocation plus its completion steps)."""

    def __init__(self) -> None:
        self._count = 0
        self._idle = asyncio.Event()
        self._idle.set()

    def begin(self) -> None:
        self._count += 1
        self._idle.clear()

    def end(self) -> None:
        self._count -= 1
        if self._count == 0:
            self._idle.set()

    def __enter__(self) -> InFlight:
        self.begin()
        return self

    def __exit__(self, *_: object) -> None:
        self.end()

    @property
    def count(self) -> int:
        return self._count

    async def wait_idle(self, timeout: float) -> bool:
        try:
            await asyncio.wait_for(self._idle.wait(), timeout)
        except TimeoutError:
            return False
        return True


class FunctionTimeoutError(TimeoutError):
    """The invocation ran past host.json's functionTimeout; like the real host, it fails and writes no outputs."""


class Invoker:
    def __init__(
        self, *, app_dir: Path, executor: Executor, outputs: OutputWriter, timeout: timedelta | None = None
    ) -> None:
        self._app_dir = str(app_dir)
        self._executor = executor
        self._outputs = outputs
        self._timeout = timeout

    async def invoke(
        self,
        spec: FunctionSpec,
        trigger_value: object,
        *,
        log_fields: Mapping[str, object] | None = None,
        trace_parent: str | None = None,
        convert_result: Callable[[Any], Any] | None = None,
    ) -> InvocationOutcome:
        """Run `spec` once; `convert_result` turns the HTTP return value into a response (raising fails the run)."""
        context = InvocationContext(
            invocation_id=str(uuid.uuid4()),
            function_name=spec.name,
            function_directory=self._app_dir,
            trace_parent=trace_parent or new_trace_parent(),
        )
        queue_outs: dict[str, Out[Any]] = {
            output.name: Out() for output in spec.queue_outputs if output.name != RETURN_BINDING
        }
        http_out: Out[Any] | None = Out() if spec.http_output not in {None, RETURN_BINDING} else None
        arguments: dict[str, Any] = {spec.trigger_parameter: trigger_value, **queue_outs}
        if http_out is not None and spec.http_output:
            arguments[spec.http_output] = http_out
        if spec.context_parameter:
            arguments[spec.context_parameter] = context
        started = time.perf_counter()
        try:
            returned = await self._bounded(self._run(spec, context, arguments), spec, context)
            result = returned if spec.http_output == RETURN_BINDING else (http_out.get() if http_out else None)
            if convert_result is not None:
                result = convert_result(result)
            for output in spec.queue_outputs:
                value = returned if output.name == RETURN_BINDING else queue_outs[output.name].get()
                if value is not None:
                    await self._outputs.write(output, value)
        except Exception as error:  # noqa: BLE001 - a failed invocation is an outcome, reported to the trigger
            outcome = InvocationOutcome(context.invocation_id, error)
        else:
            outcome = InvocationOutcome(context.invocation_id, None, result)
        _log_invocation(spec, outcome, (time.perf_counter() - started) * 1000, log_fields or {})
        return outcome

    async def _bounded(self, running: Awaitable[Any], spec: FunctionSpec, context: InvocationContext) -> Any:
        if self._timeout is None:
            return await running
        try:
            return await asyncio.wait_for(running, self._timeout.total_seconds())
        except TimeoutError as error:
            # A thread cannot be stopped from outside: a sync function's thread runs on, but its result is dropped.
            raise FunctionTimeoutError(
                f"Timeout value of {_timespan(self._timeout)} exceeded by function 'Functions.{spec.name}' "
                f"(Id: '{context.invocation_id}'). Initiating cancellation."
            ) from error

    async def _run(self, spec: FunctionSpec, context: InvocationContext, arguments: dict[str, Any]) -> Any:
        if spec.is_async:
            return await spec.user_function(**arguments)

        def call() -> Any:
            context.thread_local_storage.invocation_id = context.invocation_id
            return spec.user_function(**arguments)

        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, contextvars.copy_context().run, call)


def _timespan(value: timedelta) -> str:
    total = int(value.total_seconds())
    return f"{total // 3600:02d}:{total % 3600 // 60:02d}:{total % 60:02d}"


def _log_invocation(
    spec: FunctionSpec, outcome: InvocationOutcome, duration_ms: float, fields: Mapping[str, object]
) -> None:
    # Metadata only: request and message bodies never reach the log.
    record: dict[str, object] = {
        "timestamp": datetime.now(UTC).isoformat(),
        "event": "invocation",
        "function": spec.name,
        "trigger": spec.trigger_type,
        "invocationId": outcome.invocation_id,
        "durationMs": round(duration_ms, 1),
        "outcome": "Succeeded" if outcome.succeeded else "Failed",
        **fields,
    }
    if outcome.error is not None:
        message = str(outcome.error).strip().splitlines()
        record["error"] = {"type": type(outcome.error).__name__, "message": message[0] if message else ""}
    INVOCATION_LOGGER.info(json.dumps(record))
