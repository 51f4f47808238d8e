"""The RBAC engine: wildcard matching, NotActions, inheritance, groups and deny assignments."""

import pytest

from devstack.emulator.rbac import EVERYONE, RbacDirectory, action_matches, is_at_or_above

SUB = "/subscriptions/00000000-0000-0000-0000-000000000000"
RG = f"{SUB}/resourceGroups/rg-demo"
WORKSPACE = f"{RG}/providers/Microsoft.MachineLearningServices/workspaces/demo-project"
OTHER_WORKSPACE = f"{RG}/providers/Microsoft.MachineLearningServices/workspaces/other-project"
VAULT = f"{RG}/providers/Microsoft.KeyVault/vaults/kv-demo"
ENDPOINT_WRITE = "Microsoft.MachineLearningServices/workspaces/serverlessEndpoints/write"
ALICE = "11111111-1111-1111-1111-111111111111"
BOB = "22222222-2222-2222-2222-222222222222"
TEAM = "33333333-3333-3333-3333-333333333333"
DEPARTMENT = "44444444-4444-4444-4444-444444444444"

PRINCIPALS = [
    {"objectId": ALICE, "displayName": "alice", "type": "User"},
    {"objectId": BOB, "displayName": "bob", "type": "User"},
    {"objectId": TEAM, "displayName": "team", "type": "Group", "members": [ALICE]},
    {"objectId": DEPARTMENT, "displayName": "department", "type": "Group", "members": [TEAM]},
]


def directory(role_assignments, deny_assignments=(), custom_roles=()) -> RbacDirectory:
    return RbacDirectory(
        principals=PRINCIPALS,
        role_assignments=role_assignments,
        deny_assignments=deny_assignments,
        custom_roles=custom_roles,
    )


@pytest.mark.parametrize(
    ("pattern", "action", "expected"),
    [
        ("*", "Microsoft.Anything/at/all", True),
        ("*/read", "Microsoft.MachineLearningServices/workspaces/read", True),
        ("*/read", "Microsoft.MachineLearningServices/workspaces/write", False),
        ("Microsoft.Authorization/*/Delete", "microsoft.authorization/roleassignments/delete", True),
        ("Microsoft.Authorization/*/Delete", "Microsoft.Authorization/roleAssignments/write", False),
        (
            "Microsoft.MachineLearningServices/workspaces/*/action",
            "Microsoft.MachineLearningServices/workspaces/serverlessEndpoints/listKeys/action",
            True,
        ),
        (
            "Microsoft.MachineLearningServices/workspaces/*/write",
            "Microsoft.MachineLearningServices/workspaces/write",
            False,
        ),
        ("Microsoft.KeyVault/vaults/secrets/*", "Microsoft.KeyVault/vaults/secrets/getSecret/action", True),
        (
            "Microsoft.KeyVault/vaults/secrets/getSecret/action",
            "Microsoft.KeyVault/vaults/secrets/setSecret/action",
            False,
        ),
        ("Microsoft.Web/sites/config.read", "Microsoft.Web/sites/configXread", False),
    ],
)
def test_action_patterns_match_with_wildcards_anywhere_and_ignore_case(pattern, action, expected):
    assert action_matches(pattern, action) is expected


def test_scopes_compare_segment_wise_and_ignore_case():
    assert is_at_or_above("/", WORKSPACE)
    assert is_at_or_above(SUB, WORKSPACE)
    assert is_at_or_above(RG.replace("resourceGroups", "resourcegroups").upper(), WORKSPACE)
    assert not is_at_or_above(WORKSPACE, RG)
    assert not is_at_or_above(f"{RG}/providers/Microsoft.MachineLearningServices/workspaces/demo", WORKSPACE)


def test_grants_come_from_assignments_at_the_scope_and_its_ancestors_only():
    rbac = directory([{"principalId": ALICE, "roleName": "Azure AI Developer", "scope": WORKSPACE}])

    assert rbac.grants(ALICE, ENDPOINT_WRITE, WORKSPACE, data=False)
    assert rbac.grants(ALICE, ENDPOINT_WRITE, f"{WORKSPACE}/serverlessEndpoints/ep1", data=False)
    assert not rbac.grants(ALICE, ENDPOINT_WRITE, OTHER_WORKSPACE, data=False)
    assert not rbac.grants(ALICE, ENDPOINT_WRITE, RG, data=False)
    assert not rbac.grants(BOB, ENDPOINT_WRITE, WORKSPACE, data=False)


