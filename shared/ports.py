"""What the domain needs from Azure, as typed protocols; adapters in shared/adapters implement them.

Domain code (preflight, workflow, hygiene) depends only on these, so it imports no SDK and its unit tests can use
plain in-memory implementations while integration tests run the real adapters against the emulator.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from shared.deployment import Deployment
    from shared.runs import RunRecord, RunRequester


@dataclass(frozen=True)
class Workspace:
    id: str
    name: str
    location: str
    kind: str | None = None


@dataclass(frozen=True)
class Endpoint:
    id: str
    name: str
    model_id: str
    provisioning_state: str
    endpoint_state: str | None
    scoring_uri: str | None
    marketplace_subscription_id: str | None
    tags: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class MarketplaceSubscription:
    id: str
    name: str
    model_id: str
    status: str | None
    provisioning_state: str | None


@dataclass(frozen=True)
class EndpointKeys:
    primary: str
    secondary: str

    def __repr__(self) -> str:
        # Keys must never reach logs, tracebacks or exception texts.
        return "EndpointKeys(primary=***, secondary=***)"

    __str__ = __repr__


@dataclass(frozen=True)
class Operation:
    """A long-running operation Azure accepted; poll `url` no sooner than `retry_after` seconds."""

    url: str
    retry_after: float | None = None


@dataclass(frozen=True)
class OperationProgress:
    done: bool
    succeeded: bool
    error_code: str | None = None
    error_message: str | None = None
    retry_after: float | None = None


@dataclass(frozen=True)
class PrincipalAccess:
    """What a principal may do at a scope: REST-shaped permission blocks, deny blocks and the role names held."""

    permissions: Sequence[Mapping[str, Sequence[str]]]
    denials: Sequence[Mapping[str, Sequence[str]]]
    role_names: frozenset[str]
    # Assembled (partly) from reads an adapter kept: a refusal is read again with fresh=True before it is given.
    cached: bool = False


@dataclass(frozen=True)
class StoredSecret:
    id: str
    name: str
    version: str
    enabled: bool
    expires_on: datetime | None
    tags: Mapping[str, str]
    content_type: str | None


@dataclass(frozen=True)
class WorkspaceConnection:
    """A workspace connection as ARM describes it (never with its credentials)."""

    id: str
    name: str
    category: str | None
    target: str | None
    metadata: Mapping[str, str] = field(default_factory=dict)


class MachineLearningPort(Protocol):
    def get_workspace(self, workspace_id: str) -> Workspace: ...
    def list_endpoints(self, workspace_id: str) -> list[Endpoint]: ...
    def get_endpoint(self, workspace_id: str, name: str) -> Endpoint | None: ...
    def begin_create_endpoint(
        self,
        workspace_id: str,
        name: str,
        *,
        model_id: str,
        location: str,
        content_safety: str,
        tags: Mapping[str, str],
    ) -> Operation | None: ...
    def begin_delete_endpoint(self, workspace_id: str, name: str) -> Operation | None: ...
    def list_keys(self, workspace_id: str, name: str) -> EndpointKeys: ...
    def regenerate_key(self, workspace_id: str, name: str, key_type: str) -> Operation | None: ...
    def get_subscription(self, workspace_id: str, name: str) -> MarketplaceSubscription | None: ...
    def list_subscriptions(self, workspace_id: str) -> list[MarketplaceSubscription]: ...
    def begin_create_subscription(self, workspace_id: str, name: str, *, model_id: str) -> Operation | None: ...
    def begin_delete_subscription(self, workspace_id: str, name: str) -> Operation | None: ...
    def get_operation(self, operation: Operation) -> OperationProgress: ...


class WorkspaceConnectionsPort(Protocol):
    """Workspace connections: how a project reaches an endpoint that lives in another project."""

    def put_api_key_connection(
        self, workspace_id: str, name: str, *, category: str, target: str, key: str, metadata: Mapping[str, str]
    ) -> WorkspaceConnection: ...
    def get_connection(self, workspace_id: str, name: str) -> WorkspaceConnection | None: ...
    def delete_connection(self, workspace_id: str, name: str) -> None: ...


class AuthorizationPort(Protocol):
    def own_principal_id(self) -> str: ...
    def own_permissions(self, scope: str) -> list[Mapping[str, Sequence[str]]]: ...
    def principal_access(self, principal_id: str, scope: str, *, fresh: bool = False) -> PrincipalAccess: ...
    def assigned_role_ids(self, principal_id: str, scope: str) -> frozenset[str]:
        """The role definition GUIDs assigned to the principal (or its groups) at `scope` or above."""
        ...


class SecretStorePort(Protocol):
    def set_secret(
        self,
        name: str,
        value: str,
        *,
        content_type: str,
        tags: Mapping[str, str],
        expires_on: datetime | None = None,
    ) -> StoredSecret: ...
    def get_secret_value(self, name: str) -> str | None: ...
    def get_secret(self, name: str) -> StoredSecret | None: ...
    def list_secrets(self) -> list[StoredSecret]: ...
    def set_enabled(self, name: str, enabled: bool) -> None: ...
    def delete_secret(self, name: str) -> None: ...


class MessageQueuePort(Protocol):
    def send(self, message: Mapping[str, Any], *, delay_seconds: float = 0) -> None: ...
    def send_raw(self, text: str) -> None: ...


class EventTopicPort(Protocol):
    """An Event Grid topic in the CloudEvents 1.0 schema (shared/adapters/event_grid.py), where deployment events go
    besides their queue (shared/event_delivery.py)."""

    def publish(self, events: Sequence[Mapping[str, Any]]) -> None:
        """Publish CloudEvents 1.0 JSON documents as one batch; raises when the topic does not take them."""
        ...


class RunRepositoryPort(Protocol):
    """Deployments and runs with optimistic concurrency, the idempotency claims and the ticket index
    (shared/adapters/run_store.py)."""

    def new_run_id(self, deployment_id: str, unique: str) -> str:
        """An id for a new run of `deployment_id` that the store finds with one read (it names the partition)."""
        ...

    def create(self, run: RunRecord) -> Any: ...
    def get(self, run_id: str) -> Any: ...
    def update(self, run_id: str, change: Callable[[RunRecord], RunRecord]) -> RunRecord: ...
    def start_run(self, run: RunRecord, deployment: Deployment, deployment_etag: str | None) -> Any:
        """Claim `deployment` for the new run `run` and store both (and the run's ticket row) all or nothing."""
        ...

    def join_run(self, run_id: str, joiner: RunRequester, *, deployment_id: str | None) -> None:
        """Insert `joiner`'s joiner row and ticket row in the run's partition, all or nothing; no ETag on the run or
        the deployment (idempotent per request id)."""
        ...

    def joiners(self, run_id: str) -> list[RunRequester]:
        """Every request that joined run `run_id`."""
        ...

    def run_view(self, run_id: str) -> RunRecord | None:
        """The run with its `joined` view, as the API shows it (one round trip)."""
        ...

    def with_joiners(self, run: RunRecord) -> RunRecord: ...
    def deployment_view(self, deployment: Deployment) -> Deployment:
        """The deployment with the requests that joined its runs in its history."""
        ...

    def save_answered(self, deployment: Deployment, etag: str, *, ticket: str | None, run_id: str | None) -> Any:
        """Write `deployment` with the ticket row of a request it answered as it was (under `run_id`)."""
        ...

    def list(
        self,
        *,
        workspace_id: str | None = None,
        status: str | None = None,
        ticket: str | None = None,
        deployment_id: str | None = None,
        page_size: int = 50,
        continuation_token: str | None = None,
    ) -> Any: ...
    def list_in_flight(self, *, page_size: int = 100, continuation_token: str | None = None) -> Any: ...
    def index_ticket(self, ticket: str | None, *, run_id: str, deployment_id: str | None) -> None: ...
    def get_deployment(self, deployment_id: str) -> Any: ...
    def create_deployment(self, deployment: Deployment) -> Any: ...
    def save_deployment(self, deployment: Deployment, etag: str) -> Any: ...
    def update_deployment(self, deployment_id: str, change: Callable[[Deployment], Deployment]) -> Deployment: ...
    def list_deployments(
        self,
        *,
        workspace_id: str | None = None,
        model_id: str | None = None,
        phase: str | None = None,
        ticket: str | None = None,
        page_size: int = 50,
        continuation_token: str | None = None,
    ) -> Any: ...
    def claim_idempotency_key(self, caller: str, key: str, *, run_id: str, fingerprint: str) -> Any: ...
    def answer_idempotency_key(
        self, caller: str, key: str, *, run_id: str | None = None, deployment_id: str | None = None
    ) -> None: ...
    def claim_poison(self, message_id: str, details: Mapping[str, Any] | None = None) -> bool: ...
    def release_poison(self, message_id: str) -> None: ...
    def record_undelivered(self, kind: str, key: str, document: Mapping[str, Any]) -> None: ...
