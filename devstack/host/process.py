"""Start the local host as a subprocess (for tests and `make run`) and wait until it reports Running."""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from devstack.host.keys import FUNCTION_KEY_SETTING, KEY_HEADER, MASTER_KEY_SETTING
from devstack.ports import LOOPBACK, free_port

REPO_ROOT = Path(__file__).resolve().parents[2]
InvocationRecord = dict[str, Any]


class HostStartError(RuntimeError):
    """The host exited or never reported Running."""


@dataclass
class HostProcess:
    process: subprocess.Popen[bytes]
    url: str
    master_key: str
    function_key: str
    log_path: Path
    # The settings the host was started with beyond the inherited environment (queue and table names, ...).
    env: dict[str, str] = field(default_factory=dict)

    def is_running(self) -> bool:
        return self.process.poll() is None

    def stop(self, timeout: float = 30.0) -> int:
        """SIGTERM, as a clean stop; kill if it does not exit within `timeout`. Returns the exit code."""
        if self.is_running():
            self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            return self.process.wait()

    def kill(self) -> None:
        if self.is_running():
            self.process.kill()
            self.process.wait()

    def log_text(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def invocations(self) -> list[InvocationRecord]:
        """The structured invocation lines logged so far."""
        records = []
        for line in self.log_text().splitlines():
            if line.startswith("{"):
                record = json.loads(line)
                if record.get("event") == "invocation":
                    records.append(record)
        return records

    def wait_for_invocations(
        self, predicate: Callable[[InvocationRecord], bool], count: int = 1, timeout: float = 10.0
    ) -> list[InvocationRecord]:
        """Poll the log until `count` invocation lines satisfy `predicate`; raise TimeoutError otherwise."""
        deadline = time.monotonic() + timeout
        while True:
            matching = [record for record in self.invocations() if predicate(record)]
            if len(matching) >= count:
                return matching
            if time.monotonic() > deadline or not self.is_running():
                raise TimeoutError(f"saw {len(matching)} of {count} invocation(s); log:\n{self.log_text()[-4000:]}")
            time.sleep(0.05)


def start_host(
    app_dir: Path,
    *,
    env: Mapping[str, str],
    port: int = 0,
    auth: bool = True,
    easy_auth: bool = True,
    log_path: Path | None = None,
    extra_args: Sequence[str] = (),
    startup_timeout: float = 30.0,
) -> HostProcess:
    """Run `python -m devstack.host` for `app_dir` with `env` over this process's environment.

    Keys come from `env` when it sets DEVSTACK_HOST_MASTER_KEY / DEVSTACK_HOST_FUNCTION_KEY, else are generated
    here, so the caller always knows them. Easy Auth is on unless `easy_auth=False` (its settings come from `env`,
    e.g. the emulator's env file).
    """
    port = port or free_port()
    if log_path is None:
        handle, name = tempfile.mkstemp(prefix="devstack-host-", suffix=".log")
        os.close(handle)
        log_path = Path(name)
    master_key = env.get(MASTER_KEY_SETTING) or secrets.token_urlsafe(30)
    function_key = env.get(FUNCTION_KEY_SETTING) or secrets.token_urlsafe(30)
    child_env = {
        **os.environ,
        **env,
        MASTER_KEY_SETTING: master_key,
        FUNCTION_KEY_SETTING: function_key,
        "PYTHONUNBUFFERED": "1",
    }
    command = [sys.executable, "-m", "devstack.host", "--app-dir", str(app_dir), "--port", str(port), *extra_args]
    if not auth:
        command.append("--no-auth")
    if not easy_auth:
        command.append("--no-easy-auth")
    with log_path.open("wb") as log:
        process = subprocess.Popen(command, cwd=REPO_ROOT, env=child_env, stdout=log, stderr=subprocess.STDOUT)
    host = HostProcess(process, f"http://{LOOPBACK}:{port}", master_key, function_key, log_path, dict(env or {}))
    try:
        _wait_until_running(host, startup_timeout)
    except HostStartError:
        host.kill()
        raise
    return host


def _wait_until_running(host: HostProcess, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    request = urllib.request.Request(f"{host.url}/admin/host/status", headers={KEY_HEADER: host.master_key})
    while True:
        if not host.is_running():
            raise HostStartError(f"the host exited with {host.process.returncode}:\n{host.log_text()[-4000:]}")
        try:
            with urllib.request.urlopen(request, timeout=1) as response:
                if json.load(response).get("state") == "Running":
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        if time.monotonic() > deadline:
            raise HostStartError(f"the host was not Running within {timeout:.0f}s:\n{host.log_text()[-4000:]}")
        time.sleep(0.1)
