"""`make run`: Azurite, the Azure emulator and the local Functions host, until Ctrl-C or SIGTERM.

`python -m devstack.stack [--state-dir DIR] [--fresh]`. Everything lives in the state folder (`.devstack/`, or
`--state-dir` / `DEVSTACK_DIR`):

- `run.env`: what scripts and humans need to reach the broker (URL, keys, the app's identity-based storage settings,
  emulator variables), quoted so `set -a; source .devstack/run.env; set +a` is safe;
- `ca-bundle.pem`: the emulator's CA (which signs Azurite's certificate too) plus the system roots, what
  `REQUESTS_CA_BUNDLE` names; `host.settings.json`: local.settings.json (or the sample) without storage connection
  strings, which the host reads;
- `azurite/`: Azurite's queues and tables; `emulator-state.json`: the emulator's Machine Learning resources and Key
  Vault secrets;
- `stack.json`: the ports (Azurite's, the emulator's, one per Key Vault) and host keys, reused on every start so
  run.env and stored URLs stay valid;
- `stack.log` (what the stack did: starts, crashes, restarts), `host.log` (`host.previous.log`: the one before the
  last restart), `emulator.log`, `azurite-*.log`; `pids.json` while it runs.

A service that exits on its own is started again on the same port, with back-off (1 s doubling to 30 s; back to 1 s
once everything has stayed up for a minute). The host restarts with either dependency (its storage clients and
emulator tokens die with them) and when `local.settings.json` changes. `--fresh` deletes the stored queues, tables
and emulator resources first; ports and keys stay.

Storage is identity-based, as in Azure: Azurite serves HTTPS with the emulator's certificate and accepts bearer tokens
(`--oauth basic`), and the app gets `AzureWebJobsStorage__queueServiceUri`, `__tableServiceUri`,
`__credential=managedidentity` and `__clientId` (the broker identity) and no connection string, so it and the
host's queue triggers sign in through the emulator's managed-identity endpoint.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import secrets
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from devstack.azurite import REPO_ROOT, Azurite, start_azurite
from devstack.ca_bundle import write_ca_bundle
from devstack.emulator.scenario import DEMO_SCENARIO, load_scenario_document
from devstack.emulator.tls import TlsFiles, ensure_tls_files
from devstack.envfile import read_env_file, write_env_file
from devstack.host.keys import FUNCTION_KEY_SETTING, MASTER_KEY_SETTING
from devstack.host.process import HostProcess, HostStartError, start_host
from devstack.ports import LOOPBACK, free_port

DEFAULT_STATE_DIR = REPO_ROOT / ".devstack"
DEFAULT_HOST_PORT = 7071
EMULATOR_START_TIMEOUT = 60.0
POLL_SECONDS = 0.5
# The settings files the host reads (local.settings.json, else the sample); a change restarts it.
SETTINGS_FILES = (REPO_ROOT / "local.settings.json", REPO_ROOT / "local.settings.sample.json")
EMULATOR_REQUIRED = ("AZURE_RESOURCE_MANAGER_URL", "EMULATOR_ADMIN_URL", "REQUESTS_CA_BUNDLE")
STORAGE_CONNECTION = "AzureWebJobsStorage"
CA_BUNDLE_SETTING = "REQUESTS_CA_BUNDLE"
# Marks of a storage connection string (account key, SAS, or Azurite's shortcut): kept away from the app.
CONNECTION_STRING_MARKS = ("accountkey=", "sharedaccesssignature=", "usedevelopmentstorage=")
RUN_ENV_SECTIONS = (
    ("the broker", ("BROKER_URL", "BROKER_FUNCTION_KEY", "BROKER_MASTER_KEY")),
    (
        "the app's storage: identity-based as in Azure, no connection string (tokens from IDENTITY_ENDPOINT)",
        tuple(
            f"{STORAGE_CONNECTION}__{name}" for name in ("queueServiceUri", "tableServiceUri", "credential", "clientId")
        ),
    ),
    (
        "the emulator's managed-identity endpoint, and the CA bundle that trusts it and Azurite",
        ("IDENTITY_ENDPOINT", "IDENTITY_HEADER", CA_BUNDLE_SETTING),
    ),
    ("the emulator (ARM, Key Vault, Entra ID) and the demo principals", None),
)

log = logging.getLogger("devstack.stack")


class StackError(RuntimeError):
    """The stack cannot start: reported in one line, and nothing is left running."""


@dataclass(frozen=True)
class Layout:
    """Where the stack keeps its state."""

    root: Path

    azurite = property(lambda self: self.root / "azurite")
    emulator_state = property(lambda self: self.root / "emulator-state.json")
    emulator_env = property(lambda self: self.root / "emulator.env")
    run_env = property(lambda self: self.root / "run.env")
    settings = property(lambda self: self.root / "stack.json")
    pids = property(lambda self: self.root / "pids.json")
    stack_log = property(lambda self: self.root / "stack.log")
    host_log = property(lambda self: self.root / "host.log")
    previous_host_log = property(lambda self: self.root / "host.previous.log")
    emulator_log = property(lambda self: self.root / "emulator.log")
    tls = property(lambda self: self.root / "tls")
    ca_bundle = property(lambda self: self.root / "ca-bundle.pem")
    host_settings = property(lambda self: self.root / "host.settings.json")

    def shown(self, path: Path) -> str:
        """`path` relative to the repository when it is inside it, as the banner shows it."""
        try:
            return str(path.relative_to(REPO_ROOT))
        except ValueError:
            return str(path)


class Backoff:
    """Delays before restarts: `first`, doubling to `cap`; back to `first` once the last attempt has lasted
    `reset_after` seconds (a crash after a long healthy run is not a crash loop)."""

    def __init__(
        self,
        first: float = 1.0,
        cap: float = 30.0,
        reset_after: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.first, self.cap, self.reset_after, self._clock = first, cap, reset_after, clock
        self._next = first
        self._attempted_at: float | None = None

    def attempted(self) -> None:
        """A start is being attempted now (first start or restart, whether it works or not)."""
        self._attempted_at = self._clock()

    def reset(self) -> None:
        self._next = self.first

    def failure(self) -> float:
        """Something died: how long to wait before the next attempt."""
        if self._attempted_at is not None and self._clock() - self._attempted_at >= self.reset_after:
            self._next = self.first
        delay = self._next
        self._next = min(self._next * 2, self.cap)
        return delay


def port_in_use(port: int) -> bool:
    """Whether something listens on loopback `port` (probed as servers bind: SO_REUSEADDR, so TIME_WAIT is fine)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((LOOPBACK, port))
        except OSError:
            return True
    return False


