"""Easy Auth end to end: the local host validates the emulator's Entra ID tokens in front of the broker, as App
Service does in Azure; and the broker, deployed without Easy Auth, refuses every principal header."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
import requests
from azure.core.exceptions import ResourceNotFoundError
from azure.data.tables import TableClient

from devstack.host.process import HostProcess
from tests.integration.conftest import Broker, principal_headers, start_broker_host

pytestmark = pytest.mark.integration

PHI = "azureml://registries/azureml/models/Phi-4"
DEEPSEEK = "azureml://registries/azureml-deepseek/models/DeepSeek-R1"
MINI = "azureml://registries/azureml/models/Phi-4-mini-instruct"
# What App Service sets on every instance (the broker's "running in Azure" signal).
AZURE_INSTANCE = {"WEBSITE_INSTANCE_ID": uuid.uuid4().hex, "WEBSITE_SITE_NAME": "func-broker-test"}


def _post(host: HostProcess, body: dict, headers: dict[str, str]) -> requests.Response:
    sent = {"x-functions-key": host.function_key, **headers}
    return requests.post(f"{host.url}/api/deployments", json=body, headers=sent, timeout=60)


def test_a_forged_principal_without_a_bearer_token_is_401_and_reaches_nothing(broker: Broker):
    ticket = f"FORGED-{uuid.uuid4().hex[:6]}"
    body = {"workspaceId": broker.workspace_id(), "modelId": PHI, "ticket": ticket}

    response = _post(broker.host, body, principal_headers(broker.requester))

    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"].startswith("Bearer realm=")
    assert not any(record["function"] == "submit_deployment" for record in broker.host.invocations())
    assert broker.runs(ticket=ticket) == []


def test_a_requester_token_deploys_as_the_requester(broker: Broker):
    ticket = f"TOKEN-{uuid.uuid4().hex[:6]}"
    token = broker.token(broker.requester)

    response = _post(
        broker.host,
        {"workspaceId": broker.workspace_id(), "modelId": PHI, "ticket": ticket},
        {"Authorization": f"Bearer {token}"},
    )

    assert response.status_code == 202, response.text
    run = broker.wait_for_run(response.json()["id"])
    assert run["status"] == "Succeeded", run
    assert run["caller"] == broker.requester
    deployment = broker.deployment(run["deploymentId"])
    assert [request["caller"] for request in deployment["requests"]] == [broker.requester]


def test_a_reader_token_is_403_even_with_a_forged_principal_naming_the_requester(broker: Broker):
    forged = principal_headers(broker.requester)
    token = broker.token(broker.reader)

    response = _post(
        broker.host,
        {"workspaceId": broker.workspace_id(), "modelId": DEEPSEEK},
        {**forged, "Authorization": f"Bearer {token}"},
    )

    assert response.status_code == 403, response.text
    problem = response.json()
    assert problem["type"].endswith("/requester-forbidden")
    assert broker.reader in problem["detail"]
    assert broker.run(problem["runId"])["caller"] == broker.reader


def test_reads_need_a_token_too_and_health_does_not(broker: Broker):
    anonymous = requests.get(
        f"{broker.host.url}/api/runs", headers={"x-functions-key": broker.host.function_key}, timeout=30
    )
    health = requests.get(f"{broker.host.url}/api/health", timeout=30)

    assert anonymous.status_code == 401
    assert broker.call("GET", "/api/runs").status_code == 200
    assert health.status_code == 200
    assert health.json()["authentication"]["easyAuth"] == "enabled"


@pytest.fixture(scope="module")
def exposed(broker: Broker, azurite, tmp_path_factory) -> Iterator[HostProcess]:
    """The deployed shape without Easy Auth: App Service's instance variables set, nothing in front of the app."""
    log = tmp_path_factory.mktemp("exposed") / "host.log"
    host = start_broker_host(
        broker.emulator, azurite.connection_string, log, extra_args=("--no-easy-auth",), **AZURE_INSTANCE
    )
    yield host
    host.stop()


def test_deployed_without_easy_auth_principal_headers_are_refused_saying_why(broker: Broker, exposed: HostProcess):
    ticket = f"EXPOSED-{uuid.uuid4().hex[:6]}"
    body = {"workspaceId": broker.workspace_id(), "modelId": MINI, "ticket": ticket}

    response = _post(exposed, body, principal_headers(broker.requester))

    assert response.status_code == 401
    assert response.headers["Content-Type"].startswith("application/problem+json")
    problem = response.json()
    assert problem["type"].endswith("/unauthorized")
    assert "WEBSITE_INSTANCE_ID and WEBSITE_SITE_NAME are set" in problem["detail"]
    assert "WEBSITE_AUTH_ENABLED is not 'true'" in problem["detail"]
    key = {"x-functions-key": exposed.function_key, **principal_headers(broker.reader)}
    runs = requests.get(f"{exposed.url}/api/runs", params={"ticket": ticket}, headers=key, timeout=30)
    assert runs.status_code == 401, "reads are refused the same way"
    assert _stored_runs(broker, exposed) == [], "refused before intake: no run, not even a rejected one"


def _stored_runs(broker: Broker, host: HostProcess) -> list[dict]:
    """The run rows in `host`'s runs table, read from storage (the host itself answers no read without Easy Auth)."""
    table = TableClient.from_connection_string(broker.storage, host.env["DEPLOYMENT_RUNS_TABLE"])
    try:
        return list(table.query_entities("Kind eq 'run'"))
    except ResourceNotFoundError:  # nothing was ever written
        return []


def test_deployed_without_easy_auth_health_is_degraded_saying_why(exposed: HostProcess):
    response = requests.get(f"{exposed.url}/api/health", timeout=30)

    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "degraded"
    assert body["authentication"]["status"] == "misconfigured"
    assert body["authentication"]["inAzure"] is True
    assert "App Service authentication is not enabled" in body["authentication"]["detail"]
    assert {dependency["status"] for dependency in body["dependencies"].values()} == {"ok"}


def test_deployed_with_easy_auth_tokens_work_and_health_is_healthy(broker: Broker, azurite, tmp_path):
    host = start_broker_host(broker.emulator, azurite.connection_string, tmp_path / "host.log", **AZURE_INSTANCE)
    try:
        health = requests.get(f"{host.url}/api/health", timeout=30)
        response = _post(
            host,
            {"workspaceId": broker.workspace_id(), "modelId": MINI},
            {"Authorization": f"Bearer {broker.token(broker.requester)}"},
        )
    finally:
        host.stop()

    assert health.status_code == 200, health.text
    assert health.json()["authentication"] == {
        "status": "ok",
        "easyAuth": "enabled",
        "inAzure": True,
        "detail": "App Service authentication sets the principal headers.",
    }
    assert response.status_code == 202, response.text
