"""Lists over a fake transport: filters as query parameters, every page followed through nextLink, errors raised."""

from __future__ import annotations

import pytest
from deployment_broker_client import BrokerNotFoundError, RunStatus

from tests.clients import wire
from tests.clients.fakes import API, FakeBroker, client_over


def test_list_deployments_sends_the_filters_and_follows_next_link_to_the_last_page():
    second_page = f"{API}/deployments?workspaceId=x&continuationToken=abc"
    broker = FakeBroker().answer(
        "GET", "/deployments", 200, {"value": [wire.deployment_document()], "nextLink": second_page}
    )
    broker.answer("GET", "/deployments", 200, {"value": [wire.deployment_document()], "nextLink": None})

    deployments = list(
        client_over(broker).list_deployments(workspace_id=wire.WORKSPACE, phase="Ready", results_per_page=1)
    )

    assert [item.id for item in deployments] == [wire.DEPLOYMENT_ID, wire.DEPLOYMENT_ID]
    first, second = broker.calls("GET", "/deployments")
    assert first.query == {"workspaceId": [wire.WORKSPACE], "phase": ["Ready"], "pageSize": ["1"]}
    assert second.query == {"workspaceId": ["x"], "continuationToken": ["abc"]}


def test_list_runs_by_page_yields_pages_and_an_empty_list_is_empty():
    broker = FakeBroker().answer(
        "GET", "/runs", 200, {"value": [wire.run_document(wire.RunStatus.REJECTED)], "nextLink": None}
    )

    pages = [list(page) for page in client_over(broker).list_runs(ticket="T-1", status=RunStatus.REJECTED).by_page()]

    assert [[run.status for run in page] for page in pages] == [[RunStatus.REJECTED]]
    assert broker.calls("GET", "/runs")[0].query == {"status": ["Rejected"], "ticket": ["T-1"]}
    empty = FakeBroker().answer("GET", "/hygiene/findings", 200, {"value": [], "nextLink": None})
    assert list(client_over(empty).list_findings(state="open")) == []


def test_list_findings_reads_findings():
    broker = FakeBroker().answer(
        "GET", "/hygiene/findings", 200, {"value": [wire.finding_document()], "nextLink": None}
    )

    [finding] = client_over(broker).list_findings(deployment_id=wire.DEPLOYMENT_ID)

    assert finding.rule == "endpoint-unhealthy"
    assert broker.calls("GET", "/hygiene/findings")[0].query == {"deploymentId": [wire.DEPLOYMENT_ID]}


def test_a_missing_run_raises_not_found_with_the_problem():
    problem = wire.problem_document("not-found", "There is no run 'x'.")
    broker = FakeBroker().answer("GET", "/runs/x", 404, problem)

    with pytest.raises(BrokerNotFoundError) as raised:
        client_over(broker).get_run("x")

    assert raised.value.problem is not None
    assert raised.value.problem.detail == "There is no run 'x'."


def test_rotate_keys_posts_the_key_type_and_returns_the_pending_rotation():
    broker = FakeBroker().answer(
        "POST", f"/deployments/{wire.DEPLOYMENT_ID}/rotate-keys", 202, wire.rotation_document()
    )

    rotation = client_over(broker).rotate_keys(wire.DEPLOYMENT_ID, "secondary")

    assert rotation.in_progress
    assert broker.calls("POST", f"/deployments/{wire.DEPLOYMENT_ID}/rotate-keys")[0].body == {"keyType": "secondary"}


def test_model_availability_sends_the_model_and_workspace():
    broker = FakeBroker().answer("GET", "/models/availability", 200, wire.availability_document())

    availability = client_over(broker).get_model_availability(wire.MODEL, workspace_id=wire.WORKSPACE)

    assert availability.workspace is not None
    assert availability.workspace.supported is True
    assert broker.calls("GET", "/models/availability")[0].query == {
        "modelId": [wire.MODEL],
        "workspaceId": [wire.WORKSPACE],
    }
