"""azure-keyvault-secrets' SecretClient, unchanged, against an emulated vault (challenge auth, RBAC, soft delete)."""

import uuid
from contextlib import AbstractContextManager as ContextManager
from datetime import UTC, datetime, timedelta

import pytest
import requests
from azure.core.exceptions import HttpResponseError, ResourceExistsError, ResourceNotFoundError
from azure.identity import ManagedIdentityCredential
from azure.keyvault.secrets import SecretClient

from devstack.emulator.testing import EmulatorHandle, running_emulator
from devstack.ports import free_port

# The SDK's delete/recover pollers sleep between polls; the emulator completes both at once.
FAST = {"_polling_interval": 0.05}


def secret_client(env: dict[str, str], client_id: str | None = None) -> SecretClient:
    # A loopback vault's host is not a subdomain of vault.azure.net, hence verify_challenge_resource=False.
    return SecretClient(
        env["AZURE_KEYVAULT_URL"], ManagedIdentityCredential(client_id=client_id), verify_challenge_resource=False
    )


@pytest.fixture
def client(emulator_env) -> SecretClient:
    return secret_client(emulator_env)


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def test_set_get_versions_and_update(client):
    name = unique("api-key")
    first = client.set_secret(name, "one", content_type="text/plain", tags={"CredentialId": "primary"})
    second = client.set_secret(name, "two")
    expires = datetime.now(UTC).replace(microsecond=0) + timedelta(days=30)

    updated = client.update_secret_properties(
        name, second.properties.version, tags={"CredentialId": "secondary"}, expires_on=expires, content_type="json"
    )

    assert client.get_secret(name).value == "two"
    assert client.get_secret(name, first.properties.version).value == "one"
    assert first.properties.content_type == "text/plain"
    assert first.properties.recovery_level == "Recoverable+Purgeable"
    assert first.id.startswith(client.vault_url.rstrip("/") + f"/secrets/{name}/")
    assert {item.version for item in client.list_properties_of_secret_versions(name)} == {
        first.properties.version,
        second.properties.version,
    }
    assert updated.tags == {"CredentialId": "secondary"}
    assert updated.expires_on == expires
    assert updated.content_type == "json"
    assert client.get_secret(name).properties.tags == {"CredentialId": "secondary"}


def test_listing_pages_by_absolute_next_links(client):
    prefix = unique("page")
    names = {f"{prefix}-{index:02d}" for index in range(12)}
    for name in names:
        client.set_secret(name, "v")

    pages = [list(page) for page in client.list_properties_of_secrets(max_page_size=5).by_page()]
    listed = [item.name for page in pages for item in page]

    assert names <= set(listed)
    assert len(listed) == len(set(listed))
    assert all(len(page) <= 5 for page in pages)
    assert len(pages) >= 3


def test_soft_delete_reserves_the_name_until_recover(client):
    name = unique("rotating")
    client.set_secret(name, "v1")

    deleted = client.begin_delete_secret(name, **FAST).result()
    with pytest.raises(ResourceExistsError) as conflict:
        client.set_secret(name, "v2")
    listed_deleted = {item.name for item in client.list_deleted_secrets()}
    fetched_deleted = client.get_deleted_secret(name)
    with pytest.raises(ResourceNotFoundError):
        client.get_secret(name)
    client.begin_recover_deleted_secret(name, **FAST).wait()

    assert deleted.recovery_id.endswith(f"/deletedsecrets/{name}")
    assert deleted.scheduled_purge_date - deleted.deleted_date == timedelta(days=90)
    assert conflict.value.status_code == 409
    assert "ObjectIsDeletedButRecoverable" in str(conflict.value)
    assert name in listed_deleted
    assert fetched_deleted.id == deleted.id
    assert client.get_secret(name).value == "v1"


def test_a_deletion_in_progress_answers_object_is_being_deleted(monkeypatch):
    with running_emulator(timings={"keyVaultDeletionSeconds": 0.5}) as slow:
        for key, value in slow.env.items():
            monkeypatch.setenv(key, value)
        client = secret_client(slow.env)
        client.set_secret("slow", "v1")

        poller = client.begin_delete_secret("slow", **FAST)
        with pytest.raises(ResourceExistsError) as in_progress:
            client.set_secret("slow", "v2")
        poller.wait()
        with pytest.raises(ResourceExistsError) as settled:
            client.set_secret("slow", "v2")

    assert "ObjectIsBeingDeleted" in str(in_progress.value)
    assert "ObjectIsDeletedButRecoverable" in str(settled.value)
    assert poller.done()


