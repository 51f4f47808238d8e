"""What one POST costs beyond its own function: ARM reads (preflight) and storage round trips, for a new request and
for requests that join a deployment in flight or one that is Ready.

Counted per POST, in the window from sending it to its answer: ARM requests from the emulator's request log (GETs
under /subscriptions or /providers are the reads), and storage requests through a counting proxy in front of
Azurite (devstack/storage_proxy.py), without the queue listeners' message polls, which run whether or not anything
is asked. Timers are moved out of the way (yearly schedules) and each window starts only after the previous
request's workflow step has gone quiet; operations complete only through the admin API and advertise a 60 s
Retry-After while a count is taken, so no workflow step runs inside a window.
"""

from __future__ import annotations

import statistics
from dataclasses import asdict, dataclass
from typing import Any

from bench.harness.figures import figure
from bench.harness.scenario import PARTNER_MODEL
from bench.harness.stack import BenchStack, Submitted, bench_stack, invocation_end, invocation_start
from devstack.storage_proxy import StorageRequest

SECOND_MODEL = "azureml://registries/azureml-cohere/models/Cohere-embed-v3-english"
GOAL_NEW_READS = 4
GOAL_JOIN_READS = 1
GOAL_STORAGE = 3
QUIET_RETRY_AFTER_MS = 60_000


@dataclass(frozen=True)
class Load:
    new_requests: int = 5
    """New requests in fresh workspaces after the first (the first pays the host's cold caches)."""
    joins: int = 5


FULL = Load()
QUICK = Load(new_requests=2, joins=2)


def run(load: Load = FULL) -> dict[str, Any]:
    with bench_stack(workspaces=load.new_requests + 3, quiet_timers=True, count_storage=True) as stack:
        return measure(stack, load)


def _listener_poll(request: StorageRequest) -> bool:
    return request.service == "queue" and request.method == "GET" and request.path.endswith("/messages")


@dataclass(frozen=True)
class Cost:
    status: int
    arm_reads: int
    arm_calls: int
    storage: int
    routes: tuple[str, ...]
    overlapped_step: bool
    """A workflow step ran during the window anyway (its calls would be counted too); such samples are left out."""


def _cost(stack: BenchStack, submitted: Submitted) -> Cost:
    until = submitted.started + submitted.seconds
    entries = stack.emulator.admin.requests(limit=5000)["entries"]
    arm = [
        entry
        for entry in entries
        if submitted.started <= entry["time"] <= until
        and entry["route"].startswith("arm:")
        and entry["path"].lower().startswith(("/subscriptions/", "/providers/"))
    ]
    assert stack.storage is not None, "the stack counts storage requests"
    storage = [item for item in stack.storage.requests(submitted.started, until) if not _listener_poll(item)]
    return Cost(
        status=submitted.status_code,
        arm_reads=sum(entry["method"] == "GET" for entry in arm),
        arm_calls=len(arm),
        storage=len(storage),
        routes=tuple(sorted(f"{entry['method']} {entry['route'].removeprefix('arm:')}" for entry in arm)),
        overlapped_step=any(
            record["function"] == "advance_deployment" and invocation_end(record) >= submitted.started
            for record in stack.host.invocations()
            if invocation_start(record) <= until
        ),
    )


def _post(stack: BenchStack, workspace: str, model: str = PARTNER_MODEL) -> tuple[Submitted, Cost]:
    submitted = stack.submit(workspace, model=model, ticket="bench-intake")
    cost = _cost(stack, submitted)
    stack.settle(submitted.started)
    return submitted, cost


def _summary(samples: list[Cost]) -> dict[str, Any]:
    # Samples a workflow step overlapped are left out, unless every one was.
    costs = [cost for cost in samples if not cost.overlapped_step] or samples
    return {
        "requests": len(samples),
        "overlappingAStep": sum(cost.overlapped_step for cost in samples),
        "counted": len(costs),
        "statuses": sorted({cost.status for cost in costs}),
        "armReads": {"median": statistics.median(c.arm_reads for c in costs), "max": max(c.arm_reads for c in costs)},
        "armCalls": {"median": statistics.median(c.arm_calls for c in costs), "max": max(c.arm_calls for c in costs)},
        "storage": {"median": statistics.median(c.storage for c in costs), "max": max(c.storage for c in costs)},
        "routes": list(costs[-1].routes),
    }


def measure(stack: BenchStack, load: Load) -> dict[str, Any]:
    ready_workspace, used_workspace, *fresh = stack.fresh_workspaces(load.new_requests + 2)
    # A Ready deployment to join later, made first with short operations; it also makes the host warm.
    stack.set_timings(lro_seconds=1.0, retry_after_ms=500)
    ready, cold = _post(stack, ready_workspace)
    stack.wait_for_runs("bench-intake", [ready.run_id], timeout=180)
    stack.settle(ready.started)

    stack.set_timings(lro_seconds=None, retry_after_ms=QUIET_RETRY_AFTER_MS)
    _, used = _post(stack, used_workspace)
    new_in_used_workspace = _post(stack, used_workspace, SECOND_MODEL)[1]
    new = [_post(stack, workspace)[1] for workspace in fresh]
    joins_in_flight = [_post(stack, fresh[0])[1] for _ in range(load.joins)]
    joins_ready = [_post(stack, ready_workspace)[1] for _ in range(load.joins)]
    stack.emulator.admin.complete_operations()

    new_summary = _summary(new)
    in_flight_summary = _summary(joins_in_flight)
    ready_summary = _summary(joins_ready)
    figures = [
        figure(
            "ARM reads per POST, new request (fresh workspace, warm host), median",
            new_summary["armReads"]["median"],
            unit="",
            goal=f"≤ {GOAL_NEW_READS}",
            met=new_summary["armReads"]["max"] <= GOAL_NEW_READS,
        ),
        figure(
            "ARM reads per POST that joins a deployment in flight, median",
            in_flight_summary["armReads"]["median"],
            unit="",
            goal=f"≤ {GOAL_JOIN_READS}",
            met=in_flight_summary["armReads"]["max"] <= GOAL_JOIN_READS,
        ),
        figure(
            "ARM reads per POST that joins a Ready deployment, median",
            ready_summary["armReads"]["median"],
            unit="",
            goal=f"≤ {GOAL_JOIN_READS}",
            met=ready_summary["armReads"]["max"] <= GOAL_JOIN_READS,
        ),
    ]
    for label, summary in (
        ("new", new_summary),
        ("joined in flight", in_flight_summary),
        ("joined Ready", ready_summary),
    ):
        figures.append(
            figure(
                f"storage round trips per accepted request, {label}, median",
                summary["storage"]["median"],
                unit="",
                goal=f"≤ {GOAL_STORAGE}",
                met=summary["storage"]["max"] <= GOAL_STORAGE,
            )
        )
    return {
        "load": asdict(load),
        "coldHostFirstRequest": asdict(cold),
        "newRequestInUsedWorkspace": asdict(new_in_used_workspace),
        "secondRequestInWorkspace": asdict(used),
        "newRequest": new_summary,
        "joinInFlight": in_flight_summary,
        "joinReady": ready_summary,
        "figures": figures,
    }
