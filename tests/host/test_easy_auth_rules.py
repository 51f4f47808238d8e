"""Easy Auth's rules in process: settings, the client principal's format, header hygiene and signing-key refresh."""

from __future__ import annotations

import asyncio
import base64
import json
import time
from typing import Any

import pytest

from devstack.emulator.tokens import SigningKey
from devstack.host.easy_auth import (
    DEFAULT_EXCLUDED_PATHS,
    EasyAuth,
    EasyAuthConfig,
    EasyAuthConfigError,
    SigningKeys,
    TokenRejectedError,
    client_principal,
    easy_auth_requested,
    principal_headers,
    without_reserved_headers,
)

ISSUER = "https://127.0.0.1:1/tenant/v2.0"
CLIENT_ID = "5d6e7f80-91a2-4b3c-8d4e-a5b6c7d8e9f0"
SETTINGS = {"DEVSTACK_EASY_AUTH_ISSUER": ISSUER, "DEVSTACK_EASY_AUTH_CLIENT_ID": CLIENT_ID}
OID = "6a2e4c8f-1b3d-4e5f-a6b7-c8d9e0f1a2b3"


def test_audiences_default_to_what_infra_sets_and_paths_to_its_excluded_paths():
    config = EasyAuthConfig.from_environ(SETTINGS)

    assert config.issuer == ISSUER
    assert config.allowed_audiences == (f"api://{CLIENT_ID}", CLIENT_ID)
    assert config.excluded_paths == DEFAULT_EXCLUDED_PATHS
    assert DEFAULT_EXCLUDED_PATHS[:2] == ("/api/health", "/api/openapi.json")
    assert config.allowed_applications == ()


def test_lists_come_comma_separated_and_an_empty_excluded_list_excludes_nothing():
    config = EasyAuthConfig.from_environ(
        {
            **SETTINGS,
            "DEVSTACK_EASY_AUTH_ALLOWED_AUDIENCES": " api://broker , other ",
            "DEVSTACK_EASY_AUTH_ALLOWED_APPLICATIONS": "app-1,app-2",
            "DEVSTACK_EASY_AUTH_EXCLUDED_PATHS": "",
        }
    )

    assert config.allowed_audiences == ("api://broker", "other")
    assert config.allowed_applications == ("app-1", "app-2")
    assert not config.is_excluded("/api/health")


def test_excluded_paths_match_whatever_the_case_and_trailing_slash():
    config = EasyAuthConfig.from_environ(SETTINGS)

    assert config.is_excluded("/api/health")
    assert config.is_excluded("/API/Health/")
    assert not config.is_excluded("/api/health/more")
    assert not config.is_excluded("/api/healthz")


@pytest.mark.parametrize(
    ("environ", "message"),
    [
        ({}, "DEVSTACK_EASY_AUTH_ISSUER and DEVSTACK_EASY_AUTH_CLIENT_ID are not set"),
        ({"DEVSTACK_EASY_AUTH_ISSUER": ISSUER}, "DEVSTACK_EASY_AUTH_CLIENT_ID is not set"),
        ({**SETTINGS, "DEVSTACK_EASY_AUTH_ISSUER": "http://127.0.0.1/t/v2.0"}, "must be an https URL"),
    ],
)
def test_settings_that_cannot_work_are_refused(environ, message):
    with pytest.raises(EasyAuthConfigError, match=message):
        EasyAuthConfig.from_environ(environ)


@pytest.mark.parametrize(
    ("value", "flag", "expected"),
    [
        (None, False, True),
        ("", False, True),
        ("true", False, True),
        ("False", False, False),
        ("0", False, False),
        ("true", True, False),
    ],
)
def test_easy_auth_is_on_unless_the_flag_or_the_setting_turns_it_off(value, flag, expected):
    environ = {} if value is None else {"DEVSTACK_EASY_AUTH": value}

    assert easy_auth_requested(environ, disabled_by_flag=flag) is expected


def test_a_setting_that_is_no_boolean_is_refused():
    with pytest.raises(EasyAuthConfigError, match="neither true nor false"):
        easy_auth_requested({"DEVSTACK_EASY_AUTH": "maybe"})


def test_the_client_principal_maps_claim_names_and_lists_every_value_as_a_string():
    claims = {
        "aud": CLIENT_ID,
        "exp": 1700000000,
        "oid": OID,
        "sub": OID,
        "tid": "tenant",
        "scp": "user_impersonation",
        "roles": ["A", "B"],
        "groups": ["g1"],
        "xms_flag": True,
        "cnf": {"kid": "x"},
    }

    principal = client_principal(claims)

    assert principal["auth_typ"] == "aad"
    assert principal["claims"] == [
        {"typ": "aud", "val": CLIENT_ID},
        {"typ": "exp", "val": "1700000000"},
        {"typ": "http://schemas.microsoft.com/identity/claims/objectidentifier", "val": OID},
        {"typ": "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/nameidentifier", "val": OID},
        {"typ": "http://schemas.microsoft.com/identity/claims/tenantid", "val": "tenant"},
        {"typ": "http://schemas.microsoft.com/identity/claims/scope", "val": "user_impersonation"},
        {"typ": "roles", "val": "A"},
        {"typ": "roles", "val": "B"},
        {"typ": "groups", "val": "g1"},
        {"typ": "xms_flag", "val": "true"},
        {"typ": "cnf", "val": '{"kid":"x"}'},
    ]


