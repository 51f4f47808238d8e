"""The hygiene functions in the local Functions host: the timer run on demand through the admin endpoint, then read
back over HTTP with a function key and, through the host's Easy Auth, a bearer token from the emulator, all against
the emulator and Azurite."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any

import pytest

from devstack.demo_tokens import bearer_token
from devstack.emulator.testing import wait_until
from devstack.host.process import REPO_ROOT, HostProcess, start_host

from .emulated import EmulatedBroker

pytestmark = pytest.mark.integration
# A schedule that never comes round during a test: the scan runs only when the test asks for it.
NEVER = "0 0 0 1 Jan *"


def call(url: str, method: str = "GET", *, key: str, body: Any = None, token: str | None = None) -> tuple[int, Any]:
    data = json.dumps(body).encode() if body is not None else None
    headers = {"x-functions-key": key, **({"Authorization": f"Bearer {token}"} if token else {})}
    request = urllib.request.Request(url, method=method, data=data, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            text = response.read()
            return response.status, json.loads(text) if text else None
    except urllib.error.HTTPError as error:
        text = error.read()
        # Easy Auth's 401 is plain text, the broker's problems are JSON.
        return error.code, json.loads(text) if error.headers.get_content_type().endswith("json") else text


@pytest.fixture
def host(deployed: EmulatedBroker, tmp_path) -> HostProcess:
    hygiene = deployed.hygiene_settings()
    env = {
        **deployed.emulator.env,
        "AzureWebJobsStorage": deployed.connection_string,
        "DEPLOYMENT_RUNS_TABLE": f"runs{deployed.suffix}",
        "HYGIENE_SCHEDULE": NEVER,
        "HYGIENE_WORKSPACES": deployed.workspace("demo-project"),
        "HYGIENE_FINDINGS_TABLE": hygiene.findings_table,
        "HYGIENE_ALERTS_QUEUE": hygiene.alerts_queue,
    }
    settings = ["--settings", str(REPO_ROOT / "local.settings.sample.json")]
    running = start_host(REPO_ROOT, env=env, log_path=tmp_path / "host.log", extra_args=settings)
    yield running
    running.stop()


def test_the_timer_runs_on_demand_and_its_findings_are_served(deployed: EmulatedBroker, host: HostProcess):
    token = bearer_token("reader", deployed.emulator.env)
    # The report is whole for auditors; the reader (Reader on rg-demo) reads it counted over what it may see.
    auditor = bearer_token("auditor", deployed.emulator.env)
    deployed.emulator.admin.subscription_action("delete", "demo-project", "llama-sub")
    assert call(f"{host.url}/api/hygiene/report", key=host.function_key)[0] == 401, "Easy Auth wants a token"
    assert call(f"{host.url}/api/hygiene/report", key=host.function_key, token=token)[0] == 404

    started = call(f"{host.url}/admin/functions/hygiene_scan", "POST", key=host.master_key, body={"input": ""})
    _, report = wait_until(
        lambda: (
            (reply := call(f"{host.url}/api/hygiene/report", key=host.function_key, token=auditor))[0] == 200 and reply
        ),
        timeout=30,
    )
    _, findings = call(
        f"{host.url}/api/hygiene/findings?rule=endpoint-unhealthy&state=open", key=host.function_key, token=token
    )

    assert started[0] == 202
    # The West Europe project is scanned too: the broker's Key Vault secrets name it.
    assert report["workspaces"] == {"scanned": 2, "reachable": 2, "unreachable": 0}
    assert [item["resourceId"] for item in findings["value"]] == [deployed.endpoint_id("demo-project", "llama-ep")]
    assert deployed.new_alerts() == [("opened", "endpoint-unhealthy", deployed.endpoint_id("demo-project", "llama-ep"))]
