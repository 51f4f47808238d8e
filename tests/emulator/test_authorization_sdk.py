"""azure-mgmt-authorization's AuthorizationManagementClient, unchanged, against the emulated Microsoft.Authorization."""

import pytest
import requests
from azure.core.exceptions import HttpResponseError, ResourceNotFoundError
from azure.identity import ManagedIdentityCredential
from azure.mgmt.authorization import AuthorizationManagementClient

from devstack.emulator.rbac import action_matches

READER_ROLE = "acdd72a7-3385-48ef-bd42-f606fba81ae7"
AI_DEVELOPER_ROLE = "64702f94-c441-49e6-a78b-ef80e0188fee"
SECRETS_OFFICER_ROLE = "b86a8fe4-44ce-4948-aee5-eccb2c155cd7"


def authorization_client(env: dict[str, str], client_id: str | None = None) -> AuthorizationManagementClient:
    return AuthorizationManagementClient(
        ManagedIdentityCredential(client_id=client_id),
        env["AZURE_SUBSCRIPTION_ID"],
        base_url=env["AZURE_RESOURCE_MANAGER_URL"],
    )


@pytest.fixture
def client(emulator_env) -> AuthorizationManagementClient:
    return authorization_client(emulator_env)


def scopes(env: dict[str, str]) -> dict[str, str]:
    subscription = f"/subscriptions/{env['AZURE_SUBSCRIPTION_ID']}"
    group = f"{subscription}/resourceGroups/{env['AZURE_RESOURCE_GROUP']}"
    return {
        "subscription": subscription,
        "group": group,
        "workspace": f"{group}/providers/Microsoft.MachineLearningServices/workspaces/{env['AZURE_WORKSPACE']}",
    }


def grants(permissions, action: str) -> bool:
    """The caller-side check the broker makes: some block grants the action and does not trim it."""
    return any(
        any(action_matches(pattern, action) for pattern in block.actions)
        and not any(action_matches(pattern, action) for pattern in block.not_actions)
        for block in permissions
    )


def test_permissions_are_the_callers_own_per_assignment(client, emulator_env):
    in_group = list(client.permissions.list_for_resource_group(emulator_env["AZURE_RESOURCE_GROUP"]))
    on_workspace = list(
        client.permissions.list_for_resource(
            emulator_env["AZURE_RESOURCE_GROUP"],
            "Microsoft.MachineLearningServices",
            "",
            "workspaces",
            emulator_env["AZURE_WORKSPACE"],
        )
    )

    endpoint_write = "Microsoft.MachineLearningServices/workspaces/serverlessEndpoints/write"
    assert grants(in_group, endpoint_write)
    assert grants(on_workspace, endpoint_write)
    assert not grants(in_group, "Microsoft.MachineLearningServices/workspaces/write")
    # Reader at the subscription plus Azure AI Developer at the group: one entry each reaches the group.
    assert any(block.actions == ["*/read"] for block in in_group)
    assert len(in_group) >= 2


def test_reader_permissions_grant_reads_only(emulator_env):
    reader = authorization_client(emulator_env, emulator_env["DEMO_READER_CLIENT_ID"])

    permissions = list(reader.permissions.list_for_resource_group(emulator_env["AZURE_RESOURCE_GROUP"]))

    assert [block.actions for block in permissions] == [["*/read"]]
    assert not grants(permissions, "Microsoft.MachineLearningServices/workspaces/serverlessEndpoints/write")


def test_role_assignments_filter_by_assigned_to_and_principal_id(client, emulator_env):
    where = scopes(emulator_env)
    broker = emulator_env["DEMO_BROKER_OBJECT_ID"]

    assigned = list(client.role_assignments.list_for_scope(where["group"], filter=f"assignedTo('{broker}')"))
    by_principal = list(client.role_assignments.list_for_subscription(filter=f"principalId eq '{broker}'"))
    at_scope = list(
        client.role_assignments.list_for_resource_group(emulator_env["AZURE_RESOURCE_GROUP"], filter="atScope()")
    )

    roles = {item.role_definition_id.rsplit("/", 1)[-1] for item in assigned}
    assert {AI_DEVELOPER_ROLE, READER_ROLE, SECRETS_OFFICER_ROLE} <= roles
    assert {item.principal_id for item in assigned} == {broker}
    assert {item.scope.lower() for item in by_principal} >= {where["group"].lower(), where["subscription"].lower()}
    assert all(item.principal_id == broker for item in by_principal)
    assert all(where["group"].lower().startswith(item.scope.lower()) for item in at_scope)
    assert all(item.type == "Microsoft.Authorization/roleAssignments" for item in assigned)


