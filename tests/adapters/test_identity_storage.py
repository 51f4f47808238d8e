"""The storage adapters over identity-based storage, as the broker runs in Azure: only
AzureWebJobsStorage__queueServiceUri / __tableServiceUri / __credential / __clientId, tokens from the emulator's
managed-identity endpoint through azure-identity, Azurite over HTTPS with OAuth, trust through a CA bundle that holds
the emulator's CA and the system roots. No connection string and no account key anywhere on the app's side.
"""

from __future__ import annotations

import base64
import json
import re
import uuid
from collections.abc import Iterator

import pytest
import requests
from azure.core.exceptions import ClientAuthenticationError, ServiceRequestError
from azure.identity import ManagedIdentityCredential

from devstack.ca_bundle import system_ca_file
from devstack.emulator.testing import running_emulator
from shared.adapters.identity import broker_credential, storage_credential
from shared.adapters.queues import JsonQueue
from shared.adapters.run_store import RunStore
from shared.adapters.storage import StorageNotConfiguredError, probe_queue_service, queue_service_client
from shared.adapters.tables import DocumentTable
from shared.azure_errors import RecordChangedError
from shared.config import Settings, StorageSettings
from tests.identity_storage import STORAGE, IdentityStorage, identity_storage

PEM_BLOCK = re.compile(r"-----BEGIN CERTIFICATE-----.+?-----END CERTIFICATE-----", re.DOTALL)


@pytest.fixture(scope="module")
def storage(tmp_path_factory) -> Iterator[IdentityStorage]:
    with running_emulator() as emulator, identity_storage(emulator, log_dir=tmp_path_factory.mktemp("azurite")) as up:
        yield up


@pytest.fixture
def app_env(storage, monkeypatch) -> dict[str, str]:
    """The app's environment: identity settings only (what `make run` and infra/ give it)."""
    monkeypatch.delenv(STORAGE, raising=False)
    env = storage.env()
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    # Credentials are made once per process and read IDENTITY_ENDPOINT when made: start from this emulator's.
    storage_credential.cache_clear()
    broker_credential.cache_clear()
    yield env
    storage_credential.cache_clear()
    broker_credential.cache_clear()


@pytest.fixture
def settings(app_env) -> StorageSettings:
    return Settings.from_env().storage


def _name(prefix: str) -> str:
    return f"{prefix}{uuid.uuid4().hex[:12]}"


def test_the_app_reads_an_identity_based_connection_with_no_connection_string(settings, storage):
    assert settings.connection_string is None
    assert settings.identity_based
    assert settings.queue_service_uri == storage.azurite.queue_service_uri
    assert settings.queue_service_uri.startswith("https://")
    assert settings.credential.managed_identity
    assert settings.credential.client_id == storage.broker_client_id


def test_queue_messages_go_over_tokens_and_arrive_base64_json(settings, storage):
    name = _name("q")
    JsonQueue.open(settings, name).send({"runId": "r1", "step": "provision"})

    [message] = storage.queue(name).receive_messages()

    assert json.loads(base64.b64decode(message.content)) == {"runId": "r1", "step": "provision"}


def test_tables_keep_documents_and_etags_over_tokens(settings):
    table = DocumentTable.open(settings, _name("t"))
    etag = table.create("run", "r1", {"v": 1}, {"Status": "Accepted"})
    table.replace("run", "r1", {"v": 2}, {"Status": "Succeeded"}, etag)

    with pytest.raises(RecordChangedError):
        table.replace("run", "r1", {"v": 3}, {}, etag)
    assert table.get("run", "r1").document == {"v": 2}
    assert table.query("run", {"Status": "Succeeded"}, page_size=5).documents == [{"v": 2}]


def test_the_run_store_claims_over_an_identity_based_table(settings):
    store = RunStore(DocumentTable.open(settings, _name("runs")))

    assert store.claim_poison("message-1") is True
    assert store.claim_poison("message-1") is False  # the second claim finds the first one's row


