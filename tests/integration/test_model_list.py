"""GET /api/models end to end: the local host through Easy Auth, the emulator's workspaces, the shipped catalog.

The list must match the catalog (count and entries), the project's region (demo-project in eastus2,
demo-project-westeurope), the policies the host is configured with (a host of this module's own sets
BROKER_APPROVED_PUBLISHERS, turns approvals on and names a cross-region hub) and what preflight then does.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import pytest
import requests
from deployment_broker_client import BrokerClient

from shared.catalog import ModelCatalog
from shared.model_ids import parse_model_id
from shared.policy import publisher_of
from tests.integration.conftest import Broker, client_credential, start_broker_host

pytestmark = pytest.mark.integration

CATALOG = ModelCatalog.load()  # the host runs with no override file (local.settings.sample.json)
CATALOG_ORDER = sorted((entry.model_id for entry in CATALOG.entries), key=str.lower)
APPROVED_PUBLISHERS = "cohere,Meta Llama models"  # a registry's publisher, and a catalog family
OTHER_SUBSCRIPTION = "11111111-2222-3333-4444-555555555555"


@pytest.fixture(scope="module")
def governed(broker: Broker, tmp_path_factory) -> Iterator[Broker]:
    """A second host on the same emulator and storage: approved publishers, approvals on, and demo-project (eastus2)
    as the cross-region hub."""
    host = start_broker_host(
        broker.emulator,
        broker.storage,
        tmp_path_factory.mktemp("governed") / "host.log",
        BROKER_APPROVED_PUBLISHERS=APPROVED_PUBLISHERS,
        BROKER_APPROVALS_ENABLED="true",
        BROKER_CROSS_REGION_HUBS=f"eastus2={broker.workspace_id()}",
    )
    try:
        yield Broker(host, broker.emulator, broker.storage)
    finally:
        host.stop()


def _everything(broker: Broker, **params: str) -> tuple[list[dict[str, Any]], int]:
    """Every listing, following nextLink as a client would; and how many pages that took."""
    response = broker.call("GET", "/api/models", params=params)
    items, pages = [], 0
    while True:
        assert response.status_code == 200, response.text
        page = response.json()
        items.extend(page["value"])
        pages += 1
        if page["nextLink"] is None:
            return items, pages
        assert page["nextLink"].startswith(broker.host.url + "/api/models?")
        response = broker.call("GET", page["nextLink"].removeprefix(broker.host.url))


def _by_id(items: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {item["modelId"]: item for item in items}


def test_the_list_is_the_shipped_catalog_in_model_id_order_page_after_page(broker):
    items, pages = _everything(broker, workspaceId=broker.workspace_id(), pageSize="10")

    assert [item["modelId"] for item in items] == CATALOG_ORDER
    assert pages == -(-len(CATALOG_ORDER) // 10)
    for item in items:
        entry = CATALOG.get(item["modelId"])
        assert entry is not None
        assert item["name"] == entry.name
        assert item["family"] == entry.family
        assert item["publisher"] == publisher_of(parse_model_id(entry.model_id))
        assert item["soldDirectly"] is not entry.requires_marketplace_subscription
        assert item["region"]["supportedRegions"] == (list(entry.locations) if entry.locations is not None else None)
        # The sample settings approve every model, allow the demo subscription and leave approvals off.
        assert item["policy"] == {"allowed": True, "rule": None, "reason": None}
        assert item["workspace"] == {"allowed": True, "rule": None, "reason": None}
        assert item["approval"] == {"required": False, "rule": None, "reason": None}


def test_the_region_is_the_projects_own(broker):
    eastus2 = _by_id(_everything(broker, workspaceId=broker.workspace_id())[0])
    westeurope = _by_id(_everything(broker, workspaceId=broker.workspace_id("demo-project-westeurope"))[0])

    for entry in CATALOG.entries:
        model_id = entry.model_id
        assert eastus2[model_id]["region"]["location"] == "eastus2"
        assert eastus2[model_id]["region"]["offered"] is CATALOG.supports_location(model_id, "eastus2")
        assert westeurope[model_id]["region"] == {
            "location": "westeurope",
            "offered": CATALOG.supports_location(model_id, "westeurope"),
            "supportedRegions": list(entry.locations) if entry.locations is not None else None,
            "crossRegionHub": None,  # none configured
        }
    assert any(item["region"]["offered"] is True for item in eastus2.values())
    assert any(item["region"]["offered"] is False for item in westeurope.values())


def test_publisher_and_name_filter_and_a_token_stays_with_its_filters(broker):
    workspace = broker.workspace_id()
    cohere, _ = _everything(broker, workspaceId=workspace, publisher="Cohere")
    phi, _ = _everything(broker, workspaceId=workspace, name="PHI-4")

    assert [item["modelId"] for item in cohere] == [
        model_id for model_id in CATALOG_ORDER if parse_model_id(model_id).registry == "azureml-cohere"
    ]
    assert phi
    assert all("phi-4" in parse_model_id(item["modelId"]).name.lower() for item in phi)

    first = broker.call("GET", "/api/models", params={"workspaceId": workspace, "pageSize": "1"}).json()
    token = dict(parse_qsl(urlsplit(first["nextLink"]).query))["continuationToken"]
    refused = broker.call(
        "GET", "/api/models", params={"workspaceId": workspace, "publisher": "meta", "continuationToken": token}
    )
    assert refused.status_code == 400
    assert refused.json()["errors"][0]["field"] == "continuationToken"


def test_callers_sign_in_projects_must_exist_and_one_outside_the_allowed_targets_is_not_deployable(broker):
    workspace = broker.workspace_id()
    anonymous = requests.get(
        f"{broker.host.url}/api/models",
        params={"workspaceId": workspace},
        headers={"x-functions-key": broker.host.function_key},
        timeout=30,
    )
    assert anonymous.status_code == 401
    assert anonymous.headers["WWW-Authenticate"].startswith("Bearer")

    missing = broker.call("GET", "/api/models", params={"workspaceId": workspace.replace("demo-project", "nowhere")})
    assert missing.status_code == 404
    assert missing.json()["type"].endswith("/not-found")

    outside = workspace.replace("00000000-0000-0000-0000-000000000000", OTHER_SUBSCRIPTION)
    items, _ = _everything(broker, workspaceId=outside)
    assert [item["modelId"] for item in items] == CATALOG_ORDER
    assert all(item["workspace"]["allowed"] is False for item in items)
    assert {item["workspace"]["rule"] for item in items} == {"subscription"}
    assert all(item["region"]["location"] is None for item in items)


def test_the_python_client_lists_the_same_models(broker):
    client = BrokerClient(
        broker.host.url,
        client_credential(broker.emulator, broker.requester),
        scope=broker.emulator.env["BROKER_API_SCOPE"],
        function_key=broker.host.function_key,
    )
    with client:
        listed = list(client.list_models(broker.workspace_id(), results_per_page=4))
        meta = list(client.list_models(broker.workspace_id(), publisher="meta"))

    assert [model.model_id for model in listed] == CATALOG_ORDER
    assert {model.publisher for model in meta} == {"meta"}


def test_the_policy_the_host_is_configured_with_is_what_the_list_and_preflight_say(governed):
    workspace = governed.workspace_id()
    listed = _by_id(_everything(governed, workspaceId=workspace)[0])

    allowed = {model_id for model_id, item in listed.items() if item["policy"]["allowed"]}
    expected = {
        entry.model_id
        for entry in CATALOG.entries
        if entry.registry in ("azureml-cohere", "azureml-meta") or entry.family == "Meta Llama models"
    }
    assert allowed == expected
    refused_id = next(model_id for model_id in CATALOG_ORDER if model_id not in allowed)
    refused = listed[refused_id]["policy"]
    assert refused["rule"] == "publisher"
    what_if = governed.call(
        "POST",
        "/api/deployments/what-if",
        json={"workspaceId": workspace, "modelId": refused_id},
        caller=governed.requester,
    ).json()
    check = next(check for check in what_if["checks"] if check["name"] == "model-approved")
    assert check["outcome"] == "failed"
    assert check["problem"]["detail"] == refused["reason"]


def test_with_approvals_on_marketplace_models_say_an_approver_must_agree(governed):
    listed = _everything(governed, workspaceId=governed.workspace_id())[0]

    for item in listed:
        if item["requiresMarketplaceSubscription"]:
            assert item["approval"]["required"] is True
            assert item["approval"]["rule"] == "marketplace"
        else:
            assert item["approval"] == {"required": False, "rule": None, "reason": None}
    assert any(item["approval"]["required"] for item in listed)


def test_a_hub_in_a_region_that_offers_the_model_is_named_for_a_project_whose_region_does_not(governed):
    hub = governed.workspace_id()
    listed = _everything(governed, workspaceId=governed.workspace_id("demo-project-westeurope"))[0]

    for item in listed:
        model_id = item["modelId"]
        if CATALOG.supports_location(model_id, "westeurope") is False:
            offered_in_hub = CATALOG.supports_location(model_id, "eastus2")
            assert item["region"]["crossRegionHub"] == (
                {"workspaceId": hub, "location": "eastus2"} if offered_in_hub else None
            )
    assert any(item["region"]["crossRegionHub"] for item in listed)
