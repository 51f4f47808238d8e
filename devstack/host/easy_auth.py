"""App Service authentication ("Easy Auth") in front of the local host, configured as infra/ configures authsettingsV2.

infra/modules/functionapp.bicep turns on the Microsoft identity provider with `registration.clientId` (the broker's
app registration), `openIdIssuer` `https://login.microsoftonline.com/<tenant>/v2.0`, `validation.allowedAudiences`
(`api://<clientId>` and the client id unless told otherwise), an optional `defaultAuthorizationPolicy.
allowedApplications`, `requireAuthentication: true`, `unauthenticatedClientAction: Return401` and `excludedPaths`
(`/api/health`, `/api/openapi.json`, `/api/asyncapi.json`, `/api/docs` and its files). Locally the issuer is the
emulator's tenant, read from the env its env file provides; the rest is the same settings, as environment variables:

| setting | authsettingsV2 | default |
|---|---|---|
| `DEVSTACK_EASY_AUTH` | `platform.enabled` | `true`; `false` (or `--no-easy-auth`) turns it off |
| `DEVSTACK_EASY_AUTH_ISSUER` | `registration.openIdIssuer` | required when on (the emulator's env file sets it) |
| `DEVSTACK_EASY_AUTH_CLIENT_ID` | `registration.clientId` | required when on (the emulator's env file sets it) |
| `DEVSTACK_EASY_AUTH_ALLOWED_AUDIENCES` | `validation.allowedAudiences` | `api://<clientId>,<clientId>` |
| `DEVSTACK_EASY_AUTH_ALLOWED_APPLICATIONS` | `defaultAuthorizationPolicy.allowedApplications` | empty: any |
| `DEVSTACK_EASY_AUTH_EXCLUDED_PATHS` | `globalValidation.excludedPaths` | infra's `authExcludedPaths` |

Per request, before routing and keys (App Service authenticates in front of the Functions host):
1. every client-sent `X-MS-CLIENT-PRINCIPAL*` and `X-MS-TOKEN-*` header is dropped;
2. a bearer token is validated: RS256 signature with a key from the issuer's OpenID configuration (`jwks_uri`,
   fetched on first use and again when a token names an unknown key), `iss`, `aud`, `exp`/`nbf` with five minutes of
   clock skew (the Microsoft.IdentityModel default); the allowed-applications policy checks `azp`/`appid` (403);
3. a valid token's claims are injected as `X-MS-CLIENT-PRINCIPAL` (base64 JSON `{auth_typ, claims[{typ, val}],
   name_typ, role_typ}`; claims renamed as App Service's default claim mapping does, arrays such as `roles` and
   `groups` one claim per value), `X-MS-CLIENT-PRINCIPAL-ID` (`oid`), `-NAME` and `-IDP` (`aad`);
4. no token, or an invalid one, on a path that is not excluded: 401 with `WWW-Authenticate: Bearer …`; an excluded
   path is served anonymously, with the principal when a valid token came along.
`/admin/*` (the host's own API, behind the master key) is left alone.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import requests
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

ENABLED_SETTING = "DEVSTACK_EASY_AUTH"
ISSUER_SETTING = "DEVSTACK_EASY_AUTH_ISSUER"
CLIENT_ID_SETTING = "DEVSTACK_EASY_AUTH_CLIENT_ID"
AUDIENCES_SETTING = "DEVSTACK_EASY_AUTH_ALLOWED_AUDIENCES"
APPLICATIONS_SETTING = "DEVSTACK_EASY_AUTH_ALLOWED_APPLICATIONS"
EXCLUDED_PATHS_SETTING = "DEVSTACK_EASY_AUTH_EXCLUDED_PATHS"
# What App Service sets in the app's environment when authentication is on; the broker fails closed without it.
APP_SETTING = "WEBSITE_AUTH_ENABLED"
# infra/main.bicep's authExcludedPaths (tests/host checks the two agree).
DEFAULT_EXCLUDED_PATHS = (
    "/api/health",
    "/api/openapi.json",
    "/api/asyncapi.json",
    "/api/docs",
    "/api/docs/swagger-ui.css",
    "/api/docs/swagger-ui-bundle.js",
    "/api/docs/docs.js",
)
CLOCK_SKEW_SECONDS = 300
# A token naming an unknown key refetches the keys, at most this often (keys roll; forged kids must not flood).
KEY_REFRESH_SECONDS = 30.0
FETCH_TIMEOUT_SECONDS = 10.0

PRINCIPAL_HEADER = "X-MS-CLIENT-PRINCIPAL"
PRINCIPAL_ID_HEADER = "X-MS-CLIENT-PRINCIPAL-ID"
PRINCIPAL_NAME_HEADER = "X-MS-CLIENT-PRINCIPAL-NAME"
PRINCIPAL_IDP_HEADER = "X-MS-CLIENT-PRINCIPAL-IDP"
# Headers only App Service may set: the principal and the provider tokens (token store).
_RESERVED_PREFIXES = ("x-ms-client-principal", "x-ms-token-")
AUTH_TYPE = "aad"
NAME_TYPE = "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/name"
ROLE_TYPE = "http://schemas.microsoft.com/ws/2008/06/identity/claims/role"
# App Service's default claim mapping (that of Microsoft.IdentityModel's JwtSecurityTokenHandler) for the claims an
# Entra ID access token carries; others keep their JWT names, `roles` and `groups` among them.
CLAIM_TYPES = {
    "oid": "http://schemas.microsoft.com/identity/claims/objectidentifier",
    "tid": "http://schemas.microsoft.com/identity/claims/tenantid",
    "sub": "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/nameidentifier",
    "scp": "http://schemas.microsoft.com/identity/claims/scope",
    "email": "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/emailaddress",
    "upn": "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/upn",
    "unique_name": NAME_TYPE,
    "given_name": "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/givenname",
    "family_name": "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/surname",
}
# The claims X-MS-CLIENT-PRINCIPAL-NAME is taken from, first present wins (inferred, not documented).
_NAME_CLAIMS = ("preferred_username", "upn", "unique_name", "email", "name", "appid", "azp", "oid")
# 401 body App Service sends for Return401.
UNAUTHORIZED_TEXT = "You do not have permission to view this directory or page."
FORBIDDEN_TEXT = "You do not have permission to view this directory or page."

log = logging.getLogger("devstack.host.easy_auth")


class EasyAuthConfigError(ValueError):
    """Easy Auth is on but cannot be configured from the environment."""


def _truthy(value: str | None, *, default: bool) -> bool:
    if value is None or not value.strip():
        return default
    lowered = value.strip().lower()
    if lowered in {"true", "1", "yes", "on"}:
        return True
    if lowered in {"false", "0", "no", "off"}:
        return False
    raise EasyAuthConfigError(f"{ENABLED_SETTING}={value!r} is neither true nor false")


def easy_auth_requested(environ: Mapping[str, str], *, disabled_by_flag: bool = False) -> bool:
    """Whether Easy Auth is on: yes unless the flag or DEVSTACK_EASY_AUTH=false turns it off."""
    return not disabled_by_flag and _truthy(environ.get(ENABLED_SETTING), default=True)


def _listed(value: str | None) -> tuple[str, ...]:
    return tuple(item.strip() for item in (value or "").split(",") if item.strip())


def _normalized_path(path: str) -> str:
    return "/" + path.strip().strip("/").lower()


@dataclass(frozen=True)
class EasyAuthConfig:
    issuer: str
    client_id: str
    allowed_audiences: tuple[str, ...]
    allowed_applications: tuple[str, ...] = ()
    excluded_paths: tuple[str, ...] = DEFAULT_EXCLUDED_PATHS
    clock_skew_seconds: int = CLOCK_SKEW_SECONDS

    @classmethod
    def from_environ(cls, environ: Mapping[str, str]) -> EasyAuthConfig:
        issuer = environ.get(ISSUER_SETTING, "").strip()
        client_id = environ.get(CLIENT_ID_SETTING, "").strip()
        missing = [name for name, value in ((ISSUER_SETTING, issuer), (CLIENT_ID_SETTING, client_id)) if not value]
        if missing:
            raise EasyAuthConfigError(
                f"Easy Auth is on (the default) but {' and '.join(missing)} {'is' if len(missing) == 1 else 'are'} "
                "not set. They come from the emulator's env file (make run passes them on); without the emulator, "
                f"start the host with --no-easy-auth or {ENABLED_SETTING}=false."
            )
        if not issuer.startswith("https://"):
            raise EasyAuthConfigError(f"{ISSUER_SETTING} must be an https URL, not {issuer!r}")
        audiences = _listed(environ.get(AUDIENCES_SETTING)) or (f"api://{client_id}", client_id)
        excluded = environ.get(EXCLUDED_PATHS_SETTING)
        return cls(
            issuer=issuer.rstrip("/"),
            client_id=client_id,
            allowed_audiences=audiences,
            allowed_applications=_listed(environ.get(APPLICATIONS_SETTING)),
            excluded_paths=DEFAULT_EXCLUDED_PATHS if excluded is None else _listed(excluded),
        )

    def is_excluded(self, path: str) -> bool:
        return _normalized_path(path) in {_normalized_path(item) for item in self.excluded_paths}

    def describe(self) -> str:
        return (
            f"Easy Auth on: issuer {self.issuer}, audiences {', '.join(self.allowed_audiences)}, anonymous paths "
            f"{', '.join(self.excluded_paths) or 'none'}"
            + (f", applications {', '.join(self.allowed_applications)}" if self.allowed_applications else "")
        )


class TokenRejectedError(Exception):
    """A bearer token Easy Auth does not accept; `status` 401 (authentication) or 403 (authorization policy)."""

    def __init__(self, reason: str, *, status: int = 401, error: str | None = "invalid_token") -> None:
        super().__init__(reason)
        self.reason = reason
        self.status = status
        self.error = error


def _b64decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _b64int(text: str) -> int:
    return int.from_bytes(_b64decode(text), "big")


Fetch = Callable[[str], dict[str, Any]]


def fetch_json(url: str) -> dict[str, Any]:
    """GET a JSON document over HTTPS (trusting REQUESTS_CA_BUNDLE when set, as requests does)."""
    response = requests.get(url, timeout=FETCH_TIMEOUT_SECONDS)
    response.raise_for_status()
    document = response.json()
    if not isinstance(document, dict):
        raise ValueError(f"{url} did not answer a JSON object")
    return document


@dataclass
class SigningKeys:
    """The issuer's signing keys: OpenID configuration → jwks_uri → RSA keys by kid, refreshed for an unknown kid."""

    issuer: str
    fetch: Fetch = fetch_json
    refresh_seconds: float = KEY_REFRESH_SECONDS
    clock: Callable[[], float] = time.monotonic
    _keys: dict[str, rsa.RSAPublicKey] = field(default_factory=dict)
    _fetched_at: float | None = None
    _lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    async def key(self, kid: str) -> rsa.RSAPublicKey | None:
        if kid in self._keys:
            return self._keys[kid]
        async with self._lock:
            recently = self._fetched_at is not None and self.clock() - self._fetched_at < self.refresh_seconds
            if kid not in self._keys and not recently:
                await asyncio.to_thread(self._load)
        return self._keys.get(kid)

    def _load(self) -> None:
        self._fetched_at = self.clock()
        try:
            configuration = self.fetch(f"{self.issuer}/.well-known/openid-configuration")
            jwks = self.fetch(str(configuration["jwks_uri"]))
        except (requests.RequestException, ValueError, KeyError) as error:
            log.warning("easy auth: cannot read the signing keys of %s: %s", self.issuer, error)
            return
        keys = {}
        for jwk in jwks.get("keys", []):
            if isinstance(jwk, dict) and jwk.get("kty") == "RSA" and jwk.get("kid") and jwk.get("use", "sig") == "sig":
                keys[str(jwk["kid"])] = rsa.RSAPublicNumbers(_b64int(jwk["e"]), _b64int(jwk["n"])).public_key()
        self._keys = keys


