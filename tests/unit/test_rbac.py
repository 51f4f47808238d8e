import pytest

from shared.rbac import Permission, PermissionSet, action_matches, missing_actions, patterns_overlap

ENDPOINT_WRITE = "Microsoft.MachineLearningServices/workspaces/serverlessEndpoints/write"
LIST_KEYS = "Microsoft.MachineLearningServices/workspaces/serverlessEndpoints/listKeys/action"

# permissions[] blocks of built-in roles, as builtin-roles.json (Microsoft Learn) gives them
OWNER = {"actions": ["*"], "notActions": [], "dataActions": [], "notDataActions": []}
CONTRIBUTOR = {
    "actions": ["*"],
    "notActions": [
        "Microsoft.Authorization/*/Delete",
        "Microsoft.Authorization/*/Write",
        "Microsoft.Authorization/elevateAccess/Action",
    ],
}
READER = {"actions": ["*/read"], "notActions": []}
AI_DEVELOPER = {
    "actions": [
        "Microsoft.MachineLearningServices/workspaces/*/read",
        "Microsoft.MachineLearningServices/workspaces/*/action",
        "Microsoft.MachineLearningServices/workspaces/*/delete",
        "Microsoft.MachineLearningServices/workspaces/*/write",
    ],
    "notActions": [
        "Microsoft.MachineLearningServices/workspaces/delete",
        "Microsoft.MachineLearningServices/workspaces/write",
        "Microsoft.MachineLearningServices/workspaces/listKeys/action",
    ],
    "dataActions": ["Microsoft.CognitiveServices/accounts/MaaS/*"],
    "notDataActions": [],
}


@pytest.mark.parametrize(
    ("pattern", "action", "expected"),
    [
        ("*", ENDPOINT_WRITE, True),
        (ENDPOINT_WRITE, ENDPOINT_WRITE, True),
        (ENDPOINT_WRITE.upper(), ENDPOINT_WRITE.lower(), True),
        ("*/read", "Microsoft.Storage/storageAccounts/read", True),
        ("*/read", "Microsoft.Storage/storageAccounts/write", False),
        ("Microsoft.Authorization/*/Delete", "Microsoft.Authorization/roleAssignments/delete", True),
        ("Microsoft.Authorization/*/Delete", "Microsoft.Authorization/delete", False),
        ("Microsoft.MachineLearningServices/workspaces/*/write", ENDPOINT_WRITE, True),
        (
            "Microsoft.MachineLearningServices/workspaces/*/write",
            "Microsoft.MachineLearningServices/workspaces/write",
            False,
        ),
        ("Microsoft.MachineLearningServices/*", LIST_KEYS, True),
        ("Microsoft.Machine.*", LIST_KEYS, False),
        ("Microsoft.MachineLearningServices/workspaces/serverlessEndpoints", ENDPOINT_WRITE, False),
        ("a.b/read", "aXb/read", False),
        ("a*c*e", "abcde", True),
        ("a*c*e", "abcdf", False),
        ("Microsoft.ML/workspaces/*", "Microsoft.ML/workspaces/serverlessEndpoints/*", True),
        ("Microsoft.ML/workspaces/*/write", "Microsoft.ML/workspaces/serverlessEndpoints/*", False),
    ],
)
def test_action_matches(pattern, action, expected):
    assert action_matches(pattern, action) is expected


@pytest.mark.parametrize(
    ("first", "second", "expected"),
    [
        ("a/*", "a/b/read", True),
        ("a/b/read", "a/*", True),
        ("a/*/read", "a/b/*", True),
        ("a/*/read", "b/*", False),
        ("*", "anything", True),
        ("a/read", "A/READ", True),
        ("a/read", "a/write", False),
        ("a*", "b*", False),
        ("*a", "*b", False),
        ("a", "", False),
        ("", "", True),
        ("*", "", True),
    ],
)
def test_patterns_overlap(first, second, expected):
    assert patterns_overlap(first, second) is expected
    assert patterns_overlap(second, first) is expected


def test_permission_from_rest_tolerates_missing_and_null_keys():
    assert Permission.from_dict({"actions": ["*/read"], "notActions": None}) == Permission(actions=("*/read",))
    assert Permission.from_dict({}) == Permission()


@pytest.mark.parametrize(
    ("roles", "action", "allowed"),
    [
        ([OWNER], "Microsoft.Authorization/roleAssignments/write", True),
        ([CONTRIBUTOR], "Microsoft.Authorization/roleAssignments/write", False),
        ([CONTRIBUTOR], ENDPOINT_WRITE, True),
        ([READER], ENDPOINT_WRITE, False),
        ([READER], "Microsoft.MachineLearningServices/workspaces/serverlessEndpoints/read", True),
        ([AI_DEVELOPER], ENDPOINT_WRITE, True),
        ([AI_DEVELOPER], LIST_KEYS, True),
        ([AI_DEVELOPER], "Microsoft.MachineLearningServices/workspaces/listKeys/action", False),
        ([AI_DEVELOPER], "Microsoft.MarketplaceOrdering/agreements/offers/plans/read", False),
        ([], ENDPOINT_WRITE, False),
    ],
)
def test_built_in_roles(roles, action, allowed):
    assert PermissionSet.from_rest(roles).allows(action) is allowed


