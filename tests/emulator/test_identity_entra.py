"""The emulator's Entra ID: azure-identity's ClientSecretCredential, unchanged, against its OpenID configuration and
token endpoint, and its tokens checked with PyJWT (MSAL's own JWT library) against the JWKS it publishes."""

from __future__ import annotations

import base64
import json
import time
from typing import Any

import jwt
import pytest
import requests
from azure.core.exceptions import ClientAuthenticationError
from azure.identity import ClientSecretCredential
from azure.mgmt.authorization import AuthorizationManagementClient

from devstack.emulator.testing import EmulatorHandle, running_emulator

ARM_SCOPE = "https://management.azure.com/.default"
DEPLOYERS_GROUP = "3f4e5d6c-7b8a-4998-8877-665544332211"


def credential(emulator: EmulatorHandle, role: str = "requester", *, secret: str | None = None, **options: Any):
    env = emulator.env
    return ClientSecretCredential(
        env["AZURE_TENANT_ID"],
        env[f"DEMO_{role.upper()}_CLIENT_ID"],
        secret if secret is not None else env[f"DEMO_{role.upper()}_CLIENT_SECRET"],
        authority=env["EMULATOR_AUTHORITY"],
        disable_instance_discovery=True,
        connection_verify=emulator.ca_bundle,
        **options,
    )


def discovery(emulator: EmulatorHandle) -> dict[str, Any]:
    url = f"{emulator.env['DEVSTACK_EASY_AUTH_ISSUER']}/.well-known/openid-configuration"
    response = requests.get(url, verify=emulator.ca_bundle, timeout=10)
    assert response.status_code == 200
    return response.json()


def verified_claims(emulator: EmulatorHandle, token: str) -> dict[str, Any]:
    """The token's claims, as a relying party checks them: key from the JWKS, RS256, audience, issuer, lifetime."""
    document = discovery(emulator)
    jwks = requests.get(document["jwks_uri"], verify=emulator.ca_bundle, timeout=10).json()
    kid = jwt.get_unverified_header(token)["kid"]
    key = next(jwt.PyJWK(item) for item in jwks["keys"] if item["kid"] == kid)
    return jwt.decode(
        token,
        key.key,
        algorithms=["RS256"],
        audience=emulator.env["BROKER_API_CLIENT_ID"],
        issuer=document["issuer"],
        options={"require": ["exp", "iat", "nbf", "aud", "iss", "sub"]},
    )


def test_client_secret_credential_gets_a_v2_token_for_the_broker_api(emulator):
    env = emulator.env
    started = time.time()

    token = credential(emulator).get_token(env["BROKER_API_SCOPE"])

    claims = verified_claims(emulator, token.token)
    assert jwt.get_unverified_header(token.token)["alg"] == "RS256"
    assert claims["iss"] == f"{env['EMULATOR_AUTHORITY']}/{env['AZURE_TENANT_ID']}/v2.0"
    assert claims["aud"] == env["BROKER_API_CLIENT_ID"], "v2.0 tokens name the API by its client id"
    assert claims["oid"] == claims["sub"] == env["DEMO_REQUESTER_OBJECT_ID"]
    assert claims["tid"] == env["AZURE_TENANT_ID"]
    assert claims["azp"] == env["DEMO_REQUESTER_CLIENT_ID"]
    assert claims["ver"] == "2.0"
    assert claims["nbf"] <= claims["iat"] <= time.time()
    assert claims["exp"] - claims["iat"] == 3600
    assert token.expires_on >= int(started) + 3500
    assert claims["groups"] == [DEPLOYERS_GROUP]
    assert claims["roles"] == ["Deployments.Request"], "through the deployers group's app role assignment"


def test_a_principal_in_no_group_and_holding_no_role_gets_neither_claim(emulator):
    claims = verified_claims(emulator, credential(emulator, "reader").get_token(emulator.env["BROKER_API_SCOPE"]).token)

    assert claims["oid"] == emulator.env["DEMO_READER_OBJECT_ID"]
    assert "groups" not in claims
    assert "roles" not in claims


def test_the_api_may_be_named_by_its_client_id_too(emulator):
    token = credential(emulator).get_token(f"{emulator.env['BROKER_API_CLIENT_ID']}/.default")

    assert verified_claims(emulator, token.token)["aud"] == emulator.env["BROKER_API_CLIENT_ID"]


