"""A small, fully permitted world for the deployment domain: one project, a tiny catalog, the fakes wired up.

Tests start from `build_world()` (everything allowed) and take away exactly what they want to see refused.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from itertools import count
from typing import Any

from shared.access import DEFAULT_AUDITOR_ROLE, Caller
from shared.catalog import CatalogEntry, ModelCatalog
from shared.deployment import Deployment
from shared.deployments.assembly import assemble_deployment_service
from shared.deployments.preflight import PreflightContext, PreflightPolicy, PreflightResult, run_preflight
from shared.deployments.service import DeploymentService, Queues
from shared.engine import StepTimings, WorkItem
from shared.lifecycle.service import LifecycleService
from shared.lifecycle.settings import LifecycleSettings
from shared.pacing import WritePacer
from shared.policy import ApprovedModelPolicy, TargetAllowList
from shared.requests import DeploymentRequest
from shared.required_permissions import Strictness
from shared.run_outcomes import Submission
from shared.runs import RunRecord
from shared.telemetry import BROKER_TELEMETRY, BrokerTelemetry

from .fakes import (
    FakeAuthorization,
    FakeConnections,
    FakeMachineLearning,
    FakeQueue,
    FakeSecretStore,
    FixedClock,
    InMemoryRunRepository,
    SentMessage,
)

SUBSCRIPTION = "0b1f6471-1bf0-4dda-aec3-111122223333"
OTHER_SUBSCRIPTION = "7d2c0c56-0000-4a1e-9f5c-444455556666"
SUBSCRIPTION_SCOPE = f"/subscriptions/{SUBSCRIPTION}"
RESOURCE_GROUP_SCOPE = f"{SUBSCRIPTION_SCOPE}/resourceGroups/rg-ai"
WORKSPACE_ID = f"{RESOURCE_GROUP_SCOPE}/providers/Microsoft.MachineLearningServices/workspaces/proj-a"
WORKSPACE_LOCATION = "eastus2"

# A Marketplace model and a model sold directly by Azure, both offered in the project's region.
MARKETPLACE_MODEL = "azureml://registries/azureml-cohere/models/Cohere-command-r-08-2024"
MARKETPLACE_REGIONS = ("eastus", "eastus2", "northcentralus")
DIRECT_MODEL = "azureml://registries/azureml-deepseek/models/DeepSeek-R1"
DIRECT_REGIONS = ("eastus2", "swedencentral")
# In the catalog without known regions: the broker lets Azure decide.
UNKNOWN_REGIONS_MODEL = "azureml://registries/azureml-deepseek/models/DeepSeek-V3-0324"

REQUESTER = "3f0c8a61-7e2b-4c1d-9a55-0123456789ab"
BROKER = "5a6b7c8d-0000-4111-8222-333344445555"
# Holds the broker's auditor app role, so it sees every run and deployment: how tests read state back by the API.
AUDITOR = Caller.of("6c5d4e3f-0000-4aaa-8bbb-cccc0000dddd", roles=[DEFAULT_AUDITOR_ROLE])

ML = "Microsoft.MachineLearningServices/workspaces"
OWNER_BLOCK = {"actions": ["*"]}
AI_DEVELOPER_BLOCK = {
    "actions": [f"{ML}/*/read", f"{ML}/*/action", f"{ML}/*/delete", f"{ML}/*/write"],
    "notActions": [f"{ML}/delete", f"{ML}/write", f"{ML}/listKeys/action"],
}
WORKSPACE_ACTIONS = [
    f"{ML}/serverlessEndpoints/read",
    f"{ML}/serverlessEndpoints/write",
    f"{ML}/serverlessEndpoints/delete",
    f"{ML}/serverlessEndpoints/listKeys/action",
    f"{ML}/marketplaceSubscriptions/read",
    f"{ML}/marketplaceSubscriptions/write",
]
SUBSCRIPTION_MARKETPLACE_ACTIONS = [
    "Microsoft.MarketplaceOrdering/agreements/offers/plans/read",
    "Microsoft.MarketplaceOrdering/agreements/offers/plans/sign/action",
    "Microsoft.MarketplaceOrdering/offerTypes/publishers/offers/plans/agreements/read",
    "Microsoft.Marketplace/offerTypes/publishers/offers/plans/agreements/read",
    "Microsoft.SaaS/register/action",
]
RESOURCE_GROUP_SAAS_ACTIONS = ["Microsoft.SaaS/resources/read", "Microsoft.SaaS/resources/write"]

CATALOG = ModelCatalog(
    [
        CatalogEntry(
            model_id=MARKETPLACE_MODEL,
            name="Cohere-command-r-08-2024",
            registry="azureml-cohere",
            family="Command",
            requires_marketplace_subscription=True,
            locations=MARKETPLACE_REGIONS,
        ),
        CatalogEntry(
            model_id=DIRECT_MODEL,
            name="DeepSeek-R1",
            registry="azureml-deepseek",
            family="DeepSeek",
            sold_directly_by_azure=True,
            requires_marketplace_subscription=False,
            locations=DIRECT_REGIONS,
        ),
        CatalogEntry(
            model_id=UNKNOWN_REGIONS_MODEL,
            name="DeepSeek-V3-0324",
            registry="azureml-deepseek",
            requires_marketplace_subscription=False,
        ),
    ]
)


def request(model_id: str = MARKETPLACE_MODEL, **fields: object) -> DeploymentRequest:
    return DeploymentRequest(workspace_id=WORKSPACE_ID, model_id=model_id, **fields)


def policy(
    *,
    registries: str = "azureml-cohere,azureml-deepseek",
    publishers: str = "",
    model_ids: str = "",
    subscriptions: str = SUBSCRIPTION,
    strictness: Strictness = Strictness.ROLE_BASED,
) -> PreflightPolicy:
    return PreflightPolicy(
        catalog=CATALOG,
        approved_models=ApprovedModelPolicy.from_settings(
            registries=registries, publishers=publishers, model_ids=model_ids
        ),
        allowed_targets=TargetAllowList.from_settings(subscription_ids=subscriptions),
        strictness=strictness,
    )


@dataclass
class Waiting:
    """The service's sleep and monotonic clock: time advances only by sleeping, and each sleep runs `on_sleep`."""

    now: float = 0.0
    slept: float = 0.0
    on_sleep: list = field(default_factory=list)

    def sleep(self, seconds: float) -> None:
        self.now += seconds
        self.slept += seconds
        while self.on_sleep:
            self.on_sleep.pop(0)()

    def monotonic(self) -> float:
        return self.now


