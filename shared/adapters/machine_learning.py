"""Azure Machine Learning serverless endpoints and Marketplace subscriptions (implements MachineLearningPort).

Every call goes through the ARM pipeline (azure-mgmt-core) rather than azure-ai-ml: importing azure-ai-ml costs about
3.5 s on our 2-core workers (bench/results/cold_start.json) and held concurrent worker steps for 4.8 s
(bench/results/deployment_latency.json); its entity drops `endpointState`, `marketplaceSubscriptionId` and
`contentSafety`; its regenerate call never sends regenerateKeys; and its pollers block (azure-facts §1).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from shared.adapters.arm import AcceptedOperation, ArmClient
from shared.azure_errors import AzureCallError
from shared.ports import Endpoint, EndpointKeys, MarketplaceSubscription, Operation, OperationProgress, Workspace

# The newest stable api-version (azure-rest-api-specs, .../MachineLearningServices/stable/2026-07-01/openapi.json): it
# has every property the broker reads or writes (endpointState, marketplaceSubscriptionId, contentSafety,
# inferenceEndpoint, authMode; marketplaceSubscriptionStatus, marketplacePlan). 2024-01-01-preview, which azure-ai-ml
# still sends, has no contentSafety and rejects unknown properties. docs/architecture.md, "Azure access", says more.
ML_API_VERSION = "2026-07-01"
WORKSPACE_API_VERSION = ML_API_VERSION


class MachineLearningAdapter:
    def __init__(self, arm: ArmClient) -> None:
        self._arm = arm

    def get_workspace(self, workspace_id: str) -> Workspace:
        body = self._arm.get(workspace_id, WORKSPACE_API_VERSION)
        return Workspace(id=body["id"], name=body["name"], location=body["location"], kind=body.get("kind"))

    def list_endpoints(self, workspace_id: str) -> list[Endpoint]:
        return [_endpoint(item) for item in self._arm.list(f"{workspace_id}/serverlessEndpoints", ML_API_VERSION)]

    def get_endpoint(self, workspace_id: str, name: str) -> Endpoint | None:
        try:
            return _endpoint(self._arm.get(_endpoint_path(workspace_id, name), ML_API_VERSION))
        except AzureCallError as error:
            if error.not_found:
                return None
            raise

    def begin_create_endpoint(
        self,
        workspace_id: str,
        name: str,
        *,
        model_id: str,
        location: str,
        content_safety: str,
        tags: Mapping[str, str],
    ) -> Operation | None:
        body = endpoint_body(model_id=model_id, location=location, content_safety=content_safety, tags=tags)
        return _operation(self._arm.begin_put(_endpoint_path(workspace_id, name), ML_API_VERSION, body))

    def begin_delete_endpoint(self, workspace_id: str, name: str) -> Operation | None:
        return _operation(self._arm.begin_delete(_endpoint_path(workspace_id, name), ML_API_VERSION))

    def list_keys(self, workspace_id: str, name: str) -> EndpointKeys:
        accepted = self._arm.post(f"{_endpoint_path(workspace_id, name)}/listKeys", ML_API_VERSION)
        keys = accepted.resource or {}
        if "primaryKey" not in keys or "secondaryKey" not in keys:
            raise AzureCallError(accepted.status, "InvalidResponse", "listKeys answered without both keys")
        return EndpointKeys(primary=keys["primaryKey"], secondary=keys["secondaryKey"])

    def regenerate_key(self, workspace_id: str, name: str, key_type: str) -> Operation | None:
        path = f"{_endpoint_path(workspace_id, name)}/regenerateKeys"
        return _operation(self._arm.post(path, ML_API_VERSION, regenerate_keys_body(key_type)))

    def get_subscription(self, workspace_id: str, name: str) -> MarketplaceSubscription | None:
        try:
            return _subscription_from_rest(self._arm.get(_subscription_path(workspace_id, name), ML_API_VERSION))
        except AzureCallError as error:
            if error.not_found:
                return None
            raise

    def list_subscriptions(self, workspace_id: str) -> list[MarketplaceSubscription]:
        # A hygiene scan lists every project's subscriptions: one ARM call each, no per-workspace SDK client.
        path = f"{workspace_id}/marketplaceSubscriptions"
        return [_subscription_from_rest(item) for item in self._arm.list(path, ML_API_VERSION)]

    def begin_create_subscription(self, workspace_id: str, name: str, *, model_id: str) -> Operation | None:
        body = subscription_body(model_id)
        return _operation(self._arm.begin_put(_subscription_path(workspace_id, name), ML_API_VERSION, body))

    def begin_delete_subscription(self, workspace_id: str, name: str) -> Operation | None:
        return _operation(self._arm.begin_delete(_subscription_path(workspace_id, name), ML_API_VERSION))

    def get_operation(self, operation: Operation) -> OperationProgress:
        status = self._arm.get_operation(operation.url)
        error = status.error or {}
        return OperationProgress(
            done=status.done,
            succeeded=status.succeeded,
            error_code=error.get("code"),
            error_message=error.get("message"),
            retry_after=status.retry_after,
        )


def endpoint_body(*, model_id: str, location: str, content_safety: str, tags: Mapping[str, str]) -> dict[str, Any]:
    """A serverless endpoint PUT at ML_API_VERSION: authMode is required there (Key is the only mode serverless
    deployments support with keys), contentSafety.contentSafetyStatus is Enabled or Disabled."""
    return {
        "location": location,
        "sku": {"name": "Consumption"},
        "tags": dict(tags),
        "properties": {
            "authMode": "Key",
            "contentSafety": {"contentSafetyStatus": content_safety},
            "modelSettings": {"modelId": model_id},
        },
    }


def subscription_body(model_id: str) -> dict[str, Any]:
    return {"properties": {"modelId": model_id}}


def regenerate_keys_body(key_type: str) -> dict[str, str]:
    """`primary`/`secondary` as the API's KeyType enum (Primary, Secondary)."""
    return {"keyType": key_type.capitalize()}


def _endpoint_path(workspace_id: str, name: str) -> str:
    return f"{workspace_id}/serverlessEndpoints/{name}"


def _subscription_path(workspace_id: str, name: str) -> str:
    return f"{workspace_id}/marketplaceSubscriptions/{name}"


def _operation(accepted: AcceptedOperation) -> Operation | None:
    if accepted.operation_url is None:
        return None
    return Operation(url=accepted.operation_url, retry_after=accepted.retry_after)


def _endpoint(body: Mapping[str, Any]) -> Endpoint:
    properties = body.get("properties") or {}
    return Endpoint(
        id=body["id"],
        name=body["name"],
        model_id=(properties.get("modelSettings") or {}).get("modelId", ""),
        provisioning_state=properties.get("provisioningState", "Unknown"),
        endpoint_state=properties.get("endpointState"),
        scoring_uri=(properties.get("inferenceEndpoint") or {}).get("uri"),
        marketplace_subscription_id=properties.get("marketplaceSubscriptionId"),
        tags=body.get("tags") or {},
    )


def _subscription_from_rest(body: Mapping[str, Any]) -> MarketplaceSubscription:
    properties = body.get("properties") or {}
    return MarketplaceSubscription(
        id=body["id"],
        name=body["name"],
        model_id=properties.get("modelId", ""),
        status=properties.get("marketplaceSubscriptionStatus"),
        provisioning_state=properties.get("provisioningState"),
    )
