"""The deployment service wired over any implementation of the ports: Azure adapters in the composition root,
in-memory ones in tests, so both exercise the same wiring. Imports no SDK."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from shared.deployments.preflight import PreflightPolicy
from shared.deployments.service import DeploymentService, Queues
from shared.deployments.workflow import Workflow, WorkflowTimings
from shared.lifecycle.composition import build_lifecycle_service
from shared.lifecycle.settings import LifecycleSettings
from shared.ports import (
    AuthorizationPort,
    MachineLearningPort,
    RunRepositoryPort,
    SecretStorePort,
    WorkspaceConnectionsPort,
)


def assemble_deployment_service(
    *,
    runs: RunRepositoryPort,
    machine_learning: MachineLearningPort,
    authorization: AuthorizationPort,
    secrets: SecretStorePort,
    connections: WorkspaceConnectionsPort,
    queues: Queues,
    policy: PreflightPolicy,
    timings: WorkflowTimings,
    lifecycle_settings: LifecycleSettings,
    clock: Callable[[], datetime],
    **service_options: Any,
) -> DeploymentService:
    """The workflow, the lifecycle service and the deployment service over these ports; `service_options` are
    DeploymentService's own keyword options (id source, sleep, telemetry)."""
    workflow = Workflow(
        runs=runs,
        machine_learning=machine_learning,
        secrets=secrets,
        work_queue=queues.work,
        events=queues.events,
        catalog=policy.catalog,
        clock=clock,
        timings=timings,
        key_validity_days=lifecycle_settings.key_validity_days,
        connections=connections,
    )
    lifecycle = build_lifecycle_service(
        lifecycle_settings,
        runs=runs,
        machine_learning=machine_learning,
        authorization=authorization,
        secrets=secrets,
        connections=connections,
        work_queue=queues.work,
        events=queues.events,
        policy=policy,
        timings=timings,
        clock=clock,
    )
    return DeploymentService(
        runs=runs,
        machine_learning=machine_learning,
        authorization=authorization,
        workflow=workflow,
        queues=queues,
        policy=policy,
        clock=clock,
        lifecycle=lifecycle,
        **service_options,
    )
