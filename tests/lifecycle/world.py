"""The deployment world of tests/deployments, with teardown, rotation and cross-region connections wired in.

Built from the deployment domain's in-memory ports (tests/deployments/fakes.py) plus an in-memory connections port.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from itertools import count

from shared.azure_ids import WorkspaceId
from shared.cross_region import CrossRegionHubs, Hub
from shared.deployments.assembly import assemble_deployment_service
from shared.deployments.service import DeploymentService, Queues
from shared.deployments.workflow import WorkflowTimings
from shared.lifecycle.service import LifecycleService
from shared.lifecycle.settings import LifecycleSettings
from shared.ports import WorkspaceConnection
from shared.requests import DeploymentRequest
from shared.runs import RunRecord
from tests.deployments.fakes import (
    FakeAuthorization,
    FakeMachineLearning,
    FakeQueue,
    FakeSecretStore,
    FixedClock,
    InMemoryRunRepository,
    SentMessage,
)
from tests.deployments.scenario import (
    AI_DEVELOPER_BLOCK,
    BROKER,
    DIRECT_MODEL,
    OWNER_BLOCK,
    REQUESTER,
    RESOURCE_GROUP_SCOPE,
    SUBSCRIPTION_SCOPE,
    WORKSPACE_ID,
    WORKSPACE_LOCATION,
    Waiting,
    policy,
)

HUB_ID = f"{RESOURCE_GROUP_SCOPE}/providers/Microsoft.MachineLearningServices/workspaces/hub-eus2"
VALIDITY_DAYS = 90
WINDOW_DAYS = 30


@dataclass
class StoredConnection:
    connection: WorkspaceConnection
    key: str


class FakeConnections:
    """Workspace connections by (workspace, name), keeping the key ARM would keep (and never return)."""

    def __init__(self) -> None:
        self.connections: dict[tuple[str, str], StoredConnection] = {}

    def put_api_key_connection(
        self, workspace_id: str, name: str, *, category: str, target: str, key: str, metadata: Mapping[str, str]
    ) -> WorkspaceConnection:
        connection = WorkspaceConnection(f"{workspace_id}/connections/{name}", name, category, target, dict(metadata))
        self.connections[(workspace_id.lower(), name.lower())] = StoredConnection(connection, key)
        return connection

    def get_connection(self, workspace_id: str, name: str) -> WorkspaceConnection | None:
        stored = self.connections.get((workspace_id.lower(), name.lower()))
        return stored.connection if stored else None

    def delete_connection(self, workspace_id: str, name: str) -> None:
        self.connections.pop((workspace_id.lower(), name.lower()), None)


@dataclass
class LifecycleWorld:
    clock: FixedClock
    ml: FakeMachineLearning
    authorization: FakeAuthorization
    secrets: FakeSecretStore
    runs: InMemoryRunRepository
    work: FakeQueue
    events: FakeQueue
    connections: FakeConnections
    service: DeploymentService
    lifecycle: LifecycleService
    waiting: Waiting = field(default_factory=Waiting)
    processed: list[SentMessage] = field(default_factory=list)

    def drain(self, limit: int = 60) -> None:
        """Deliver work messages until none is left (their delays are recorded, not waited for)."""
        for _ in range(limit):
            if not self.work.sent:
                return
            message = self.work.take()
            self.processed.append(message)
            self.service.advance(message.text)
        raise AssertionError(f"the work did not settle within {limit} steps")

    def deploy(self, model_id: str = DIRECT_MODEL, **fields: object) -> RunRecord:
        submission = self.service.submit(
            DeploymentRequest(workspace_id=WORKSPACE_ID, model_id=model_id, **fields), caller=REQUESTER
        )
        self.drain()
        return self.run(submission.run.id)

    def run(self, run_id: str) -> RunRecord:
        stored = self.runs.get(run_id)
        assert stored is not None
        return stored.run

    def event_types(self) -> list[str]:
        return [body["type"].rsplit(".", 1)[-1] for body in self.events.bodies]


def build(
    *, location: str = WORKSPACE_LOCATION, hub: bool = False, ml: FakeMachineLearning | None = None
) -> LifecycleWorld:
    clock = FixedClock()
    ml = ml or FakeMachineLearning()
    ml.add_workspace(WORKSPACE_ID, location)
    authorization = FakeAuthorization(BROKER)
    authorization.grant_own(SUBSCRIPTION_SCOPE, OWNER_BLOCK)
    authorization.grant(BROKER, SUBSCRIPTION_SCOPE, permissions=[OWNER_BLOCK], roles=["Owner"])
    authorization.grant(REQUESTER, WORKSPACE_ID, permissions=[AI_DEVELOPER_BLOCK], roles=["Azure AI Developer"])
    hubs = CrossRegionHubs()
    if hub:
        ml.add_workspace(HUB_ID, "eastus2")
        hubs = CrossRegionHubs([Hub("eastus2", WorkspaceId.parse(HUB_ID))])
    the_policy = replace(policy(), hubs=hubs)
    secrets, runs, connections = FakeSecretStore(), InMemoryRunRepository(), FakeConnections()
    work, events = FakeQueue(), FakeQueue()
    settings = LifecycleSettings(key_validity_days=VALIDITY_DAYS, rotation_window_days=WINDOW_DAYS, hubs=hubs)
    ids = count(1)
    waiting = Waiting()
    service = assemble_deployment_service(
        runs=runs,
        machine_learning=ml,
        authorization=authorization,
        secrets=secrets,
        connections=connections,
        queues=Queues(work=work, events=events, requests_poison=FakeQueue()),
        policy=the_policy,
        timings=WorkflowTimings(),
        lifecycle_settings=settings,
        clock=clock,
        new_id=lambda: f"run-{next(ids):04d}",
        sleep=waiting.sleep,
        monotonic=waiting.monotonic,
    )
    lifecycle = service.lifecycle
    return LifecycleWorld(
        clock, ml, authorization, secrets, runs, work, events, connections, service, lifecycle, waiting
    )
