"""The published contracts hold for what the running broker really sends: the local host (approvals on, for
Marketplace models), Azurite and the emulator. A queue request message, the events drained from the events queue
(accepted, succeeded, rejected, approvalrequested, and a malformed message's rejected), a hygiene alert, the hygiene
findings page and report, runs and deployments are each validated against /api/asyncapi.json or /api/openapi.json
as the host serves them; /api/docs and every file it loads come from the host, anonymously."""

from __future__ import annotations

import base64
import contextlib
import json
import re
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import requests
from azure.core.exceptions import ResourceExistsError
from jsonschema import Draft202012Validator

from devstack.emulator.testing import running_emulator
from tests.integration.conftest import Broker, broker_on, until

pytestmark = pytest.mark.integration

PHI = "azureml://registries/azureml/models/Phi-4"
COHERE = "azureml://registries/azureml-cohere/models/Cohere-command-r-08-2024"
EVENT_PREFIX = "com.contoso.broker.deployment."


@pytest.fixture(scope="module")
def broker(azurite, tmp_path_factory) -> Iterator[Broker]:
    log = tmp_path_factory.mktemp("contracts") / "host.log"
    with (
        running_emulator(timings={"lroSeconds": 0.5, "retryAfterMs": 200}) as emulator,
        broker_on(
            emulator,
            azurite.connection_string,
            log,
            BROKER_APPROVALS_ENABLED="true",
            HYGIENE_ENDPOINT_STATE_GRACE_MINUTES="0",
            HYGIENE_ALERTS_QUEUE=f"alerts-{uuid.uuid4().hex[:8]}",
        ) as broker,
    ):
        yield broker


@pytest.fixture(scope="module")
def documents(broker: Broker) -> dict[str, dict[str, Any]]:
    """Both documents, fetched anonymously from the host as a consumer would."""
    fetched = {}
    for name in ("openapi", "asyncapi"):
        response = requests.get(f"{broker.host.url}/api/{name}.json", timeout=30)
        assert response.status_code == 200, response.text
        fetched[name] = response.json()
    return fetched


def message_errors(asyncapi: dict[str, Any], channel: str, message: str, instance: object) -> list[str]:
    payload = asyncapi["channels"][channel]["messages"][message]["payload"]
    validator = Draft202012Validator({**payload, "components": asyncapi["components"]})
    return [f"{error.json_path}: {error.message}" for error in validator.iter_errors(instance)]


def response_errors(openapi: dict[str, Any], path: str, method: str, status: int, body: object) -> list[str]:
    schema = openapi["paths"][path][method]["responses"][str(status)]["content"]["application/json"]["schema"]
    validator = Draft202012Validator({**schema, "components": openapi["components"]})
    return [f"{error.json_path}: {error.message}" for error in validator.iter_errors(body)]


def test_real_queue_messages_and_the_events_they_produce_match_the_asyncapi_document(broker, documents):
    asyncapi = documents["asyncapi"]
    workspace = broker.workspace_id()
    direct = {"workspaceId": workspace, "modelId": PHI, "requestedBy": broker.requester, "ticket": "CON-1"}
    marketplace = {"workspaceId": workspace, "modelId": COHERE, "requestedBy": broker.requester, "ticket": "CON-2"}
    forbidden = {"workspaceId": workspace, "modelId": PHI, "requestedBy": broker.reader, "ticket": "CON-3"}
    # The host makes them when it first polls or sends; this test may come first.
    _ensure_queue(broker, broker.requests_queue)
    _ensure_queue(broker, broker.events_queue)
    for message in (direct, marketplace, forbidden):
        assert message_errors(asyncapi, "deploymentRequests", "deploymentRequest", message) == []
        broker.send_request_message(message)
    broker.send_request_message('{"ticket": "CON-4", "modelId": 7}')
    wanted = {("CON-1", "succeeded"), ("CON-2", "approvalrequested"), ("CON-3", "rejected"), ("CON-4", "rejected")}

    events = broker.events(timeout=60, until=lambda found: wanted <= _ticket_kinds(found))

    assert wanted <= _ticket_kinds(events)
    assert {kind for _, kind in _ticket_kinds(events)} >= {"accepted", "succeeded", "rejected", "approvalrequested"}
    for event in events:
        kind = event["type"].removeprefix(EVENT_PREFIX)
        message = "rejectedMessage" if kind == "rejected" and event["data"]["runId"] is None else kind
        assert message_errors(asyncapi, "deploymentEvents", message, event) == [], event
    malformed = [event for event in events if event["data"]["ticket"] == "CON-4"]
    assert [event["data"]["error"]["code"] for event in malformed] == ["validation-failed"]


