"""Every figure's code path at a tiny load on one shared stack: the runs succeed and the counts are there and sane.
No timing is asserted (speed belongs in `make bench`); the figures' `met` flags are not checked either."""

from collections.abc import Iterator

import pytest

from bench import accept_latency, billed_seconds, cold_start, fan_out, intake_costs, throttled_writes
from bench.harness.stack import BenchStack, bench_stack

pytestmark = pytest.mark.integration
# The integration suite's poll delay, so tiny runs end in seconds.
FAST_HOST = {"BROKER_POLL_SECONDS": "1"}


@pytest.fixture(scope="module")
def stack() -> Iterator[BenchStack]:
    with bench_stack(workspaces=12, quiet_timers=True, count_storage=True, host_settings=FAST_HOST) as running:
        yield running


def assert_figures(result: dict) -> None:
    assert result["figures"]
    for row in result["figures"]:
        assert row["broker"] >= 0
        assert isinstance(row["met"], bool)
        assert row["goal"]


def test_billed_seconds_counts_the_deployments_invocations(stack):
    result = billed_seconds.measure(stack, billed_seconds.Load(lro_seconds=1.0))
    assert result["baseline"] == {**result["baseline"], "subscriptionStatus": "subscribed"}
    assert result["baseline"]["provisioningState"] == "succeeded"
    broker = result["broker"]
    assert broker["runStatus"] == "Succeeded"
    assert broker["invocationsByFunction"]["submit_deployment"] == 1
    assert broker["invocationsByFunction"]["advance_deployment"] >= 3
    assert 0 < broker["longestInvocationSeconds"] <= broker["billedSeconds"]
    assert_figures(result)


def test_fan_out_runs_every_deployment_and_never_beats_its_bound(stack):
    result = fan_out.measure(stack, fan_out.Load(deployments=2, lro_seconds=1.0))
    assert result["broker"]["runs"] == {"Succeeded": 2}
    assert result["lowerBoundSeconds"] == 2.0
    assert result["broker"]["wallSeconds"] >= result["lowerBoundSeconds"]
    assert result["sequentialEstimateSeconds"] == pytest.approx(2 * result["baseline"]["seconds"], abs=0.05)
    assert_figures(result)


def test_throttled_writes_counts_the_writes_and_restores_throttling(stack):
    load = throttled_writes.Load(deployments=2, lro_seconds=1.0, write_burst=2, writes_per_second=4.0)
    result = throttled_writes.measure(stack, load)
    assert result["broker"]["runs"] == {"Succeeded": 2}
    answers = result["broker"]["armAnswers"]
    succeeded_writes = sum(count for kind, count in answers.items() if kind.startswith("writes 2"))
    assert succeeded_writes >= result["writesNeeded"] == 6
    assert answers.get("writes 429", 0) == result["figures"][1]["broker"]
    assert stack.emulator.admin.call("GET", "/throttling")["enabled"] is False
    assert_figures(result)


def test_intake_costs_count_reads_and_round_trips_per_post(stack):
    result = intake_costs.measure(stack, intake_costs.Load(new_requests=1, joins=1))
    assert result["newRequest"]["statuses"] == [202]
    assert result["joinReady"]["statuses"] == [200]
    assert result["coldHostFirstRequest"]["arm_reads"] >= 1
    assert result["newRequest"]["armReads"]["max"] >= 1
    for summary in (result["newRequest"], result["joinInFlight"], result["joinReady"]):
        assert summary["storage"]["max"] >= 1
    assert_figures(result)


def test_accept_latency_answers_every_join(stack):
    result = accept_latency.measure(stack, accept_latency.Load(clients=2, requests_per_client=2))
    assert result["runStatus"] == "Succeeded"
    assert result["joinInFlight"]["requests"] == result["joinReady"]["requests"] == 4
    assert set(result["joinReady"]["statuses"]) == {"200"}
    assert_figures(result)


def test_cold_start_compares_the_app_with_eager_sdks(monkeypatch):
    # Light stand-ins: the real imports take seconds and their time is the benchmark's business.
    probes = {name: "import json" for name in cold_start.PROBES}
    monkeypatch.setattr(cold_start, "PROBES", {**probes, "function_app": "import shared.azure_ids"})
    result = cold_start.run(cold_start.Load(runs=1))
    times = result["importTimes"]
    assert set(times) == set(probes)
    assert result["figures"][0]["reference"] == pytest.approx(times["all_sdks_eager"]["medianMs"], abs=0.1)
    assert_figures(result)
