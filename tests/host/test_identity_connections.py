"""Identity-based storage connections in the local host, as the Functions host resolves and serves them.

The process tests run tests/host/apps/identity_app with AzureWebJobsStorage given only as __queueServiceUri +
__credential=managedidentity + __clientId against Azurite over HTTPS with OAuth (tokens from the emulator's
managed-identity endpoint), and a second connection, LegacyStorage, as a connection string to the HTTP Azurite:
both modes in one host. Resolution and credential rules are checked without processes.
"""

from __future__ import annotations

import asyncio
import base64
import json
import uuid

import azure.functions as func
import pytest
from azure.identity.aio import ClientSecretCredential, DefaultAzureCredential, ManagedIdentityCredential

from devstack.emulator.testing import running_emulator
from devstack.host.connections import (
    ConnectionSettingError,
    CredentialOptions,
    async_credential,
    resolve_storage_connection,
)
from devstack.host.indexing import FunctionIndexError, QueueTriggerSpec, index_functions
from tests.identity_storage import identity_storage

from .helpers import APPS, b64, open_queue, receive_all, running_host, wait_for_markers

QUEUE_URI = "https://acct.queue.core.windows.net"

# -- resolution, as the Functions host does it --------------------------------------------------------------------


def test_a_value_is_a_connection_string_and_wins_over_identity_settings():
    resolved = resolve_storage_connection(
        "AzureWebJobsStorage",
        {"AzureWebJobsStorage": "UseDevelopmentStorage=true", "AzureWebJobsStorage__queueServiceUri": QUEUE_URI},
    )

    assert resolved.connection_string == "UseDevelopmentStorage=true"
    assert not resolved.identity_based
    assert resolved.describe() == "AzureWebJobsStorage: connection string"  # never the string itself


def test_identity_settings_name_the_queue_service_and_the_credential():
    resolved = resolve_storage_connection(
        "AzureWebJobsStorage",
        {
            "AzureWebJobsStorage": "",
            "AzureWebJobsStorage__queueServiceUri": QUEUE_URI,
            "AzureWebJobsStorage__credential": "managedidentity",
            "AzureWebJobsStorage__clientId": "client-1",
        },
    )

    assert resolved.identity_based
    assert resolved.queue_service_uri == QUEUE_URI
    assert resolved.credential == CredentialOptions(credential="managedidentity", client_id="client-1")
    assert resolved.describe() == (
        f"AzureWebJobsStorage: identity-based, {QUEUE_URI}, managed identity (client id client-1)"
    )


def test_the_azurewebjobs_prefixed_setting_is_looked_up_first():
    environ = {"AzureWebJobsOrders__serviceUri": QUEUE_URI, "Orders": "UseDevelopmentStorage=true"}

    resolved = resolve_storage_connection("Orders", environ)

    assert (resolved.setting, resolved.queue_service_uri) == ("AzureWebJobsOrders", QUEUE_URI)


def test_service_uri_is_an_alias_except_for_the_hosts_own_storage():
    assert resolve_storage_connection("Orders", {"Orders__serviceUri": QUEUE_URI}).queue_service_uri == QUEUE_URI
    with pytest.raises(ConnectionSettingError, match="set AzureWebJobsStorage__queueServiceUri"):
        resolve_storage_connection("AzureWebJobsStorage", {"AzureWebJobsStorage__serviceUri": QUEUE_URI})


def test_an_account_name_and_any_case_of_the_property_names_work():
    resolved = resolve_storage_connection(
        "AzureWebJobsStorage", {"AzureWebJobsStorage__ACCOUNTNAME": "acct", "AzureWebJobsStorage__Credential": "x"}
    )

    assert resolved.queue_service_uri == QUEUE_URI
    assert resolved.credential == CredentialOptions(credential="x")
    assert resolved.credential.describe() == "DefaultAzureCredential"


def test_an_undefined_connection_says_what_to_set():
    with pytest.raises(ConnectionSettingError, match="set Missing to a connection string, or Missing__queueServiceUri"):
        resolve_storage_connection("Missing", {})


def test_credentials_are_chosen_as_the_hosts_client_factory_chooses_them():
    asyncio.run(_check_credential_choices())
    with pytest.raises(ConnectionSettingError, match="only one of clientId"):
        async_credential(CredentialOptions(credential="managedidentity", client_id="c", managed_identity_object_id="o"))


