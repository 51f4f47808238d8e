"""Middlewares every emulator listener shares (ARM, identity, each vault): request log, error envelope, faults.

Order, outermost first: on the ARM listener the correlation echo (so every ARM answer carries the client's ids), the
request log sees every answer (injected faults and throttling included), the error middleware turns ArmError and
crashes into the envelope, the fault middleware acts before any real handling.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import struct
import time
from collections.abc import Awaitable, Callable

from aiohttp import web

from devstack.emulator.errors import ArmError
from devstack.emulator.requestlog import LoggedRequest
from devstack.emulator.state import EmulatorState
from devstack.emulator.tokens import Principal

ADMIN_PREFIX = "/_emulator"
# Set by whichever part authenticates a request; the request log records the principal from it.
PRINCIPAL_KEY = web.RequestKey("principal", Principal)
# The route template a handler served, when the aiohttp route is a catch-all (ARM).
ROUTE_KEY = web.RequestKey("route", str)
RESET_KEY = web.RequestKey("connection_reset", bool)
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
logger = logging.getLogger("devstack.emulator")


def route_name(request: web.Request) -> str:
    """The route template a request matched (ARM routes name themselves), for per-route counts."""
    if ROUTE_KEY in request:
        return request[ROUTE_KEY]
    route = request.match_info.route
    resource = route.resource if route is not None else None
    return resource.canonical if resource is not None else request.path


def request_log_middleware(state: EmulatorState, component: str = "arm"):
    @web.middleware
    async def log_request(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.path.startswith(ADMIN_PREFIX):
            return await handler(request)
        started = time.perf_counter()
        # 0 stands for "no HTTP answer" (an injected connection reset).
        status = 0
        try:
            response = await handler(request)
            status = 0 if request.get(RESET_KEY) else response.status
            return response
        except web.HTTPException as exc:
            status = exc.status
            raise
        finally:
            principal = request.get(PRINCIPAL_KEY)
            state.requests.record(
                LoggedRequest(
                    time=time.time(),
                    method=request.method,
                    path=request.path,
                    route=f"{component}:{route_name(request)}",
                    status=status,
                    duration_ms=round((time.perf_counter() - started) * 1000, 3),
                    principal_id=principal.object_id if principal is not None else None,
                )
            )

    return log_request


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except ArmError as error:
        return error.to_response()
    except web.HTTPException:
        raise
    except Exception as exc:
        logger.exception("unhandled error for %s %s", request.method, request.path)
        return ArmError(500, "InternalServerError", f"The emulator failed: {type(exc).__name__}: {exc}").to_response()


def _reset(request: web.Request) -> None:
    """Drop the connection with a TCP RST (SO_LINGER 0), as a crashed gateway would."""
    transport = request.transport
    if transport is None:
        return
    raw = transport.get_extra_info("socket")
    if raw is not None:
        raw.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    transport.abort()


def fault_middleware(state: EmulatorState):
    @web.middleware
    async def inject_faults(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.path.startswith(ADMIN_PREFIX):
            return await handler(request)
        rule = state.faults.fire(request.method, request.path)
        if rule is None:
            return await handler(request)
        if rule.latency_ms:
            await asyncio.sleep(rule.latency_ms / 1000)
        if rule.reset_connection:
            _reset(request)
            # The transport is gone; aiohttp drops whatever is returned now, and the log records no status.
            request[RESET_KEY] = True
            return web.Response(status=499)
        if rule.status is None:
            return await handler(request)
        raise ArmError(rule.status, rule.code, rule.message, headers=retry_after_headers(rule.retry_after))

    return inject_faults


def retry_after_headers(seconds: float | None) -> dict[str, str]:
    """A fault's delay as ARM sends one (Retry-After, whole seconds), or as retry-after-ms when it is not whole
    seconds (tests that compress time; both the SDKs and the broker read it)."""
    if seconds is None:
        return {}
    if seconds >= 1 and float(seconds).is_integer():
        return {"Retry-After": str(int(seconds))}
    return {"retry-after-ms": str(max(1, round(seconds * 1000)))}


# Correlation headers ARM echoes when the client sends them (it generates x-ms-correlation-request-id otherwise).
ECHOED_HEADERS = ("x-ms-correlation-request-id", "x-ms-client-request-id")


@web.middleware
async def correlation_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Echo a client's correlation ids on every ARM answer, errors and injected faults included."""
    response = await handler(request)
    if request.path.lower().startswith(("/subscriptions/", "/providers/")):
        for name in ECHOED_HEADERS:
            if value := request.headers.get(name):
                response.headers[name] = value
    return response


def response_check_middleware(state: EmulatorState):
    """Hand every ARM answer to the registered checks (none outside tests)."""

    @web.middleware
    async def check_response(request: web.Request, handler: Handler) -> web.StreamResponse:
        response = await handler(request)
        if state.response_checks and request.path.lower().startswith(("/subscriptions/", "/providers/")):
            for check in list(state.response_checks):
                check(request, response)
        return response

    return check_response


def common_middlewares(state: EmulatorState, component: str = "vault") -> list:
    outer = [correlation_middleware, response_check_middleware(state)] if component == "arm" else []
    return [*outer, request_log_middleware(state, component), error_middleware, fault_middleware(state)]
