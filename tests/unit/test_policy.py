import pytest

from shared.azure_ids import InvalidResourceIdError, WorkspaceId
from shared.model_ids import InvalidModelIdError, parse_model_id
from shared.policy import ApprovedModelPolicy, PolicyDecision, TargetAllowList, publisher_of, split_setting

SUB_A = "0b1f6471-1bf0-4dda-aec3-111122223333"
SUB_B = "9f8e7d6c-0000-4444-8888-aaaabbbbcccc"
WS_A = f"/subscriptions/{SUB_A}/resourceGroups/rg-ai/providers/Microsoft.MachineLearningServices/workspaces/proj-a"
COHERE = parse_model_id("azureml://registries/azureml-cohere/models/Cohere-command-r-08-2024")
PHI = parse_model_id("azureml://registries/azureml/models/Phi-4")
LLAMA = parse_model_id("azureml://registries/azureml-meta/models/Llama-3.3-70B-Instruct")


def workspace(subscription=SUB_A, group="rg-ai", name="proj-a") -> WorkspaceId:
    return WorkspaceId.parse(
        f"/subscriptions/{subscription}/resourceGroups/{group}/providers/Microsoft.MachineLearningServices/"
        f"workspaces/{name}"
    )


@pytest.mark.parametrize(
    ("value", "items"),
    [(None, ()), ("", ()), (" , ,", ()), ("a", ("a",)), (" a , b ,, c ", ("a", "b", "c"))],
)
def test_split_setting(value, items):
    assert split_setting(value) == items


@pytest.mark.parametrize(
    ("model", "publisher"),
    [(COHERE, "cohere"), (PHI, "azureml"), (parse_model_id("azureml://registries/Contoso/models/x"), "contoso")],
)
def test_publisher_comes_from_the_registry(model, publisher):
    assert publisher_of(model) == publisher


def test_an_empty_policy_allows_everything():
    policy = ApprovedModelPolicy.from_settings()

    assert policy.evaluate(COHERE) == PolicyDecision(allowed=True)
    assert policy.evaluate(PHI, family="Microsoft models").allowed


@pytest.mark.parametrize(
    ("settings", "model", "family", "allowed"),
    [
        ({"registries": "azureml-cohere, AzureML"}, COHERE, None, True),
        ({"registries": "azureml-cohere, AzureML"}, PHI, None, True),
        ({"registries": "azureml-cohere"}, LLAMA, None, False),
        ({"publishers": "META"}, LLAMA, None, True),
        ({"publishers": "meta llama models"}, LLAMA, "Meta Llama Models", True),
        ({"publishers": "cohere"}, LLAMA, "Meta Llama models", False),
        ({"model_ids": f"{LLAMA}/versions/2"}, LLAMA, None, True),
        ({"model_ids": str(LLAMA).upper().replace("AZUREML://", "azureml://")}, LLAMA, None, True),
        ({"model_ids": str(LLAMA)}, COHERE, None, False),
        ({"registries": "azureml-meta", "model_ids": str(COHERE)}, COHERE, None, False),
        ({"registries": "azureml-meta", "publishers": "meta", "model_ids": str(LLAMA)}, LLAMA, None, True),
    ],
)
def test_every_configured_filter_must_pass(settings, model, family, allowed):
    assert ApprovedModelPolicy.from_settings(**settings).evaluate(model, family=family).allowed is allowed


def test_registry_rejection_names_the_rule_and_the_allowed_registries():
    decision = ApprovedModelPolicy.from_settings(registries="azureml-meta,azureml").evaluate(COHERE)

    assert decision == PolicyDecision(
        allowed=False,
        rule="registry",
        reason=f"Model {COHERE} comes from registry 'azureml-cohere', which is not in the approved registries "
        "(azureml, azureml-meta).",
    )


