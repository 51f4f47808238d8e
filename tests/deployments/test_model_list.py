"""The model list: the catalog as one project sees it, through the deployment service, with the in-memory ports.

Each listing must agree with what the catalog says, with the project's region, with the approved-model policy and
the allowed targets preflight applies, and with the approval policy; pages are stable and tokens bound to filters.
"""

from dataclasses import replace

import pytest

from shared.approvals import ApprovalPolicy
from shared.azure_errors import AzureCallError
from shared.catalog import ModelCatalog
from shared.cross_region import CrossRegionHubs
from shared.deployments.model_list import InvalidContinuationTokenError

from .approving import approving_world
from .scenario import (
    CATALOG,
    DIRECT_MODEL,
    DIRECT_REGIONS,
    MARKETPLACE_MODEL,
    MARKETPLACE_REGIONS,
    OTHER_SUBSCRIPTION,
    RESOURCE_GROUP_SCOPE,
    SUBSCRIPTION,
    UNKNOWN_REGIONS_MODEL,
    WORKSPACE_ID,
    build_world,
    policy,
    request,
)

HUB_ID = f"{RESOURCE_GROUP_SCOPE}/providers/Microsoft.MachineLearningServices/workspaces/hub-swc"
OUTSIDE_ID = WORKSPACE_ID.replace(SUBSCRIPTION, OTHER_SUBSCRIPTION)
MISSING_ID = WORKSPACE_ID.replace("proj-a", "proj-missing")
CATALOG_ORDER = sorted((entry.model_id for entry in CATALOG.entries), key=str.lower)


def listings(world, workspace_id=WORKSPACE_ID, **options):
    """Every listing, page after page, as the API sends them (wire dicts)."""
    items, token = [], None
    while True:
        page = world.service.list_models(workspace_id, continuation_token=token, **options)
        items.extend(item.to_wire() for item in page.items)
        token = page.continuation_token
        if token is None:
            return items


def by_id(items):
    return {item["modelId"]: item for item in items}


def test_every_catalogued_model_is_listed_once_in_model_id_order_as_the_catalog_describes_it(world):
    items = listings(world)

    assert [item["modelId"] for item in items] == CATALOG_ORDER
    for item in items:
        entry = CATALOG.get(item["modelId"])
        assert entry is not None
        assert (item["name"], item["registry"], item["family"]) == (entry.name, entry.registry, entry.family)
        assert item["requiresMarketplaceSubscription"] is entry.requires_marketplace_subscription
        assert item["soldDirectly"] is not entry.requires_marketplace_subscription
        assert item["region"]["supportedRegions"] == (list(entry.locations) if entry.locations else None)
    listed = by_id(items)
    assert listed[MARKETPLACE_MODEL]["publisher"] == "cohere"
    assert listed[DIRECT_MODEL]["publisher"] == "deepseek"
    assert world.ml.call_names == ["get_workspace"]  # the region, read once


def test_models_added_by_overrides_are_listed_too():
    added = "azureml://registries/azureml-contoso/models/Contoso-Large"
    catalog = CATALOG.with_overrides(
        [
            {"modelId": added, "requiresMarketplaceSubscription": True, "locations": ["East US 2"]},
            {"modelId": DIRECT_MODEL, "locations": ["westeurope"]},
        ]
    )
    world = build_world(preflight_policy=replace(policy(registries=""), catalog=catalog))

    listed = by_id(listings(world))

    assert len(listed) == len(CATALOG.entries) + 1
    assert listed[added]["soldDirectly"] is False
    assert listed[added]["region"] == {
        "location": "eastus2",
        "offered": True,
        "supportedRegions": ["eastus2"],
        "crossRegionHub": None,
    }
    assert listed[DIRECT_MODEL]["region"]["offered"] is False


def test_an_eastus2_project_is_offered_what_eastus2_offers(world):
    listed = by_id(listings(world))

    assert {model_id: item["region"]["offered"] for model_id, item in listed.items()} == {
        MARKETPLACE_MODEL: True,
        DIRECT_MODEL: True,
        UNKNOWN_REGIONS_MODEL: None,  # the catalog does not know: Azure decides
    }
    assert all(item["region"]["location"] == "eastus2" for item in listed.values())