def test_not_actions_only_trim_their_own_role():
    # Contributor cannot write role assignments, but a second role that can still grants it.
    permissions = PermissionSet.from_rest([CONTRIBUTOR, {"actions": ["Microsoft.Authorization/roleAssignments/write"]}])

    assert permissions.allows("Microsoft.Authorization/roleAssignments/write")
    assert not permissions.is_denied("Microsoft.Authorization/roleAssignments/write")


def test_a_deny_assignment_blocks_even_the_owner():
    permissions = PermissionSet.from_rest(
        [OWNER], deny_permissions=[{"actions": ["Microsoft.MachineLearningServices/*/write"]}]
    )

    assert permissions.is_denied(ENDPOINT_WRITE)
    assert not permissions.allows(ENDPOINT_WRITE)
    assert permissions.allows("Microsoft.MachineLearningServices/workspaces/serverlessEndpoints/read")


def test_a_deny_assignment_respects_its_own_exclusions():
    permissions = PermissionSet.from_rest(
        [OWNER], deny_permissions=[{"actions": ["*"], "notActions": ["*/read", ENDPOINT_WRITE.upper()]}]
    )

    assert permissions.allows(ENDPOINT_WRITE)
    assert permissions.allows("Microsoft.Storage/storageAccounts/read")
    assert not permissions.allows(LIST_KEYS)


@pytest.mark.parametrize(
    ("roles", "denies", "allowed"),
    [
        ([OWNER], [], True),
        ([{"actions": ["Microsoft.MachineLearningServices/workspaces/*"]}], [], True),
        ([AI_DEVELOPER], [], False),  # covers every operation, but not the wildcard as such
        ([{"actions": ["*"], "notActions": [LIST_KEYS]}], [], False),
        ([OWNER], [{"actions": [LIST_KEYS]}], False),
        (
            [OWNER],
            [{"actions": ["*"], "notActions": ["Microsoft.MachineLearningServices/workspaces/serverlessEndpoints/*"]}],
            True,
        ),
        ([OWNER], [{"actions": ["*"], "notActions": [LIST_KEYS]}], False),
    ],
)
def test_a_wildcard_requirement_must_be_covered_entirely(roles, denies, allowed):
    requirement = "Microsoft.MachineLearningServices/workspaces/serverlessEndpoints/*"

    assert PermissionSet.from_rest(roles, denies).allows(requirement) is allowed


@pytest.mark.parametrize(
    ("roles", "denies", "data_action", "allowed"),
    [
        ([AI_DEVELOPER], [], "Microsoft.CognitiveServices/accounts/MaaS/chat/completions/action", True),
        ([AI_DEVELOPER], [], "Microsoft.KeyVault/vaults/secrets/getSecret/action", False),
        ([OWNER], [], "Microsoft.CognitiveServices/accounts/MaaS/chat/completions/action", False),
        (
            [{"dataActions": ["Microsoft.KeyVault/vaults/secrets/*"], "notDataActions": ["*/getSecret/action"]}],
            [],
            "Microsoft.KeyVault/vaults/secrets/getSecret/action",
            False,
        ),
        (
            [{"dataActions": ["Microsoft.KeyVault/vaults/secrets/*"]}],
            [{"dataActions": ["Microsoft.KeyVault/*"], "notDataActions": ["*/setSecret/action"]}],
            "Microsoft.KeyVault/vaults/secrets/getSecret/action",
            False,
        ),
        (
            [{"dataActions": ["Microsoft.KeyVault/vaults/secrets/*"]}],
            [{"dataActions": ["Microsoft.KeyVault/*"], "notDataActions": ["*/setSecret/action"]}],
            "Microsoft.KeyVault/vaults/secrets/setSecret/action",
            True,
        ),
    ],
)
def test_data_actions_are_evaluated_separately(roles, denies, data_action, allowed):
    assert PermissionSet.from_rest(roles, denies).allows_data(data_action) is allowed


def test_missing_actions_keeps_the_required_order():
    required = [LIST_KEYS, "Microsoft.SaaS/resources/write", ENDPOINT_WRITE, "Microsoft.SaaS/register/action"]

    assert missing_actions(required, PermissionSet.from_rest([AI_DEVELOPER])) == [
        "Microsoft.SaaS/resources/write",
        "Microsoft.SaaS/register/action",
    ]
    assert missing_actions(required, PermissionSet.from_rest([OWNER])) == []
    assert missing_actions(required, PermissionSet()) == required