def test_publisher_rejection_names_publisher_and_family():
    policy = ApprovedModelPolicy.from_settings(publishers="cohere")

    with_family = policy.evaluate(LLAMA, family="Meta Llama models")
    without_family = policy.evaluate(LLAMA)

    assert with_family.rule == "publisher"
    assert with_family.reason == (
        f"Model {LLAMA} is published by 'meta' (family 'Meta Llama models'), which is not an approved publisher "
        "(cohere)."
    )
    assert (
        without_family.reason == f"Model {LLAMA} is published by 'meta', which is not an approved publisher (cohere)."
    )


def test_model_id_rejection():
    decision = ApprovedModelPolicy.from_settings(model_ids=str(LLAMA)).evaluate(COHERE)

    assert decision == PolicyDecision(False, "modelId", f"Model {COHERE} is not in the list of approved model ids.")


def test_a_typo_in_the_approved_model_ids_fails_at_start_up():
    with pytest.raises(InvalidModelIdError):
        ApprovedModelPolicy.from_settings(model_ids="azureml://registries/x/models/ok, Llama-3")


def test_an_empty_allow_list_is_unrestricted():
    allow_list = TargetAllowList.from_settings(subscription_ids=" ", resource_groups=None, workspace_ids="")

    assert allow_list.unrestricted
    assert allow_list.evaluate(workspace()).allowed


@pytest.mark.parametrize(
    ("settings", "target", "allowed"),
    [
        ({"subscription_ids": SUB_A.upper()}, workspace(), True),
        ({"subscription_ids": f"{SUB_B},{SUB_A}"}, workspace(), True),
        ({"subscription_ids": SUB_B}, workspace(), False),
        ({"resource_groups": "RG-AI"}, workspace(), True),
        ({"resource_groups": "rg-ai"}, workspace(subscription=SUB_B), True),
        ({"resource_groups": f"/subscriptions/{SUB_A}/resourcegroups/RG-AI/"}, workspace(), True),
        ({"resource_groups": f"/subscriptions/{SUB_A}/resourceGroups/rg-ai"}, workspace(subscription=SUB_B), False),
        ({"resource_groups": "rg-other"}, workspace(), False),
        ({"workspace_ids": WS_A.upper().replace(SUB_A.upper(), SUB_A)}, workspace(), True),
        ({"workspace_ids": WS_A}, workspace(name="proj-b"), False),
        ({"subscription_ids": SUB_A, "workspace_ids": WS_A}, workspace(), True),
        ({"subscription_ids": SUB_B, "workspace_ids": WS_A}, workspace(), False),
    ],
)
def test_target_allow_list(settings, target, allowed):
    allow_list = TargetAllowList.from_settings(**settings)

    assert not allow_list.unrestricted
    assert allow_list.evaluate(target).allowed is allowed


@pytest.mark.parametrize(
    ("settings", "target", "rule", "reason"),
    [
        (
            {"subscription_ids": SUB_B},
            workspace(),
            "subscription",
            f"Subscription {SUB_A} is not in the broker's allowed subscriptions.",
        ),
        (
            {"resource_groups": "rg-other"},
            workspace(),
            "resourceGroup",
            f"Resource group /subscriptions/{SUB_A}/resourceGroups/rg-ai is not in the broker's allowed "
            "resource groups.",
        ),
        (
            {"workspace_ids": WS_A},
            workspace(name="proj-b"),
            "workspace",
            f"Workspace {WS_A.replace('proj-a', 'proj-b')} is not in the broker's allowed workspaces.",
        ),
    ],
)
def test_target_rejections_name_the_rule(settings, target, rule, reason):
    assert TargetAllowList.from_settings(**settings).evaluate(target) == PolicyDecision(False, rule, reason)


@pytest.mark.parametrize(
    "entry", [f"/subscriptions/{SUB_A}", f"/subscriptions/{SUB_A}/resourceGroups/rg/providers/x", "/rg/x/y/z"]
)
def test_a_resource_group_entry_that_is_an_id_must_be_a_resource_group_id(entry):
    with pytest.raises(ValueError, match="is neither a name nor an id of the form"):
        TargetAllowList.from_settings(resource_groups=entry)


def test_a_typo_in_allowed_workspaces_fails_at_start_up():
    with pytest.raises(InvalidResourceIdError):
        TargetAllowList.from_settings(workspace_ids="proj-a")