def test_the_credential_caches_its_token(emulator):
    signed_in = credential(emulator)
    scope = emulator.env["BROKER_API_SCOPE"]
    emulator.admin.clear_requests()

    first, second = signed_in.get_token(scope), signed_in.get_token(scope)

    assert first.token == second.token
    counts = emulator.admin.requests()["counts"]
    assert counts == {
        "GET arm:/{tenant}/v2.0/.well-known/openid-configuration": 1,
        "POST arm:/{tenant}/oauth2/v2.0/token": 1,
    }, "discovery and sign-in once, then the cache"


def test_the_same_credential_gets_arm_tokens_the_emulated_arm_accepts(emulator):
    """Role assignments at the requester's own project, read as the requester with the client-secret credential."""
    client = AuthorizationManagementClient(
        credential(emulator),
        emulator.env["AZURE_SUBSCRIPTION_ID"],
        base_url=emulator.arm_url,
        connection_verify=emulator.ca_bundle,
    )

    assignments = list(client.role_assignments.list_for_scope(emulator.workspace_path("demo-project")))

    assert emulator.env["DEMO_REQUESTER_OBJECT_ID"] in {item.principal_id for item in assignments}


def test_a_wrong_secret_is_refused_with_entras_error(emulator):
    with pytest.raises(ClientAuthenticationError, match="AADSTS7000215"):
        credential(emulator, secret="not-the-secret").get_token(emulator.env["BROKER_API_SCOPE"])


def test_an_unknown_client_is_refused(emulator):
    env = emulator.env
    stranger = ClientSecretCredential(
        env["AZURE_TENANT_ID"],
        "0e0e0e0e-0000-4000-8000-000000000000",
        "whatever",
        authority=env["EMULATOR_AUTHORITY"],
        disable_instance_discovery=True,
        connection_verify=emulator.ca_bundle,
    )

    with pytest.raises(ClientAuthenticationError, match="AADSTS700016"):
        stranger.get_token(env["BROKER_API_SCOPE"])


def test_an_unknown_resource_is_refused(emulator):
    with pytest.raises(ClientAuthenticationError, match="AADSTS500011"):
        credential(emulator).get_token("api://no-such-application/.default")


def test_an_unknown_tenant_fails_discovery(emulator):
    env = emulator.env
    elsewhere = ClientSecretCredential(
        "11111111-2222-3333-4444-555555555555",
        env["DEMO_REQUESTER_CLIENT_ID"],
        env["DEMO_REQUESTER_CLIENT_SECRET"],
        authority=env["EMULATOR_AUTHORITY"],
        disable_instance_discovery=True,
        connection_verify=emulator.ca_bundle,
    )

    with pytest.raises(ClientAuthenticationError, match="Unable to get authority configuration"):
        elsewhere.get_token(env["BROKER_API_SCOPE"])


def test_the_openid_configuration_names_the_endpoints_msal_reads(emulator):
    env = emulator.env
    document = discovery(emulator)
    base = f"{env['EMULATOR_AUTHORITY']}/{env['AZURE_TENANT_ID']}"

    assert document["issuer"] == env["DEVSTACK_EASY_AUTH_ISSUER"] == f"{base}/v2.0"
    assert document["token_endpoint"] == f"{base}/oauth2/v2.0/token"
    assert document["authorization_endpoint"] == f"{base}/oauth2/v2.0/authorize"
    assert document["jwks_uri"] == f"{base}/discovery/v2.0/keys"
    assert document["id_token_signing_alg_values_supported"] == ["RS256"]


def test_the_jwks_publishes_one_rsa_signing_key(emulator):
    jwks = requests.get(discovery(emulator)["jwks_uri"], verify=emulator.ca_bundle, timeout=10).json()

    [key] = jwks["keys"]
    assert key["kty"] == "RSA"
    assert key["use"] == "sig"
    assert key["kid"]
    assert key["issuer"] == emulator.env["DEVSTACK_EASY_AUTH_ISSUER"]
    assert len(base64.urlsafe_b64decode(key["n"] + "==")) * 8 == 2048


