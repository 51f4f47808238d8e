"""Token issue and verification, and the 401s ARM and Key Vault send for missing, forged or stale tokens."""

import base64
import json

import pytest

from devstack.emulator.errors import ArmError
from devstack.emulator.tokens import ARM_AUDIENCE, KEYVAULT_AUDIENCE, Principal, TokenService

TENANT = "72f988bf-86f1-41af-91ab-2d7cd011db47"
BROKER = Principal("aaaaaaaa-0000-0000-0000-000000000001", "broker", TENANT, "ServicePrincipal", "client-1")


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock(1_700_000_000.0)


@pytest.fixture
def service(clock: Clock) -> TokenService:
    return TokenService(b"k" * 32, TENANT, lifetime_seconds=3600, clock=clock)


def claims_of(token: str) -> dict:
    payload = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))


def rejection(service: TokenService, header: str | None, audience: str = ARM_AUDIENCE) -> ArmError:
    with pytest.raises(ArmError) as caught:
        service.verify(header, audience=audience)
    assert caught.value.status == 401
    return caught.value


def test_issued_token_is_a_jwt_naming_the_principal(service, clock):
    token, expires_on = service.issue(BROKER, "https://management.azure.com/")

    claims = claims_of(token)
    assert expires_on == int(clock.now) + 3600
    assert claims["oid"] == BROKER.object_id
    assert claims["tid"] == TENANT
    assert claims["appid"] == "client-1"
    assert claims["aud"] == "https://management.azure.com/"
    assert claims["exp"] == expires_on
    assert claims["iss"] == f"https://sts.windows.net/{TENANT}/"
    assert service.verify(f"Bearer {token}", audience=ARM_AUDIENCE) == BROKER


@pytest.mark.parametrize(
    "resource",
    [
        "https://management.azure.com",
        "https://management.azure.com/",
        "https://management.azure.com/.default",
        "https://management.core.windows.net/",
    ],
)
def test_arm_accepts_its_audiences_with_or_without_slash_and_default(service, resource):
    token, _ = service.issue(BROKER, resource)

    assert service.verify(f"bearer {token}", audience=ARM_AUDIENCE).object_id == BROKER.object_id


def test_missing_header_is_authentication_failed_with_a_challenge(service):
    error = rejection(service, None)

    assert error.code == "AuthenticationFailed"
    assert error.message == "Authentication failed. The 'Authorization' header is missing."
    assert error.headers["WWW-Authenticate"].startswith(
        f'Bearer authorization_uri="https://login.windows.net/{TENANT}"'
    )


def test_non_bearer_header_is_an_invalid_format(service):
    assert "invalid format" in rejection(service, "Basic dXNlcjpwYXNz").message


def test_forged_signature_is_an_invalid_token(service):
    token, _ = service.issue(BROKER, ARM_AUDIENCE)
    other, _ = TokenService(b"x" * 32, TENANT).issue(BROKER, ARM_AUDIENCE)
    header, payload, _ = token.split(".")

    for forged in (other, f"{header}.{payload}.AAAA", "not-a-jwt", f"{header}.{payload}"):
        error = rejection(service, f"Bearer {forged}")
        assert (error.code, error.message) == ("InvalidAuthenticationToken", "The access token is invalid.")


def test_expired_token_names_both_times(service, clock):
    token, _ = service.issue(BROKER, ARM_AUDIENCE)
    clock.now += 3600 + 61

    error = rejection(service, f"Bearer {token}")

    assert error.code == "ExpiredAuthenticationToken"
    assert error.message == (
        "The access token expiry UTC time '11/14/2023 11:13:20 PM' is earlier than current UTC time "
        "'11/14/2023 11:14:21 PM'."
    )


def test_token_for_another_audience_is_refused(service):
    vault_token, _ = service.issue(BROKER, KEYVAULT_AUDIENCE)
    arm_token, _ = service.issue(BROKER, ARM_AUDIENCE)

    arm_error = rejection(service, f"Bearer {vault_token}")
    vault_error = rejection(service, f"Bearer {arm_token}", audience=KEYVAULT_AUDIENCE)

    assert arm_error.code == "InvalidAuthenticationTokenAudience"
    assert "wrong audience or resource 'https://vault.azure.net'" in arm_error.message
    assert vault_error.code == "Unauthorized"
    assert vault_error.message.startswith("AKV10022: Invalid audience. Expected https://vault.azure.net")


def test_key_vault_rejections_carry_the_vault_challenge(service):
    error = rejection(service, None, audience=KEYVAULT_AUDIENCE)

    assert error.body() == {
        "error": {"code": "Unauthorized", "message": "AKV10000: Request is missing a Bearer or PoP token."}
    }
    assert error.headers["WWW-Authenticate"] == (
        f'Bearer authorization="https://login.windows.net/{TENANT}", resource="https://vault.azure.net"'
    )
