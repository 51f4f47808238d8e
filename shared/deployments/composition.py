"""Builds the deployment service from settings, once per worker process (the composition root)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from functools import cache

from azure.core.credentials import TokenCredential

from shared.access import AppRole, BrokerRoles
from shared.adapters.arm import ArmClient
from shared.adapters.authorization import AuthorizationAdapter
from shared.adapters.connections import WorkspaceConnectionsAdapter
from shared.adapters.event_grid import EventGridTopic
from shared.adapters.identity import broker_credential
from shared.adapters.keyvault import KeyVaultAdapter
from shared.adapters.machine_learning import MachineLearningAdapter
from shared.adapters.monitor import configure_telemetry
from shared.adapters.queues import JsonQueue
from shared.adapters.run_store import RunStore
from shared.adapters.tables import DocumentTable
from shared.approvals import ApprovalPolicy
from shared.catalog import ModelCatalog
from shared.config import Settings
from shared.deployments.assembly import assemble_deployment_service
from shared.deployments.preflight import PreflightPolicy
from shared.deployments.service import DeploymentService, Queues
from shared.engine import StepTimings
from shared.lifecycle.service import LifecycleService
from shared.lifecycle.settings import LifecycleSettings
from shared.pacing import WritePacer
from shared.policy import ApprovedModelPolicy, TargetAllowList, split_setting
from shared.required_permissions import Strictness


def utc_now() -> datetime:
    return datetime.now(UTC)


@cache
def deployment_service() -> DeploymentService:
    return build_deployment_service(Settings.from_env())


def lifecycle_service() -> LifecycleService:
    """The process's lifecycle service: the one the deployment service hands teardown and rotation work to."""
    service = deployment_service().lifecycle
    assert isinstance(service, LifecycleService), "the composition root always wires the lifecycle service"
    return service


def build_deployment_service(
    settings: Settings, lifecycle_settings: LifecycleSettings | None = None
) -> DeploymentService:
    lifecycle_settings = lifecycle_settings or LifecycleSettings.from_env()
    if not settings.key_vault_url:
        raise ValueError("Set AZURE_KEYVAULT_URL: endpoint keys are stored only in Key Vault.")
    configure_telemetry()
    credential = broker_credential()
    # One pacer per process, fed by every ARM answer and asked by every write step.
    pacer = WritePacer()
    arm = ArmClient(settings.arm_url, credential, pacer=pacer)
    machine_learning = MachineLearningAdapter(arm)
    runs = RunStore(DocumentTable.open(settings.storage, settings.runs_table))
    queues = Queues(
        work=JsonQueue.open(settings.storage, settings.work_queue),
        events=JsonQueue.open(settings.storage, settings.events_queue),
        requests_poison=JsonQueue.open(settings.storage, f"{settings.requests_queue}-poison"),
    )
    policy = PreflightPolicy(
        catalog=ModelCatalog.load(settings.catalog_overrides_path),
        approved_models=ApprovedModelPolicy.from_settings(
            registries=settings.approved_registries,
            publishers=settings.approved_publishers,
            model_ids=settings.approved_models,
        ),
        allowed_targets=TargetAllowList.from_settings(
            subscription_ids=settings.allowed_subscriptions,
            resource_groups=settings.allowed_resource_groups,
            workspace_ids=settings.allowed_workspaces,
        ),
        strictness=Strictness.from_setting(settings.permission_strictness),
        hubs=lifecycle_settings.hubs,
        allow_uncatalogued_models=settings.allow_uncatalogued_models,
    )
    secrets = KeyVaultAdapter(settings.key_vault_url, credential)
    connections = WorkspaceConnectionsAdapter(arm)
    authorization = AuthorizationAdapter(
        arm,
        credential,
        arm_url=settings.arm_url,
        access_ttl_seconds=settings.access_cache_seconds,
        role_definition_ttl_seconds=settings.role_definition_cache_seconds,
    )
    return assemble_deployment_service(
        runs=runs,
        machine_learning=machine_learning,
        authorization=authorization,
        secrets=secrets,
        connections=connections,
        queues=queues,
        policy=policy,
        timings=StepTimings(
            poll_seconds=settings.poll_seconds,
            poll_max_seconds=settings.poll_max_seconds,
            poll_age_fraction=settings.poll_age_fraction,
        ),
        lifecycle_settings=lifecycle_settings,
        clock=utc_now,
        pacer=pacer,
        approvals=approval_policy(settings),
        roles=broker_roles(settings),
        topic=event_topic(settings, credential),
    )


def event_topic(settings: Settings, credential: TokenCredential) -> EventGridTopic | None:
    """The Event Grid topic deployment events also go to, when EVENT_GRID_TOPIC_ENDPOINT names one."""
    endpoint = settings.event_grid_topic_endpoint
    return EventGridTopic(endpoint, credential) if endpoint else None


def approval_policy(settings: Settings) -> ApprovalPolicy:
    return ApprovalPolicy.from_settings(
        enabled=settings.approvals_enabled,
        marketplace=settings.approval_marketplace,
        publishers=settings.approval_publishers,
        model_ids=settings.approval_models,
        workspace_ids=settings.approval_workspaces,
        subscription_ids=settings.approval_subscriptions,
        expiry=timedelta(hours=settings.approval_expiry_hours),
    )


def broker_roles(settings: Settings) -> BrokerRoles:
    return BrokerRoles(
        approver=AppRole(settings.approver_role, frozenset(_object_ids(settings.approver_groups))),
        auditor=AppRole(settings.auditor_role, frozenset(_object_ids(settings.auditor_groups))),
    )


def _object_ids(setting: str) -> list[str]:
    return [item.lower() for item in split_setting(setting)]
