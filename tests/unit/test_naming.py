import re

import pytest

from shared.azure_ids import WorkspaceId
from shared.model_ids import ModelId, parse_model_id
from shared.naming import (
    ENDPOINT_NAME_PATTERN,
    SUBSCRIPTION_NAME_PATTERN,
    InvalidNameError,
    SecretNames,
    derive_endpoint_name,
    endpoint_name_problem,
    key_vault_secret_names,
    marketplace_subscription_name,
    validate_endpoint_name,
)

SUB = "0b1f6471-1bf0-4dda-aec3-111122223333"
WS_A = WorkspaceId.parse(
    f"/subscriptions/{SUB}/resourceGroups/rg-ai/providers/Microsoft.MachineLearningServices/workspaces/proj-a"
)
WS_B = WorkspaceId(subscription_id=SUB, resource_group="rg-ai", name="proj-b")
SECRET_NAME = re.compile(r"^[a-zA-Z][a-zA-Z0-9-]{0,126}$")


def model(name: str):
    return parse_model_id(f"azureml://registries/azureml/models/{name}")


@pytest.mark.parametrize("name", ["a", "A", "ep-1", "DeepSeek-R1-qwerty", "a" * 52, "x-"])
def test_valid_endpoint_names_pass(name):
    assert endpoint_name_problem(name) is None
    assert validate_endpoint_name(name) == name
    assert ENDPOINT_NAME_PATTERN.match(name)


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("", "The endpoint name is empty."),
        ("a" * 53, f"The endpoint name '{'a' * 53}' is 53 characters long; the limit is 52."),
        ("1abc", "The endpoint name '1abc' must start with a letter."),
        ("-abc", "The endpoint name '-abc' must start with a letter."),
        ("éabc", "The endpoint name 'éabc' must start with a letter."),
        ("my_ep.v1", "The endpoint name 'my_ep.v1' may contain only letters, digits and '-'; it contains '.', '_'."),
        ("ab cd", "The endpoint name 'ab cd' may contain only letters, digits and '-'; it contains ' '."),
        ("abé", "The endpoint name 'abé' may contain only letters, digits and '-'; it contains 'é'."),
    ],
)
def test_invalid_endpoint_names_explain_the_rule(name, message):
    assert endpoint_name_problem(name) == message
    assert not ENDPOINT_NAME_PATTERN.match(name)
    with pytest.raises(InvalidNameError, match=re.escape(message)):
        validate_endpoint_name(name)


@pytest.mark.parametrize(
    ("model_name", "stem"),
    [
        ("DeepSeek-R1", "deepseek-r1"),
        ("Cohere-rerank-v3.5", "cohere-rerank-v3-5"),
        ("Llama-3.3-70B-Instruct", "llama-3-3-70b-instruct"),
        ("a__b..c--d", "a-b-c-d"),
        ("Phi_4_", "phi-4"),
    ],
)
def test_derived_endpoint_names_follow_the_model_name(model_name, stem):
    name = derive_endpoint_name(model(model_name), WS_A)

    assert re.fullmatch(rf"{stem}-[0-9a-f]{{6}}", name)
    assert ENDPOINT_NAME_PATTERN.match(name)


def test_derived_names_are_deterministic_and_differ_between_workspaces():
    name_a = derive_endpoint_name(model("Phi-4"), WS_A)

    assert (
        derive_endpoint_name(model("phi-4"), WorkspaceId.parse(str(WS_A).upper().replace(SUB.upper(), SUB))) == name_a
    )
    assert derive_endpoint_name(model("Phi-4"), WS_B) != name_a


def test_a_long_model_name_is_truncated_without_a_trailing_dash():
    name = derive_endpoint_name(model("a" * 44 + "-bbbbbbbbbb"), WS_A)

    assert len(name) <= 52
    assert name.startswith("a" * 44 + "-")
    assert "--" not in name
    assert ENDPOINT_NAME_PATTERN.match(name)


@pytest.mark.parametrize("model_name", ["4o-mini", "1.5", "_-_"])
def test_a_model_name_that_cannot_start_an_endpoint_name_says_so(model_name):
    with pytest.raises(InvalidNameError) as caught:
        derive_endpoint_name(ModelId(registry="azureml", name=model_name), WS_A)

    assert str(caught.value) == (
        f"Cannot derive an endpoint name from model name '{model_name}': an endpoint name must start with a letter. "
        "Pass endpointName explicitly."
    )


@pytest.mark.parametrize(
    ("model_id", "subscription"),
    [
        (
            "azureml://registries/azureml-cohere/models/Cohere-command-r-08-2024",
            "Cohere-command-r-08-2024-subscription",
        ),
        ("azureml://registries/azureml-cohere/models/Cohere-rerank-v3.5/versions/2", "Cohere-rerank-v35-subscription"),
        ("azureml://registries/azureml-meta/models/Llama-3.3-70B-Instruct", "Llama-33-70B-Instruct-subscription"),
        ("azureml://registries/r/models/my_model", "my_model-subscription"),
    ],
)
def test_marketplace_subscription_names_follow_the_seed_convention(model_id, subscription):
    name = marketplace_subscription_name(parse_model_id(model_id))

    assert name == subscription
    assert SUBSCRIPTION_NAME_PATTERN.match(name)


def test_a_too_long_subscription_name_is_refused():
    long_model = parse_model_id(f"azureml://registries/r/models/{'m' * 243}")

    with pytest.raises(InvalidNameError, match="is invalid: it must be 1-255 letters, digits, '-' or '_'"):
        marketplace_subscription_name(long_model)
    assert len(marketplace_subscription_name(parse_model_id(f"azureml://registries/r/models/{'m' * 242}"))) == 255


def test_secret_names_are_valid_deterministic_and_distinct():
    names = key_vault_secret_names(WS_A, "DeepSeek-R1-ep")

    assert re.fullmatch(r"serverless-deepseek-r1-ep-[0-9a-f]{12}-primary", names.primary)
    assert names.secondary == names.primary.removesuffix("-primary") + "-secondary"
    assert key_vault_secret_names(WS_A, "deepseek-r1-EP") == names
    assert SECRET_NAME.match(names.primary)
    assert SECRET_NAME.match(names.secondary)


def test_secret_names_differ_for_the_same_endpoint_in_another_workspace():
    assert key_vault_secret_names(WS_A, "ep") != key_vault_secret_names(WS_B, "ep")
    assert key_vault_secret_names(WS_A, "ep") != key_vault_secret_names(WS_A, "ep2")


def test_secret_names_stay_within_key_vault_limits_for_the_longest_endpoint_name():
    names = key_vault_secret_names(WS_A, "e" * 52)

    assert isinstance(names, SecretNames)
    assert len(names.secondary) <= 127
    assert SECRET_NAME.match(names.secondary)


def test_secret_names_refuse_an_invalid_endpoint_name():
    with pytest.raises(InvalidNameError, match="must start with a letter"):
        key_vault_secret_names(WS_A, "9ep")
