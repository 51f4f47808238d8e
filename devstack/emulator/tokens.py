"""Bearer tokens the emulator issues and checks.

Two kinds, because two kinds of party check them:

- Tokens for the Azure services it emulates (ARM, Key Vault, storage), from the managed-identity endpoint or the
  client-credentials endpoint: the real JWT shape (header.payload.signature) and the claims Azure resource providers
  read (aud, iss, oid, tid, appid, iat, nbf, exp), so clients that peek into them keep working, but signed with
  HMAC-SHA256 under a per-process secret: only this emulator mints or verifies them (`TokenService`).
- Microsoft identity platform (v2.0) access tokens for the applications a scenario registers (the broker's API), from
  the client-credentials endpoint (`devstack.emulator.entra`): RS256 under a per-process RSA key published as a JWKS,
  so a third party (the local host's Easy Auth) validates them as App Service validates Entra ID's (`SigningKey`).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import secrets
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import Enum
from typing import Any

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from devstack.emulator.errors import ArmError

ARM_AUDIENCE = "https://management.azure.com"
KEYVAULT_AUDIENCE = "https://vault.azure.net"
# ARM accepts tokens for either of its historical audiences, with or without the trailing slash.
_ARM_AUDIENCES = frozenset({"https://management.azure.com", "https://management.core.windows.net"})
_ARM_ALLOWED_AUDIENCES_TEXT = (
    "'https://management.core.windows.net/','https://management.core.windows.net',"
    "'https://management.azure.com/','https://management.azure.com'"
)
# App Service managed-identity tokens live about a day; the clients refresh long before that.
DEFAULT_LIFETIME_SECONDS = 24 * 3600
_APP_PRINCIPAL_TYPES = frozenset({"ServicePrincipal", "Application", "ManagedIdentity"})


@dataclass(frozen=True)
class Principal:
    object_id: str
    display_name: str
    tenant_id: str
    principal_type: str
    client_id: str = ""


class _Rejection(Enum):
    MISSING = "missing"
    NOT_BEARER = "not bearer"
    MALFORMED = "malformed"
    EXPIRED = "expired"
    NOT_YET_VALID = "not yet valid"
    WRONG_AUDIENCE = "wrong audience"


class _TokenRejected(Exception):
    def __init__(self, reason: _Rejection, claims: dict | None = None) -> None:
        super().__init__(reason.value)
        self.reason = reason
        self.claims = claims or {}


def normalize_audience(resource: str) -> str:
    """The audience a resource or scope string stands for: no '/.default', no trailing slash, lower case."""
    value = resource.strip()
    if value.endswith("/.default"):
        value = value.removesuffix("/.default")
    return value.rstrip("/").lower()


def keyvault_challenge(tenant_id: str) -> str:
    """The WWW-Authenticate value a vault sends; azure-keyvault's challenge policy reads tenant and resource here."""
    return f'Bearer authorization="https://login.windows.net/{tenant_id}", resource="{KEYVAULT_AUDIENCE}"'


def _b64encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _b64decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _arm_time(epoch: float) -> str:
    # ARM prints token times the .NET way, e.g. '11/4/2019 7:31:25 PM'.
    moment = datetime.fromtimestamp(epoch, UTC)
    hour = moment.hour % 12 or 12
    suffix = "AM" if moment.hour < 12 else "PM"
    return f"{moment.month}/{moment.day}/{moment.year} {hour}:{moment.minute:02d}:{moment.second:02d} {suffix}"