def test_role_assignment_get_by_name_and_by_id(client, emulator_env):
    broker = emulator_env["DEMO_BROKER_OBJECT_ID"]
    listed = list(client.role_assignments.list_for_subscription(filter=f"principalId eq '{broker}'"))

    by_name = [client.role_assignments.get(item.scope, item.name) for item in listed]
    by_id = [client.role_assignments.get_by_id(item.id) for item in listed]

    assert [item.id for item in by_name] == [item.id for item in by_id] == [item.id for item in listed]
    with pytest.raises(ResourceNotFoundError):
        client.role_assignments.get(scopes(emulator_env)["group"], "00000000-1111-2222-3333-444444444444")


def test_principal_filter_accepts_raw_and_encoded_forms(emulator_env):
    broker = emulator_env["DEMO_BROKER_OBJECT_ID"]
    token = ManagedIdentityCredential().get_token("https://management.azure.com/.default").token
    base = f"{emulator_env['AZURE_RESOURCE_MANAGER_URL']}{scopes(emulator_env)['subscription']}"
    url = f"{base}/providers/Microsoft.Authorization/roleAssignments?api-version=2022-04-01"
    headers = {"Authorization": f"Bearer {token}"}

    raw = requests.get(f"{url}&$filter=principalId eq '{broker}'", headers=headers, timeout=10)
    encoded = requests.get(url, params={"$filter": f"principalId eq '{broker}'"}, headers=headers, timeout=10)
    unquoted = requests.get(url, params={"$filter": f"principalId eq {broker}"}, headers=headers, timeout=10)

    assert raw.status_code == encoded.status_code == 200
    assert raw.json() == encoded.json()
    assert raw.json()["value"]
    assert unquoted.status_code == 400
    assert "is not supported" in unquoted.json()["error"]["message"]


def test_role_definitions_by_name_and_by_id(client, emulator_env):
    where = scopes(emulator_env)

    by_name = list(client.role_definitions.list(where["group"], filter="roleName eq 'Azure AI Developer'"))
    by_id = client.role_definitions.get_by_id(f"/providers/Microsoft.Authorization/roleDefinitions/{READER_ROLE}")
    at_scope = client.role_definitions.get(where["workspace"], SECRETS_OFFICER_ROLE)
    everything = list(client.role_definitions.list(where["subscription"]))

    assert [role.name for role in by_name] == [AI_DEVELOPER_ROLE]
    assert by_name[0].role_type == "BuiltInRole"
    assert "Microsoft.MachineLearningServices/workspaces/*/write" in by_name[0].permissions[0].actions
    assert by_id.role_name == "Reader"
    assert at_scope.role_name == "Key Vault Secrets Officer"
    assert at_scope.permissions[0].data_actions == ["Microsoft.KeyVault/vaults/secrets/*"]
    assert len(everything) >= 11
    with pytest.raises(ResourceNotFoundError):
        client.role_definitions.get(where["group"], "00000000-1111-2222-3333-444444444444")


def test_requester_cannot_list_assignments_outside_its_project(emulator_env):
    requester = authorization_client(emulator_env, emulator_env["DEMO_REQUESTER_CLIENT_ID"])
    where = scopes(emulator_env)

    inside = list(requester.role_assignments.list_for_scope(where["workspace"]))
    with pytest.raises(HttpResponseError) as refused:
        list(requester.role_assignments.list_for_scope(where["group"]))

    assert inside
    assert refused.value.status_code == 403
    assert refused.value.error.code == "AuthorizationFailed"
    assert "Microsoft.Authorization/roleAssignments/read" in refused.value.error.message