@dataclass
class World:
    clock: FixedClock
    ml: FakeMachineLearning
    authorization: FakeAuthorization
    secrets: FakeSecretStore
    runs: InMemoryRunRepository
    work: FakeQueue
    events: FakeQueue
    poison: FakeQueue
    connections: FakeConnections
    service: DeploymentService
    policy: PreflightPolicy
    processed: list[SentMessage] = field(default_factory=list)
    waiting: Waiting = field(default_factory=Waiting)

    @property
    def azure_calls(self) -> list[str]:
        return self.ml.call_names + self.authorization.call_names

    def step(self) -> SentMessage:
        """Deliver the oldest work message to the worker (its delay is recorded, not waited for)."""
        message = self.work.take()
        self.processed.append(message)
        self.service.advance(message.text)
        return message

    def deliver(self, item: WorkItem) -> None:
        """Hand the worker a work message the test wrote (a duplicate, a stale or a crafted delivery)."""
        self.service.advance(json.dumps(item.to_message()))

    def step_until(self, step: str) -> None:
        """Deliver work messages until the next one queued is for `step`."""
        for _ in range(60):
            if not self.work.sent:
                break
            if self.work.sent[0].body["step"] == step:
                return
            self.step()
        raise AssertionError(f"no {step} message was queued")

    def submit(self, model_id: str = DIRECT_MODEL, *, caller: str = REQUESTER, **fields: object) -> Submission:
        return self.service.submit(request(model_id, **fields), caller=caller)

    def deployment(self, deployment_id: str | None = None) -> Deployment:
        """The stored deployment `deployment_id`, or the only one there is."""
        if deployment_id is None:
            (only,) = self.runs.all_deployments
            return only
        stored = self.runs.get_deployment(deployment_id)
        assert stored is not None
        return stored.deployment

    def deploy(self, model_id: str = DIRECT_MODEL, **fields: object) -> RunRecord:
        """Request `model_id` and run the work to its end; the run that answered."""
        submission = self.service.submit(request(model_id, **fields), caller=REQUESTER)
        self.drain()
        assert submission.run is not None
        return self.run(submission.run.id)

    def run(self, run_id: str) -> RunRecord:
        stored = self.runs.get(run_id)
        assert stored is not None
        return stored.run

    def drain(self, limit: int = 60) -> None:
        for _ in range(limit):
            if not self.work.sent:
                return
            self.step()
        raise AssertionError(f"the workflow did not settle within {limit} steps")

    @property
    def lifecycle(self) -> LifecycleService:
        service = self.service.lifecycle
        assert isinstance(service, LifecycleService)
        return service

    def preflight(self, deployment: DeploymentRequest, *, caller: str = REQUESTER) -> PreflightResult:
        context = PreflightContext(
            request=deployment,
            caller=caller,
            policy=self.policy,
            machine_learning=self.ml,
            authorization=self.authorization,
        )
        return run_preflight(context)

    def event_types(self) -> list[str]:
        return [body["type"].rsplit(".", 1)[-1] for body in self.events.bodies]

    def everything_written(self) -> str:
        """All the broker wrote outside Key Vault: run documents, events, work and poison messages."""
        queues = (self.work, self.events, self.poison)
        sent = [message.text for queue in queues for message in queue.sent] + self.poison.raw
        return "\n".join([self.runs.stored_text(), *sent, *(message.text for message in self.processed)])