def test_a_westeurope_project_is_told_where_each_model_is_offered_instead():
    world = build_world(location="West Europe")

    listed = by_id(listings(world))

    assert listed[MARKETPLACE_MODEL]["region"] == {
        "location": "West Europe",
        "offered": False,
        "supportedRegions": list(MARKETPLACE_REGIONS),
        "crossRegionHub": None,
    }
    assert listed[DIRECT_MODEL]["region"]["offered"] is False
    assert listed[DIRECT_MODEL]["region"]["supportedRegions"] == list(DIRECT_REGIONS)
    assert listed[UNKNOWN_REGIONS_MODEL]["region"]["offered"] is None


def test_a_configured_hub_is_named_for_the_models_only_its_region_offers():
    hubs = CrossRegionHubs.from_setting(f"swedencentral={HUB_ID}")
    world = build_world(location="westeurope", preflight_policy=replace(policy(), hubs=hubs))

    listed = by_id(listings(world))

    assert listed[DIRECT_MODEL]["region"]["crossRegionHub"] == {"workspaceId": HUB_ID, "location": "swedencentral"}
    assert listed[MARKETPLACE_MODEL]["region"]["crossRegionHub"] is None  # swedencentral does not offer it
    assert listed[UNKNOWN_REGIONS_MODEL]["region"]["crossRegionHub"] is None


def test_no_hub_is_named_when_the_project_region_offers_the_model():
    hubs = CrossRegionHubs.from_setting(f"swedencentral={HUB_ID}")
    world = build_world(preflight_policy=replace(policy(), hubs=hubs))

    assert by_id(listings(world))[DIRECT_MODEL]["region"]["crossRegionHub"] is None


NOT_COHERE = (DIRECT_MODEL, UNKNOWN_REGIONS_MODEL)


@pytest.mark.parametrize(
    ("settings", "refused"),
    [
        ({"registries": "azureml-cohere"}, dict.fromkeys(NOT_COHERE, "registry")),
        ({"registries": "", "publishers": "deepseek"}, {MARKETPLACE_MODEL: "publisher"}),
        # A catalog family counts as a publisher, as preflight reads it.
        ({"registries": "", "publishers": "Command"}, dict.fromkeys(NOT_COHERE, "publisher")),
        (
            {"registries": "", "model_ids": DIRECT_MODEL},
            dict.fromkeys((MARKETPLACE_MODEL, UNKNOWN_REGIONS_MODEL), "modelId"),
        ),
    ],
)
def test_the_approved_model_policy_says_what_preflight_would(settings, refused):
    world = build_world(preflight_policy=policy(**settings))

    listed = by_id(listings(world))

    for model_id, item in listed.items():
        verdict = item["policy"]
        assert verdict["allowed"] is (model_id not in refused)
        assert verdict["rule"] == refused.get(model_id)
        preflight = world.preflight(request(model_id))
        if model_id in refused:
            assert preflight.problem is not None
            assert preflight.problem.kind.slug == "model-not-approved"
            assert verdict["reason"] == preflight.problem.detail
        else:
            assert verdict["reason"] is None


def test_a_project_outside_the_allowed_targets_is_listed_unread_with_every_model_saying_so(world):
    items = listings(world, OUTSIDE_ID)

    assert [item["modelId"] for item in items] == CATALOG_ORDER
    for item in items:
        assert item["workspace"]["allowed"] is False
        assert item["workspace"]["rule"] == "subscription"
        assert OTHER_SUBSCRIPTION in item["workspace"]["reason"]
        assert item["region"]["location"] is None
        assert item["region"]["offered"] is None
    assert world.ml.call_names == []  # the broker reads nothing of a workspace it does not deploy into


def test_an_allowed_project_says_so_for_every_model(world):
    assert all(item["workspace"] == {"allowed": True, "rule": None, "reason": None} for item in listings(world))


def test_a_project_that_does_not_exist_is_azures_not_found(world):
    with pytest.raises(AzureCallError) as raised:
        world.service.list_models(MISSING_ID, name="no model has this name")

    assert raised.value.not_found


def test_no_approval_is_needed_while_approvals_are_off(world):
    assert all(item["approval"] == {"required": False, "rule": None, "reason": None} for item in listings(world))


def test_with_approvals_on_marketplace_models_say_an_approver_must_agree():
    listed = by_id(listings(approving_world()))

    marketplace = listed[MARKETPLACE_MODEL]["approval"]
    assert marketplace["required"] is True
    assert marketplace["rule"] == "marketplace"
    assert "Marketplace" in marketplace["reason"]
    assert listed[DIRECT_MODEL]["approval"]["required"] is False


