"""Easy Auth in front of the host, through the real host subprocess running tests/host/apps/auth_app with the
emulator's env (its Entra ID issuer, JWKS and the broker API's client id), as `make run` starts it."""

from __future__ import annotations

import base64
import json
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from devstack.demo_tokens import bearer_token
from devstack.emulator.testing import EmulatorHandle, running_emulator
from devstack.emulator.tokens import SigningKey, entra_signing_key
from devstack.host.easy_auth import DEFAULT_EXCLUDED_PATHS
from devstack.host.process import REPO_ROOT, HostProcess, HostStartError, start_host

from .helpers import APPS, Reply, call, running_host

OBJECT_ID_CLAIM = "http://schemas.microsoft.com/identity/claims/objectidentifier"
FORGED_ID = "00000000-0000-0000-0000-00000000dead"


@pytest.fixture(scope="module")
def emulator() -> Iterator[EmulatorHandle]:
    with running_emulator() as running:
        yield running


@pytest.fixture(scope="module")
def host(emulator: EmulatorHandle, tmp_path_factory: pytest.TempPathFactory) -> Iterator[HostProcess]:
    log_dir = tmp_path_factory.mktemp("easy-auth-host")
    with running_host(APPS / "auth_app", env=emulator.env, log_dir=log_dir, easy_auth=True) as running:
        yield running


def forged_principal(object_id: str = FORGED_ID) -> str:
    document = {"auth_typ": "aad", "claims": [{"typ": OBJECT_ID_CLAIM, "val": object_id}]}
    return base64.b64encode(json.dumps(document).encode()).decode()


def mint(emulator: EmulatorHandle, *, key: SigningKey | None = None, **changes: Any) -> str:
    """A token like the emulator's for the requester, with `changes` (None drops a claim), signed by `key`."""
    now = int(time.time())
    env = emulator.env
    claims: dict[str, Any] = {
        "aud": env["BROKER_API_CLIENT_ID"],
        "iss": env["DEVSTACK_EASY_AUTH_ISSUER"],
        "iat": now,
        "nbf": now,
        "exp": now + 3600,
        "azp": env["DEMO_REQUESTER_CLIENT_ID"],
        "oid": env["DEMO_REQUESTER_OBJECT_ID"],
        "sub": env["DEMO_REQUESTER_OBJECT_ID"],
        "tid": env["AZURE_TENANT_ID"],
        "ver": "2.0",
    }
    claims.update(changes)
    return (key or entra_signing_key()).sign({name: value for name, value in claims.items() if value is not None})


def whoami(host: HostProcess, token: str | None = None, **headers: str) -> Reply:
    sent = {"x-functions-key": host.function_key, **headers}
    if token is not None:
        sent["Authorization"] = f"Bearer {token}"
    return call(f"{host.url}/api/whoami", headers=sent)


def decoded_principal(reply: Reply) -> dict[str, Any]:
    return json.loads(base64.b64decode(reply.json()["principal"]["x-ms-client-principal"]))


def claim_values(principal: dict[str, Any], claim_type: str) -> list[str]:
    return [claim["val"] for claim in principal["claims"] if claim["typ"] == claim_type]


def assert_refused(reply: Reply, error: str | None = "invalid_token") -> str:
    assert reply.status == 401
    challenge = reply.headers["WWW-Authenticate"]
    assert challenge.startswith("Bearer realm=")
    assert 'resource_id="' in challenge
    if error:
        assert f'error="{error}"' in challenge
    return challenge


def test_no_token_is_401_with_a_bearer_challenge_and_the_app_is_not_invoked(host, emulator):
    before = len(host.invocations())

    reply = whoami(host)

    challenge = assert_refused(reply, error=None)
    assert f'resource_id="{emulator.env["BROKER_API_CLIENT_ID"]}"' in challenge
    assert "/oauth2/v2.0/authorize" in challenge
    assert reply.body == b"You do not have permission to view this directory or page."
    assert len(host.invocations()) == before


def test_a_forged_principal_without_a_token_is_401(host):
    reply = whoami(host, **{"X-MS-CLIENT-PRINCIPAL": forged_principal(), "X-MS-CLIENT-PRINCIPAL-ID": FORGED_ID})

    assert_refused(reply, error=None)


