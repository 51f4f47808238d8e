"""The hygiene scan's metrics, recorded on a private provider read as Azure Monitor reads it (the global providers are
never touched): findings opened and resolved by rule and severity, and the findings open after each scan."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pytest

# The temporalities the Azure Monitor exporter asks for: counters and histograms as deltas, so each collection holds
# only what was recorded since the one before, as each export does.
from azure.monitor.opentelemetry.exporter.export.metrics._exporter import APPLICATION_INSIGHTS_METRIC_TEMPORALITIES
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import HistogramDataPoint, InMemoryMetricReader

from shared.hygiene.findings import Severity
from shared.telemetry import BrokerTelemetry

from .conftest import World
from .fakes import DIRECT_MODEL, WS_A, endpoint, marketplace_subscription

FINDINGS = "broker.hygiene.findings"
OPEN_FINDINGS = "broker.hygiene.findings.open"
UNHEALTHY = "endpoint-unhealthy"

Points = dict[tuple[tuple[str, str], ...], float]


@dataclass
class Recorded:
    telemetry: BrokerTelemetry
    reader: InMemoryMetricReader

    def export(self) -> dict[str, Points]:
        """Metric name -> its points' sorted attributes -> value (a histogram's largest) since the last export."""
        data = self.reader.get_metrics_data()
        exported: dict[str, Points] = {}
        for resource in data.resource_metrics if data else []:
            for scope in resource.scope_metrics:
                for metric in scope.metrics:
                    for point in metric.data.data_points:
                        value = point.max if isinstance(point, HistogramDataPoint) else point.value
                        exported.setdefault(metric.name, {})[tuple(sorted(point.attributes.items()))] = value
        return exported


@pytest.fixture
def recorded() -> Iterator[Recorded]:
    reader = InMemoryMetricReader(preferred_temporality=APPLICATION_INSIGHTS_METRIC_TEMPORALITIES)
    provider = MeterProvider(metric_readers=[reader])
    yield Recorded(BrokerTelemetry(meter_provider=provider), reader)
    provider.shutdown()


def dimensions(**values: str) -> tuple[tuple[str, str], ...]:
    return tuple(sorted(values.items()))


def test_findings_changed_counts_each_change_by_rule_and_severity(recorded: Recorded) -> None:
    recorded.telemetry.findings_changed(
        opened={(UNHEALTHY, Severity.HIGH): 2, ("secrets-orphaned", Severity.MEDIUM): 0},
        resolved={("endpoint-unmanaged", Severity.INFO): 1},
    )

    assert recorded.export()[FINDINGS] == {
        dimensions(change="opened", rule=UNHEALTHY, severity="high"): 2,
        dimensions(change="resolved", rule="endpoint-unmanaged", severity="info"): 1,
    }


def test_open_findings_are_exported_once_per_scan_zero_included(recorded: Recorded) -> None:
    recorded.telemetry.findings_open({(UNHEALTHY, Severity.HIGH): 3, ("secrets-orphaned", Severity.MEDIUM): 0})

    first = recorded.export()
    second = recorded.export()

    assert first[OPEN_FINDINGS] == {
        dimensions(rule=UNHEALTHY, severity="high"): 3,
        dimensions(rule="secrets-orphaned", severity="medium"): 0,
    }
    # A gauge would be exported again here, and by every instance that ever scanned, as if it were still current.
    assert OPEN_FINDINGS not in second


def test_a_scan_reports_what_it_opened_and_resolved_and_every_evaluated_rules_open_count(
    world: World, recorded: Recorded
) -> None:
    world.telemetry = recorded.telemetry
    for item in (endpoint(WS_A, "llama", subscription="llama-sub"), endpoint(WS_A, "phi", model_id=DIRECT_MODEL)):
        world.ml.add(WS_A, item)
        world.secrets.put_for(WS_A, item, world.ml.keys[item.id.lower()])

    opening = world.scan(workspaces=(WS_A,))
    opened = recorded.export()
    world.ml.subscriptions[WS_A] = [marketplace_subscription(WS_A, "llama-sub")]
    world.clock.advance(minutes=15)
    resolving = world.scan(workspaces=(WS_A,))
    resolved = recorded.export()

    assert opening["findings"]["open"] == {UNHEALTHY: 1}
    assert opened[FINDINGS] == {dimensions(change="opened", rule=UNHEALTHY, severity="high"): 1}
    assert resolved[FINDINGS] == {dimensions(change="resolved", rule=UNHEALTHY, severity="high"): 1}
    for report, export, unhealthy in ((opening, opened, 1), (resolving, resolved, 0)):
        counts = {dict(key)["rule"]: value for key, value in export[OPEN_FINDINGS].items()}
        assert counts.keys() == set(report["rules"]["evaluated"])
        assert counts == {rule: unhealthy if rule == UNHEALTHY else 0 for rule in counts}
    assert dimensions(rule=UNHEALTHY, severity="high") in resolved[OPEN_FINDINGS]


def test_a_rule_that_was_not_evaluated_leaves_its_last_open_count_standing(world: World, recorded: Recorded) -> None:
    world.telemetry = recorded.telemetry
    world.secrets = None

    report = world.scan(workspaces=(WS_A,))

    rules = {dict(key)["rule"] for key in recorded.export()[OPEN_FINDINGS]}
    assert report["rules"]["skipped"]
    assert rules == set(report["rules"]["evaluated"])
