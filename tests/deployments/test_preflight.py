"""Preflight: each check passes and refuses with the right problem, cheap checks first, Azure errors untouched."""

from dataclasses import replace

import pytest

from shared.azure_errors import AzureCallError
from shared.deployments.preflight import CHECKS, PreflightContext, run_preflight
from shared.naming import derive_endpoint_name, key_vault_secret_names
from shared.ownership import MANAGED_BY_TAG, MANAGED_BY_VALUE
from shared.plan import plan_for
from shared.required_permissions import REQUESTER_DEPLOY_ACTION, Strictness

from .scenario import (
    AI_DEVELOPER_BLOCK,
    BROKER,
    CATALOG,
    DIRECT_MODEL,
    MARKETPLACE_MODEL,
    MARKETPLACE_REGIONS,
    ML,
    OTHER_SUBSCRIPTION,
    REQUESTER,
    RESOURCE_GROUP_SAAS_ACTIONS,
    RESOURCE_GROUP_SCOPE,
    SUBSCRIPTION_MARKETPLACE_ACTIONS,
    SUBSCRIPTION_SCOPE,
    UNKNOWN_REGIONS_MODEL,
    WORKSPACE_ACTIONS,
    WORKSPACE_ID,
    build_world,
    policy,
    request,
)

ALL_CHECKS = (
    "model-approved",
    "model-known",
    "workspace-allowed",
    "endpoint-name-valid",
    "broker-permissions",
    "requester-permission",
    "region-supported",
    "one-deployment-per-model",
)
BROKER_MANAGED = {MANAGED_BY_TAG: MANAGED_BY_VALUE}
LIST_KEYS = f"{ML}/serverlessEndpoints/listKeys/action"
# A typo of MARKETPLACE_MODEL ("comand"): not in the catalog.
MISTYPED_MODEL = "azureml://registries/azureml-cohere/models/Cohere-comand-r-08-2024"
# Its endpoint name cannot be derived (it starts with a digit); only nameless_model_world() catalogues it.
NAMELESS_MODEL = "azureml://registries/azureml-deepseek/models/3b-instruct"


def check_named(name):
    return next(check for check in CHECKS if check.name == name)


def uncatalogued_models_allowed_world():
    return build_world(preflight_policy=replace(policy(), allow_uncatalogued_models=True))


def nameless_model_world():
    catalog = CATALOG.with_overrides([{"modelId": NAMELESS_MODEL, "requiresMarketplaceSubscription": False}])
    return build_world(preflight_policy=replace(policy(), catalog=catalog))


def broker_world(*blocks, strictness=Strictness.ROLE_BASED, roles=()):
    """A world whose broker identity holds exactly `blocks` at the resource group and `roles` there."""
    return build_world(
        preflight_policy=policy(strictness=strictness),
        broker_blocks=blocks,
        broker_roles=tuple(roles),
        broker_scope=RESOURCE_GROUP_SCOPE,
    )


# Everything allowed.


def test_a_request_that_breaks_no_rule_passes_every_check_in_order(world):
    result = world.preflight(request(MARKETPLACE_MODEL))

    assert result.problem is None
    assert result.checks_passed == ALL_CHECKS
    assert result.existing_endpoint is None
    assert result.warnings == ()
    plan = result.plan
    assert plan.endpoint_name == derive_endpoint_name(plan.model, plan.workspace)
    assert plan.subscription_name == "Cohere-command-r-08-2024-subscription"
    assert plan.secret_names == key_vault_secret_names(plan.workspace, plan.endpoint_name)
    assert plan.endpoint_id == f"{WORKSPACE_ID}/serverlessEndpoints/{plan.endpoint_name}"
    assert plan.classification.requires_marketplace_subscription


def test_the_registered_checks_run_cheapest_first():
    assert tuple(check.name for check in CHECKS) == ALL_CHECKS


def test_each_check_is_announced_before_it_runs(world):
    announced = []
    context = PreflightContext(request(DIRECT_MODEL), REQUESTER, world.policy, world.ml, world.authorization)

    run_preflight(context, on_check=announced.append)

    assert announced == list(ALL_CHECKS)


def test_a_subset_of_checks_can_be_run(world):
    context = PreflightContext(request(DIRECT_MODEL), REQUESTER, world.policy, world.ml, world.authorization)

    result = run_preflight(context, [check_named("model-approved"), check_named("endpoint-name-valid")])

    assert result.checks_passed == ("model-approved", "endpoint-name-valid")
    assert world.azure_calls == []


