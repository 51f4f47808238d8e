"""The broker end to end: Azurite, the Azure emulator and the local Functions host running function_app.py."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests
from azure.storage.queue import QueueClient

from devstack.emulator.testing import EmulatorHandle, running_emulator
from devstack.host.process import REPO_ROOT, HostProcess, start_host

SETTINGS = ["--settings", str(REPO_ROOT / "local.settings.sample.json")]
OBJECT_ID_CLAIM = "http://schemas.microsoft.com/identity/claims/objectidentifier"
TERMINAL = {"Succeeded", "Failed", "Rejected", "Deleted"}


def principal_headers(object_id: str) -> dict[str, str]:
    """The headers Easy Auth puts in front of the app for a signed-in caller."""
    principal = {"auth_typ": "aad", "claims": [{"typ": OBJECT_ID_CLAIM, "val": object_id}], "name_typ": "name"}
    return {"X-MS-CLIENT-PRINCIPAL": base64.b64encode(json.dumps(principal).encode()).decode()}


@dataclass
class Broker:
    host: HostProcess
    emulator: EmulatorHandle
    storage: str

    @property
    def requester(self) -> str:
        return self.emulator.env["DEMO_REQUESTER_OBJECT_ID"]

    @property
    def reader(self) -> str:
        return self.emulator.env["DEMO_READER_OBJECT_ID"]

    def workspace_id(self, name: str = "demo-project") -> str:
        return self.emulator.workspace_path(name)

    def call(self, method: str, path: str, *, caller: str | None = None, **kwargs: Any) -> requests.Response:
        headers = {"x-functions-key": self.host.function_key, **kwargs.pop("headers", {})}
        if caller:
            headers.update(principal_headers(caller))
        return requests.request(method, f"{self.host.url}{path}", headers=headers, timeout=60, **kwargs)

    def wait_for_run(self, run_id: str, *, timeout: float = 60) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            run = self.call("GET", f"/api/deployments/{run_id}").json()
            if run["status"] in TERMINAL or time.monotonic() > deadline:
                return run
            time.sleep(0.25)

    def queue(self, name: str) -> QueueClient:
        return QueueClient.from_connection_string(self.storage, name)

    def send_request_message(self, body: dict[str, Any] | str) -> None:
        text = body if isinstance(body, str) else json.dumps(body)
        self.queue("deployment-requests").send_message(base64.b64encode(text.encode()).decode())

    def events(self, *, timeout: float = 30, until: Any = None) -> list[dict[str, Any]]:
        """Drain deployment-events until `until(events)` holds (or the timeout passes)."""
        collected: list[dict[str, Any]] = []
        deadline = time.monotonic() + timeout
        client = self.queue("deployment-events")
        while time.monotonic() < deadline:
            for message in client.receive_messages(max_messages=32):
                collected.append(json.loads(base64.b64decode(message.content)))
                client.delete_message(message)
            if until is None or until(collected):
                return collected
            time.sleep(0.25)
        return collected


def start_broker_host(
    emulator: EmulatorHandle, storage: str, log_path: Path, *, extra_args: tuple[str, ...] = (), **extra_env: str
) -> HostProcess:
    env = {**emulator.env, "AzureWebJobsStorage": storage, "BROKER_POLL_SECONDS": "1", **extra_env}
    return start_host(REPO_ROOT, env=env, log_path=log_path, extra_args=[*SETTINGS, *extra_args])


@pytest.fixture(scope="module")
def broker(azurite, tmp_path_factory) -> Iterator[Broker]:
    log_dir = tmp_path_factory.mktemp("broker")
    with running_emulator(timings={"lroSeconds": 1.0, "retryAfterMs": 300}) as emulator:
        host = start_broker_host(emulator, azurite.connection_string, log_dir / "host.log")
        try:
            yield Broker(host, emulator, azurite.connection_string)
        finally:
            host.stop()
