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


def test_the_clock_is_utc():
    assert composition.utc_now().tzinfo is UTC
