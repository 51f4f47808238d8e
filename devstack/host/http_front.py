"""HTTP front door: function routes under routePrefix with keys and methods, plus the admin endpoints."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from importlib import metadata
from typing import Any

import azure.functions as func
from aiohttp import web
from multidict import CIMultiDict

from devstack.host.easy_auth import EasyAuth
from devstack.host.indexing import FunctionSpec, HttpTriggerSpec
from devstack.host.invocation import InFlight, Invoker
from devstack.host.keys import AuthLevel, HostKeys, presented_key
from devstack.host.routing import Router, RouteTemplate

HOST_VERSION = f"devstack (azure-functions {metadata.version('azure-functions')})"
ADMIN_PREFIX = "/admin"
# Hop-by-hop or length headers are the server's to write.
_SERVER_HEADERS = {"content-length", "transfer-encoding", "connection"}

AdminInvoke = Callable[[FunctionSpec, str], None]


class HttpFront:
    def __init__(
        self,
        *,
        functions: list[FunctionSpec],
        route_prefix: str,
        keys: HostKeys,
        enforce_keys: bool,
        invoker: Invoker,
        in_flight: InFlight,
        admin_invoke: AdminInvoke,
        easy_auth: EasyAuth | None = None,
    ) -> None:
        self._keys = keys
        self._easy_auth = easy_auth
        self._enforce_keys = enforce_keys
        self._invoker = invoker
        self._in_flight = in_flight
        self._admin_invoke = admin_invoke
        self._functions = {spec.name.lower(): spec for spec in functions}
        self._started = time.monotonic()
        self.router: Router[FunctionSpec] = Router()
        for spec in functions:
            if isinstance(spec.trigger, HttpTriggerSpec):
                template = RouteTemplate(f"{route_prefix}/{spec.trigger.route}" if route_prefix else spec.trigger.route)
                self.router.add(template, spec.trigger.methods, spec)

    def application(self) -> web.Application:
        app = web.Application(client_max_size=100 * 1024 * 1024)
        app.router.add_route("*", "/{path:.*}", self._dispatch)
        return app

    async def _dispatch(self, request: web.Request) -> web.StreamResponse:
        path = request.path
        if path.lower() == ADMIN_PREFIX or path.lower().startswith(ADMIN_PREFIX + "/"):
            return await self._admin(request)
        headers = _joined_headers(request)
        if self._easy_auth is not None:
            # App Service authenticates in front of the Functions host: before routes and keys are looked at.
            decision = await self._easy_auth.decide(path, headers)
            if not decision.passes:
                return web.Response(status=decision.status, body=decision.body.encode(), headers=decision.headers)
            headers = decision.headers
        resolution = self.router.resolve(path, request.method)
        spec = resolution.target
        if spec is None:
            if resolution.allowed_methods:
                return web.Response(status=405, headers={"Allow": ", ".join(sorted(resolution.allowed_methods))})
            return web.Response(status=404)
        assert isinstance(spec.trigger, HttpTriggerSpec)
        if not self._authorized(request, spec.trigger.auth_level):
            return web.Response(status=401)
        http_request = func.HttpRequest(
            method=request.method,
            url=str(request.url),
            headers=headers,
            params={key: ",".join(request.query.getall(key)) for key in request.query},
            route_params=resolution.route_params,
            body=await request.read(),
        )
        with self._in_flight:
            outcome = await self._invoker.invoke(
                spec,
                http_request,
                log_fields={"method": request.method},
                trace_parent=request.headers.get("traceparent"),
                convert_result=to_web_response,
            )
        # The host answers a failed invocation with a bare 500.
        return outcome.result if outcome.succeeded else web.Response(status=500)

    async def _admin(self, request: web.Request) -> web.Response:
        if not self._authorized(request, AuthLevel.ADMIN):
            return web.Response(status=401)
        parts = request.path.strip("/").split("/")
        if request.method == "GET" and [part.lower() for part in parts] == ["admin", "host", "status"]:
            return web.json_response(self._status())
        if request.method == "POST" and len(parts) == 3 and parts[1].lower() == "functions":
            return await self._invoke_by_admin(request, parts[2])
        return web.Response(status=404)

    async def _invoke_by_admin(self, request: web.Request, name: str) -> web.Response:
        spec = self._functions.get(name.lower())
        if spec is None:
            return web.Response(status=404)
        if isinstance(spec.trigger, HttpTriggerSpec):
            return web.json_response({"error": "HTTP functions are invoked through their route"}, status=400)
        body = await request.read()
        try:
            document = json.loads(body) if body.strip() else {}
        except ValueError:
            return web.json_response({"error": 'the body must be JSON: {"input": "..."}'}, status=400)
        if not isinstance(document, dict) or not isinstance(document.get("input", ""), str):
            return web.json_response({"error": 'the body must be JSON: {"input": "..."}'}, status=400)
        self._admin_invoke(spec, document.get("input", ""))
        return web.Response(status=202)

    def _authorized(self, request: web.Request, level: AuthLevel) -> bool:
        if not self._enforce_keys:
            return True
        return self._keys.authorizes(level, presented_key(request.headers, request.query))

    def _status(self) -> dict[str, Any]:
        return {
            "state": "Running",
            "version": HOST_VERSION,
            "processUptime": round((time.monotonic() - self._started) * 1000),
        }


def to_web_response(value: object) -> web.Response:
    """Turn a function's HTTP result into a response: HttpResponse or str, as the Python worker accepts."""
    if value is None:
        return web.Response(status=204)
    if isinstance(value, str):
        return web.Response(body=value.encode("utf-8"), headers={"Content-Type": "text/plain; charset=utf-8"})
    if not isinstance(value, func.HttpResponse):
        raise TypeError(f"an HTTP function returns HttpResponse or str, not {type(value).__name__}")
    headers: CIMultiDict[str] = CIMultiDict()
    for name, header_value in value.headers.items():
        if name.lower() not in _SERVER_HEADERS:
            headers.add(name, header_value)
    if "Content-Type" not in headers:
        # The worker adds the charset only to text/* types.
        text = value.mimetype.startswith("text/")
        headers["Content-Type"] = f"{value.mimetype}; charset={value.charset}" if text else value.mimetype
    return web.Response(status=value.status_code, body=value.get_body(), headers=headers)


def _joined_headers(request: web.Request) -> dict[str, str]:
    headers: dict[str, str] = {}
    for name, value in request.headers.items():
        key = name.lower()
        headers[key] = f"{headers[key]}, {value}" if key in headers else value
    return headers
