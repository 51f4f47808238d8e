import pytest

from shared.adapters.keyvault import KeyVaultAdapter
from shared.azure_errors import AzureCallError


@pytest.fixture
def vault(emulator) -> KeyVaultAdapter:
    return KeyVaultAdapter(emulator.vault_url, emulator.credential())


def test_a_secret_is_stored_with_its_content_type_and_tags(vault):
    stored = vault.set_secret("ep-primary", "key-1", content_type="text/plain", tags={"keyType": "primary"})

    assert stored.id.endswith(f"/secrets/ep-primary/{stored.version}")
    assert (stored.content_type, dict(stored.tags), stored.enabled) == ("text/plain", {"keyType": "primary"}, True)
    assert vault.get_secret_value("ep-primary") == "key-1"
    assert [secret.name for secret in vault.list_secrets()] == ["ep-primary"]


def test_each_write_is_a_new_version(vault):
    first = vault.set_secret("ep-primary", "key-1", content_type="text/plain", tags={})
    second = vault.set_secret("ep-primary", "key-2", content_type="text/plain", tags={})

    assert first.version != second.version
    assert vault.get_secret_value("ep-primary") == "key-2"


def test_a_soft_deleted_name_is_recovered_then_written(vault):
    vault.set_secret("ep-primary", "key-1", content_type="text/plain", tags={})
    vault.delete_secret("ep-primary")

    vault.set_secret("ep-primary", "key-2", content_type="text/plain", tags={})

    assert vault.get_secret_value("ep-primary") == "key-2"


def test_deleting_an_absent_secret_is_fine_and_reading_it_is_none(vault):
    vault.delete_secret("never-written")

    assert vault.get_secret_value("never-written") is None


def test_a_disabled_secret_cannot_be_read(vault):
    vault.set_secret("ep-primary", "key-1", content_type="text/plain", tags={})
    vault.set_enabled("ep-primary", False)

    with pytest.raises(AzureCallError) as raised:
        vault.get_secret_value("ep-primary")

    assert raised.value.status == 403


def test_a_principal_without_data_actions_is_refused(emulator):
    reader = KeyVaultAdapter(emulator.vault_url, emulator.credential(emulator.env["DEMO_READER_OBJECT_ID"]))

    with pytest.raises(AzureCallError) as raised:
        reader.probe()

    assert raised.value.status == 403


def test_a_secret_is_read_with_its_version_and_a_version_is_retagged_in_place(vault):
    first = vault.set_secret("ep-primary", "key-1", content_type="text/plain", tags={"keyType": "primary"})

    stored, value = vault.read_secret("ep-primary")
    vault.set_version_tags("ep-primary", stored.version, {**stored.tags, "keyFingerprint": "sha256:abc"})

    assert (stored.version, value) == (first.version, "key-1")
    [listed] = vault.list_secrets()
    assert dict(listed.tags) == {"keyType": "primary", "keyFingerprint": "sha256:abc"}
    assert vault.read_secret("ep-primary")[0].version == first.version, "retagging adds no version"
    assert vault.get_secret_value("ep-primary") == "key-1"
    assert vault.read_secret("never-written") is None
