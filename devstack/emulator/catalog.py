"""The serverless model catalog: which models exist, where they can be deployed, and which need Azure Marketplace.

Seeded from data/serverless-region-availability.json (Microsoft Learn's region table) unless a scenario lists its own
models. Marketplace plan ids are not published anywhere; the emulator derives stable ones from the registry and model
name (publisher = registry without 'azureml-', offer = '<name>-offer', plan = '<name>-plan').
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

AVAILABILITY_FILE = Path(__file__).resolve().parent / "data" / "serverless-region-availability.json"
MODEL_ID = re.compile(
    r"^azureml://registries/(?P<registry>[^/]+)/models/(?P<name>[^/]+)(?:/versions/(?P<version>[^/]+))?/?$",
    re.IGNORECASE,
)
# Display names for error messages; the table supplies the US regions, these are the others a scenario may use.
_EXTRA_REGION_NAMES = {
    "westeurope": "West Europe",
    "northeurope": "North Europe",
    "uksouth": "UK South",
    "francecentral": "France Central",
    "germanywestcentral": "Germany West Central",
    "swedencentral": "Sweden Central",
    "centralus": "Central US",
    "westus2": "West US 2",
    "canadacentral": "Canada Central",
    "japaneast": "Japan East",
    "australiaeast": "Australia East",
}


@dataclass(frozen=True)
class ParsedModelId:
    registry: str
    name: str
    version: str | None


def parse_model_id(model_id: str) -> ParsedModelId | None:
    match = MODEL_ID.match(model_id.strip())
    if match is None:
        return None
    return ParsedModelId(match["registry"], match["name"], match["version"])


@dataclass(frozen=True)
class CatalogModel:
    model_id: str
    publisher_id: str
    offer_id: str
    plan_id: str
    requires_marketplace_subscription: bool
    locations: tuple[str, ...]

    def available_in(self, location: str) -> bool:
        return location.lower() in self.locations

    def marketplace_plan(self) -> dict[str, str]:
        return {"publisherId": self.publisher_id, "offerId": self.offer_id, "planId": self.plan_id}


def _derived_plan(model_id: str) -> tuple[str, str, str]:
    parsed = parse_model_id(model_id)
    if parsed is None:
        raise ValueError(f"'{model_id}' is not an azureml://registries/<registry>/models/<name> id")
    name = parsed.name.lower()
    publisher = parsed.registry.lower().removeprefix("azureml-") or parsed.registry.lower()
    return publisher, f"{name}-offer", f"{name}-plan"


def _from_scenario_entry(entry: dict[str, Any]) -> CatalogModel:
    publisher, offer, plan = _derived_plan(entry["modelId"])
    sold_directly = bool(entry.get("soldDirectly", False))
    return CatalogModel(
        model_id=entry["modelId"],
        publisher_id=entry.get("publisher", publisher),
        offer_id=entry.get("offer", offer),
        plan_id=entry.get("plan", plan),
        requires_marketplace_subscription=bool(entry.get("requiresMarketplaceSubscription", not sold_directly)),
        locations=tuple(location.lower() for location in entry.get("locations", ())),
    )


@functools.lru_cache(maxsize=1)
def _availability_table() -> dict[str, Any]:
    return json.loads(AVAILABILITY_FILE.read_text(encoding="utf-8"))


def reference_models() -> list[dict[str, Any]]:
    """Scenario-style model entries built from the region table; rows without a registry id cannot be addressed.

    Where the docs conflict (a model listed as sold directly by Azure that the table also gives a Marketplace offer
    region), sold-directly wins: the seed document deploys such models without a subscription.
    """
    merged: dict[str, dict[str, Any]] = {}
    for row in _availability_table()["models"]:
        if not row.get("modelId"):
            continue
        key = row["modelId"].lower()
        entry = merged.setdefault(
            key,
            {
                "modelId": row["modelId"],
                "soldDirectly": row.get("soldDirectlyByAzure") is True,
                "requiresMarketplaceSubscription": bool(row.get("requiresMarketplaceSubscription"))
                and row.get("soldDirectlyByAzure") is not True,
                "locations": [],
            },
        )
        # The table lists some models twice (e.g. Llama 3.3 70B Instruct); a model is deployable wherever a row says.
        entry["locations"] += [loc for loc in row.get("deploymentLocations", ()) if loc not in entry["locations"]]
    return list(merged.values())


def region_display_name(location: str) -> str:
    names = {loc: name for name, loc in _availability_table()["regionNameToLocation"].items() if " " in name}
    return {**_EXTRA_REGION_NAMES, **names}.get(location.lower(), location)


class ModelCatalog:
    def __init__(self, entries: Iterable[dict[str, Any]]) -> None:
        self._models = {model.model_id.lower(): model for model in map(_from_scenario_entry, entries)}

    @classmethod
    def for_scenario(cls, models: list[dict[str, Any]] | None) -> ModelCatalog:
        return cls(reference_models() if models is None else models)

    def get(self, model_id: str) -> CatalogModel | None:
        return self._models.get(model_id.strip().rstrip("/").lower())

    def __iter__(self):
        return iter(self._models.values())

    def __len__(self) -> int:
        return len(self._models)
