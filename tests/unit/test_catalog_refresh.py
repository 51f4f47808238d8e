import json
import runpy
import sys
from pathlib import Path

import pytest

from shared.catalog import SHIPPED_CATALOG_PATH, CatalogEntry, ModelCatalog
from shared.catalog_refresh import build_catalog, main

REFERENCE = Path(__file__).resolve().parents[3] / "shared" / "reference" / "serverless-region-availability.json"


def row(model_id, **fields):
    base = {
        "family": "Fam",
        "model": "Display name",
        "modelId": model_id,
        "deploymentLocations": ["eastus"],
        "soldDirectlyByAzure": False,
        "requiresMarketplaceSubscription": True,
        "notes": [],
    }
    return {**base, **fields}


def reference(*rows):
    return {
        "sources": {"article": {"commit": "abc"}, "table": {"commit": "def"}},
        "models": list(rows),
    }


def test_rows_without_a_model_id_are_left_out():
    catalog = build_catalog(reference(row(None), row("azureml://registries/r/models/kept")))

    assert [entry["modelId"] for entry in catalog["models"]] == ["azureml://registries/r/models/kept"]


def test_an_entry_carries_the_catalog_fields():
    catalog = build_catalog(
        reference(row("azureml://registries/r/models/m/versions/3", deploymentLocations=["EastUS2", "East US"]))
    )

    assert catalog["generatedFrom"] == {"article": "abc", "table": "def"}
    assert catalog["models"] == [
        {
            "modelId": "azureml://registries/r/models/m",
            "name": "Display name",
            "registry": "r",
            "family": "Fam",
            "soldDirectlyByAzure": False,
            "requiresMarketplaceSubscription": True,
            "locations": ["eastus2", "eastus"],
            "docsConflict": False,
            "notes": [],
        }
    ]


@pytest.mark.parametrize(
    ("sold_directly", "derived_requirement", "requires"),
    [(True, True, False), (True, False, False), (False, True, True), (False, False, False), (None, True, True)],
)
def test_the_sold_directly_article_outranks_the_derived_offer_flag(sold_directly, derived_requirement, requires):
    catalog = build_catalog(
        reference(
            row(
                "azureml://registries/r/models/m",
                soldDirectlyByAzure=sold_directly,
                requiresMarketplaceSubscription=derived_requirement,
            )
        )
    )

    assert catalog["models"][0]["requiresMarketplaceSubscription"] is requires


def test_duplicate_rows_merge_regions_notes_and_conflicts():
    catalog = build_catalog(
        reference(
            row("azureml://registries/r/models/M", deploymentLocations=["eastus", "westus"], notes=["a"]),
            row(
                "azureml://registries/r/models/m",
                deploymentLocations=["westus", "westus3"],
                notes=["a", "The docs conflict: listed twice."],
            ),
        )
    )

    (entry,) = catalog["models"]
    assert entry["modelId"] == "azureml://registries/r/models/M"
    assert entry["locations"] == ["eastus", "westus", "westus3"]
    assert entry["notes"] == ["a", "The docs conflict: listed twice."]
    assert entry["docsConflict"] is True


def test_entries_are_sorted_by_model_id_ignoring_case():
    catalog = build_catalog(reference(row("azureml://registries/r/models/b"), row("azureml://registries/r/models/A")))

    assert [entry["modelId"] for entry in catalog["models"]] == [
        "azureml://registries/r/models/A",
        "azureml://registries/r/models/b",
    ]


def test_main_writes_a_catalog_the_broker_can_load(tmp_path, capsys):
    source = tmp_path / "reference.json"
    source.write_text(json.dumps(reference(row("azureml://registries/r/models/m"))), encoding="utf-8")
    out = tmp_path / "catalog.json"

    assert main([str(source), "--out", str(out)]) == 0

    written = json.loads(out.read_text(encoding="utf-8"))
    assert [CatalogEntry.model_validate(entry).model_id for entry in written["models"]] == [
        "azureml://registries/r/models/m"
    ]
    assert f"wrote 1 models to {out}" in capsys.readouterr().out


@pytest.mark.filterwarnings("ignore:'shared.catalog_refresh' found in sys.modules:RuntimeWarning")
def test_the_module_runs_as_a_command(tmp_path, monkeypatch):
    source = tmp_path / "reference.json"
    source.write_text(json.dumps(reference(row("azureml://registries/r/models/m"))), encoding="utf-8")
    out = tmp_path / "catalog.json"
    monkeypatch.setattr(sys, "argv", ["catalog_refresh", str(source), "--out", str(out)])

    with pytest.raises(SystemExit) as exited:
        runpy.run_module("shared.catalog_refresh", run_name="__main__")

    assert exited.value.code == 0
    assert out.exists()


@pytest.mark.skipif(not REFERENCE.exists(), reason="the shared reference folder is not beside the repo")
def test_the_shipped_catalog_is_the_refresh_of_the_reference_table():
    expected = build_catalog(json.loads(REFERENCE.read_text(encoding="utf-8")))

    assert json.loads(SHIPPED_CATALOG_PATH.read_text(encoding="utf-8")) == expected
    assert len(ModelCatalog.load().entries) == len(expected["models"])