def test_not_actions_trim_their_own_role_but_another_role_can_grant_the_action():
    workspace_write = "Microsoft.MachineLearningServices/workspaces/write"
    developer_only = directory([{"principalId": ALICE, "roleName": "Azure AI Developer", "scope": RG}])
    with_contributor = directory(
        [
            {"principalId": ALICE, "roleName": "Azure AI Developer", "scope": RG},
            {"principalId": ALICE, "roleName": "Contributor", "scope": SUB},
        ]
    )

    assert not developer_only.grants(ALICE, workspace_write, WORKSPACE, data=False)
    assert with_contributor.grants(ALICE, workspace_write, WORKSPACE, data=False)


def test_contributor_not_actions_exclude_role_assignment_writes_case_insensitively():
    rbac = directory([{"principalId": ALICE, "roleName": "Contributor", "scope": SUB}])

    assert rbac.grants(ALICE, ENDPOINT_WRITE, WORKSPACE, data=False)
    assert not rbac.grants(ALICE, "Microsoft.Authorization/roleAssignments/write", RG, data=False)
    assert not rbac.grants(ALICE, "microsoft.authorization/ROLEASSIGNMENTS/delete", RG, data=False)


def test_reader_reads_everything_below_and_writes_nothing():
    rbac = directory([{"principalId": BOB, "roleName": "Reader", "scope": RG}])

    assert rbac.grants(
        BOB, "Microsoft.MachineLearningServices/workspaces/serverlessEndpoints/read", WORKSPACE, data=False
    )
    assert not rbac.grants(BOB, ENDPOINT_WRITE, WORKSPACE, data=False)
    assert not rbac.grants(
        BOB, "Microsoft.MachineLearningServices/workspaces/serverlessEndpoints/listKeys/action", WORKSPACE, data=False
    )


def test_data_actions_are_separate_from_actions():
    rbac = directory(
        [
            {"principalId": ALICE, "roleName": "Key Vault Secrets User", "scope": VAULT},
            {"principalId": BOB, "roleName": "Owner", "scope": SUB},
        ]
    )

    assert rbac.grants(ALICE, "Microsoft.KeyVault/vaults/secrets/getSecret/action", f"{VAULT}/secrets/s1", data=True)
    assert not rbac.grants(ALICE, "Microsoft.KeyVault/vaults/secrets/setSecret/action", VAULT, data=True)
    # Owner's '*' covers every control-plane action but no data action.
    assert rbac.grants(BOB, "Microsoft.KeyVault/vaults/write", VAULT, data=False)
    assert not rbac.grants(BOB, "Microsoft.KeyVault/vaults/secrets/getSecret/action", VAULT, data=True)


def test_group_assignments_reach_members_through_nested_groups():
    rbac = directory([{"principalId": DEPARTMENT, "roleName": "Azure AI Developer", "scope": RG}])

    assert rbac.identities_of(ALICE) == {ALICE, TEAM, DEPARTMENT}
    assert rbac.grants(ALICE, ENDPOINT_WRITE, WORKSPACE, data=False)
    assert not rbac.grants(BOB, ENDPOINT_WRITE, WORKSPACE, data=False)


def test_group_cycles_do_not_loop():
    rbac = RbacDirectory(
        principals=[
            {"objectId": TEAM, "type": "Group", "members": [DEPARTMENT, ALICE]},
            {"objectId": DEPARTMENT, "type": "Group", "members": [TEAM]},
        ],
        role_assignments=[],
    )

    assert rbac.identities_of(ALICE) == {ALICE, TEAM, DEPARTMENT}


def test_deny_assignment_blocks_despite_owner_and_honours_its_not_actions():
    rbac = directory(
        [{"principalId": ALICE, "roleName": "Owner", "scope": SUB}],
        deny_assignments=[
            {
                "principalId": ALICE,
                "scope": RG,
                "actions": ["Microsoft.MachineLearningServices/*"],
                "notActions": ["*/read"],
                "denyAssignmentName": "no ML writes",
            }
        ],
    )

    deny = rbac.blocking_deny(ALICE, ENDPOINT_WRITE, WORKSPACE, data=False)
    assert rbac.grants(ALICE, ENDPOINT_WRITE, WORKSPACE, data=False)
    assert deny is not None
    assert deny.deny_assignment_name == "no ML writes"
    assert rbac.blocking_deny(ALICE, "Microsoft.MachineLearningServices/workspaces/read", WORKSPACE, data=False) is None
    assert rbac.blocking_deny(ALICE, ENDPOINT_WRITE, f"{SUB}/resourceGroups/rg-other", data=False) is None


