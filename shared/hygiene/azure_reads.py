"""The scan's Machine Learning calls, all over the ARM pipeline (implements ScanMachineLearningPort).

MachineLearningAdapter reads subscriptions and keys through azure-ai-ml, whose client costs seconds to import, one
client per workspace, and its own retry loop (about 5 s before a 500 surfaces). A scan of a thousand workspaces
needs none of that: it reads the same REST shapes directly and leaves retries to the scan's own bounded policy.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from shared.adapters.arm import ArmClient
from shared.adapters.machine_learning import ML_API_VERSION, MachineLearningAdapter
from shared.azure_errors import AzureCallError
from shared.ports import Endpoint, EndpointKeys, MarketplaceSubscription, Operation


class ArmMachineLearningReads:
    def __init__(self, arm: ArmClient, machine_learning: MachineLearningAdapter) -> None:
        self._arm = arm
        self._ml = machine_learning

    def list_endpoints(self, workspace_id: str) -> list[Endpoint]:
        return self._ml.list_endpoints(workspace_id)

    def list_subscriptions(self, workspace_id: str) -> list[MarketplaceSubscription]:
        return [
            _subscription(item) for item in self._arm.list(f"{workspace_id}/marketplaceSubscriptions", ML_API_VERSION)
        ]

    def list_keys(self, workspace_id: str, name: str) -> EndpointKeys:
        accepted = self._arm.post(f"{workspace_id}/serverlessEndpoints/{name}/listKeys", ML_API_VERSION)
        body = accepted.resource or {}
        if "primaryKey" not in body or "secondaryKey" not in body:
            raise AzureCallError(accepted.status, "InvalidResponse", "listKeys answered without both keys")
        return EndpointKeys(primary=body["primaryKey"], secondary=body["secondaryKey"])

    def begin_delete_endpoint(self, workspace_id: str, name: str) -> Operation | None:
        return self._ml.begin_delete_endpoint(workspace_id, name)


def _subscription(body: Mapping[str, Any]) -> MarketplaceSubscription:
    properties = body.get("properties") or {}
    return MarketplaceSubscription(
        id=body["id"],
        name=body["name"],
        model_id=properties.get("modelId", ""),
        status=properties.get("marketplaceSubscriptionStatus"),
        provisioning_state=properties.get("provisioningState"),
    )
