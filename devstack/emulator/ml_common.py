"""What the Machine Learning handlers share: api-versions, route templates, JSON helpers, workspace and model
lookups with the service's own errors, and LRO headers."""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from devstack.emulator import lro
from devstack.emulator.api_schemas import catalog, invalid_request_content
from devstack.emulator.arm import ArmHandler, ArmRoute, base_url
from devstack.emulator.catalog import CatalogModel, parse_model_id, region_display_name
from devstack.emulator.errors import JSON_CONTENT_TYPE, ArmError, request_id_headers, user_error
from devstack.emulator.resources import Operation
from devstack.emulator.scenario import WorkspaceSpec
from devstack.emulator.state import EmulatorState

# The api-versions served per resource type: those with a schema file (schemas/, derived from the official OpenAPI).
# 2024-01-01-preview (endpoints, subscriptions) and 2024-10-01-preview (workspace) are what azure-ai-ml sends,
# 2024-10-01 is the previous stable for connections, 2025-12-01 the previous stable and 2026-07-01 the newest stable.
SCHEMAS = catalog()
SERVERLESS_API_VERSIONS = SCHEMAS.versions("serverlessEndpoint")
SUBSCRIPTION_API_VERSIONS = SCHEMAS.versions("marketplaceSubscription")
WORKSPACE_API_VERSIONS = SCHEMAS.versions("workspace")
CONNECTION_API_VERSIONS = SCHEMAS.versions("connection")
ACTIONS = "Microsoft.MachineLearningServices/workspaces"
_WORKSPACE = (
    "/subscriptions/{subscriptionId}/resourceGroups/{resourceGroupName}/providers/Microsoft.MachineLearningServices"
    "/workspaces/{workspaceName}"
)


def json_response(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(
        status=status,
        text=json.dumps(body),
        headers={**request_id_headers(), **(headers or {}), "Content-Type": JSON_CONTENT_TYPE},
    )


async def json_body(request: web.Request) -> dict[str, Any]:
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


def not_found(params: dict[str, str], child: str = "") -> ArmError:
    resource = f"Microsoft.MachineLearningServices/workspaces/{params['workspaceName']}{child}"
    return ArmError(
        404,
        "ResourceNotFound",
        f"The Resource '{resource}' under resource group '{params['resourceGroupName']}' was not found. "
        "For more details please go to https://aka.ms/ARMResourceNotFoundFix",
    )


def workspace_route(
    method: str,
    child: str,
    handler: ArmHandler,
    action: str,
    resource_type: str,
    *,
    versions: tuple[str, ...] = SERVERLESS_API_VERSIONS,
    scope_strip_segments: int = 0,
) -> ArmRoute:
    """A route under a workspace ('' is the workspace itself), needing `action` on its resource."""
    return ArmRoute(method, f"{_WORKSPACE}{child}", handler, action, versions, resource_type, scope_strip_segments)


class MlHandlers:
    def __init__(self, state: EmulatorState) -> None:
        self.state = state

    async def request_body(self, request: web.Request, role: str) -> dict[str, Any]:
        """The JSON body; unless the scenario is loose, it must be valid at the request's api-version (ARM's 400
        InvalidRequestContent naming the first offending property otherwise)."""
        body = await json_body(request)
        if not self.state.scenario.loose:
            problems = SCHEMAS.request_errors(request.query["api-version"], role, body)
            if problems:
                raise invalid_request_content(problems)
        return body

    def respond(
        self, request: web.Request, role: str, body: Any, status: int = 200, headers: dict[str, str] | None = None
    ) -> web.Response:
        """A resource as the request's api-version shows it: only what that version's schema declares."""
        return json_response(SCHEMAS.shape(request.query["api-version"], role, body), status, headers)

    def _lro_headers(self, request: web.Request, operation: Operation, *, with_location: bool) -> dict[str, str]:
        """Operation URLs on the host the client called, with the api-version it used."""
        return lro.operation_headers(
            self.state, operation, base_url(request), request.query["api-version"], with_location=with_location
        )

    def workspace(self, params: dict[str, str]) -> WorkspaceSpec:
        found = self.state.scenario.workspace(
            params["subscriptionId"], params["resourceGroupName"], params["workspaceName"]
        )
        if found is None:
            raise not_found(params)
        return found

    def location_of(self, params: dict[str, str]) -> str:
        if "location" in params:
            return params["location"]
        found = self.state.scenario.workspace(
            params.get("subscriptionId", ""), params.get("resourceGroupName", ""), params.get("workspaceName", "")
        )
        return found.location if found else "global"

    def model_for(self, model_id: str, workspace: WorkspaceSpec) -> CatalogModel:
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
                f"The requested model {model_id} is not available in region {region_display_name(workspace.location)}.",
                "ServerlessModelNotAvailableInRegion",
            )
        return model
