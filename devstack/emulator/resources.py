"""The mutable Machine Learning resources the emulator keeps: serverless endpoints, Marketplace subscriptions and
their long-running operations. Plain records with a JSON form for the optional state file."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

WorkspaceKey = tuple[str, str, str]

ML_PROVIDER = "Microsoft.MachineLearningServices"
ENDPOINT_TYPE = f"{ML_PROVIDER}/workspaces/serverlessEndpoints"
SUBSCRIPTION_TYPE = f"{ML_PROVIDER}/workspaces/marketplaceSubscriptions"


def workspace_key(subscription_id: str, resource_group: str, workspace: str) -> WorkspaceKey:
    return (subscription_id.lower(), resource_group.lower(), workspace.lower())


def workspace_path(subscription_id: str, resource_group: str, workspace: str) -> str:
    return (
        f"/subscriptions/{subscription_id}/resourceGroups/{resource_group}"
        f"/providers/{ML_PROVIDER}/workspaces/{workspace}"
    )


@dataclass
class Endpoint:
    subscription_id: str
    resource_group: str
    workspace: str
    name: str
    location: str
    model_id: str
    requires_marketplace_subscription: bool
    tags: dict[str, str]
    sku: dict[str, Any]
    auth_mode: str
    content_safety_status: str
    inference_uri: str
    primary_key: str
    secondary_key: str
    system_data: dict[str, str]
    provisioning_state: str = "Creating"
    marketplace_subscription_id: str | None = None
    # Set by the admin API to force an endpointState; None lets the emulator derive it.
    endpoint_state_override: str | None = None
    # Which operation left the endpoint Failed ("create" or "delete"), for CreationFailed vs DeletionFailed.
    failed_operation: str | None = None

    @property
    def key(self) -> WorkspaceKey:
        return workspace_key(self.subscription_id, self.resource_group, self.workspace)

    @property
    def resource_id(self) -> str:
        workspace = workspace_path(self.subscription_id, self.resource_group, self.workspace)
        return f"{workspace}/serverlessEndpoints/{self.name}"


@dataclass
class MarketplaceSubscription:
    subscription_id: str
    resource_group: str
    workspace: str
    name: str
    model_id: str
    marketplace_plan: dict[str, str]
    system_data: dict[str, str]
    status: str = "PendingFulfillmentStart"
    provisioning_state: str = "Creating"

    @property
    def key(self) -> WorkspaceKey:
        return workspace_key(self.subscription_id, self.resource_group, self.workspace)

    @property
    def resource_id(self) -> str:
        return (
            f"{workspace_path(self.subscription_id, self.resource_group, self.workspace)}"
            f"/marketplaceSubscriptions/{self.name}"
        )

    @property
    def healthy(self) -> bool:
        return self.status == "Subscribed" and self.provisioning_state == "Succeeded"


@dataclass
class Operation:
    id: str
    # "create" or "delete"
    action: str
    # "serverlessEndpoints" or "marketplaceSubscriptions"
    resource_type: str
    subscription_id: str
    resource_group: str
    workspace: str
    resource_name: str
    location: str
    start_time: float
    due_at: float | None
    status: str = "InProgress"
    end_time: float | None = None
    error: dict[str, str] | None = None

    @property
    def key(self) -> WorkspaceKey:
        return workspace_key(self.subscription_id, self.resource_group, self.workspace)

    @property
    def done(self) -> bool:
        return self.status != "InProgress"


def to_json(record: Endpoint | MarketplaceSubscription | Operation) -> dict[str, Any]:
    return asdict(record)