def test_a_check_that_needs_the_plan_makes_it_when_run_alone(world):
    context = PreflightContext(request(DIRECT_MODEL), REQUESTER, world.policy, world.ml, world.authorization)

    result = run_preflight(context, [check_named("broker-permissions")])

    assert result.checks_passed == ("broker-permissions",)
    assert result.plan == plan_for(request(DIRECT_MODEL), CATALOG)


def test_a_model_sold_directly_is_planned_without_a_subscription():
    plan = plan_for(request(DIRECT_MODEL, endpoint_name="my-deepseek"), CATALOG)

    assert plan.subscription_name is None
    assert plan.endpoint_name == "my-deepseek"
    assert not plan.classification.requires_marketplace_subscription


def test_a_versioned_model_id_is_planned_as_the_latest_version():
    plan = plan_for(request(f"{DIRECT_MODEL}/versions/3"), CATALOG)

    assert plan.model.normalized == DIRECT_MODEL


# Model policy (no Azure calls).


def test_a_model_from_an_unapproved_registry_is_refused_without_calling_azure():
    world = build_world(preflight_policy=policy(registries="azureml-deepseek"))

    result = world.preflight(request(MARKETPLACE_MODEL))

    problem = result.problem
    assert (problem.kind.slug, problem.status) == ("model-not-approved", 403)
    assert "registry 'azureml-cohere'" in problem.detail
    assert "azureml-deepseek" in problem.detail
    assert problem.extensions == {"rule": "registry"}
    assert result.checks_passed == ()
    assert world.azure_calls == []


def test_a_catalog_family_is_accepted_as_a_publisher():
    world = build_world(preflight_policy=policy(registries="", publishers="command"))

    assert world.preflight(request(MARKETPLACE_MODEL)).problem is None


def test_a_model_outside_the_catalog_has_no_family_to_be_approved_by():
    world = build_world(preflight_policy=policy(registries="", publishers="command"))

    problem = world.preflight(request("azureml://registries/azureml-cohere/models/Cohere-embed-v9")).problem

    assert problem.kind.slug == "model-not-approved"
    assert problem.extensions == {"rule": "publisher"}
    assert "published by 'cohere'" in problem.detail
    assert world.azure_calls == []


def test_a_model_missing_from_the_approved_ids_is_refused():
    world = build_world(preflight_policy=policy(model_ids=DIRECT_MODEL))

    problem = world.preflight(request(MARKETPLACE_MODEL)).problem

    assert problem.kind.slug == "model-not-approved"
    assert problem.extensions == {"rule": "modelId"}
    assert "not in the list of approved model ids" in problem.detail


# The model catalog (no Azure calls).


def test_a_model_missing_from_the_catalog_is_refused_with_the_closest_catalogued_id(world):
    result = world.preflight(request(f"{MISTYPED_MODEL}/versions/2"))

    problem = result.problem
    assert (problem.kind.slug, problem.status) == ("model-unknown", 422)
    assert problem.extensions["suggestions"][0] == MARKETPLACE_MODEL
    assert problem.detail.startswith(f"{MISTYPED_MODEL} is not in the model catalog")
    assert f"Did you mean {MARKETPLACE_MODEL}?" in problem.detail
    assert "correct the model id" in problem.detail
    assert "BROKER_MODEL_CATALOG_OVERRIDES" in problem.detail
    assert "BROKER_ALLOW_UNCATALOGUED_MODELS=true" in problem.detail
    assert result.checks_passed == ("model-approved",)
    assert result.plan is None
    assert result.warnings == ()
    assert world.azure_calls == []


def test_a_model_like_nothing_in_the_catalog_is_refused_without_a_suggestion(world):
    problem = world.preflight(request("azureml://registries/azureml-cohere/models/zzzz")).problem

    assert problem.kind.slug == "model-unknown"
    assert problem.extensions == {"suggestions": []}
    assert "Did you mean" not in problem.detail


def test_an_unapproved_model_is_reported_before_an_unknown_one():
    world = build_world(preflight_policy=policy(registries="azureml-deepseek"))

    assert world.preflight(request(MISTYPED_MODEL)).problem.kind.slug == "model-not-approved"


def test_uncatalogued_models_allowed_by_configuration_pass_with_a_prefix_rule_warning():
    world = uncatalogued_models_allowed_world()

    result = world.preflight(request(MISTYPED_MODEL))

    assert result.problem is None
    assert result.checks_passed == ALL_CHECKS
    assert result.plan.classification.source == "prefix-rule"
    assert len(result.warnings) == 1
    warning = result.warnings[0]
    assert warning.startswith(f"{MISTYPED_MODEL} is not in the model catalog")
    assert "prefix rule" in warning
    assert "sold through Azure Marketplace" in warning
    assert "BROKER_ALLOW_UNCATALOGUED_MODELS" in warning


