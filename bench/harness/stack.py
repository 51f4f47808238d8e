"""The local stack a benchmark drives: Azurite (behind a counting proxy when asked), the emulator in this process,
and the local Functions host running function_app with the sample settings, as `make run` does.

The host keeps the product's settings (polling, pacing, timers): a benchmark measures the broker as configured,
and only moves the timers out of the way where they would land inside a measurement window.
"""

from __future__ import annotations

import tempfile
import time
import uuid
from collections.abc import Iterable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from bench.harness.scenario import PARTNER_MODEL, bench_scenario, workspace_name
from devstack.azurite import start_azurite
from devstack.emulator.testing import EmulatorHandle, running_emulator
from devstack.host.process import REPO_ROOT, HostProcess, InvocationRecord, start_host
from devstack.storage_proxy import StorageProxy
from tests.integration.conftest import TERMINAL, Broker

SAMPLE_SETTINGS = REPO_ROOT / "local.settings.sample.json"
# The functions a deployment request runs: its POST (or queue intake) and its workflow steps.
DEPLOYMENT_FUNCTIONS = frozenset({"submit_deployment", "intake_deployment_request", "advance_deployment"})
# NCRONTAB for "once a year": keeps the watchdog, hygiene and rotation timers out of counting windows.
YEARLY = "0 0 0 1 1 *"
QUIET_TIMERS = {"WATCHDOG_SCHEDULE": YEARLY, "HYGIENE_SCHEDULE": YEARLY, "KEY_ROTATION_SCHEDULE": YEARLY}
MAX_INTAKE_ATTEMPTS = 20


@dataclass(frozen=True)
class Submitted:
    status_code: int
    body: dict[str, Any]
    started: float
    seconds: float
    """From the first send to the answer that was not a 503 (time.time() based, like the run's timestamps)."""
    unavailable: int
    """503 answers (intake met a 429) waited out with their Retry-After before this answer."""
    run_id: str | None
    """The run the answer names (Operation-Location), if any."""


