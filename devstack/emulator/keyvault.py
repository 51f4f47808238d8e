"""A Key Vault secrets data plane, one aiohttp app per scenario vault, served at the root of its own host:port.

It speaks the challenge protocol azure-keyvault-secrets expects: a request without a token gets 401 and a
WWW-Authenticate header naming the tenant and the vault resource, then requests carry a Key Vault token. Every
operation needs its secrets data action at the secret's scope (which inherits from the vault's ARM scope).
"""

from __future__ import annotations

import base64
import binascii
import bisect
import json
from collections.abc import Awaitable, Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, TypeVar

from aiohttp import web

from devstack.emulator.errors import ArmError, request_id_headers
from devstack.emulator.keyvault_store import (
    RECOVERABLE_DAYS,
    RECOVERY_LEVEL,
    DeletedSecret,
    KeyVaultError,
    SecretChanges,
    SecretStore,
    SecretVersion,
    StoredSecret,
    bad_parameter,
)
from devstack.emulator.middleware import PRINCIPAL_KEY
from devstack.emulator.rbac import Authorizer
from devstack.emulator.scenario import VaultSpec
from devstack.emulator.tokens import KEYVAULT_AUDIENCE

if TYPE_CHECKING:
    from devstack.emulator.state import EmulatorState

API_VERSIONS = ("7.0", "7.1", "7.2", "7.3", "7.4", "7.5", "7.6", "2025-07-01", "2026-04-01")
MAX_RESULTS = 25
SECRETS = "Microsoft.KeyVault/vaults/secrets"
T = TypeVar("T")
# The request key the shared request log reads the caller from.
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _base_url(request: web.Request) -> str:
    return f"{request.scheme}://{request.host}"


def attributes_json(version: SecretVersion) -> dict[str, Any]:
    attributes: dict[str, Any] = {"enabled": version.enabled}
    if version.not_before is not None:
        attributes["nbf"] = version.not_before
    if version.expires is not None:
        attributes["exp"] = version.expires
    attributes.update(
        created=version.created,
        updated=version.updated,
        recoveryLevel=RECOVERY_LEVEL,
        recoverableDays=RECOVERABLE_DAYS,
    )
    return attributes


def _with_properties(body: dict[str, Any], version: SecretVersion) -> dict[str, Any]:
    body["attributes"] = attributes_json(version)
    if version.content_type is not None:
        body["contentType"] = version.content_type
    if version.tags is not None:
        body["tags"] = dict(version.tags)
    return body


def bundle_json(base: str, secret: StoredSecret, version: SecretVersion, *, with_value: bool) -> dict[str, Any]:
    body: dict[str, Any] = {"value": version.value} if with_value else {}
    body["id"] = f"{base}/secrets/{secret.name}/{version.version}"
    return _with_properties(body, version)


def item_json(base: str, secret: StoredSecret, version: SecretVersion, *, versioned: bool) -> dict[str, Any]:
    suffix = f"/{version.version}" if versioned else ""
    return _with_properties({"id": f"{base}/secrets/{secret.name}{suffix}"}, version)


def deleted_json(base: str, deleted: DeletedSecret, *, as_item: bool) -> dict[str, Any]:
    secret = deleted.secret
    body = {
        "recoveryId": f"{base}/deletedsecrets/{secret.name}",
        "deletedDate": deleted.deleted_date,
        "scheduledPurgeDate": deleted.scheduled_purge_date,
    }
    if as_item:
        body.update(item_json(base, secret, secret.latest, versioned=False))
    else:
        body.update(bundle_json(base, secret, secret.latest, with_value=False))
    return body


def _encode_token(key: str) -> str:
    return base64.urlsafe_b64encode(key.encode()).decode().rstrip("=")


def _decode_token(token: str) -> str:
    try:
        return base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode()
    except (binascii.Error, UnicodeDecodeError):
        raise bad_parameter("The $skiptoken parameter is not valid.") from None


