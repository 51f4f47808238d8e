"""The App Service managed-identity endpoint (IDENTITY_ENDPOINT + IDENTITY_HEADER, api-version 2019-08-01).

azure-identity's ManagedIdentityCredential (and DefaultAzureCredential through it) sends
GET {IDENTITY_ENDPOINT}?api-version=2019-08-01&resource=<resource>[&client_id=|&object_id=|&mi_res_id=] with the
X-IDENTITY-HEADER header, and reads access_token and expires_on (epoch seconds; App Service sends it as a string).
Without a selector the token is the scenario's broker identity; a selector picks any scenario principal, so tests and
demos can act as the requester or the reader. Errors use App Service's {"statusCode", "message"} body, which MSAL
turns into the credential's error text.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from aiohttp import web

from devstack.emulator.errors import request_id_headers
from devstack.emulator.scenario import Scenario
from devstack.emulator.tokens import Principal

if TYPE_CHECKING:
    from devstack.emulator.state import EmulatorState

API_VERSION = "2019-08-01"
TOKEN_PATH = "/msi/token"
# Which scenario field each selector parameter is matched against.
_SELECTORS = (("client_id", "clientId"), ("object_id", "objectId"), ("principal_id", "objectId"))


def _failure(status: int, message: str) -> web.Response:
    return web.json_response({"statusCode": status, "message": message}, status=status, headers=request_id_headers())


def _selected(scenario: Scenario, query: Mapping[str, str]) -> dict[str, Any] | str:
    """The principal the query selects, or why none is."""
    for parameter, field in _SELECTORS:
        wanted = query.get(parameter)
        if wanted:
            found = next(
                (item for item in scenario.principals if str(item.get(field, "")).lower() == wanted.lower()), None
            )
            return found or f"No managed identity found for {parameter} '{wanted}'."
    resource_id = query.get("mi_res_id")
    if resource_id:
        found = next(
            (
                item
                for item in scenario.principals
                if str(item.get("resourceId", "")).lower() == resource_id.lower()
                or resource_id.rstrip("/").rsplit("/", 1)[-1].lower() == str(item.get("displayName", "")).lower()
            ),
            None,
        )
        return found or f"No managed identity found for mi_res_id '{resource_id}'."
    found = scenario.principal(scenario.broker_principal_id)
    return found or "The scenario names no broker identity (brokerPrincipalId)."


def register_identity_routes(app: web.Application, state: EmulatorState) -> None:
    async def issue_token(request: web.Request) -> web.Response:
        scenario = state.scenario
        if request.headers.get("X-IDENTITY-HEADER") != scenario.identity_header:
            return _failure(401, "The X-IDENTITY-HEADER header is missing or does not match IDENTITY_HEADER.")
        if request.query.get("api-version") != API_VERSION:
            return _failure(400, f"Unsupported api-version; this endpoint implements {API_VERSION}.")
        resource = request.query.get("resource", "").strip()
        if not resource:
            return _failure(400, "The 'resource' query parameter is required.")
        selected = _selected(scenario, request.query)
        if isinstance(selected, str):
            return _failure(400, selected)
        if selected.get("type", "User") == "Group":
            return _failure(400, f"'{selected.get('displayName', selected['objectId'])}' is a group, not an identity.")
        principal = Principal(
            object_id=selected["objectId"],
            display_name=selected.get("displayName", ""),
            tenant_id=scenario.tenant_id,
            principal_type=selected.get("type", "ServicePrincipal"),
            client_id=selected.get("clientId", ""),
        )
        token, expires_on = state.tokens.issue(principal, resource)
        return web.json_response(
            {
                "access_token": token,
                "expires_on": str(expires_on),
                "resource": resource,
                "token_type": "Bearer",
                "client_id": principal.client_id,
            },
            headers=request_id_headers(),
        )

    app.router.add_get(TOKEN_PATH, issue_token)
