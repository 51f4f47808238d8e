"""Billed function seconds per deployment while each long-running operation takes 60 s, against the seed's blocking
SDK flow (bench/harness/baseline.py) run in the same emulator just before, on an otherwise idle stack.

Billed for the broker = the sum of the durations the host records for the deployment's invocations (its POST and
every workflow step; the client's status reads and the timers are not the deployment's). Billed for the baseline =
its wall time, since one blocking function runs it from start to end.
"""

from __future__ import annotations

import uuid
from dataclasses import asdict, dataclass
from typing import Any

from bench.harness.baseline import run_seed_flow
from bench.harness.figures import figure
from bench.harness.scenario import PARTNER_MODEL
from bench.harness.stack import BenchStack, bench_stack, billed_seconds

GOAL_SECONDS = 2.0
GOAL_RATIO = 0.05


@dataclass(frozen=True)
class Load:
    lro_seconds: float = 60.0
    retry_after_ms: int = 500


FULL = Load()
QUICK = Load(lro_seconds=10.0)


def run(load: Load = FULL) -> dict[str, Any]:
    with bench_stack(workspaces=2) as stack:
        return measure(stack, load)


def measure(stack: BenchStack, load: Load) -> dict[str, Any]:
    stack.set_timings(lro_seconds=load.lro_seconds, retry_after_ms=load.retry_after_ms)
    broker_workspace, baseline_workspace = stack.fresh_workspaces(2)
    baseline = run_seed_flow(stack.emulator.env, baseline_workspace, PARTNER_MODEL)

    ticket = f"bench-billed-{uuid.uuid4().hex[:8]}"
    submitted = stack.submit(broker_workspace, ticket=ticket)
    run_record = stack.wait_for_runs(ticket, [submitted.run_id], timeout=6 * load.lro_seconds + 120)[submitted.run_id]
    stack.settle(submitted.started)
    records = stack.deployment_invocations(submitted.started)
    billed = billed_seconds(records)
    by_function: dict[str, int] = {}
    for record in records:
        by_function[record["function"]] = by_function.get(record["function"], 0) + 1
    longest = max(record["durationMs"] for record in records) / 1000
    return {
        "load": asdict(load),
        "baseline": {
            "seconds": round(baseline.seconds, 2),
            "subscriptionStatus": baseline.subscription_status,
            "provisioningState": baseline.provisioning_state,
        },
        "broker": {
            "runStatus": run_record["status"],
            "billedSeconds": round(billed, 3),
            "invocations": len(records),
            "invocationsByFunction": by_function,
            "longestInvocationSeconds": round(longest, 3),
        },
        "figures": [
            figure(
                f"billed function s per deployment, LRO {load.lro_seconds:g} s",
                billed,
                unit="s",
                reference=baseline.seconds,
                reference_kind="baseline",
                goal=f"≤ {GOAL_SECONDS:g} s and ≤ {GOAL_RATIO:g} x baseline",
                met=billed <= GOAL_SECONDS and billed <= GOAL_RATIO * baseline.seconds,
            ),
            figure(
                f"longest invocation while each LRO takes {load.lro_seconds:g} s",
                longest,
                unit="s",
                goal=f"≤ {GOAL_SECONDS:g} s",
                met=longest <= GOAL_SECONDS,
            ),
        ],
    }