def test_the_injected_headers_name_the_object_id_and_the_best_name_claim():
    headers = principal_headers({"oid": OID, "name": "Ada", "preferred_username": "ada@contoso.example"})

    assert headers["X-MS-CLIENT-PRINCIPAL-ID"] == OID
    assert headers["X-MS-CLIENT-PRINCIPAL-NAME"] == "ada@contoso.example"
    assert headers["X-MS-CLIENT-PRINCIPAL-IDP"] == "aad"
    assert json.loads(base64.b64decode(headers["X-MS-CLIENT-PRINCIPAL"]))["claims"][0]["val"] == OID
    assert principal_headers({"sub": "s", "azp": "app"})["X-MS-CLIENT-PRINCIPAL-ID"] == "s"
    assert principal_headers({"sub": "s", "azp": "app"})["X-MS-CLIENT-PRINCIPAL-NAME"] == "app"


def test_only_app_service_may_set_principal_and_token_headers():
    headers = {
        "X-MS-CLIENT-PRINCIPAL": "x",
        "x-ms-client-principal-id": "x",
        "X-MS-CLIENT-PRINCIPAL-NAME": "x",
        "X-MS-Client-Principal-Idp": "x",
        "X-MS-TOKEN-AAD-ID-TOKEN": "x",
        "X-MS-Other": "kept",
        "Authorization": "Bearer kept",
    }

    assert without_reserved_headers(headers) == {"X-MS-Other": "kept", "Authorization": "Bearer kept"}


class CountingIssuer:
    """An issuer's discovery document and JWKS as plain data, counting how often they are read."""

    def __init__(self, *keys: SigningKey) -> None:
        self.keys = list(keys)
        self.reads = 0
        self.down = False

    def fetch(self, url: str) -> dict[str, Any]:
        if self.down:
            raise ValueError("connection refused")
        if url.endswith("/.well-known/openid-configuration"):
            self.reads += 1
            return {"issuer": ISSUER, "jwks_uri": f"{ISSUER}/keys"}
        return {"keys": [key.jwk() for key in self.keys]}


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _token(key: SigningKey, **changes: Any) -> str:
    now = int(time.time())
    claims = {"aud": CLIENT_ID, "iss": ISSUER, "iat": now, "nbf": now, "exp": now + 600, "oid": OID, **changes}
    return key.sign(claims)


def test_signing_keys_are_read_once_and_again_only_for_an_unknown_kid_after_the_refresh_interval():
    first, rolled = SigningKey.generate(), SigningKey.generate()
    issuer, clock = CountingIssuer(first), Clock()
    easy_auth = EasyAuth(EasyAuthConfig.from_environ(SETTINGS), keys=SigningKeys(ISSUER, issuer.fetch, clock=clock))

    async def scenario() -> list[Any]:
        outcomes: list[Any] = []
        for token in (_token(first), _token(first), _token(rolled)):
            try:
                outcomes.append((await easy_auth.validate(f"Bearer {token}"))["oid"])
            except TokenRejectedError as rejected:
                outcomes.append(rejected.reason)
        issuer.keys.append(rolled)
        outcomes.append(issuer.reads)
        # Within the refresh interval an unknown kid does not refetch (forged kids must not flood the issuer) ...
        outcomes.append(await easy_auth._keys.key(rolled.kid) is None)
        clock.now += 31
        # ... after it, the rolled key is found.
        outcomes.append((await easy_auth.validate(f"Bearer {_token(rolled)}"))["oid"])
        outcomes.append(issuer.reads)
        return outcomes

    outcomes = asyncio.run(scenario())

    assert outcomes[:2] == [OID, OID]
    assert "signing key" in outcomes[2]
    assert outcomes[3:] == [1, True, OID, 2]


def test_an_unreachable_issuer_rejects_tokens_rather_than_trusting_them():
    issuer = CountingIssuer(SigningKey.generate())
    issuer.down = True
    easy_auth = EasyAuth(EasyAuthConfig.from_environ(SETTINGS), keys=SigningKeys(ISSUER, issuer.fetch))

    async def attempt() -> str:
        try:
            await easy_auth.validate(f"Bearer {_token(issuer.keys[0])}")
        except TokenRejectedError as rejected:
            return rejected.reason
        return "accepted"

    assert "signing key" in asyncio.run(attempt())


def test_a_refusal_of_an_excluded_path_lets_the_request_through_without_a_principal():
    easy_auth = EasyAuth(EasyAuthConfig.from_environ(SETTINGS), keys=SigningKeys(ISSUER, CountingIssuer().fetch))

    decision = asyncio.run(easy_auth.decide("/api/health", {"Authorization": "Bearer x", "X-MS-CLIENT-PRINCIPAL": "f"}))

    assert decision.passes
    assert decision.headers == {"Authorization": "Bearer x"}
    assert decision.principal == {}
