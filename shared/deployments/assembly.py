"""The deployment service wired over any implementation of the ports: Azure adapters in the composition root,
in-memory ones in tests, so both exercise the same wiring. Imports no SDK."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import datetime
from typing import Any

from shared.deployments.preflight import PreflightPolicy
from shared.deployments.service import DeploymentService, Queues
from shared.deployments.workflow import Workflow
from shared.engine import StepQueue, StepTimings
from shared.event_delivery import EventPublisher
from shared.lifecycle.composition import build_lifecycle_service
from shared.lifecycle.settings import LifecycleSettings
from shared.pacing import WritePacer
from shared.ports import (
    AuthorizationPort,
    EventTopicPort,
    MachineLearningPort,
    RunRepositoryPort,
    SecretStorePort,
    WorkspaceConnectionsPort,
)
from shared.telemetry import BROKER_TELEMETRY


def assemble_deployment_service(
    *,
    runs: RunRepositoryPort,
    machine_learning: MachineLearningPort,
    authorization: AuthorizationPort,
    secrets: SecretStorePort,
    connections: WorkspaceConnectionsPort,
    queues: Queues,
    policy: PreflightPolicy,
    timings: StepTimings,
    lifecycle_settings: LifecycleSettings,
    clock: Callable[[], datetime],
    pacer: WritePacer | None = None,
    topic: EventTopicPort | None = None,
    **service_options: Any,
) -> DeploymentService:
    """The workflow, the lifecycle service and the deployment service over these ports, on one step engine (whose
    write steps ask `pacer`, the one the ARM adapter feeds); every event goes to the events queue and, when there is
    one, to the Event Grid `topic`; `service_options` are DeploymentService's own keyword options (id source, sleep,
    telemetry)."""
    steps = StepQueue(machine_learning, queues.work, timings, clock=clock, pacer=pacer)
    telemetry = service_options.get("telemetry", BROKER_TELEMETRY)
    publisher = EventPublisher(queues.events, topic, runs=runs, telemetry=telemetry, clock=clock)
    queues = replace(queues, events=publisher)
    workflow = Workflow(
        runs=runs,
        machine_learning=machine_learning,
        secrets=secrets,
        steps=steps,
        events=queues.events,
        catalog=policy.catalog,
        clock=clock,
        key_validity_days=lifecycle_settings.key_validity_days,
        connections=connections,
        telemetry=telemetry,
    )
    lifecycle = build_lifecycle_service(
        lifecycle_settings,
        runs=runs,
        machine_learning=machine_learning,
        authorization=authorization,
        secrets=secrets,
        connections=connections,
        steps=steps,
        events=queues.events,
        catalog=policy.catalog,
        clock=clock,
        **{name: service_options[name] for name in ("new_id", "sleep", "monotonic") if name in service_options},
    )
    return DeploymentService(
        runs=runs,
        machine_learning=machine_learning,
        authorization=authorization,
        secrets=secrets,
        workflow=workflow,
        queues=queues,
        policy=policy,
        clock=clock,
        lifecycle=lifecycle,
        **service_options,
    )
