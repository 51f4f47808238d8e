"""Run the emulator inside a test process: `with running_emulator() as emulator: ...`.

The emulator gets its own event loop in a background thread, free ports and a throw-away CA, so tests stay
hermetic. The handle carries the URLs, the env-file variables, an admin client and in-process token credentials.
"""

from __future__ import annotations

import asyncio
import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests
from azure.core.credentials import AccessToken

from devstack.emulator.scenario import load_scenario_document, merge_overrides
from devstack.emulator.server import EmulatorServer
from devstack.emulator.state import EmulatorState
from devstack.emulator.tls import ensure_tls_files
from devstack.emulator.tokens import ARM_AUDIENCE, Principal

START_TIMEOUT = 10.0
# The api-version azure-ai-ml sends for serverless endpoints and Marketplace subscriptions.
ML_API_VERSION = "2024-01-01-preview"


class AdminClient:
    """A small synchronous client for the admin API (/_emulator/...)."""

    def __init__(self, admin_url: str, ca_bundle: str) -> None:
        self.url = admin_url
        self._ca_bundle = ca_bundle
        self._session = requests.Session()

    def call(self, method: str, path: str, body: Any = None, **params: Any) -> Any:
        response = self._session.request(
            method, f"{self.url}{path}", json=body, params=params or None, verify=self._ca_bundle, timeout=10
        )
        if response.status_code >= 400:
            raise RuntimeError(f"admin {method} {path} failed: {response.status_code} {response.text}")
        return response.json() if response.content else None

    def reset(self, **overrides: Any) -> Any:
        return self.call("POST", "/reset", overrides)

    def load_scenario(self, document: dict[str, Any]) -> Any:
        return self.call("POST", "/scenario", document)

    def state(self) -> dict[str, Any]:
        return self.call("GET", "/state")

    def subscription_action(self, action: str, workspace: str, name: str) -> Any:
        return self.call("POST", f"/marketplace-subscriptions/{action}", {"workspace": workspace, "name": name})

    def set_endpoint_state(self, workspace: str, name: str, **states: Any) -> Any:
        return self.call("POST", "/serverless-endpoints/state", {"workspace": workspace, "name": name, **states})

    def operations(self, *, pending: bool = False) -> list[dict[str, Any]]:
        return self.call("GET", "/operations", pending="true" if pending else "false")

    def complete_operations(self, operation_id: str | None = None) -> list[dict[str, Any]]:
        return self.call("POST", f"/operations/{operation_id}/complete" if operation_id else "/operations/complete")

    def fail_operations(self, operation_id: str | None = None, **error: str) -> list[dict[str, Any]]:
        return self.call("POST", f"/operations/{operation_id}/fail" if operation_id else "/operations/fail", error)

    def add_fault(self, **rule: Any) -> dict[str, Any]:
        return self.call("POST", "/faults", rule)

    def clear_faults(self) -> None:
        self.call("DELETE", "/faults")

    def set_throttling(self, **spec: Any) -> Any:
        return self.call("PUT", "/throttling", spec)

    def requests(self, limit: int = 200) -> dict[str, Any]:
        return self.call("GET", "/requests", limit=limit)

    def clear_requests(self) -> None:
        self.call("DELETE", "/requests")


class EmulatorCredential:
    """A TokenCredential minting emulator tokens in process, for any scenario principal (no identity endpoint)."""

    def __init__(self, state: EmulatorState, principal_id: str) -> None:
        self._state = state
        self._principal_id = principal_id

    def get_token(self, *scopes: str, **_: Any) -> AccessToken:
        raw = self._state.scenario.principal(self._principal_id)
        if raw is None:
            raise ValueError(f"no principal {self._principal_id} in the scenario")
        principal = Principal(
            object_id=raw["objectId"],
            display_name=raw.get("displayName", ""),
            tenant_id=self._state.scenario.tenant_id,
            principal_type=raw.get("type", "User"),
            client_id=raw.get("clientId", ""),
        )
        token, expires_on = self._state.tokens.issue(principal, scopes[0] if scopes else ARM_AUDIENCE)
        return AccessToken(token, expires_on)