def test_a_catalogued_model_passes_without_a_warning_when_uncatalogued_models_are_allowed():
    result = uncatalogued_models_allowed_world().preflight(request(DIRECT_MODEL))

    assert result.problem is None
    assert result.warnings == ()


def test_a_warning_is_kept_when_a_later_check_refuses():
    world = build_world(
        preflight_policy=replace(policy(subscriptions=OTHER_SUBSCRIPTION), allow_uncatalogued_models=True)
    )

    result = world.preflight(request(MISTYPED_MODEL))

    assert result.problem.kind.slug == "workspace-not-allowed"
    assert len(result.warnings) == 1


# Target allow-list (no Azure calls).


def test_a_workspace_outside_the_allowed_subscriptions_is_refused_without_calling_azure():
    world = build_world(preflight_policy=policy(subscriptions=OTHER_SUBSCRIPTION))

    result = world.preflight(request(MARKETPLACE_MODEL))

    problem = result.problem
    assert (problem.kind.slug, problem.status) == ("workspace-not-allowed", 403)
    assert SUBSCRIPTION_SCOPE.split("/")[-1] in problem.detail
    assert problem.extensions == {"rule": "subscription"}
    assert result.checks_passed == ("model-approved", "model-known")
    assert world.azure_calls == []


def test_an_unapproved_model_is_reported_before_a_forbidden_workspace():
    world = build_world(preflight_policy=policy(registries="azureml-meta", subscriptions=OTHER_SUBSCRIPTION))

    assert world.preflight(request(MARKETPLACE_MODEL)).problem.kind.slug == "model-not-approved"


# Endpoint name (no Azure calls).


def test_an_endpoint_name_that_cannot_be_derived_is_refused_without_calling_azure():
    world = nameless_model_world()

    result = world.preflight(request(NAMELESS_MODEL))

    problem = result.problem
    assert (problem.kind.slug, problem.status) == ("endpoint-name-invalid", 400)
    assert "must start with a letter" in problem.detail
    assert "Pass endpointName explicitly" in problem.detail
    assert result.plan is None
    assert result.checks_passed == ("model-approved", "model-known", "workspace-allowed")
    assert world.azure_calls == []


def test_an_explicit_endpoint_name_makes_such_a_model_deployable():
    result = nameless_model_world().preflight(request(NAMELESS_MODEL, endpoint_name="b3"))

    assert result.problem is None
    assert result.plan.endpoint_name == "b3"


# The broker's own permissions.


def test_a_model_sold_directly_needs_only_the_workspace_actions():
    held = [action for action in WORKSPACE_ACTIONS if action != LIST_KEYS]
    world = broker_world({"actions": held})

    result = world.preflight(request(DIRECT_MODEL))

    problem = result.problem
    assert (problem.kind.slug, problem.status) == ("broker-permissions-missing", 403)
    assert problem.extensions == {
        "missingActions": [
            {
                "scope": "workspace",
                "scopeId": WORKSPACE_ID,
                "missingActions": [f"{ML}/serverlessEndpoints/listKeys/action"],
            }
        ]
    }
    assert "a model sold directly by Azure" in problem.detail
    assert f"at workspace {WORKSPACE_ID}: {LIST_KEYS}" in problem.detail
    assert "Fix: assign the Azure AI Developer role" in problem.detail
    # Only the workspace scope is asked about, and the broker's roles do not matter for such a model.
    assert world.authorization.call_names == ["own_permissions"]
    assert world.authorization.calls[0].args == (WORKSPACE_ID,)
    assert world.ml.calls == []


def test_a_model_sold_directly_passes_with_the_workspace_actions_alone():
    world = broker_world({"actions": WORKSPACE_ACTIONS})

    assert world.preflight(request(DIRECT_MODEL)).problem is None


