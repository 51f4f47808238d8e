"""How the app reads its storage connection and picks the credential, as the Functions host does (no network)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from azure.identity import ClientSecretCredential, DefaultAzureCredential, ManagedIdentityCredential

from shared.adapters.identity import broker_credential, storage_credential
from shared.config import StorageCredentialSettings, StorageSettings

QUEUE_URI = "https://acct.queue.core.windows.net"
TABLE_URI = "https://acct.table.core.windows.net"


@pytest.fixture(autouse=True)
def fresh_credentials() -> Iterator[None]:
    storage_credential.cache_clear()
    broker_credential.cache_clear()
    yield
    storage_credential.cache_clear()
    broker_credential.cache_clear()


def test_identity_based_settings_as_infra_sets_them():
    settings = StorageSettings.from_env(
        {
            "AzureWebJobsStorage__queueServiceUri": QUEUE_URI,
            "AzureWebJobsStorage__tableServiceUri": TABLE_URI,
            "AzureWebJobsStorage__blobServiceUri": "https://acct.blob.core.windows.net",
            "AzureWebJobsStorage__credential": "managedidentity",
            "AzureWebJobsStorage__clientId": "client-1",
        }
    )

    assert settings.connection_string is None
    assert settings.identity_based
    assert (settings.queue_service_uri, settings.table_service_uri) == (QUEUE_URI, TABLE_URI)
    assert settings.credential == StorageCredentialSettings(credential="managedidentity", client_id="client-1")


def test_a_connection_string_wins_over_identity_settings():
    settings = StorageSettings.from_env(
        {"AzureWebJobsStorage": "UseDevelopmentStorage=true", "AzureWebJobsStorage__queueServiceUri": QUEUE_URI}
    )

    assert settings.connection_string == "UseDevelopmentStorage=true"
    assert not settings.identity_based


def test_property_names_match_ignoring_case_and_an_account_name_names_both_services():
    settings = StorageSettings.from_env(
        {"AzureWebJobsStorage__AccountName": "acct", "azurewebjobsstorage__CREDENTIAL": "ManagedIdentity"}
    )

    assert (settings.queue_service_uri, settings.table_service_uri) == (QUEUE_URI, TABLE_URI)
    assert settings.credential.managed_identity


def test_empty_values_count_as_unset():
    settings = StorageSettings.from_env({"AzureWebJobsStorage": "", "AzureWebJobsStorage__queueServiceUri": " "})

    assert (settings.connection_string, settings.queue_service_uri, settings.identity_based) == (None, None, False)


def test_managed_identity_with_a_client_id_is_that_user_assigned_identity():
    credential = storage_credential(StorageCredentialSettings(credential="managedidentity", client_id="client-1"))

    assert isinstance(credential, ManagedIdentityCredential)
    assert storage_credential(StorageCredentialSettings(credential="managedidentity", client_id="client-1")) is (
        credential
    )  # one per process: its token cache is shared by every client


def test_managed_identity_may_be_named_by_resource_or_object_id_but_only_one_way():
    by_resource = StorageCredentialSettings(credential="managedidentity", managed_identity_resource_id="/sub/x")
    by_object = StorageCredentialSettings(credential="managedidentity", managed_identity_object_id="object-1")
    both = StorageCredentialSettings(credential="managedidentity", client_id="c", managed_identity_object_id="o")

    assert isinstance(storage_credential(by_resource), ManagedIdentityCredential)
    assert isinstance(storage_credential(by_object), ManagedIdentityCredential)
    with pytest.raises(ValueError, match="Only one of clientId"):
        storage_credential(both)


def test_a_tenant_client_and_secret_sign_in_as_that_service_principal():
    credential = storage_credential(
        StorageCredentialSettings(tenant_id="tenant", client_id="client", client_secret="secret")
    )

    assert isinstance(credential, ClientSecretCredential)


def test_a_client_id_alone_goes_to_the_default_chain_and_nothing_to_the_brokers_own_credential():
    assert isinstance(storage_credential(StorageCredentialSettings(client_id="client-1")), DefaultAzureCredential)
    assert storage_credential(StorageCredentialSettings()) is broker_credential()


def test_an_object_id_without_managed_identity_is_refused():
    with pytest.raises(ValueError, match="need credential=managedidentity"):
        storage_credential(StorageCredentialSettings(managed_identity_object_id="object-1"))