def describe_exit(code: int | None) -> str:
    if code is None:
        return "still running"
    if code < 0:
        with contextlib.suppress(ValueError):
            return f"killed by {signal.Signals(-code).name}"
    return f"exit code {code}"


def _command_line(pid: int) -> str | None:
    """The command line of a live process, or None when it is gone, a zombie, or cannot be read."""
    try:
        result = subprocess.run(
            ["ps", "-o", "stat=,command=", "-p", str(pid)], capture_output=True, text=True, check=False
        )
    except OSError:
        return None
    state, _, command = result.stdout.strip().partition(" ")
    return None if not state or state.startswith("Z") else command.strip() or None


class StackSettings:
    """Ports and host keys, in stack.json: the first start picks them, later starts reuse them. Vault ports are kept
    by vault name under `vaultPorts`."""

    PORTS = ("queuePort", "tablePort", "emulatorPort", "topicPort")

    def __init__(self, path: Path, vault_names: tuple[str, ...] = ()) -> None:
        self.path = path
        self.vault_names = vault_names
        try:
            self.values: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            self.values = {}

    def resolve(self) -> None:
        for name in self.PORTS:
            self.values[name] = _kept_port(self.values.get(name), name)
        remembered_vaults = self.values.get("vaultPorts")
        remembered_vaults = remembered_vaults if isinstance(remembered_vaults, dict) else {}
        self.values["vaultPorts"] = {
            name: _kept_port(remembered_vaults.get(name), f"vault {name}") for name in self.vault_names
        }
        # The environment wins (as for the host itself); else the remembered keys; else new ones.
        for name, setting in (("masterKey", MASTER_KEY_SETTING), ("functionKey", FUNCTION_KEY_SETTING)):
            self.values[name] = os.environ.get(setting) or self.values.get(name) or secrets.token_urlsafe(30)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        partial = self.path.with_name(self.path.name + ".tmp")
        partial.write_text(json.dumps(self.values, indent=1) + "\n", encoding="utf-8")
        partial.chmod(0o600)
        os.replace(partial, self.path)

    def __getitem__(self, name: str) -> Any:
        return self.values[name]