def test_purge_frees_the_name(client):
    name = unique("purged")
    client.set_secret(name, "v1")
    client.begin_delete_secret(name, **FAST).wait()

    client.purge_deleted_secret(name)

    with pytest.raises(ResourceNotFoundError):
        client.get_deleted_secret(name)
    assert client.set_secret(name, "v2").value == "v2"


def test_disabled_secret_cannot_be_read(client):
    name = unique("disabled")
    client.set_secret(name, "hidden")
    client.update_secret_properties(name, enabled=False)

    with pytest.raises(HttpResponseError) as refused:
        client.get_secret(name)

    assert refused.value.status_code == 403
    assert refused.value.error.code == "Forbidden"
    assert refused.value.error.message == "Operation get is not allowed on a disabled secret."
    assert [item.enabled for item in client.list_properties_of_secrets() if item.name == name] == [False]


def test_invalid_name_and_oversized_value_are_bad_parameters(client):
    with pytest.raises(HttpResponseError) as bad_name:
        client.set_secret("no_underscores", "v")
    with pytest.raises(HttpResponseError) as too_big:
        client.set_secret(unique("big"), "x" * (25 * 1024 + 1))

    assert (bad_name.value.status_code, bad_name.value.error.code) == (400, "BadParameter")
    assert (too_big.value.status_code, too_big.value.error.code) == (400, "BadParameter")


def test_principal_without_secret_data_actions_is_forbidden(emulator_env, client):
    name = unique("guarded")
    client.set_secret(name, "v")
    reader = secret_client(emulator_env, emulator_env["DEMO_READER_CLIENT_ID"])

    with pytest.raises(HttpResponseError) as refused:
        reader.get_secret(name)

    assert refused.value.status_code == 403
    assert refused.value.error.code == "Forbidden"
    assert "Action: 'Microsoft.KeyVault/vaults/secrets/getSecret/action'" in refused.value.error.message
    assert "ForbiddenByRbac" in str(refused.value)


def test_request_without_token_gets_the_challenge(emulator_env):
    response = requests.get(f"{emulator_env['AZURE_KEYVAULT_URL'].rstrip('/')}/secrets?api-version=7.5", timeout=10)

    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == (
        f'Bearer authorization="https://login.windows.net/{emulator_env["AZURE_TENANT_ID"]}", '
        'resource="https://vault.azure.net"'
    )
    assert response.json() == {
        "error": {"code": "Unauthorized", "message": "AKV10000: Request is missing a Bearer or PoP token."}
    }


def test_a_state_file_keeps_secrets_versions_and_soft_deleted_ones_across_restarts(tmp_path, monkeypatch):
    state_file = tmp_path / "state.json"
    vault_ports = {"kv-demo": free_port()}

    def started() -> ContextManager[EmulatorHandle]:
        return running_emulator(state_file=state_file, vault_ports=vault_ports)

    with started() as emulator:
        for name, value in emulator.env.items():
            monkeypatch.setenv(name, value)
        client = secret_client(emulator.env)
        first = client.set_secret("api-key", "one", content_type="text/plain", tags={"CredentialId": "primary"})
        second = client.set_secret("api-key", "two", tags={"CredentialId": "secondary"})
        client.update_secret_properties("api-key", first.properties.version, enabled=False)
        client.set_secret("old-key", "gone soon")
        deleted_before = client.begin_delete_secret("old-key", **FAST).result()
        vault_url = emulator.vault_url

    with started() as restarted:
        for name, value in restarted.env.items():
            monkeypatch.setenv(name, value)
        assert restarted.vault_url == vault_url
        client = secret_client(restarted.env)
        latest = client.get_secret("api-key")
        versions = {item.version: item for item in client.list_properties_of_secret_versions("api-key")}
        deleted = client.get_deleted_secret("old-key")
        client.begin_recover_deleted_secret("old-key", **FAST).wait()
        recovered = client.get_secret("old-key")

    assert (latest.value, latest.properties.version, latest.properties.tags) == (
        "two",
        second.properties.version,
        {"CredentialId": "secondary"},
    )
    assert set(versions) == {first.properties.version, second.properties.version}
    assert versions[first.properties.version].enabled is False
    assert versions[first.properties.version].content_type == "text/plain"
    assert versions[first.properties.version].tags == {"CredentialId": "primary"}
    assert versions[first.properties.version].created_on == first.properties.created_on
    assert (deleted.deleted_date, deleted.scheduled_purge_date) == (
        deleted_before.deleted_date,
        deleted_before.scheduled_purge_date,
    )
    assert recovered.value == "gone soon"


def test_without_a_state_file_every_start_has_an_empty_vault(emulator_env):
    client = secret_client(emulator_env)
    client.set_secret("api-key", "one")

    with running_emulator() as other:
        assert other.vault_url != emulator_env["AZURE_KEYVAULT_URL"]
        assert other.state.extensions == {}
