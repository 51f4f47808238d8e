"""`BrokerClient.list_models` and `broker models` over a fake transport, reading pages the broker's own model list
(shared/deployments/model_list.py) wrote: a westeurope project, a hub in swedencentral, approvals on."""

from __future__ import annotations

import io
import json
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

import pytest
from deployment_broker_client import ModelListing
from deployment_broker_client.cli import EXIT_OK, EXIT_USAGE, Settings, main

from shared.approvals import ApprovalPolicy
from shared.azure_ids import WorkspaceId
from shared.cross_region import CrossRegionHubs
from shared.deployments.model_list import ModelFilters, ModelLister
from shared.policy import ApprovedModelPolicy
from tests.clients.fakes import API, ENDPOINT, SCOPE, FakeBroker, client_over
from tests.deployments.scenario import (
    DIRECT_MODEL,
    MARKETPLACE_MODEL,
    RESOURCE_GROUP_SCOPE,
    UNKNOWN_REGIONS_MODEL,
    WORKSPACE_ID,
    build_world,
    policy,
)

HUB_ID = f"{RESOURCE_GROUP_SCOPE}/providers/Microsoft.MachineLearningServices/workspaces/hub-swc"
ENVIRONMENT = {"BROKER_URL": ENDPOINT, "BROKER_API_SCOPE": SCOPE, "BROKER_FUNCTION_KEY": "key"}


def _pages(page_size: int = 2) -> list[dict[str, Any]]:
    """The broker's pages of the scenario catalog for a westeurope project, each nextLink as the API builds it."""
    world = build_world(location="westeurope")
    the_policy = replace(
        policy(registries=""),
        hubs=CrossRegionHubs.from_setting(f"swedencentral={HUB_ID}"),
        approved_models=ApprovedModelPolicy.from_settings(publishers="deepseek"),
    )
    lister = ModelLister(policy=the_policy, approvals=ApprovalPolicy(enabled=True), machine_learning=world.ml)
    pages, token = [], None
    while True:
        page = lister.page(ModelFilters(WorkspaceId.parse(WORKSPACE_ID)), page_size=page_size, continuation_token=token)
        token = page.continuation_token
        next_link = f"{API}/models?workspaceId=w&continuationToken={token}" if token else None
        pages.append({"value": [item.to_wire() for item in page.items], "nextLink": next_link})
        if token is None:
            return pages


def _answering(pages: list[dict[str, Any]]) -> FakeBroker:
    broker = FakeBroker()
    for page in pages:
        broker.answer("GET", "/models", 200, page)
    return broker


def _broker(broker: FakeBroker, *argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()

    def factory(settings: Settings, _: Mapping[str, str]) -> Any:
        return client_over(broker)

    code = main(list(argv), environ=ENVIRONMENT, client_factory=factory, out=out, err=err)
    return code, out.getvalue(), err.getvalue()


def test_list_models_sends_the_filters_and_reads_every_page():
    pages = _pages()
    broker = _answering(pages)

    models = list(client_over(broker).list_models(WORKSPACE_ID, publisher="deepseek", name="r1", results_per_page=2))

    assert [model.as_dict() for model in models] == [item for page in pages for item in page["value"]]
    first, second = broker.calls("GET", "/models")
    assert first.query == {
        "workspaceId": [WORKSPACE_ID],
        "publisher": ["deepseek"],
        "name": ["r1"],
        "pageSize": ["2"],
    }
    assert second.query["continuationToken"] == [pages[0]["nextLink"].rsplit("=", 1)[-1]]


def test_a_listing_reads_the_region_the_hub_the_policy_and_the_approval():
    listed = {model.model_id: model for model in client_over(_answering(_pages())).list_models(WORKSPACE_ID)}

    direct = listed[DIRECT_MODEL]
    assert isinstance(direct, ModelListing)
    assert (direct.publisher, direct.sold_directly, direct.requires_marketplace_subscription) == (
        "deepseek",
        True,
        False,
    )
    assert (direct.region.location, direct.region.offered) == ("westeurope", False)
    assert direct.region.supported_regions == ("eastus2", "swedencentral")
    assert direct.region.cross_region_hub is not None
    assert (direct.region.cross_region_hub.workspace_id, direct.region.cross_region_hub.location) == (
        HUB_ID,
        "swedencentral",
    )
    assert direct.policy.allowed
    assert direct.workspace.allowed
    assert not direct.approval.required
    cohere = listed[MARKETPLACE_MODEL]
    assert (cohere.policy.allowed, cohere.policy.rule) == (False, "publisher")
    assert (cohere.approval.required, cohere.approval.rule) == (True, "marketplace")
    assert cohere.region.cross_region_hub is None
    assert listed[UNKNOWN_REGIONS_MODEL].region.offered is None


def test_a_listing_survives_members_it_does_not_know():
    document = {**_pages()[0]["value"][0], "newMember": {"a": 1}}

    assert ModelListing.from_dict(document).as_dict() == document


def test_broker_models_prints_a_table_of_the_catalog_for_the_workspace():
    code, out, err = _broker(_answering(_pages()), "models", "--workspace", WORKSPACE_ID)

    assert code == EXIT_OK
    assert err == ""
    header, *rows = out.splitlines()
    assert header.split() == ["MODEL", "PUBLISHER", "SOLD", "REGION", "POLICY", "APPROVAL"]
    by_model = {row.split()[0]: " ".join(row.split()) for row in rows}
    assert by_model["DeepSeek-R1"] == ("DeepSeek-R1 deepseek directly westeurope: not offered (hub hub-swc) allowed no")
    assert by_model["Cohere-command-r-08-2024"] == (
        "Cohere-command-r-08-2024 cohere marketplace westeurope: not offered not approved (publisher) "
        "required (marketplace)"
    )
    assert "westeurope: unknown" in by_model["DeepSeek-V3-0324"]


def test_broker_models_json_prints_the_listings_as_the_broker_sent_them_up_to_top():
    pages = _pages(page_size=1)

    code, out, _ = _broker(_answering(pages), "models", "--workspace", WORKSPACE_ID, "--top", "2", "-o", "json")

    assert code == EXIT_OK
    assert json.loads(out) == [pages[0]["value"][0], pages[1]["value"][0]]


def test_broker_models_with_a_model_still_answers_its_availability():
    broker = FakeBroker().answer(
        "GET",
        "/models/availability",
        200,
        {"modelId": DIRECT_MODEL, "soldDirectly": True, "requiresMarketplaceSubscription": False},
    )

    code, out, _ = _broker(broker, "models", "--model", DIRECT_MODEL)

    assert code == EXIT_OK
    assert "sold: directly by Azure" in " ".join(out.split())
    assert broker.calls("GET", "/models") == []


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (("models",), "pass --workspace"),
        (("models", "--model", DIRECT_MODEL, "--publisher", "meta"), "leave out --model"),
    ],
)
def test_broker_models_needs_a_workspace_to_list_and_no_filters_with_a_model(argv, message):
    broker = FakeBroker()

    code, _, err = _broker(broker, *argv)

    assert code == EXIT_USAGE
    assert message in err
    assert broker.sent == []
