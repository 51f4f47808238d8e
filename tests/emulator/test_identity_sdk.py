"""azure-identity's managed-identity credentials, unchanged, against the emulator's App Service endpoint."""

import base64
import json
import time

import pytest
import requests
from azure.core.exceptions import ClientAuthenticationError
from azure.identity import DefaultAzureCredential, ManagedIdentityCredential

ARM_SCOPE = "https://management.azure.com/.default"


def oid_of(token: str) -> str:
    payload = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))["oid"]


def test_managed_identity_credential_gets_a_broker_token(emulator_env):
    token = ManagedIdentityCredential().get_token(ARM_SCOPE)

    assert oid_of(token.token) == emulator_env["DEMO_BROKER_OBJECT_ID"]
    assert token.expires_on > time.time() + 3000


def test_default_azure_credential_finds_the_managed_identity(emulator_env):
    credential = DefaultAzureCredential(exclude_interactive_browser_credential=True)

    token = credential.get_token("https://vault.azure.net/.default")

    assert oid_of(token.token) == emulator_env["DEMO_BROKER_OBJECT_ID"]


def test_client_id_selects_another_scenario_principal(emulator_env):
    credential = ManagedIdentityCredential(client_id=emulator_env["DEMO_READER_CLIENT_ID"])

    assert oid_of(credential.get_token(ARM_SCOPE).token) == emulator_env["DEMO_READER_OBJECT_ID"]


def test_object_id_selects_a_principal_too(emulator_env):
    credential = ManagedIdentityCredential(identity_config={"object_id": emulator_env["DEMO_REQUESTER_OBJECT_ID"]})

    assert oid_of(credential.get_token(ARM_SCOPE).token) == emulator_env["DEMO_REQUESTER_OBJECT_ID"]


def test_resource_id_selects_the_identity_named_by_its_last_segment(emulator_env):
    resource_id = (
        f"/subscriptions/{emulator_env['AZURE_SUBSCRIPTION_ID']}/resourceGroups/{emulator_env['AZURE_RESOURCE_GROUP']}"
        "/providers/Microsoft.ManagedIdentity/userAssignedIdentities/reader"
    )
    credential = ManagedIdentityCredential(identity_config={"resource_id": resource_id})

    assert oid_of(credential.get_token(ARM_SCOPE).token) == emulator_env["DEMO_READER_OBJECT_ID"]


def test_groups_get_no_tokens(emulator):
    group = next(item for item in emulator.state.scenario.principals if item["type"] == "Group")
    response = requests.get(
        emulator.env["IDENTITY_ENDPOINT"],
        params={
            "api-version": "2019-08-01",
            "resource": "https://management.azure.com/",
            "object_id": group["objectId"],
        },
        headers={"X-IDENTITY-HEADER": emulator.env["IDENTITY_HEADER"]},
        verify=emulator.ca_bundle,
        timeout=10,
    )

    assert response.status_code == 400
    assert "is a group" in response.json()["message"]


def test_unknown_client_id_fails_the_credential(emulator_env):
    credential = ManagedIdentityCredential(client_id="99999999-9999-9999-9999-999999999999")

    with pytest.raises(ClientAuthenticationError, match="No managed identity found for client_id"):
        credential.get_token(ARM_SCOPE)


def test_wrong_identity_header_fails_the_credential(emulator_env, monkeypatch):
    monkeypatch.setenv("IDENTITY_HEADER", "not-the-secret")

    with pytest.raises(ClientAuthenticationError, match="401"):
        ManagedIdentityCredential().get_token(ARM_SCOPE)


def test_endpoint_speaks_the_app_service_protocol(emulator_env):
    endpoint, header = emulator_env["IDENTITY_ENDPOINT"], emulator_env["IDENTITY_HEADER"]
    params = {"api-version": "2019-08-01", "resource": "https://management.azure.com/"}

    issued = requests.get(endpoint, params=params, headers={"X-IDENTITY-HEADER": header}, timeout=10)
    missing_header = requests.get(endpoint, params=params, timeout=10)
    old_version = requests.get(
        endpoint, params={**params, "api-version": "2017-09-01"}, headers={"X-IDENTITY-HEADER": header}, timeout=10
    )

    body = issued.json()
    assert issued.status_code == 200
    assert set(body) == {"access_token", "expires_on", "resource", "token_type", "client_id"}
    assert body["resource"] == "https://management.azure.com/"
    assert body["token_type"] == "Bearer"
    assert isinstance(body["expires_on"], str)
    assert int(body["expires_on"]) > time.time()
    assert missing_header.status_code == 401
    assert missing_header.json()["statusCode"] == 401
    assert old_version.status_code == 400


def test_arm_refuses_requests_without_a_valid_token(emulator_env):
    url = (
        f"{emulator_env['AZURE_RESOURCE_MANAGER_URL']}/subscriptions/{emulator_env['AZURE_SUBSCRIPTION_ID']}"
        "/providers/Microsoft.Authorization/permissions?api-version=2022-04-01"
    )

    anonymous = requests.get(url, timeout=10)
    forged = requests.get(url, headers={"Authorization": "Bearer a.b.c"}, timeout=10)
    vault_token = ManagedIdentityCredential().get_token("https://vault.azure.net/.default").token
    wrong_audience = requests.get(url, headers={"Authorization": f"Bearer {vault_token}"}, timeout=10)

    assert anonymous.status_code == forged.status_code == wrong_audience.status_code == 401
    assert anonymous.json()["error"]["code"] == "AuthenticationFailed"
    assert forged.json()["error"] == {"code": "InvalidAuthenticationToken", "message": "The access token is invalid."}
    assert wrong_audience.json()["error"]["code"] == "InvalidAuthenticationTokenAudience"
    assert anonymous.headers["WWW-Authenticate"].startswith("Bearer authorization_uri=")
