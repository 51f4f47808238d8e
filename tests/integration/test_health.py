"""GET /api/health over HTTP, through the local Functions host running the real app on Azurite and the emulator."""

import json
import urllib.error
import urllib.request
from collections.abc import Iterator

import pytest

from devstack.azurite import ACCOUNT_KEY, ACCOUNT_NAME
from devstack.emulator.testing import EmulatorHandle, running_emulator
from devstack.host.process import HostProcess
from devstack.ports import free_port
from shared.version import broker_version
from tests.integration.conftest import start_broker_host

pytestmark = pytest.mark.integration


def _get_health(host: HostProcess) -> tuple[int, dict]:
    try:
        with urllib.request.urlopen(f"{host.url}/api/health", timeout=30) as response:
            return response.status, json.load(response)
    except urllib.error.HTTPError as error:
        return error.code, json.load(error)


@pytest.fixture(scope="module")
def emulator() -> Iterator[EmulatorHandle]:
    with running_emulator() as running:
        yield running


@pytest.fixture(scope="module")
def healthy_host(emulator, azurite, tmp_path_factory) -> Iterator[HostProcess]:
    host = start_broker_host(emulator, azurite.connection_string, tmp_path_factory.mktemp("health") / "host.log")
    yield host
    host.stop()


def test_health_is_anonymous_and_reports_version_and_every_dependency(healthy_host):
    status, body = _get_health(healthy_host)

    assert status == 200
    assert body["status"] == "healthy"
    assert body["version"] == broker_version()
    assert {name: dependency["status"] for name, dependency in body["dependencies"].items()} == {
        "storage": "ok",
        "azureResourceManager": "ok",
        "keyVault": "ok",
    }


def test_health_is_503_degraded_naming_azure_resource_manager_when_it_fails(healthy_host, emulator):
    emulator.admin.add_fault(pathRegex="Microsoft.Authorization/roleDefinitions", status=500, count=1)
    try:
        status, body = _get_health(healthy_host)
    finally:
        emulator.admin.clear_faults()

    assert status == 503
    assert body["dependencies"]["azureResourceManager"]["status"] == "unavailable"
    assert body["dependencies"]["keyVault"]["status"] == "ok"


def test_health_is_503_degraded_when_storage_does_not_answer(emulator, tmp_path):
    closed = free_port()
    unreachable = (
        f"DefaultEndpointsProtocol=http;AccountName={ACCOUNT_NAME};AccountKey={ACCOUNT_KEY};"
        f"QueueEndpoint=http://127.0.0.1:{closed}/{ACCOUNT_NAME};TableEndpoint=http://127.0.0.1:{closed}/{ACCOUNT_NAME};"
    )
    host = start_broker_host(emulator, unreachable, tmp_path / "host.log")
    try:
        status, body = _get_health(host)
    finally:
        host.stop()

    assert status == 503
    assert body["status"] == "degraded"
    assert body["dependencies"]["storage"]["status"] == "unavailable"
    assert body["dependencies"]["storage"]["error"]
    assert body["dependencies"]["azureResourceManager"]["status"] == "ok"
