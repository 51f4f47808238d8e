"""The broker end to end: Azurite, the Azure emulator and the local Functions host running function_app.py."""

from __future__ import annotations

import base64
import json
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import requests
from azure.identity import ClientSecretCredential
from azure.storage.queue import QueueClient

from devstack.emulator.testing import EmulatorHandle, running_emulator
from devstack.host.process import REPO_ROOT, HostProcess, start_host

SETTINGS = ["--settings", str(REPO_ROOT / "local.settings.sample.json")]
OBJECT_ID_CLAIM = "http://schemas.microsoft.com/identity/claims/objectidentifier"
TERMINAL = {"Succeeded", "Failed", "Rejected", "Deleted"}
# The request log's route prefix for the emulator's Event Grid topic.
TOPIC_ROUTE = "eventgrid:"


def principal_headers(object_id: str, *, roles: tuple[str, ...] = ()) -> dict[str, str]:
    """The headers Easy Auth puts in front of the app for a signed-in caller, built by hand: what a forger sends
    (the local host's Easy Auth drops them, as App Service does)."""
    claims = [{"typ": OBJECT_ID_CLAIM, "val": object_id}, *({"typ": "roles", "val": role} for role in roles)]
    principal = {"auth_typ": "aad", "claims": claims, "name_typ": "name", "role_typ": "roles"}
    return {"X-MS-CLIENT-PRINCIPAL": base64.b64encode(json.dumps(principal).encode()).decode()}


def client_credential(emulator: EmulatorHandle, object_id: str) -> ClientSecretCredential:
    """azure-identity's ClientSecretCredential for a scenario principal, signing in at the emulator's Entra ID."""
    principal = emulator.state.scenario.principal(object_id)
    if principal is None or not principal.get("clientSecret"):
        raise LookupError(f"principal {object_id} has no client id and secret in the scenario")
    return ClientSecretCredential(
        emulator.env["AZURE_TENANT_ID"],
        principal["clientId"],
        principal["clientSecret"],
        authority=emulator.env["EMULATOR_AUTHORITY"],
        disable_instance_discovery=True,
        connection_verify=emulator.ca_bundle,
    )


@dataclass
class Broker:
    host: HostProcess
    emulator: EmulatorHandle
    storage: str
    _credentials: dict[str, ClientSecretCredential] = field(default_factory=dict, repr=False)
    _credentials_lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def events_queue(self) -> str:
        return self.host.env.get("DEPLOYMENT_EVENTS_QUEUE", "deployment-events")

    @property
    def requests_queue(self) -> str:
        return self.host.env.get("DEPLOYMENT_REQUESTS_QUEUE", "deployment-requests")

    @property
    def requester(self) -> str:
        return self.emulator.env["DEMO_REQUESTER_OBJECT_ID"]

    @property
    def reader(self) -> str:
        """Reader on rg-demo: may read every demo workspace, deploy into none."""
        return self.emulator.env["DEMO_READER_OBJECT_ID"]

    @property
    def approver(self) -> str:
        """Holds the Broker.Approver app role (and Azure AI Developer on demo-project, so it may request too)."""
        return self.emulator.env["DEMO_APPROVER_OBJECT_ID"]

    @property
    def auditor(self) -> str:
        """Holds the Broker.Auditor app role and no Azure role."""
        return self.emulator.env["DEMO_AUDITOR_OBJECT_ID"]

    @property
    def outsider(self) -> str:
        """Holds no role anywhere: may read no demo workspace."""
        return self.emulator.env["DEMO_OUTSIDER_OBJECT_ID"]

    def workspace_id(self, name: str = "demo-project") -> str:
        return self.emulator.workspace_path(name)

    def token(self, object_id: str) -> str:
        """A bearer token for the broker's API as `object_id`, from the emulator's token endpoint (azure-identity)."""
        with self._credentials_lock:
            credential = self._credentials.get(object_id)
            if credential is None:
                credential = self._credentials[object_id] = client_credential(self.emulator, object_id)
        return credential.get_token(self.emulator.env["BROKER_API_SCOPE"]).token

    def call(self, method: str, path: str, *, caller: str | None = None, **kwargs: Any) -> requests.Response:
        """Call the broker through Easy Auth with the function key and a bearer token for `caller` (the reader when
        None: Reader on rg-demo, who sees every run and deployment in the demo projects). An Authorization header in
        `headers` wins."""
        headers = {"x-functions-key": self.host.function_key, **kwargs.pop("headers", {})}
        if not any(name.lower() == "authorization" for name in headers):
            headers["Authorization"] = f"Bearer {self.token(caller or self.reader)}"
        return requests.request(method, f"{self.host.url}{path}", headers=headers, timeout=60, **kwargs)

    def run(self, run_id: str) -> dict[str, Any]:
        return self.call("GET", f"/api/runs/{run_id}").json()

    def deployment(self, deployment_id: str) -> dict[str, Any]:
        return self.call("GET", f"/api/deployments/{deployment_id}").json()

    def runs(self, **filters: str) -> list[dict[str, Any]]:
        return self.call("GET", "/api/runs", params={**filters, "pageSize": "100"}).json()["value"]

    def wait_for_run(self, run_id: str, *, timeout: float = 60) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            run = self.run(run_id)
            if run["status"] in TERMINAL or time.monotonic() > deadline:
                return run
            time.sleep(0.25)

    def invoke(self, function_name: str) -> None:
        """Run a timer or queue function now, as `POST /admin/functions/{name}` does with the master key."""
        response = requests.post(
            f"{self.host.url}/admin/functions/{function_name}",
            headers={"x-functions-key": self.host.master_key},
            json={"input": ""},
            timeout=120,
        )
        assert response.status_code in (200, 202), response.text

    def azure_writes(self) -> list[str]:
        """Every write to Azure resources the emulator has logged (ARM and Key Vault) since its log was last cleared.
        Events published to the Event Grid topic are announcements, not writes: `published_events` counts those."""
        reads = {"GET", "HEAD"}
        return [
            f"{entry['method']} {entry['path']}"
            for entry in self._logged()
            if entry["method"] not in reads
            and not entry["path"].endswith(("/listKeys", "/permissions"))
            and not entry["route"].startswith(TOPIC_ROUTE)
        ]

    def published_events(self) -> int:
        """How many publish requests the emulator's Event Grid topic took since the log was last cleared."""
        return sum(1 for entry in self._logged() if entry["route"].startswith(TOPIC_ROUTE))

    def _logged(self) -> list[dict[str, Any]]:
        return self.emulator.admin.requests(limit=10_000)["entries"]

    def queue(self, name: str) -> QueueClient:
        return QueueClient.from_connection_string(self.storage, name)

    def send_request_message(self, body: dict[str, Any] | str) -> None:
        text = body if isinstance(body, str) else json.dumps(body)
        self.queue(self.requests_queue).send_message(base64.b64encode(text.encode()).decode())

    def events(self, *, timeout: float = 30, until: Any = None) -> list[dict[str, Any]]:
        """Drain deployment-events until `until(events)` holds (or the timeout passes)."""
        collected: list[dict[str, Any]] = []
        deadline = time.monotonic() + timeout
        client = self.queue(self.events_queue)
        while time.monotonic() < deadline:
            for message in client.receive_messages(max_messages=32):
                collected.append(json.loads(base64.b64decode(message.content)))
                client.delete_message(message)
            if until is None or until(collected):
                return collected
            time.sleep(0.25)
        return collected