def test_the_health_probe_answers_over_tokens(settings):
    probe_queue_service(settings)


def test_the_tokens_come_from_the_managed_identity_endpoint_for_the_named_identity(app_env, storage, monkeypatch):
    """A client id the endpoint does not know gets no token, so nothing reaches storage: the setting is used."""
    monkeypatch.setenv(f"{STORAGE}__clientId", str(uuid.uuid4()))
    storage_credential.cache_clear()
    before = _identity_requests(storage)

    with pytest.raises(ClientAuthenticationError):
        probe_queue_service(Settings.from_env().storage)

    assert _identity_requests(storage) > before


def test_azurite_refuses_requests_without_a_storage_token(app_env, storage):
    """OAuth is on and enforced: no credential, or a token for another audience, is refused."""
    listing = f"{storage.azurite.queue_service_uri}?comp=list"
    anonymous = requests.get(listing, verify=storage.ca_bundle, timeout=10)
    arm_token = storage.emulator.credential().get_token("https://management.azure.com/.default").token
    wrong_audience = requests.get(
        listing,
        headers={"Authorization": f"Bearer {arm_token}", "x-ms-version": "2021-02-12"},
        verify=storage.ca_bundle,
        timeout=10,
    )

    assert anonymous.status_code == 403
    assert wrong_audience.status_code == 403
    assert "AuthenticationFailed" in wrong_audience.text


def test_a_bundle_with_only_the_system_roots_does_not_trust_azurite(settings, storage, monkeypatch):
    """The certificate is the emulator CA's, not a public one: the combined bundle is what makes it work."""
    system = system_ca_file({})
    assert system is not None
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(system))

    client = queue_service_client(settings, retry_total=0)

    with pytest.raises(ServiceRequestError, match="CERTIFICATE_VERIFY_FAILED"):
        next(iter(client.list_queues(results_per_page=1)), None)


def test_the_ca_bundle_holds_the_emulator_ca_and_every_system_root(storage):
    bundle = _certificates(storage.ca_bundle)

    assert bundle[0] == _certificates(storage.emulator.server.tls.ca_cert)[0]
    assert set(_certificates(system_ca_file({}))) <= set(bundle)
    assert len(bundle) > 1


def test_without_a_connection_string_or_service_uri_the_error_names_both_settings():
    empty = StorageSettings(connection_string=None, queue_service_uri=None, table_service_uri=None)

    with pytest.raises(StorageNotConfiguredError, match="AzureWebJobsStorage__queueServiceUri"):
        JsonQueue.open(empty, "q")
    with pytest.raises(StorageNotConfiguredError, match="AzureWebJobsStorage__tableServiceUri"):
        DocumentTable.open(empty, "t")


def _identity_requests(storage: IdentityStorage) -> int:
    counts = storage.emulator.admin.requests(limit=1)["counts"]
    return sum(count for route, count in counts.items() if "/msi/token" in route)


def _certificates(path) -> list[str]:
    """The PEM certificate blocks of a file, whitespace removed (compared as text: some system roots carry serial
    numbers newer cryptography releases warn about)."""
    return ["".join(block.split()) for block in PEM_BLOCK.findall(path.read_text(encoding="utf-8"))]


def test_the_identity_endpoints_storage_token_carries_what_azurite_basic_oauth_checks(app_env, storage):
    """issuer under https://sts.windows.net/, audience https://storage.azure.com, iat/nbf/exp; the broker's oid."""
    token = ManagedIdentityCredential(client_id=storage.broker_client_id).get_token(
        "https://storage.azure.com/.default"
    )
    payload = token.token.split(".")[1]
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))

    assert claims["iss"].startswith("https://sts.windows.net/")
    assert claims["aud"] == "https://storage.azure.com"
    assert claims["iat"] <= claims["nbf"] < claims["exp"]
    assert claims["oid"] == storage.emulator.env["DEMO_BROKER_OBJECT_ID"]