class TokenService:
    def __init__(
        self,
        secret: bytes,
        tenant_id: str,
        *,
        lifetime_seconds: int = DEFAULT_LIFETIME_SECONDS,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._secret = secret
        self.tenant_id = tenant_id
        self._lifetime = lifetime_seconds
        self._clock = clock

    def issue(self, principal: Principal, resource: str) -> tuple[str, int]:
        now = int(self._clock())
        expires_on = now + self._lifetime
        claims = {
            "aud": resource.removesuffix("/.default"),
            "iss": f"https://sts.windows.net/{principal.tenant_id}/",
            "iat": now,
            "nbf": now,
            "exp": expires_on,
            "oid": principal.object_id,
            "sub": principal.object_id,
            "tid": principal.tenant_id,
            "appid": principal.client_id,
            "idtyp": "app" if principal.principal_type in _APP_PRINCIPAL_TYPES else "user",
            "name": principal.display_name,
            "ver": "1.0",
        }
        header = _b64encode(json.dumps({"alg": "HS256", "typ": "JWT"}, separators=(",", ":")).encode())
        payload = _b64encode(json.dumps(claims, separators=(",", ":")).encode())
        return f"{header}.{payload}.{self._sign(f'{header}.{payload}')}", expires_on

    def verify(self, authorization_header: str | None, *, audience: str) -> Principal:
        """The principal a request's Authorization header names; ArmError(401) in the audience's own style."""
        try:
            claims = self._checked_claims(authorization_header, normalize_audience(audience))
        except _TokenRejected as rejected:
            if normalize_audience(audience) == KEYVAULT_AUDIENCE:
                raise self._keyvault_error(rejected) from None
            raise self._arm_error(rejected) from None
        return Principal(
            object_id=claims["oid"],
            display_name=claims.get("name", ""),
            tenant_id=claims["tid"],
            principal_type="ServicePrincipal" if claims.get("idtyp") == "app" else "User",
            client_id=claims.get("appid", ""),
        )

    def _sign(self, signing_input: str) -> str:
        return _b64encode(hmac.new(self._secret, signing_input.encode("ascii"), hashlib.sha256).digest())

    def _checked_claims(self, authorization_header: str | None, audience: str) -> dict:
        if not authorization_header or not authorization_header.strip():
            raise _TokenRejected(_Rejection.MISSING)
        scheme, _, token = authorization_header.strip().partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise _TokenRejected(_Rejection.NOT_BEARER)
        parts = token.strip().split(".")
        if len(parts) != 3 or not hmac.compare_digest(self._sign(f"{parts[0]}.{parts[1]}"), parts[2]):
            raise _TokenRejected(_Rejection.MALFORMED)
        try:
            claims = json.loads(_b64decode(parts[1]))
        except (ValueError, binascii.Error):
            raise _TokenRejected(_Rejection.MALFORMED) from None
        now = self._clock()
        if claims["exp"] <= now:
            raise _TokenRejected(_Rejection.EXPIRED, claims)
        if claims["nbf"] > now:
            raise _TokenRejected(_Rejection.NOT_YET_VALID, claims)
        token_audience = normalize_audience(claims["aud"])
        accepted = _ARM_AUDIENCES if audience in _ARM_AUDIENCES else {audience}
        if token_audience not in accepted:
            raise _TokenRejected(_Rejection.WRONG_AUDIENCE, claims)
        return claims

    def _arm_error(self, rejected: _TokenRejected) -> ArmError:
        code, message = "InvalidAuthenticationToken", "The access token is invalid."
        if rejected.reason is _Rejection.MISSING:
            code, message = "AuthenticationFailed", "Authentication failed. The 'Authorization' header is missing."
        elif rejected.reason is _Rejection.NOT_BEARER:
            code = "AuthenticationFailed"
            message = "Authentication failed. The 'Authorization' header is provided in an invalid format."
        elif rejected.reason is _Rejection.EXPIRED:
            code = "ExpiredAuthenticationToken"
            message = (
                f"The access token expiry UTC time '{_arm_time(rejected.claims['exp'])}' is earlier than current "
                f"UTC time '{_arm_time(self._clock())}'."
            )
        elif rejected.reason is _Rejection.WRONG_AUDIENCE:
            code = "InvalidAuthenticationTokenAudience"
            message = (
                f"The access token has been obtained for wrong audience or resource '{rejected.claims['aud']}'. "
                f"It should exactly match with one of the allowed audiences {_ARM_ALLOWED_AUDIENCES_TEXT}."
            )
        challenge = (
            f'Bearer authorization_uri="https://login.windows.net/{self.tenant_id}", error="invalid_token", '
            f'error_description="{message}"'
        )
        return ArmError(401, code, message, headers={"WWW-Authenticate": challenge})

    def _keyvault_error(self, rejected: _TokenRejected) -> ArmError:
        messages = {
            _Rejection.MISSING: "AKV10000: Request is missing a Bearer or PoP token.",
            _Rejection.NOT_BEARER: "AKV10000: Request is missing a Bearer or PoP token.",
            _Rejection.MALFORMED: "AKV10001: The token signature or format is invalid.",
            _Rejection.EXPIRED: "AKV10013: The token has expired.",
            _Rejection.NOT_YET_VALID: "AKV10013: The token is not yet valid.",
            _Rejection.WRONG_AUDIENCE: (
                f"AKV10022: Invalid audience. Expected {KEYVAULT_AUDIENCE}, found: {rejected.claims.get('aud', '')}."
            ),
        }
        return ArmError(
            401,
            "Unauthorized",
            messages[rejected.reason],
            headers={"WWW-Authenticate": keyvault_challenge(self.tenant_id)},
        )


# --- Microsoft identity platform (v2.0) tokens, RS256 -----------------------------------------------------------------

# Entra ID's access tokens live 60-90 minutes; a fixed hour keeps tests predictable.
ENTRA_LIFETIME_SECONDS = 3600
_RSA_BITS = 2048


def _uint_b64(value: int) -> str:
    return _b64encode(value.to_bytes((value.bit_length() + 7) // 8, "big"))


class SigningKey:
    """An RSA key that signs RS256 JWTs, with its public half as a JWK whose kid is its RFC 7638 thumbprint."""

    def __init__(self, private_key: rsa.RSAPrivateKey, *, kid: str | None = None) -> None:
        self._private_key = private_key
        numbers = private_key.public_key().public_numbers()
        self._public_jwk = {"e": _uint_b64(numbers.e), "kty": "RSA", "n": _uint_b64(numbers.n)}
        thumbprint = hashlib.sha256(json.dumps(self._public_jwk, separators=(",", ":"), sort_keys=True).encode())
        self.kid = kid or _b64encode(thumbprint.digest())

    @classmethod
    def generate(cls, *, kid: str | None = None) -> SigningKey:
        return cls(rsa.generate_private_key(public_exponent=65537, key_size=_RSA_BITS), kid=kid)

    def jwk(self, **extra: str) -> dict[str, str]:
        """The public key as a JWKS entry (as Entra ID publishes them: kty, use, kid, n, e, plus `extra`)."""
        return {"kty": "RSA", "use": "sig", "kid": self.kid, "alg": "RS256", **self._public_jwk, **extra}

    def sign(self, claims: Mapping[str, Any], *, header: Mapping[str, Any] | None = None) -> str:
        """A compact JWS of `claims`: header {typ, alg RS256, kid} (plus `header`), signed with this key."""
        protected = {"typ": "JWT", "alg": "RS256", "kid": self.kid, **(header or {})}
        encoded_header = _b64encode(json.dumps(protected, separators=(",", ":")).encode())
        payload = _b64encode(json.dumps(dict(claims), separators=(",", ":")).encode())
        signing_input = f"{encoded_header}.{payload}".encode("ascii")
        signature = self._private_key.sign(signing_input, padding.PKCS1v15(), hashes.SHA256())
        return f"{encoded_header}.{payload}.{_b64encode(signature)}"


_process_key: SigningKey | None = None
_process_key_lock = threading.Lock()


def entra_signing_key() -> SigningKey:
    """This process's signing key, made on first use: tokens outlive scenario reloads, never a restart."""
    global _process_key  # noqa: PLW0603 - one key per process, made lazily (RSA generation takes tens of ms)
    with _process_key_lock:
        if _process_key is None:
            _process_key = SigningKey.generate()
        return _process_key


def entra_issuer(authority: str, tenant_id: str) -> str:
    """The v2.0 issuer of a tenant under an authority, as Entra ID's: `{authority}/{tenant}/v2.0`."""
    return f"{authority.rstrip('/')}/{tenant_id}/v2.0"


@dataclass(frozen=True)
class EntraTokenRequest:
    """What a v2.0 access token says: who (principal), for which application (audience), via which client."""

    issuer: str
    audience: str
    principal: Principal
    roles: tuple[str, ...] = ()
    groups: tuple[str, ...] = ()


def entra_access_token(
    request: EntraTokenRequest,
    *,
    key: SigningKey | None = None,
    lifetime_seconds: int = ENTRA_LIFETIME_SECONDS,
    clock: Callable[[], float] = time.time,
) -> tuple[str, int]:
    """A v2.0 access token (RS256) and its expiry (epoch seconds).

    Claims as Entra ID's v2.0 access tokens carry them: aud (the application's client id), iss, iat, nbf, exp, azp
    (the caller's client id), azpacr 1 (client secret), idtyp, oid, sub, tid, uti, ver 2.0; name (the display name;
    Entra ID omits it from app-only tokens, the emulator keeps it so Easy Auth has a name to pass on); roles and
    groups only when the principal has any.
    """
    now = int(clock())
    principal = request.principal
    claims: dict[str, Any] = {
        "aud": request.audience,
        "iss": request.issuer,
        "iat": now,
        "nbf": now,
        "exp": now + lifetime_seconds,
        "azp": principal.client_id,
        "azpacr": "1",
        "idtyp": "app" if principal.principal_type in _APP_PRINCIPAL_TYPES else "user",
        "name": principal.display_name,
        "oid": principal.object_id,
        "sub": principal.object_id,
        "tid": principal.tenant_id,
        "uti": secrets.token_urlsafe(16),
        "ver": "2.0",
    }
    if request.roles:
        claims["roles"] = list(request.roles)
    if request.groups:
        claims["groups"] = list(request.groups)
    return (key or entra_signing_key()).sign(claims), claims["exp"]
