"""The hygiene functions: the timer's binding and run, and the two HTTP reads, over the in-memory world."""

from __future__ import annotations

import json

import azure.functions as func
import pytest
from azure.functions.timer import TimerRequest

from handlers import hygiene as handlers
from shared.hygiene import composition

from .conftest import World
from .fakes import WS_A, WS_B, deployment, endpoint

BASE = "https://broker.example.com/api/hygiene"


@pytest.fixture
def scanned(world: World, monkeypatch: pytest.MonkeyPatch) -> World:
    world.ml.add(WS_A, endpoint(WS_A, "llama", subscription="gone-sub"), endpoint(WS_A, "handmade", managed=False))
    world.ml.add(WS_B, endpoint(WS_B, "cohere", subscription="gone-sub"))
    monkeypatch.setattr(composition, "finding_store", lambda: world.store)
    scanner = world.scanner(workspaces=(WS_A, WS_B), disabled_rules=frozenset({"secrets-missing"}))
    monkeypatch.setattr(composition, "hygiene_scanner", lambda: scanner)
    return world


def get(function, path: str, **params: str) -> tuple[int, dict]:
    response = function(func.HttpRequest("GET", f"{BASE}/{path}", params=params, body=b""))
    return response.status_code, json.loads(response.get_body())


def test_the_blueprint_binds_a_timer_on_the_schedule_setting_and_two_function_level_gets():
    app = func.FunctionApp()
    app.register_functions(handlers.blueprint)
    functions = {function.get_function_name(): function for function in app.get_functions()}

    timer = functions["hygiene_scan"].get_trigger()
    assert (timer.schedule, timer.use_monitor, timer.run_on_startup) == ("%HYGIENE_SCHEDULE%", True, False)
    for name, route in (("hygiene_findings", "hygiene/findings"), ("hygiene_report", "hygiene/report")):
        trigger = functions[name].get_trigger()
        assert (trigger.route, [method.value for method in trigger.methods], trigger.auth_level.value) == (
            route,
            ["GET"],
            "function",
        )


def test_the_report_is_404_until_a_scan_has_run_then_the_latest_report(scanned: World):
    before = get(handlers.hygiene_report, "report")
    handlers.hygiene_scan(TimerRequest(past_due=True))

    status, report = get(handlers.hygiene_report, "report")

    assert before[0] == 404
    assert status == 200
    assert report["workspaces"] == {"scanned": 2, "reachable": 2, "unreachable": 0}
    assert report["findings"]["open"] == {"endpoint-unhealthy": 2, "endpoint-unmanaged": 1}


def test_findings_filter_by_rule_severity_workspace_and_state(scanned: World):
    handlers.hygiene_scan(TimerRequest())

    _, everything = get(handlers.hygiene_findings, "findings")
    _, unhealthy_in_a = get(handlers.hygiene_findings, "findings", rule="endpoint-unhealthy", workspaceId=WS_A.upper())
    _, info = get(handlers.hygiene_findings, "findings", severity="info", state="open")
    _, resolved = get(handlers.hygiene_findings, "findings", state="resolved")

    assert len(everything["value"]) == 3
    assert [item["resourceId"] for item in unhealthy_in_a["value"]] == [f"{WS_A}/serverlessEndpoints/llama"]
    assert [item["rule"] for item in info["value"]] == ["endpoint-unmanaged"]
    assert resolved["value"] == []
    assert "outbox" not in everything["value"][0]
    assert {"firstSeen", "lastSeen", "resolvedAt", "evidence", "actions"} <= everything["value"][0].keys()
    assert {"deploymentId", "runId", "tickets", "recommendedAction"} <= everything["value"][0].keys()


def test_findings_show_the_deployment_they_are_about(scanned: World):
    made = deployment(WS_A, scanned.ml.endpoints[WS_A][0], tickets=("INC-7",))
    scanned.runs.add_deployment(made)
    handlers.hygiene_scan(TimerRequest())

    _, unhealthy_in_a = get(handlers.hygiene_findings, "findings", rule="endpoint-unhealthy", workspaceId=WS_A)

    _, about_it = get(handlers.hygiene_findings, "findings", deploymentId=made.id.upper())
    _, about_nothing = get(handlers.hygiene_findings, "findings", deploymentId="ws-a--nothing--0000000000")

    assert about_it["value"] == unhealthy_in_a["value"]
    assert about_nothing["value"] == []
    [finding] = unhealthy_in_a["value"]
    assert (finding["deploymentId"], finding["runId"], finding["tickets"]) == (made.id, "run-1", ["INC-7"])
    assert finding["recommendedAction"] == (
        f"Re-POST the same request (POST /api/deployments) or POST /api/deployments/{made.id}/repair to "
        f"re-subscribe; or DELETE /api/deployments/{made.id}"
    )


def test_findings_are_paged_with_a_next_link_that_keeps_the_filters(scanned: World):
    handlers.hygiene_scan(TimerRequest())

    _, first = get(handlers.hygiene_findings, "findings", pageSize="2", state="open", code="function-key")
    next_params = dict(item.split("=", 1) for item in first["nextLink"].split("?", 1)[1].split("&"))
    _, second = get(handlers.hygiene_findings, "findings", **next_params)

    assert len(first["value"]) == 2
    assert "code" not in next_params
    assert next_params["state"] == "open"
    assert len(second["value"]) == 1
    assert second["nextLink"] is None


def test_invalid_filters_are_a_validation_problem_naming_each_field(scanned: World):
    status, problem = get(
        handlers.hygiene_findings,
        "findings",
        rule="nope",
        severity="urgent",
        state="closed",
        workspaceId="x",
        pageSize="0",
    )

    assert status == 400
    assert sorted(error["field"] for error in problem["errors"]) == [
        "pageSize",
        "rule",
        "severity",
        "state",
        "workspaceId",
    ]