def test_approval_rules_for_the_project_apply_to_every_model():
    world = approving_world(ApprovalPolicy.from_settings(enabled=True, marketplace=False, workspace_ids=WORKSPACE_ID))

    approvals = [item["approval"] for item in listings(world)]

    assert {approval["rule"] for approval in approvals} == {"workspace"}
    assert all(approval["required"] for approval in approvals)


@pytest.mark.parametrize(
    ("filters", "expected"),
    [
        ({"publisher": "DeepSeek"}, [DIRECT_MODEL, UNKNOWN_REGIONS_MODEL]),
        ({"publisher": "command"}, [MARKETPLACE_MODEL]),  # the catalog family
        ({"publisher": "deep"}, []),  # exact, not a prefix
        ({"name": "R1"}, [DIRECT_MODEL]),
        ({"name": "deepseek-"}, [DIRECT_MODEL, UNKNOWN_REGIONS_MODEL]),
        ({"publisher": "deepseek", "name": "v3"}, [UNKNOWN_REGIONS_MODEL]),
        ({"publisher": "cohere", "name": "v3"}, []),
    ],
)
def test_publisher_and_name_filters(world, filters, expected):
    assert [item["modelId"] for item in listings(world, **filters)] == expected


def test_the_name_filter_also_matches_the_catalog_name():
    catalog = CATALOG.with_overrides([{"modelId": MARKETPLACE_MODEL, "name": "Cohere Command R 08-2024"}])
    world = build_world(preflight_policy=replace(policy(), catalog=catalog))

    assert [item["modelId"] for item in listings(world, name="command r ")] == [MARKETPLACE_MODEL]


def test_pages_follow_model_id_order_and_the_last_has_no_token(world):
    pages = []
    token = None
    for _ in range(len(CATALOG_ORDER)):
        page = world.service.list_models(WORKSPACE_ID, page_size=1, continuation_token=token)
        pages.append([item.model_id for item in page.items])
        token = page.continuation_token
    assert pages == [[model_id] for model_id in CATALOG_ORDER]
    assert token is None

    assert listings(world, page_size=2) == listings(world, page_size=100)


def test_a_page_resumes_after_its_model_even_when_the_catalog_grows_between_pages(world):
    first = world.service.list_models(WORKSPACE_ID, page_size=1)
    earlier = "azureml://registries/azureml-aaa/models/first"  # sorts before the page already served
    grown = CATALOG.with_overrides([{"modelId": earlier, "requiresMarketplaceSubscription": False}])
    # Another instance, with the operator's new override: tokens carry no state of the one that issued them.
    restarted = build_world(preflight_policy=replace(policy(registries=""), catalog=grown))

    rest = restarted.service.list_models(WORKSPACE_ID, page_size=10, continuation_token=first.continuation_token)

    assert [item.model_id for item in first.items + rest.items] == CATALOG_ORDER


@pytest.mark.parametrize(
    "other_filters",
    [
        {"publisher": "deepseek"},
        {"name": "r"},
        {"workspace_id": WORKSPACE_ID.replace("proj-a", "proj-b")},
    ],
)
def test_a_token_is_refused_with_other_filters_before_azure_is_read(world, other_filters):
    token = world.service.list_models(WORKSPACE_ID, page_size=1).continuation_token
    assert token is not None
    world.ml.calls.clear()
    workspace_id = other_filters.pop("workspace_id", WORKSPACE_ID)

    with pytest.raises(InvalidContinuationTokenError):
        world.service.list_models(workspace_id, continuation_token=token, **other_filters)

    assert world.ml.call_names == []


def test_a_token_survives_changes_of_case_and_page_size(world):
    token = world.service.list_models(WORKSPACE_ID, publisher="DeepSeek", page_size=1).continuation_token

    page = world.service.list_models(WORKSPACE_ID.upper(), publisher="deepseek", page_size=5, continuation_token=token)

    assert [item.model_id for item in page.items] == [UNKNOWN_REGIONS_MODEL]


@pytest.mark.parametrize("token", ["not base64 json", "e30", "eyJ2IjogMiwgImFmdGVyIjogIngifQ", "W10"])
def test_a_token_this_list_did_not_issue_is_refused(world, token):
    with pytest.raises(InvalidContinuationTokenError):
        world.service.list_models(WORKSPACE_ID, continuation_token=token)


def test_the_shipped_catalog_is_listed_whole():
    world = build_world(preflight_policy=replace(policy(registries=""), catalog=ModelCatalog.load()))

    items = listings(world, page_size=7)

    shipped = ModelCatalog.load().entries
    assert len(items) == len(shipped)
    assert sorted(item["modelId"] for item in items) == sorted(entry.model_id for entry in shipped)
