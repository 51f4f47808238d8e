"""`make run`: Azurite, the Azure emulator and the local Functions host, until Ctrl-C.

Writes .devstack/run.env so scripts and humans can reach the broker (URL, keys, storage, emulator variables).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time

from devstack.azurite import REPO_ROOT, start_azurite
from devstack.envfile import read_env_file, write_env_file
from devstack.host.process import start_host

STATE_DIR = REPO_ROOT / ".devstack"
EMULATOR_ENV = STATE_DIR / "emulator.env"
RUN_ENV = STATE_DIR / "run.env"
HOST_PORT = int(os.environ.get("BROKER_PORT", "7071"))


def start_emulator() -> tuple[subprocess.Popen, dict[str, str]]:
    EMULATOR_ENV.unlink(missing_ok=True)
    log = open(STATE_DIR / "emulator.log", "ab")  # noqa: SIM115 - lives as long as the process
    process = subprocess.Popen(
        [sys.executable, "-m", "devstack.emulator", "--env-file", str(EMULATOR_ENV)],
        cwd=REPO_ROOT,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + 60
    while not EMULATOR_ENV.exists():
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            raise RuntimeError(f"the emulator did not start; see {STATE_DIR / 'emulator.log'}")
        time.sleep(0.2)
    return process, read_env_file(EMULATOR_ENV)


def main() -> int:
    STATE_DIR.mkdir(exist_ok=True)
    stopping = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stopping.set())

    azurite = start_azurite(log_dir=STATE_DIR)
    emulator, emulator_env = start_emulator()
    try:
        env = {**emulator_env, "AzureWebJobsStorage": azurite.connection_string}
        host = start_host(REPO_ROOT, env=env, port=HOST_PORT, log_path=STATE_DIR / "host.log")
        try:
            run_env = {
                "BROKER_URL": host.url,
                "BROKER_FUNCTION_KEY": host.function_key,
                "BROKER_MASTER_KEY": host.master_key,
                **env,
            }
            write_env_file(RUN_ENV, run_env)
            print(_banner(run_env), flush=True)
            while not stopping.is_set() and host.is_running():
                stopping.wait(1)
        finally:
            host.stop()
    finally:
        emulator.send_signal(signal.SIGTERM)
        emulator.wait(timeout=15)
        azurite.stop()
    return 0


def _banner(run_env: dict[str, str]) -> str:
    url = run_env["BROKER_URL"]
    return "\n".join(
        [
            "",
            f"Broker running at {url} (Ctrl-C stops everything)",
            f"  function key: {run_env['BROKER_FUNCTION_KEY']}",
            f"  settings:     {RUN_ENV.relative_to(REPO_ROOT)} (source it in your shell)",
            f"  try:          curl -s {url}/api/health",
            "",
        ]
    )


if __name__ == "__main__":
    raise SystemExit(main())
