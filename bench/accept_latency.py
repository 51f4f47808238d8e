"""HTTP accept latency on the join path: concurrent clients POST the spec of one deployment, each with its own
Idempotency-Key, first while its run is in flight, then once it is Ready.

Latency is measured by each client from sending to the full answer (requester tokens are fetched before timing);
throughput is answers per second over the phase. Clients and the host share the machine, so the clients' own cost
is part of the figure: it is conservative.
"""

from __future__ import annotations

import statistics
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from typing import Any

import requests

from bench.harness.figures import figure
from bench.harness.scenario import PARTNER_MODEL
from bench.harness.stack import BenchStack, bench_stack
from tests.integration.conftest import TERMINAL

GOAL_P99_SECONDS = 0.5


@dataclass(frozen=True)
class Load:
    clients: int = 32
    requests_per_client: int = 10


FULL = Load()
QUICK = Load(clients=8, requests_per_client=5)


def run(load: Load = FULL) -> dict[str, Any]:
    with bench_stack(workspaces=1) as stack:
        return measure(stack, load)


def _percentile(samples: list[float], share: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def _phase(stack: BenchStack, workspace: str, load: Load) -> dict[str, Any]:
    url = f"{stack.host.url}/api/deployments"
    headers = stack.requester_headers()
    body = {"workspaceId": workspace, "modelId": PARTNER_MODEL, "ticket": "bench-accept"}
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    lock = threading.Lock()

    def client(_: int) -> None:
        with requests.Session() as session:
            for _ in range(load.requests_per_client):
                sent = time.perf_counter()
                response = session.post(
                    url, json=body, headers={**headers, "Idempotency-Key": uuid.uuid4().hex}, timeout=60
                )
                elapsed = time.perf_counter() - sent
                with lock:
                    latencies.append(elapsed)
                    statuses[response.status_code] = statuses.get(response.status_code, 0) + 1

    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=load.clients) as pool:
        list(pool.map(client, range(load.clients)))
    wall = time.perf_counter() - started
    return {
        "requests": len(latencies),
        "statuses": {str(code): count for code, count in sorted(statuses.items())},
        # A fast error is no acceptance: answers other than 2xx fail the figure.
        "failed": sum(count for code, count in statuses.items() if not 200 <= code < 300),
        "p50Seconds": round(statistics.median(latencies), 3),
        "p99Seconds": round(_percentile(latencies, 0.99), 3),
        "maxSeconds": round(max(latencies), 3),
        "requestsPerSecond": round(len(latencies) / wall, 1),
    }


def _complete(stack: BenchStack, run_id: str, timeout: float = 120) -> dict[str, Any]:
    """Complete the run's operations as the broker creates them, until the run ends."""
    deadline = time.monotonic() + timeout
    while True:
        stack.emulator.admin.complete_operations()
        run = stack.run(run_id)
        if run["status"] in TERMINAL or time.monotonic() > deadline:
            return run
        time.sleep(0.5)


def measure(stack: BenchStack, load: Load) -> dict[str, Any]:
    (workspace,) = stack.fresh_workspaces(1)
    # In flight until the admin API completes its operations; polled meanwhile as the broker polls.
    stack.set_timings(lro_seconds=None, retry_after_ms=500)
    first = stack.submit(workspace, ticket="bench-accept")
    in_flight = _phase(stack, workspace, load)
    finished = _complete(stack, first.run_id)
    # The Ready phase needs the run to have succeeded; if it did not, the result says so instead of a figure.
    ready = _phase(stack, workspace, load) if finished["status"] == "Succeeded" else None
    phases = {"run in flight": in_flight, "Ready": ready}
    figures = [
        figure(
            f"HTTP accept, {load.clients} clients, join path ({label}): p99",
            phase["p99Seconds"],
            unit="s",
            goal=f"p99 ≤ {GOAL_P99_SECONDS:g} s, every answer 2xx",
            met=phase["p99Seconds"] <= GOAL_P99_SECONDS and phase["failed"] == 0,
        )
        for label, phase in phases.items()
        if phase is not None
    ]
    return {
        "load": asdict(load),
        "runStatus": finished["status"],
        "joinInFlight": in_flight,
        "joinReady": ready,
        "figures": figures,
    }
