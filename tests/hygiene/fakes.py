"""In-memory implementations of the ports the hygiene scan uses, plus builders for endpoints, secrets, runs and
deployments.

They behave like the services where it matters to the scan: Key Vault names are case-insensitive and a disabled
secret cannot be read; the document table enforces ETags and pages its queries. Runs and deployments live in the
production RunStore over an in-memory table (tests/deployments/fakes.py), with failures a test can inject.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from shared.adapters.tables import DocumentPage, StoredDocument
from shared.azure_errors import AzureCallError, RecordChangedError, RecordExistsError
from shared.azure_ids import WorkspaceId
from shared.deployment import (
    ConditionType,
    Deployment,
    DeploymentRequester,
    DeploymentSpec,
    DeploymentStatus,
    Phase,
    condition,
    deployment_id_of,
)
from shared.hygiene.settings import HygieneSettings
from shared.key_secrets import KEY_FINGERPRINT_TAG, key_fingerprint
from shared.naming import key_vault_secret_names
from shared.ownership import MANAGED_BY_TAG, MANAGED_BY_VALUE
from shared.ports import Endpoint, EndpointKeys, MarketplaceSubscription, Operation, StoredSecret
from shared.requests import DeploymentRequest
from shared.runs import EndpointInfo, RunError, RunRecord, RunStatus, SecretIds
from tests.deployments.fakes import InMemoryRunRepository

SUBSCRIPTION = "00000000-0000-0000-0000-000000000000"
WS_A = (
    f"/subscriptions/{SUBSCRIPTION}/resourceGroups/rg-demo/providers/Microsoft.MachineLearningServices/workspaces/ws-a"
)
WS_B = (
    f"/subscriptions/{SUBSCRIPTION}/resourceGroups/rg-demo/providers/Microsoft.MachineLearningServices/workspaces/ws-b"
)
MARKETPLACE_MODEL = "azureml://registries/azureml-meta/models/Llama-3.3-70B-Instruct"
DIRECT_MODEL = "azureml://registries/azureml/models/Phi-4"
VAULT = "https://kv-test.vault.azure.net"
T0 = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)


def settings(**changes: Any) -> HygieneSettings:
    """Settings for tests: no waiting between retries, remediation for real unless a test asks for dry run."""
    return replace(HygieneSettings(retry_backoff_seconds=0.0, dry_run=False, max_workers=4), **changes)


class Clock:
    def __init__(self, now: datetime = T0) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


def subscription_id(workspace_id: str, name: str) -> str:
    return f"{workspace_id}/marketplaceSubscriptions/{name}"


def endpoint(
    workspace_id: str,
    name: str,
    *,
    managed: bool = True,
    model_id: str = MARKETPLACE_MODEL,
    subscription: str | None = None,
    endpoint_state: str | None = "Online",
    provisioning_state: str = "Succeeded",
) -> Endpoint:
    return Endpoint(
        id=f"{workspace_id}/serverlessEndpoints/{name}",
        name=name,
        model_id=model_id,
        provisioning_state=provisioning_state,
        endpoint_state=endpoint_state,
        scoring_uri=f"https://{name}.eastus2.models.ai.azure.com",
        marketplace_subscription_id=subscription_id(workspace_id, subscription) if subscription else None,
        tags={MANAGED_BY_TAG: MANAGED_BY_VALUE, "brokerRunId": "run-1"} if managed else {"owner": "someone"},
    )


def marketplace_subscription(workspace_id: str, name: str, status: str = "Subscribed") -> MarketplaceSubscription:
    return MarketplaceSubscription(
        id=subscription_id(workspace_id, name),
        name=name,
        model_id=MARKETPLACE_MODEL,
        status=status,
        provisioning_state="Succeeded",
    )


@dataclass
class FakeMachineLearning:
    """Workspaces by id; `failures` answer a workspace's reads with an error, `throttle` with 429s first."""

    endpoints: dict[str, list[Endpoint]] = field(default_factory=dict)
    subscriptions: dict[str, list[MarketplaceSubscription]] = field(default_factory=dict)
    keys: dict[str, EndpointKeys] = field(default_factory=dict)
    failures: dict[str, AzureCallError] = field(default_factory=dict)
    throttle: dict[str, list[float]] = field(default_factory=dict)
    deleted: list[tuple[str, str]] = field(default_factory=list)
    reads: list[str] = field(default_factory=list)
    # Names of the endpoints whose keys were listed (listKeys), in order.
    key_reads: list[str] = field(default_factory=list)

    def add(self, workspace_id: str, *endpoints: Endpoint) -> None:
        self.endpoints.setdefault(workspace_id, []).extend(endpoints)
        self.subscriptions.setdefault(workspace_id, [])
        for item in endpoints:
            self.keys.setdefault(
                item.id.lower(), EndpointKeys(f"primary-key-{item.name}", f"secondary-key-{item.name}")
            )

    def _read(self, workspace_id: str) -> None:
        self.reads.append(workspace_id)
        waits = self.throttle.get(workspace_id)
        if waits:
            raise AzureCallError(429, "SubscriptionRequestsThrottled", "throttled", retry_after=waits.pop(0))
        if workspace_id in self.failures:
            raise self.failures[workspace_id]
        if workspace_id not in self.endpoints:
            raise AzureCallError(404, "ResourceNotFound", f"workspace {workspace_id} not found")

    def list_endpoints(self, workspace_id: str) -> list[Endpoint]:
        self._read(workspace_id)
        return list(self.endpoints[workspace_id])

    def list_subscriptions(self, workspace_id: str) -> list[MarketplaceSubscription]:
        self._read(workspace_id)
        return list(self.subscriptions.get(workspace_id, []))

    def list_keys(self, workspace_id: str, name: str) -> EndpointKeys:
        self.key_reads.append(name)
        return self.keys[f"{workspace_id}/serverlessEndpoints/{name}".lower()]

    def begin_delete_endpoint(self, workspace_id: str, name: str) -> Operation | None:
        self.deleted.append((workspace_id, name))
        self.endpoints[workspace_id] = [item for item in self.endpoints[workspace_id] if item.name != name]
        return None


