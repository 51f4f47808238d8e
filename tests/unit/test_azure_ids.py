import pytest

from shared.azure_ids import InvalidResourceIdError, ScopeLevel, WorkspaceId, is_within, normalize_scope

SUB = "0b1f6471-1bf0-4dda-aec3-111122223333"
WS = f"/subscriptions/{SUB}/resourceGroups/rg-ai/providers/Microsoft.MachineLearningServices/workspaces/proj-1"


def test_a_workspace_id_parses_into_its_parts():
    workspace = WorkspaceId.parse(WS)

    assert workspace == WorkspaceId(subscription_id=SUB, resource_group="rg-ai", name="proj-1")
    assert workspace.resource_id == WS
    assert str(workspace) == WS


def test_fixed_parts_are_case_insensitive_and_come_back_canonical():
    text = (
        f"/SUBSCRIPTIONS/{SUB.upper()}/resourcegroups/RG-AI/PROVIDERS/microsoft.machinelearningservices/"
        "WORKSPACES/Proj-1/"
    )

    workspace = WorkspaceId.parse(f"  {text}  ")

    assert workspace.resource_id == (
        f"/subscriptions/{SUB}/resourceGroups/RG-AI/providers/Microsoft.MachineLearningServices/workspaces/Proj-1"
    )
    assert workspace.key == WorkspaceId.parse(WS).key == WS.lower()


def test_scopes_and_child_ids():
    workspace = WorkspaceId.parse(WS)

    assert workspace.subscription_scope == f"/subscriptions/{SUB}"
    assert workspace.resource_group_scope == f"/subscriptions/{SUB}/resourceGroups/rg-ai"
    assert workspace.scope(ScopeLevel.SUBSCRIPTION) == workspace.subscription_scope
    assert workspace.scope(ScopeLevel.RESOURCE_GROUP) == workspace.resource_group_scope
    assert workspace.scope(ScopeLevel.WORKSPACE) == WS
    assert workspace.serverless_endpoint_id("ep-1") == f"{WS}/serverlessEndpoints/ep-1"
    assert workspace.marketplace_subscription_id("Phi-4-subscription") == (
        f"{WS}/marketplaceSubscriptions/Phi-4-subscription"
    )


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "The workspace id is empty"),
        (None, "The workspace id is empty"),
        (WS.lstrip("/"), "is not a workspace id; expected /subscriptions/{subscriptionId}/resourceGroups/"),
        (WS + "/serverlessEndpoints/x", "is not a workspace id"),
        (WS.replace("/resourceGroups/", "/resourceGroupz/"), "is not a workspace id"),
        (WS.replace("/subscriptions/", "/subscription/"), "is not a workspace id"),
        (WS.replace("/providers/", "/provider/"), "is not a workspace id"),
        (
            WS.replace("Microsoft.MachineLearningServices", "Microsoft.Storage"),
            "names a 'Microsoft.Storage/workspaces' resource; the broker deploys only into "
            "Microsoft.MachineLearningServices/workspaces",
        ),
        (WS.replace("/workspaces/", "/registries/"), "names a 'Microsoft.MachineLearningServices/registries'"),
        (WS.replace(SUB, "not-a-guid"), "The subscription id 'not-a-guid' in"),
        (WS.replace("rg-ai", "rg."), "The resource group name 'rg.' in"),
        (WS.replace("rg-ai", "rg ai"), "The resource group name 'rg ai'"),
        (WS.replace("rg-ai", "r" * 91), "1-90 letters, digits"),
        (WS.replace("proj-1", "pj"), "The workspace name 'pj' in"),
        (WS.replace("proj-1", "-proj"), "The workspace name '-proj'"),
        (WS.replace("proj-1", "p" * 34), "3-33 letters, digits, '_' or '-'"),
        (WS.replace("proj-1", "proj.1"), "The workspace name 'proj.1'"),
    ],
)
def test_invalid_ids_are_rejected_naming_the_part(text, message):
    with pytest.raises(InvalidResourceIdError) as caught:
        WorkspaceId.parse(text)

    assert message in str(caught.value)


@pytest.mark.parametrize(
    "name",
    ["abc", "a" * 33, "Proj_1", "9lives"],
)
def test_workspace_name_boundaries_are_accepted(name):
    assert WorkspaceId.parse(WS.replace("proj-1", name)).name == name


@pytest.mark.parametrize(
    "group",
    ["r", "r" * 90, "rg(1)", "rg_1.x", "Ресурсы"],
)
def test_resource_group_names_azure_allows_are_accepted(group):
    assert WorkspaceId.parse(WS.replace("rg-ai", group)).resource_group == group


@pytest.mark.parametrize(
    ("scope", "ancestor", "expected"),
    [
        (WS, f"/subscriptions/{SUB}", True),
        (WS, f"/SUBSCRIPTIONS/{SUB.upper()}/", True),
        (WS, WS.upper(), True),
        (WS, f"/subscriptions/{SUB}/resourceGroups/rg-ai", True),
        (WS, f"/subscriptions/{SUB}/resourceGroups/rg", False),
        (f"/subscriptions/{SUB}", WS, False),
        (WS, "/", True),
        (WS, "/subscriptions/00000000-0000-0000-0000-000000000000", False),
    ],
)
def test_is_within_compares_whole_segments_case_insensitively(scope, ancestor, expected):
    assert is_within(scope, ancestor) is expected


def test_normalize_scope_lowercases_and_trims():
    assert normalize_scope(" /Subscriptions/ABC/ ") == "/subscriptions/abc"
