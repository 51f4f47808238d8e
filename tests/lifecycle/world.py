"""The deployment world of tests/deployments, with key expiry and (optionally) a cross-region hub configured."""

from __future__ import annotations

from dataclasses import replace

from shared.azure_ids import WorkspaceId
from shared.cross_region import CrossRegionHubs, Hub
from shared.lifecycle.settings import LifecycleSettings
from tests.deployments.fakes import (
    FakeMachineLearning,
)
from tests.deployments.scenario import (
    RESOURCE_GROUP_SCOPE,
    WORKSPACE_LOCATION,
    World,
    build_world,
    policy,
)

HUB_ID = f"{RESOURCE_GROUP_SCOPE}/providers/Microsoft.MachineLearningServices/workspaces/hub-eus2"
VALIDITY_DAYS = 90
WINDOW_DAYS = 30


LifecycleWorld = World


def build(
    *, location: str = WORKSPACE_LOCATION, hub: bool = False, ml: FakeMachineLearning | None = None
) -> LifecycleWorld:
    ml = ml or FakeMachineLearning()
    hubs = CrossRegionHubs()
    if hub:
        ml.add_workspace(HUB_ID, "eastus2")
        hubs = CrossRegionHubs([Hub("eastus2", WorkspaceId.parse(HUB_ID))])
    settings = LifecycleSettings(key_validity_days=VALIDITY_DAYS, rotation_window_days=WINDOW_DAYS, hubs=hubs)
    return build_world(
        preflight_policy=replace(policy(), hubs=hubs), location=location, ml=ml, lifecycle_settings=settings
    )
