"""One vault's secrets: versions, soft delete, recovery and purge, with Key Vault's own limits and errors.

Soft delete is always on, as in every vault created since 2020: a deleted secret keeps its name reserved until it is
recovered or purged, or its retention runs out. A deletion can be made to take a while (`deletion_seconds`), like
the real service, during which the name is neither live nor listed as deleted (409 ObjectIsBeingDeleted on set).
With a state file the stores are saved with the rest of the state (`snapshot()` / `restore()`).
"""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from devstack.emulator.errors import ArmError

RECOVERABLE_DAYS = 90
RECOVERY_LEVEL = "Recoverable+Purgeable"
MAX_VALUE_BYTES = 25 * 1024
MAX_TAGS = 15
MAX_TAG_LENGTH = 256
MAX_CONTENT_TYPE_LENGTH = 255
_SECRET_NAME = re.compile(r"^[0-9A-Za-z-]{1,127}$")
_NOT_FOUND_HINT = (
    "If you recently deleted this secret you may be able to recover it using the correct recovery command. "
    "For help resolving this issue, please see https://go.microsoft.com/fwlink/?linkid=2125182"
)


class KeyVaultError(ArmError):
    """A Key Vault data-plane error: the same envelope as ARM, plus the `innererror` Key Vault adds."""

    def __init__(self, status: int, code: str, message: str, *, inner_code: str | None = None, **kwargs: Any):
        super().__init__(status, code, message, **kwargs)
        self.inner_code = inner_code

    def body(self) -> dict:
        body = super().body()
        if self.inner_code:
            body["error"]["innererror"] = {"code": self.inner_code}
        return body


def bad_parameter(message: str) -> KeyVaultError:
    return KeyVaultError(400, "BadParameter", message)


def check_secret_name(name: str) -> None:
    if not _SECRET_NAME.fullmatch(name):
        raise bad_parameter(f"The request URI contains an invalid name: {name}")


@dataclass
class SecretVersion:
    version: str
    value: str
    created: int
    updated: int
    enabled: bool = True
    not_before: int | None = None
    expires: int | None = None
    content_type: str | None = None
    tags: dict[str, str] | None = None


@dataclass
class StoredSecret:
    name: str
    versions: list[SecretVersion] = field(default_factory=list)

    @property
    def latest(self) -> SecretVersion:
        return self.versions[-1]

    def version(self, version: str) -> SecretVersion | None:
        return next((entry for entry in self.versions if entry.version == version.lower()), None)


@dataclass
class DeletedSecret:
    secret: StoredSecret
    deleted_date: int
    scheduled_purge_date: int
    completes_at: float


@dataclass(frozen=True)
class SecretChanges:
    """What a set or an update asks for; None leaves a property as it is."""

    content_type: str | None = None
    tags: dict[str, str] | None = None
    enabled: bool | None = None
    not_before: int | None = None
    expires: int | None = None

    @classmethod
    def from_body(cls, body: Mapping[str, Any]) -> SecretChanges:
        attributes = body.get("attributes") or {}
        if not isinstance(attributes, Mapping):
            raise bad_parameter("The attributes of the secret are not valid.")
        changes = cls(
            content_type=body.get("contentType"),
            tags=body.get("tags"),
            enabled=attributes.get("enabled"),
            not_before=attributes.get("nbf"),
            expires=attributes.get("exp"),
        )
        changes.validate()
        return changes

    def validate(self) -> None:
        if self.content_type is not None and (
            not isinstance(self.content_type, str) or len(self.content_type) > MAX_CONTENT_TYPE_LENGTH
        ):
            raise bad_parameter(f"The content type must be a string of at most {MAX_CONTENT_TYPE_LENGTH} characters.")
        if self.tags is not None:
            if not isinstance(self.tags, Mapping) or not all(
                isinstance(key, str) and isinstance(value, str) for key, value in self.tags.items()
            ):
                raise bad_parameter("Tags must be a map of strings to strings.")
            if len(self.tags) > MAX_TAGS:
                raise bad_parameter(f"The number of tags ({len(self.tags)}) exceeds the maximum of {MAX_TAGS}.")
            if any(len(key) > MAX_TAG_LENGTH or len(value) > MAX_TAG_LENGTH for key, value in self.tags.items()):
                raise bad_parameter(f"Tag names and values are limited to {MAX_TAG_LENGTH} characters.")
        if self.enabled is not None and not isinstance(self.enabled, bool):
            raise bad_parameter("The 'enabled' attribute must be a boolean.")
        for label, moment in (("nbf", self.not_before), ("exp", self.expires)):
            if moment is not None and (isinstance(moment, bool) or not isinstance(moment, int)):
                raise bad_parameter(f"The '{label}' attribute must be a Unix time in seconds.")

    def apply(self, version: SecretVersion, now: int) -> None:
        if self.content_type is not None:
            version.content_type = self.content_type
        if self.tags is not None:
            version.tags = dict(self.tags)
        if self.enabled is not None:
            version.enabled = self.enabled
        if self.not_before is not None:
            version.not_before = self.not_before
        if self.expires is not None:
            version.expires = self.expires
        version.updated = now


def deletion_seconds(scenario_source: Mapping[str, Any]) -> float:
    """How long a deletion takes in this scenario (`timings.keyVaultDeletionSeconds`, default at once)."""
    return float((scenario_source.get("timings") or {}).get("keyVaultDeletionSeconds", 0.0))


def _secret_from_json(raw: Mapping[str, Any]) -> StoredSecret:
    return StoredSecret(raw["name"], [SecretVersion(**version) for version in raw["versions"]])


