"""serverlessEndpoints: create (LRO), get, list, delete (LRO), listKeys and regenerateKeys.

Creation checks what the service checks: name pattern, location, model id (no version), the model's regions, a
Subscribed Marketplace subscription for partner models, one endpoint per model per project and endpoint names unique
per region (ignoring case). Keys are random; regenerateKeys replaces exactly the key asked for.
"""

from __future__ import annotations

import base64
import re
import secrets
import string
from typing import Any

from aiohttp import web

from devstack.emulator import lifecycle, lro
from devstack.emulator.arm import ArmRoute
from devstack.emulator.catalog import CatalogModel
from devstack.emulator.errors import ArmError, request_id_headers, user_error
from devstack.emulator.middleware import PRINCIPAL_KEY
from devstack.emulator.ml_bodies import endpoint_json, keys_json, system_data, touched
from devstack.emulator.ml_common import (
    ACTIONS,
    MlHandlers,
    not_found,
    workspace_route,
)
from devstack.emulator.paging import page
from devstack.emulator.resources import Endpoint, MarketplaceSubscription, workspace_key
from devstack.emulator.scenario import WorkspaceSpec

ENDPOINT_NAME = re.compile(r"^[a-zA-Z][a-zA-Z0-9-]{0,51}$")
AUTH_MODES = ("Key", "AAD", "KeyAndAAD")
CONTENT_SAFETY_STATUSES = ("Enabled", "Disabled")
KEY_TYPES = ("Primary", "Secondary")
_SUFFIX_ALPHABET = string.ascii_lowercase + string.digits
_ACTION = f"{ACTIONS}/serverlessEndpoints"
_TYPE = "workspaces/serverlessEndpoints"
# Schema roles (api_schemas): the endpoint resource and its keys.
ENDPOINT = "serverlessEndpoint"
KEYS = "endpointKeys"


def new_key() -> str:
    return base64.b64encode(secrets.token_bytes(24)).decode()