def _kept_port(remembered: Any, name: str) -> int:
    """The remembered port while it is free, else a new one (with a warning when one was remembered)."""
    if isinstance(remembered, int) and not port_in_use(remembered):
        return remembered
    chosen = free_port()
    if isinstance(remembered, int):
        log.warning(
            "port %s (%s) is taken by another program; using %s, so run.env changes and work queued "
            "against the old address may fail",
            remembered,
            name,
            chosen,
        )
    return chosen


def _scenario_vaults() -> tuple[str, ...]:
    """The names of the vaults the emulator's scenario (the demo) declares, each of which gets a kept port."""
    return tuple(vault["name"] for vault in load_scenario_document(DEMO_SCENARIO).get("vaults", ()))


class Stack:
    def __init__(self, layout: Layout, *, host_port: int, stopping: threading.Event) -> None:
        self.layout = layout
        self.host_port = host_port
        self.stopping = stopping
        self.settings = StackSettings(layout.settings, _scenario_vaults())
        self.backoff = Backoff()
        self.azurite: Azurite | None = None
        self.emulator: subprocess.Popen[bytes] | None = None
        self.emulator_env: dict[str, str] = {}
        self.tls: TlsFiles | None = None
        self.broker_client_id: str | None = None
        self.host: HostProcess | None = None
        self.run_env: dict[str, str] = {}
        self.restarts = 0
        self._owns_pids = False
        self._settings_seen = _settings_snapshot()

    # -- starting ---------------------------------------------------------------------------------------------------

    def prepare(self, *, fresh: bool) -> None:
        self.layout.root.mkdir(parents=True, exist_ok=True)
        self._claim()
        if fresh:
            shutil.rmtree(self.layout.azurite, ignore_errors=True)
            for path in (self.layout.emulator_state, self.layout.emulator_state.with_suffix(".json.tmp")):
                path.unlink(missing_ok=True)
            log.info("fresh start: removed the stored queues, tables and emulator resources")
        if os.environ.pop(STORAGE_CONNECTION, None) is not None:
            # Typically exported by an older run.env: the host would hand it to the app.
            log.warning("ignoring %s from the environment: the app's storage is identity-based", STORAGE_CONNECTION)
        if port_in_use(self.host_port):
            raise StackError(f"port {self.host_port} is in use; stop what holds it or set BROKER_PORT")
        self.settings.resolve()

    def start(self) -> None:
        kept = self.layout.azurite.exists() or self.layout.emulator_state.exists()
        log.info(
            "starting in %s (%s)",
            self.layout.root,
            "with the state of the last run" if kept else "empty: nothing stored yet",
        )
        self.backoff.attempted()
        try:
            self._start_azurite()
            self._start_emulator()
            self._start_host()
        except (RuntimeError, TimeoutError, OSError) as error:
            raise StackError(str(error)) from error
        self._write_run_env()
        print(self._banner(), flush=True)

    def _start_azurite(self) -> None:
        # The emulator's CA and server certificate (made here if this is the first start; the emulator reuses them).
        self.tls = ensure_tls_files(self.layout.tls)
        self.azurite = start_azurite(
            queue_port=self.settings["queuePort"],
            table_port=self.settings["tablePort"],
            log_dir=self.layout.root,
            location=self.layout.azurite,
            tls=self.tls,
            oauth=True,
        )
        self._write_pids()
        log.info(
            "Azurite (HTTPS, OAuth) on queue port %s, table port %s", self.azurite.queue_port, self.azurite.table_port
        )

    def _start_emulator(self) -> None:
        env_file = self.layout.emulator_env
        env_file.unlink(missing_ok=True)  # left over when the last emulator was killed
        command = [
            sys.executable,
            "-m",
            "devstack.emulator",
            "--env-file",
            str(env_file),
            "--state-file",
            str(self.layout.emulator_state),
            "--port",
            str(self.settings["emulatorPort"]),
            "--tls-dir",
            str(self.layout.tls),
        ]
        for vault, port in self.settings["vaultPorts"].items():
            command += ["--vault-port", f"{vault}={port}"]
        # The Event Grid topic the broker publishes to (EVENT_GRID_TOPIC_ENDPOINT in the emulator's settings).
        command += ["--topic-port", str(self.settings["topicPort"])]
        with self.layout.emulator_log.open("ab") as output:
            # Its own session: Ctrl-C reaches the stack, which stops it once.
            process = subprocess.Popen(
                command, cwd=REPO_ROOT, stdout=output, stderr=subprocess.STDOUT, start_new_session=True
            )
        self.emulator = process
        deadline = time.monotonic() + EMULATOR_START_TIMEOUT
        while True:
            env = read_env_file(env_file) if env_file.exists() else {}
            if all(name in env for name in EMULATOR_REQUIRED):
                break
            if process.poll() is not None or time.monotonic() > deadline:
                self._stop_emulator()
                raise RuntimeError(f"the emulator did not start; see {self.layout.emulator_log}")
            time.sleep(0.1)
        # One bundle for everything local: the emulator's CA (Azurite's certificate chains to it too) and the roots
        # the machine already trusts, so a shell that exports it can still reach the internet.
        bundle = write_ca_bundle(self.layout.ca_bundle, [Path(env[CA_BUNDLE_SETTING])])
        self.emulator_env = {**env, CA_BUNDLE_SETTING: str(bundle)}
        self.broker_client_id = env.get("DEMO_BROKER_CLIENT_ID") or _broker_client_id(env)
        self._write_pids()
        log.info("emulator at %s", env["AZURE_RESOURCE_MANAGER_URL"])

    def _start_host(self) -> None:
        assert self.azurite is not None
        if self.layout.host_log.exists():
            os.replace(self.layout.host_log, self.layout.previous_host_log)
        env = {
            **self.emulator_env,
            **self._storage_settings(),
            MASTER_KEY_SETTING: self.settings["masterKey"],
            FUNCTION_KEY_SETTING: self.settings["functionKey"],
        }
        self._settings_seen = _settings_snapshot()
        settings_file = write_host_settings(self.layout.host_settings)
        self.host = start_host(
            REPO_ROOT,
            env=env,
            port=self.host_port,
            log_path=self.layout.host_log,
            extra_args=["--settings", str(settings_file)],
        )
        self._write_pids()
        log.info("host at %s (pid %s)", self.host.url, self.host.process.pid)

    def _storage_settings(self) -> dict[str, str]:
        """The app's storage connection, identity-based as infra/ sets it in Azure: service URIs and a user-assigned
        managed identity (the emulator's broker identity, by client id), and no connection string."""
        assert self.azurite is not None
        settings = {
            f"{STORAGE_CONNECTION}__queueServiceUri": self.azurite.queue_service_uri,
            f"{STORAGE_CONNECTION}__tableServiceUri": self.azurite.table_service_uri,
            f"{STORAGE_CONNECTION}__credential": "managedidentity",
        }
        if self.broker_client_id:
            settings[f"{STORAGE_CONNECTION}__clientId"] = self.broker_client_id
        return settings

    # -- supervising ------------------------------------------------------------------------------------------------

    def supervise(self) -> None:
        """Until stopped: notice a service that died and start it again, with back-off."""
        while not self.stopping.wait(POLL_SECONDS):
            dead = self._dead()
            settings_changed = _settings_snapshot() != self._settings_seen
            if not dead and not settings_changed:
                continue
            # A Ctrl-C in the terminal also reaches the host, which may exit before our handler has run.
            if self.stopping.wait(POLL_SECONDS):
                return
            if settings_changed:
                log.info("the settings changed; restarting the host")
                self.backoff.reset()  # a fix of what made it crash gets its restart at once
            if dead:
                self._recover(dead)
            else:
                self._restart(["host"], delay=0.0)

    def _dead(self) -> list[str]:
        dead = []
        if self.azurite is None or not self.azurite.is_running():
            dead.append("azurite")
        if self.emulator is None or self.emulator.poll() is not None:
            dead.append("emulator")
        if self.host is None or not self.host.is_running():
            dead.append("host")
        return dead

    def _recover(self, dead: list[str]) -> None:
        for name in dead:
            log.warning("%s exited (%s)", name, self._exit_of(name))
        if "host" in dead:
            self._log_host_tail()
        # The host restarts with its dependencies: its emulator tokens and storage connections die with them.
        names = [*dead, "host"] if "host" not in dead else dead
        self._restart(names, delay=self.backoff.failure())

    def _restart(self, names: list[str], *, delay: float) -> None:
        if "host" in names and self.host is not None and self.host.is_running():
            self.host.stop()
        if delay:
            log.warning("restarting %s in %g s", " and ".join(names), delay)
            if self.stopping.wait(delay):
                return
        self.backoff.attempted()
        starters = {"azurite": self._start_azurite, "emulator": self._start_emulator, "host": self._start_host}
        for name in ("azurite", "emulator", "host"):
            if name not in names:
                continue
            if name == "azurite" and self.azurite is not None:
                self.azurite.stop()  # one of its two services may still run
            if name == "emulator":
                self._stop_emulator()
            try:
                starters[name]()
            except (HostStartError, RuntimeError, TimeoutError, OSError) as error:
                log.error("could not restart %s: %s", name, _first_line(error))
                return  # still dead: the next round waits longer
        self.restarts += 1
        changed = self._write_run_env()
        assert self.host is not None
        log.warning(
            "restarted %s; the broker serves at %s again, same keys%s",
            " and ".join(names),
            self.host.url,
            f" ({self.layout.shown(self.layout.run_env)} changed: {', '.join(changed)})" if changed else "",
        )

    def _exit_of(self, name: str) -> str:
        if name == "azurite" and self.azurite is not None:
            return ", ".join(describe_exit(code) for code in self.azurite.exit_codes())
        if name == "emulator" and self.emulator is not None:
            return describe_exit(self.emulator.poll())
        if name == "host" and self.host is not None:
            return describe_exit(self.host.process.poll())
        return "not started"

    def _log_host_tail(self) -> None:
        with contextlib.suppress(OSError):
            lines = [line for line in self.layout.host_log.read_text(errors="replace").splitlines() if line.strip()]
            for line in lines[-5:]:
                log.debug("host.log: %s", line)

    # -- stopping ---------------------------------------------------------------------------------------------------

    def stop(self) -> None:
        if self.azurite is None:
            return  # nothing was started
        log.info("stopping")
        if self.host is not None:
            self.host.stop()
        self._stop_emulator()
        if self.azurite is not None:
            self.azurite.stop()
        if self._owns_pids:
            self.layout.pids.unlink(missing_ok=True)
        log.info("stopped (%d restart(s) this run)", self.restarts)

    def _stop_emulator(self) -> None:
        if self.emulator is None:
            return
        if self.emulator.poll() is None:
            self.emulator.send_signal(signal.SIGTERM)
        try:
            self.emulator.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.emulator.kill()
            self.emulator.wait()

    # -- bookkeeping ------------------------------------------------------------------------------------------------

    def _claim(self) -> None:
        """Refuse a folder another live stack uses; stop what a stack that was killed left running."""
        try:
            previous = json.loads(self.layout.pids.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return
        stack_pid = previous.get("stack")
        if isinstance(stack_pid, int) and stack_pid != os.getpid():
            command = _command_line(stack_pid)
            if command and "devstack.stack" in command:
                raise StackError(f"another stack (pid {stack_pid}) is using {self.layout.root}; stop it first")
        leftovers = [("host", previous.get("host")), ("emulator", previous.get("emulator"))]
        leftovers += [("azurite", pid) for pid in previous.get("azurite") or ()]
        markers = {"host": "devstack.host", "emulator": "devstack.emulator", "azurite": "azurite"}
        for name, pid in leftovers:
            if not isinstance(pid, int):
                continue
            command = _command_line(pid)
            if command and markers[name] in command:
                log.warning("stopping %s (pid %s), left running by a stack that did not stop cleanly", name, pid)
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGINT if name == "azurite" else signal.SIGTERM)
                _wait_gone(pid)
        self.layout.pids.unlink(missing_ok=True)

    def _write_pids(self) -> None:
        pids = {
            "stack": os.getpid(),
            "azurite": self.azurite.pids if self.azurite else [],
            "emulator": self.emulator.pid if self.emulator else None,
            "host": self.host.process.pid if self.host else None,
        }
        self.layout.pids.write_text(json.dumps(pids) + "\n", encoding="utf-8")
        self._owns_pids = True

    def _write_run_env(self) -> list[str]:
        """Write run.env; the names whose values changed since the last write."""
        assert self.host is not None
        assert self.azurite is not None
        run_env = {
            "BROKER_URL": self.host.url,
            "BROKER_FUNCTION_KEY": self.host.function_key,
            "BROKER_MASTER_KEY": self.host.master_key,
            **self._storage_settings(),
            **self.emulator_env,
        }
        changed = [name for name, value in run_env.items() if self.run_env and self.run_env.get(name) != value]
        self.run_env = run_env
        write_env_file(self.layout.run_env, run_env, sections=RUN_ENV_SECTIONS)
        return changed

    def _banner(self) -> str:
        url = self.run_env["BROKER_URL"]
        return "\n".join(
            [
                "",
                f"Broker running at {url} (Ctrl-C stops everything)",
                f"  function key: {self.run_env['BROKER_FUNCTION_KEY']}",
                f"  settings:     {self.layout.shown(self.layout.run_env)} "
                f"(set -a; source {self.layout.shown(self.layout.run_env)}; set +a)",
                "  storage:      identity-based (Azurite over HTTPS with OAuth, tokens from the emulator); "
                "no connection string",
                f"  state:        {self.layout.shown(self.layout.root)}/ (kept across restarts; "
                "`make run FRESH=1` starts clean)",
                f"  log:          {self.layout.shown(self.layout.stack_log)} (a crashed host is restarted)",
                f"  try:          curl -s {url}/api/health",
                "",
            ]
        )


