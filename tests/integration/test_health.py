"""GET /api/health over HTTP, through the local Functions host running the real function app on Azurite."""

import json
import urllib.error
import urllib.request
from collections.abc import Iterator

import pytest

from devstack.azurite import ACCOUNT_KEY, ACCOUNT_NAME
from devstack.host.process import REPO_ROOT, HostProcess, start_host
from devstack.ports import free_port
from shared.version import broker_version

pytestmark = pytest.mark.integration
# The committed sample, not a developer's local.settings.json, so the test sees what CI sees.
SETTINGS = ["--settings", str(REPO_ROOT / "local.settings.sample.json")]


def _host(storage_connection_string: str, tmp_path) -> HostProcess:
    return start_host(
        REPO_ROOT,
        env={"AzureWebJobsStorage": storage_connection_string},
        log_path=tmp_path / "host.log",
        extra_args=SETTINGS,
    )


def _get_health(host: HostProcess) -> tuple[int, dict]:
    try:
        with urllib.request.urlopen(f"{host.url}/api/health", timeout=30) as response:
            return response.status, json.load(response)
    except urllib.error.HTTPError as error:
        return error.code, json.load(error)


@pytest.fixture
def healthy_host(azurite, tmp_path) -> Iterator[HostProcess]:
    host = _host(azurite.connection_string, tmp_path)
    yield host
    host.stop()


@pytest.fixture
def host_without_storage(tmp_path) -> Iterator[HostProcess]:
    closed = free_port()
    unreachable = (
        f"DefaultEndpointsProtocol=http;AccountName={ACCOUNT_NAME};AccountKey={ACCOUNT_KEY};"
        f"QueueEndpoint=http://127.0.0.1:{closed}/{ACCOUNT_NAME};TableEndpoint=http://127.0.0.1:{closed}/{ACCOUNT_NAME};"
    )
    host = _host(unreachable, tmp_path)
    yield host
    host.stop()


def test_health_is_anonymous_and_reports_version_and_storage(healthy_host):
    status, body = _get_health(healthy_host)

    assert status == 200
    assert body["status"] == "healthy"
    assert body["version"] == broker_version()
    assert body["dependencies"]["storage"]["status"] == "ok"


def test_health_is_503_degraded_when_storage_does_not_answer(host_without_storage):
    status, body = _get_health(host_without_storage)

    assert status == 503
    assert body["status"] == "degraded"
    assert body["dependencies"]["storage"]["status"] == "unavailable"
    assert body["dependencies"]["storage"]["error"]
