"""Who sees what, end to end through the local host's Easy Auth with the emulator's tokens: runs, deployments and
hygiene findings are shown to auditors and approvers, to their own requesters, and to whoever may read their
workspace; anyone else gets a 404 exactly like a missing one's and lists without them, and paging still works."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from devstack.emulator.testing import running_emulator

from .conftest import Broker, broker_on, until

pytestmark = pytest.mark.integration

PHI = "azureml://registries/azureml/models/Phi-4"
MINI = "azureml://registries/azureml/models/Phi-4-mini-instruct"
DEEPSEEK = "azureml://registries/azureml-deepseek/models/DeepSeek-R1"


@pytest.fixture(scope="module")
def broker(azurite, tmp_path_factory) -> Iterator[Broker]:
    """Hygiene scans the demo project when asked (and not on its own during the test)."""
    log_dir = tmp_path_factory.mktemp("visibility")
    with (
        running_emulator(timings={"lroSeconds": 1.0, "retryAfterMs": 300}) as emulator,
        broker_on(
            emulator,
            azurite.connection_string,
            log_dir / "host.log",
            HYGIENE_WORKSPACES=emulator.workspace_path("demo-project"),
            HYGIENE_SCHEDULE="0 0 0 1 Jan *",
        ) as broker,
    ):
        yield broker


def _deploy(broker: Broker, caller: str, model_id: str, ticket: str) -> dict[str, Any]:
    body = {"workspaceId": broker.workspace_id(), "modelId": model_id, "ticket": ticket}
    response = broker.call("POST", "/api/deployments", caller=caller, json=body)
    assert response.status_code == 202, response.text
    path = f"/api/runs/{response.json()['id']}"
    run = until(lambda: (found := _get(broker, caller, path).json())["status"] in ("Succeeded", "Failed") and found)
    assert run["status"] == "Succeeded", run
    return run


def _get(broker: Broker, caller: str, path: str, **params: str) -> Any:
    return broker.call("GET", path, caller=caller, params=params)


def _values(broker: Broker, caller: str, path: str, **params: str) -> list[dict[str, Any]]:
    response = _get(broker, caller, path, **params)
    assert response.status_code == 200, response.text
    return response.json()["value"]


@pytest.fixture(scope="module")
def world(broker: Broker) -> dict[str, Any]:
    """The requester deploys two models sold directly into demo-project, the approver a third; the reader's own
    request is refused (Reader may not deploy). Then hygiene finds the requester's first endpoint Failed."""
    ticket = f"VIS-{uuid.uuid4().hex[:6]}"
    mine = _deploy(broker, broker.requester, PHI, ticket)
    also_mine = _deploy(broker, broker.requester, MINI, f"{ticket}-2")
    theirs = _deploy(broker, broker.approver, DEEPSEEK, f"{ticket}-3")
    refused = broker.call(
        "POST", "/api/deployments", caller=broker.reader, json={"workspaceId": broker.workspace_id(), "modelId": PHI}
    )
    assert refused.status_code == 403, refused.text
    broker.emulator.admin.set_endpoint_state("demo-project", mine["endpoint"]["name"], provisioningState="Failed")
    broker.invoke("hygiene_scan")
    until(lambda: _get(broker, broker.auditor, "/api/hygiene/report").status_code == 200)
    return {"ticket": ticket, "mine": mine, "also_mine": also_mine, "theirs": theirs}


def test_an_outsider_gets_404_for_the_run_and_the_deployment_exactly_as_for_missing_ones(broker: Broker, world):
    run, outsider = world["mine"], broker.outsider

    hidden_run = _get(broker, outsider, f"/api/runs/{run['id']}")
    missing_run = _get(broker, outsider, "/api/runs/nope")
    hidden_deployment = _get(broker, outsider, f"/api/deployments/{run['deploymentId']}")
    missing_deployment = _get(broker, outsider, "/api/deployments/nope")
    hidden_repair = broker.call("POST", f"/api/deployments/{run['deploymentId']}/repair", caller=outsider)
    hidden_delete = broker.call("DELETE", f"/api/deployments/{run['deploymentId']}", caller=outsider)

    for hidden, missing, asked in [
        (hidden_run, missing_run, run["id"]),
        (hidden_deployment, missing_deployment, run["deploymentId"]),
        (hidden_repair, missing_deployment, run["deploymentId"]),
        (hidden_delete, missing_deployment, run["deploymentId"]),
    ]:
        assert hidden.status_code == missing.status_code == 404
        assert hidden.json() == {**missing.json(), "detail": missing.json()["detail"].replace("'nope'", f"'{asked}'")}
        assert "Location" not in hidden.headers
    assert _get(broker, broker.requester, f"/api/deployments/{run['deploymentId']}").json()["status"]["phase"] in (
        "Ready",
        "Degraded",
    ), "neither repaired nor deleted by the outsider"


