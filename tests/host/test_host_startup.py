"""Start-up: an app the host would refuse stops it with a reason; the port can come from the settings file."""

import json
import subprocess
import sys
import textwrap

import pytest

from devstack.host.process import REPO_ROOT, HostStartError, start_host
from devstack.ports import free_port, wait_for_port

from .helpers import call


def _app(directory, source: str, host_json: dict | None = None):
    directory.mkdir(exist_ok=True)
    (directory / "function_app.py").write_text(textwrap.dedent(source))
    if host_json is not None:
        (directory / "host.json").write_text(json.dumps(host_json))
    return directory


TIMER_APP = """
    import azure.functions as func

    app = func.FunctionApp()

    @app.timer_trigger(arg_name="timer", schedule="{schedule}")
    def tick(timer: func.TimerRequest) -> None: ...
"""


@pytest.mark.parametrize(
    ("schedule", "host_json", "reason"),
    [
        ("0 0 0 1 1 *", None, "host.json"),
        ("*/5 * * * *", {"version": "2.0"}, "needs six"),
        ("0 0 0 1 1 *", {"version": "2.0", "extensions": {"queues": {"batchSize": 64}}}, "batchSize"),
    ],
)
def test_an_app_the_host_refuses_stops_the_start_with_the_reason(tmp_path, schedule, host_json, reason):
    app_dir = _app(tmp_path / "app", TIMER_APP.format(schedule=schedule), host_json)

    with pytest.raises(HostStartError, match=reason) as raised:
        start_host(app_dir, env={}, log_path=tmp_path / "host.log")
    assert "exited with 1" in str(raised.value)


def test_the_port_comes_from_the_settings_file_named_on_the_command_line(tmp_path):
    app_dir = _app(tmp_path / "app", TIMER_APP.format(schedule="0 0 0 1 1 *"), {"version": "2.0"})
    port = free_port()
    settings = tmp_path / "elsewhere.json"
    settings.write_text(json.dumps({"Values": {"DEVSTACK_HOST_MASTER_KEY": "m"}, "Host": {"LocalHttpPort": port}}))
    command = [
        *(sys.executable, "-m", "devstack.host", "--app-dir", str(app_dir), "--settings", str(settings)),
        "--no-easy-auth",
    ]
    process = subprocess.Popen(command, cwd=REPO_ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for_port(port, timeout=15)
        assert call(f"http://127.0.0.1:{port}/admin/host/status", headers={"x-functions-key": "m"}).status == 200
    finally:
        process.terminate()
        assert process.wait(timeout=15) == 0