def is_connection_string(value: str) -> bool:
    lowered = value.lower()
    return any(mark in lowered for mark in CONNECTION_STRING_MARKS)


def write_host_settings(path: Path, sources: tuple[Path, ...] = SETTINGS_FILES) -> Path:
    """The first of `sources` that exists (local.settings.json, else the sample) without storage connection strings,
    as the host's settings file: `make run` gives the app identity-based storage only, as Azure does, and the
    committed sample carries Azurite's connection string for tests that use one."""
    document: dict[str, Any] = {"IsEncrypted": False, "Values": {}}
    for source in sources:
        if source.is_file():
            try:
                document = json.loads(source.read_text(encoding="utf-8"))
            except ValueError as error:
                # A RuntimeError, as a host that cannot start: reported, and retried once the file changes.
                raise RuntimeError(f"{source} is not valid JSON: {error}") from None
            break
    values = document.get("Values") or {}
    dropped = sorted(
        name
        for name, value in values.items()
        if name == STORAGE_CONNECTION or (isinstance(value, str) and is_connection_string(value))
    )
    if dropped:
        log.info("not giving the app %s from the settings file: storage is identity-based", ", ".join(dropped))
    document["Values"] = {name: value for name, value in values.items() if name not in dropped}
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".tmp")
    partial.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
    os.replace(partial, path)
    return path


