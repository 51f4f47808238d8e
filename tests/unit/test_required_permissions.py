import re

import pytest

from shared.azure_ids import ScopeLevel, WorkspaceId
from shared.rbac import PermissionSet
from shared.required_permissions import (
    AZURE_AI_DEVELOPER_ROLE_ID,
    BROKER_REQUIRED_ACTIONS,
    CONTRIBUTOR_ROLE_ID,
    OWNER_ROLE_ID,
    REQUESTER_DEPLOY_ACTION,
    Strictness,
    check_broker_permissions,
    check_requester_permission,
    holds_sufficient_role,
    required_actions,
)

SUB = "0b1f6471-1bf0-4dda-aec3-111122223333"
WS = WorkspaceId.parse(
    f"/subscriptions/{SUB}/resourceGroups/rg-ai/providers/Microsoft.MachineLearningServices/workspaces/proj-a"
)
ML = "Microsoft.MachineLearningServices/workspaces"
AI_DEVELOPER = {
    "actions": [f"{ML}/*/read", f"{ML}/*/action", f"{ML}/*/delete", f"{ML}/*/write"],
    "notActions": [f"{ML}/delete", f"{ML}/write", f"{ML}/listKeys/action"],
}
OWNER = {"actions": ["*"]}
SUBSCRIPTION_MARKETPLACE = [
    "Microsoft.MarketplaceOrdering/agreements/offers/plans/read",
    "Microsoft.MarketplaceOrdering/agreements/offers/plans/sign/action",
    "Microsoft.MarketplaceOrdering/offerTypes/publishers/offers/plans/agreements/read",
    "Microsoft.Marketplace/offerTypes/publishers/offers/plans/agreements/read",
    "Microsoft.SaaS/register/action",
]
RESOURCE_GROUP_SAAS = ["Microsoft.SaaS/resources/read", "Microsoft.SaaS/resources/write"]
WORKSPACE_ACTIONS = [
    f"{ML}/serverlessEndpoints/read",
    f"{ML}/serverlessEndpoints/write",
    f"{ML}/serverlessEndpoints/delete",
    f"{ML}/serverlessEndpoints/listKeys/action",
    f"{ML}/marketplaceSubscriptions/read",
    f"{ML}/marketplaceSubscriptions/write",
]


def everywhere(*blocks, denies=()) -> dict[ScopeLevel, PermissionSet]:
    return {level: PermissionSet.from_rest(blocks, denies) for level in ScopeLevel}


def test_the_seed_actions_are_required_at_their_scopes():
    by_scope = {level: [a.action for a in BROKER_REQUIRED_ACTIONS if a.scope is level] for level in ScopeLevel}

    assert by_scope[ScopeLevel.SUBSCRIPTION] == SUBSCRIPTION_MARKETPLACE
    assert by_scope[ScopeLevel.RESOURCE_GROUP] == RESOURCE_GROUP_SAAS
    assert by_scope[ScopeLevel.WORKSPACE] == WORKSPACE_ACTIONS
    assert all(a.marketplace is (a.scope is not ScopeLevel.WORKSPACE) for a in BROKER_REQUIRED_ACTIONS)


@pytest.mark.parametrize(
    ("value", "strictness"),
    [
        (None, Strictness.ROLE_BASED),
        ("", Strictness.ROLE_BASED),
        (" Strict ", Strictness.STRICT),
        ("role-based", Strictness.ROLE_BASED),
    ],
)
def test_strictness_setting(value, strictness):
    assert Strictness.from_setting(value) is strictness


def test_an_unknown_strictness_is_a_configuration_error():
    message = "Unknown permission strictness 'lenient'; use one of 'strict', 'role-based'."
    with pytest.raises(ValueError, match=re.escape(message)):
        Strictness.from_setting("lenient")


@pytest.mark.parametrize(
    ("roles", "sufficient"),
    [
        (["Owner"], True),
        (["contributor"], True),
        (["Azure AI Developer"], True),
        ([AZURE_AI_DEVELOPER_ROLE_ID.upper()], True),
        ([f"/subscriptions/{SUB}/providers/Microsoft.Authorization/roleDefinitions/{OWNER_ROLE_ID}"], True),
        ([f"/providers/Microsoft.Authorization/roleDefinitions/{CONTRIBUTOR_ROLE_ID}/"], True),
        (["Reader", "AzureML Data Scientist"], False),
        ([], False),
    ],
)
def test_sufficient_roles_are_recognised_by_name_or_id(roles, sufficient):
    assert holds_sufficient_role(roles) is sufficient


@pytest.mark.parametrize(
    ("marketplace", "strictness", "roles", "marketplace_required"),
    [
        (False, Strictness.STRICT, [], False),
        (False, Strictness.ROLE_BASED, [], False),
        (True, Strictness.STRICT, ["Owner"], True),
        (True, Strictness.STRICT, [], True),
        (True, Strictness.ROLE_BASED, [], True),
        (True, Strictness.ROLE_BASED, ["Reader"], True),
        (True, Strictness.ROLE_BASED, ["Azure AI Developer"], False),
    ],
)
def test_marketplace_actions_follow_model_and_strictness(marketplace, strictness, roles, marketplace_required):
    needed = required_actions(marketplace_model=marketplace, strictness=strictness, resource_group_roles=roles)

    assert any(item.marketplace for item in needed) is marketplace_required
    assert [item.action for item in needed if not item.marketplace] == WORKSPACE_ACTIONS


def test_owner_everywhere_passes_even_strict():
    check = check_broker_permissions(WS, everywhere(OWNER), marketplace_model=True, strictness=Strictness.STRICT)

    assert check.ok
    assert check.rejection_text is None
    assert check.missing_by_scope() == {}
    assert check.details() == []