@dataclass
class FakeSecretStore:
    secrets: dict[str, tuple[StoredSecret, str]] = field(default_factory=dict)
    failure: AzureCallError | None = None
    disabled: list[str] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)
    # Every version ever written, and the names whose value was read (read_secret), in order.
    versions: list[str] = field(default_factory=list)
    value_reads: list[str] = field(default_factory=list)

    def put(self, name: str, value: str, tags: Mapping[str, str]) -> None:
        version = f"v{len(self.versions) + 1}"
        stored = StoredSecret(
            id=f"{VAULT}/secrets/{name}/{version}",
            name=name,
            version=version,
            enabled=True,
            expires_on=None,
            tags=dict(tags),
            content_type="application/vnd.azure-ai-serverless-endpoint-key",
        )
        self.secrets[name.lower()] = (stored, value)
        self.versions.append(version)

    def put_for(
        self, workspace_id: str, item: Endpoint, keys: EndpointKeys, *, fingerprinted: bool = True
    ) -> tuple[str, str]:
        """The two secrets the broker's workflow writes for an endpoint, tagged the same way (`fingerprinted=False`:
        as the broker wrote them before key fingerprints)."""
        names = key_vault_secret_names(WorkspaceId.parse(workspace_id), item.name)
        for key_type, name, value in (
            ("primary", names.primary, keys.primary),
            ("secondary", names.secondary, keys.secondary),
        ):
            tags = {
                "workspace": workspace_id,
                "endpoint": item.name,
                "model": item.model_id,
                "run": "run-1",
                "keyType": key_type,
                MANAGED_BY_TAG: MANAGED_BY_VALUE,
            }
            if fingerprinted:
                tags[KEY_FINGERPRINT_TAG] = key_fingerprint(value)
            self.put(name, value, tags)
        return names.primary, names.secondary

    def set_secret(self, name: str, value: str, *, content_type: str, tags: Mapping[str, str], expires_on: Any = None):
        self.put(name, value, tags)
        return self.secrets[name.lower()][0]

    def get_secret_value(self, name: str) -> str | None:
        found = self.secrets.get(name.lower())
        if found is None:
            return None
        if not found[0].enabled:
            raise AzureCallError(403, "Forbidden", "Operation get is not allowed on a disabled secret.")
        return found[1]

    def read_secret(self, name: str) -> tuple[StoredSecret, str] | None:
        self.value_reads.append(name)
        found = self.secrets.get(name.lower())
        if found is not None and not found[0].enabled:
            raise AzureCallError(403, "Forbidden", "Operation get is not allowed on a disabled secret.")
        return found

    def set_version_tags(self, name: str, version: str, tags: Mapping[str, str]) -> None:
        stored, value = self.secrets[name.lower()]
        if stored.version == version:
            self.secrets[name.lower()] = (replace(stored, tags=dict(tags)), value)

    def list_secrets(self) -> list[StoredSecret]:
        if self.failure:
            raise self.failure
        return [stored for stored, _ in self.secrets.values()]

    def set_enabled(self, name: str, enabled: bool) -> None:
        stored, value = self.secrets[name.lower()]
        self.secrets[name.lower()] = (replace(stored, enabled=enabled), value)
        self.disabled.append(name)

    def delete_secret(self, name: str) -> None:
        self.secrets.pop(name.lower(), None)
        self.deleted.append(name)


