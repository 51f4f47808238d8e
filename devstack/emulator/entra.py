"""Microsoft Entra ID, as much of it as service-to-service callers of the broker's API need: OpenID Connect discovery,
the signing keys (JWKS) and the OAuth 2.0 client-credentials token endpoint, for the tenant of the scenario.

Served on the ARM listener, under the emulator's own authority (`https://127.0.0.1:<port>`), at Entra ID's paths:

    GET  /{tenant}/v2.0/.well-known/openid-configuration
    GET  /{tenant}/discovery/v2.0/keys
    POST /{tenant}/oauth2/v2.0/token  grant_type=client_credentials, client_id, client_secret, scope=<resource>/.default

azure-identity's ClientSecretCredential, given `authority=<the emulator's URL>` and `disable_instance_discovery=True`
(instance discovery would ask login.microsoftonline.com whether the authority is known), makes exactly these calls
through MSAL: the discovery document once, then the token request; it reads `access_token`, `expires_in` and
`token_type`.

Who may sign in: scenario principals with a `clientId` and a `clientSecret` (dev secrets, written to the env file).
What for: an application the scenario registers under `applications` (by its client id or an `identifierUris`
entry) gets a v2.0 access token signed RS256 with the key the JWKS publishes (`aud` = the application's client id, as
Entra ID's v2.0 tokens; `roles` from the application's `appRoles` the principal or one of its groups holds; `groups`
from the scenario's groups); an emulated Azure service (ARM, Key Vault, storage) gets the emulator's own service
token, as from the managed-identity endpoint. Errors are Entra ID's `{error, error_description, error_codes, ...}`
bodies with their AADSTS codes.
"""

from __future__ import annotations

import base64
import binascii
import uuid
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote

from aiohttp import web

from devstack.emulator.middleware import PRINCIPAL_KEY
from devstack.emulator.scenario import Scenario
from devstack.emulator.tokens import (
    ARM_AUDIENCE,
    KEYVAULT_AUDIENCE,
    EntraTokenRequest,
    Principal,
    entra_access_token,
    entra_issuer,
    entra_signing_key,
    normalize_audience,
)

if TYPE_CHECKING:
    from devstack.emulator.state import EmulatorState

DISCOVERY_PATH = "/{tenant}/v2.0/.well-known/openid-configuration"
KEYS_PATH = "/{tenant}/discovery/v2.0/keys"
TOKEN_PATH = "/{tenant}/oauth2/v2.0/token"
AUTHORIZE_PATH = "/{tenant}/oauth2/v2.0/authorize"
CLIENT_CREDENTIALS = "client_credentials"
# Azure services whose tokens the emulator's own services accept (the managed-identity endpoint issues them too).
_SERVICE_AUDIENCES = frozenset(
    {
        normalize_audience(ARM_AUDIENCE),
        "https://management.core.windows.net",
        normalize_audience(KEYVAULT_AUDIENCE),
        "https://storage.azure.com",
    }
)
_OIDC_SCOPES = frozenset({"openid", "profile", "offline_access", "email"})
# Scenario principals the env file names, by their display name.
DEMO_PRINCIPALS = ("broker", "requester", "reader", "approver", "auditor", "outsider")


# --- the scenario's directory -----------------------------------------------------------------------------------------


def applications(scenario: Scenario) -> list[dict[str, Any]]:
    """The application registrations of the scenario (`applications`; the first is the broker's API)."""
    return [item for item in scenario.source.get("applications", []) if isinstance(item, dict) and item.get("clientId")]


def application_for(scenario: Scenario, resource: str) -> dict[str, Any] | None:
    """The application a resource (client id, `api://…` or any of its identifier URIs) names, if any."""
    wanted = normalize_audience(resource)
    for application in applications(scenario):
        names = [application["clientId"], *application.get("identifierUris", [])]
        if wanted in {normalize_audience(name) for name in names}:
            return application
    return None