def client_principal(claims: Mapping[str, Any]) -> dict[str, Any]:
    """The X-MS-CLIENT-PRINCIPAL document for a token's claims."""
    listed = [
        {"typ": CLAIM_TYPES.get(name, name), "val": _claim_text(item)}
        for name, value in claims.items()
        for item in (value if isinstance(value, list) else [value])
    ]
    return {"auth_typ": AUTH_TYPE, "claims": listed, "name_typ": NAME_TYPE, "role_typ": ROLE_TYPE}


def _claim_text(value: object) -> str:
    # Claim values are strings in the principal: numbers as digits, booleans as JSON, objects as JSON text.
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict | list):
        return json.dumps(value, separators=(",", ":"))
    return str(value)


def principal_headers(claims: Mapping[str, Any]) -> dict[str, str]:
    """The four headers App Service injects for an authenticated caller."""
    encoded = base64.b64encode(json.dumps(client_principal(claims), separators=(",", ":")).encode("utf-8"))
    name = next((str(claims[claim]) for claim in _NAME_CLAIMS if claims.get(claim)), "")
    return {
        PRINCIPAL_HEADER: encoded.decode("ascii"),
        PRINCIPAL_ID_HEADER: str(claims.get("oid") or claims.get("sub") or ""),
        PRINCIPAL_NAME_HEADER: name,
        PRINCIPAL_IDP_HEADER: AUTH_TYPE,
    }


