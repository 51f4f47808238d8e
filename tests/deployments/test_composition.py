"""The composition root wires settings into the service; storage is opened through stand-ins (no network here)."""

import json
from datetime import UTC

import pytest

from shared.config import Settings
from shared.deployments import composition

NEW_MODEL = "azureml://registries/azureml-contoso/models/Contoso-7B"


class Opened:
    """Stands in for DocumentTable/JsonQueue: records what the composition root opens, touches no storage."""

    def __init__(self) -> None:
        self.names: list[str] = []

    def open(self, settings, name):
        assert settings.connection_string == "UseDevelopmentStorage=true"
        self.names.append(name)
        return self


@pytest.fixture
def opened(monkeypatch):
    tables, queues = Opened(), Opened()
    monkeypatch.setattr(composition, "DocumentTable", tables)
    monkeypatch.setattr(composition, "JsonQueue", queues)
    return tables, queues


def settings(**env):
    base = {"AzureWebJobsStorage": "UseDevelopmentStorage=true", "AZURE_KEYVAULT_URL": "https://kv.vault.azure.net"}
    return Settings.from_env({**base, **env})


def test_the_service_is_built_on_the_configured_storage_and_catalog(opened, tmp_path):
    overrides = tmp_path / "catalog.json"
    overrides.write_text(json.dumps({"models": [{"modelId": NEW_MODEL, "requiresMarketplaceSubscription": False}]}))

    service = composition.build_deployment_service(
        settings(
            DEPLOYMENT_RUNS_TABLE="runs",
            DEPLOYMENT_WORK_QUEUE="work",
            DEPLOYMENT_EVENTS_QUEUE="events",
            DEPLOYMENT_REQUESTS_QUEUE="requests",
            BROKER_MODEL_CATALOG_OVERRIDES=str(overrides),
        )
    )

    tables, queues = opened
    assert tables.names == ["runs"]
    assert queues.names == ["work", "events", "requests-poison"]
    assert service.catalog.classify(NEW_MODEL).source == "catalog"
    assert service.catalog.get("azureml://registries/azureml-deepseek/models/DeepSeek-R1") is not None


def test_without_a_key_vault_the_service_refuses_to_start(opened):
    with pytest.raises(ValueError, match="AZURE_KEYVAULT_URL"):
        composition.build_deployment_service(settings(AZURE_KEYVAULT_URL=""))


def test_an_unknown_permission_strictness_refuses_to_start(opened):
    with pytest.raises(ValueError, match="Unknown permission strictness 'lenient'"):
        composition.build_deployment_service(settings(BROKER_PERMISSION_STRICTNESS="lenient"))


@pytest.mark.parametrize(("value", "allowed"), [(None, False), ("", False), ("false", False), ("TRUE", True)])
def test_uncatalogued_models_are_refused_unless_the_setting_allows_them(opened, monkeypatch, value, allowed):
    built, real = [], composition.PreflightPolicy
    monkeypatch.setattr(composition, "PreflightPolicy", lambda **fields: built.append(real(**fields)) or built[-1])
    env = {} if value is None else {"BROKER_ALLOW_UNCATALOGUED_MODELS": value}

    assert settings(**env).allow_uncatalogued_models is allowed
    composition.build_deployment_service(settings(**env))
    assert built[0].allow_uncatalogued_models is allowed


def test_an_unreadable_uncatalogued_models_flag_refuses_to_start():
    with pytest.raises(ValueError, match="BROKER_ALLOW_UNCATALOGUED_MODELS='maybe' is not a boolean"):
        settings(BROKER_ALLOW_UNCATALOGUED_MODELS="maybe")


def test_the_clock_is_utc():
    assert composition.utc_now().tzinfo is UTC