def test_a_token_from_the_token_endpoint_is_accepted_and_its_principal_injected(host, emulator):
    token = bearer_token("requester", emulator.env)
    requester = emulator.env["DEMO_REQUESTER_OBJECT_ID"]

    reply = whoami(host, token)

    assert reply.status == 200
    seen = reply.json()
    assert seen["authorization"] == f"Bearer {token}", "the token itself reaches the app, as in App Service"
    assert seen["websiteAuthEnabled"] == "True"
    assert seen["principal"]["x-ms-client-principal-id"] == requester
    assert seen["principal"]["x-ms-client-principal-name"] == "requester"
    assert seen["principal"]["x-ms-client-principal-idp"] == "aad"
    principal = decoded_principal(reply)
    assert principal["auth_typ"] == "aad"
    assert principal["name_typ"] == "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/name"
    assert principal["role_typ"] == "http://schemas.microsoft.com/ws/2008/06/identity/claims/role"
    assert claim_values(principal, OBJECT_ID_CLAIM) == [requester]
    assert claim_values(principal, "http://schemas.microsoft.com/identity/claims/tenantid") == [
        emulator.env["AZURE_TENANT_ID"]
    ]
    # The demo's deployers group holds the API's Deployments.Request role; the requester is its member.
    assert claim_values(principal, "groups") == ["3f4e5d6c-7b8a-4998-8877-665544332211"]
    assert claim_values(principal, "roles") == ["Deployments.Request"]
    assert all(isinstance(claim["val"], str) for claim in principal["claims"])


def test_client_sent_principal_and_token_headers_are_replaced_by_the_tokens(host, emulator):
    token = bearer_token("reader", emulator.env)
    forged = {
        "X-MS-CLIENT-PRINCIPAL": forged_principal(),
        "X-MS-CLIENT-PRINCIPAL-ID": FORGED_ID,
        "X-MS-CLIENT-PRINCIPAL-NAME": "admin",
        "x-ms-client-principal-idp": "forged",
        "X-MS-TOKEN-AAD-ACCESS-TOKEN": "forged",
    }

    reply = whoami(host, token, **forged)

    seen = reply.json()
    reader = emulator.env["DEMO_READER_OBJECT_ID"]
    assert seen["principal"]["x-ms-client-principal-id"] == reader
    assert seen["principal"]["x-ms-client-principal-name"] == "reader"
    assert seen["principal"]["x-ms-client-principal-idp"] == "aad"
    assert claim_values(decoded_principal(reply), OBJECT_ID_CLAIM) == [reader]
    assert seen["tokens"] == []
    # The reader is in no group and holds no app role: no such claims.
    assert claim_values(decoded_principal(reply), "groups") == []
    assert claim_values(decoded_principal(reply), "roles") == []


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"iss": "https://login.microsoftonline.com/72f988bf-86f1-41af-91ab-2d7cd011db47/v2.0"}, "issuer"),
        ({"aud": "https://management.azure.com"}, "audience"),
        ({"aud": None}, "audience"),
        ({"exp": int(time.time()) - 3600}, "expired"),
        ({"nbf": int(time.time()) + 3600}, "not valid yet"),
        ({"exp": None}, "exp"),
    ],
)
def test_a_token_failing_a_check_is_401_saying_which(host, emulator, changes, reason):
    reply = whoami(host, mint(emulator, **changes))

    assert reason in assert_refused(reply)


def test_expiry_allows_five_minutes_of_clock_skew(host, emulator):
    assert whoami(host, mint(emulator, exp=int(time.time()) - 60)).status == 200
    assert whoami(host, mint(emulator, nbf=int(time.time()) + 60)).status == 200


def test_both_audiences_infra_allows_are_accepted(host, emulator):
    client_id = emulator.env["BROKER_API_CLIENT_ID"]

    assert whoami(host, mint(emulator, aud=client_id)).status == 200
    assert whoami(host, mint(emulator, aud=f"api://{client_id}")).status == 200


def test_a_token_signed_by_another_key_is_401_even_naming_the_emulators_kid(host, emulator):
    impostor = SigningKey.generate(kid=entra_signing_key().kid)

    reply = whoami(host, mint(emulator, key=impostor))

    assert "signature" in assert_refused(reply)


def test_a_tampered_token_is_401(host, emulator):
    header, payload, signature = mint(emulator).split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims["oid"] = FORGED_ID
    forged_payload = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()

    reply = whoami(host, f"{header}.{forged_payload}.{signature}")

    assert "signature" in assert_refused(reply)


def test_a_key_the_issuer_does_not_publish_is_401(host, emulator):
    reply = whoami(host, mint(emulator, key=SigningKey.generate()))

    assert "signing key" in assert_refused(reply)


@pytest.mark.parametrize("token", ["not-a-jwt", "a.b.c", "eyJhbGciOiJub25lIn0.eyJvaWQiOiJ4In0."])
def test_garbage_and_unsigned_tokens_are_401(host, token):
    assert_refused(whoami(host, token))


def test_an_emulator_service_token_is_not_accepted(host, emulator):
    """The managed-identity endpoint's ARM tokens (HS256, sts.windows.net issuer) are no tokens for the API."""
    credential = emulator.credential(emulator.env["DEMO_REQUESTER_OBJECT_ID"])
    service_token = credential.get_token(emulator.env["BROKER_API_SCOPE"]).token

    assert "RS256" in assert_refused(whoami(host, service_token))


