"""The vault store's own rules: limits, soft delete timing and retention, without HTTP in the way."""

import pytest

from devstack.emulator.keyvault_store import (
    MAX_TAGS,
    MAX_VALUE_BYTES,
    RECOVERABLE_DAYS,
    KeyVaultError,
    SecretChanges,
    SecretStore,
)


class Clock:
    def __init__(self) -> None:
        self.now = 1_700_000_000.0

    def __call__(self) -> float:
        return self.now


def error_of(call, *args) -> KeyVaultError:
    with pytest.raises(KeyVaultError) as caught:
        call(*args)
    return caught.value


def test_each_set_adds_a_version_and_get_finds_latest_or_named():
    store = SecretStore()
    _, first = store.set("api-key", "one", SecretChanges())
    _, second = store.set("API-KEY", "two", SecretChanges(tags={"CredentialId": "primary"}))

    assert store.get("api-key")[1].value == "two"
    assert store.get("Api-Key", first.version.upper())[1].value == "one"
    assert [version.version for version in store.versions("api-key")] == [first.version, second.version]
    assert store.list()[0].name == "api-key"


@pytest.mark.parametrize("name", ["", "has_underscore", "dot.ted", "x" * 128, "sp ace"])
def test_invalid_names_are_bad_parameters(name):
    error = error_of(SecretStore().set, name, "v", SecretChanges())

    assert (error.status, error.code) == (400, "BadParameter")
    assert error.message == f"The request URI contains an invalid name: {name}"


def test_value_and_tag_limits():
    store = SecretStore()
    store.set("big", "x" * MAX_VALUE_BYTES, SecretChanges())

    assert error_of(store.set, "big", "x" * (MAX_VALUE_BYTES + 1), SecretChanges()).code == "BadParameter"
    too_many = {f"t{index}": "v" for index in range(MAX_TAGS + 1)}
    assert error_of(SecretChanges(tags=too_many).validate).code == "BadParameter"
    assert error_of(SecretChanges(content_type="c" * 256).validate).code == "BadParameter"
    assert error_of(SecretChanges.from_body, {"attributes": {"exp": "tomorrow"}}).code == "BadParameter"


def test_deleted_name_is_reserved_until_recovered():
    store = SecretStore()
    store.set("token", "v1", SecretChanges())
    deleted = store.delete("token")

    conflict = error_of(store.set, "token", "v2", SecretChanges())
    assert (conflict.status, conflict.code, conflict.inner_code) == (409, "Conflict", "ObjectIsDeletedButRecoverable")
    assert conflict.body()["error"]["innererror"] == {"code": "ObjectIsDeletedButRecoverable"}
    assert deleted.scheduled_purge_date - deleted.deleted_date == RECOVERABLE_DAYS * 86400
    assert error_of(store.get, "token").code == "SecretNotFound"

    store.recover("token")
    assert store.get("token")[1].value == "v1"
    assert error_of(store.get_deleted, "token").message == "Deleted Secret not found"


def test_a_slow_deletion_is_neither_live_nor_deleted_until_it_completes():
    clock = Clock()
    store = SecretStore(clock=clock, deletion_seconds=3)
    store.set("token", "v1", SecretChanges())
    store.delete("token")

    being_deleted = error_of(store.set, "token", "v2", SecretChanges())
    assert (being_deleted.status, being_deleted.inner_code) == (409, "ObjectIsBeingDeleted")
    assert error_of(store.get_deleted, "token").status == 404
    assert error_of(store.recover, "token").inner_code == "ObjectIsBeingDeleted"
    assert store.list_deleted() == []

    clock.now += 3
    assert store.get_deleted("token").secret.name == "token"
    assert error_of(store.set, "token", "v2", SecretChanges()).inner_code == "ObjectIsDeletedButRecoverable"


def test_purge_frees_the_name_and_retention_purges_by_itself():
    clock = Clock()
    store = SecretStore(clock=clock)
    for name in ("purged", "expired"):
        store.set(name, "v", SecretChanges())
        store.delete(name)

    store.purge("purged")
    store.set("purged", "again", SecretChanges())
    clock.now += RECOVERABLE_DAYS * 86400

    assert store.list_deleted() == []
    store.set("expired", "again", SecretChanges())


def test_update_changes_only_what_it_names():
    clock = Clock()
    store = SecretStore(clock=clock)
    _, version = store.set("s", "v", SecretChanges(content_type="text/plain", tags={"a": "1"}, expires=1_800_000_000))
    clock.now += 10

    store.update("s", None, SecretChanges(enabled=False))

    assert (version.enabled, version.content_type, version.tags, version.expires) == (
        False,
        "text/plain",
        {"a": "1"},
        1_800_000_000,
    )
    assert version.updated == version.created + 10
