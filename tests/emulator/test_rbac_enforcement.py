"""Enforcement end to end: the real SDKs get 403s from role gaps and deny assignments, and grants through groups."""

from collections.abc import Iterator

import pytest
from azure.ai.ml import MLClient
from azure.ai.ml.entities import ServerlessEndpoint
from azure.core.exceptions import HttpResponseError
from azure.identity import ManagedIdentityCredential
from azure.keyvault.secrets import SecretClient
from azure.mgmt.authorization import AuthorizationManagementClient

from devstack.emulator.scenario import load_scenario_document
from devstack.emulator.testing import EmulatorHandle, running_emulator

DEEPSEEK = "azureml://registries/azureml-deepseek/models/DeepSeek-R1"
ENDPOINT_DELETE = "Microsoft.MachineLearningServices/workspaces/serverlessEndpoints/delete"
PURGE = "Microsoft.KeyVault/vaults/secrets/purge/action"
FAST = {"_polling_interval": 0.05}
READER_ROLE = "acdd72a7-3385-48ef-bd42-f606fba81ae7"
AI_DEVELOPER_ROLE = "64702f94-c441-49e6-a78b-ef80e0188fee"


def workspace_scope(env: dict[str, str], workspace: str) -> str:
    return (
        f"/subscriptions/{env['AZURE_SUBSCRIPTION_ID']}/resourceGroups/{env['AZURE_RESOURCE_GROUP']}"
        f"/providers/Microsoft.MachineLearningServices/workspaces/{workspace}"
    )


@pytest.fixture
def emulator_with_denies() -> Iterator[EmulatorHandle]:
    """The demo scenario, plus: the deployers group (the requester) is Azure AI Developer on the westeurope
    project; the broker may not delete endpoints in demo-project nor purge secrets."""
    document = load_scenario_document()
    broker = document["brokerPrincipalId"]
    group = next(item for item in document["principals"] if item["type"] == "Group")
    rg = f"/subscriptions/{document['subscriptions'][0]['subscriptionId']}/resourceGroups/rg-demo"
    extra_assignments = [
        {
            "principalId": group["objectId"],
            "roleName": "Azure AI Developer",
            "scope": f"{rg}/providers/Microsoft.MachineLearningServices/workspaces/demo-project-westeurope",
        }
    ]
    denies = [
        {
            "principalId": broker,
            "scope": f"{rg}/providers/Microsoft.MachineLearningServices/workspaces/demo-project",
            "actions": [ENDPOINT_DELETE],
            "denyAssignmentName": "keep demo endpoints",
        },
        {
            "principals": [{"id": broker, "type": "ServicePrincipal"}],
            "scope": rg,
            "permissions": [{"dataActions": [PURGE]}],
            "denyAssignmentName": "no purge",
        },
    ]
    with running_emulator(
        document, roleAssignments=document["roleAssignments"] + extra_assignments, denyAssignments=denies
    ) as emulator:
        yield emulator


@pytest.fixture
def env(emulator_with_denies, monkeypatch) -> dict[str, str]:
    for key, value in emulator_with_denies.env.items():
        monkeypatch.setenv(key, value)
    return emulator_with_denies.env


def ml_client(env: dict[str, str], client_id: str | None = None, workspace: str | None = None) -> MLClient:
    return MLClient(
        ManagedIdentityCredential(client_id=client_id),
        env["AZURE_SUBSCRIPTION_ID"],
        env["AZURE_RESOURCE_GROUP"],
        workspace or env["AZURE_WORKSPACE"],
    )


def test_reader_cannot_create_an_endpoint(env):
    reader = ml_client(env, env["DEMO_READER_CLIENT_ID"])

    with pytest.raises(HttpResponseError) as refused:
        reader.serverless_endpoints.begin_create_or_update(ServerlessEndpoint(name="reader-ep", model_id=DEEPSEEK))

    assert refused.value.status_code == 403
    assert refused.value.error.code == "AuthorizationFailed"
    assert (
        f"The client '{env['DEMO_READER_OBJECT_ID']}' with object id '{env['DEMO_READER_OBJECT_ID']}' does not have "
        "authorization to perform action 'Microsoft.MachineLearningServices/workspaces/serverlessEndpoints/write'"
    ) in refused.value.error.message