def test_deny_for_everyone_reaches_group_members_but_spares_excluded_principals():
    rbac = directory(
        [],
        deny_assignments=[
            {
                "principals": [{"id": EVERYONE, "type": "SystemDefined"}],
                "excludePrincipals": [{"id": TEAM, "type": "Group"}],
                "scope": RG,
                "permissions": [{"actions": ["*/delete"], "notActions": []}],
                "denyAssignmentName": "keep",
            }
        ],
    )

    action = "Microsoft.MachineLearningServices/workspaces/serverlessEndpoints/delete"
    assert rbac.blocking_deny(BOB, action, WORKSPACE, data=False) is not None
    assert rbac.blocking_deny(ALICE, action, WORKSPACE, data=False) is None


def test_deny_that_does_not_apply_to_child_scopes_only_covers_its_own_scope():
    rbac = directory(
        [],
        deny_assignments=[
            {"principalId": BOB, "scope": RG, "actions": ["*"], "doNotApplyToChildScopes": True},
        ],
    )

    assert rbac.blocking_deny(BOB, "Microsoft.Resources/subscriptions/resourceGroups/write", RG, data=False)
    assert rbac.blocking_deny(BOB, ENDPOINT_WRITE, WORKSPACE, data=False) is None


def test_deny_data_actions_block_only_data_actions():
    rbac = directory(
        [{"principalId": ALICE, "roleName": "Key Vault Secrets Officer", "scope": VAULT}],
        deny_assignments=[
            {"principalId": ALICE, "scope": VAULT, "dataActions": ["Microsoft.KeyVault/vaults/secrets/purge/action"]}
        ],
    )

    purge = "Microsoft.KeyVault/vaults/secrets/purge/action"
    assert rbac.blocking_deny(ALICE, purge, f"{VAULT}/secrets/s1", data=True) is not None
    assert rbac.blocking_deny(ALICE, "Microsoft.KeyVault/vaults/secrets/delete", VAULT, data=True) is None
    assert rbac.blocking_deny(ALICE, purge, VAULT, data=False) is None


def test_roles_resolve_by_name_alias_id_and_custom_definition():
    custom = {
        "roleName": "Endpoint Reader",
        "permissions": [{"actions": ["Microsoft.MachineLearningServices/workspaces/serverlessEndpoints/read"]}],
        "assignableScopes": [SUB],
    }
    rbac = directory(
        [
            {"principalId": ALICE, "roleName": "azure machine learning data scientist", "scope": RG},
            {
                "principalId": BOB,
                "roleDefinitionId": "/providers/Microsoft.Authorization/roleDefinitions/"
                "ACDD72A7-3385-48EF-BD42-F606FBA81AE7",
                "scope": RG,
            },
            {"principalId": TEAM, "roleName": "Endpoint Reader", "scope": WORKSPACE},
        ],
        custom_roles=[custom],
    )

    roles = [assignment.role for assignment in rbac.role_assignments]
    assert [role.role_name for role in roles] == ["AzureML Data Scientist", "Reader", "Endpoint Reader"]
    assert roles[2].role_type == "CustomRole"
    assert roles[1].id_at(RG) == f"{SUB}/providers/Microsoft.Authorization/roleDefinitions/{roles[1].guid}"


def test_unknown_role_is_a_scenario_error():
    with pytest.raises(ValueError, match="unknown role 'Chief Wizard'"):
        directory([{"principalId": ALICE, "roleName": "Chief Wizard", "scope": RG}])


def test_assignment_names_are_stable_guids():
    first = directory([{"principalId": ALICE, "roleName": "Reader", "scope": RG}]).role_assignments[0]
    second = directory([{"principalId": ALICE, "roleName": "Reader", "scope": RG}]).role_assignments[0]
    other = directory([{"principalId": BOB, "roleName": "Reader", "scope": RG}]).role_assignments[0]

    assert first.name == second.name != other.name
    assert len(first.name) == 36