def _token_request(emulator: EmulatorHandle, data: dict[str, str], **kwargs: Any) -> requests.Response:
    return requests.post(
        discovery(emulator)["token_endpoint"], data=data, verify=emulator.ca_bundle, timeout=10, **kwargs
    )


def test_client_secret_basic_authentication_works_too(emulator):
    env = emulator.env
    basic = (env["DEMO_READER_CLIENT_ID"], env["DEMO_READER_CLIENT_SECRET"])

    response = _token_request(
        emulator, {"grant_type": "client_credentials", "scope": env["BROKER_API_SCOPE"]}, auth=basic
    )

    assert response.status_code == 200
    body = response.json()
    assert body["token_type"] == "Bearer"
    assert 3590 <= body["expires_in"] <= 3600
    assert response.headers["Cache-Control"] == "no-store"
    assert verified_claims(emulator, body["access_token"])["oid"] == env["DEMO_READER_OBJECT_ID"]


@pytest.mark.parametrize(
    ("data", "status", "error", "code"),
    [
        ({"grant_type": "password"}, 400, "unsupported_grant_type", 70003),
        ({"grant_type": "client_credentials", "client_secret": "s"}, 400, "invalid_request", 900144),
        ({"grant_type": "client_credentials", "client_id": "requester"}, 400, "unauthorized_client", 700016),
    ],
)
def test_malformed_token_requests_get_entras_error_body(emulator, data, status, error, code):
    response = _token_request(emulator, data)

    assert response.status_code == status
    body = response.json()
    assert body["error"] == error
    assert body["error_codes"] == [code]
    assert body["error_description"].startswith(f"AADSTS{code}: ")


@pytest.mark.parametrize("scope", ["api://5d6e7f80-91a2-4b3c-8d4e-a5b6c7d8e9f0", "a/.default b/.default", ""])
def test_client_credentials_need_exactly_one_default_scope(emulator, scope):
    env = emulator.env
    data = {
        "grant_type": "client_credentials",
        "client_id": env["DEMO_REQUESTER_CLIENT_ID"],
        "client_secret": env["DEMO_REQUESTER_CLIENT_SECRET"],
        "scope": scope,
    }

    response = _token_request(emulator, data)

    assert response.status_code == 400
    assert response.json()["error"] == "invalid_scope"
    assert "/.default" in response.json()["error_description"]


def test_a_missing_secret_is_401_invalid_client(emulator):
    env = emulator.env
    data = {"grant_type": "client_credentials", "client_id": env["DEMO_REQUESTER_CLIENT_ID"], "scope": "x/.default"}

    response = _token_request(emulator, data)

    assert response.status_code == 401
    assert response.json()["error_codes"] == [7000218]


def test_a_scenario_without_applications_has_no_api_settings_and_no_api_tokens():
    document = json.loads(json.dumps(_demo()))
    document.pop("applications")
    with running_emulator(document) as emulator:
        assert "BROKER_API_SCOPE" not in emulator.env
        assert "DEVSTACK_EASY_AUTH_ISSUER" not in emulator.env
        with pytest.raises(ClientAuthenticationError, match="AADSTS500011"):
            credential(emulator).get_token("api://5d6e7f80-91a2-4b3c-8d4e-a5b6c7d8e9f0/.default")


def test_groups_and_roles_follow_nested_groups(emulator):
    document = _demo()
    requester = emulator.env["DEMO_REQUESTER_OBJECT_ID"]
    outer = "7a7a7a7a-0000-4000-8000-000000000001"
    document["principals"].append(
        {"objectId": outer, "displayName": "outer", "type": "Group", "members": [DEPLOYERS_GROUP]}
    )
    document["applications"][0]["appRoles"].append({"value": "Outer.Role", "members": [outer]})
    with running_emulator(document) as nested:
        claims = verified_claims(nested, credential(nested).get_token(nested.env["BROKER_API_SCOPE"]).token)

    assert claims["oid"] == requester
    assert claims["groups"] == [DEPLOYERS_GROUP, outer]
    assert claims["roles"] == ["Deployments.Request", "Outer.Role"]


def _demo() -> dict[str, Any]:
    from devstack.emulator.scenario import load_scenario_document

    return load_scenario_document()
