"""Microsoft.MachineLearningServices as the emulator serves it: the workspace GET, the operation resources every
long-running operation points to, and the serverlessEndpoints, marketplaceSubscriptions and connections handlers."""

from __future__ import annotations

from aiohttp import web

from devstack.emulator import lifecycle, lro
from devstack.emulator.arm import ArmRoute, ArmRouter, base_url
from devstack.emulator.errors import ArmError, request_id_headers
from devstack.emulator.ml_bodies import workspace_json
from devstack.emulator.ml_common import (
    ACTIONS,
    WORKSPACE_API_VERSIONS,
    MlHandlers,
    json_response,
    workspace_route,
)
from devstack.emulator.ml_connections import WorkspaceConnections
from devstack.emulator.ml_endpoints import ServerlessEndpoints
from devstack.emulator.ml_subscriptions import MarketplaceSubscriptions
from devstack.emulator.resources import Operation

_LOCATION = "/providers/Microsoft.MachineLearningServices/locations/{location}"
# Operation URLs carry the resource group, like the 2024-01-01-preview examples; the shorter form is accepted too.
_OPERATION_PREFIXES = (
    f"/subscriptions/{{subscriptionId}}/resourceGroups/{{resourceGroupName}}{_LOCATION}",
    f"/subscriptions/{{subscriptionId}}{_LOCATION}",
)


class MachineLearning(MlHandlers):
    async def get_workspace(self, request: web.Request, params: dict[str, str]) -> web.Response:
        return self.respond(request, "workspace", workspace_json(self.state, self.workspace(params)))

    def _operation(self, params: dict[str, str]) -> Operation:
        operation = self.state.operations.get(params["operationId"])
        if operation is None or operation.subscription_id.lower() != params["subscriptionId"].lower():
            raise ArmError(404, "NotFound", f"Operation '{params['operationId']}' was not found.")
        return operation

    async def operation_status(self, request: web.Request, params: dict[str, str]) -> web.Response:
        with self.state.lock:
            lifecycle.settle(self.state)
            operation = self._operation(params)
            headers = {} if operation.done else lro.retry_headers(self.state)
            return json_response(lro.status_body(operation), 200, headers)

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

    def register(self, router: ArmRouter) -> None:
        routes = [
            workspace_route(
                "GET", "", self.get_workspace, f"{ACTIONS}/read", "workspaces", versions=WORKSPACE_API_VERSIONS
            ),
            *ServerlessEndpoints(self.state).routes(),
            *MarketplaceSubscriptions(self.state).routes(),
            *WorkspaceConnections(self.state).routes(),
        ]
        for prefix in _OPERATION_PREFIXES:
            # Polling an operation needs a valid token only.
            routes.append(
                ArmRoute("GET", f"{prefix}/mfeOperationsStatus/{{operationId}}", self.operation_status, None, None)
            )
            routes.append(
                ArmRoute("GET", f"{prefix}/mfeOperationResults/{{operationId}}", self.operation_result, None, None)
            )
        for route in routes:
            router.add(route)
