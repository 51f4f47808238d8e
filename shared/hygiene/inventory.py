"""Collect what every workspace holds (endpoints, Marketplace subscriptions) concurrently, one failure at a time.

Workspaces are read in a bounded thread pool. ARM throttling (429) is waited out as long as Retry-After says, up to
a cap and a number of attempts; other transient failures get a short retry. Whatever still fails makes that one
workspace's inventory an error, which becomes a finding: it never stops the scan or hides the other workspaces.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Protocol, TypeVar

from shared.azure_errors import AzureCallError
from shared.azure_ids import WorkspaceId
from shared.ports import Endpoint, EndpointKeys, MarketplaceSubscription, Operation
from shared.redaction import default_registry

LOGGER = logging.getLogger(__name__)
T = TypeVar("T")
THROTTLED = 429


class ScanMachineLearningPort(Protocol):
    """The part of MachineLearningPort the scan uses (any MachineLearningPort satisfies it)."""

    def list_endpoints(self, workspace_id: str) -> list[Endpoint]: ...
    def list_subscriptions(self, workspace_id: str) -> list[MarketplaceSubscription]: ...
    def list_keys(self, workspace_id: str, name: str) -> EndpointKeys: ...
    def begin_delete_endpoint(self, workspace_id: str, name: str) -> Operation | None: ...


@dataclass(frozen=True)
class CallFailure:
    """Why a read failed, as recorded in findings and the scan report (Azure's status, code and message)."""

    status: int | None
    code: str
    message: str

    @classmethod
    def of(cls, error: Exception) -> CallFailure:
        if isinstance(error, AzureCallError):
            return cls(error.status, error.code, default_registry.redact(error.message))
        return cls(None, type(error).__name__, default_registry.redact(str(error)))

    def as_dict(self) -> dict[str, object]:
        return {"status": self.status, "code": self.code, "message": self.message}


@dataclass(frozen=True)
class WorkspaceInventory:
    workspace_id: str
    endpoints: tuple[Endpoint, ...] = ()
    subscriptions: tuple[MarketplaceSubscription, ...] = ()
    failure: CallFailure | None = None

    @property
    def reachable(self) -> bool:
        return self.failure is None


@dataclass(frozen=True)
class RetryPolicy:
    throttle_retries: int = 4
    transient_retries: int = 1
    backoff_seconds: float = 2.0
    max_retry_after_seconds: float = 60.0


class Retrier:
    """Runs a read, waiting out throttling and retrying transient failures within the policy's bounds."""

    def __init__(self, policy: RetryPolicy, sleep: Callable[[float], None] = time.sleep) -> None:
        self._policy = policy
        self._sleep = sleep

    def call(self, action: Callable[[], T]) -> T:
        throttled = transient = 0
        while True:
            try:
                return action()
            except AzureCallError as error:
                if error.status == THROTTLED and throttled < self._policy.throttle_retries:
                    throttled += 1
                elif error.status != THROTTLED and error.transient and transient < self._policy.transient_retries:
                    transient += 1
                else:
                    raise
                wait = min(error.retry_after or self._policy.backoff_seconds, self._policy.max_retry_after_seconds)
                LOGGER.info("%s (%s); retrying in %.2f s", error.code, error.status, wait)
                self._sleep(wait)


def collect_inventories(
    workspace_ids: Iterable[str],
    machine_learning: ScanMachineLearningPort,
    retrier: Retrier,
    *,
    max_workers: int,
) -> list[WorkspaceInventory]:
    def read(workspace_id: str) -> WorkspaceInventory:
        try:
            WorkspaceId.parse(workspace_id)  # a malformed configured id is reported, never sent to ARM
            endpoints = retrier.call(lambda: machine_learning.list_endpoints(workspace_id))
            subscriptions = retrier.call(lambda: machine_learning.list_subscriptions(workspace_id))
        except Exception as error:  # noqa: BLE001 - any failure is this workspace's finding, never the scan's end
            failure = CallFailure.of(error)
            LOGGER.warning("workspace %s unreachable: %s %s", workspace_id, failure.status, failure.code)
            return WorkspaceInventory(workspace_id, failure=failure)
        return WorkspaceInventory(workspace_id, tuple(endpoints), tuple(subscriptions))

    with ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="hygiene-scan") as pool:
        return list(pool.map(read, workspace_ids))