def test_strict_mode_lists_the_marketplace_actions_per_scope_even_for_a_sufficient_role():
    world = broker_world(AI_DEVELOPER_BLOCK, strictness=Strictness.STRICT, roles=["Azure AI Developer"])

    problem = world.preflight(request(MARKETPLACE_MODEL)).problem

    assert problem.kind.slug == "broker-permissions-missing"
    by_scope = {item["scope"]: item for item in problem.extensions["missingActions"]}
    assert by_scope["subscription"] == {
        "scope": "subscription",
        "scopeId": SUBSCRIPTION_SCOPE,
        "missingActions": SUBSCRIPTION_MARKETPLACE_ACTIONS,
    }
    assert by_scope["resourceGroup"] == {
        "scope": "resourceGroup",
        "scopeId": RESOURCE_GROUP_SCOPE,
        "missingActions": RESOURCE_GROUP_SAAS_ACTIONS,
    }
    assert "workspace" not in by_scope
    assert "permission strictness 'strict'" in problem.detail
    assert "a Marketplace model" in problem.detail
    # Strict mode does not care which roles the broker holds, so it does not ask.
    assert "principal_access" not in world.authorization.call_names
    asked = [call.args[0] for call in world.authorization.calls_to("own_permissions")]
    assert sorted(asked) == sorted([WORKSPACE_ID, RESOURCE_GROUP_SCOPE, SUBSCRIPTION_SCOPE])


def test_role_based_mode_waives_the_marketplace_actions_for_a_sufficient_role():
    world = broker_world(AI_DEVELOPER_BLOCK, roles=["Azure AI Developer"])

    result = world.preflight(request(MARKETPLACE_MODEL))

    assert result.problem is None
    assert world.authorization.calls_to("own_principal_id")
    assert world.authorization.calls_to("assigned_role_ids")[0].args == (BROKER, RESOURCE_GROUP_SCOPE)
    # The role leaves only the workspace's actions, so only the workspace's permissions are read.
    assert [call.args[0] for call in world.authorization.calls_to("own_permissions")] == [WORKSPACE_ID]


def test_role_based_mode_requires_the_marketplace_actions_without_a_sufficient_role():
    world = broker_world({"actions": WORKSPACE_ACTIONS}, roles=["Custom ML deployer"])

    problem = world.preflight(request(MARKETPLACE_MODEL)).problem

    assert problem.kind.slug == "broker-permissions-missing"
    missing = {item["scope"]: item["missingActions"] for item in problem.extensions["missingActions"]}
    assert missing == {"subscription": SUBSCRIPTION_MARKETPLACE_ACTIONS, "resourceGroup": RESOURCE_GROUP_SAAS_ACTIONS}
    assert "permission strictness 'role-based'" in problem.detail
    assert "waives the Marketplace/SaaS actions" in problem.detail


def test_missing_broker_permissions_stop_preflight_before_the_requester_or_workspace_is_read():
    world = broker_world({"actions": [f"{ML}/serverlessEndpoints/read"]})

    result = world.preflight(request(DIRECT_MODEL))

    assert result.problem.kind.slug == "broker-permissions-missing"
    assert result.checks_passed == ("model-approved", "model-known", "workspace-allowed", "endpoint-name-valid")
    assert "principal_access" not in world.authorization.call_names
    assert world.ml.calls == []


# The requester.


def test_a_requester_without_a_role_is_forbidden(world):
    stranger = "99999999-8888-4777-8666-555544443333"

    result = world.preflight(request(DIRECT_MODEL), caller=stranger)

    problem = result.problem
    assert (problem.kind.slug, problem.status) == ("requester-forbidden", 403)
    assert stranger in problem.detail
    assert REQUESTER_DEPLOY_ACTION in problem.detail
    assert "Azure AI Developer" in problem.detail
    assert world.authorization.calls_to("principal_access")[-1].args == (stranger, WORKSPACE_ID)
    assert world.ml.calls == []


def test_a_deny_assignment_forbids_a_requester_whose_role_allows_deploying(world):
    world.authorization.grant(REQUESTER, RESOURCE_GROUP_SCOPE, denials=[{"actions": [f"{ML}/serverlessEndpoints/*"]}])

    problem = world.preflight(request(DIRECT_MODEL)).problem

    assert problem.kind.slug == "requester-forbidden"
    assert "deny assignment" in problem.detail
    assert "no role assignment can override it" in problem.detail


def test_a_requester_role_inherited_from_the_subscription_counts(world):
    colleague = "12345678-1234-4234-8234-123456789012"
    world.authorization.grant(colleague, SUBSCRIPTION_SCOPE, permissions=[{"actions": ["*"]}], roles=["Owner"])

    assert world.preflight(request(DIRECT_MODEL), caller=colleague).problem is None


# Region.


def test_a_workspace_in_a_region_without_the_model_is_refused_naming_the_regions():
    world = build_world(location="westeurope")

    result = world.preflight(request(MARKETPLACE_MODEL))

    problem = result.problem
    assert (problem.kind.slug, problem.status) == ("region-unsupported", 422)
    assert "in westeurope, the region of workspace proj-a" in problem.detail
    assert "Regions that offer it: eastus, eastus2, northcentralus." in problem.detail
    assert problem.extensions == {"workspaceLocation": "westeurope", "supportedRegions": list(MARKETPLACE_REGIONS)}
    assert "list_endpoints" not in world.ml.call_names