def page(request: web.Request, keyed: Sequence[tuple[str, T]], render: Callable[[T], dict[str, Any]]) -> dict[str, Any]:
    """One page of a listing sorted by key: items after the $skiptoken key, and an absolute nextLink (or null). Only
    the items shown are rendered, so paging through a large vault stays linear."""
    raw_max = request.query.get("maxresults")
    try:
        max_results = int(raw_max) if raw_max is not None else MAX_RESULTS
    except ValueError:
        raise bad_parameter(f"The value '{raw_max}' of the maxresults parameter is not valid.") from None
    if not 1 <= max_results <= MAX_RESULTS:
        raise bad_parameter(f"The value of the maxresults parameter must be between 1 and {MAX_RESULTS}.")
    start = 0
    if "$skiptoken" in request.query:
        start = bisect.bisect_right([key for key, _ in keyed], _decode_token(request.query["$skiptoken"]))
    shown = keyed[start : start + max_results]
    next_link = None
    if start + max_results < len(keyed):
        query = f"api-version={request.query['api-version']}&$skiptoken={_encode_token(shown[-1][0])}"
        if raw_max is not None:
            query += f"&maxresults={max_results}"
        next_link = f"{_base_url(request)}{request.path}?{query}"
    return {"value": [render(item) for _, item in shown], "nextLink": next_link}


def _response(body: Any = None, *, status: int = 200) -> web.Response:
    headers = {**request_id_headers(), "x-ms-keyvault-service-version": "1.9.0.0"}
    if body is None:
        return web.Response(status=status, headers=headers)
    return web.json_response(body, status=status, headers=headers)