class ArmSession:
    """Raw ARM calls as one scenario principal, for what the SDKs do not expose (headers, status codes)."""

    def __init__(self, arm_url: str, ca_bundle: str, credential: EmulatorCredential) -> None:
        self.arm_url = arm_url
        self._credential = credential
        self._ca_bundle = ca_bundle
        self._session = requests.Session()

    def request(
        self,
        method: str,
        path: str,
        *,
        api_version: str | None = ML_API_VERSION,
        body: Any = None,
        headers: dict[str, str] | None = None,
        **params: Any,
    ) -> requests.Response:
        query = {**params, **({"api-version": api_version} if api_version else {})}
        token = self._credential.get_token(f"{ARM_AUDIENCE}/.default").token
        url = path if path.startswith("https://") else f"{self.arm_url}{path}"
        return self._session.request(
            method,
            url,
            params=query,
            json=body,
            headers={**(headers or {}), "Authorization": f"Bearer {token}"},
            # Explicit: requests lets a REQUESTS_CA_BUNDLE variable override a session's own verify setting.
            verify=self._ca_bundle,
            timeout=10,
        )


@dataclass
class EmulatorHandle:
    server: EmulatorServer
    state: EmulatorState
    env: dict[str, str]
    admin: AdminClient
    _stop: Callable[[], None]

    @property
    def arm_url(self) -> str:
        return self.server.arm_url

    @property
    def vault_url(self) -> str:
        return self.env.get("AZURE_KEYVAULT_URL", "")

    @property
    def ca_bundle(self) -> str:
        return self.env["REQUESTS_CA_BUNDLE"]

    def credential(self, principal_id: str | None = None) -> EmulatorCredential:
        return EmulatorCredential(self.state, principal_id or self.state.scenario.broker_principal_id)

    def arm(self, principal_id: str | None = None) -> ArmSession:
        return ArmSession(self.arm_url, self.ca_bundle, self.credential(principal_id))

    def workspace_path(self, workspace: str = "demo-project") -> str:
        found = next(item for item in self.state.scenario.workspaces if item.name == workspace)
        return found.resource_id

    def stop(self) -> None:
        self._stop()


@contextmanager
def running_emulator(
    scenario: dict[str, Any] | Path | str | None = None,
    *,
    state_file: Path | None = None,
    vault_ports: dict[str, int] | None = None,
    **overrides: Any,
) -> Iterator[EmulatorHandle]:
    """Start an emulator (demo scenario unless given; overrides are scenario keys such as timings={...}; vault_ports
    binds vaults by name to fixed ports)."""
    document = scenario if isinstance(scenario, dict) else load_scenario_document(scenario)
    state = EmulatorState(merge_overrides(document, overrides), state_file=state_file)
    tls_dir = Path(tempfile.mkdtemp(prefix="emulator-tls-"))
    server = EmulatorServer(state, ensure_tls_files(tls_dir), fixed_vault_ports=dict(vault_ports or {}))
    loop = asyncio.new_event_loop()
    started = threading.Event()
    failure: list[BaseException] = []

    def run() -> None:
        asyncio.set_event_loop(loop)
        try:
            loop.run_until_complete(server.start())
        except BaseException as exc:  # noqa: BLE001 - reported to the starting thread
            failure.append(exc)
            return
        finally:
            started.set()
        loop.run_forever()
        loop.run_until_complete(server.stop())
        loop.close()

    thread = threading.Thread(target=run, name="azure-emulator", daemon=True)
    thread.start()
    if not started.wait(START_TIMEOUT) or failure:
        shutil.rmtree(tls_dir, ignore_errors=True)
        raise RuntimeError(f"the emulator did not start: {failure[0] if failure else 'timeout'}")
    stopped = False

    def stop() -> None:
        nonlocal stopped
        if stopped:
            return
        stopped = True
        loop.call_soon_threadsafe(loop.stop)
        thread.join(START_TIMEOUT)
        shutil.rmtree(tls_dir, ignore_errors=True)

    env = server.env()
    handle = EmulatorHandle(server, state, env, AdminClient(env["EMULATOR_ADMIN_URL"], env["REQUESTS_CA_BUNDLE"]), stop)
    try:
        yield handle
    finally:
        stop()


def wait_until(condition: Callable[[], Any], timeout: float = 5.0, interval: float = 0.02) -> Any:
    """Poll `condition()` until it returns something truthy; that value, or TimeoutError."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"condition not met within {timeout} s")
        time.sleep(interval)
