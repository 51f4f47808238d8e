"""Many deployments at once: N deployments in N workspaces (one each: one deployment per model per project), every
long-running operation taking the same time, against the lower bound and a sequential estimate.

Lower bound: a broker with zero overhead still waits out each deployment's two operations (the Marketplace
subscription, then the endpoint) one after the other, and can run all deployments side by side, so the bound is
2 x lroSeconds, the time the emulator imposes from an operation's creation to its completion. Wall: from the first
POST being sent to the latest run's final status change (the run's own timestamp, not the client's poll).
Sequential: the seed's blocking flow measured once in the same run at the same LRO time, x N (derived, not run N
times).
"""

from __future__ import annotations

import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from bench.harness.baseline import run_seed_flow
from bench.harness.figures import figure
from bench.harness.scenario import LROS_PER_DEPLOYMENT, PARTNER_MODEL
from bench.harness.stack import BenchStack, bench_stack, billed_seconds

GOAL_RATIO = 1.15


@dataclass(frozen=True)
class Load:
    deployments: int = 20
    lro_seconds: float = 20.0
    retry_after_ms: int = 500


FULL = Load()
QUICK = Load(deployments=5, lro_seconds=5.0)


def run(load: Load = FULL) -> dict[str, Any]:
    with bench_stack(workspaces=load.deployments + 1) as stack:
        return measure(stack, load)


def finished_at(run: dict[str, Any]) -> float:
    return datetime.fromisoformat(run["steps"][-1]["at"]).timestamp()


def measure(stack: BenchStack, load: Load) -> dict[str, Any]:
    stack.set_timings(lro_seconds=load.lro_seconds, retry_after_ms=load.retry_after_ms)
    baseline_workspace, *workspaces = stack.fresh_workspaces(load.deployments + 1)
    baseline = run_seed_flow(stack.emulator.env, baseline_workspace, PARTNER_MODEL)

    ticket = f"bench-fan-out-{uuid.uuid4().hex[:8]}"
    with ThreadPoolExecutor(max_workers=load.deployments) as pool:
        submitted = list(pool.map(lambda workspace: stack.submit(workspace, ticket=ticket), workspaces))
    started = min(item.started for item in submitted)
    timeout = 6 * load.lro_seconds + 10 * load.deployments + 120
    runs = stack.wait_for_runs(ticket, [item.run_id for item in submitted], timeout=timeout)
    stack.settle(started)
    wall = max(finished_at(run) for run in runs.values()) - started
    bound = LROS_PER_DEPLOYMENT * load.lro_seconds
    sequential = baseline.seconds * load.deployments
    records = stack.deployment_invocations(started)
    statuses: dict[str, int] = {}
    for run in runs.values():
        statuses[run["status"]] = statuses.get(run["status"], 0) + 1
    return {
        "load": asdict(load),
        "baseline": {"seconds": round(baseline.seconds, 2), "provisioningState": baseline.provisioning_state},
        "broker": {
            "runs": statuses,
            "wallSeconds": round(wall, 2),
            "acceptSecondsMax": round(max(item.seconds for item in submitted), 3),
            "billedSecondsPerDeployment": round(billed_seconds(records) / load.deployments, 3),
            "invocations": len(records),
            "longestInvocationSeconds": round(max(record["durationMs"] for record in records) / 1000, 3),
        },
        "lowerBoundSeconds": bound,
        "sequentialEstimateSeconds": round(sequential, 2),
        "fasterThanSequential": round(sequential / wall, 2),
        "figures": [
            figure(
                f"{load.deployments} deployments / {load.deployments} workspaces, LRO {load.lro_seconds:g} s: wall",
                wall,
                unit="s",
                reference=bound,
                reference_kind="lower bound: 2 x LRO",
                goal=f"≤ {GOAL_RATIO:g} x bound",
                met=wall <= GOAL_RATIO * bound,
            ),
            figure(
                f"same, sequential estimate (baseline {baseline.seconds:.1f} s x {load.deployments}) vs broker wall",
                sequential / wall,
                unit="x faster",
                goal="(reported)",
                met=True,
            ),
        ],
    }
