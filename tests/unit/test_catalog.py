import json

import pytest
from pydantic import ValidationError

import shared.catalog as catalog_module
from shared.catalog import CatalogEntry, CatalogFileError, ModelCatalog, normalize_location
from shared.model_ids import InvalidModelIdError, parse_model_id

DEEPSEEK = "azureml://registries/azureml-deepseek/models/DeepSeek-R1"
COHERE = "azureml://registries/azureml-cohere/models/Cohere-command-r-08-2024"
LLAMA_33 = "azureml://registries/azureml-meta/models/Llama-3.3-70B-Instruct"
PHI_4 = "azureml://registries/azureml/models/Phi-4"


@pytest.fixture(scope="module")
def shipped() -> ModelCatalog:
    return ModelCatalog.load()


def write_overrides(tmp_path, models) -> str:
    path = tmp_path / "overrides.json"
    path.write_text(json.dumps({"models": models}), encoding="utf-8")
    return str(path)


@pytest.mark.parametrize(
    ("model_id", "requires_subscription"),
    [
        (DEEPSEEK, False),  # sold directly although its registry is not 'azureml' (the prefix rule is wrong here)
        (COHERE, True),
        (PHI_4, False),
        (LLAMA_33, False),  # docs conflict, the sold-directly article wins
        ("azureml://registries/azureml-mistral/models/Codestral-2501", True),
    ],
)
def test_the_catalog_decides_for_known_models(shipped, model_id, requires_subscription):
    classification = shipped.classify(model_id)

    assert classification.source == "catalog"
    assert classification.requires_marketplace_subscription is requires_subscription
    assert classification.sold_directly is not requires_subscription
    assert classification.model_id == model_id


def test_look_ups_ignore_case_and_version(shipped):
    entry = shipped.get("AZUREML://registries/AZUREML-DEEPSEEK/models/deepseek-r1/versions/3")

    assert entry is not None
    assert entry.model_id == DEEPSEEK
    assert shipped.classify(parse_model_id(DEEPSEEK.lower())).model_id == DEEPSEEK


def test_explanations_say_what_decided(shipped):
    assert shipped.classify(COHERE).explanation == f"The model catalog says {COHERE} needs a Marketplace subscription."
    assert (
        shipped.classify(DEEPSEEK).explanation
        == f"The model catalog says {DEEPSEEK} needs no Marketplace subscription."
    )
    assert "the docs disagree about this model" in shipped.classify(LLAMA_33).explanation


@pytest.mark.parametrize(
    ("model_id", "requires_subscription", "verdict"),
    [
        ("azureml://registries/azureml/models/Brand-New", False, "sold directly by Azure"),
        ("azureml://registries/AzureML/models/Brand-New/versions/2", False, "sold directly by Azure"),
        ("azureml://registries/azureml-newco/models/Brand-New", True, "sold through Azure Marketplace"),
    ],
)
def test_unknown_models_fall_back_to_the_prefix_rule_and_say_so(shipped, model_id, requires_subscription, verdict):
    classification = shipped.classify(model_id)

    assert classification.source == "prefix-rule"
    assert classification.requires_marketplace_subscription is requires_subscription
    assert "is not in the model catalog" in classification.explanation
    assert verdict in classification.explanation
    assert "/versions/" not in classification.model_id


def test_the_closest_model_to_a_typo_is_suggested_first(shipped):
    suggestions = shipped.closest("azureml://registries/azureml-cohere/models/Cohere-comand-r-08-2024")

    assert suggestions[0] == COHERE
    assert all(suggestion.startswith("azureml://registries/azureml-cohere/") for suggestion in suggestions)


def test_closest_ignores_case_and_version_and_returns_versionless_ids(shipped):
    suggestions = shipped.closest("AZUREML://registries/AZUREML-META/models/llama-3.3-70b-instrct/versions/2")

    assert suggestions[0] == LLAMA_33
    assert all("/versions/" not in suggestion for suggestion in suggestions)


def _entry(model_id: str) -> CatalogEntry:
    model = parse_model_id(model_id)
    return CatalogEntry(
        model_id=model_id, name=model.name, registry=model.registry, requires_marketplace_subscription=True
    )


SAME_REGISTRY = "azureml://registries/contoso/models/Widget-7B-Instruct"
OTHER_REGISTRY = "azureml://registries/fabrikam/models/Widget-7B-Chat"
UNRELATED = "azureml://registries/contoso/models/Embedder-Large"