@dataclass
class BenchStack:
    emulator: EmulatorHandle
    host: HostProcess
    broker: Broker
    storage: StorageProxy | None
    workspace_count: int
    _next_workspace: int = 0
    _auth: dict[str, str] = field(default_factory=dict)

    def set_timings(self, *, lro_seconds: float | None, retry_after_ms: int) -> None:
        """Operations created from now on take `lro_seconds` (None: until the admin API completes them)."""
        self.emulator.admin.call("PUT", "/timings", {"lroSeconds": lro_seconds, "retryAfterMs": retry_after_ms})

    def fresh_workspaces(self, count: int) -> list[str]:
        """Workspace ids no earlier measurement on this stack has deployed into."""
        if self._next_workspace + count > self.workspace_count:
            raise RuntimeError(f"the stack has {self.workspace_count} bench workspaces; {count} more were asked for")
        numbers = range(self._next_workspace, self._next_workspace + count)
        self._next_workspace += count
        return [self.emulator.workspace_path(workspace_name(number)) for number in numbers]

    def requester_headers(self) -> dict[str, str]:
        """The function key and a requester token, fetched once so timed calls do not include signing in."""
        if not self._auth:
            self._auth = {
                "x-functions-key": self.host.function_key,
                "Authorization": f"Bearer {self.broker.token(self.broker.requester)}",
            }
        return self._auth

    def submit(self, workspace: str, *, model: str = PARTNER_MODEL, ticket: str | None = None) -> Submitted:
        """POST a deployment as a portal does: a fresh Idempotency-Key, kept across 503 + Retry-After retries."""
        headers = {**self.requester_headers(), "Idempotency-Key": uuid.uuid4().hex}
        body = {"workspaceId": workspace, "modelId": model, **({"ticket": ticket} if ticket else {})}
        started = time.time()
        for attempt in range(MAX_INTAKE_ATTEMPTS):  # noqa: B007 - the count is reported
            response = self.broker.call("POST", "/api/deployments", headers=headers, json=body)
            if response.status_code != 503:
                break
            time.sleep(float(response.headers.get("Retry-After", "1")))
        location = response.headers.get("Operation-Location")
        run_id = location.rstrip("/").rsplit("/", 1)[-1] if location else None
        return Submitted(response.status_code, response.json(), started, time.time() - started, attempt, run_id)

    def run(self, run_id: str) -> dict[str, Any]:
        """The run, read as the requester who made it (see wait_for_runs)."""
        return self.broker.call("GET", f"/api/runs/{run_id}", headers=self.requester_headers()).json()

    def wait_for_runs(self, ticket: str, run_ids: Iterable[str], *, timeout: float) -> dict[str, dict[str, Any]]:
        """The runs, once every one is terminal (one list call per second, not one call per run), read as the
        requester who made them: a caller sees only what it may, and the bench's resource group is not the reader's."""
        wanted = set(run_ids)
        deadline = time.monotonic() + timeout
        while True:
            query = {"ticket": ticket, "pageSize": "100"}
            listed = self.broker.call("GET", "/api/runs", headers=self.requester_headers(), params=query).json()
            runs = {run["id"]: run for run in listed["value"] if run["id"] in wanted}
            if len(runs) == len(wanted) and all(run["status"] in TERMINAL for run in runs.values()):
                return runs
            if time.monotonic() > deadline:
                pending = {run_id: runs.get(run_id, {}).get("status") for run_id in wanted}
                raise TimeoutError(f"runs not terminal within {timeout:.0f} s: {pending}")
            time.sleep(1.0)

    def deployment_invocations(self, since: float, until: float = float("inf")) -> list[InvocationRecord]:
        """Invocations of the deployment functions that started at or after `since` and ended by `until`."""
        return [
            record
            for record in self.host.invocations()
            if record["function"] in DEPLOYMENT_FUNCTIONS and since <= invocation_start(record) <= until
        ]

    def settle(self, since: float, *, quiet_seconds: float = 1.5, timeout: float = 60.0) -> None:
        """Wait until no deployment function has run for `quiet_seconds` (the last step's tail: events, records)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            records = self.deployment_invocations(since)
            last = max((invocation_end(record) for record in records), default=since)
            if time.time() - last >= quiet_seconds:
                return
            time.sleep(0.25)


def invocation_end(record: InvocationRecord) -> float:
    return datetime.fromisoformat(record["timestamp"]).timestamp()


def invocation_start(record: InvocationRecord) -> float:
    return invocation_end(record) - record["durationMs"] / 1000


def billed_seconds(records: Iterable[InvocationRecord]) -> float:
    """Billed function time: the sum of the invocation durations the host records."""
    return sum(record["durationMs"] for record in records) / 1000


@contextmanager
def bench_stack(
    *,
    workspaces: int,
    quiet_timers: bool = False,
    count_storage: bool = False,
    host_settings: dict[str, str] | None = None,
    **emulator_overrides: Any,
) -> Iterator[BenchStack]:
    """Azurite, the emulator (the demo tenant plus `workspaces` bench workspaces) and the host, stopped on exit.
    `host_settings` override the sample settings (the smoke test's shorter polling)."""
    with ExitStack() as stack:
        azurite = start_azurite()
        stack.callback(azurite.stop)
        connection = azurite.connection_string
        proxy = None
        if count_storage:
            proxy = stack.enter_context(StorageProxy(queue_port=azurite.queue_port, table_port=azurite.table_port))
            connection = proxy.connection_string
        emulator = stack.enter_context(running_emulator(bench_scenario(workspaces), **emulator_overrides))
        log_path = Path(tempfile.mkdtemp(prefix="bench-host-")) / "host.log"
        env = {
            **emulator.env,
            "AzureWebJobsStorage": connection,
            **(QUIET_TIMERS if quiet_timers else {}),
            **(host_settings or {}),
        }
        host = start_host(REPO_ROOT, env=env, log_path=log_path, extra_args=["--settings", str(SAMPLE_SETTINGS)])
        stack.callback(host.stop)
        yield BenchStack(emulator, host, Broker(host, emulator, connection), proxy, workspaces)
