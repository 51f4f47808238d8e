import pytest

from shared.model_ids import InvalidModelIdError, ModelId, normalize_model_id, parse_model_id


@pytest.mark.parametrize(
    ("text", "registry", "name", "version"),
    [
        ("azureml://registries/azureml-deepseek/models/DeepSeek-R1", "azureml-deepseek", "DeepSeek-R1", None),
        (
            "azureml://registries/azureml-cohere/models/Cohere-command-r-08-2024/versions/1",
            "azureml-cohere",
            "Cohere-command-r-08-2024",
            "1",
        ),
        ("  azureml://registries/azureml/models/Phi-4  ", "azureml", "Phi-4", None),
        ("AzureML://Registries/azureml/Models/Phi-4/Versions/7", "azureml", "Phi-4", "7"),
        ("azureml://registries/azureml-cohere/models/Cohere-rerank-v3.5", "azureml-cohere", "Cohere-rerank-v3.5", None),
        ("azureml://registries/my_reg/models/a_b.c-d", "my_reg", "a_b.c-d", None),
    ],
)
def test_valid_ids_parse_into_their_parts(text, registry, name, version):
    assert parse_model_id(text) == ModelId(registry=registry, name=name, version=version)


def test_normalised_id_drops_the_version_and_canonicalises_keywords():
    parsed = parse_model_id("AZUREML://registries/azureml-meta/MODELS/Llama-3.3-70B-Instruct/versions/4")

    assert parsed.normalized == "azureml://registries/azureml-meta/models/Llama-3.3-70B-Instruct"
    assert str(parsed) == parsed.normalized
    assert normalize_model_id("azureml://registries/x/models/y/versions/2") == "azureml://registries/x/models/y"


def test_key_ignores_case_so_differently_cased_ids_are_the_same_model():
    assert (
        parse_model_id("azureml://registries/azureml-deepseek/models/deepseek-r1").key
        == parse_model_id("azureml://registries/azureml-deepseek/models/DeepSeek-R1/versions/1").key
    )


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "The model id is empty; expected azureml://registries/<registry>/models/<name>[/versions/<version>]."),
        ("   ", "The model id is empty"),
        (None, "The model id is empty"),
        ("https://registries/azureml/models/Phi-4", "does not start with 'azureml://'"),
        ("azureml://registries/azureml/Phi-4", "is not of the form azureml://registries/<registry>/models/<name>"),
        ("azureml://registry/azureml/models/Phi-4", "is not of the form"),
        ("azureml://registries/azureml/model/Phi-4", "is not of the form"),
        ("azureml://registries/azureml/models/Phi-4/labels/latest", "is not of the form"),
        ("azureml://registries/azureml/models/Phi-4/versions", "is not of the form"),
        ("azureml://registries/azureml/models/Phi-4/", "is not of the form"),
        ("azureml://registries/azureml/models/Phi-4/versions/1/extra", "is not of the form"),
        (
            "azureml://registries//models/Phi-4",
            "The registry name in model id 'azureml://registries//models/Phi-4' is empty",
        ),
        ("azureml://registries/azureml/models/", "The model name in model id"),
        ("azureml://registries/azureml/models/Phi-4/versions/", "The version in model id"),
        ("azureml://registries/azure ml/models/Phi-4", "The registry name 'azure ml' in model id"),
        ("azureml://registries/azureml/models/-Phi", "must start with a letter or digit and contain only letters"),
        ("azureml://registries/azureml/models/Phi%204", "The model name 'Phi%204'"),
        ("azureml://registries/azureml/models/Phi-4/versions/1?x", "The version '1?x'"),
        (f"azureml://registries/azureml/models/{'a' * 256}", "is 256 characters long; the limit is 255."),
    ],
)
def test_malformed_ids_are_rejected_with_a_precise_message(text, message):
    with pytest.raises(InvalidModelIdError) as caught:
        parse_model_id(text)

    assert message in str(caught.value)


def test_the_error_is_a_value_error_so_pydantic_validators_report_it():
    with pytest.raises(ValueError, match="does not start with"):
        normalize_model_id("registries/azureml/models/Phi-4")


def test_a_255_character_name_is_still_accepted():
    assert parse_model_id(f"azureml://registries/r/models/{'a' * 255}").name == "a" * 255
