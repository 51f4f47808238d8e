"""The admin API under /_emulator/ (JSON, no authentication): scenarios, out-of-band actions, operations, faults,
throttling and the request log. Not an Azure API; tests, demos and benchmarks drive the emulator through it."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

from aiohttp import web

from devstack.emulator import lifecycle
from devstack.emulator.lro import status_body
from devstack.emulator.middleware import ADMIN_PREFIX, Handler
from devstack.emulator.ml_bodies import endpoint_json, subscription_json
from devstack.emulator.resources import Operation, WorkspaceKey, workspace_key
from devstack.emulator.scenario import Timings, merge_overrides, positive_milliseconds, throttling_from_json
from devstack.emulator.state import EmulatorState

ENDPOINT_STATES = (
    "Unknown",
    "Creating",
    "Deleting",
    "Suspending",
    "Reinstating",
    "Online",
    "Suspended",
    "CreationFailed",
    "DeletionFailed",
)
PROVISIONING_STATES = ("Creating", "Deleting", "Succeeded", "Failed", "Updating", "Canceled")
SUBSCRIPTION_ACTIONS = ("delete", "suspend", "unsubscribe", "reinstate")


class AdminError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@web.middleware
async def _admin_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except AdminError as error:
        return web.json_response({"error": {"code": "AdminError", "message": error.message}}, status=error.status)
    except (ValueError, KeyError, TypeError) as error:
        return web.json_response({"error": {"code": "AdminError", "message": str(error)}}, status=400)


async def _body(request: web.Request) -> dict[str, Any]:
    text = await request.text()
    if not text.strip():
        return {}
    body = json.loads(text)
    if not isinstance(body, dict):
        raise AdminError(400, "the body must be a JSON object")
    return body


class Admin:
    def __init__(self, state: EmulatorState) -> None:
        self.state = state

    def _workspace_key(self, body: dict[str, Any]) -> WorkspaceKey:
        """The workspace a body names: 'workspace' plus optional 'subscriptionId' and 'resourceGroup'."""
        name = body.get("workspace")
        matches = [
            workspace
            for workspace in self.state.scenario.workspaces
            if workspace.name.lower() == str(name).lower()
            and workspace.subscription_id.lower() == body.get("subscriptionId", workspace.subscription_id).lower()
            and workspace.resource_group.lower() == body.get("resourceGroup", workspace.resource_group).lower()
        ]
        if len(matches) != 1:
            raise AdminError(404 if not matches else 400, f"no single workspace matches {name!r}")
        found = matches[0]
        return workspace_key(found.subscription_id, found.resource_group, found.name)

    # -- scenario --------------------------------------------------------------------------------------------------

    async def health(self, request: web.Request) -> web.Response:
        return web.json_response({"status": "ok", "generation": self.state.generation})

    async def get_scenario(self, request: web.Request) -> web.Response:
        return web.json_response(self.state.scenario.source)

    async def load_scenario(self, request: web.Request) -> web.Response:
        self.state.load(await _body(request))
        return web.json_response({"status": "loaded", "generation": self.state.generation})

    async def reset(self, request: web.Request) -> web.Response:
        """Back to the current scenario's start; a body of overrides (e.g. {"timings": {...}}) is merged in first."""
        overrides = await _body(request)
        self.state.load(merge_overrides(self.state.scenario.source, overrides))
        return web.json_response({"status": "reset", "generation": self.state.generation})

    async def put_timings(self, request: web.Request) -> web.Response:
        body = await _body(request)
        with self.state.lock:
            current = self.state.scenario.timings
            timings = Timings(
                lro_seconds=body.get("lroSeconds", current.lro_seconds),
                retry_after_ms=positive_milliseconds(body.get("retryAfterMs", current.retry_after_ms)),
                regenerate_keys_async=bool(body.get("regenerateKeysAsync", current.regenerate_keys_async)),
            )
            source = merge_overrides(self.state.scenario.source, {"timings": body})
            self.state.scenario = dataclasses.replace(self.state.scenario, timings=timings, source=source)
        return web.json_response(
            {
                "lroSeconds": timings.lro_seconds,
                "retryAfterMs": timings.retry_after_ms,
                "regenerateKeysAsync": timings.regenerate_keys_async,
            }
        )

    async def get_state(self, request: web.Request) -> web.Response:
        state = self.state
        with state.lock:
            lifecycle.settle(state)
            return web.json_response(
                {
                    "endpoints": [endpoint_json(state, item) for item in state.endpoints.values()],
                    "marketplaceSubscriptions": [subscription_json(item) for item in state.subscriptions.values()],
                    "operations": [self._operation_json(item) for item in state.operations.values()],
                }
            )

    # -- out-of-band actions ---------------------------------------------------------------------------------------

    async def subscription_action(self, request: web.Request) -> web.Response:
        """What happens outside ARM: the SaaS resource deleted in the portal, billing suspended, and so on."""
        action = request.match_info["action"]
        if action not in SUBSCRIPTION_ACTIONS:
            raise AdminError(404, f"unknown action {action!r}; use one of {', '.join(SUBSCRIPTION_ACTIONS)}")
        body = await _body(request)
        state = self.state
        with state.lock:
            lifecycle.settle(state)
            key = (self._workspace_key(body), str(body.get("name", "")).lower())
            subscription = state.subscriptions.get(key)
            if subscription is None:
                raise AdminError(404, f"no Marketplace subscription {body.get('name')!r} in that workspace")
            if action == "delete":
                del state.subscriptions[key]
                result: dict[str, Any] = {"deleted": subscription.resource_id}
            else:
                subscription.status = {"suspend": "Suspended", "unsubscribe": "Unsubscribed"}.get(action, "Subscribed")
                subscription.provisioning_state = "Succeeded"
                result = subscription_json(subscription)
            state.commit()
            return web.json_response(result)

    async def endpoint_state(self, request: web.Request) -> web.Response:
        """Force an endpoint's endpointState (null returns it to the derived value) and/or provisioningState."""
        body = await _body(request)
        state = self.state
        with state.lock:
            lifecycle.settle(state)
            endpoint = state.endpoints.get((self._workspace_key(body), str(body.get("name", "")).lower()))
            if endpoint is None:
                raise AdminError(404, f"no serverless endpoint {body.get('name')!r} in that workspace")
            if "endpointState" in body:
                value = body["endpointState"]
                if value is not None and value not in ENDPOINT_STATES:
                    raise AdminError(400, f"endpointState must be one of {', '.join(ENDPOINT_STATES)} or null")
                endpoint.endpoint_state_override = value
            if "provisioningState" in body:
                if body["provisioningState"] not in PROVISIONING_STATES:
                    raise AdminError(400, f"provisioningState must be one of {', '.join(PROVISIONING_STATES)}")
                endpoint.provisioning_state = body["provisioningState"]
            state.commit()
            return web.json_response(endpoint_json(state, endpoint))

    # -- operations ------------------------------------------------------------------------------------------------

    def _operation_json(self, operation: Operation) -> dict[str, Any]:
        return {
            **status_body(operation),
            "action": operation.action,
            "resourceType": operation.resource_type,
            "resourceName": operation.resource_name,
            "workspace": operation.workspace,
        }

    async def list_operations(self, request: web.Request) -> web.Response:
        with self.state.lock:
            lifecycle.settle(self.state)
            pending_only = request.query.get("pending") in {"1", "true"}
            return web.json_response(
                [
                    self._operation_json(operation)
                    for operation in self.state.operations.values()
                    if not (pending_only and operation.done)
                ]
            )

    def _pending(self, request: web.Request) -> list[Operation]:
        operation_id = request.match_info.get("operationId")
        operations = self.state.operations
        if operation_id is None:
            return [operation for operation in operations.values() if not operation.done]
        if operation_id not in operations:
            raise AdminError(404, f"no operation {operation_id!r}")
        return [operations[operation_id]]

    async def complete_operations(self, request: web.Request) -> web.Response:
        with self.state.lock:
            done = self._pending(request)
            for operation in done:
                lifecycle.complete(self.state, operation)
            self.state.commit()
            return web.json_response([self._operation_json(operation) for operation in done])

    async def fail_operations(self, request: web.Request) -> web.Response:
        body = await _body(request)
        code = body.get("code", "InternalServerError")
        message = body.get("message", "The operation failed (emulator admin API).")
        with self.state.lock:
            failed = self._pending(request)
            for operation in failed:
                lifecycle.fail(self.state, operation, code, message)
            self.state.commit()
            return web.json_response([self._operation_json(operation) for operation in failed])

    # -- faults, throttling, request log ---------------------------------------------------------------------------

    async def list_faults(self, request: web.Request) -> web.Response:
        return web.json_response(self.state.faults.list())

    async def add_fault(self, request: web.Request) -> web.Response:
        return web.json_response(self.state.faults.add(await _body(request)).to_json(), status=201)

    async def delete_fault(self, request: web.Request) -> web.Response:
        if not self.state.faults.remove(request.match_info["ruleId"]):
            raise AdminError(404, f"no fault rule {request.match_info['ruleId']!r}")
        return web.Response(status=204)

    async def clear_faults(self, request: web.Request) -> web.Response:
        self.state.faults.clear()
        return web.Response(status=204)

    async def get_throttling(self, request: web.Request) -> web.Response:
        return web.json_response(self.state.scenario.source.get("throttling") or {"enabled": False})

    async def put_throttling(self, request: web.Request) -> web.Response:
        body = await _body(request)
        spec = throttling_from_json(body)
        with self.state.lock:
            source = {**self.state.scenario.source, "throttling": body}
            self.state.scenario = dataclasses.replace(self.state.scenario, throttling=spec, source=source)
            self.state.throttle.configure(spec)
        return web.json_response(body)

    async def get_requests(self, request: web.Request) -> web.Response:
        return web.json_response(self.state.requests.snapshot(limit=int(request.query.get("limit", "200"))))

    async def clear_requests(self, request: web.Request) -> web.Response:
        self.state.requests.clear()
        return web.Response(status=204)