def test_real_http_bodies_match_the_openapi_document(broker, documents):
    openapi = documents["openapi"]
    submitted = broker.call(
        "POST",
        "/api/deployments",
        caller=broker.requester,
        json={"workspaceId": broker.workspace_id(), "modelId": PHI, "ticket": "CON-5"},
    )
    assert submitted.status_code in (200, 202), submitted.text
    status = submitted.status_code
    assert response_errors(openapi, "/api/deployments", "post", status, submitted.json()) == []
    run_id = submitted.json()["id"] if status == 202 else submitted.json()["status"]["currentRunId"]
    run = broker.wait_for_run(run_id)
    assert run["status"] == "Succeeded"
    assert response_errors(openapi, "/api/runs/{runId}", "get", 200, run) == []
    deployment = broker.deployment(run["deploymentId"])
    assert response_errors(openapi, "/api/deployments/{deploymentId}", "get", 200, deployment) == []
    runs = broker.call("GET", "/api/runs", params={"pageSize": "1"}).json()
    assert response_errors(openapi, "/api/runs", "get", 200, runs) == []
    refused = broker.call("POST", "/api/deployments", caller=broker.reader, json={"modelId": PHI})
    assert refused.status_code == 400
    problem = openapi["paths"]["/api/deployments"]["post"]["responses"]["400"]["content"]["application/problem+json"]
    validator = Draft202012Validator({**problem["schema"], "components": openapi["components"]})
    assert list(validator.iter_errors(refused.json())) == []


def test_a_real_hygiene_alert_findings_page_and_report_match_the_documents(broker, documents):
    openapi, asyncapi = documents["openapi"], documents["asyncapi"]
    run = broker.wait_for_run(_direct_run(broker))
    broker.emulator.admin.set_endpoint_state("demo-project", run["endpoint"]["name"], endpointState="Suspended")

    report = _scan(broker)
    findings = broker.call("GET", "/api/hygiene/findings", caller=broker.auditor, params={"pageSize": "1"}).json()
    seen = broker.call("GET", "/api/hygiene/report", caller=broker.outsider).json()
    alerts = _drain(broker, broker.host.env["HYGIENE_ALERTS_QUEUE"], until=bool)

    assert findings["value"], "the unhealthy endpoint is a finding"
    assert response_errors(openapi, "/api/hygiene/findings", "get", 200, findings) == []
    assert report["scope"] == "all"
    assert response_errors(openapi, "/api/hygiene/report", "get", 200, report) == []
    assert seen["scope"] == "visible"
    assert response_errors(openapi, "/api/hygiene/report", "get", 200, seen) == []
    assert alerts, "opening the finding sent an alert"
    for alert in alerts:
        kind = alert["type"].rsplit(".", 1)[-1]
        assert message_errors(asyncapi, "hygieneAlerts", kind, alert) == [], alert


def test_the_api_reference_and_every_file_it_loads_come_from_the_host_anonymously(broker):
    page = requests.get(f"{broker.host.url}/api/docs", timeout=30)

    assert page.status_code == 200
    assert page.headers["Content-Type"].startswith("text/html")
    policy = page.headers["Content-Security-Policy"]
    assert "script-src 'self'" in policy
    loaded = [reference for reference in re.findall(r'(?:src|href)="([^"]+)"', page.text) if reference != "data:,"]
    assert loaded, "the page loads its stylesheet and scripts"
    for reference in loaded:
        url = requests.compat.urljoin(f"{broker.host.url}/api/docs", reference)
        assert url.startswith(f"{broker.host.url}/api/docs/"), "nothing is loaded from elsewhere"
        asset = requests.get(url, timeout=30)
        assert asset.status_code == 200, reference
        assert asset.headers["Content-Security-Policy"] == policy
        assert len(asset.content) > 100
    script = requests.get(f"{broker.host.url}/api/docs/docs.js", timeout=30).text
    assert '"openapi.json"' in script
    assert requests.get(f"{broker.host.url}/api/openapi.json", timeout=30).status_code == 200


def _ticket_kinds(events: list[dict[str, Any]]) -> set[tuple[str, str]]:
    return {(event["data"].get("ticket"), event["type"].removeprefix(EVENT_PREFIX)) for event in events}


def _direct_run(broker: Broker) -> str:
    response = broker.call(
        "POST",
        "/api/deployments",
        caller=broker.requester,
        json={"workspaceId": broker.workspace_id(), "modelId": PHI, "ticket": "CON-6"},
    )
    assert response.status_code in (200, 202), response.text
    body = response.json()
    return body["id"] if response.status_code == 202 else body["status"]["currentRunId"]


def _scan(broker: Broker) -> dict[str, Any]:
    before = broker.call("GET", "/api/hygiene/report", caller=broker.auditor)
    previous = before.json().get("scanId") if before.status_code == 200 else None
    broker.invoke("hygiene_scan")
    return until(
        lambda: (
            (reply := broker.call("GET", "/api/hygiene/report", caller=broker.auditor)).status_code == 200
            and reply.json()["scanId"] != previous
            and reply.json()
        ),
        timeout=60,
    )


def _ensure_queue(broker: Broker, name: str) -> None:
    with contextlib.suppress(ResourceExistsError):
        broker.queue(name).create_queue()


def _drain(broker: Broker, queue: str, *, until: Any, timeout: float = 30) -> list[dict[str, Any]]:
    _ensure_queue(broker, queue)
    collected: list[dict[str, Any]] = []
    client = broker.queue(queue)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for message in client.receive_messages(max_messages=32):
            collected.append(json.loads(base64.b64decode(message.content)))
            client.delete_message(message)
        if until(collected):
            break
        time.sleep(0.25)
    return collected