def without_reserved_headers(headers: Mapping[str, str]) -> dict[str, str]:
    """`headers` minus everything a client must not set (X-MS-CLIENT-PRINCIPAL*, X-MS-TOKEN-*)."""
    return {name: value for name, value in headers.items() if not name.lower().startswith(_RESERVED_PREFIXES)}


@dataclass(frozen=True)
class Decision:
    """What Easy Auth does with a request: answer it (status, headers, body), or pass it on with these headers."""

    status: int | None
    headers: dict[str, str]
    body: str = ""
    principal: dict[str, str] = field(default_factory=dict)

    @property
    def passes(self) -> bool:
        return self.status is None


class EasyAuth:
    def __init__(
        self,
        config: EasyAuthConfig,
        *,
        keys: SigningKeys | None = None,
        clock: Callable[[], float] = time.time,
        realm: str = "localhost",
    ) -> None:
        self.config = config
        self._keys = keys or SigningKeys(config.issuer)
        self._clock = clock
        self._realm = realm

    async def validate(self, authorization: str | None) -> dict[str, Any]:
        """The claims of a valid bearer token; TokenRejectedError saying why otherwise."""
        if not authorization or not authorization.strip():
            raise TokenRejectedError("no bearer token", error=None)
        scheme, _, token = authorization.strip().partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise TokenRejectedError("the Authorization header is not a bearer token", error=None)
        parts = token.strip().split(".")
        if len(parts) != 3:
            raise TokenRejectedError("the token is not a JWT")
        try:
            header = json.loads(_b64decode(parts[0]))
            claims = json.loads(_b64decode(parts[1]))
            signature = _b64decode(parts[2])
        except (ValueError, binascii.Error):
            raise TokenRejectedError("the token is not a JWT") from None
        if not isinstance(header, dict) or not isinstance(claims, dict):
            raise TokenRejectedError("the token is not a JWT")
        if header.get("alg") != "RS256":
            raise TokenRejectedError(f"the token is signed with {header.get('alg')!r}, not RS256")
        key = await self._keys.key(str(header.get("kid", "")))
        if key is None:
            raise TokenRejectedError(f"the token's signing key {header.get('kid')!r} is not one of the issuer's")
        try:
            key.verify(signature, f"{parts[0]}.{parts[1]}".encode("ascii"), padding.PKCS1v15(), hashes.SHA256())
        except InvalidSignature:
            raise TokenRejectedError("the token's signature does not verify") from None
        self._check_claims(claims)
        return claims

    def _check_claims(self, claims: dict[str, Any]) -> None:
        config = self.config
        if str(claims.get("iss", "")).rstrip("/") != config.issuer:
            raise TokenRejectedError(f"the token's issuer {claims.get('iss')!r} is not {config.issuer!r}")
        audiences = claims.get("aud")
        audiences = audiences if isinstance(audiences, list) else [audiences]
        allowed = {audience.rstrip("/").lower() for audience in config.allowed_audiences}
        if not any(isinstance(item, str) and item.rstrip("/").lower() in allowed for item in audiences):
            raise TokenRejectedError(f"the token's audience {claims.get('aud')!r} is not an allowed audience")
        now = self._clock()
        try:
            expires, not_before = float(claims["exp"]), float(claims.get("nbf", claims.get("iat", 0)))
        except (KeyError, TypeError, ValueError):
            raise TokenRejectedError("the token has no valid exp") from None
        if expires + config.clock_skew_seconds <= now:
            raise TokenRejectedError("the token has expired")
        if not_before - config.clock_skew_seconds > now:
            raise TokenRejectedError("the token is not valid yet")
        if config.allowed_applications:
            application = str(claims.get("azp") or claims.get("appid") or "")
            if application.lower() not in {item.lower() for item in config.allowed_applications}:
                raise TokenRejectedError(
                    f"the client application {application!r} is not allowed", status=403, error="insufficient_scope"
                )

    async def decide(self, path: str, headers: Mapping[str, str]) -> Decision:
        """Let the request through with the principal's headers (and no forged ones), or answer 401/403."""
        passed = without_reserved_headers(headers)
        authorization = next((value for name, value in headers.items() if name.lower() == "authorization"), None)
        excluded = self.config.is_excluded(path)
        try:
            claims = await self.validate(authorization)
        except TokenRejectedError as rejected:
            if excluded:
                return Decision(None, passed)
            log.info("easy auth: %d for %s: %s", rejected.status, path, rejected.reason)
            return self._refusal(rejected)
        principal = principal_headers(claims)
        return Decision(None, {**passed, **principal}, principal=principal)

    def _refusal(self, rejected: TokenRejectedError) -> Decision:
        if rejected.status == 403:
            return Decision(403, {"Content-Type": "text/plain; charset=utf-8"}, FORBIDDEN_TEXT)
        challenge = (
            f'Bearer realm="{self._realm}", authorization_uri="{self._authorize_uri()}", '
            f'resource_id="{self.config.client_id}"'
        )
        if rejected.error:
            # RFC 6750 §3: say why a presented token failed (App Service does not; it helps locally).
            description = rejected.reason.replace('"', "'")
            challenge += f', error="{rejected.error}", error_description="{description}"'
        return Decision(
            401, {"WWW-Authenticate": challenge, "Content-Type": "text/plain; charset=utf-8"}, UNAUTHORIZED_TEXT
        )

    def _authorize_uri(self) -> str:
        return f"{self.config.issuer.removesuffix('/v2.0')}/oauth2/v2.0/authorize"