def test_deny_assignment_blocks_what_a_role_grants(env):
    broker = ml_client(env)

    with pytest.raises(HttpResponseError) as refused:
        broker.serverless_endpoints.begin_delete("any-endpoint")

    assert refused.value.status_code == 403
    assert refused.value.error.code == "DenyAssignmentAuthorizationFailed"
    assert "because of the deny assignment with name 'keep demo endpoints'" in refused.value.error.message


def test_deny_assignments_are_listed_with_their_filters(env):
    client = AuthorizationManagementClient(
        ManagedIdentityCredential(), env["AZURE_SUBSCRIPTION_ID"], base_url=env["AZURE_RESOURCE_MANAGER_URL"]
    )
    broker = env["DEMO_BROKER_OBJECT_ID"]
    group = env["AZURE_RESOURCE_GROUP"]

    for_broker = list(client.deny_assignments.list_for_resource_group(group, filter=f"principalId eq '{broker}'"))
    at_group = list(client.deny_assignments.list_for_resource_group(group, filter="atScope()"))
    on_workspace = list(client.deny_assignments.list_for_scope(workspace_scope(env, env["AZURE_WORKSPACE"])))

    assert {item.deny_assignment_name for item in for_broker} == {"keep demo endpoints", "no purge"}
    assert [item.deny_assignment_name for item in at_group] == ["no purge"]
    assert {item.deny_assignment_name for item in on_workspace} == {"keep demo endpoints", "no purge"}
    blocks = {item.deny_assignment_name: item.permissions[0] for item in for_broker}
    assert (blocks["keep demo endpoints"].actions, blocks["keep demo endpoints"].data_actions) == (
        [ENDPOINT_DELETE],
        [],
    )
    assert (blocks["no purge"].actions, blocks["no purge"].data_actions) == ([], [PURGE])
    assert all(item.principals[0].id == broker for item in for_broker)


def test_deny_assignment_blocks_a_key_vault_data_action(env):
    client = SecretClient(env["AZURE_KEYVAULT_URL"], ManagedIdentityCredential(), verify_challenge_resource=False)
    client.set_secret("to-purge", "v")
    client.begin_delete_secret("to-purge", **FAST).wait()

    with pytest.raises(HttpResponseError) as refused:
        client.purge_deleted_secret("to-purge")

    assert refused.value.status_code == 403
    assert "ForbiddenByRbac" in str(refused.value)
    assert f"Action: '{PURGE}'" in refused.value.error.message


def test_group_role_reaches_its_members(env):
    requester_id = env["DEMO_REQUESTER_OBJECT_ID"]
    requester = AuthorizationManagementClient(
        ManagedIdentityCredential(client_id=env["DEMO_REQUESTER_CLIENT_ID"]),
        env["AZURE_SUBSCRIPTION_ID"],
        base_url=env["AZURE_RESOURCE_MANAGER_URL"],
    )
    westeurope = workspace_scope(env, "demo-project-westeurope")

    assigned = list(requester.role_assignments.list_for_scope(westeurope, filter=f"assignedTo('{requester_id}')"))
    direct = list(requester.role_assignments.list_for_scope(westeurope, filter=f"principalId eq '{requester_id}'"))
    permissions = list(
        requester.permissions.list_for_resource(
            env["AZURE_RESOURCE_GROUP"],
            "Microsoft.MachineLearningServices",
            "",
            "workspaces",
            "demo-project-westeurope",
        )
    )

    # The requester's own assignment is on the sibling demo-project: neither above nor below this scope.
    assert sorted((item.principal_type, item.role_definition_id.rsplit("/", 1)[-1]) for item in assigned) == [
        ("Group", AI_DEVELOPER_ROLE),
        ("Group", READER_ROLE),
    ]
    assert direct == []
    assert any("Microsoft.MachineLearningServices/workspaces/*/write" in block.actions for block in permissions)
