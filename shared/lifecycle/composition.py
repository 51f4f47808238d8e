"""Builds the lifecycle service on the deployment service's own adapters (one set per worker process)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from shared.catalog import ModelCatalog
from shared.engine import StepQueue
from shared.lifecycle.rotation import KeyPolicy, KeyRotator
from shared.lifecycle.service import LifecycleService
from shared.lifecycle.settings import LifecycleSettings
from shared.lifecycle.steps import LifecyclePorts
from shared.lifecycle.teardown import Teardown
from shared.ports import (
    AuthorizationPort,
    MachineLearningPort,
    MessageQueuePort,
    RunRepositoryPort,
    SecretStorePort,
    WorkspaceConnectionsPort,
)


def build_lifecycle_service(
    settings: LifecycleSettings,
    *,
    runs: RunRepositoryPort,
    machine_learning: MachineLearningPort,
    authorization: AuthorizationPort,
    secrets: SecretStorePort,
    connections: WorkspaceConnectionsPort,
    steps: StepQueue,
    events: MessageQueuePort,
    catalog: ModelCatalog,
    clock: Callable[[], datetime],
    **port_options: Any,
) -> LifecycleService:
    """`port_options` are LifecyclePorts' own (ids, sleep, monotonic clock), shared with the deployment service."""
    ports = LifecyclePorts(
        runs=runs,
        machine_learning=machine_learning,
        authorization=authorization,
        secrets=secrets,
        connections=connections,
        steps=steps,
        events=events,
        clock=clock,
        **port_options,
    )
    teardown = Teardown(ports, catalog=catalog)
    rotator = KeyRotator(
        ports,
        catalog=catalog,
        policy=KeyPolicy(validity_days=settings.key_validity_days, window_days=settings.rotation_window_days),
    )
    return LifecycleService(runs=runs, teardown=teardown, rotator=rotator)