def test_closest_puts_the_same_registry_first_even_when_another_registry_matches_better():
    catalog = ModelCatalog([_entry(OTHER_REGISTRY), _entry(UNRELATED), _entry(SAME_REGISTRY)])

    assert catalog.closest("azureml://registries/contoso/models/Widget-7B-Chat") == [SAME_REGISTRY, OTHER_REGISTRY]


def test_closest_finds_the_model_under_a_mistyped_registry(shipped):
    assert shipped.closest("azureml://registries/azureml-cohre/models/Cohere-command-r-08-2024")[0] == COHERE


def test_closest_is_ranked_by_similarity_and_capped_at_the_limit():
    near = "azureml://registries/contoso/models/Widget-7B-Chat-v2"
    catalog = ModelCatalog([_entry(SAME_REGISTRY), _entry(near), _entry(OTHER_REGISTRY)])
    wanted = "azureml://registries/contoso/models/Widget-7B-Chat"

    assert catalog.closest(wanted) == [near, SAME_REGISTRY, OTHER_REGISTRY]
    assert catalog.closest(wanted, limit=1) == [near]
    assert catalog.closest(wanted, limit=0) == []


def test_nothing_close_means_no_suggestions(shipped):
    assert shipped.closest("azureml://registries/contoso/models/zzzz") == []
    assert shipped.closest("azureml://registries/azureml-cohere/models/Totally-Unrelated-Thing") == []


def test_classification_serialises_for_the_availability_endpoint(shipped):
    assert shipped.classify(COHERE).to_dict() == {
        "modelId": COHERE,
        "soldDirectly": False,
        "requiresMarketplaceSubscription": True,
        "source": "catalog",
        "explanation": f"The model catalog says {COHERE} needs a Marketplace subscription.",
    }


def test_region_support(shipped):
    assert shipped.supported_locations(DEEPSEEK) == (
        "eastus",
        "eastus2",
        "northcentralus",
        "southcentralus",
        "westus",
        "westus3",
    )
    assert shipped.supports_location(DEEPSEEK, "East US 2") is True
    assert shipped.supports_location(DEEPSEEK, "eastus2") is True
    assert shipped.supports_location(DEEPSEEK, "Sweden Central") is False
    assert shipped.supported_locations("azureml://registries/x/models/unknown") is None
    assert shipped.supports_location("azureml://registries/x/models/unknown", "eastus") is None


def test_an_invalid_model_id_raises_on_look_up(shipped):
    with pytest.raises(InvalidModelIdError):
        shipped.classify("Phi-4")


@pytest.mark.parametrize(
    ("name", "location"),
    [("East US 2", "eastus2"), ("EastUS2", "eastus2"), ("eastus2", "eastus2"), (" Sweden  Central ", "swedencentral")],
)
def test_normalize_location(name, location):
    assert normalize_location(name) == location


def test_every_shipped_entry_is_versionless_and_has_regions(shipped):
    assert len(shipped.entries) >= 20
    for entry in shipped.entries:
        assert entry.model_id == parse_model_id(entry.model_id).normalized
        assert entry.locations
        assert all(location == normalize_location(location) for location in entry.locations)


def test_an_override_patches_only_the_fields_it_names(tmp_path):
    path = write_overrides(
        tmp_path, [{"modelId": LLAMA_33.lower() + "/versions/9", "requiresMarketplaceSubscription": True}]
    )

    catalog = ModelCatalog.load(path)

    entry = catalog.get(LLAMA_33)
    assert entry.requires_marketplace_subscription is True
    assert entry.locations == ModelCatalog.load().get(LLAMA_33).locations
    assert entry.model_id == LLAMA_33
    assert catalog.classify(LLAMA_33).source == "catalog"


def test_an_override_adds_a_new_model(tmp_path):
    new_model = "azureml://registries/contoso/models/Contoso-LLM"
    path = write_overrides(
        tmp_path,
        [{"modelId": new_model, "requiresMarketplaceSubscription": False, "locations": ["East US 2", "swedencentral"]}],
    )

    catalog = ModelCatalog.load(path)

    entry = catalog.get(new_model)
    assert (entry.name, entry.registry, entry.locations) == ("Contoso-LLM", "contoso", ("eastus2", "swedencentral"))
    assert catalog.classify(new_model).source == "catalog"
    assert catalog.classify(new_model).sold_directly is True
    assert len(catalog.entries) == len(ModelCatalog.load().entries) + 1