def api_scope(application: dict[str, Any]) -> str:
    """The `.default` scope of an application: its first identifier URI (else `api://<client id>`)."""
    uris = application.get("identifierUris") or [f"api://{application['clientId']}"]
    return f"{uris[0].rstrip('/')}/.default"


def group_ids(scenario: Scenario, object_id: str) -> list[str]:
    """The groups a principal belongs to, directly or through other groups, in scenario order."""
    groups = [item for item in scenario.principals if item.get("type") == "Group"]
    member_of: set[str] = set()
    frontier = {object_id.lower()}
    while frontier:
        found = {
            group["objectId"].lower()
            for group in groups
            if group["objectId"].lower() not in member_of
            and frontier & {str(member).lower() for member in group.get("members", [])}
        }
        member_of |= found
        frontier = found
    return [group["objectId"] for group in groups if group["objectId"].lower() in member_of]


def app_roles(application: dict[str, Any], holders: Iterable[str]) -> list[str]:
    """The values of the application's app roles whose `members` include one of `holders` (a principal, its groups)."""
    wanted = {holder.lower() for holder in holders}
    return [
        str(role["value"])
        for role in application.get("appRoles", [])
        if isinstance(role, dict) and wanted & {str(member).lower() for member in role.get("members", [])}
    ]


def _principal(scenario: Scenario, raw: dict[str, Any]) -> Principal:
    return Principal(
        object_id=raw["objectId"],
        display_name=raw.get("displayName", ""),
        tenant_id=scenario.tenant_id,
        principal_type=raw.get("type", "ServicePrincipal"),
        client_id=raw.get("clientId", ""),
    )


def entra_env(authority: str, scenario: Scenario) -> dict[str, str]:
    """The env-file variables for Entra sign-in: the authority and API, each demo principal's dev credentials, and
    the settings the local host's Easy Auth reads (issuer and client id, as infra/ sets authsettingsV2)."""
    env = {"EMULATOR_AUTHORITY": authority}
    registered = applications(scenario)
    if registered:
        api = registered[0]
        env["BROKER_API_CLIENT_ID"] = api["clientId"]
        env["BROKER_API_SCOPE"] = api_scope(api)
        env["DEVSTACK_EASY_AUTH_ISSUER"] = entra_issuer(authority, scenario.tenant_id)
        env["DEVSTACK_EASY_AUTH_CLIENT_ID"] = api["clientId"]
    for role in DEMO_PRINCIPALS:
        principal = next((item for item in scenario.principals if item.get("displayName") == role), None)
        if principal is None:
            continue
        if principal.get("clientId"):
            env[f"DEMO_{role.upper()}_CLIENT_ID"] = principal["clientId"]
        if principal.get("clientSecret"):
            env[f"DEMO_{role.upper()}_CLIENT_SECRET"] = principal["clientSecret"]
    return env


# --- HTTP -------------------------------------------------------------------------------------------------------------


class _OAuthError(Exception):
    """An error answer of the token endpoint, in Entra ID's shape."""

    def __init__(self, status: int, error: str, code: int, description: str) -> None:
        super().__init__(description)
        self.status = status
        self.error = error
        self.code = code
        self.description = description

    def response(self, correlation_id: str) -> web.Response:
        trace_id = str(uuid.uuid4())
        timestamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%SZ")
        description = (
            f"AADSTS{self.code}: {self.description} Trace ID: {trace_id} Correlation ID: {correlation_id} "
            f"Timestamp: {timestamp}"
        )
        body = {
            "error": self.error,
            "error_description": description,
            "error_codes": [self.code],
            "timestamp": timestamp,
            "trace_id": trace_id,
            "correlation_id": correlation_id,
            "error_uri": f"https://login.microsoftonline.com/error?code={self.code}",
        }
        return web.json_response(body, status=self.status, headers=_no_store(correlation_id))


def _no_store(correlation_id: str) -> dict[str, str]:
    # RFC 6749 §5.1: token responses are not cached.
    return {"Cache-Control": "no-store", "Pragma": "no-cache", "client-request-id": correlation_id}


