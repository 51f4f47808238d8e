"""An Event Grid topic (Event Grid Basic, CloudEvents 1.0 input schema) on its own HTTPS listener.

`POST /api/events?api-version=2018-01-01` takes a batch (`application/cloudevents-batch+json; charset=utf-8`, a JSON
array of CloudEvents) as azure-eventgrid's EventGridPublisherClient sends it. The topic disables local auth, as
`infra/modules/eventgrid.bicep` deploys it: only an Entra bearer token for `https://eventgrid.azure.net` is taken, and
its principal needs `Microsoft.EventGrid/events/send/action` (EventGrid Data Sender) at the topic's scope, checked by
the emulator's RBAC like every other data action. Errors come in Event Grid's shape: `{"error": {"code", "message",
"timestamp", "trackingId"}}`. What was published is read back at `GET /_emulator/events` (`DELETE` empties it).
"""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from aiohttp import web

from devstack.emulator.errors import ArmError
from devstack.emulator.middleware import ADMIN_PREFIX
from devstack.emulator.rbac import Authorizer

if TYPE_CHECKING:
    from devstack.emulator.state import EmulatorState

EVENTGRID_AUDIENCE = "https://eventgrid.azure.net"
SEND_ACTION = "Microsoft.EventGrid/events/send/action"
TOPIC_NAME = "broker-events"
API_VERSIONS = ("2018-01-01",)
CLOUD_EVENTS_BATCH = "application/cloudevents-batch+json"
# Event Grid Basic takes at most 1 MB per request.
MAX_BATCH_BYTES = 1024 * 1024
REQUIRED_ATTRIBUTES = ("id", "source", "type", "specversion")
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class TopicError(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message

    def to_response(self) -> web.Response:
        body = {
            "error": {
                "code": self.code,
                "message": self.message,
                "timestamp": datetime.now(UTC).strftime("%m/%d/%Y %I:%M:%S %p"),
                "trackingId": str(uuid.uuid4()),
            }
        }
        return web.json_response(body, status=self.status)


def topic_resource_id(state: EmulatorState) -> str:
    """The topic lives beside the scenario's first vault (or workspace): the broker's resource group."""
    scenario = state.scenario
    home = scenario.vaults[0] if scenario.vaults else scenario.workspaces[0]
    return (
        f"/subscriptions/{home.subscription_id}/resourceGroups/{home.resource_group}"
        f"/providers/Microsoft.EventGrid/topics/{TOPIC_NAME}"
    )


class PublishedEvents:
    """What the topic accepted, in order (kept in memory: a subscriber's view, not a resource to restore)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._events: list[dict[str, Any]] = []

    def add(self, events: list[dict[str, Any]]) -> None:
        with self._lock:
            self._events.extend(events)

    def all(self) -> list[dict[str, Any]]:
        with self._lock:
            return list(self._events)

    def clear(self) -> None:
        with self._lock:
            self._events.clear()


class TopicApi:
    def __init__(self, state: EmulatorState, published: PublishedEvents) -> None:
        self._state = state
        self._published = published
        self._authorizer = Authorizer(state)

    async def publish(self, request: web.Request) -> web.Response:
        scope = topic_resource_id(self._state)
        if "aeg-sas-key" in request.headers or "aeg-sas-token" in request.headers:
            raise TopicError(
                401, "Unauthorized", "Local authentication (keys and SAS tokens) is disabled for this topic."
            )
        try:
            principal = self._state.tokens.verify(request.headers.get("Authorization"), audience=EVENTGRID_AUDIENCE)
        except ArmError as error:
            raise TopicError(401, "Unauthorized", f"The request is not authorized: {error.message}") from None
        try:
            self._authorizer.require_data(principal, SEND_ACTION, scope)
        except ArmError:
            raise TopicError(
                401,
                "Unauthorized",
                f"The principal {principal.object_id} does not have the required permissions to perform the "
                f"operation '{SEND_ACTION}' on resource '{scope}'.",
            ) from None
        version = request.query.get("api-version")
        if version not in API_VERSIONS:
            raise TopicError(400, "BadRequest", f"The api-version '{version}' is invalid. Supported: 2018-01-01.")
        if request.content_type != CLOUD_EVENTS_BATCH:
            raise TopicError(
                400,
                "BadRequest",
                f"This topic takes CloudEvents 1.0 ({CLOUD_EVENTS_BATCH}); the request was {request.content_type}.",
            )
        raw = await request.read()
        if len(raw) > MAX_BATCH_BYTES:
            raise TopicError(413, "RequestEntityTooLarge", "The maximum size of a request is 1 MB.")
        self._published.add(_events_of(raw))
        return web.Response(status=200)

    async def list_published(self, request: web.Request) -> web.Response:
        return web.json_response({"topic": topic_resource_id(self._state), "events": self._published.all()})

    async def clear_published(self, request: web.Request) -> web.Response:
        self._published.clear()
        return web.Response(status=204)


def _events_of(raw: bytes) -> list[dict[str, Any]]:
    try:
        events = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise TopicError(400, "BadRequest", "The request body is not valid JSON.") from None
    if not isinstance(events, list) or not events:
        raise TopicError(400, "BadRequest", "A CloudEvents batch is a non-empty JSON array of events.")
    for index, event in enumerate(events):
        missing = [name for name in REQUIRED_ATTRIBUTES if not isinstance(event, dict) or not event.get(name)]
        if missing:
            raise TopicError(400, "BadRequest", f"Event {index} lacks the required attributes {', '.join(missing)}.")
        if event["specversion"] != "1.0":
            raise TopicError(400, "BadRequest", f"Event {index}: specversion must be 1.0.")
    return events


@web.middleware
async def _errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except TopicError as error:
        return error.to_response()


def create_topic_app(
    state: EmulatorState, published: PublishedEvents, *, middlewares: tuple[Any, ...] = ()
) -> web.Application:
    """The topic's endpoint and its admin read-back; `middlewares` (request log, faults) run first."""
    api = TopicApi(state, published)
    app = web.Application(middlewares=[*middlewares, _errors])
    app.router.add_post("/api/events", api.publish)
    app.router.add_get(f"{ADMIN_PREFIX}/events", api.list_published)
    app.router.add_delete(f"{ADMIN_PREFIX}/events", api.clear_published)
    return app
