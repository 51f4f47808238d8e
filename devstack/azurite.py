"""Azurite queues and tables from node_modules on loopback: in memory (tests), or kept in a folder (`make run`).

By default over HTTP with the well-known account key (a connection string). With `tls=` it serves HTTPS with that
certificate, and with `oauth=True` also accepts bearer tokens (`--oauth basic`), which is how `make run` serves the
app's identity-based connections (`AzureWebJobsStorage__queueServiceUri` ...). What `--oauth basic` checks
(Azurite 3.37, `QueueTokenAuthenticator` / `TableTokenAuthenticator`): HTTPS; a decodable JWT with `iat`, `nbf` and
`exp`, inside its lifetime; an issuer starting with `https://sts.windows.net/` (or another Azure cloud's STS); the
audience `https://storage.azure.com` (with or without the trailing slash), the storage first-party app id, or the
account's own `https://<account>.queue|table.core.windows.net`. It does not check the signature, roles or scopes,
and it still accepts the account key and SAS: refusing keys is left to the configuration (no connection string).
"""

from __future__ import annotations

import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from devstack.ports import LOOPBACK, free_port

REPO_ROOT = Path(__file__).resolve().parent.parent
ACCOUNT_NAME = "devstoreaccount1"
# Azurite's well-known development key; it protects nothing.
ACCOUNT_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
COMMON_FLAGS = ("--skipApiVersionCheck", "--disableTelemetry", "--loose")
# Azurite refuses --inMemoryPersistence together with --location: one or the other.
IN_MEMORY_FLAG = "--inMemoryPersistence"
START_TIMEOUT = 30.0
STOP_TIMEOUT = 10.0


class ServerCertificate(Protocol):
    """A PEM certificate and its key, e.g. devstack.emulator.tls.TlsFiles (the emulator's, signed by its CA)."""

    @property
    def server_cert(self) -> Path: ...

    @property
    def server_key(self) -> Path: ...


@dataclass
class Azurite:
    queue_port: int
    table_port: int
    processes: list[subprocess.Popen]
    location: Path | None = None
    https: bool = False
    oauth: bool = False

    @property
    def scheme(self) -> str:
        return "https" if self.https else "http"

    @property
    def queue_service_uri(self) -> str:
        """What `<connection>__queueServiceUri` names: the account's queue endpoint (path-style on loopback)."""
        return f"{self.scheme}://{LOOPBACK}:{self.queue_port}/{ACCOUNT_NAME}"

    @property
    def table_service_uri(self) -> str:
        return f"{self.scheme}://{LOOPBACK}:{self.table_port}/{ACCOUNT_NAME}"

    @property
    def connection_string(self) -> str:
        """The account-key connection string (Azurite accepts keys in every mode; Azure with identity does not)."""
        return (
            f"DefaultEndpointsProtocol={self.scheme};AccountName={ACCOUNT_NAME};AccountKey={ACCOUNT_KEY};"
            f"QueueEndpoint={self.queue_service_uri};TableEndpoint={self.table_service_uri};"
        )

    @property
    def pids(self) -> list[int]:
        return [process.pid for process in self.processes]

    def is_running(self) -> bool:
        return all(process.poll() is None for process in self.processes)

    def exit_codes(self) -> list[int | None]:
        return [process.poll() for process in self.processes]

    def stop(self) -> None:
        """SIGINT, once: both services save their databases on it (azurite-table has no SIGTERM handler, and a
        second signal would end either mid-save); kill what is still running after STOP_TIMEOUT."""
        for process in self.processes:
            if process.poll() is None:
                process.send_signal(signal.SIGINT)
        for process in self.processes:
            try:
                process.wait(timeout=STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def _binary(name: str) -> Path:
    path = REPO_ROOT / "node_modules" / ".bin" / name
    if not path.exists():
        raise FileNotFoundError(f"{path} is missing: run `npm ci` (the Makefile does) to install Azurite")
    return path


def start_azurite(
    *,
    queue_port: int = 0,
    table_port: int = 0,
    log_dir: Path | None = None,
    location: Path | None = None,
    tls: ServerCertificate | None = None,
    oauth: bool = False,
) -> Azurite:
    """Start azurite-queue and azurite-table (free ports unless given).

    Without `location` (the default, for tests) both keep everything in memory. With it, they keep their queues and
    tables in that folder across restarts; they then run in their own session, so a Ctrl-C in the terminal reaches
    only the caller, which stops them with a single SIGINT. Azurite saves its databases every 5 s and on that
    SIGINT, so a killed Azurite loses at most the last few seconds of writes.

    `tls` (a certificate for 127.0.0.1, e.g. the emulator's `TlsFiles`) serves HTTPS; `oauth=True`, which needs it
    (Azurite refuses bearer tokens over HTTP), also accepts bearer tokens for `https://storage.azure.com`.
    """
    if oauth and tls is None:
        raise ValueError("Azurite accepts OAuth bearer tokens only over HTTPS: pass tls= as well")
    queue_port = queue_port or free_port()
    table_port = table_port or free_port()
    if location is not None:
        location.mkdir(parents=True, exist_ok=True)
    persistence = ["--location", str(location)] if location is not None else [IN_MEMORY_FLAG]
    security = ["--cert", str(tls.server_cert), "--key", str(tls.server_key)] if tls is not None else []
    if oauth:
        security += ["--oauth", "basic"]
    processes = []
    for service, flag, port in (("queue", "--queuePort", queue_port), ("table", "--tablePort", table_port)):
        output = open(log_dir / f"azurite-{service}.log", "ab") if log_dir else subprocess.DEVNULL  # noqa: SIM115
        try:
            processes.append(
                subprocess.Popen(
                    [
                        str(_binary(f"azurite-{service}")),
                        f"--{service}Host",
                        LOOPBACK,
                        flag,
                        str(port),
                        *persistence,
                        *security,
                        *COMMON_FLAGS,
                    ],
                    stdout=output,
                    stderr=subprocess.STDOUT,
                    cwd=REPO_ROOT,
                    start_new_session=location is not None,
                )
            )
        finally:
            if output is not subprocess.DEVNULL:
                output.close()  # the child holds its own copy
    azurite = Azurite(queue_port, table_port, processes, location, https=tls is not None, oauth=oauth)
    try:
        _wait_until_listening(azurite, log_dir)
    except (TimeoutError, RuntimeError):
        azurite.stop()
        raise
    return azurite


def _wait_until_listening(azurite: Azurite, log_dir: Path | None) -> None:
    """Both ports answer, and from these processes: a service that exits (its port taken, a bad flag) fails fast."""
    deadline = time.monotonic() + START_TIMEOUT
    waiting = [azurite.queue_port, azurite.table_port]
    while waiting:
        if not azurite.is_running():
            where = f"; see {log_dir}/azurite-*.log" if log_dir else ""
            raise RuntimeError(f"Azurite exited while starting (exit codes {azurite.exit_codes()}){where}")
        try:
            with socket.create_connection((LOOPBACK, waiting[0]), timeout=0.5):
                waiting.pop(0)
                continue
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise TimeoutError(f"Azurite did not listen on {LOOPBACK}:{waiting[0]} within {START_TIMEOUT:.0f}s")
        time.sleep(0.1)