def test_a_basic_authorization_header_is_no_token(host):
    assert_refused(whoami(host, **{"Authorization": "Basic dXNlcjpwYXNz"}), error=None)


def test_easy_auth_covers_anonymous_functions_and_unknown_paths(host):
    assert call(f"{host.url}/api/open").status == 401
    assert call(f"{host.url}/api/no-such-route").status == 401, "authentication comes before routing"


def test_excluded_paths_are_anonymous_but_still_lose_forged_headers(host, emulator):
    anonymous = call(f"{host.url}/api/health", headers={"X-MS-CLIENT-PRINCIPAL-ID": FORGED_ID})
    signed_in = call(
        f"{host.url}/api/health", headers={"Authorization": f"Bearer {bearer_token('requester', emulator.env)}"}
    )
    with_bad_token = call(f"{host.url}/api/health", headers={"Authorization": "Bearer not-a-jwt"})

    assert anonymous.status == 200
    assert anonymous.json()["principal"] == {}
    assert signed_in.json()["principal"]["x-ms-client-principal-id"] == emulator.env["DEMO_REQUESTER_OBJECT_ID"]
    assert with_bad_token.status == 200
    assert with_bad_token.json()["principal"] == {}


def test_function_keys_still_apply_behind_easy_auth(host, emulator):
    token = bearer_token("requester", emulator.env)

    reply = call(f"{host.url}/api/whoami", headers={"Authorization": f"Bearer {token}"})

    assert reply.status == 401
    assert "WWW-Authenticate" not in reply.headers, "the host's key check, not Easy Auth, refused it"


def test_the_admin_api_is_behind_the_master_key_only(host):
    reply = call(f"{host.url}/admin/host/status", headers={"x-functions-key": host.master_key})

    assert reply.status == 200


def test_the_default_excluded_paths_are_the_ones_infra_configures():
    bicep = (REPO_ROOT / "infra" / "main.bicep").read_text(encoding="utf-8")
    block = re.search(r"authExcludedPaths:\s*\[(.*?)\]", bicep, re.DOTALL)

    assert block is not None
    assert tuple(re.findall(r"'([^']+)'", block.group(1))) == DEFAULT_EXCLUDED_PATHS


def test_the_allowed_applications_policy_answers_403_to_other_clients(emulator, tmp_path):
    env = {**emulator.env, "DEVSTACK_EASY_AUTH_ALLOWED_APPLICATIONS": emulator.env["DEMO_REQUESTER_CLIENT_ID"]}
    with running_host(APPS / "auth_app", env=env, log_dir=tmp_path, easy_auth=True) as restricted:
        allowed = whoami(restricted, bearer_token("requester", emulator.env))
        refused = whoami(restricted, bearer_token("reader", emulator.env))

    assert allowed.status == 200
    assert refused.status == 403


def test_without_easy_auth_headers_pass_as_sent_and_website_auth_enabled_is_unset(emulator, tmp_path):
    with running_host(APPS / "auth_app", env=emulator.env, log_dir=tmp_path, easy_auth=False) as bare:
        reply = whoami(bare, **{"X-MS-CLIENT-PRINCIPAL-ID": FORGED_ID})
        log = bare.log_text()

    assert reply.status == 200
    assert reply.json()["principal"] == {"x-ms-client-principal-id": FORGED_ID}
    assert reply.json()["websiteAuthEnabled"] is None
    assert "Easy Auth off" in log


def test_the_environment_can_turn_easy_auth_off_too(emulator, tmp_path):
    env = {**emulator.env, "DEVSTACK_EASY_AUTH": "false"}
    with running_host(APPS / "auth_app", env=env, log_dir=tmp_path, easy_auth=True) as bare:
        assert whoami(bare, **{"X-MS-CLIENT-PRINCIPAL-ID": FORGED_ID}).status == 200


def test_easy_auth_on_without_its_settings_stops_the_start_naming_them(tmp_path):
    # Empty values too, in case the shell running the tests sourced the stack's env file.
    unset = {"DEVSTACK_EASY_AUTH": "", "DEVSTACK_EASY_AUTH_ISSUER": "", "DEVSTACK_EASY_AUTH_CLIENT_ID": ""}
    with pytest.raises(HostStartError) as raised:
        start_host(APPS / "auth_app", env=unset, log_path=Path(tmp_path) / "host.log")

    message = str(raised.value)
    assert "DEVSTACK_EASY_AUTH_ISSUER" in message
    assert "DEVSTACK_EASY_AUTH_CLIENT_ID" in message
    assert "--no-easy-auth" in message