def test_an_outsider_lists_no_run_no_deployment_and_no_finding(broker: Broker, world):
    outsider = broker.outsider

    assert _values(broker, outsider, "/api/runs") == []
    assert _values(broker, outsider, "/api/runs", ticket=world["ticket"]) == []
    assert _values(broker, outsider, "/api/deployments") == []
    assert _values(broker, outsider, "/api/deployments", ticket=world["ticket"]) == []
    assert _values(broker, outsider, "/api/hygiene/findings") == []
    report = _get(broker, outsider, "/api/hygiene/report").json()
    assert (report["scope"], report["findings"]["open"]) == ("visible", {})
    assert "workspaces" not in report


def test_the_auditor_sees_every_run_deployment_and_finding(broker: Broker, world):
    auditor = broker.auditor
    runs = {run["id"] for run in _values(broker, auditor, "/api/runs")}
    deployments = {item["id"] for item in _values(broker, auditor, "/api/deployments")}
    findings = _values(broker, auditor, "/api/hygiene/findings", rule="endpoint-failed")

    assert {world[name]["id"] for name in ("mine", "also_mine", "theirs")} <= runs
    assert len(runs) == 4, "the reader's refused request is a run too"
    assert {world[name]["deploymentId"] for name in ("mine", "also_mine", "theirs")} == deployments
    assert [finding["deploymentId"] for finding in findings] == [world["mine"]["deploymentId"]]
    assert _get(broker, auditor, f"/api/runs/{world['theirs']['id']}").status_code == 200
    report = _get(broker, auditor, "/api/hygiene/report").json()
    assert (report["scope"], report["workspaces"]["scanned"]) == ("all", 1)


def test_the_requester_sees_its_own_requests_and_not_the_approvers(broker: Broker, world):
    requester = broker.requester

    assert _get(broker, requester, f"/api/runs/{world['mine']['id']}").status_code == 200
    assert _get(broker, requester, f"/api/deployments/{world['mine']['deploymentId']}").status_code == 200
    assert _get(broker, requester, f"/api/runs/{world['theirs']['id']}").status_code == 404
    assert _get(broker, requester, f"/api/deployments/{world['theirs']['deploymentId']}").status_code == 404
    assert {run["caller"] for run in _values(broker, requester, "/api/runs")} == {requester}
    listed = {item["id"] for item in _values(broker, requester, "/api/deployments")}
    assert listed == {world["mine"]["deploymentId"], world["also_mine"]["deploymentId"]}


def test_the_reader_of_the_resource_group_sees_every_request_in_it(broker: Broker, world):
    reader = broker.reader

    assert _get(broker, reader, f"/api/runs/{world['mine']['id']}").status_code == 200
    assert _get(broker, reader, f"/api/deployments/{world['theirs']['deploymentId']}").status_code == 200
    assert len(_values(broker, reader, "/api/runs")) == 4
    assert len(_values(broker, reader, "/api/deployments")) == 3
    findings = _values(broker, reader, "/api/hygiene/findings", rule="endpoint-failed")
    assert [finding["deploymentId"] for finding in findings] == [world["mine"]["deploymentId"]]
    report = _get(broker, reader, "/api/hygiene/report").json()
    assert (report["scope"], report["findings"]["open"].get("endpoint-failed")) == ("visible", 1)


def _walk(broker: Broker, caller: str, path: str) -> list[list[str]]:
    """Every page of `path` at one item a page, following nextLink as a client does."""
    pages: list[list[str]] = []
    response = _get(broker, caller, path, pageSize="1")
    for _ in range(20):
        assert response.status_code == 200, response.text
        body = response.json()
        pages.append([item["id"] for item in body["value"]])
        if body["nextLink"] is None:
            return pages
        response = broker.call("GET", body["nextLink"].removeprefix(broker.host.url), caller=caller)
    raise AssertionError(f"more pages than items: {pages}")


def test_pages_of_one_hold_exactly_what_a_caller_sees_when_most_is_hidden(broker: Broker, world):
    runs = _walk(broker, broker.requester, "/api/runs")
    deployments = _walk(broker, broker.requester, "/api/deployments")
    nothing = _walk(broker, broker.outsider, "/api/runs")

    assert sorted(run for page in runs for run in page) == sorted([world["mine"]["id"], world["also_mine"]["id"]])
    assert all(len(page) == 1 for page in runs[:2])
    assert sorted(item for page in deployments for item in page) == sorted(
        [world["mine"]["deploymentId"], world["also_mine"]["deploymentId"]]
    )
    assert [item for page in nothing for item in page] == []


def test_every_read_needs_a_bearer_token_but_health_and_openapi_stay_anonymous(broker: Broker, world):
    anonymous = {"Authorization": "", "x-functions-key": broker.host.function_key}
    for path in ("/api/runs", f"/api/runs/{world['mine']['id']}", "/api/deployments", "/api/hygiene/findings"):
        response = broker.call("GET", path, headers=anonymous)
        assert response.status_code == 401, path
        assert response.headers["WWW-Authenticate"].startswith("Bearer")
    for path in ("/api/health", "/api/openapi.json"):
        assert broker.call("GET", path, headers=anonymous).status_code in (200, 503), path
    health = broker.call("GET", "/api/health", headers=anonymous).text
    assert world["mine"]["id"] not in health
    assert broker.requester not in health
