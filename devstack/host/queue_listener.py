"""The queue trigger: poll a Storage queue with host.json `extensions.queues` semantics.

Per message: decode (undecodable -> poison at once), invoke, then delete on success, or on failure either make it
visible again after `visibilityTimeout` or, at `maxDequeueCount`, copy it to `<queue>-poison` and delete it.
Messages are received with a long lease that is renewed while the function runs, as the real host does.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass
from datetime import timedelta

from azure.core.exceptions import AzureError
from azure.functions.queue import QueueMessage
from azure.storage.queue import QueueMessage as StoredMessage
from azure.storage.queue.aio import QueueClient

from devstack.host.host_config import MIN_POLLING_INTERVAL, QueueOptions
from devstack.host.indexing import FunctionSpec, QueueTriggerSpec
from devstack.host.invocation import InFlight, Invoker
from devstack.host.queue_storage import POISON_SUFFIX, MessageCodec, QueueConnections, UndecodableMessageError

# The real host receives messages invisible for 10 minutes and renews that lease every half of it.
DEFAULT_LEASE = timedelta(minutes=10)

log = logging.getLogger(__name__)


@dataclass
class _Lease:
    message_id: str
    pop_receipt: str


@dataclass(frozen=True)
class _Disposition:
    """What to do with a message once handled: delete it, release it for a retry, or move `poison_body` to poison."""

    delete: bool
    poison_body: bytes | None = None


_DELETE = _Disposition(delete=True)
_RELEASE = _Disposition(delete=False)


class PollingBackoff:
    """Empty polls wait 100 ms, then twice as long each time up to maxPollingInterval; finding messages resets it."""

    def __init__(self, maximum: timedelta) -> None:
        self._maximum = maximum
        self._next = MIN_POLLING_INTERVAL

    def reset(self) -> None:
        self._next = MIN_POLLING_INTERVAL

    def next_wait(self) -> timedelta:
        wait = self._next
        self._next = min(self._next * 2, self._maximum)
        return wait


class QueueListener:
    def __init__(
        self,
        spec: FunctionSpec,
        *,
        options: QueueOptions,
        connections: QueueConnections,
        codec: MessageCodec,
        invoker: Invoker,
        in_flight: InFlight,
        lease: timedelta = DEFAULT_LEASE,
    ) -> None:
        assert isinstance(spec.trigger, QueueTriggerSpec)
        self._spec = spec
        self._trigger: QueueTriggerSpec = spec.trigger
        self._options = options
        self._connections = connections
        self._codec = codec
        self._invoker = invoker
        self._in_flight = in_flight
        self._lease_seconds = max(1, round(lease.total_seconds()))
        self._stopping = False
        self._unreachable = False
        self._wake = asyncio.Event()
        self._slot_freed = asyncio.Event()
        self._active = 0
        # Running message tasks are referenced here so they cannot be garbage-collected mid-run.
        self._tasks: set[asyncio.Task[None]] = set()
        connections.listen(self._trigger.connection, self._trigger.queue_name, self._wake)

    def stop(self) -> None:
        """Stop fetching; messages already fetched still run to completion."""
        self._stopping = True
        self._wake.set()
        self._slot_freed.set()

    async def run(self) -> None:
        backoff = PollingBackoff(self._options.max_polling_interval)
        while not self._stopping:
            await self._wait_for_capacity()
            if self._stopping:
                break
            # Cleared before polling, so a write that lands during the poll still cuts the next wait short.
            self._wake.clear()
            if await self._poll():
                backoff.reset()
            else:
                await self._sleep(backoff.next_wait())

    async def _poll(self) -> bool:
        """Fetch one batch and start its messages; False when the queue was empty or unreachable."""
        batch = self._options.batch_size
        try:
            queue = await self._connections.queue(self._trigger.connection, self._trigger.queue_name)
            pages = queue.receive_messages(
                messages_per_page=batch, max_messages=batch, visibility_timeout=self._lease_seconds
            )
            messages = [message async for message in pages]
        except AzureError as error:
            if not self._unreachable:
                log.warning("queue %s: polling failed (%s: %s)", self._trigger.queue_name, type(error).__name__, error)
            self._unreachable = True
            return False
        self._unreachable = False
        for message in messages:
            self._start(queue, message)
        return bool(messages)

    async def _wait_for_capacity(self) -> None:
        # A new batch is fetched only when the messages in progress drop to newBatchThreshold or below.
        while self._active > self._options.new_batch_threshold and not self._stopping:
            self._slot_freed.clear()
            await self._slot_freed.wait()

    async def _sleep(self, delay: timedelta) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), delay.total_seconds())

    def _start(self, queue: QueueClient, message: StoredMessage) -> None:
        self._active += 1
        self._in_flight.begin()
        task = asyncio.create_task(self._process(queue, message))
        self._tasks.add(task)
        task.add_done_callback(self._finished)

    def _finished(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("queue %s: handling a message crashed", self._trigger.queue_name, exc_info=task.exception())
        self._active -= 1
        self._in_flight.end()
        self._slot_freed.set()

    async def _process(self, queue: QueueClient, message: StoredMessage) -> None:
        lease = _Lease(message.id, message.pop_receipt or "")
        guard = asyncio.Lock()
        renewal = asyncio.create_task(self._keep_invisible(queue, lease, guard))
        try:
            disposition = await self._handle(message)
        finally:
            # Taking the lock first means a renewal is never cut off between its request and its new receipt.
            async with guard:
                renewal.cancel()
        try:
            await self._complete(queue, lease, disposition)
        except AzureError as error:
            log.warning(
                "queue %s: completing message %s failed (%s); it reappears when its lease ends",
                self._trigger.queue_name,
                message.id,
                type(error).__name__,
            )

    async def _keep_invisible(self, queue: QueueClient, lease: _Lease, guard: asyncio.Lock) -> None:
        while True:
            await asyncio.sleep(self._lease_seconds / 2)
            async with guard:
                try:
                    renewed = await queue.update_message(
                        lease.message_id, lease.pop_receipt, visibility_timeout=self._lease_seconds
                    )
                except AzureError as error:
                    log.warning(
                        "queue %s: renewing the lease of %s failed (%s)",
                        self._trigger.queue_name,
                        lease.message_id,
                        type(error).__name__,
                    )
                    return
                lease.pop_receipt = renewed.pop_receipt or lease.pop_receipt

    async def _handle(self, message: StoredMessage) -> _Disposition:
        name, limit = self._trigger.queue_name, self._options.max_dequeue_count
        try:
            body = self._codec.decode(message.content)
        except UndecodableMessageError:
            log.warning(
                "queue %s: message %s is not %s; moving it to %s%s",
                name,
                message.id,
                self._codec.encoding,
                name,
                POISON_SUFFIX,
            )
            return _Disposition(delete=True, poison_body=message.content.encode("utf-8"))
        if message.dequeue_count > limit:
            # Runs that never completed (the host died mid-run) still counted as dequeues.
            log.warning(
                "queue %s: message %s was dequeued %d times; moving it to %s%s",
                name,
                message.id,
                message.dequeue_count,
                name,
                POISON_SUFFIX,
            )
            return _Disposition(delete=True, poison_body=body)
        trigger_value = QueueMessage(
            id=message.id,
            body=body,
            dequeue_count=message.dequeue_count,
            expiration_time=message.expires_on,
            insertion_time=message.inserted_on,
            time_next_visible=message.next_visible_on,
            pop_receipt=message.pop_receipt,
        )
        outcome = await self._invoker.invoke(
            self._spec, trigger_value, log_fields={"messageId": message.id, "dequeueCount": message.dequeue_count}
        )
        if outcome.succeeded:
            return _DELETE
        if message.dequeue_count >= limit:
            log.warning(
                "queue %s: message %s reached maxDequeueCount %d; moving it to %s%s",
                name,
                message.id,
                limit,
                name,
                POISON_SUFFIX,
            )
            return _Disposition(delete=True, poison_body=body)
        return _RELEASE

    async def _complete(self, queue: QueueClient, lease: _Lease, disposition: _Disposition) -> None:
        if disposition.poison_body is not None:
            poison_name = self._trigger.queue_name + POISON_SUFFIX
            poison = await self._connections.queue(self._trigger.connection, poison_name)
            await poison.send_message(self._codec.encode(disposition.poison_body))
            self._connections.notify(self._trigger.connection, poison_name)
        if disposition.delete:
            await queue.delete_message(lease.message_id, lease.pop_receipt)
        else:
            visibility = round(self._options.visibility_timeout.total_seconds())
            await queue.update_message(lease.message_id, lease.pop_receipt, visibility_timeout=visibility)
