"""Microsoft.MachineLearningServices: workspace GET, serverlessEndpoints and marketplaceSubscriptions.

Handlers validate like the service (model id, region, Marketplace subscription, one endpoint per model per project,
endpoint names unique per region), answer with the status codes azure-ai-ml accepts (PUT 200/201, DELETE 202/204)
and run creates and deletes as long-running operations (lro.py).
"""

from __future__ import annotations

import base64
import json
import re
import secrets
import string
from typing import Any

from aiohttp import web

from devstack.emulator import lifecycle, lro
from devstack.emulator.arm import ArmRoute, ArmRouter, base_url
from devstack.emulator.catalog import CatalogModel, parse_model_id, region_display_name
from devstack.emulator.errors import JSON_CONTENT_TYPE, ArmError, request_id_headers, user_error
from devstack.emulator.middleware import PRINCIPAL_KEY
from devstack.emulator.ml_bodies import (
    endpoint_json,
    keys_json,
    subscription_json,
    system_data,
    touched,
    workspace_json,
)
from devstack.emulator.paging import page
from devstack.emulator.resources import Endpoint, MarketplaceSubscription, workspace_key
from devstack.emulator.scenario import WorkspaceSpec
from devstack.emulator.state import EmulatorState

# [I] The versions the service accepts are not listed in one place; these are the published ones with these types.
WORKSPACE_API_VERSIONS = (
    "2023-04-01",
    "2023-06-01-preview",
    "2023-08-01-preview",
    "2023-10-01",
    "2024-01-01-preview",
    "2024-04-01",
    "2024-04-01-preview",
    "2024-07-01-preview",
    "2024-10-01",
    "2024-10-01-preview",
    "2025-01-01-preview",
    "2025-04-01",
    "2025-04-01-preview",
    "2025-06-01",
    "2025-07-01-preview",
    "2025-09-01",
    "2025-10-01-preview",
    "2025-12-01",
)
SERVERLESS_API_VERSIONS = WORKSPACE_API_VERSIONS[WORKSPACE_API_VERSIONS.index("2024-01-01-preview") :]
ENDPOINT_NAME = re.compile(r"^[a-zA-Z][a-zA-Z0-9-]{0,51}$")
SUBSCRIPTION_NAME = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9\-_]{0,254}$")
AUTH_MODES = ("Key", "AAD", "KeyAndAAD")
CONTENT_SAFETY_STATUSES = ("Enabled", "Disabled")
KEY_TYPES = ("Primary", "Secondary")
_WS = (
    "/subscriptions/{subscriptionId}/resourceGroups/{resourceGroupName}/providers/Microsoft.MachineLearningServices"
    "/workspaces/{workspaceName}"
)
_LOCATION = "/providers/Microsoft.MachineLearningServices/locations/{location}"
# Operation URLs carry the resource group, like the 2024-01-01-preview examples; the shorter form is accepted too.
_OPERATION_PREFIXES = (
    f"/subscriptions/{{subscriptionId}}/resourceGroups/{{resourceGroupName}}{_LOCATION}",
    f"/subscriptions/{{subscriptionId}}{_LOCATION}",
)
_ACTIONS = "Microsoft.MachineLearningServices/workspaces"
_SUFFIX_ALPHABET = string.ascii_lowercase + string.digits


