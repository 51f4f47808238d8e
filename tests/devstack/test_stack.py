"""`make run` (python -m devstack.stack) as a user runs it: a subprocess on a throw-away state folder and free ports.

A killed host comes back on the same URL with the same keys; a stopped stack started again on the same folder still
has its runs, findings, deployments, queued messages and emulator resources; --fresh starts empty. Storage is
identity-based throughout: the tests reach it as run.env describes it (service URIs, tokens from the emulator's
managed-identity endpoint for the broker's client id), never with a key.
"""

from __future__ import annotations

import base64
import json
import os
import re
import shlex
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from azure.identity import ManagedIdentityCredential
from azure.keyvault.secrets import KeyVaultSecretIdentifier, SecretClient
from azure.storage.queue import QueueClient, QueueServiceClient

from devstack.ca_bundle import system_ca_file
from devstack.envfile import read_env_file
from devstack.ports import free_port
from devstack.stack import Backoff, StackSettings, is_connection_string
from tests.integration.conftest import principal_headers

REPO_ROOT = Path(__file__).resolve().parents[2]
COHERE = "azureml://registries/azureml-cohere/models/Cohere-command-r-08-2024"
COHERE_SUBSCRIPTION = "Cohere-command-r-08-2024-subscription"
CA = "REQUESTS_CA_BUNDLE"
PROBE_QUEUE = "devstack-probe"  # no function consumes it
START_TIMEOUT = 60.0
TERMINAL = {"Succeeded", "Failed", "Rejected", "Deleted"}


