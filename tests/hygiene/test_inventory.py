"""Collecting workspaces: a bounded pool, Retry-After honoured within bounds, one failure never the scan's end."""

from __future__ import annotations

import threading

import pytest

from shared.azure_errors import AzureCallError
from shared.hygiene.inventory import Retrier, RetryPolicy, collect_inventories

from .conftest import World
from .fakes import WS_A, WS_B, endpoint


def test_throttled_reads_wait_as_long_as_retry_after_says(world: World):
    world.ml.add(WS_A, endpoint(WS_A, "phi", managed=False))
    world.ml.throttle[WS_A] = [3.0, 7.5]

    report = world.scan(workspaces=(WS_A,), throttle_retries=4)

    assert world.sleeps == [3.0, 7.5]
    assert report["workspaces"]["unreachable"] == 0
    assert [record.resource_id for record in world.findings(rule="endpoint-unmanaged")] == [
        f"{WS_A}/serverlessEndpoints/phi"
    ]


def test_retry_after_is_capped_and_the_retries_are_bounded(world: World):
    world.ml.add(WS_A)
    world.ml.add(WS_B)
    world.ml.throttle[WS_A] = [600.0, 600.0, 600.0]

    report = world.scan(workspaces=(WS_A, WS_B), throttle_retries=2, max_retry_after_seconds=30.0)

    assert world.sleeps == [30.0, 30.0]
    [finding] = world.findings(rule="workspace-unreachable")
    assert (finding.resource_id, finding.evidence["status"], finding.evidence["code"]) == (
        WS_A,
        429,
        "SubscriptionRequestsThrottled",
    )
    assert report["workspaces"] == {"scanned": 2, "reachable": 1, "unreachable": 1}


def calls_failing_with(*errors: AzureCallError):
    remaining = list(errors)
    calls: list[int] = []

    def action() -> str:
        calls.append(1)
        if remaining:
            raise remaining.pop(0)
        return "ok"

    return action, calls


def test_a_transient_failure_is_retried_after_the_backoff():
    sleeps: list[float] = []
    action, calls = calls_failing_with(AzureCallError(503, "ServiceUnavailable", "busy"))

    result = Retrier(RetryPolicy(transient_retries=1, backoff_seconds=0.5), sleeps.append).call(action)

    assert (result, len(calls), sleeps) == ("ok", 2, [0.5])


@pytest.mark.parametrize(
    "error",
    [
        AzureCallError(403, "AuthorizationFailed", "denied"),
        AzureCallError(404, "ResourceNotFound", "gone"),
        AzureCallError(400, "BadRequest", "bad"),
    ],
)
def test_a_permanent_failure_is_not_retried(error: AzureCallError):
    sleeps: list[float] = []
    action, calls = calls_failing_with(error)

    with pytest.raises(AzureCallError) as raised:
        Retrier(RetryPolicy(), sleeps.append).call(action)

    assert (raised.value, len(calls), sleeps) == (error, 1, [])


def test_transient_retries_are_bounded_separately_from_throttling():
    sleeps: list[float] = []
    action, calls = calls_failing_with(
        AzureCallError(429, "TooManyRequests", "slow down", retry_after=1.0),
        AzureCallError(500, "InternalServerError", "boom"),
        AzureCallError(500, "InternalServerError", "boom again"),
    )

    with pytest.raises(AzureCallError, match="boom again"):
        Retrier(RetryPolicy(throttle_retries=3, transient_retries=1, backoff_seconds=2.0), sleeps.append).call(action)

    assert (len(calls), sleeps) == (3, [1.0, 2.0])


class ConcurrencyProbe:
    """Workspaces whose reads rendezvous in groups of `parties`, recording how many ever ran at once."""

    def __init__(self, parties: int) -> None:
        self._barrier = threading.Barrier(parties)
        self._lock = threading.Lock()
        self.active = self.peak = 0

    def list_endpoints(self, workspace_id: str) -> list:
        with self._lock:
            self.active += 1
            self.peak = max(self.peak, self.active)
        try:
            # Times out (and fails the test) unless `parties` reads really run at the same time.
            self._barrier.wait(timeout=5)
        finally:
            with self._lock:
                self.active -= 1
        if workspace_id.endswith("-7"):
            raise RuntimeError("unexpected crash in one workspace")
        return []

    def list_subscriptions(self, workspace_id: str) -> list:
        return []


def test_workspaces_are_read_concurrently_within_the_pool_bound():
    probe = ConcurrencyProbe(parties=3)
    workspaces = [f"{WS_A}-{number}" for number in range(12)]

    inventories = collect_inventories(workspaces, probe, Retrier(RetryPolicy()), max_workers=3)  # type: ignore[arg-type]

    assert probe.peak == 3
    assert [inventory.workspace_id for inventory in inventories] == workspaces
    failed = [inventory for inventory in inventories if not inventory.reachable]
    assert [(item.workspace_id, item.failure.code) for item in failed] == [(f"{WS_A}-7", "RuntimeError")]