def build_world(
    *,
    preflight_policy: PreflightPolicy | None = None,
    timings: StepTimings | None = None,
    location: str = WORKSPACE_LOCATION,
    broker_blocks: tuple[dict[str, list[str]], ...] = (OWNER_BLOCK,),
    broker_roles: tuple[str, ...] = ("Owner",),
    broker_scope: str = SUBSCRIPTION_SCOPE,
    lifecycle_settings: LifecycleSettings | None = None,
    ml: FakeMachineLearning | None = None,
    telemetry: BrokerTelemetry = BROKER_TELEMETRY,
    pacer: WritePacer | None = None,
    **service_options: Any,
) -> World:
    """The world, wired as production wires it; the broker's identity holds `broker_blocks` and `broker_roles` at
    `broker_scope`; `service_options` are DeploymentService's own (approvals, roles)."""
    clock = FixedClock()
    ml = ml or FakeMachineLearning()
    ml.add_workspace(WORKSPACE_ID, location)
    authorization = FakeAuthorization(BROKER)
    authorization.grant_own(broker_scope, *broker_blocks)
    authorization.grant(BROKER, broker_scope, permissions=broker_blocks, roles=broker_roles)
    authorization.grant(REQUESTER, WORKSPACE_ID, permissions=[AI_DEVELOPER_BLOCK], roles=["Azure AI Developer"])
    secrets, runs, connections = FakeSecretStore(), InMemoryRunRepository(), FakeConnections()
    work, events, poison = FakeQueue(), FakeQueue(), FakeQueue()
    the_policy = preflight_policy or policy()
    ids = count(1)
    waiting = Waiting()
    service = assemble_deployment_service(
        runs=runs,
        machine_learning=ml,
        authorization=authorization,
        secrets=secrets,
        connections=connections,
        queues=Queues(work=work, events=events, requests_poison=poison),
        policy=the_policy,
        timings=timings or StepTimings(),
        lifecycle_settings=lifecycle_settings or LifecycleSettings(hubs=the_policy.hubs),
        clock=clock,
        pacer=pacer,
        new_id=lambda: f"run-{next(ids):04d}",
        sleep=waiting.sleep,
        monotonic=waiting.monotonic,
        telemetry=telemetry,
        **service_options,
    )
    return World(
        clock, ml, authorization, secrets, runs, work, events, poison, connections, service, the_policy, waiting=waiting
    )
