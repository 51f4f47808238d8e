"""The hygiene functions: the timer's binding and run, and the two HTTP reads, over the in-memory world."""

from __future__ import annotations

import json
from dataclasses import dataclass

import azure.functions as func
import pytest
from azure.functions.timer import TimerRequest

from handlers import hygiene as handlers
from shared.access import DEFAULT_APPROVER_ROLE, DEFAULT_AUDITOR_ROLE, BrokerRoles, Caller
from shared.deployment import Deployment
from shared.deployments import composition as deployment_composition
from shared.deployments.visibility import Visibility
from shared.hygiene import composition
from tests.deployments.fakes import FakeAuthorization
from tests.handlers.handler_support import principal_header

from .conftest import World
from .fakes import WS_A, WS_B, deployment, endpoint

BASE = "https://broker.example.com/api/hygiene"
AUDITOR = "0a0a0a0a-0000-4000-8000-00000000a0d1"
APPROVER = "0a0a0a0a-0000-4000-8000-00000000a990"
READER_OF_A = "0a0a0a0a-0000-4000-8000-0000000000ea"
NOBODY = "0a0a0a0a-0000-4000-8000-000000000000"
ROLES = {AUDITOR: [DEFAULT_AUDITOR_ROLE], APPROVER: [DEFAULT_APPROVER_ROLE]}


@dataclass
class Readers:
    """What the handlers ask of the deployment service here: its visibility rule, over an authorization fake and
    the world's deployments."""

    authorization: FakeAuthorization
    world: World

    def visibility(self, caller: Caller) -> Visibility:
        def deployment(the_id: str) -> Deployment | None:
            stored = self.world.runs.get_deployment(the_id)
            return stored.deployment if stored else None

        return Visibility(caller, roles=BrokerRoles(), authorization=self.authorization, deployment=deployment)


@pytest.fixture
def scanned(world: World, monkeypatch: pytest.MonkeyPatch) -> World:
    world.ml.add(WS_A, endpoint(WS_A, "llama", subscription="gone-sub"), endpoint(WS_A, "handmade", managed=False))
    world.ml.add(WS_B, endpoint(WS_B, "cohere", subscription="gone-sub"))
    monkeypatch.setattr(composition, "finding_store", lambda: world.store)
    scanner = world.scanner(workspaces=(WS_A, WS_B), disabled_rules=frozenset({"secrets-missing"}))
    monkeypatch.setattr(composition, "hygiene_scanner", lambda: scanner)
    authorization = FakeAuthorization("broker")
    authorization.grant(READER_OF_A, WS_A, permissions=[{"actions": ["*/read"]}], roles=["Reader"])
    monkeypatch.setattr(deployment_composition, "deployment_service", lambda: Readers(authorization, world))
    return world


def get(function, path: str, *, as_: str | None = AUDITOR, **params: str) -> tuple[int, dict]:
    """GET as `as_` (signed in, with its app roles; None: anonymous)."""
    headers = {}
    if as_ is not None:
        headers["X-MS-CLIENT-PRINCIPAL"] = principal_header(as_, roles=ROLES.get(as_, ()))
    response = function(func.HttpRequest("GET", f"{BASE}/{path}", params=params, headers=headers, body=b""))
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


def test_both_reads_need_a_signed_in_caller(scanned: World):
    handlers.hygiene_scan(TimerRequest())

    for function, path in ((handlers.hygiene_findings, "findings"), (handlers.hygiene_report, "report")):
        response = function(func.HttpRequest("GET", f"{BASE}/{path}", body=b""))
        assert response.status_code == 401
        assert response.headers["WWW-Authenticate"].startswith("Bearer ")


def test_a_caller_sees_the_findings_of_the_workspaces_they_may_read_a_full_page_at_a_time(scanned: World):
    handlers.hygiene_scan(TimerRequest())

    _, everything = get(handlers.hygiene_findings, "findings", as_=APPROVER)
    _, first = get(handlers.hygiene_findings, "findings", as_=READER_OF_A, pageSize="1")
    next_params = dict(item.split("=", 1) for item in first["nextLink"].split("?", 1)[1].split("&"))
    _, second = get(handlers.hygiene_findings, "findings", as_=READER_OF_A, **next_params)
    _, none = get(handlers.hygiene_findings, "findings", as_=NOBODY)

    assert len(everything["value"]) == 3, "approvers see every workspace"
    in_a = [item["resourceId"] for item in everything["value"] if item["workspaceId"] == WS_A]
    assert [item["resourceId"] for item in first["value"] + second["value"]] == in_a
    assert len(first["value"]) == len(second["value"]) == 1
    assert none == {"value": [], "nextLink": None}


def test_the_report_is_whole_for_auditors_and_counted_over_what_others_may_see(scanned: World):
    handlers.hygiene_scan(TimerRequest())

    _, whole = get(handlers.hygiene_report, "report")
    _, of_a = get(handlers.hygiene_report, "report", as_=READER_OF_A)
    _, of_nothing = get(handlers.hygiene_report, "report", as_=NOBODY)

    assert whole["scope"] == "all"
    assert whole["findings"]["open"] == {"endpoint-unhealthy": 2, "endpoint-unmanaged": 1}
    assert of_a["scope"] == "visible"
    assert of_a["scanId"] == whole["scanId"]
    assert of_a["findings"] == {
        "open": {"endpoint-unhealthy": 1, "endpoint-unmanaged": 1},
        "openBySeverity": {"high": 1, "info": 1},
        "pending": 0,
    }
    assert {"workspaces", "resources", "deployments", "remediation", "errors"}.isdisjoint(of_a)
    assert of_nothing["findings"] == {"open": {}, "openBySeverity": {}, "pending": 0}


def test_the_requester_of_a_deployment_sees_the_findings_about_it_without_reading_its_workspace(scanned: World):
    made = deployment(WS_B, scanned.ml.endpoints[WS_B][0], tickets=("INC-8",))
    scanned.runs.add_deployment(made)
    handlers.hygiene_scan(TimerRequest())
    [requester] = {request.caller for request in made.requests}

    _, findings = get(handlers.hygiene_findings, "findings", as_=requester)
    _, report = get(handlers.hygiene_report, "report", as_=requester)

    assert [(item["deploymentId"], item["rule"]) for item in findings["value"]] == [(made.id, "endpoint-unhealthy")]
    assert report["findings"]["open"] == {"endpoint-unhealthy": 1}