def _broker_client_id(emulator_env: dict[str, str]) -> str | None:
    """The broker identity's client id, from the emulator's scenario, so the app names its user-assigned identity
    (`__clientId`) as infra/ does; None when the scenario has none (the endpoint then answers as the broker)."""
    context = ssl.create_default_context(cafile=emulator_env[CA_BUNDLE_SETTING])
    try:
        with urllib.request.urlopen(
            f"{emulator_env['EMULATOR_ADMIN_URL']}/scenario", context=context, timeout=10
        ) as answer:
            scenario = json.load(answer)
    except (OSError, ValueError) as error:
        log.warning("could not read the emulator's scenario (%s); storage uses the default identity", error)
        return None
    broker = emulator_env.get("DEMO_BROKER_OBJECT_ID") or scenario.get("brokerPrincipalId")
    for principal in scenario.get("principals") or ():
        if principal.get("objectId") == broker and principal.get("clientId"):
            return str(principal["clientId"])
    return None


def _settings_snapshot() -> tuple[float | None, ...]:
    snapshot = []
    for path in SETTINGS_FILES:
        try:
            snapshot.append(path.stat().st_mtime)
        except OSError:
            snapshot.append(None)
    return tuple(snapshot)


def _wait_gone(pid: int, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while _command_line(pid) is not None:
        if time.monotonic() > deadline:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            return
        time.sleep(0.1)


def _first_line(error: BaseException) -> str:
    return (str(error).strip().splitlines() or [type(error).__name__])[0]


def configure_logging(layout: Layout) -> None:
    log.setLevel(logging.DEBUG)
    log.propagate = False
    console = logging.StreamHandler(sys.stdout)
    console.setLevel(logging.INFO)
    console.setFormatter(logging.Formatter("%(asctime)s stack: %(message)s", "%H:%M:%S"))
    layout.root.mkdir(parents=True, exist_ok=True)
    logfile = logging.FileHandler(layout.stack_log, encoding="utf-8")
    logfile.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    log.handlers[:] = [console, logfile]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m devstack.stack", description=__doc__.split("\n")[0])
    parser.add_argument(
        "--state-dir",
        type=Path,
        default=Path(os.environ.get("DEVSTACK_DIR") or DEFAULT_STATE_DIR),
        help="where state, logs and run.env live (default: $DEVSTACK_DIR, else .devstack/)",
    )
    parser.add_argument("--fresh", action="store_true", help="delete the stored queues, tables and Azure resources")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    arguments = parse_args(argv)
    layout = Layout(arguments.state_dir.resolve())
    configure_logging(layout)
    stopping = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, lambda *_: stopping.set())
    stack = Stack(layout, host_port=int(os.environ.get("BROKER_PORT") or DEFAULT_HOST_PORT), stopping=stopping)
    try:
        stack.prepare(fresh=arguments.fresh)
        stack.start()
        stack.supervise()
    except StackError as error:
        log.error("cannot start the stack: %s", error)
        return 1
    finally:
        stack.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