async def _check_credential_choices() -> None:
    chosen = [
        async_credential(CredentialOptions(credential="ManagedIdentity", client_id="client-1")),
        async_credential(CredentialOptions(credential="managedidentity", managed_identity_resource_id="/sub/id")),
        async_credential(CredentialOptions(tenant_id="tenant", client_id="client", client_secret="secret")),
        async_credential(CredentialOptions(client_id="client-1")),
        async_credential(CredentialOptions()),
    ]
    try:
        assert [type(credential) for credential in chosen] == [
            ManagedIdentityCredential,
            ManagedIdentityCredential,
            ClientSecretCredential,
            DefaultAzureCredential,
            DefaultAzureCredential,
        ]
    finally:
        for credential in chosen:
            await credential.close()


def test_indexing_accepts_an_identity_based_connection_and_refuses_an_undefined_one():
    [spec] = index_functions(_queue_app(), {"AzureWebJobsStorage__queueServiceUri": QUEUE_URI})

    assert spec.trigger == QueueTriggerSpec("work", "AzureWebJobsStorage")
    with pytest.raises(FunctionIndexError, match="AzureWebJobsStorage__queueServiceUri"):
        index_functions(_queue_app(), {})


def _queue_app() -> func.FunctionApp:
    app = func.FunctionApp()

    @app.queue_trigger(arg_name="msg", queue_name="work", connection="")
    def worker(msg: func.QueueMessage) -> None: ...

    return app


# -- the host serving queue triggers over an identity-based connection ------------------------------------------


@pytest.fixture(scope="module")
def storage(tmp_path_factory):
    with running_emulator() as emulator, identity_storage(emulator, log_dir=tmp_path_factory.mktemp("azurite")) as up:
        yield up


@pytest.fixture(scope="module")
def prefix() -> str:
    return f"i{uuid.uuid4().hex[:10]}"


@pytest.fixture(scope="module")
def host(storage, azurite, marker_dir, prefix, tmp_path_factory):
    env = {
        **storage.env(),
        "LegacyStorage": azurite.connection_string,
        "MARKER_DIR": str(marker_dir),
        "QUEUE_PREFIX": prefix,
    }
    assert "AzureWebJobsStorage" not in env
    with running_host(APPS / "identity_app", env=env, log_dir=tmp_path_factory.mktemp("identity-host")) as running:
        yield running


def test_the_host_resolves_the_default_connection_as_identity_based(host, storage):
    records = [line for line in host.log_text().splitlines() if "storage connection" in line]

    assert any(
        f"AzureWebJobsStorage: identity-based, {storage.azurite.queue_service_uri}, managed identity (client id "
        f"{storage.broker_client_id})" in line
        for line in records
    ), records


def test_a_queue_trigger_runs_on_a_message_sent_with_a_token(host, storage, marker_dir, prefix):
    sent = storage.queue(f"{prefix}-record").send_message(b64("over identity"))

    [marker] = wait_for_markers(marker_dir, "record", 1, where=lambda marker: marker["id"] == sent.id)

    assert (marker["body"], marker["dequeue_count"]) == ("over identity", 1)
    assert storage.queue(f"{prefix}-record").peek_messages() == []  # deleted with a token too


def test_outputs_go_to_their_own_connections_identity_and_connection_string(host, storage, azurite, prefix):
    storage.queue(f"{prefix}-relay").send_message(b64("hello"))

    identity_side = receive_all(storage.queue(f"{prefix}-relayed"), 1)
    legacy_side = receive_all(open_queue(azurite.connection_string, f"{prefix}-legacy"), 1)

    assert [base64.b64decode(text).decode() for text in identity_side] == ["hello (identity)"]
    assert [base64.b64decode(text).decode() for text in legacy_side] == ["hello (connection string)"]
    assert "storage connection LegacyStorage: connection string" in host.log_text()
    assert "AccountKey" not in host.log_text()  # a connection string is never logged


def test_a_failing_message_reaches_its_poison_queue_on_the_identity_based_account(host, storage, marker_dir, prefix):
    storage.queue(f"{prefix}-doomed").send_message(b64(json.dumps({"n": 1})))

    attempts = wait_for_markers(marker_dir, "doomed", 2)
    poisoned = receive_all(storage.queue(f"{prefix}-doomed-poison"), 1)

    assert [attempt["dequeue_count"] for attempt in attempts] == [1, 2]
    assert [json.loads(base64.b64decode(text)) for text in poisoned] == [{"n": 1}]