class ServerlessEndpoints(MlHandlers):
    def _endpoint(self, workspace: WorkspaceSpec, params: dict[str, str]) -> Endpoint:
        key = workspace_key(workspace.subscription_id, workspace.resource_group, workspace.name)
        found = self.state.endpoints.get((key, params["name"].lower()))
        if found is None:
            raise not_found(params, f"/serverlessEndpoints/{params['name']}")
        return found

    async def put_endpoint(self, request: web.Request, params: dict[str, str]) -> web.Response:
        body = await self.request_body(request, "serverlessEndpoint")
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
            model = self.model_for(model_id, workspace)
            key = workspace_key(workspace.subscription_id, workspace.resource_group, workspace.name)
            existing = state.endpoints.get((key, name.lower()))
            if existing is not None:
                return self._update_endpoint(
                    request, existing, workspace, model, body, auth_mode=auth_mode, safety=safety
                )
            self._check_endpoint_name_free(name, workspace)
            self._check_one_per_model(key, model)
            subscription = self._require_offer(workspace, model)
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
            return self._start_endpoint_create(request, endpoint)

    def _start_endpoint_create(self, request: web.Request, endpoint: Endpoint) -> web.Response:
        state = self.state
        endpoint.provisioning_state = "Creating"
        endpoint.failed_operation = None
        operation = lro.start_operation(
            state, action="create", resource_type=lifecycle.ENDPOINTS, target=endpoint, location=endpoint.location
        )
        state.commit()
        return self.respond(
            request,
            ENDPOINT,
            endpoint_json(state, endpoint),
            201,
            self._lro_headers(request, operation, with_location=False),
        )

    def _require_offer(self, workspace: WorkspaceSpec, model: CatalogModel) -> MarketplaceSubscription | None:
        """The project's healthy subscription to a partner model's offer (None for models sold directly)."""
        if not model.requires_marketplace_subscription:
            return None
        key = workspace_key(workspace.subscription_id, workspace.resource_group, workspace.name)
        subscription = lifecycle.subscription_for_model(self.state, key, model.model_id)
        if subscription is None or not subscription.healthy:
            raise user_error(
                400,
                f"Serverless offer '{model.offer_id}' not found in service namespace '{workspace.name}'.",
                "ServerlessOfferNotFound",
            )
        return subscription

    def _update_endpoint(
        self,
        request: web.Request,
        endpoint: Endpoint,
        workspace: WorkspaceSpec,
        model: CatalogModel,
        body: dict[str, Any],
        *,
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
        if endpoint.provisioning_state == "Failed":
            # Like ARM, a PUT on a failed resource provisions it again.
            self._require_offer(workspace, model)
            return self._start_endpoint_create(request, endpoint)
        state.commit()
        if pending is not None:
            # A repeated create while the first is running joins it: same operation, same answer.
            return self.respond(
                request,
                ENDPOINT,
                endpoint_json(state, endpoint),
                201,
                self._lro_headers(request, pending, with_location=False),
            )
        return self.respond(request, ENDPOINT, endpoint_json(state, endpoint))

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
            return self.respond(
                request, ENDPOINT, endpoint_json(self.state, self._endpoint(self.workspace(params), params))
            )

    async def list_endpoints(self, request: web.Request, params: dict[str, str]) -> web.Response:
        with self.state.lock:
            lifecycle.settle(self.state)
            workspace = self.workspace(params)
            key = workspace_key(workspace.subscription_id, workspace.resource_group, workspace.name)
            # Filtered before sorting: a list reads one workspace, however many the emulator holds.
            owned = sorted(item for item in self.state.endpoints.items() if item[0][0] == key)
            items = [endpoint_json(self.state, endpoint) for _, endpoint in owned]
        return self.respond(request, f"{ENDPOINT}List", page(request, items, self.state.scenario.page_size))

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
                    state,
                    action="delete",
                    resource_type=lifecycle.ENDPOINTS,
                    target=endpoint,
                    location=endpoint.location,
                )
                state.commit()
            headers = self._lro_headers(request, operation, with_location=True)
        return web.Response(status=202, headers={**request_id_headers(), **headers})

    async def list_keys(self, request: web.Request, params: dict[str, str]) -> web.Response:
        with self.state.lock:
            lifecycle.settle(self.state)
            return self.respond(request, KEYS, keys_json(self._endpoint(self.workspace(params), params)))

    async def regenerate_keys(self, request: web.Request, params: dict[str, str]) -> web.Response:
        body = await self.request_body(request, "regenerateKeysRequest")
        key_type = body.get("keyType")
        if key_type not in KEY_TYPES:
            raise user_error(400, f"keyType '{key_type}' is invalid; use Primary or Secondary.", "InvalidKeyType")
        key_value = body.get("keyValue")
        state = self.state
        with state.lock:
            lifecycle.settle(state)
            endpoint = self._endpoint(self.workspace(params), params)
            if not state.scenario.timings.regenerate_keys_async:
                lifecycle.set_key(endpoint, key_type, key_value or new_key())
                state.commit()
                return self.respond(request, KEYS, keys_json(endpoint))
            # The new key is chosen now and takes effect when the operation completes.
            operation = lro.start_operation(
                state,
                action=lifecycle.REGENERATE,
                resource_type=lifecycle.ENDPOINTS,
                target=endpoint,
                location=endpoint.location,
            )
            lifecycle.remember_key(state, operation, key_type, key_value or new_key())
            state.commit()
            headers = self._lro_headers(request, operation, with_location=True)
        return web.Response(status=202, headers={**request_id_headers(), **headers})

    def routes(self) -> list[ArmRoute]:
        item = "/serverlessEndpoints/{name}"
        return [
            workspace_route("GET", "/serverlessEndpoints", self.list_endpoints, f"{_ACTION}/read", _TYPE),
            workspace_route("GET", item, self.get_endpoint, f"{_ACTION}/read", _TYPE),
            workspace_route("PUT", item, self.put_endpoint, f"{_ACTION}/write", _TYPE),
            workspace_route("DELETE", item, self.delete_endpoint, f"{_ACTION}/delete", _TYPE),
            # Key actions are authorized on the endpoint, not on the action's own path.
            workspace_route(
                "POST", f"{item}/listKeys", self.list_keys, f"{_ACTION}/listKeys/action", _TYPE, scope_strip_segments=1
            ),
            workspace_route(
                "POST",
                f"{item}/regenerateKeys",
                self.regenerate_keys,
                f"{_ACTION}/regenerateKeys/action",
                _TYPE,
                scope_strip_segments=1,
            ),
        ]