def authority_of(request: web.Request) -> str:
    """The emulator's own authority: the address and port the listener answered on (the env file's ARM URL)."""
    sockname = request.transport.get_extra_info("sockname") if request.transport is not None else None
    if not sockname:
        return f"{request.scheme}://{request.host}"
    host = f"[{sockname[0]}]" if ":" in sockname[0] else sockname[0]
    return f"https://{host}:{sockname[1]}"


def _tenant(request: web.Request, scenario: Scenario) -> str | None:
    tenant = request.match_info["tenant"]
    return scenario.tenant_id if tenant.lower() == scenario.tenant_id.lower() else None


def _tenant_not_found(tenant: str) -> _OAuthError:
    return _OAuthError(
        400,
        "invalid_tenant",
        90002,
        f"Tenant '{tenant}' not found. Check to make sure you have the correct tenant ID and are signing into the "
        "correct cloud.",
    )


def _client_credentials(request: web.Request, form: dict[str, str]) -> tuple[str, str]:
    """client_id and client_secret from the body (client_secret_post) or Basic auth (client_secret_basic)."""
    client_id, secret = form.get("client_id", ""), form.get("client_secret", "")
    scheme, _, value = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() == "basic" and value:
        try:
            decoded = base64.b64decode(value, validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError, ValueError):
            raise _OAuthError(401, "invalid_client", 7000216, "The client credentials are not valid.") from None
        basic_id, _, basic_secret = decoded.partition(":")
        client_id, secret = unquote(basic_id), unquote(basic_secret)
    return client_id, secret


def _signed_in(scenario: Scenario, client_id: str, secret: str) -> dict[str, Any]:
    if not client_id:
        raise _OAuthError(
            400, "invalid_request", 900144, "The request body must contain the following parameter: 'client_id'."
        )
    principal = next(
        (
            item
            for item in scenario.principals
            if item.get("type") != "Group" and str(item.get("clientId", "")).lower() == client_id.lower()
        ),
        None,
    )
    if principal is None:
        raise _OAuthError(
            400,
            "unauthorized_client",
            700016,
            f"Application with identifier '{client_id}' was not found in the directory '{scenario.tenant_id}'. This "
            "can happen if the application has not been installed by the administrator of the tenant.",
        )
    if not secret:
        raise _OAuthError(
            401,
            "invalid_client",
            7000218,
            "The request body must contain the following parameter: 'client_assertion' or 'client_secret'.",
        )
    expected = str(principal.get("clientSecret", ""))
    if not expected or secret != expected:
        raise _OAuthError(
            401,
            "invalid_client",
            7000215,
            "Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, "
            f"not the client secret ID, for a secret added to app '{client_id}'.",
        )
    return principal


def _resource(scope: str) -> str:
    scopes = [item for item in scope.split() if item.lower() not in _OIDC_SCOPES]
    if len(scopes) != 1 or not scopes[0].endswith("/.default"):
        raise _OAuthError(
            400,
            "invalid_scope",
            1002012,
            f"The provided value for scope {scope} is not valid. Client credential flows must have a scope value with "
            "/.default suffixed to the resource identifier (application ID URI).",
        )
    return scopes[0].removesuffix("/.default")


