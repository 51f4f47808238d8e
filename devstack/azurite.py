"""Azurite queues and tables from node_modules, in memory, on free loopback ports."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

from devstack.ports import LOOPBACK, free_port, wait_for_port

REPO_ROOT = Path(__file__).resolve().parent.parent
ACCOUNT_NAME = "devstoreaccount1"
# Azurite's well-known development key; it protects nothing.
ACCOUNT_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
COMMON_FLAGS = ("--inMemoryPersistence", "--skipApiVersionCheck", "--disableTelemetry", "--loose")


@dataclass
class Azurite:
    queue_port: int
    table_port: int
    processes: list[subprocess.Popen]

    @property
    def connection_string(self) -> str:
        return (
            f"DefaultEndpointsProtocol=http;AccountName={ACCOUNT_NAME};AccountKey={ACCOUNT_KEY};"
            f"QueueEndpoint=http://{LOOPBACK}:{self.queue_port}/{ACCOUNT_NAME};"
            f"TableEndpoint=http://{LOOPBACK}:{self.table_port}/{ACCOUNT_NAME};"
        )

    def stop(self) -> None:
        for process in self.processes:
            process.terminate()
        for process in self.processes:
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()


def _binary(name: str) -> Path:
    path = REPO_ROOT / "node_modules" / ".bin" / name
    if not path.exists():
        raise FileNotFoundError(f"{path} is missing: run `npm ci` (the Makefile does) to install Azurite")
    return path


def start_azurite(*, queue_port: int = 0, table_port: int = 0, log_dir: Path | None = None) -> Azurite:
    queue_port = queue_port or free_port()
    table_port = table_port or free_port()
    processes = []
    for service, flag, port in (("queue", "--queuePort", queue_port), ("table", "--tablePort", table_port)):
        output = open(log_dir / f"azurite-{service}.log", "ab") if log_dir else subprocess.DEVNULL  # noqa: SIM115
        processes.append(
            subprocess.Popen(
                [
                    str(_binary(f"azurite-{service}")),
                    f"--{service}Host",
                    LOOPBACK,
                    flag,
                    str(port),
                    *COMMON_FLAGS,
                ],
                stdout=output,
                stderr=subprocess.STDOUT,
                cwd=REPO_ROOT,
            )
        )
    azurite = Azurite(queue_port, table_port, processes)
    try:
        wait_for_port(queue_port)
        wait_for_port(table_port)
    except TimeoutError:
        azurite.stop()
        raise
    return azurite
