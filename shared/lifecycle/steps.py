"""What every lifecycle step shares with the provisioning workflow: poll an operation once and come back later
through a delayed message, and retry transient Azure failures with backoff (never sleeping in-process)."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from shared.azure_errors import AzureCallError
from shared.deployments.work import WorkItem
from shared.deployments.workflow import StepFailedError, WorkflowTimings
from shared.ports import (
    AuthorizationPort,
    MachineLearningPort,
    MessageQueuePort,
    Operation,
    RunRepositoryPort,
    SecretStorePort,
    WorkspaceConnectionsPort,
)

LOGGER = logging.getLogger(__name__)


class StepQueue:
    def __init__(self, machine_learning: MachineLearningPort, work_queue: MessageQueuePort, timings: WorkflowTimings):
        self._ml = machine_learning
        self._work = work_queue
        self.timings = timings

    def send(self, item: WorkItem, *, delay_seconds: float = 0) -> None:
        self._work.send(item.to_message(), delay_seconds=delay_seconds)

    def operation_finished(self, item: WorkItem) -> bool:
        """Poll `item`'s operation once; False (a delayed re-poll queued) while it runs; StepFailedError if it
        failed."""
        assert item.operation_url is not None
        progress = self._ml.get_operation(Operation(item.operation_url))
        if not progress.done:
            self.send(item, delay_seconds=progress.retry_after or self.timings.poll_seconds)
            return False
        if not progress.succeeded:
            raise StepFailedError(
                progress.error_code or "OperationFailed", progress.error_message or "Azure reported failure."
            )
        return True

    def wait(self, item: WorkItem, operation: Operation) -> None:
        """Come back when ARM says the operation is worth polling."""
        delay = operation.retry_after or self.timings.poll_seconds
        self.send(item.polling(operation.url), delay_seconds=delay)

    def run(self, item: WorkItem, step: Callable[[], None], fail: Callable[[str, str], None]) -> None:
        """Run `step`; a transient Azure failure is retried later from the queue, anything permanent `fail`s."""
        try:
            step()
        except StepFailedError as failure:
            fail(failure.code, failure.message)
        except AzureCallError as error:
            if error.transient and item.attempt < self.timings.max_transient_attempts:
                delay = self.timings.backoff(item.attempt, error.retry_after)
                LOGGER.info(
                    "run %s step %s: transient %s, retrying in %.0fs", item.run_id, item.step, error.code, delay
                )
                self.send(item.retried(), delay_seconds=delay)
                return
            fail(error.code, error.message)


@dataclass(frozen=True)
class LifecyclePorts:
    """What teardown and key rotation both work with."""

    runs: RunRepositoryPort
    machine_learning: MachineLearningPort
    authorization: AuthorizationPort
    secrets: SecretStorePort
    connections: WorkspaceConnectionsPort
    steps: StepQueue
    events: MessageQueuePort
    clock: Callable[[], datetime]
    new_id: Callable[[], str] = field(default=lambda: str(uuid.uuid4()))


class LifecycleOperation:
    """Base of teardown and rotation: the ports as the private attributes their steps use."""

    def __init__(self, ports: LifecyclePorts) -> None:
        self._runs = ports.runs
        self._ml = ports.machine_learning
        self._authorization = ports.authorization
        self._secrets = ports.secrets
        self._connections = ports.connections
        self._steps = ports.steps
        self._events = ports.events
        self._clock = ports.clock
        self._new_id = ports.new_id