def _until(condition: Callable[[], Any], timeout: float = 30.0, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while True:
        try:
            value = condition()
        except requests.RequestException:
            value = None
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not met within {timeout:.0f} s")
        time.sleep(0.2)


class RunEnvStorage:
    """The stack's queues as run.env describes them: identity-based, tokens from its IDENTITY_ENDPOINT."""

    def __init__(self, env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
        # ManagedIdentityCredential reads the endpoint from the environment, as the app does; the bundle keeps the
        # system roots, so exporting it here breaks no other TLS.
        for name in ("IDENTITY_ENDPOINT", "IDENTITY_HEADER", "REQUESTS_CA_BUNDLE"):
            monkeypatch.setenv(name, env[name])
        self.client_id = env["AzureWebJobsStorage__clientId"]
        self.credential = ManagedIdentityCredential(client_id=self.client_id)
        self.queue_uri = env["AzureWebJobsStorage__queueServiceUri"]
        self.ca_bundle = env["REQUESTS_CA_BUNDLE"]

    def queue(self, name: str) -> QueueClient:
        return QueueClient(self.queue_uri, name, credential=self.credential, connection_verify=self.ca_bundle)

    def secrets(self, secret_ids: dict[str, str]) -> dict[str, tuple[str, str | None, str | None]]:
        """The (id, version, value) of each secret id, read from its vault as the broker identity (a new credential:
        emulator tokens die with the emulator)."""
        credential = ManagedIdentityCredential(client_id=self.client_id)
        read = {}
        for role, secret_id in secret_ids.items():
            parsed = KeyVaultSecretIdentifier(secret_id)
            client = SecretClient(
                parsed.vault_url, credential, verify_challenge_resource=False, connection_verify=self.ca_bundle
            )
            secret = client.get_secret(parsed.name, parsed.version)
            read[role] = (secret.id, secret.properties.version, secret.value)
        return read

    def service(self) -> QueueServiceClient:
        return QueueServiceClient(self.queue_uri, credential=self.credential, connection_verify=self.ca_bundle)


class RunningStack:
    """One `python -m devstack.stack` process; its own process group, so a failed test can end everything."""

    def __init__(self, state_dir: Path, port: int, *extra_args: str) -> None:
        self.state_dir = state_dir
        self.output = state_dir.parent / f"stack-{time.monotonic_ns()}.out"
        env = {
            **os.environ,
            "BROKER_PORT": str(port),
            "BROKER_POLL_SECONDS": "1",
            "PYTHONUNBUFFERED": "1",
            # What is under test is survival, not sign-in: callers send X-MS-CLIENT-PRINCIPAL themselves.
            "DEVSTACK_EASY_AUTH": "false",
        }
        env.pop("DEVSTACK_DIR", None)
        with self.output.open("wb") as output:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "devstack.stack", "--state-dir", str(state_dir), *extra_args],
                cwd=REPO_ROOT,
                env=env,
                stdout=output,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        _until(
            lambda: "Broker running at" in self.text() or self.process.poll() is not None,
            START_TIMEOUT,
            "the stack's banner",
        )
        assert self.process.poll() is None, self.text()
        self.env = read_env_file(state_dir / "run.env")

    def text(self) -> str:
        return self.output.read_text(errors="replace")

    def log(self) -> str:
        return (self.state_dir / "stack.log").read_text(errors="replace")

    def pids(self) -> dict[str, Any]:
        return json.loads((self.state_dir / "pids.json").read_text())

    def call(self, method: str, path: str, *, env: dict[str, str] | None = None, **kwargs: Any) -> requests.Response:
        """Call the broker as the requester (every route needs a caller), unless `headers` name another."""
        env = env or self.env
        headers = {
            "x-functions-key": env["BROKER_FUNCTION_KEY"],
            **principal_headers(env["DEMO_REQUESTER_OBJECT_ID"]),
            **kwargs.pop("headers", {}),
        }
        return requests.request(method, f"{env['BROKER_URL']}{path}", headers=headers, timeout=30, **kwargs)

    def stop(self) -> int:
        """SIGTERM as `kill` or a service manager sends it; the stack must stop everything and exit 0."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout=60)
        finally:
            self.kill()

    def kill(self) -> None:
        """Last resort: the stack's whole process group (the host shares it; Azurite and the emulator are asked by
        the pids the stack recorded)."""
        try:
            pids = self.pids()
        except (OSError, ValueError):
            pids = {}
        for pid in [*(pids.get("azurite") or ()), pids.get("emulator"), pids.get("host")]:
            if isinstance(pid, int) and _alive(pid) and _ours(pid):
                os.kill(pid, signal.SIGKILL)
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    state = subprocess.run(["ps", "-o", "stat=", "-p", str(pid)], capture_output=True, text=True, check=False)
    return state.stdout.strip()[:1] not in ("", "Z")  # a zombie has exited


def _ours(pid: int) -> bool:
    command = subprocess.run(["ps", "-o", "command=", "-p", str(pid)], capture_output=True, text=True, check=False)
    return "devstack" in command.stdout or "azurite" in command.stdout


@pytest.fixture
def start_stack(tmp_path) -> Iterator[Callable[..., RunningStack]]:
    port = free_port()
    started: list[RunningStack] = []

    def start(*extra_args: str) -> RunningStack:
        stack = RunningStack(tmp_path / "devstack", port, *extra_args)
        started.append(stack)
        return stack

    yield start
    for stack in started:
        stack.kill()


# -- without processes ------------------------------------------------------------------------------------------------


def test_backoff_doubles_to_its_cap_and_starts_over_after_a_long_enough_run():
    now = [0.0]
    backoff = Backoff(first=1, cap=30, reset_after=60, clock=lambda: now[0])
    backoff.attempted()

    delays = []
    for _ in range(7):
        delays.append(backoff.failure())
        backoff.attempted()
    now[0] += 61

    assert delays == [1, 2, 4, 8, 16, 30, 30]
    assert backoff.failure() == 1
    backoff.attempted()
    assert backoff.failure() == 2  # that restart failed at once: a crash loop again


def test_stack_settings_keep_ports_and_keys_and_replace_a_port_someone_else_took(tmp_path, monkeypatch):
    monkeypatch.delenv("DEVSTACK_HOST_MASTER_KEY", raising=False)
    monkeypatch.delenv("DEVSTACK_HOST_FUNCTION_KEY", raising=False)
    first = StackSettings(tmp_path / "stack.json", ("kv-demo",))
    first.resolve()

    again = StackSettings(tmp_path / "stack.json", ("kv-demo",))
    again.resolve()

    assert again.values == first.values
    assert set(first["vaultPorts"]) == {"kv-demo"}
    assert (tmp_path / "stack.json").stat().st_mode & 0o077 == 0
    with socket.socket() as holder, socket.socket() as vault_holder:
        holder.bind(("127.0.0.1", first["queuePort"]))
        holder.listen()
        vault_holder.bind(("127.0.0.1", first["vaultPorts"]["kv-demo"]))
        vault_holder.listen()
        moved = StackSettings(tmp_path / "stack.json", ("kv-demo",))
        moved.resolve()
    assert moved["queuePort"] != first["queuePort"]
    assert moved["vaultPorts"]["kv-demo"] != first["vaultPorts"]["kv-demo"]
    assert moved["tablePort"] == first["tablePort"]
    assert moved["masterKey"] == first["masterKey"]


# -- the stack as a process -------------------------------------------------------------------------------------------


@pytest.mark.integration
def test_a_killed_host_is_restarted_on_the_same_url_with_the_same_keys(start_stack, tmp_path):
    stack = start_stack()
    first_host = stack.pids()["host"]
    assert stack.call("GET", "/api/runs", params={"pageSize": "1"}).status_code == 200

    os.kill(first_host, signal.SIGKILL)

    _until(lambda: stack.pids()["host"] != first_host, 30, "a new host")
    health = _until(lambda: (reply := requests.get(f"{stack.env['BROKER_URL']}/api/health", timeout=5)).ok and reply)
    assert health.status_code == 200
    assert read_env_file(stack.state_dir / "run.env") == stack.env
    assert stack.call("GET", "/api/runs", params={"pageSize": "1"}).status_code == 200  # the old key still works
    assert "host exited (killed by SIGKILL)" in stack.log()
    assert "restarting host in 1 s" in stack.text()
    assert "restarted host" in stack.text()

    second = subprocess.run(
        [sys.executable, "-m", "devstack.stack", "--state-dir", str(stack.state_dir)],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={**os.environ, "BROKER_PORT": str(free_port())},
    )
    assert second.returncode == 1
    assert f"another stack (pid {stack.process.pid})" in second.stdout
    assert stack.pids()["stack"] == stack.process.pid

    pids = stack.pids()
    assert stack.stop() == 0
    assert not (stack.state_dir / "pids.json").exists()
    assert [pid for pid in [*pids["azurite"], pids["emulator"], pids["host"]] if _alive(pid)] == []


@pytest.mark.integration
def test_a_restarted_stack_still_has_its_runs_findings_and_queued_messages_and_fresh_starts_empty(
    start_stack, monkeypatch
):
    stack = start_stack()
    admin = stack.env["EMULATOR_ADMIN_URL"]
    ca = stack.env["REQUESTS_CA_BUNDLE"]
    # The demo asks for ARM's 10 s poll delay; a second is enough here (timings are not stored: restarts reset them).
    timings = requests.put(f"{admin}/timings", json={"lroSeconds": 1.0, "retryAfterMs": 300}, verify=ca, timeout=10)
    assert timings.status_code == 200, timings.text
    storage = RunEnvStorage(stack.env, monkeypatch)
    storage.queue(PROBE_QUEUE).create_queue()
    storage.queue(PROBE_QUEUE).send_message("still here?")
    workspace = (
        f"/subscriptions/{stack.env['AZURE_SUBSCRIPTION_ID']}/resourceGroups/rg-demo"
        "/providers/Microsoft.MachineLearningServices/workspaces/demo-project"
    )
    accepted = stack.call(
        "POST",
        "/api/deployments",
        headers=principal_headers(stack.env["DEMO_REQUESTER_OBJECT_ID"]),
        json={"workspaceId": workspace, "modelId": COHERE, "ticket": "PERSIST-1"},
    )
    assert accepted.status_code == 202, accepted.text
    run_id = accepted.json()["id"]
    run = _until(lambda: (body := stack.call("GET", f"/api/runs/{run_id}").json())["status"] in TERMINAL and body)
    assert run["status"] == "Succeeded", run.get("error")
    deleted = requests.post(
        f"{admin}/marketplace-subscriptions/delete",
        json={"workspace": "demo-project", "name": COHERE_SUBSCRIPTION},
        verify=ca,
        timeout=10,
    )
    assert deleted.status_code == 200, deleted.text
    scan = requests.post(
        f"{stack.env['BROKER_URL']}/admin/functions/hygiene_scan",
        headers={"x-functions-key": stack.env["BROKER_MASTER_KEY"]},
        json={"input": ""},
        timeout=30,
    )
    assert scan.status_code == 202, scan.text
    findings = _until(
        lambda: stack.call("GET", "/api/hygiene/findings", params={"rule": "endpoint-unhealthy"}).json()["value"],
        what="the endpoint-unhealthy finding",
    )
    # Findings are written before the scan updates deployments and writes its report: wait for the scan's end.
    report = _until(
        lambda: (reply := stack.call("GET", "/api/hygiene/report")).status_code == 200 and reply.json(),
        what="the scan report",
    )
    deployment = stack.call("GET", f"/api/deployments/{run['deploymentId']}").json()
    assert deployment["status"]["phase"] == "Degraded"
    events = storage.queue("deployment-events").peek_messages(max_messages=32)
    event_types = sorted(json.loads(base64.b64decode(event.content))["type"].rsplit(".", 1)[1] for event in events)
    assert event_types == ["accepted", "succeeded"]
    secrets_before = storage.secrets(run["secretIds"])
    assert stack.stop() == 0

    again = start_stack()

    # The old run.env reaches the new stack, vault URL included (its port is kept in stack.json), and the
    # deployment's key secrets are still in the vault (kept in the emulator's state file).
    assert again.env == stack.env
    assert storage.secrets(run["secretIds"]) == secrets_before
    assert "with the state of the last run" in again.text()
    assert again.call("GET", f"/api/runs/{run_id}", env=stack.env).json() == run
    assert again.call("GET", f"/api/deployments/{deployment['id']}", env=stack.env).json() == deployment
    assert again.call("GET", "/api/hygiene/findings", params={"rule": "endpoint-unhealthy"}).json()["value"] == findings
    assert again.call("GET", "/api/hygiene/report").json() == report
    probe = storage.queue(PROBE_QUEUE).peek_messages(max_messages=32)
    assert [message.content for message in probe] == ["still here?"]
    events_after = storage.queue("deployment-events").peek_messages(max_messages=32)
    assert [event.content for event in events_after] == [event.content for event in events]
    emulated = requests.get(f"{admin}/state", verify=ca, timeout=10).json()
    assert [endpoint["id"] for endpoint in emulated["endpoints"]] == [deployment["status"]["endpoint"]["id"]]
    assert emulated["marketplaceSubscriptions"] == []  # the out-of-band delete is remembered too
    assert again.stop() == 0

    fresh = start_stack("--fresh")

    assert fresh.env["BROKER_URL"] == stack.env["BROKER_URL"]
    assert fresh.env["BROKER_FUNCTION_KEY"] == stack.env["BROKER_FUNCTION_KEY"]
    assert fresh.call("GET", f"/api/runs/{run_id}").status_code == 404
    assert requests.get(f"{admin}/state", verify=ca, timeout=10).json()["endpoints"] == []
    assert PROBE_QUEUE not in [queue.name for queue in storage.service().list_queues()]
    assert fresh.stop() == 0


# -- identity-based storage, as in Azure ------------------------------------------------------------------------------


@pytest.mark.integration
def test_make_run_gives_the_app_no_connection_string_and_every_flow_works_over_identity_based_storage(
    start_stack, monkeypatch
):
    stack = start_stack()
    env = stack.env

    # What the app and a shell get: service URIs, the managed identity, no connection string, no account key.
    assert "AzureWebJobsStorage" not in env
    assert [name for name, value in env.items() if is_connection_string(value)] == []
    assert env["AzureWebJobsStorage__credential"] == "managedidentity"
    assert env["AzureWebJobsStorage__clientId"] == env["DEMO_BROKER_CLIENT_ID"]
    assert env["AzureWebJobsStorage__queueServiceUri"].startswith("https://127.0.0.1:")
    assert env["AzureWebJobsStorage__tableServiceUri"].startswith("https://127.0.0.1:")
    host_env = _process_environ(stack.pids()["host"])
    assert "AzureWebJobsStorage" not in host_env
    assert [name for name, value in host_env.items() if is_connection_string(value)] == []
    assert {name: host_env[name] for name in env if name.startswith("AzureWebJobsStorage__")} == {
        name: value for name, value in env.items() if name.startswith("AzureWebJobsStorage__")
    }
    assert "AzureWebJobsStorage" not in json.loads((stack.state_dir / "host.settings.json").read_text())["Values"]
    assert "storage connection AzureWebJobsStorage: identity-based" in (stack.state_dir / "host.log").read_text()
    # Azurite refuses a request that brings no token.
    anonymous = requests.get(f"{env['AzureWebJobsStorage__queueServiceUri']}?comp=list", verify=env[CA], timeout=10)
    assert anonymous.status_code == 403

    # A deployment over HTTP.
    workspace = (
        f"/subscriptions/{env['AZURE_SUBSCRIPTION_ID']}/resourceGroups/rg-demo"
        "/providers/Microsoft.MachineLearningServices/workspaces/demo-project"
    )
    requester = principal_headers(env["DEMO_REQUESTER_OBJECT_ID"])
    accepted = stack.call(
        "POST",
        "/api/deployments",
        headers=requester,
        json={"workspaceId": workspace, "modelId": COHERE, "ticket": "ID-1"},
    )
    assert accepted.status_code == 202, accepted.text
    run = _finished(stack, accepted.json()["id"])
    assert run["status"] == "Succeeded", run.get("error")

    # A queue intake: the README's ticketing-system message, sent with curl and a storage token from the
    # managed-identity endpoint, answered on deployment-events.
    _bash(f"set -euo pipefail; set -a; source {shlex.quote(str(stack.state_dir / 'run.env'))}; set +a\n{README_QUEUE}")
    storage = RunEnvStorage(env, monkeypatch)
    events = storage.queue("deployment-events")
    seen: list[dict[str, Any]] = []

    def answered(ticket: str, kind: str) -> bool:
        seen.extend(json.loads(base64.b64decode(item.content)) for item in events.receive_messages(max_messages=32))
        return any(event["data"].get("ticket") == ticket and event["type"].endswith(kind) for event in seen)

    _until(lambda: answered("DEMO-2", ".succeeded"), 60, "the queue request's succeeded event")

    # A key rotation (Key Vault, ARM and the run store's table over tokens).
    rotated = stack.call(
        "POST", f"/api/deployments/{run['deploymentId']}/rotate-keys", headers=requester, json={"keyType": "secondary"}
    )
    assert rotated.status_code == 202, rotated.text
    rotation_id = rotated.json()["id"]
    rotation = _until(
        lambda: next(
            (
                item
                for item in stack.call("GET", f"/api/runs/{run['id']}").json()["keyRotations"]
                if item["id"] == rotation_id and item["status"] in ("Rotated", "Failed")
            ),
            None,
        ),
        60,
        "the rotation",
    )
    assert rotation["status"] == "Rotated", rotation

    # A hygiene scan (the timer function, its findings table and its report).
    scan = requests.post(
        f"{env['BROKER_URL']}/admin/functions/hygiene_scan",
        headers={"x-functions-key": env["BROKER_MASTER_KEY"]},
        json={"input": ""},
        timeout=30,
    )
    assert scan.status_code == 202, scan.text
    auditor = principal_headers(env["DEMO_AUDITOR_OBJECT_ID"], roles=("Broker.Auditor",))
    report = _until(
        lambda: (reply := stack.call("GET", "/api/hygiene/report", headers=auditor)).status_code == 200 and reply.json()
    )
    assert report["errors"] == [], report
    assert stack.stop() == 0


@pytest.mark.integration
def test_run_env_is_safe_to_source_and_its_ca_bundle_keeps_the_system_roots(start_stack):
    stack = start_stack()
    run_env = stack.state_dir / "run.env"
    dump = f"{shlex.quote(sys.executable)} -c 'import json, os; print(json.dumps(dict(os.environ)))'"

    sourced = _bash(f"set -a; source {shlex.quote(str(run_env))}; set +a; {dump}")
    exported = _bash(f'eval "$({shlex.quote(sys.executable)} -m devstack.envfile {shlex.quote(str(run_env))})"; {dump}')

    assert {name: sourced.get(name) for name in stack.env} == stack.env
    assert {name: exported.get(name) for name in stack.env} == stack.env
    assert run_env.stat().st_mode & 0o077 == 0  # it holds the host keys
    bundle = Path(stack.env[CA]).read_text()
    assert (stack.state_dir / "tls" / "ca.pem").read_text().strip() in bundle
    system = system_ca_file()
    assert system is not None
    assert system.read_text().strip() in bundle
    assert stack.stop() == 0


def _finished(stack: RunningStack, run_id: str) -> dict[str, Any]:
    return _until(
        lambda: (body := stack.call("GET", f"/api/runs/{run_id}").json())["status"] in TERMINAL and body,
        60,
        f"run {run_id}",
    )


def _process_environ(pid: int) -> dict[str, str]:
    raw = Path(f"/proc/{pid}/environ").read_bytes()
    return dict(item.split("=", 1) for item in raw.decode(errors="replace").split("\0") if "=" in item)


def _bash(script: str) -> Any:
    """Run `script` in bash from the repository root, in an environment holding only PATH; its JSON output, if any."""
    result = subprocess.run(
        ["bash", "-c", script],
        cwd=REPO_ROOT,
        env={"PATH": os.environ.get("PATH", "/usr/bin:/bin")},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, f"exit {result.returncode}\n{result.stdout}\n{result.stderr}"
    return json.loads(result.stdout) if result.stdout.strip().startswith("{") else result.stdout


def _readme_block(marker: str) -> str:
    """The README's ```bash block that contains `marker`: the test runs what a reader copies."""
    blocks = re.findall(r"```bash\n(.*?)```", (REPO_ROOT / "README.md").read_text(encoding="utf-8"), re.DOTALL)
    [block] = [block for block in blocks if marker in block]
    return block


README_QUEUE = _readme_block("deployment-requests/messages")