def register_entra_routes(app: web.Application, state: EmulatorState) -> None:
    async def discovery(request: web.Request) -> web.Response:
        scenario = state.scenario
        tenant = _tenant(request, scenario)
        if tenant is None:
            return _tenant_not_found(request.match_info["tenant"]).response(str(uuid.uuid4()))
        base = f"{authority_of(request)}/{tenant}"
        document = {
            "issuer": entra_issuer(authority_of(request), tenant),
            "authorization_endpoint": f"{base}/oauth2/v2.0/authorize",
            "token_endpoint": f"{base}/oauth2/v2.0/token",
            "jwks_uri": f"{base}/discovery/v2.0/keys",
            "token_endpoint_auth_methods_supported": ["client_secret_post", "client_secret_basic"],
            "grant_types_supported": [CLIENT_CREDENTIALS],
            "response_types_supported": ["code", "id_token", "code id_token", "id_token token"],
            "response_modes_supported": ["query", "fragment", "form_post"],
            "subject_types_supported": ["pairwise"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "scopes_supported": ["openid", "profile", "email", "offline_access"],
            "claims_supported": ["aud", "iss", "iat", "nbf", "exp", "azp", "oid", "sub", "tid", "roles", "groups"],
            "request_uri_parameter_supported": False,
            "tenant_region_scope": None,
            "cloud_instance_name": "emulator",
        }
        return web.json_response(document, headers={"Cache-Control": "max-age=86400, private"})

    async def keys(request: web.Request) -> web.Response:
        scenario = state.scenario
        tenant = _tenant(request, scenario)
        if tenant is None:
            return _tenant_not_found(request.match_info["tenant"]).response(str(uuid.uuid4()))
        key = entra_signing_key().jwk(issuer=entra_issuer(authority_of(request), tenant))
        return web.json_response({"keys": [key]}, headers={"Cache-Control": "max-age=86400, private"})

    async def authorize(request: web.Request) -> web.Response:
        return web.json_response(
            {
                "error": "unsupported_response_type",
                "error_description": "The emulator signs nobody in interactively; use the client credentials grant "
                "at the token endpoint (see devstack/emulator/README.md).",
            },
            status=400,
        )

    async def token(request: web.Request) -> web.Response:
        correlation_id = request.headers.get("client-request-id") or str(uuid.uuid4())
        try:
            return await _issue(request, correlation_id)
        except _OAuthError as error:
            return error.response(correlation_id)

    async def _issue(request: web.Request, correlation_id: str) -> web.Response:
        scenario = state.scenario
        tenant = _tenant(request, scenario)
        if tenant is None:
            raise _tenant_not_found(request.match_info["tenant"])
        form = {key: str(value) for key, value in (await request.post()).items()}
        grant_type = form.get("grant_type", "")
        if grant_type != CLIENT_CREDENTIALS:
            raise _OAuthError(
                400,
                "unsupported_grant_type",
                70003,
                f"The app requested an unsupported grant type '{grant_type}'. The emulator implements only "
                f"'{CLIENT_CREDENTIALS}'.",
            )
        if "client_assertion" in form:
            message = "Client assertions (certificates) are not emulated; send a client_secret."
            raise _OAuthError(400, "invalid_request", 50027, message)
        raw = _signed_in(scenario, *_client_credentials(request, form))
        principal = _principal(scenario, raw)
        request[PRINCIPAL_KEY] = principal
        resource = _resource(form.get("scope", ""))
        application = application_for(scenario, resource)
        if application is not None:
            groups = group_ids(scenario, principal.object_id)
            access_token, expires_on = entra_access_token(
                EntraTokenRequest(
                    issuer=entra_issuer(authority_of(request), tenant),
                    audience=application["clientId"],
                    principal=principal,
                    roles=tuple(app_roles(application, [principal.object_id, *groups])),
                    groups=tuple(groups),
                ),
                clock=state.clock,
            )
        elif normalize_audience(resource) in _SERVICE_AUDIENCES:
            access_token, expires_on = state.tokens.issue(principal, resource)
        else:
            raise _OAuthError(
                400,
                "invalid_resource",
                500011,
                f"The resource principal named {resource} was not found in the tenant named {tenant}. This can "
                "happen if the application has not been installed by the administrator of the tenant or consented "
                "to by any user in the tenant.",
            )
        expires_in = max(0, int(expires_on - state.clock()))
        body = {
            "token_type": "Bearer",
            "expires_in": expires_in,
            "ext_expires_in": expires_in,
            "access_token": access_token,
        }
        return web.json_response(body, headers=_no_store(correlation_id))

    app.router.add_get(DISCOVERY_PATH, discovery)
    app.router.add_get(KEYS_PATH, keys)
    app.router.add_route("*", AUTHORIZE_PATH, authorize)
    app.router.add_post(TOKEN_PATH, token)