def secret_not_found(name: str) -> KeyVaultError:
    return KeyVaultError(
        404, "SecretNotFound", f"A secret with (name/id) {name} was not found in this key vault. " + _NOT_FOUND_HINT
    )


def deleted_secret_not_found() -> KeyVaultError:
    return KeyVaultError(404, "SecretNotFound", "Deleted Secret not found")


class SecretStore:
    def __init__(self, *, clock: Callable[[], float] = time.time, deletion_seconds: float = 0.0) -> None:
        self._clock = clock
        self.deletion_seconds = deletion_seconds
        self._live: dict[str, StoredSecret] = {}
        self._deleted: dict[str, DeletedSecret] = {}

    def snapshot(self) -> dict[str, Any]:
        """Every secret with all its versions and attributes, and the soft-deleted ones, as JSON."""
        return {
            "secrets": [asdict(secret) for secret in self._live.values()],
            "deleted": [asdict(deleted) for deleted in self._deleted.values()],
        }

    def restore(self, snapshot: Mapping[str, Any]) -> None:
        """Load what `snapshot()` wrote, replacing this store's contents."""
        self._live = {raw["name"].lower(): _secret_from_json(raw) for raw in snapshot.get("secrets", ())}
        self._deleted = {}
        for raw in snapshot.get("deleted", ()):
            secret = _secret_from_json(raw["secret"])
            self._deleted[secret.name.lower()] = DeletedSecret(
                secret, raw["deleted_date"], raw["scheduled_purge_date"], raw["completes_at"]
            )

    def set(self, name: str, value: Any, changes: SecretChanges) -> tuple[StoredSecret, SecretVersion]:
        check_secret_name(name)
        if not isinstance(value, str):
            raise bad_parameter("The secret value must be a string.")
        if len(value.encode("utf-8")) > MAX_VALUE_BYTES:
            raise bad_parameter(f"The secret value exceeds the maximum allowed size of {MAX_VALUE_BYTES} bytes.")
        self._raise_if_name_is_deleted(name)
        now = self._now()
        secret = self._live.setdefault(name.lower(), StoredSecret(name))
        version = SecretVersion(uuid.uuid4().hex, value, created=now, updated=now)
        changes.apply(version, now)
        secret.versions.append(version)
        return secret, version

    def get(self, name: str, version: str | None = None) -> tuple[StoredSecret, SecretVersion]:
        check_secret_name(name)
        secret = self._live.get(name.lower())
        if secret is None:
            raise secret_not_found(name)
        if not version:
            return secret, secret.latest
        found = secret.version(version)
        if found is None:
            raise secret_not_found(f"{name}/{version}")
        return secret, found

    def update(self, name: str, version: str | None, changes: SecretChanges) -> tuple[StoredSecret, SecretVersion]:
        secret, found = self.get(name, version)
        changes.apply(found, self._now())
        return secret, found

    def list(self) -> list[StoredSecret]:
        return [self._live[key] for key in sorted(self._live)]

    def versions(self, name: str) -> list[SecretVersion]:
        secret, _ = self.get(name)
        return list(secret.versions)

    def delete(self, name: str) -> DeletedSecret:
        check_secret_name(name)
        secret = self._live.pop(name.lower(), None)
        if secret is None:
            raise secret_not_found(name)
        now = self._clock()
        deleted = DeletedSecret(
            secret,
            deleted_date=int(now),
            scheduled_purge_date=int(now) + RECOVERABLE_DAYS * 86400,
            completes_at=now + self.deletion_seconds,
        )
        self._deleted[name.lower()] = deleted
        return deleted

    def get_deleted(self, name: str) -> DeletedSecret:
        check_secret_name(name)
        deleted = self._settled_deleted().get(name.lower())
        if deleted is None:
            raise deleted_secret_not_found()
        return deleted

    def list_deleted(self) -> list[DeletedSecret]:
        settled = self._settled_deleted()
        return [settled[key] for key in sorted(settled)]

    def recover(self, name: str) -> StoredSecret:
        self._raise_if_being_deleted(name)
        deleted = self.get_deleted(name)
        del self._deleted[name.lower()]
        self._live[name.lower()] = deleted.secret
        return deleted.secret

    def purge(self, name: str) -> None:
        self._raise_if_being_deleted(name)
        self.get_deleted(name)
        del self._deleted[name.lower()]

    def _now(self) -> int:
        return int(self._clock())

    def _settled_deleted(self) -> dict[str, DeletedSecret]:
        """Deleted secrets whose deletion has completed; those past their retention are purged on the way."""
        now = self._clock()
        for key in [key for key, entry in self._deleted.items() if entry.scheduled_purge_date <= now]:
            del self._deleted[key]
        return {key: entry for key, entry in self._deleted.items() if entry.completes_at <= now}

    def _raise_if_being_deleted(self, name: str) -> None:
        deleted = self._deleted.get(name.lower())
        if deleted is not None and deleted.completes_at > self._clock():
            raise KeyVaultError(
                409, "Conflict", f"Secret {name} is currently being deleted.", inner_code="ObjectIsBeingDeleted"
            )

    def _raise_if_name_is_deleted(self, name: str) -> None:
        self._raise_if_being_deleted(name)
        if name.lower() in self._settled_deleted():
            raise KeyVaultError(
                409,
                "Conflict",
                f"Secret {name} is currently in a deleted but recoverable state, and its name cannot be reused; "
                "in this state, the secret can only be recovered or purged.",
                inner_code="ObjectIsDeletedButRecoverable",
            )
