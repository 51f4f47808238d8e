"""The ports teardown and key rotation share, over the step engine (shared/engine.py)."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from shared.engine import StepQueue
from shared.ports import (
    AuthorizationPort,
    MachineLearningPort,
    MessageQueuePort,
    RunRepositoryPort,
    SecretStorePort,
    WorkspaceConnectionsPort,
)


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
    sleep: Callable[[float], None] = time.sleep
    monotonic: Callable[[], float] = time.monotonic


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
        self._sleep = ports.sleep
        self._monotonic = ports.monotonic
