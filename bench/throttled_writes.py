"""Many deployments while ARM throttles writes (a token bucket per subscription: a burst, then a refill rate), against
the bound the bucket itself imposes.

Writes needed: 3 per deployment (PUT Marketplace subscription, PUT endpoint, POST listKeys; ARM counts POST actions
as writes). Reads and deletes keep ARM's published buckets. With burst B and refill r per second, the k-th write
cannot happen before t(k) = max(0, (k - B) / r). Each deployment's writes are ordered, with one LRO (L seconds)
after the first and after the second, so:
  - the last subscription PUT is at least the N-th write and its deployment still needs 2 L: t(N) + 2 L;
  - the last endpoint PUT comes after all N subscription PUTs and the other endpoint PUTs, at least the 2N-th
    write, and still needs L: t(2N) + L;
  - the last write of all is the 3N-th: t(3N).
The bound is the largest of the three (every wait a zero-overhead broker could not avoid). 429s are counted from
the emulator's request log; billed = the sum of the deployment functions' invocation durations / N.
"""

from __future__ import annotations

import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from typing import Any

from bench.fan_out import finished_at
from bench.harness.figures import figure
from bench.harness.scenario import ARM_WRITES_PER_DEPLOYMENT, LROS_PER_DEPLOYMENT
from bench.harness.stack import BenchStack, bench_stack, billed_seconds
from devstack.emulator.throttle import request_kind

GOAL_RATIO = 1.25
GOAL_THROTTLED_SHARE = 0.10
GOAL_LONGEST_SECONDS = 2.0


@dataclass(frozen=True)
class Load:
    deployments: int = 60
    lro_seconds: float = 20.0
    retry_after_ms: int = 500
    write_burst: int = 10
    writes_per_second: float = 2.0


FULL = Load()
QUICK = Load(deployments=15, lro_seconds=5.0, write_burst=5)


def run(load: Load = FULL) -> dict[str, Any]:
    with bench_stack(workspaces=load.deployments) as stack:
        return measure(stack, load)


def throttle_bound(load: Load) -> float:
    def earliest(write: int) -> float:
        return max(0.0, (write - load.write_burst) / load.writes_per_second)

    n = load.deployments
    lros_after_stage = [LROS_PER_DEPLOYMENT - stage for stage in range(ARM_WRITES_PER_DEPLOYMENT)]
    return max(earliest((stage + 1) * n) + lros * load.lro_seconds for stage, lros in enumerate(lros_after_stage))


def arm_counts(counts_by_status: dict[str, int]) -> dict[str, int]:
    """Answers by kind ('writes 429', 'reads 200', ...) from the log's "METHOD component:route status" counts."""
    totals: dict[str, int] = {}
    for key, count in counts_by_status.items():
        method, route, status = key.split(" ")
        if route.startswith("arm:") and "/subscriptions/" in route:
            name = f"{request_kind(method)} {status}"
            totals[name] = totals.get(name, 0) + count
    return totals


def measure(stack: BenchStack, load: Load) -> dict[str, Any]:
    admin = stack.emulator.admin
    stack.set_timings(lro_seconds=load.lro_seconds, retry_after_ms=load.retry_after_ms)
    workspaces = stack.fresh_workspaces(load.deployments)
    admin.clear_requests()
    admin.set_throttling(enabled=True, writes={"capacity": load.write_burst, "refillPerSecond": load.writes_per_second})
    try:
        ticket = f"bench-throttled-{uuid.uuid4().hex[:8]}"
        with ThreadPoolExecutor(max_workers=min(load.deployments, 32)) as pool:
            submitted = list(pool.map(lambda workspace: stack.submit(workspace, ticket=ticket), workspaces))
        started = min(item.started for item in submitted)
        timeout = 4 * throttle_bound(load) + 180
        runs = stack.wait_for_runs(ticket, [item.run_id for item in submitted], timeout=timeout)
        stack.settle(started)
        counts = arm_counts(admin.requests(limit=0)["countsByStatus"])
    finally:
        admin.set_throttling(enabled=False)
    wall = max(finished_at(run) for run in runs.values()) - started
    bound = throttle_bound(load)
    needed = ARM_WRITES_PER_DEPLOYMENT * load.deployments
    throttled_writes = counts.get("writes 429", 0)
    records = stack.deployment_invocations(started)
    billed = billed_seconds(records) / load.deployments
    longest = max(record["durationMs"] for record in records) / 1000
    statuses: dict[str, int] = {}
    for run in runs.values():
        statuses[run["status"]] = statuses.get(run["status"], 0) + 1
    return {
        "load": asdict(load),
        "broker": {
            "runs": statuses,
            "wallSeconds": round(wall, 2),
            "intake503s": sum(item.unavailable for item in submitted),
            "armAnswers": counts,
            "billedSecondsPerDeployment": round(billed, 3),
            "invocations": len(records),
            "longestInvocationSeconds": round(longest, 3),
        },
        "writesNeeded": needed,
        "throttleBoundSeconds": round(bound, 2),
        "figures": [
            figure(
                f"{load.deployments} deployments, ARM writes throttled (burst {load.write_burst}, "
                f"{load.writes_per_second:g}/s), LRO {load.lro_seconds:g} s: wall",
                wall,
                unit="s",
                reference=bound,
                reference_kind="throttle bound",
                goal=f"≤ {GOAL_RATIO:g} x bound",
                met=wall <= GOAL_RATIO * bound,
            ),
            figure(
                "same: ARM write 429s",
                throttled_writes,
                unit="",
                reference=needed,
                reference_kind="writes needed",
                goal=f"≤ {GOAL_THROTTLED_SHARE:.0%} of writes",
                met=throttled_writes <= GOAL_THROTTLED_SHARE * needed,
            ),
            figure("same: billed function s per deployment", billed, unit="s", goal="(reported)", met=True),
            figure(
                "same: longest invocation",
                longest,
                unit="s",
                goal=f"≤ {GOAL_LONGEST_SECONDS:g} s",
                met=longest <= GOAL_LONGEST_SECONDS,
            ),
        ],
    }