@web.middleware
async def _errors_as_envelopes(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except ArmError as error:
        return error.to_response()


def secret_store(state: EmulatorState, vault: VaultSpec) -> SecretStore:
    """The vault's secrets, kept with the state so that a scenario reload starts every vault empty."""
    return state.vault_store(vault.resource_id)


class VaultApi:
    def __init__(self, state: EmulatorState, vault: VaultSpec) -> None:
        self._state = state
        self._vault = vault
        self._authorizer = Authorizer(state)

    @contextmanager
    def _store(self, *, changes: bool = False) -> Iterator[SecretStore]:
        """The vault's store under the state lock; `changes=True` saves the state afterwards (unless it failed)."""
        store = secret_store(self._state, self._vault)
        with self._state.lock:
            yield store
            if changes:
                self._state.commit()

    @web.middleware
    async def authenticate(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        # The token check comes first: the SDK's opening request carries neither token nor body, expecting 401.
        request[PRINCIPAL_KEY] = self._state.tokens.verify(
            request.headers.get("Authorization"), audience=KEYVAULT_AUDIENCE
        )
        version = request.query.get("api-version")
        if version not in API_VERSIONS:
            raise bad_parameter(
                f"The specified version ({version}) is not recognized. Consider using the latest supported version "
                f"({API_VERSIONS[-1]})."
            )
        return await handler(request)

    def _require(self, request: web.Request, data_action: str, name: str | None = None) -> None:
        scope = self._vault.resource_id if name is None else f"{self._vault.resource_id}/secrets/{name}"
        self._authorizer.require_data(request[PRINCIPAL_KEY], f"{SECRETS}/{data_action}", scope)

    async def set_secret(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        self._require(request, "setSecret/action", name)
        body = await _json_body(request)
        if "value" not in body:
            raise bad_parameter("Property 'value' is required.")
        changes = SecretChanges.from_body(body)
        with self._store(changes=True) as store:
            secret, version = store.set(name, body["value"], changes)
            return _response(bundle_json(_base_url(request), secret, version, with_value=True))

    async def get_secret(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        self._require(request, "getSecret/action", name)
        with self._store() as store:
            secret, version = store.get(name, request.match_info.get("version"))
            if not version.enabled:
                raise KeyVaultError(
                    403, "Forbidden", "Operation get is not allowed on a disabled secret.", inner_code="SecretDisabled"
                )
            return _response(bundle_json(_base_url(request), secret, version, with_value=True))

    async def update_secret(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        self._require(request, "update/action", name)
        changes = SecretChanges.from_body(await _json_body(request))
        with self._store(changes=True) as store:
            secret, version = store.update(name, request.match_info.get("version"), changes)
            return _response(bundle_json(_base_url(request), secret, version, with_value=False))

    async def list_secrets(self, request: web.Request) -> web.Response:
        self._require(request, "readMetadata/action")
        base = _base_url(request)
        with self._store() as store:
            secrets = [(secret.name.lower(), secret) for secret in store.list()]
            body = page(request, secrets, lambda secret: item_json(base, secret, secret.latest, versioned=False))
        return _response(body)

    async def list_versions(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        self._require(request, "readMetadata/action", name)
        base = _base_url(request)
        with self._store() as store:
            secret, _ = store.get(name)
            # Versions are only ever appended, so their position is a stable paging key.
            versions = [(f"{index:08d}", version) for index, version in enumerate(secret.versions)]
            body = page(request, versions, lambda version: item_json(base, secret, version, versioned=True))
        return _response(body)

    async def delete_secret(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        self._require(request, "delete", name)
        with self._store(changes=True) as store:
            return _response(deleted_json(_base_url(request), store.delete(name), as_item=False))

    async def get_deleted(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        self._require(request, "readMetadata/action", name)
        with self._store() as store:
            return _response(deleted_json(_base_url(request), store.get_deleted(name), as_item=False))

    async def list_deleted(self, request: web.Request) -> web.Response:
        self._require(request, "readMetadata/action")
        base = _base_url(request)
        with self._store() as store:
            deleted = [(item.secret.name.lower(), item) for item in store.list_deleted()]
            body = page(request, deleted, lambda item: deleted_json(base, item, as_item=True))
        return _response(body)

    async def recover(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        self._require(request, "recover/action", name)
        with self._store(changes=True) as store:
            secret = store.recover(name)
            return _response(bundle_json(_base_url(request), secret, secret.latest, with_value=False))

    async def purge(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        self._require(request, "purge/action", name)
        with self._store(changes=True) as store:
            store.purge(name)
        return _response(status=204)


async def _json_body(request: web.Request) -> dict[str, Any]:
    try:
        body = json.loads(await request.text() or "{}")
    except json.JSONDecodeError:
        raise bad_parameter("The request body is not valid JSON.") from None
    if not isinstance(body, dict):
        raise bad_parameter("The request body must be a JSON object.")
    return body


def create_vault_app(state: EmulatorState, vault: VaultSpec, *, middlewares: Sequence[Any] = ()) -> web.Application:
    """The vault's data plane; `middlewares` (faults, throttling, request log) run before the token check."""
    api = VaultApi(state, vault)
    app = web.Application(middlewares=[*middlewares, _errors_as_envelopes, api.authenticate])
    app.router.add_get("/secrets", api.list_secrets)
    app.router.add_put("/secrets/{name}", api.set_secret)
    app.router.add_delete("/secrets/{name}", api.delete_secret)
    app.router.add_get("/secrets/{name}/versions", api.list_versions)
    for path in ("/secrets/{name}", "/secrets/{name}/", "/secrets/{name}/{version}"):
        app.router.add_get(path, api.get_secret)
    for path in ("/secrets/{name}/", "/secrets/{name}/{version}"):
        app.router.add_patch(path, api.update_secret)
    app.router.add_get("/deletedsecrets", api.list_deleted)
    app.router.add_get("/deletedsecrets/{name}", api.get_deleted)
    app.router.add_delete("/deletedsecrets/{name}", api.purge)
    app.router.add_post("/deletedsecrets/{name}/recover", api.recover)
    return app
