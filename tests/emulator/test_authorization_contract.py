"""Microsoft.Authorization responses against the official 2022-04-01 examples: same keys and JSON types, enum values
from the documented sets. Keys the examples leave out but the 2022-04-01 schema defines are named as extras."""

from collections.abc import Iterator

import pytest
import requests

from devstack.emulator.scenario import load_scenario_document
from devstack.emulator.testing import EmulatorHandle, running_emulator
from tests.emulator.example_shapes import example_response, shape_mismatches

EXAMPLES = "arm-examples/Authorization"
API = "api-version=2022-04-01"
READER_ROLE = "acdd72a7-3385-48ef-bd42-f606fba81ae7"
ROLE_ASSIGNMENT_EXTRAS = {
    "condition",
    "conditionVersion",
    "createdOn",
    "updatedOn",
    "createdBy",
    "updatedBy",
    "delegatedManagedIdentityResourceId",
    "description",
}
ROLE_DEFINITION_EXTRAS = {"createdOn", "updatedOn", "createdBy", "updatedBy"}
PRINCIPAL_TYPES = {"User", "Group", "ServicePrincipal", "ForeignGroup", "Device"}
ROLE_TYPES = {"BuiltInRole", "CustomRole"}


@pytest.fixture(scope="module")
def emulator() -> Iterator[EmulatorHandle]:
    """The demo scenario with deny assignments at the subscription, the group and the workspace, so that every
    deny-assignment listing has items to compare."""
    document = load_scenario_document()
    subscription = f"/subscriptions/{document['subscriptions'][0]['subscriptionId']}"
    group = f"{subscription}/resourceGroups/{document['workspaces'][0]['resourceGroup']}"
    workspace = f"{group}/providers/Microsoft.MachineLearningServices/workspaces/{document['workspaces'][0]['name']}"
    denies = [
        {
            "principals": [{"id": document["brokerPrincipalId"], "type": "ServicePrincipal"}],
            "excludePrincipals": [{"id": document["principals"][1]["objectId"], "type": "User"}],
            "scope": scope,
            "permissions": [{"actions": ["Microsoft.Resources/deployments/delete"], "dataActions": []}],
            "denyAssignmentName": f"deny at {scope}",
            "description": "contract test",
        }
        for scope in (subscription, group, workspace)
    ]
    with running_emulator(document, denyAssignments=denies) as handle:
        yield handle


def arm_get(emulator: EmulatorHandle, path: str) -> dict:
    token = emulator.credential().get_token("https://management.azure.com/.default").token
    separator = "&" if "?" in path else "?"
    response = requests.get(
        f"{emulator.arm_url}{path}{separator}{API}",
        headers={"Authorization": f"Bearer {token}"},
        verify=emulator.ca_bundle,
        timeout=10,
    )
    assert response.status_code == 200, response.text
    assert response.headers["Content-Type"].startswith("application/json")
    return response.json()


def scopes(emulator: EmulatorHandle) -> dict[str, str]:
    workspace = emulator.state.scenario.workspaces[0].resource_id
    return {
        "subscription": f"/subscriptions/{emulator.state.scenario.subscriptions[0].subscription_id}",
        "group": workspace.split("/providers/")[0],
        "workspace": workspace,
    }


@pytest.mark.parametrize(
    ("example", "scope", "extra"),
    [
        ("GetPermissions.json", "group", set()),
        # The resource example shows only actions/notActions; the schema also has the data-action lists.
        ("GetResourcePermissions.json", "workspace", {"dataActions", "notDataActions"}),
    ],
)
def test_permissions_match_the_examples(emulator, example, scope, extra):
    body = arm_get(emulator, f"{scopes(emulator)[scope]}/providers/Microsoft.Authorization/permissions")

    assert body["value"]
    assert shape_mismatches(example_response(f"{EXAMPLES}/{example}"), body, extra=extra, optional={"nextLink"}) == []


@pytest.mark.parametrize(
    ("example", "scope"),
    [
        ("RoleAssignments_ListForScope.json", "subscription"),
        ("RoleAssignments_ListForSubscription.json", "subscription"),
        ("RoleAssignments_ListForResourceGroup.json", "group"),
        ("RoleAssignments_ListForResource.json", "workspace"),
    ],
)
def test_role_assignment_lists_match_the_examples(emulator, example, scope):
    body = arm_get(emulator, f"{scopes(emulator)[scope]}/providers/Microsoft.Authorization/roleAssignments")

    assert body["value"]
    assert shape_mismatches(example_response(f"{EXAMPLES}/{example}"), body, extra=ROLE_ASSIGNMENT_EXTRAS) == []
    assert {item["properties"]["principalType"] for item in body["value"]} <= PRINCIPAL_TYPES


@pytest.mark.parametrize(
    ("example", "path"),
    [
        ("GetRoleDefinitionById.json", f"/providers/Microsoft.Authorization/roleDefinitions/{READER_ROLE}"),
        ("GetRoleDefinitionByName.json", f"{{group}}/providers/Microsoft.Authorization/roleDefinitions/{READER_ROLE}"),
        ("GetRoleDefinitionAtScope.json", "{subscription}/providers/Microsoft.Authorization/roleDefinitions"),
    ],
)
def test_role_definitions_match_the_examples(emulator, example, path):
    body = arm_get(emulator, path.format(**scopes(emulator)))

    assert shape_mismatches(example_response(f"{EXAMPLES}/{example}"), body, extra=ROLE_DEFINITION_EXTRAS) == []
    definitions = body.get("value", [body])
    assert {item["properties"]["type"] for item in definitions} <= ROLE_TYPES


@pytest.mark.parametrize(
    ("example", "scope", "expected"),
    [
        ("GetAllDenyAssignments.json", "subscription", 3),
        ("GetDenyAssignmentByScope.json", "subscription", 3),
        ("GetDenyAssignmentsForResourceGroup.json", "group", 3),
        ("GetDenyAssignmentsForResource.json", "workspace", 3),
    ],
)
def test_deny_assignment_lists_match_the_examples(emulator, example, scope, expected):
    body = arm_get(emulator, f"{scopes(emulator)[scope]}/providers/Microsoft.Authorization/denyAssignments")

    assert len(body["value"]) == expected
    assert shape_mismatches(example_response(f"{EXAMPLES}/{example}"), body) == []