def test_ai_developer_passes_role_based_for_a_marketplace_model():
    check = check_broker_permissions(
        WS, everywhere(AI_DEVELOPER), marketplace_model=True, resource_group_roles=["Azure AI Developer"]
    )

    assert check.ok
    assert check.sufficient_role_held
    assert check.strictness is Strictness.ROLE_BASED


def test_ai_developer_permissions_without_the_role_assignment_still_need_marketplace_actions():
    # e.g. a custom role copying AI Developer's actions: the docs' waiver names the built-in roles only
    check = check_broker_permissions(WS, everywhere(AI_DEVELOPER), marketplace_model=True)

    assert not check.ok
    assert check.missing_by_scope() == {
        WS.subscription_scope: SUBSCRIPTION_MARKETPLACE,
        WS.resource_group_scope: RESOURCE_GROUP_SAAS,
    }
    assert check.rejection_text == (
        "The broker's identity lacks permissions needed to deploy a Marketplace model (permission strictness "
        f"'role-based'): at subscription {WS.subscription_scope}: {', '.join(SUBSCRIPTION_MARKETPLACE)}; at "
        f"resourceGroup {WS.resource_group_scope}: {', '.join(RESOURCE_GROUP_SAAS)}. Fix: assign the Azure AI "
        f"Developer role (or Owner/Contributor) to the broker's identity at resource group scope "
        f"{WS.resource_group_scope}; in 'role-based' mode that role waives the Marketplace/SaaS actions. Otherwise "
        "grant the listed actions through a custom role at the scopes named."
    )


def test_strict_mode_rejects_ai_developer_and_says_how_to_fix():
    check = check_broker_permissions(
        WS,
        everywhere(AI_DEVELOPER),
        marketplace_model=True,
        strictness=Strictness.STRICT,
        resource_group_roles=["Azure AI Developer"],
    )

    assert not check.ok
    assert "(permission strictness 'strict')" in check.rejection_text
    assert check.rejection_text.endswith(
        "Fix: grant the listed Marketplace/SaaS actions through a custom role at the scopes named (strict mode "
        "requires them even with Owner, Contributor or Azure AI Developer), or set the strictness to 'role-based' "
        f"and assign the Azure AI Developer role at resource group scope {WS.resource_group_scope}."
    )


def test_a_sold_directly_model_needs_only_workspace_actions():
    permissions = {ScopeLevel.WORKSPACE: PermissionSet.from_rest([AI_DEVELOPER])}

    check = check_broker_permissions(WS, permissions, marketplace_model=False, strictness=Strictness.STRICT)

    assert check.ok


def test_missing_workspace_actions_are_listed_with_a_workspace_fix():
    reader = {ScopeLevel.WORKSPACE: PermissionSet.from_rest([{"actions": ["*/read"]}])}

    check = check_broker_permissions(WS, reader, marketplace_model=False)

    missing = [action for action in WORKSPACE_ACTIONS if not action.endswith("/read")]
    assert check.details() == [{"scope": "workspace", "scopeId": str(WS), "missingActions": missing}]
    assert check.rejection_text == (
        "The broker's identity lacks permissions needed to deploy a model sold directly by Azure (permission "
        f"strictness 'role-based'): at workspace {WS}: {', '.join(missing)}. Fix: assign the Azure AI Developer "
        f"role to the broker's identity at resource group scope {WS.resource_group_scope} (or at workspace scope "
        f"{WS}), or grant the listed actions through a custom role."
    )


def test_a_scope_without_permissions_holds_nothing():
    check = check_broker_permissions(WS, {}, marketplace_model=False)

    assert check.missing_by_scope() == {str(WS): WORKSPACE_ACTIONS}


def test_the_seed_name_for_marketplace_subscriptions_is_accepted_too():
    seed_custom_role = {
        "actions": [f"{ML}/marketplaceModelSubscriptions/*", f"{ML}/serverlessEndpoints/*"],
    }

    check = check_broker_permissions(WS, everywhere(seed_custom_role), marketplace_model=False)

    assert check.ok


def test_a_deny_assignment_makes_an_action_missing():
    check = check_broker_permissions(
        WS,
        everywhere(OWNER, denies=[{"actions": [f"{ML}/serverlessEndpoints/listKeys/action"]}]),
        marketplace_model=False,
    )

    assert check.missing_by_scope() == {str(WS): [f"{ML}/serverlessEndpoints/listKeys/action"]}


PRINCIPAL = "aaaaaaaa-0000-0000-0000-000000000001"


def test_a_requester_with_the_deploy_action_is_allowed():
    check = check_requester_permission(WS, PRINCIPAL, PermissionSet.from_rest([AI_DEVELOPER]))

    assert check.allowed
    assert check.rejection_text is None
    assert f"{ML}/serverlessEndpoints/write" == REQUESTER_DEPLOY_ACTION


def test_a_requester_without_the_action_is_told_which_role_to_get():
    check = check_requester_permission(WS, PRINCIPAL, PermissionSet.from_rest([{"actions": ["*/read"]}]))

    assert not check.allowed
    assert not check.denied_by_assignment
    assert check.rejection_text == (
        f"Principal {PRINCIPAL} may not perform '{REQUESTER_DEPLOY_ACTION}' on workspace {WS}. Ask the workspace "
        "owner to assign the Azure AI Developer role (or a role granting that action) at the workspace or its "
        "resource group."
    )


def test_a_requester_blocked_by_a_deny_assignment_is_told_roles_will_not_help():
    permissions = PermissionSet.from_rest([OWNER], [{"actions": [f"{ML}/*/write"]}])

    check = check_requester_permission(WS, PRINCIPAL, permissions)

    assert not check.allowed
    assert check.denied_by_assignment
    assert "by a deny assignment; no role assignment can override it" in check.rejection_text
