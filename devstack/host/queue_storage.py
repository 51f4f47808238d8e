"""Storage queues for the host: clients per connection setting, message encoding, and queue output bindings."""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
from collections.abc import Iterable, Mapping
from typing import Any

import azure.functions as func
from azure.core.exceptions import ResourceExistsError
from azure.storage.queue.aio import QueueClient

from devstack.host.connections import StorageConnections
from devstack.host.host_config import MessageEncoding
from devstack.host.indexing import QueueOutputSpec

POISON_SUFFIX = "-poison"


class UndecodableMessageError(ValueError):
    """The message text is not valid for the configured messageEncoding."""


class MessageCodec:
    """The host's messageEncoding: base64 text of the bytes (the default), or the text itself."""

    def __init__(self, encoding: MessageEncoding) -> None:
        self.encoding = encoding

    def encode(self, body: bytes) -> str:
        if self.encoding is MessageEncoding.BASE64:
            return base64.b64encode(body).decode("ascii")
        return body.decode("utf-8")

    def decode(self, text: str) -> bytes:
        if self.encoding is MessageEncoding.NONE:
            return text.encode("utf-8")
        try:
            # .NET's base64 decoder skips whitespace; anything else outside the alphabet is an error.
            return base64.b64decode("".join(text.split()), validate=True)
        except (binascii.Error, ValueError) as error:
            raise UndecodableMessageError("the message is not valid base64") from error


class QueueConnections:
    """One async client per storage connection setting (a connection string or identity-based: see
    devstack.host.connections); queues are created on first use, as the host does."""

    def __init__(self, environ: Mapping[str, str]) -> None:
        self._storage = StorageConnections(environ)
        self._queues: dict[tuple[str, str], QueueClient] = {}
        self._created: set[tuple[str, str]] = set()
        self._listeners: dict[tuple[str, str], list[asyncio.Event]] = {}

    async def queue(self, connection: str, queue_name: str) -> QueueClient:
        """The queue's client, creating the queue if this host has not yet made sure it exists."""
        key = (self._storage.key(connection), queue_name)
        if key not in self._queues:
            self._queues[key] = self._storage.queue_service(connection).get_queue_client(queue_name)
        client = self._queues[key]
        if key not in self._created:
            with contextlib.suppress(ResourceExistsError):
                await client.create_queue()
            self._created.add(key)
        return client

    def listen(self, connection: str, queue_name: str, wake: asyncio.Event) -> None:
        """Set `wake` whenever this host writes to the queue, so its listener polls at once (as the host does)."""
        self._listeners.setdefault((self._storage.key(connection), queue_name), []).append(wake)

    def notify(self, connection: str, queue_name: str) -> None:
        for wake in self._listeners.get((self._storage.key(connection), queue_name), []):
            wake.set()

    async def close(self) -> None:
        await self._storage.close()


class QueueOutputs:
    """Writes queue output bindings; the invoker calls it only after the function returned successfully."""

    def __init__(self, connections: QueueConnections, codec: MessageCodec) -> None:
        self._connections = connections
        self._codec = codec

    async def write(self, target: QueueOutputSpec, value: object) -> None:
        bodies = list(queue_output_bodies(value))
        queue = await self._connections.queue(target.connection, target.queue_name)
        for body in bodies:
            await queue.send_message(self._codec.encode(body))
        self._connections.notify(target.connection, target.queue_name)


def queue_output_bodies(value: object) -> Iterable[bytes]:
    # What the worker's queue output converter accepts: str, bytes, QueueMessage, or an iterable of str/QueueMessage.
    single = _single_body(value)
    if single is not None:
        yield single
        return
    if isinstance(value, Iterable) and not isinstance(value, Mapping):
        for item in value:
            body = _single_body(item)
            if body is None:
                raise TypeError(f"a queue output list holds str or QueueMessage items, not {type(item).__name__}")
            yield body
        return
    raise TypeError(f"a queue output takes str, bytes, QueueMessage or a list of them, not {type(value).__name__}")


def _single_body(value: Any) -> bytes | None:
    if isinstance(value, str):
        return value.encode("utf-8")
    if isinstance(value, bytes):
        return value
    if isinstance(value, func.QueueMessage):
        return value.get_body()
    return None