def _json(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(
        status=status,
        text=json.dumps(body),
        headers={**request_id_headers(), **(headers or {}), "Content-Type": JSON_CONTENT_TYPE},
    )


def new_key() -> str:
    return base64.b64encode(secrets.token_bytes(24)).decode()


async def _body(request: web.Request) -> dict[str, Any]:
    text = await request.text()
    if not text.strip():
        return {}
    try:
        body = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ArmError(
            400,
            "InvalidRequestContent",
            f"The request content was invalid and could not be deserialized: '{exc.msg}'.",
        ) from None
    if not isinstance(body, dict):
        raise ArmError(400, "InvalidRequestContent", "The request content must be a JSON object.")
    return body


def _not_found(params: dict[str, str], child: str = "") -> ArmError:
    resource = f"Microsoft.MachineLearningServices/workspaces/{params['workspaceName']}{child}"
    return ArmError(
        404,
        "ResourceNotFound",
        f"The Resource '{resource}' under resource group '{params['resourceGroupName']}' was not found. "
        "For more details please go to https://aka.ms/ARMResourceNotFoundFix",
    )


class MachineLearning:
    def __init__(self, state: EmulatorState) -> None:
        self.state = state

    # -- lookups ---------------------------------------------------------------------------------------------------

    def workspace(self, params: dict[str, str]) -> WorkspaceSpec:
        found = self.state.scenario.workspace(
            params["subscriptionId"], params["resourceGroupName"], params["workspaceName"]
        )
        if found is None:
            raise _not_found(params)
        return found

    def location_of(self, params: dict[str, str]) -> str:
        if "location" in params:
            return params["location"]
        found = self.state.scenario.workspace(
            params.get("subscriptionId", ""), params.get("resourceGroupName", ""), params.get("workspaceName", "")
        )
        return found.location if found else "global"

    def _endpoint(self, workspace: WorkspaceSpec, params: dict[str, str]) -> Endpoint:
        key = workspace_key(workspace.subscription_id, workspace.resource_group, workspace.name)
        found = self.state.endpoints.get((key, params["name"].lower()))
        if found is None:
            raise _not_found(params, f"/serverlessEndpoints/{params['name']}")
        return found

    def _model_for(self, model_id: str, workspace: WorkspaceSpec) -> CatalogModel:
        parsed = parse_model_id(model_id)
        if parsed is None:
            raise user_error(
                400,
                f"The model id '{model_id}' is invalid. Expected "
                "'azureml://registries/<registry>/models/<model-name>'.",
                "InvalidModelId",
            )
        if parsed.version is not None:
            raise user_error(
                400,
                f"The model id '{model_id}' points to a specific model version, which is not supported. "
                "Serverless endpoints always deploy the latest version; provide the model id without "
                f"'/versions/{parsed.version}'.",
                "InvalidModelId",
            )
        model = self.state.catalog.get(model_id)
        if model is None or not model.available_in(workspace.location):
            raise user_error(
                400,
                f"The requested model {model_id} is not available in region "
                f"{region_display_name(workspace.location)}.",
                "ServerlessModelNotAvailableInRegion",
            )
        return model

    # -- workspace -------------------------------------------------------------------------------------------------

    async def get_workspace(self, request: web.Request, params: dict[str, str]) -> web.Response:
        return _json(workspace_json(self.state, self.workspace(params)))

    # -- serverless endpoints --------------------------------------------------------------------------------------

    async def put_endpoint(self, request: web.Request, params: dict[str, str]) -> web.Response:
        body = await _body(request)
        name = params["name"]
        if not ENDPOINT_NAME.fullmatch(name):
            raise user_error(
                400,
                f"Serverless endpoint name '{name}' is invalid. It must start with a letter and contain only "
                "letters, digits and '-', at most 52 characters.",
                "InvalidServerlessEndpointName",
            )
        properties = body.get("properties") or {}
        model_id = (properties.get("modelSettings") or {}).get("modelId")
        if not model_id:
            raise user_error(400, "The serverless endpoint needs properties.modelSettings.modelId.", "MissingModelId")
        location = str(body.get("location") or "").replace(" ", "").lower()
        if not location:
            raise ArmError(400, "LocationRequired", "The location property is required for this definition.")
        auth_mode = properties.get("authMode") or "Key"
        if auth_mode not in AUTH_MODES:
            raise user_error(400, f"authMode '{auth_mode}' is invalid; use one of {', '.join(AUTH_MODES)}.")
        safety = (properties.get("contentSafety") or {}).get("contentSafetyStatus") or "Enabled"
        if safety not in CONTENT_SAFETY_STATUSES:
            raise user_error(400, f"contentSafetyStatus '{safety}' is invalid; use Enabled or Disabled.")
        principal = request[PRINCIPAL_KEY]
        state = self.state
        with state.lock:
            lifecycle.settle(state)
            workspace = self.workspace(params)
            if location != workspace.location:
                raise user_error(
                    400,
                    f"The serverless endpoint location '{location}' must match the location "
                    f"'{workspace.location}' of workspace '{workspace.name}'.",
                    "LocationMismatch",
                )
            model = self._model_for(model_id, workspace)
            key = workspace_key(workspace.subscription_id, workspace.resource_group, workspace.name)
            existing = state.endpoints.get((key, name.lower()))
            if existing is not None:
                return self._update_endpoint(request, existing, model, body, auth_mode, safety)
            self._check_endpoint_name_free(name, workspace)
            self._check_one_per_model(key, model)
            subscription = None
            if model.requires_marketplace_subscription:
                subscription = lifecycle.subscription_for_model(state, key, model.model_id)
                if subscription is None or not subscription.healthy:
                    raise user_error(
                        400,
                        f"Serverless offer '{model.offer_id}' not found in service namespace '{workspace.name}'.",
                        "ServerlessOfferNotFound",
                    )
            endpoint = Endpoint(
                subscription_id=workspace.subscription_id,
                resource_group=workspace.resource_group,
                workspace=workspace.name,
                name=name,
                location=workspace.location,
                model_id=model_id,
                requires_marketplace_subscription=model.requires_marketplace_subscription,
                tags=dict(body.get("tags") or {}),
                sku=dict(body.get("sku") or {"name": "Consumption"}),
                auth_mode=auth_mode,
                content_safety_status=safety,
                inference_uri=self._unique_inference_uri(name, workspace.location),
                primary_key=new_key(),
                secondary_key=new_key(),
                system_data=system_data(principal, state.clock()),
                marketplace_subscription_id=subscription.resource_id if subscription else None,
            )
            state.endpoints[(key, name.lower())] = endpoint
            operation = lro.start_operation(
                state, action="create", resource_type=lifecycle.ENDPOINTS, target=endpoint, location=endpoint.location
            )
            state.commit()
            headers = lro.operation_headers(state, operation, base_url(request), with_location=False)
            return _json(endpoint_json(state, endpoint), 201, headers)

    def _update_endpoint(
        self,
        request: web.Request,
        endpoint: Endpoint,
        model: CatalogModel,
        body: dict[str, Any],
        auth_mode: str,
        safety: str,
    ) -> web.Response:
        state = self.state
        if model.model_id.lower() != endpoint.model_id.lower():
            raise user_error(
                400,
                f"The model of serverless endpoint '{endpoint.name}' cannot be changed from '{endpoint.model_id}' "
                f"to '{model.model_id}'. Create a new endpoint instead.",
                "ModelIdCannotBeUpdated",
            )
        if endpoint.provisioning_state == "Deleting":
            raise ArmError(
                409,
                "Conflict",
                f"Serverless endpoint '{endpoint.name}' is being deleted; retry once the deletion completes.",
            )
        pending = lifecycle.pending_operation(state, endpoint.key, lifecycle.ENDPOINTS, endpoint.name)
        endpoint.tags = dict(body.get("tags") or endpoint.tags)
        endpoint.auth_mode = auth_mode
        endpoint.content_safety_status = safety
        endpoint.system_data = touched(endpoint.system_data, request[PRINCIPAL_KEY], state.clock())
        state.commit()
        if pending is not None:
            # A repeated create while the first is running joins it: same operation, same answer.
            headers = lro.operation_headers(state, pending, base_url(request), with_location=False)
            return _json(endpoint_json(state, endpoint), 201, headers)
        return _json(endpoint_json(state, endpoint), 200)

    def _check_endpoint_name_free(self, name: str, workspace: WorkspaceSpec) -> None:
        for other in self.state.endpoints.values():
            if other.location == workspace.location and other.name.lower() == name.lower():
                raise user_error(
                    409,
                    f"Serverless endpoint name '{name}' is not available. Please select a different name.",
                    "ServerlessEndpointNameNotAvailable",
                )

    def _check_one_per_model(self, key: tuple[str, str, str], model: CatalogModel) -> None:
        for other in self.state.endpoints.values():
            if other.key == key and other.model_id.lower() == model.model_id.lower():
                raise user_error(
                    409,
                    f"A serverless endpoint for model '{model.model_id}' already exists in this project: "
                    f"'{other.name}'. Only one deployment per model per project is allowed.",
                    "ServerlessEndpointModelAlreadyDeployed",
                )

    def _unique_inference_uri(self, name: str, location: str) -> str:
        taken = {endpoint.inference_uri for endpoint in self.state.endpoints.values()}
        while True:
            suffix = "".join(secrets.choice(_SUFFIX_ALPHABET) for _ in range(4))
            uri = f"https://{name.lower()}-{suffix}.{location}.models.ai.azure.com"
            if uri not in taken:
                return uri

    async def get_endpoint(self, request: web.Request, params: dict[str, str]) -> web.Response:
        with self.state.lock:
            lifecycle.settle(self.state)
            return _json(endpoint_json(self.state, self._endpoint(self.workspace(params), params)))

    async def list_endpoints(self, request: web.Request, params: dict[str, str]) -> web.Response:
        with self.state.lock:
            lifecycle.settle(self.state)
            workspace = self.workspace(params)
            key = workspace_key(workspace.subscription_id, workspace.resource_group, workspace.name)
            items = [
                endpoint_json(self.state, endpoint)
                for (owner, _), endpoint in sorted(self.state.endpoints.items())
                if owner == key
            ]
        return _json(page(request, items, self.state.scenario.page_size))

    async def delete_endpoint(self, request: web.Request, params: dict[str, str]) -> web.Response:
        state = self.state
        with state.lock:
            lifecycle.settle(state)
            workspace = self.workspace(params)
            key = workspace_key(workspace.subscription_id, workspace.resource_group, workspace.name)
            endpoint = state.endpoints.get((key, params["name"].lower()))
            if endpoint is None:
                return web.Response(status=204, headers=request_id_headers())
            operation = lifecycle.pending_operation(state, key, lifecycle.ENDPOINTS, endpoint.name)
            if operation is None or operation.action != "delete":
                lifecycle.cancel_pending(state, key, lifecycle.ENDPOINTS, endpoint.name)
                endpoint.provisioning_state = "Deleting"
                endpoint.failed_operation = None
                operation = lro.start_operation(
                    state, action="delete", resource_type=lifecycle.ENDPOINTS, target=endpoint, location=endpoint.location
                )
                state.commit()
            headers = lro.operation_headers(state, operation, base_url(request), with_location=True)
        return web.Response(status=202, headers={**request_id_headers(), **headers})

    async def list_keys(self, request: web.Request, params: dict[str, str]) -> web.Response:
        with self.state.lock:
            lifecycle.settle(self.state)
            return _json(keys_json(self._endpoint(self.workspace(params), params)))

    async def regenerate_keys(self, request: web.Request, params: dict[str, str]) -> web.Response:
        body = await _body(request)
        key_type = body.get("keyType")
        if key_type not in KEY_TYPES:
            raise user_error(400, f"keyType '{key_type}' is invalid; use Primary or Secondary.", "InvalidKeyType")
        key_value = body.get("keyValue")
        with self.state.lock:
            lifecycle.settle(self.state)
            endpoint = self._endpoint(self.workspace(params), params)
            value = key_value or new_key()
            if key_type == "Primary":
                endpoint.primary_key = value
            else:
                endpoint.secondary_key = value
            self.state.commit()
            return _json(keys_json(endpoint))

    # -- Marketplace subscriptions ---------------------------------------------------------------------------------

    def _subscription(self, workspace: WorkspaceSpec, params: dict[str, str]) -> MarketplaceSubscription:
        key = workspace_key(workspace.subscription_id, workspace.resource_group, workspace.name)
        found = self.state.subscriptions.get((key, params["name"].lower()))
        if found is None:
            raise _not_found(params, f"/marketplaceSubscriptions/{params['name']}")
        return found

    async def put_subscription(self, request: web.Request, params: dict[str, str]) -> web.Response:
        body = await _body(request)
        name = params["name"]
        if not SUBSCRIPTION_NAME.fullmatch(name):
            raise user_error(
                400,
                f"Marketplace subscription name '{name}' is invalid. It must start with a letter or digit and "
                "contain only letters, digits, '-' and '_', at most 255 characters.",
                "InvalidMarketplaceSubscriptionName",
            )
        model_id = (body.get("properties") or {}).get("modelId")
        if not model_id:
            raise user_error(400, "The Marketplace subscription needs properties.modelId.", "MissingModelId")
        principal = request[PRINCIPAL_KEY]
        state = self.state
        with state.lock:
            lifecycle.settle(state)
            workspace = self.workspace(params)
            model = self._model_for(model_id, workspace)
            if not model.requires_marketplace_subscription:
                raise user_error(
                    400,
                    "Error occurred when subscribing to Marketplace: Marketplace Subscription purchase eligibility "
                    f"check failed. Model '{model.model_id}' is sold directly by Azure and has no Marketplace offer.",
                    "MarketplaceSubscriptionNotRequired",
                )
            key = workspace_key(workspace.subscription_id, workspace.resource_group, workspace.name)
            existing = state.subscriptions.get((key, name.lower()))
            if existing is not None:
                return self._resubscribe(request, existing, model)
            other = lifecycle.subscription_for_model(state, key, model.model_id)
            if other is not None:
                raise user_error(
                    409,
                    f"This project is already subscribed to the offer of model '{model.model_id}' through "
                    f"Marketplace subscription '{other.name}'.",
                    "MarketplaceSubscriptionAlreadyExists",
                )
            subscription = MarketplaceSubscription(
                subscription_id=workspace.subscription_id,
                resource_group=workspace.resource_group,
                workspace=workspace.name,
                name=name,
                model_id=model_id,
                marketplace_plan=model.marketplace_plan(),
                system_data=system_data(principal, state.clock()),
            )
            state.subscriptions[(key, name.lower())] = subscription
            return self._start_subscription_create(request, subscription, workspace.location)

    def _start_subscription_create(
        self, request: web.Request, subscription: MarketplaceSubscription, location: str
    ) -> web.Response:
        state = self.state
        subscription.status = "PendingFulfillmentStart"
        subscription.provisioning_state = "Creating"
        operation = lro.start_operation(
            state, action="create", resource_type=lifecycle.SUBSCRIPTIONS, target=subscription, location=location
        )
        state.commit()
        headers = lro.operation_headers(state, operation, base_url(request), with_location=False)
        return _json(subscription_json(subscription), 201, headers)

    def _resubscribe(
        self, request: web.Request, subscription: MarketplaceSubscription, model: CatalogModel
    ) -> web.Response:
        state = self.state
        if model.model_id.lower() != subscription.model_id.lower():
            raise user_error(
                400,
                f"The model of Marketplace subscription '{subscription.name}' cannot be changed from "
                f"'{subscription.model_id}' to '{model.model_id}'.",
                "ModelIdCannotBeUpdated",
            )
        pending = lifecycle.pending_operation(state, subscription.key, lifecycle.SUBSCRIPTIONS, subscription.name)
        if pending is not None and pending.action == "delete":
            raise ArmError(
                409,
                "Conflict",
                f"Marketplace subscription '{subscription.name}' is being deleted; retry once the deletion completes.",
            )
        if pending is not None:
            headers = lro.operation_headers(state, pending, base_url(request), with_location=False)
            return _json(subscription_json(subscription), 201, headers)
        subscription.system_data = touched(subscription.system_data, request[PRINCIPAL_KEY], state.clock())
        if subscription.healthy:
            state.commit()
            return _json(subscription_json(subscription), 200)
        # Suspended, Unsubscribed or failed: subscribing again buys the offer again.
        workspace = self.workspace(
            {
                "subscriptionId": subscription.subscription_id,
                "resourceGroupName": subscription.resource_group,
                "workspaceName": subscription.workspace,
            }
        )
        return self._start_subscription_create(request, subscription, workspace.location)

    async def get_subscription(self, request: web.Request, params: dict[str, str]) -> web.Response:
        with self.state.lock:
            lifecycle.settle(self.state)
            return _json(subscription_json(self._subscription(self.workspace(params), params)))

    async def list_subscriptions(self, request: web.Request, params: dict[str, str]) -> web.Response:
        with self.state.lock:
            lifecycle.settle(self.state)
            workspace = self.workspace(params)
            key = workspace_key(workspace.subscription_id, workspace.resource_group, workspace.name)
            items = [
                subscription_json(subscription)
                for (owner, _), subscription in sorted(self.state.subscriptions.items())
                if owner == key
            ]
        return _json(page(request, items, self.state.scenario.page_size))

    async def delete_subscription(self, request: web.Request, params: dict[str, str]) -> web.Response:
        state = self.state
        with state.lock:
            lifecycle.settle(state)
            workspace = self.workspace(params)
            key = workspace_key(workspace.subscription_id, workspace.resource_group, workspace.name)
            subscription = state.subscriptions.get((key, params["name"].lower()))
            if subscription is None:
                return web.Response(status=204, headers=request_id_headers())
            operation = lifecycle.pending_operation(state, key, lifecycle.SUBSCRIPTIONS, subscription.name)
            if operation is None or operation.action != "delete":
                lifecycle.cancel_pending(state, key, lifecycle.SUBSCRIPTIONS, subscription.name)
                subscription.provisioning_state = "Deleting"
                operation = lro.start_operation(
                    state,
                    action="delete",
                    resource_type=lifecycle.SUBSCRIPTIONS,
                    target=subscription,
                    location=workspace.location,
                )
                state.commit()
            headers = lro.operation_headers(state, operation, base_url(request), with_location=True)
        return web.Response(status=202, headers={**request_id_headers(), **headers})

    # -- operation resources ---------------------------------------------------------------------------------------

    def _operation(self, params: dict[str, str]):
        operation = self.state.operations.get(params["operationId"])
        if operation is None or operation.subscription_id.lower() != params["subscriptionId"].lower():
            raise ArmError(404, "NotFound", f"Operation '{params['operationId']}' was not found.")
        return operation

    async def operation_status(self, request: web.Request, params: dict[str, str]) -> web.Response:
        with self.state.lock:
            lifecycle.settle(self.state)
            operation = self._operation(params)
            headers = {} if operation.done else lro.retry_headers(self.state)
            return _json(lro.status_body(operation), 200, headers)

    async def operation_result(self, request: web.Request, params: dict[str, str]) -> web.Response:
        with self.state.lock:
            lifecycle.settle(self.state)
            operation = self._operation(params)
            if not operation.done:
                headers = {
                    "Location": f"{base_url(request)}{request.path_qs}",
                    **lro.retry_headers(self.state),
                    **request_id_headers(),
                }
                return web.Response(status=202, headers=headers)
            if operation.status == "Failed" and operation.error is not None:
                raise ArmError(400, operation.error["code"], operation.error["message"])
            return web.Response(status=204, headers=request_id_headers())

    # -- routes ----------------------------------------------------------------------------------------------------

    def register(self, router: ArmRouter) -> None:
        endpoints = f"{_ACTIONS}/serverlessEndpoints"
        subscriptions = f"{_ACTIONS}/marketplaceSubscriptions"
        ws_type, ep_type, ms_type = "workspaces", "workspaces/serverlessEndpoints", "workspaces/marketplaceSubscriptions"
        versions = SERVERLESS_API_VERSIONS
        routes = [
            ArmRoute("GET", _WS, self.get_workspace, f"{_ACTIONS}/read", WORKSPACE_API_VERSIONS, ws_type),
            ArmRoute("GET", f"{_WS}/serverlessEndpoints", self.list_endpoints, f"{endpoints}/read", versions, ep_type),
            ArmRoute("GET", f"{_WS}/serverlessEndpoints/{{name}}", self.get_endpoint, f"{endpoints}/read", versions, ep_type),
            ArmRoute("PUT", f"{_WS}/serverlessEndpoints/{{name}}", self.put_endpoint, f"{endpoints}/write", versions, ep_type),
            ArmRoute(
                "DELETE", f"{_WS}/serverlessEndpoints/{{name}}", self.delete_endpoint, f"{endpoints}/delete", versions, ep_type
            ),
            ArmRoute(
                "POST",
                f"{_WS}/serverlessEndpoints/{{name}}/listKeys",
                self.list_keys,
                f"{endpoints}/listKeys/action",
                versions,
                ep_type,
                scope_strip_segments=1,
            ),
            ArmRoute(
                "POST",
                f"{_WS}/serverlessEndpoints/{{name}}/regenerateKeys",
                self.regenerate_keys,
                f"{endpoints}/regenerateKeys/action",
                versions,
                ep_type,
                scope_strip_segments=1,
            ),
            ArmRoute(
                "GET", f"{_WS}/marketplaceSubscriptions", self.list_subscriptions, f"{subscriptions}/read", versions, ms_type
            ),
            ArmRoute(
                "GET",
                f"{_WS}/marketplaceSubscriptions/{{name}}",
                self.get_subscription,
                f"{subscriptions}/read",
                versions,
                ms_type,
            ),
            ArmRoute(
                "PUT",
                f"{_WS}/marketplaceSubscriptions/{{name}}",
                self.put_subscription,
                f"{subscriptions}/write",
                versions,
                ms_type,
            ),
            ArmRoute(
                "DELETE",
                f"{_WS}/marketplaceSubscriptions/{{name}}",
                self.delete_subscription,
                f"{subscriptions}/delete",
                versions,
                ms_type,
            ),
        ]
        for prefix in _OPERATION_PREFIXES:
            routes.append(ArmRoute("GET", f"{prefix}/mfeOperationsStatus/{{operationId}}", self.operation_status, None, None))
            routes.append(ArmRoute("GET", f"{prefix}/mfeOperationResults/{{operationId}}", self.operation_result, None, None))
        for route in routes:
            router.add(route)
