import pytest

from shared.azure_ids import WorkspaceId
from shared.catalog import CatalogEntry, ModelCatalog
from shared.cross_region import CONNECTION_NAME_PATTERN, CrossRegionHubs, HubSettingError, connection_name
from shared.deployment import Phase, deployment_id
from shared.lifecycle.settings import LifecycleSettingError, LifecycleSettings
from shared.model_ids import parse_model_id
from shared.plan import plan_for
from shared.runs import RunStatus
from tests.deployments.scenario import AUDITOR, DIRECT_MODEL, WORKSPACE_ID
from tests.deployments.scenario import CATALOG as SCENARIO_CATALOG
from tests.deployments.scenario import REQUESTER as SCENARIO_REQUESTER
from tests.deployments.scenario import request as scenario_request

from .world import HUB_ID, build

GROUP = "/subscriptions/0b1f6471-1bf0-4dda-aec3-111122223333/resourceGroups/rg-ai"
ML = "providers/Microsoft.MachineLearningServices/workspaces"
EUS2_HUB = f"{GROUP}/{ML}/hub-eus2"
SWC_HUB = f"{GROUP}/{ML}/hub-swc"
REQUESTER = WorkspaceId.parse(f"{GROUP}/{ML}/proj-weu")
MODEL = parse_model_id("azureml://registries/azureml-deepseek/models/DeepSeek-R1")
CATALOG = ModelCatalog(
    [
        CatalogEntry(
            model_id=MODEL.normalized,
            name="DeepSeek-R1",
            registry="azureml-deepseek",
            requires_marketplace_subscription=False,
            locations=("swedencentral", "eastus2"),
        )
    ]
)


def test_hubs_are_read_as_region_equals_workspace_id_in_order():
    hubs = CrossRegionHubs.from_setting(f" East US 2={EUS2_HUB} , swedencentral={SWC_HUB},")

    assert [(hub.location, hub.workspace.resource_id) for hub in hubs.hubs] == [
        ("eastus2", EUS2_HUB),
        ("swedencentral", SWC_HUB),
    ]
    assert CrossRegionHubs.from_setting("").hubs == ()
    assert CrossRegionHubs.from_setting(None).hubs == ()


@pytest.mark.parametrize(
    ("setting", "message"),
    [
        (EUS2_HUB, "is not '<region>=<workspace id>'"),
        (f"={EUS2_HUB}", "is not '<region>=<workspace id>'"),
        ("eastus2=/subscriptions/nope", "Cross-region hub entry for 'eastus2'"),
    ],
)
def test_a_hub_entry_that_cannot_be_read_is_refused_naming_it(setting, message):
    with pytest.raises(HubSettingError, match=message):
        CrossRegionHubs.from_setting(setting)


def test_the_first_configured_hub_in_a_region_offering_the_model_is_chosen():
    hubs = CrossRegionHubs.from_setting(f"westus3={GROUP}/{ML}/hub-wus3,eastus2={EUS2_HUB},swedencentral={SWC_HUB}")

    assert hubs.for_model(MODEL, CATALOG, requester=REQUESTER).workspace.resource_id == EUS2_HUB


def test_no_hub_for_a_model_of_unknown_regions_or_for_the_requesters_own_project():
    unknown = parse_model_id("azureml://registries/azureml/models/Not-In-Catalog")
    hubs = CrossRegionHubs.from_setting(f"eastus2={EUS2_HUB}")

    assert hubs.for_model(unknown, CATALOG, requester=REQUESTER) is None
    same_hub_other_casing = WorkspaceId.parse(EUS2_HUB.replace("hub-eus2", "HUB-EUS2"))
    assert hubs.for_model(MODEL, CATALOG, requester=same_hub_other_casing) is None


def test_a_short_endpoint_name_is_the_connection_name_and_a_long_one_is_shortened_uniquely():
    long_a = "a" * 40 + "-endpoint-one"
    long_b = "a" * 40 + "-endpoint-two"

    assert connection_name("deepseek-r1-f8a150") == "deepseek-r1-f8a150"
    assert connection_name(long_a) != connection_name(long_b)
    assert connection_name(long_a) == connection_name(long_a)
    assert all(CONNECTION_NAME_PATTERN.match(connection_name(name)) for name in (long_a, long_b, "x" * 52))


