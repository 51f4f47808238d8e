"""Key Vault secrets (implements SecretStorePort): endpoint keys live here and nowhere else.

A name that is soft-deleted is recovered and then written, never purged, so history and recovery stay possible.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime
from ipaddress import ip_address
from typing import Any, TypeVar
from urllib.parse import urlparse

from azure.core.credentials import TokenCredential
from azure.core.exceptions import HttpResponseError, ResourceNotFoundError
from azure.keyvault.secrets import SecretClient, SecretProperties

from shared.azure_errors import AzureCallError
from shared.ports import StoredSecret

T = TypeVar("T")
RECOVERABLE = "ObjectIsDeletedButRecoverable"
DISABLED = "SecretDisabled"


class KeyVaultAdapter:
    def __init__(self, vault_url: str, credential: TokenCredential) -> None:
        # A real vault's challenge names a resource its host belongs to; only a loopback vault (the local emulator)
        # cannot satisfy that check, so it is relaxed there and nowhere else. retry_status=0: a 429 or 5xx comes back
        # at once with its Retry-After, for the step engine to re-queue, instead of being slept on in the function.
        self._client = SecretClient(
            vault_url, credential, verify_challenge_resource=not _is_loopback(vault_url), retry_status=0
        )

    def set_secret(
        self,
        name: str,
        value: str,
        *,
        content_type: str,
        tags: Mapping[str, str],
        expires_on: datetime | None = None,
    ) -> StoredSecret:
        def write() -> Any:
            return self._client.set_secret(
                name, value, content_type=content_type, tags=dict(tags), expires_on=expires_on, enabled=True
            )

        try:
            secret = _call(write)
        except AzureCallError as error:
            if error.code != RECOVERABLE:
                raise
            _call(lambda: self._client.begin_recover_deleted_secret(name).result())
            secret = _call(write)
        return _stored(secret.properties)

    def get_secret_value(self, name: str) -> str | None:
        try:
            return _call(lambda: self._client.get_secret(name)).value
        except AzureCallError as error:
            if error.not_found:
                return None
            raise

    def read_secret(self, name: str) -> tuple[StoredSecret, str] | None:
        """The current version's properties (its version id included) and value; None when the secret is gone."""
        try:
            secret = _call(lambda: self._client.get_secret(name))
        except AzureCallError as error:
            if error.not_found:
                return None
            raise
        return _stored(secret.properties), secret.value or ""

    def set_version_tags(self, name: str, version: str, tags: Mapping[str, str]) -> None:
        """Replace the tags of one version; its value and other attributes stay, and no version is added."""
        _call(lambda: self._client.update_secret_properties(name, version, tags=dict(tags)))

    def get_secret(self, name: str) -> StoredSecret | None:
        """The current version's properties (the value is read by the service call but not kept); a disabled
        secret, whose current version Key Vault will not return, is reported by name as disabled."""
        try:
            return _stored(_call(lambda: self._client.get_secret(name)).properties)
        except AzureCallError as error:
            if error.not_found:
                return None
            if error.code != DISABLED:
                raise
        return StoredSecret(
            id=f"{self._client.vault_url}/secrets/{name}",
            name=name,
            version="",
            enabled=False,
            expires_on=None,
            tags={},
            content_type=None,
        )

    def list_secrets(self) -> list[StoredSecret]:
        return _call(lambda: [_stored(properties) for properties in self._client.list_properties_of_secrets()])

    def probe(self) -> None:
        """Raise unless the vault answers an authenticated list (one page of one secret's properties, no value)."""
        pages = self._client.list_properties_of_secrets(max_page_size=1, retry_total=0).by_page()
        _call(lambda: next(iter(next(pages, [])), None))

    def set_enabled(self, name: str, enabled: bool) -> None:
        _call(lambda: self._client.update_secret_properties(name, enabled=enabled))

    def delete_secret(self, name: str) -> None:
        try:
            _call(lambda: self._client.begin_delete_secret(name))
        except AzureCallError as error:
            if not error.not_found:
                raise


def _call(action: Callable[[], T]) -> T:
    try:
        return action()
    except ResourceNotFoundError as error:
        raise AzureCallError(404, "SecretNotFound", _first_line(error)) from error
    except HttpResponseError as error:
        raise AzureCallError(
            error.status_code, _most_specific_code(error), _first_line(error), retry_after=_retry_after(error)
        ) from error


def _retry_after(error: HttpResponseError) -> float | None:
    """Key Vault's Retry-After in seconds (it sends whole seconds), when the answer carries one."""
    value = error.response.headers.get("Retry-After") if error.response is not None else None
    try:
        seconds = float(value or "")
    except ValueError:
        return None
    return seconds if seconds > 0 else None


def _most_specific_code(error: HttpResponseError) -> str:
    # Key Vault answers a generic code ("Conflict", "Forbidden") with the telling one inside: innererror.code.
    inner = getattr(error.error, "innererror", None) or {}
    return inner.get("code") or getattr(error.error, "code", None) or f"Http{error.status_code}"


def _first_line(error: HttpResponseError) -> str:
    return getattr(error.error, "message", None) or (error.message or "").splitlines()[0]


def _stored(properties: SecretProperties) -> StoredSecret:
    return StoredSecret(
        id=properties.id,
        name=properties.name,
        version=properties.version,
        enabled=bool(properties.enabled),
        expires_on=properties.expires_on,
        tags=properties.tags or {},
        content_type=properties.content_type,
    )


def _is_loopback(url: str) -> bool:
    host = urlparse(url).hostname or ""
    if host == "localhost":
        return True
    try:
        return ip_address(host).is_loopback
    except ValueError:
        return False