def test_a_new_model_without_locations_has_unknown_regions(tmp_path):
    new_model = "azureml://registries/contoso/models/Other"
    catalog = ModelCatalog.load(
        write_overrides(tmp_path, [{"modelId": new_model, "requiresMarketplaceSubscription": True}])
    )

    assert catalog.supported_locations(new_model) is None


def test_no_override_path_means_the_shipped_catalog():
    assert ModelCatalog.load("").entries == ModelCatalog.load(None).entries


@pytest.mark.parametrize(
    ("models", "message"),
    [
        (
            [{"modelId": "azureml://registries/contoso/models/New"}],
            "models[0]: azureml://registries/contoso/models/New is not in the shipped catalog, so the entry must set "
            "requiresMarketplaceSubscription.",
        ),
        ([{"modelId": COHERE, "colour": "red"}], "models[0]: colour: Extra inputs are not permitted"),
        ([{"modelId": COHERE, "locations": "eastus"}], "models[0]: locations:"),
        ([{"requiresMarketplaceSubscription": True}], "models[0]: modelId: Field required"),
        (
            [{"modelId": "Phi-4", "requiresMarketplaceSubscription": True}],
            "models[0]: The model id 'Phi-4' does not start",
        ),
        ([{"modelId": COHERE}, {"modelId": COHERE, "requiresMarketplaceSubscription": None}], "models[1]: "),
        (["not an object"], "models[0]: "),
    ],
)
def test_bad_override_entries_name_the_entry_and_problem(tmp_path, models, message):
    path = write_overrides(tmp_path, models)

    with pytest.raises(CatalogFileError) as caught:
        ModelCatalog.load(path)

    assert str(caught.value).startswith(path)
    assert message in str(caught.value)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{not json", "is not valid JSON"),
        ("[]", "must be a JSON object with a 'models' array"),
        ('{"models": {}}', "must be a JSON object with a 'models' array"),
    ],
)
def test_unusable_override_files_are_refused(tmp_path, content, message):
    path = tmp_path / "overrides.json"
    path.write_text(content, encoding="utf-8")

    with pytest.raises(CatalogFileError, match=message):
        ModelCatalog.load(str(path))


def test_a_missing_override_file_is_refused(tmp_path):
    with pytest.raises(CatalogFileError, match=r"Cannot read model catalog file .*missing\.json"):
        ModelCatalog.load(str(tmp_path / "missing.json"))


def test_a_corrupt_shipped_entry_is_reported_with_its_position(tmp_path, monkeypatch):
    shipped_file = tmp_path / "model_catalog.json"
    shipped_file.write_text(
        json.dumps(
            {
                "models": [
                    {
                        "modelId": COHERE,
                        "name": "x",
                        "registry": "azureml-meta",
                        "requiresMarketplaceSubscription": True,
                    }
                ]
            }
        ),
        encoding="utf-8",
    )
    monkeypatch.setattr(catalog_module, "SHIPPED_CATALOG_PATH", shipped_file)

    with pytest.raises(CatalogFileError, match=r"models\[0\]: registry 'azureml-meta' does not match model id"):
        ModelCatalog.load()


def test_entries_normalise_their_model_id_and_locations():
    entry = CatalogEntry.model_validate(
        {
            "modelId": "azureml://registries/r/models/m/versions/2",
            "name": "M",
            "registry": "r",
            "requiresMarketplaceSubscription": True,
            "locations": ["East US", "eastus", "West US 3"],
        }
    )

    assert entry.model_id == "azureml://registries/r/models/m"
    assert entry.locations == ("eastus", "westus3")
    assert entry.key == "azureml://registries/r/models/m"


def test_entries_reject_a_bad_model_id():
    with pytest.raises(ValidationError, match="does not start with"):
        CatalogEntry(model_id="m", name="m", registry="r", requires_marketplace_subscription=True)


def test_a_later_entry_for_the_same_model_wins():
    first = CatalogEntry(model_id=COHERE, name="a", registry="azureml-cohere", requires_marketplace_subscription=True)
    second = first.model_copy(update={"name": "b"})

    assert ModelCatalog([first, second]).get(COHERE).name == "b"