def test_lifecycle_settings_default_to_ninety_days_and_a_thirty_day_window():
    settings = LifecycleSettings.from_env({})

    assert (settings.key_validity_days, settings.rotation_window_days, settings.hubs.hubs) == (90, 30, ())


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"KEY_VALIDITY_DAYS": "0"}, "KEY_VALIDITY_DAYS is '0'"),
        ({"KEY_VALIDITY_DAYS": "ninety"}, "KEY_VALIDITY_DAYS is 'ninety'"),
        ({"KEY_ROTATION_WINDOW_DAYS": "-1"}, "KEY_ROTATION_WINDOW_DAYS is '-1'"),
        ({"KEY_VALIDITY_DAYS": "30", "KEY_ROTATION_WINDOW_DAYS": "30"}, "must be shorter than KEY_VALIDITY_DAYS"),
    ],
)
def test_unusable_lifecycle_settings_are_refused_naming_the_setting(env, message):
    with pytest.raises(LifecycleSettingError, match=message):
        LifecycleSettings.from_env(env)


def test_hubs_come_from_broker_cross_region_hubs():
    settings = LifecycleSettings.from_env({"BROKER_CROSS_REGION_HUBS": f"eastus2={EUS2_HUB}"})

    assert [hub.workspace.name for hub in settings.hubs.hubs] == ["hub-eus2"]


# Cross-region deployments end to end, on the production assembly.


def test_a_cross_region_deployment_lives_in_the_hub_and_the_project_reaches_it_through_a_connection():
    world = build(location="westeurope", hub=True)

    run = world.deploy(allow_cross_region=True)

    assert run.status is RunStatus.SUCCEEDED
    assert run.cross_region.hub_workspace_id == HUB_ID
    plan = plan_for(run.request, SCENARIO_CATALOG, target=run.deployment_target)
    endpoint = world.ml.endpoint(HUB_ID, plan.endpoint_name)
    assert endpoint is not None
    assert world.ml.endpoint(WORKSPACE_ID, plan.endpoint_name) is None
    [(key, stored)] = world.connections.connections.items()
    assert key == (WORKSPACE_ID.lower(), connection_name(plan.endpoint_name).lower())
    assert stored.key == world.ml.endpoint_keys(HUB_ID, plan.endpoint_name).primary
    assert (stored.connection.target, stored.connection.metadata["keyType"]) == (endpoint.scoring_uri, "primary")
    assert run.cross_region.connection.id == stored.connection.id
    assert world.secrets.latest(plan.secret_names.primary).value == stored.key
    deployment = world.service.get_deployment(run.deployment_id, caller=AUDITOR)
    assert deployment.spec.cross_region_hub == HUB_ID
    assert deployment.spec.workspace_id == WORKSPACE_ID, "the deployment is the requesting project's"
    assert run.deployment_id == deployment_id(run.request.workspace, run.request.model)
    assert deployment.status.phase is Phase.READY
    assert stored.key not in world.runs.stored_text()


def test_a_cross_region_deployment_asked_for_again_is_answered_by_the_deployment():
    world = build(location="westeurope", hub=True)
    run = world.deploy(allow_cross_region=True)

    again = world.service.submit(scenario_request(DIRECT_MODEL, allow_cross_region=True), caller=SCENARIO_REQUESTER)

    assert (again.answer, again.run) == ("ready", None)
    assert again.deployment.id == run.deployment_id
    assert len(world.runs.all_runs) == 1


def test_without_allow_cross_region_the_request_is_refused_naming_the_hub_that_could_serve_it():
    world = build(location="westeurope", hub=True)

    refused = world.service.submit(scenario_request(DIRECT_MODEL), caller=SCENARIO_REQUESTER)

    assert refused.problem.kind.slug == "region-unsupported"
    assert refused.problem.extensions["crossRegionHub"] == {"workspaceId": HUB_ID, "location": "eastus2"}
    assert "allowCrossRegion: true" in refused.problem.detail
    assert world.connections.connections == {}