class FakeRuns(InMemoryRunRepository):
    """The run store the scan reads runs and deployments from and writes deployments to. `failure` makes every
    read fail, `deployments_failure` only the deployment listing, `update_failures[id]` that deployment's writes.
    `before_next("save_deployment", action)` interleaves a concurrent writer between a read and its write."""

    def __init__(self) -> None:
        super().__init__()
        self.failure: Exception | None = None
        self.deployments_failure: Exception | None = None
        self.update_failures: dict[str, Exception] = {}

    def add(self, *runs: RunRecord) -> None:
        for record in runs:
            self.create(record)

    def add_deployment(self, *deployments: Deployment) -> None:
        for item in deployments:
            self.create_deployment(item)

    def deployment(self, deployment_id: str) -> Deployment:
        stored = self.get_deployment(deployment_id)
        assert stored is not None, deployment_id
        return stored.deployment

    def list(self, **filters: Any) -> Any:
        if self.failure:
            raise self.failure
        return super().list(**filters)

    def list_deployments(self, **filters: Any) -> Any:
        if self.failure or self.deployments_failure:
            raise self.failure or self.deployments_failure  # type: ignore[misc]
        return super().list_deployments(**filters)

    def update_deployment(self, deployment_id: str, change: Callable[[Deployment], Deployment]) -> Deployment:
        if deployment_id in self.update_failures:
            raise self.update_failures[deployment_id]
        return super().update_deployment(deployment_id, change)


def run(
    run_id: str,
    workspace_id: str,
    *,
    status: RunStatus = RunStatus.SUCCEEDED,
    created: datetime = T0,
    deployment_id: str | None = None,
    ticket: str | None = None,
) -> RunRecord:
    record = RunRecord.new(
        run_id=run_id,
        caller="6a2e4c8f-1b3d-4e5f-a6b7-c8d9e0f1a2b3",
        request=DeploymentRequest(workspace_id=workspace_id, model_id=MARKETPLACE_MODEL, endpoint_name="ep-run"),
        at=created,
        deployment_id=deployment_id,
        ticket=ticket,
    )
    path = {
        RunStatus.ACCEPTED: [],
        RunStatus.PROVISIONING: [RunStatus.VALIDATING, RunStatus.PROVISIONING],
        RunStatus.REJECTED: [RunStatus.REJECTED],
        RunStatus.SUCCEEDED: [
            RunStatus.VALIDATING,
            RunStatus.PROVISIONING,
            RunStatus.STORING_KEYS,
            RunStatus.VERIFYING,
            RunStatus.SUCCEEDED,
        ],
    }[status]
    for step in path:
        extra: dict[str, Any] = {}
        if step is RunStatus.SUCCEEDED:
            extra = {
                "endpoint": EndpointInfo(name="ep-run", id=f"{workspace_id}/serverlessEndpoints/ep-run"),
                "secret_ids": SecretIds(primary=f"{VAULT}/secrets/a", secondary=f"{VAULT}/secrets/b"),
            }
        if step is RunStatus.REJECTED:
            extra = {"error": RunError(code="workspace-not-allowed", message="no")}
        record = record.transition(step, at=created + timedelta(seconds=1), **extra)
    return record