def register_admin_routes(app: web.Application, state: EmulatorState) -> None:
    admin = Admin(state)
    api = web.Application(middlewares=[_admin_errors])
    api.router.add_get("/health", admin.health)
    api.router.add_get("/scenario", admin.get_scenario)
    api.router.add_post("/scenario", admin.load_scenario)
    api.router.add_post("/reset", admin.reset)
    api.router.add_put("/timings", admin.put_timings)
    api.router.add_get("/state", admin.get_state)
    api.router.add_post("/marketplace-subscriptions/{action}", admin.subscription_action)
    api.router.add_post("/serverless-endpoints/state", admin.endpoint_state)
    api.router.add_get("/operations", admin.list_operations)
    api.router.add_post("/operations/complete", admin.complete_operations)
    api.router.add_post("/operations/fail", admin.fail_operations)
    api.router.add_post("/operations/{operationId}/complete", admin.complete_operations)
    api.router.add_post("/operations/{operationId}/fail", admin.fail_operations)
    api.router.add_get("/faults", admin.list_faults)
    api.router.add_post("/faults", admin.add_fault)
    api.router.add_delete("/faults", admin.clear_faults)
    api.router.add_delete("/faults/{ruleId}", admin.delete_fault)
    api.router.add_get("/throttling", admin.get_throttling)
    api.router.add_put("/throttling", admin.put_throttling)
    api.router.add_get("/requests", admin.get_requests)
    api.router.add_delete("/requests", admin.clear_requests)
    app.add_subapp(ADMIN_PREFIX, api)
