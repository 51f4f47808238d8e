"""The operators' workbook and alert rules read what the broker really emits.

The emitted names are recorded, not copied: the broker's own telemetry classes run on private OpenTelemetry providers
(the global ones are never touched), and every metric name, span name and attribute key the queries use must be one
of those recorded. The host's poison-queue log line is the Functions host's; the intake's comes from its source.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from shared.hygiene.findings import Severity
from shared.problems import Problem
from shared.requests import DeploymentRequest
from shared.runs import RunError, RunRecord, RunStatus
from shared.telemetry import OUTCOME, PROBLEM, BrokerTelemetry, StepOutcome
from shared.watchdog import Recovery, WatchdogTelemetry

from .bicep import INFRA, REPO, Scope, function_call, output_of, parse, property_of, resource, resources

WORKBOOK = INFRA / "workbooks" / "broker-operations.json"
WORKSPACE = (
    "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/rg"
    "/providers/Microsoft.MachineLearningServices/workspaces/project"
)
MODEL = "azureml://registries/azureml-meta/models/Llama-3.3-70B-Instruct"
T0 = datetime(2026, 1, 1, tzinfo=UTC)
# What the queries match in log lines: the Functions host's own words, and the intake's (shared/deployments/service.py).
HOST_POISON_LINE = "Moving message to queue"
INTAKE_POISON_FORMAT = '"deployment request message %s poisoned: %s"'
# The workbook's own parameter, filled in by Azure Monitor rather than by workbook.bicep.
WORKBOOK_PARAMETERS = {"TimeRange:grain"}


@dataclass(frozen=True)
class Emitted:
    metrics: dict[str, set[str]]  # metric name -> attribute keys
    spans: dict[str, set[str]]  # span name -> attribute keys

    @property
    def attribute_keys(self) -> set[str]:
        return {key for keys in (*self.metrics.values(), *self.spans.values()) for key in keys}


@pytest.fixture(scope="module")
def emitted() -> Emitted:
    spans = InMemorySpanExporter()
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(spans))
    reader = InMemoryMetricReader()
    meter_provider = MeterProvider(metric_readers=[reader])
    telemetry = BrokerTelemetry(tracer_provider=tracer_provider, meter_provider=meter_provider)

    with telemetry.submit_span() as span:
        telemetry.describe_submission(span, "run-1", created=False, problem=Problem.of("validation-failed", "No."))
    with telemetry.step_span("run-1", "provision") as span:
        span.set_attribute(OUTCOME, StepOutcome.FAILED)
    run = RunRecord.new(
        run_id="run-1", caller="oid", request=DeploymentRequest(workspace_id=WORKSPACE, model_id=MODEL), at=T0
    )
    failed = run.transition(RunStatus.VALIDATING, at=T0).transition(
        RunStatus.FAILED, at=T0 + timedelta(seconds=30), error=RunError(code="QuotaExceeded", message="No quota.")
    )
    telemetry.run_finished(failed)
    telemetry.findings_changed(
        opened={("endpoint-unhealthy", Severity.HIGH): 2}, resolved={("secrets-orphaned", Severity.MEDIUM): 1}
    )
    telemetry.findings_open({("endpoint-unhealthy", Severity.HIGH): 2, ("secrets-orphaned", Severity.MEDIUM): 0})
    WatchdogTelemetry(meter_provider=meter_provider).recovered(
        Recovery(run_id="run-1", status="Provisioning", step="provision", silent_seconds=61.0, step_token=2)
    )

    metrics: dict[str, set[str]] = {}
    data = reader.get_metrics_data()
    for resource_metrics in data.resource_metrics:
        for scope_metrics in resource_metrics.scope_metrics:
            for metric in scope_metrics.metrics:
                for point in metric.data.data_points:
                    metrics.setdefault(metric.name, set()).update(point.attributes)
    recorded = {span.name: set(span.attributes) for span in spans.get_finished_spans()}
    tracer_provider.shutdown()
    meter_provider.shutdown()
    return Emitted(metrics, recorded)


@pytest.fixture(scope="module")
def main() -> Scope:
    return Scope(parse(INFRA / "main.bicep"))


@pytest.fixture(scope="module")
def alerts(main: Scope) -> Scope:
    return main.module("modules/alerts.bicep")


@pytest.fixture(scope="module")
def workbook_module(main: Scope) -> Scope:
    return main.module("modules/workbook.bicep")


@pytest.fixture(scope="module")
def workbook_items() -> dict[str, dict[str, Any]]:
    workbook = json.loads(WORKBOOK.read_text(encoding="utf-8"))
    assert workbook["version"] == "Notebook/1.0"
    return {item["name"]: item for item in workbook["items"]}


def alert_queries(alerts: Scope) -> dict[str, str]:
    return {
        name: alerts.evaluate(rule["properties"]["criteria"]["allOf"][0]["query"])
        for name in alerts.document["resources"]
        if alerts.document["resources"][name]["type"] == "Microsoft.Insights/scheduledQueryRules"
        for rule in [resource(alerts.document, name)]
    }


def workbook_queries(workbook_items: dict[str, dict[str, Any]]) -> dict[str, str]:
    return {name: item["content"]["query"] for name, item in workbook_items.items() if item["type"] == 3}


def assert_names_are_emitted(query: str, emitted: Emitted) -> None:
    tables = set(re.findall(r"^(\w+)\s*$", query, flags=re.MULTILINE))
    names = set(re.findall(r'\bname == "([^"]+)"', query))
    if "customMetrics" in tables:
        assert names <= emitted.metrics.keys(), f"metrics the broker does not emit: {names - emitted.metrics.keys()}"
    if "dependencies" in tables:
        assert names <= emitted.spans.keys(), f"spans the broker does not emit: {names - emitted.spans.keys()}"
    keys = set(re.findall(r"customDimensions\.(\w+)", query)) | set(re.findall(r'customDimensions\["([^"]+)"\]', query))
    assert keys <= emitted.attribute_keys, f"attributes the broker does not set: {keys - emitted.attribute_keys}"


def test_the_recorded_telemetry_is_what_the_queries_are_written_against(emitted: Emitted) -> None:
    assert emitted.metrics == {
        "broker.runs.finished": {"status"},
        "broker.run.duration": {"status"},
        "broker.hygiene.findings": {"change", "rule", "severity"},
        "broker.hygiene.findings.open": {"rule", "severity"},
        "broker.watchdog.recoveries": {"status", "step"},
    }
    assert {PROBLEM} <= emitted.spans["deployment.submit"]
    assert {OUTCOME, "broker.step"} <= emitted.spans["deployment.step"]


def test_main_deploys_the_workbook_over_application_insights_and_the_storage_account(
    main: Scope, workbook_module: Scope
) -> None:
    assert output_of(workbook_module.arguments["applicationInsightsId"]) == ("monitoring", "applicationInsightsId")
    assert output_of(workbook_module.arguments["storageAccountId"]) == ("storage", "id")
    [workbook] = resources(workbook_module.document, "Microsoft.Insights/workbooks")
    assert workbook["kind"] == "shared"
    assert workbook["properties"]["sourceId"] == "applicationInsightsId"
    function_call(workbook["name"], "guid")


def test_workbook_bicep_fills_in_every_placeholder_of_the_workbook(workbook_module: Scope) -> None:
    [workbook] = resources(workbook_module.document, "Microsoft.Insights/workbooks")
    serialized = workbook_module.evaluate(workbook["properties"]["serializedData"])
    assert set(re.findall(r"\{([\w:]+)\}", serialized)) <= WORKBOOK_PARAMETERS
    items = {item["name"]: item["content"] for item in json.loads(serialized)["items"]}
    assert items["queue-messages"]["resourceIds"] == ["storage.outputs.id"]
    for content in items.values():
        if "query" in content:
            assert content["crossComponentResources"] == ["monitoring.outputs.applicationInsightsId"]
    assert '"deployment-requests-poison", "deployment-work-poison"' in items["poison-messages"]["query"]


@pytest.mark.parametrize(
    ("tile", "names"),
    [
        ("runs-by-outcome", {"broker.runs.finished", "status"}),
        ("run-duration-by-outcome", {"broker.run.duration", "status"}),
        ("rejections-by-reason", {"deployment.submit", PROBLEM}),
        ("step-outcomes", {"deployment.step", OUTCOME}),
        ("watchdog-recoveries", {"broker.watchdog.recoveries", "step"}),
        ("findings-opened-resolved", {"broker.hygiene.findings", "change", "severity"}),
        ("findings-open-by-rule", {"broker.hygiene.findings.open", "rule", "severity", "arg_max(timestamp"}),
        ("poison-messages", {HOST_POISON_LINE, "poisoned: "}),
        ("health-availability", {"availabilityResults"}),
    ],
)
def test_each_workbook_tile_queries_the_names_it_depends_on(
    tile: str, names: set[str], workbook_items: dict[str, dict[str, Any]], emitted: Emitted
) -> None:
    query = workbook_queries(workbook_items)[tile]
    assert {name for name in names if name not in query} == set()
    assert_names_are_emitted(query, emitted)


def test_every_workbook_query_uses_only_emitted_names(
    workbook_items: dict[str, dict[str, Any]], emitted: Emitted
) -> None:
    for query in workbook_queries(workbook_items).values():
        assert_names_are_emitted(query, emitted)


def test_queue_depths_come_from_the_storage_accounts_queue_metrics(workbook_items: dict[str, dict[str, Any]]) -> None:
    content = workbook_items["queue-messages"]["content"]
    assert content["resourceIds"] == ["{storageAccountId}"]
    [metric] = content["metrics"]
    assert metric["namespace"] == "microsoft.storage/storageaccounts/queueservices"
    assert metric["metric"].endswith("-QueueMessageCount")


def test_every_alert_rule_notifies_the_action_groups(alerts: Scope, main: Scope) -> None:
    assert alerts.arguments["actionGroupId"] == "actionGroupId"
    assert alerts.arguments["alertEmail"] == "alertEmail"
    assert main.document["parameters"]["actionGroupId"]["default"] == ""
    rules = resources(alerts.document, "Microsoft.Insights/scheduledQueryRules")
    assert len(rules) == 3
    for rule in rules:
        assert rule["properties"]["actions"]["actionGroups"] == "actionGroupIds"
        assert rule["properties"]["scopes"] == ["applicationInsightsId"]
        assert rule["properties"]["enabled"] is True
    [metric_alert] = resources(alerts.document, "Microsoft.Insights/metricAlerts")
    actions = alerts.follow(metric_alert["properties"]["actions"])[0]
    assert actions["loop_type"]["detail"]["array_name"] == "actionGroupIds"
    assert actions["config"] == {"actionGroupId": "id"}
    assert output_of(alerts.arguments["applicationInsightsId"]) == ("monitoring", "applicationInsightsId")


@pytest.mark.parametrize(
    ("parameters", "expected"),
    [
        (
            {"actionGroupId": "/subscriptions/s/resourceGroups/ops/providers/microsoft.insights/actionGroups/ops"},
            "given",
        ),
        ({"alertEmail": "ops@contoso.example"}, "created"),
        ({}, "none"),
    ],
)
def test_the_action_group_is_the_one_given_or_one_created_for_the_email(
    main: Scope, parameters: dict[str, str], expected: str
) -> None:
    alerts = main.with_parameters(**parameters).module("modules/alerts.bicep")
    groups = alerts.evaluate("actionGroupIds")
    [email_group] = resources(alerts.document, "Microsoft.Insights/actionGroups")
    creates = alerts.evaluate(email_group["condition"]) if "condition" in email_group else None
    if expected == "given":
        assert groups == [parameters["actionGroupId"]]
        assert creates is False
    elif expected == "created":
        [group] = groups
        assert property_of(group) == ("emailGroup", "id")
        assert creates is True
        assert (
            alerts.evaluate(email_group["config"]["properties"]["emailReceivers"][0]["emailAddress"])
            == (parameters["alertEmail"])
        )
    else:
        assert groups == []
        assert creates is False


def test_failed_runs_alert_counts_runs_that_ended_failed(alerts: Scope, emitted: Emitted) -> None:
    query = alert_queries(alerts)["failedRuns"]
    assert 'name == "broker.runs.finished"' in query
    assert f'customDimensions.status) == "{RunStatus.FAILED.value}"' in query
    assert_names_are_emitted(query, emitted)


def test_findings_alert_counts_opened_findings_of_severity_critical_or_high(alerts: Scope, emitted: Emitted) -> None:
    query = alert_queries(alerts)["openedFindings"]
    assert 'name == "broker.hygiene.findings"' in query
    assert 'customDimensions.change) == "opened"' in query
    [alerting] = re.findall(r"customDimensions\.severity\) in \(([^)]*)\)", query)
    assert set(re.findall(r'"([^"]+)"', alerting)) == {Severity.CRITICAL.value, Severity.HIGH.value}
    assert_names_are_emitted(query, emitted)
    rule = resource(alerts.document, "openedFindings")
    assert "critical or high" in rule["properties"]["description"]


def test_poison_alert_watches_both_poison_queues_in_the_host_and_intake_log_lines(alerts: Scope, main: Scope) -> None:
    query = alert_queries(alerts)["poisonMessages"]
    settings = json.loads((REPO / "local.settings.sample.json").read_text(encoding="utf-8"))["Values"]
    for queue in (settings["DEPLOYMENT_REQUESTS_QUEUE"], settings["DEPLOYMENT_WORK_QUEUE"]):
        assert f'"{queue}-poison"' in query
    assert HOST_POISON_LINE in query
    service = (REPO / "shared" / "deployments" / "service.py").read_text(encoding="utf-8")
    assert INTAKE_POISON_FORMAT in service, "the intake's poison log line changed: update the poison queries"
    host = json.loads((REPO / "host.json").read_text(encoding="utf-8"))
    assert host["extensions"]["queues"]["maxDequeueCount"] >= 1
    [rule] = [
        rule
        for rule in resources(alerts.document, "Microsoft.Insights/scheduledQueryRules")
        if "poison" in rule["name"]
    ]
    assert rule["properties"]["criteria"]["allOf"][0]["dimensions"][0]["name"] == "queue"


def test_health_alert_fires_when_the_availability_test_of_api_health_fails(alerts: Scope, main: Scope) -> None:
    url = alerts.arguments["healthUrl"]
    assert url == "https://${functionApp.outputs.defaultHostName}/api/health"
    excluded = main.module("modules/functionapp.bicep").follow(
        main.document["modules"]["functionApp"]["config"]["params"]["authExcludedPaths"]
    )[0]
    assert "/api/health" in excluded, "the availability test probes without a token"
    [test] = resources(alerts.document, "Microsoft.Insights/webtests")
    assert test["kind"] == "standard"
    assert test["properties"]["Request"] == {
        "RequestUrl": "healthUrl",
        "HttpVerb": "GET",
        "ParseDependentRequests": False,
    }
    assert test["properties"]["ValidationRules"]["ExpectedHttpStatusCode"] == 200
    hidden_link = function_call(test["tags"], "union")["arg_2"]
    assert hidden_link == {"'hidden-link:${applicationInsightsId}'": "Resource"}
    [metric_alert] = resources(alerts.document, "Microsoft.Insights/metricAlerts")
    criteria = metric_alert["properties"]["criteria"]
    assert criteria["'odata.type'"] == "Microsoft.Azure.Monitor.WebtestLocationAvailabilityCriteria"
    assert property_of(criteria["webTestId"]) == ("healthTest", "id")
    locations = main.evaluate("healthTestLocations")
    assert 1 <= criteria["failedLocationCount"] < len(locations)