CONDITION_REASONS = {
    ConditionType.SUBSCRIPTION_READY: "Subscribed",
    ConditionType.ENDPOINT_READY: "Provisioned",
    ConditionType.KEYS_STORED: "Stored",
    ConditionType.HEALTHY: "Online",
}


def deployment(
    workspace_id: str,
    item: Endpoint,
    *,
    phase: Phase = Phase.READY,
    keys_run_id: str | None = "run-1",
    current_run_id: str | None = "run-1",
    tickets: tuple[str | None, ...] = ("INC-1",),
    recorded_endpoint: bool = True,
    deployment_id: str | None = None,
    at: datetime = T0 - timedelta(days=1),
) -> Deployment:
    """The Deployment the broker keeps for `item`: its conditions all True (as a Succeeded run leaves them), its
    endpoint recorded, one request per ticket."""
    spec = DeploymentSpec(
        workspace_id=workspace_id, model_id=item.model_id, endpoint_name=item.name, content_safety="Enabled"
    )
    requests = tuple(
        DeploymentRequester(
            caller="6a2e4c8f-1b3d-4e5f-a6b7-c8d9e0f1a2b3",
            ticket=ticket,
            run_id=current_run_id,
            outcome="created" if number == 0 else "ready",
            at=at,
        )
        for number, ticket in enumerate(tickets)
    )
    conditions = tuple(
        condition(kind, "True", CONDITION_REASONS[kind], f"{kind} is True.", at=at) for kind in ConditionType
    )
    return Deployment(
        id=deployment_id or deployment_id_of(spec),
        spec=spec,
        status=DeploymentStatus(
            phase=phase,
            conditions=conditions,
            endpoint=EndpointInfo(name=item.name, id=item.id, scoring_uri=item.scoring_uri)
            if recorded_endpoint
            else None,
            keys_run_id=keys_run_id,
            current_run_id=current_run_id,
        ),
        requests=requests,
        request_count=len(requests),
        created_at=at,
        updated_at=at,
    )


class InMemoryDocumentTable:
    """DocumentTable's contract in memory: conflicts on create, ETag checks on replace, paged equality queries."""

    def __init__(self) -> None:
        self.rows: dict[tuple[str, str], tuple[dict[str, Any], dict[str, Any], str]] = {}
        self._etags = itertools.count(1)

    def create(self, partition: str, key: str, document: Mapping[str, Any], index: Mapping[str, Any]) -> str:
        if (partition, key) in self.rows:
            raise RecordExistsError(f"{partition}/{key}")
        etag = f"etag-{next(self._etags)}"
        self.rows[(partition, key)] = (dict(document), dict(index), etag)
        return etag

    def get(self, partition: str, key: str) -> StoredDocument | None:
        row = self.rows.get((partition, key))
        return StoredDocument(row[0], row[2]) if row else None

    def replace(
        self, partition: str, key: str, document: Mapping[str, Any], index: Mapping[str, Any], etag: str
    ) -> str:
        row = self.rows.get((partition, key))
        if row is None or row[2] != etag:
            raise RecordChangedError(f"{partition}/{key}")
        new_etag = f"etag-{next(self._etags)}"
        self.rows[(partition, key)] = (dict(document), dict(index), new_etag)
        return new_etag

    def delete(self, partition: str, key: str) -> None:
        self.rows.pop((partition, key), None)

    def query(
        self, partition: str, equals: Mapping[str, str], *, page_size: int, continuation_token: str | None = None
    ) -> DocumentPage:
        matches = [
            document
            for (row_partition, _), (document, index, _) in sorted(self.rows.items())
            if row_partition == partition and all(index.get(column) == value for column, value in equals.items())
        ]
        start = int(continuation_token or 0)
        end = start + page_size
        return DocumentPage(matches[start:end], str(end) if end < len(matches) else None)


@dataclass
class RecordingQueue:
    messages: list[dict[str, Any]] = field(default_factory=list)
    failing: bool = False

    def send(self, message: Mapping[str, Any], *, delay_seconds: float = 0) -> None:
        if self.failing:
            raise AzureCallError(503, "ServerBusy", "queue unavailable")
        self.messages.append(dict(message))

    def send_raw(self, text: str) -> None:
        raise NotImplementedError

    def types(self) -> list[str]:
        return [message["type"].rsplit(".", 1)[-1] for message in self.messages]
