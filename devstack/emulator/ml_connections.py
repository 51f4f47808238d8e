"""Workspace connections: create or replace (PUT, synchronous), get, list, delete, and listsecrets.

The shape follows WorkspaceConnectionPropertiesV2BasicResource (schemas/2024-10-01.json, 2026-07-01.json):
`properties.{category, target, authType, credentials, metadata}`. Like the service, PUT and GET never return
`credentials`; POST .../listsecrets does. Only the auth types the broker (and the seed's "consume from a different
project" how-to) use are accepted.
Connections live in memory for the scenario's lifetime (not in the state file).
"""

from __future__ import annotations

import re
from typing import Any

from aiohttp import web

from devstack.emulator.arm import ArmRoute
from devstack.emulator.errors import request_id_headers, user_error
from devstack.emulator.middleware import PRINCIPAL_KEY
from devstack.emulator.ml_bodies import system_data, touched
from devstack.emulator.ml_common import (
    ACTIONS,
    CONNECTION_API_VERSIONS,
    MlHandlers,
    not_found,
    workspace_route,
)
from devstack.emulator.paging import page
from devstack.emulator.resources import ML_PROVIDER, workspace_key
from devstack.emulator.scenario import WorkspaceSpec

# [I] Not documented for connections; the workspace name rule, which the broker also keeps to.
CONNECTION_NAME = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_-]{2,32}$")
AUTH_TYPES = ("ApiKey", "None", "AAD")
CONNECTION_TYPE = f"{ML_PROVIDER}/workspaces/connections"
STORE = "ml-connections"
_ACTION = f"{ACTIONS}/connections"
_TYPE = "workspaces/connections"
CONNECTION = "connection"

ConnectionKey = tuple[tuple[str, str, str], str]


class WorkspaceConnections(MlHandlers):
    def _store(self) -> dict[ConnectionKey, dict[str, Any]]:
        return self.state.extensions.setdefault(STORE, {})

    def _key(self, workspace: WorkspaceSpec, name: str) -> ConnectionKey:
        return (workspace_key(workspace.subscription_id, workspace.resource_group, workspace.name), name.lower())

    def _connection(self, params: dict[str, str]) -> dict[str, Any]:
        found = self._store().get(self._key(self.workspace(params), params["name"]))
        if found is None:
            raise not_found(params, f"/connections/{params['name']}")
        return found

    async def put_connection(self, request: web.Request, params: dict[str, str]) -> web.Response:
        body = await self.request_body(request, CONNECTION)
        name = params["name"]
        if not CONNECTION_NAME.fullmatch(name):
            raise user_error(
                400,
                f"Connection name '{name}' is invalid. It must be 3-33 letters, digits, '-' or '_', starting with a "
                "letter or digit.",
                "InvalidConnectionName",
            )
        properties = dict(body.get("properties") or {})
        for required in ("category", "target", "authType"):
            if not properties.get(required):
                raise user_error(400, f"The connection needs properties.{required}.", "InvalidConnectionProperties")
        auth_type = properties["authType"]
        if auth_type not in AUTH_TYPES:
            raise user_error(400, f"authType '{auth_type}' is not supported by the emulator.", "InvalidAuthType")
        if auth_type == "ApiKey" and not (properties.get("credentials") or {}).get("key"):
            raise user_error(400, "An ApiKey connection needs properties.credentials.key.", "MissingCredentials")
        principal = request[PRINCIPAL_KEY]
        state = self.state
        with state.lock:
            workspace = self.workspace(params)
            key = self._key(workspace, name)
            existing = self._store().get(key)
            stamp = (
                touched(existing["systemData"], principal, state.clock())
                if existing
                else system_data(principal, state.clock())
            )
            resource_id = (
                f"/subscriptions/{workspace.subscription_id}/resourceGroups/{workspace.resource_group}"
                f"/providers/{ML_PROVIDER}/workspaces/{workspace.name}/connections/{name}"
            )
            stored = {
                "id": existing["id"] if existing else resource_id,
                "name": existing["name"] if existing else name,
                "type": CONNECTION_TYPE,
                "properties": {"metadata": {}, **properties},
                "systemData": stamp,
            }
            self._store()[key] = stored
            return self.respond(request, CONNECTION, _public(stored))

    async def get_connection(self, request: web.Request, params: dict[str, str]) -> web.Response:
        with self.state.lock:
            return self.respond(request, CONNECTION, _public(self._connection(params)))

    async def list_connections(self, request: web.Request, params: dict[str, str]) -> web.Response:
        with self.state.lock:
            workspace = self.workspace(params)
            owner = workspace_key(workspace.subscription_id, workspace.resource_group, workspace.name)
            items = [_public(item) for (key, _), item in sorted(self._store().items()) if key == owner]
        return self.respond(request, f"{CONNECTION}List", page(request, items, self.state.scenario.page_size))

    async def delete_connection(self, request: web.Request, params: dict[str, str]) -> web.Response:
        with self.state.lock:
            removed = self._store().pop(self._key(self.workspace(params), params["name"]), None)
        return web.Response(status=200 if removed else 204, headers=request_id_headers())

    async def list_secrets(self, request: web.Request, params: dict[str, str]) -> web.Response:
        with self.state.lock:
            return self.respond(request, CONNECTION, self._connection(params))

    def routes(self) -> list[ArmRoute]:
        item = "/connections/{name}"
        versions = CONNECTION_API_VERSIONS
        return [
            workspace_route("GET", "/connections", self.list_connections, f"{_ACTION}/read", _TYPE, versions=versions),
            workspace_route("GET", item, self.get_connection, f"{_ACTION}/read", _TYPE, versions=versions),
            workspace_route("PUT", item, self.put_connection, f"{_ACTION}/write", _TYPE, versions=versions),
            workspace_route("DELETE", item, self.delete_connection, f"{_ACTION}/delete", _TYPE, versions=versions),
            workspace_route(
                "POST",
                f"{item}/listsecrets",
                self.list_secrets,
                f"{_ACTION}/listsecrets/action",
                _TYPE,
                versions=versions,
                scope_strip_segments=1,
            ),
        ]


def _public(connection: dict[str, Any]) -> dict[str, Any]:
    """The connection as PUT and GET answer: everything but the credentials."""
    properties = {name: value for name, value in connection["properties"].items() if name != "credentials"}
    return {**connection, "properties": properties}
