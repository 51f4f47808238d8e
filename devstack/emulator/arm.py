"""The ARM front door: routing (case-insensitive, as ARM is), api-version checks, authentication, subscription and
resource-group checks, throttling and RBAC authorization, in that order, for every path under /subscriptions/ or
/providers/.

Resource-provider handlers register ArmRoutes with the RBAC action they need; a route without an action (operation
status) only needs a valid token. Microsoft.Authorization paths are served by their own aiohttp routes, which check
their own permissions; the gate still authenticates, checks scopes and throttles them.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from aiohttp import web

from devstack.emulator.errors import ArmError, request_id_headers
from devstack.emulator.middleware import PRINCIPAL_KEY, ROUTE_KEY
from devstack.emulator.rbac import Authorizer
from devstack.emulator.state import EmulatorState
from devstack.emulator.tokens import ARM_AUDIENCE, Principal

ArmHandler = Callable[[web.Request, dict[str, str]], Awaitable[web.StreamResponse]]
_PARAMETER = re.compile(r"\{(\w+)\}")
_SUBSCRIPTION = re.compile(r"^/subscriptions/(?P<sub>[^/]+)(?:/resourceGroups/(?P<rg>[^/]+))?", re.IGNORECASE)
# Where Machine Learning is offered; only used to phrase the unsupported api-version error like ARM does.
ML_LOCATIONS = (
    "australiaeast, brazilsouth, canadacentral, centralindia, centralus, eastasia, eastus, eastus2, francecentral, "
    "germanywestcentral, japaneast, koreacentral, northcentralus, northeurope, norwayeast, southafricanorth, "
    "southcentralus, southeastasia, swedencentral, switzerlandnorth, uaenorth, uksouth, westcentralus, westeurope, "
    "westus, westus2, westus3"
)


def is_arm_path(path: str) -> bool:
    lowered = path.lower()
    return lowered.startswith("/subscriptions/") or lowered.startswith("/providers/")


def base_url(request: web.Request) -> str:
    return f"{request.scheme}://{request.host}"


@dataclass(frozen=True)
class ArmRoute:
    method: str
    template: str
    handler: ArmHandler
    # The RBAC action the caller needs; None: any valid token will do.
    action: str | None
    # Accepted api-versions; None: any (operation-status URLs carry whatever version started them).
    api_versions: tuple[str, ...] | None
    # The resource type ARM names in the unsupported api-version error, e.g. 'workspaces/serverlessEndpoints'.
    resource_type: str = ""
    # POST actions (listKeys) are authorized on the resource they act on, not on the action's own path.
    scope_strip_segments: int = 0

    @property
    def pattern(self) -> re.Pattern[str]:
        parts, position = [], 0
        for parameter in _PARAMETER.finditer(self.template):
            parts += [re.escape(self.template[position : parameter.start()]), f"(?P<{parameter[1]}>[^/]+)"]
            position = parameter.end()
        parts.append(re.escape(self.template[position:]))
        return re.compile("^" + "".join(parts) + "/?$", re.IGNORECASE)


@dataclass(frozen=True)
class ArmMatch:
    route: ArmRoute
    params: dict[str, str]


class ArmRouter:
    def __init__(self) -> None:
        self._routes: list[tuple[ArmRoute, re.Pattern[str]]] = []

    def add(self, route: ArmRoute) -> None:
        self._routes.append((route, route.pattern))

    def match(self, method: str, path: str) -> ArmMatch | None:
        for route, pattern in self._routes:
            found = pattern.match(path)
            if found and route.method == method.upper():
                return ArmMatch(route, found.groupdict())
        return None

    def path_known(self, path: str) -> bool:
        return any(pattern.match(path) for _, pattern in self._routes)


def check_api_version(request: web.Request, route: ArmRoute, location: str) -> None:
    version = request.query.get("api-version")
    if not version:
        raise ArmError(
            400,
            "MissingApiVersionParameter",
            "The api-version query parameter (?api-version=) is required for all requests.",
        )
    if route.api_versions is not None and version not in route.api_versions:
        raise ArmError(
            400,
            "NoRegisteredProviderFound",
            f"No registered resource provider found for location '{location}' and API version '{version}' for type "
            f"'{route.resource_type}'. The supported api-versions are '{', '.join(route.api_versions)}'. "
            f"The supported locations are '{ML_LOCATIONS}'.",
        )


def check_scope(state: EmulatorState, scope: str) -> None:
    """ARM's own checks before a resource provider sees a request: the subscription and resource group exist."""
    found = _SUBSCRIPTION.match(scope)
    if found is None:
        return
    subscription = state.scenario.subscription(found["sub"])
    if subscription is None:
        raise ArmError(404, "SubscriptionNotFound", f"The subscription '{found['sub']}' could not be found.")
    if found["rg"] and subscription.resource_group(found["rg"]) is None:
        raise ArmError(404, "ResourceGroupNotFound", f"Resource group '{found['rg']}' could not be found.")


def authorization_scope(path: str, route: ArmRoute) -> str:
    segments = [segment for segment in path.split("/") if segment]
    if route.scope_strip_segments:
        segments = segments[: -route.scope_strip_segments]
    return "/" + "/".join(segments)


ARM_MATCH_KEY = web.RequestKey("arm_match", ArmMatch | None)


def arm_gate_middleware(state: EmulatorState, router: ArmRouter, authorizer: Authorizer):
    @web.middleware
    async def arm_gate(request: web.Request, handler: Callable) -> web.StreamResponse:
        if not is_arm_path(request.path):
            return await handler(request)
        match = router.match(request.method, request.path)
        request[ARM_MATCH_KEY] = match
        if match is not None:
            request[ROUTE_KEY] = match.route.template
        principal: Principal = state.tokens.verify(request.headers.get("Authorization"), audience=ARM_AUDIENCE)
        request[PRINCIPAL_KEY] = principal
        found = _SUBSCRIPTION.match(request.path)
        rate_headers: dict[str, str] = {}
        if found is not None:
            # ARM answers for an unknown subscription before it looks at permissions.
            if state.scenario.subscription(found["sub"]) is None:
                check_scope(state, request.path)
            rate_headers = state.throttle.take(found["sub"], request.method, principal.object_id)
        try:
            if match is not None and match.route.action is not None:
                authorizer.require(principal, match.route.action, authorization_scope(request.path, match.route))
            check_scope(state, request.path)
            response = await handler(request)
        except ArmError as error:
            # Refusals past the throttle still report the remaining requests, as ARM's do.
            error.headers = {**rate_headers, **error.headers}
            raise
        for name, value in {**request_id_headers(), **rate_headers}.items():
            response.headers.setdefault(name, value)
        return response

    return arm_gate


def arm_dispatcher(router: ArmRouter, location_of: Callable[[dict[str, str]], str]):
    """The catch-all handler for ARM paths no other aiohttp route claimed."""

    async def dispatch(request: web.Request) -> web.StreamResponse:
        match = request.get(ARM_MATCH_KEY)
        if match is None:
            if router.path_known(request.path):
                raise ArmError(
                    405, "MethodNotAllowed", f"The requested resource does not support http method '{request.method}'."
                )
            raise ArmError(
                404,
                "InvalidResourceType",
                f"The resource type could not be found for path '{request.path}' in the emulator.",
            )
        check_api_version(request, match.route, location_of(match.params))
        return await match.route.handler(request, match.params)

    return dispatch