def test_a_region_display_name_is_compared_as_a_location_name():
    world = build_world(location="East US 2")

    assert world.preflight(request(MARKETPLACE_MODEL)).problem is None


def test_a_model_whose_regions_are_unknown_is_left_to_azure():
    world = build_world(location="westeurope")

    assert world.preflight(request(UNKNOWN_REGIONS_MODEL)).problem is None


# One deployment per model per project.


def test_another_endpoint_for_the_same_model_is_a_conflict(world):
    world.ml.add_endpoint(WORKSPACE_ID, "team-cohere", MARKETPLACE_MODEL, tags=BROKER_MANAGED)

    result = world.preflight(request(MARKETPLACE_MODEL))

    problem = result.problem
    assert (problem.kind.slug, problem.status) == ("deployment-conflict", 409)
    assert "already has endpoint 'team-cohere'" in problem.detail
    assert "one deployment per model" in problem.detail
    assert problem.extensions == {"existingEndpoint": "team-cohere"}
    assert result.existing_endpoint is None


def test_an_endpoint_for_a_pinned_version_of_the_same_model_is_a_conflict(world):
    world.ml.add_endpoint(WORKSPACE_ID, "pinned", f"{MARKETPLACE_MODEL.upper()}/versions/4")

    assert world.preflight(request(MARKETPLACE_MODEL)).problem.extensions == {"existingEndpoint": "pinned"}


def test_the_requested_name_taken_by_another_model_is_a_conflict(world):
    world.ml.add_endpoint(WORKSPACE_ID, "shared-name", DIRECT_MODEL, tags=BROKER_MANAGED)

    problem = world.preflight(request(MARKETPLACE_MODEL, endpoint_name="Shared-Name")).problem

    assert problem.kind.slug == "deployment-conflict"
    assert f"Endpoint name 'shared-name' is taken in workspace proj-a by {DIRECT_MODEL}" in problem.detail
    assert "Choose another endpointName" in problem.detail


def test_the_same_name_and_model_made_by_hand_is_a_conflict(world):
    world.ml.add_endpoint(WORKSPACE_ID, "cohere", MARKETPLACE_MODEL, tags={"owner": "someone"})

    problem = world.preflight(request(MARKETPLACE_MODEL, endpoint_name="cohere")).problem

    assert problem.kind.slug == "deployment-conflict"
    assert problem.extensions == {"existingEndpoint": "cohere"}


def test_the_same_name_and_model_made_by_the_broker_is_the_existing_endpoint(world):
    existing = world.ml.add_endpoint(WORKSPACE_ID, "cohere", MARKETPLACE_MODEL, tags=BROKER_MANAGED)

    result = world.preflight(request(MARKETPLACE_MODEL, endpoint_name="cohere"))

    assert result.problem is None
    assert result.existing_endpoint == existing
    assert result.checks_passed == ALL_CHECKS


def test_unrelated_endpoints_and_unreadable_model_ids_do_not_conflict(world):
    world.ml.add_endpoint(WORKSPACE_ID, "legacy", "not a registry model id")
    world.ml.add_endpoint(WORKSPACE_ID, "other-model", DIRECT_MODEL)

    result = world.preflight(request(MARKETPLACE_MODEL))

    assert result.problem is None
    assert result.existing_endpoint is None


def test_the_workspace_and_its_endpoints_are_read_once(world):
    world.ml.add_endpoint(WORKSPACE_ID, "team-cohere", MARKETPLACE_MODEL)

    world.preflight(request(MARKETPLACE_MODEL))

    assert world.ml.call_names == ["get_workspace", "list_endpoints"]


# Azure failures are not preflight verdicts.


@pytest.mark.parametrize(
    ("fake", "method"),
    [
        ("authorization", "own_permissions"),
        ("authorization", "principal_access"),
        ("ml", "get_workspace"),
        ("ml", "list_endpoints"),
    ],
)
def test_an_azure_error_propagates_unchanged(world, fake, method):
    error = AzureCallError(503, "ServiceUnavailable", "Try again later.", retry_after=7)
    getattr(world, fake).fail_next(method, error)

    with pytest.raises(AzureCallError) as raised:
        world.preflight(request(MARKETPLACE_MODEL))

    assert raised.value is error


def test_a_workspace_azure_does_not_know_propagates_as_not_found(world):
    world.ml.workspaces.clear()

    with pytest.raises(AzureCallError) as raised:
        world.preflight(request(DIRECT_MODEL))

    assert raised.value.not_found
