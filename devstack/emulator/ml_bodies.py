"""JSON bodies of the Machine Learning resources, shaped like the service's (see arm-examples/ and the facts)."""

from __future__ import annotations

from typing import Any

from devstack.emulator.lifecycle import current_marketplace_subscription_id, endpoint_state
from devstack.emulator.lro import iso_time
from devstack.emulator.resources import ENDPOINT_TYPE, ML_PROVIDER, SUBSCRIPTION_TYPE, Endpoint, MarketplaceSubscription
from devstack.emulator.scenario import WorkspaceSpec
from devstack.emulator.state import EmulatorState
from devstack.emulator.tokens import Principal

WORKSPACE_TYPE = f"{ML_PROVIDER}/workspaces"
_APPLICATION_TYPES = {"ServicePrincipal", "Application", "ManagedIdentity"}


def system_data(principal: Principal, epoch: float) -> dict[str, str]:
    """ARM's systemData for a resource a principal just created (apps are named by client id, users by name)."""
    if principal.principal_type in _APPLICATION_TYPES:
        by, by_type = principal.client_id or principal.object_id, "Application"
    else:
        by, by_type = principal.display_name or principal.object_id, "User"
    moment = iso_time(epoch)
    return {
        "createdAt": moment,
        "createdBy": by,
        "createdByType": by_type,
        "lastModifiedAt": moment,
        "lastModifiedBy": by,
        "lastModifiedByType": by_type,
    }


def touched(data: dict[str, str], principal: Principal, epoch: float) -> dict[str, str]:
    fresh = system_data(principal, epoch)
    return {**data, **{key: value for key, value in fresh.items() if key.startswith("lastModified")}}


def endpoint_json(state: EmulatorState, endpoint: Endpoint) -> dict[str, Any]:
    properties: dict[str, Any] = {
        "authMode": endpoint.auth_mode,
        "contentSafety": {"contentSafetyStatus": endpoint.content_safety_status},
        "modelSettings": {"modelId": endpoint.model_id},
        "inferenceEndpoint": {"uri": endpoint.inference_uri, "headers": {}},
        "provisioningState": endpoint.provisioning_state,
        "endpointState": endpoint_state(state, endpoint),
    }
    subscription_id = current_marketplace_subscription_id(state, endpoint)
    if subscription_id is not None:
        properties["marketplaceSubscriptionId"] = subscription_id
    return {
        "id": endpoint.resource_id,
        "name": endpoint.name,
        "type": ENDPOINT_TYPE,
        "location": endpoint.location,
        "tags": endpoint.tags,
        "sku": endpoint.sku,
        "properties": properties,
        "systemData": endpoint.system_data,
    }


def subscription_json(subscription: MarketplaceSubscription) -> dict[str, Any]:
    return {
        "id": subscription.resource_id,
        "name": subscription.name,
        "type": SUBSCRIPTION_TYPE,
        "properties": {
            "modelId": subscription.model_id,
            # Always present: azure-ai-ml crashes deserializing a subscription without it.
            "marketplacePlan": dict(subscription.marketplace_plan),
            "marketplaceSubscriptionStatus": subscription.status,
            "provisioningState": subscription.provisioning_state,
        },
        "systemData": subscription.system_data,
    }


def keys_json(endpoint: Endpoint) -> dict[str, str]:
    return {"primaryKey": endpoint.primary_key, "secondaryKey": endpoint.secondary_key}


def workspace_json(state: EmulatorState, workspace: WorkspaceSpec) -> dict[str, Any]:
    group = f"/subscriptions/{workspace.subscription_id}/resourceGroups/{workspace.resource_group}/providers"
    vault = next(
        (
            vault.resource_id
            for vault in state.scenario.vaults
            if (vault.subscription_id.lower(), vault.resource_group.lower())
            == (workspace.subscription_id.lower(), workspace.resource_group.lower())
        ),
        f"{group}/Microsoft.KeyVault/vaults/kv-{workspace.name}",
    )
    properties: dict[str, Any] = {
        "friendlyName": workspace.name,
        "description": f"Emulated {workspace.kind.lower()} workspace",
        "workspaceId": workspace.workspace_id,
        "keyVault": vault,
        "storageAccount": f"{group}/Microsoft.Storage/storageAccounts/st{workspace.workspace_id.replace('-', '')[:20]}",
        "applicationInsights": f"{group}/microsoft.insights/components/appi-{workspace.name}",
        "containerRegistry": f"{group}/Microsoft.ContainerRegistry/registries/cr{workspace.workspace_id[:8]}",
        "discoveryUrl": f"https://{workspace.location}.api.azureml.ms/discovery",
        "mlFlowTrackingUri": f"azureml://{workspace.location}.api.azureml.ms/mlflow/v1.0{workspace.resource_id}",
        "hbiWorkspace": False,
        "publicNetworkAccess": "Enabled",
        "allowPublicAccessWhenBehindVnet": False,
        "provisioningState": "Succeeded",
    }
    return {
        "id": workspace.resource_id,
        "name": workspace.name,
        "type": WORKSPACE_TYPE,
        "location": workspace.location,
        "kind": workspace.kind,
        "identity": {
            "type": "SystemAssigned",
            "principalId": workspace.workspace_id,
            "tenantId": state.scenario.tenant_id,
        },
        "sku": {"name": "Basic", "tier": "Basic"},
        "tags": {},
        "properties": properties,
        "systemData": {
            "createdAt": "2024-01-01T00:00:00.0000000Z",
            "createdBy": "emulator",
            "createdByType": "Application",
            "lastModifiedAt": "2024-01-01T00:00:00.0000000Z",
            "lastModifiedBy": "emulator",
            "lastModifiedByType": "Application",
        },
    }