STORAGE_SETTINGS = (
    "DEPLOYMENT_RUNS_TABLE",
    "DEPLOYMENT_EVENTS_QUEUE",
    "DEPLOYMENT_WORK_QUEUE",
    "DEPLOYMENT_REQUESTS_QUEUE",
    "HYGIENE_FINDINGS_TABLE",
)


def until(condition: Callable[[], Any], timeout: float = 30.0) -> Any:
    """`condition()`'s first truthy value, looked for every 0.25 s; AssertionError after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not (value := condition()):
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.25)
    return value


def storage_of(host: HostProcess) -> dict[str, str]:
    """The table and queue names `host` was started with, for a successor that must carry on its work."""
    return {name: host.env[name] for name in STORAGE_SETTINGS}


def start_broker_host(
    emulator: EmulatorHandle, storage: str, log_path: Path, *, extra_args: tuple[str, ...] = (), **extra_env: str
) -> HostProcess:
    """A host whose tables and queues are its own: each module's emulator starts afresh, and deployment ids are
    deterministic, so a table shared with another module's broker would hold deployments its emulator lacks."""
    suffix = uuid.uuid4().hex[:8]
    env = {
        **emulator.env,
        "AzureWebJobsStorage": storage,
        "BROKER_POLL_SECONDS": "1",
        "DEPLOYMENT_RUNS_TABLE": f"runs{suffix}",
        "DEPLOYMENT_EVENTS_QUEUE": f"events-{suffix}",
        # Two hosts on one queue would take each other's messages and drop them (the run is in the other's table).
        "DEPLOYMENT_WORK_QUEUE": f"work-{suffix}",
        "DEPLOYMENT_REQUESTS_QUEUE": f"requests-{suffix}",
        "HYGIENE_FINDINGS_TABLE": f"findings{suffix}",
        **extra_env,
    }
    return start_host(REPO_ROOT, env=env, log_path=log_path, extra_args=[*SETTINGS, *extra_args])


@contextmanager
def broker_on(emulator: EmulatorHandle, storage: str, log_path: Path, **extra_env: str) -> Iterator[Broker]:
    """A Broker over its own host (`start_broker_host`), stopped when the block ends."""
    host = start_broker_host(emulator, storage, log_path, **extra_env)
    try:
        yield Broker(host, emulator, storage)
    finally:
        host.stop()


@pytest.fixture(scope="module")
def broker(azurite, tmp_path_factory) -> Iterator[Broker]:
    log_dir = tmp_path_factory.mktemp("broker")
    with (
        running_emulator(timings={"lroSeconds": 1.0, "retryAfterMs": 300}) as emulator,
        broker_on(emulator, azurite.connection_string, log_dir / "host.log") as broker,
    ):
        yield broker
