"""In-memory implementations of the broker's own ports (shared/ports.py) for unit tests of the deployment domain.

They are fakes of our domain interfaces, not of Azure SDK objects: each keeps the state the domain reads back and
records every call, so a test can assert what was (or was not) asked of Azure. Behaviour the domain relies on is
modelled faithfully: operations that finish only after being polled, effective permissions inherited from
ancestor scopes, Key Vault versions, JSON-only queues, and a document table with create-if-absent and ETag
compare-and-swap, under which the production run store (shared/adapters/run_store.py) runs unchanged.

`fail_next(method, error)` makes the next call of `method` raise; `before_next(operation, action)` on the
run repository runs `action` just before the next `operation`, which is how tests interleave a concurrent writer.
"""

from __future__ import annotations

import base64
import hashlib
import itertools
import json
import threading
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from shared.adapters.run_store import DEPLOYMENTS, KIND, RUNS, RunStore, TableWrite
from shared.azure_errors import AzureCallError, RecordChangedError, RecordExistsError
from shared.azure_ids import WorkspaceId, is_within
from shared.deployment import Deployment
from shared.ports import (
    Endpoint,
    EndpointKeys,
    MarketplaceSubscription,
    Operation,
    OperationProgress,
    PrincipalAccess,
    StoredSecret,
    Workspace,
    WorkspaceConnection,
)
from shared.required_permissions import SUFFICIENT_ROLES
from shared.runs import RunRecord, RunRequester

START = datetime(2026, 11, 27, 9, 0, tzinfo=UTC)


@dataclass
class FixedClock:
    """Always the same instant until a test moves it on."""

    now: datetime = START

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


@dataclass(frozen=True)
class Call:
    name: str
    args: tuple[Any, ...]
    kwargs: Mapping[str, Any]


class _Recorder:
    """Call log plus queued failures, shared by the Azure-facing fakes."""

    def __init__(self) -> None:
        self.calls: list[Call] = []
        self._failures: dict[str, list[Exception]] = defaultdict(list)

    def fail_next(self, method: str, error: Exception, *, times: int = 1) -> None:
        self._failures[method].extend([error] * times)

    def calls_to(self, method: str) -> list[Call]:
        return [call for call in self.calls if call.name == method]

    @property
    def call_names(self) -> list[str]:
        return [call.name for call in self.calls]

    def _enter(self, method: str, *args: Any, **kwargs: Any) -> None:
        self.calls.append(Call(method, args, kwargs))
        if self._failures[method]:
            raise self._failures[method].pop(0)


def not_found(what: str) -> AzureCallError:
    return AzureCallError(404, "ResourceNotFound", f"The resource '{what}' was not found.")


@dataclass
class _PendingOperation:
    polls_left: int
    error: tuple[str | None, str | None] | None
    finish: Callable[[bool], None]
    done: bool = False


class FakeMachineLearning(_Recorder):
    """Workspaces, serverless endpoints and Marketplace subscriptions, keyed case-insensitively like ARM.

    A `begin_*` call puts the resource in a transitional state and returns an operation that reports InProgress
    for `polls_before_done` polls, then finishes: the endpoint becomes `endpoint_outcome`, the subscription
    `subscription_outcome`. Setting `fail_next_operation = (code, message)` makes the next operation end Failed.
    With `synchronous = True` a `begin_*` call finishes at once and returns None (ARM's 200 without headers).
    """

    OPERATIONS_URL = "https://management.example.test/providers/Microsoft.MachineLearningServices/operations/"

    def __init__(self) -> None:
        super().__init__()
        self.workspaces: dict[str, Workspace] = {}
        self.endpoints: dict[tuple[str, str], Endpoint] = {}
        self.subscriptions: dict[tuple[str, str], MarketplaceSubscription] = {}
        self.keys: dict[tuple[str, str], EndpointKeys] = {}
        self.polls_before_done = 1
        self.operation_retry_after: float | None = 3.0
        self.poll_retry_after: float | None = 4.0
        self.synchronous = False
        self.fail_next_operation: tuple[str | None, str | None] | None = None
        self.endpoint_outcome = "Succeeded"
        self.subscription_outcome = "Subscribed"
        self._operations: dict[str, _PendingOperation] = {}
        self._operation_ids = itertools.count(1)
        self._key_generations = itertools.count(1)

    # Arrangement helpers (not part of the port).

    def add_workspace(self, workspace_id: str, location: str) -> Workspace:
        parsed = WorkspaceId.parse(workspace_id)
        workspace = Workspace(id=parsed.resource_id, name=parsed.name, location=location)
        self.workspaces[parsed.key] = workspace
        return workspace

    def add_endpoint(
        self,
        workspace_id: str,
        name: str,
        model_id: str,
        *,
        provisioning_state: str = "Succeeded",
        tags: Mapping[str, str] | None = None,
    ) -> Endpoint:
        endpoint = Endpoint(
            id=WorkspaceId.parse(workspace_id).serverless_endpoint_id(name),
            name=name,
            model_id=model_id,
            provisioning_state=provisioning_state,
            endpoint_state="Online" if provisioning_state == "Succeeded" else "Creating",
            scoring_uri=f"https://{name.lower()}-x1y2.eastus2.models.ai.azure.com",
            marketplace_subscription_id=None,
            tags=dict(tags or {}),
        )
        self.endpoints[_key(workspace_id, name)] = endpoint
        self.keys[_key(workspace_id, name)] = _keys_for(workspace_id, name, generation=0)
        return endpoint

    def add_subscription(self, workspace_id: str, name: str, model_id: str, *, status: str) -> MarketplaceSubscription:
        subscription = MarketplaceSubscription(
            id=WorkspaceId.parse(workspace_id).marketplace_subscription_id(name),
            name=name,
            model_id=model_id,
            status=status,
            provisioning_state="Succeeded",
        )
        self.subscriptions[_key(workspace_id, name)] = subscription
        return subscription

    def endpoint(self, workspace_id: str, name: str) -> Endpoint | None:
        return self.endpoints.get(_key(workspace_id, name))

    def endpoint_keys(self, workspace_id: str, name: str) -> EndpointKeys:
        return self.keys[_key(workspace_id, name)]

    def subscription(self, workspace_id: str, name: str) -> MarketplaceSubscription | None:
        return self.subscriptions.get(_key(workspace_id, name))

    def set_endpoint_state(self, workspace_id: str, name: str, provisioning_state: str) -> None:
        key = _key(workspace_id, name)
        self.endpoints[key] = replace(self.endpoints[key], provisioning_state=provisioning_state)

    def set_endpoint_health(self, workspace_id: str, name: str, endpoint_state: str | None) -> None:
        """Change what Azure reports as the endpoint's `endpointState` (Online, Reinstating, Suspended, ...)."""
        key = _key(workspace_id, name)
        self.endpoints[key] = replace(self.endpoints[key], endpoint_state=endpoint_state)

    def remove_subscription(self, workspace_id: str, name: str) -> None:
        """The Marketplace subscription deleted out of band (in the portal): no ARM call of the broker's is logged."""
        del self.subscriptions[_key(workspace_id, name)]

    def finish_operations(self) -> None:
        """Azure finishes every operation in flight, whether or not anyone polls it (a lost chain's, say)."""
        for pending in self._operations.values():
            if not pending.done:
                pending.done = True
                pending.finish(pending.error is None)

    # MachineLearningPort.

    def get_workspace(self, workspace_id: str) -> Workspace:
        self._enter("get_workspace", workspace_id)
        workspace = self.workspaces.get(WorkspaceId.parse(workspace_id).key)
        if workspace is None:
            raise not_found(workspace_id)
        return workspace

    def list_endpoints(self, workspace_id: str) -> list[Endpoint]:
        self._enter("list_endpoints", workspace_id)
        wanted = WorkspaceId.parse(workspace_id).key
        return [endpoint for (workspace, _), endpoint in self.endpoints.items() if workspace == wanted]

    def get_endpoint(self, workspace_id: str, name: str) -> Endpoint | None:
        self._enter("get_endpoint", workspace_id, name)
        return self.endpoints.get(_key(workspace_id, name))

    def begin_create_endpoint(
        self,
        workspace_id: str,
        name: str,
        *,
        model_id: str,
        location: str,
        content_safety: str,
        tags: Mapping[str, str],
    ) -> Operation | None:
        self._enter(
            "begin_create_endpoint",
            workspace_id,
            name,
            model_id=model_id,
            location=location,
            content_safety=content_safety,
            tags=dict(tags),
        )
        key = _key(workspace_id, name)
        self.endpoints[key] = Endpoint(
            id=WorkspaceId.parse(workspace_id).serverless_endpoint_id(name),
            name=name,
            model_id=model_id,
            provisioning_state="Creating",
            endpoint_state="Creating",
            scoring_uri=None,
            marketplace_subscription_id=None,
            tags=dict(tags),
        )

        def finish(succeeded: bool) -> None:
            if key not in self.endpoints:  # deleted while the operation ran
                return
            state = self.endpoint_outcome if succeeded else "Failed"
            self.endpoints[key] = replace(
                self.endpoints[key],
                provisioning_state=state,
                endpoint_state="Online" if state == "Succeeded" else "CreationFailed",
                scoring_uri=f"https://{name.lower()}-x1y2.{location}.models.ai.azure.com",
            )
            self.keys[key] = _keys_for(workspace_id, name, generation=0)

        return self._start(finish)

    def begin_delete_endpoint(self, workspace_id: str, name: str) -> Operation | None:
        self._enter("begin_delete_endpoint", workspace_id, name)
        key = _key(workspace_id, name)
        return self._start(lambda succeeded: succeeded and self._forget(key))

    def list_keys(self, workspace_id: str, name: str) -> EndpointKeys:
        self._enter("list_keys", workspace_id, name)
        keys = self.keys.get(_key(workspace_id, name))
        if keys is None or _key(workspace_id, name) not in self.endpoints:
            raise not_found(f"{workspace_id}/serverlessEndpoints/{name}")
        return keys

    def regenerate_key(self, workspace_id: str, name: str, key_type: str) -> Operation | None:
        self._enter("regenerate_key", workspace_id, name, key_type)
        key = _key(workspace_id, name)
        current = self.keys[key]
        fresh = _keys_for(workspace_id, name, generation=next(self._key_generations))
        if key_type.lower() == "primary":
            self.keys[key] = EndpointKeys(primary=fresh.primary, secondary=current.secondary)
        else:
            self.keys[key] = EndpointKeys(primary=current.primary, secondary=fresh.secondary)
        return None

    def get_subscription(self, workspace_id: str, name: str) -> MarketplaceSubscription | None:
        self._enter("get_subscription", workspace_id, name)
        return self.subscriptions.get(_key(workspace_id, name))

    def list_subscriptions(self, workspace_id: str) -> list[MarketplaceSubscription]:
        self._enter("list_subscriptions", workspace_id)
        wanted = WorkspaceId.parse(workspace_id).key
        return [item for (workspace, _), item in self.subscriptions.items() if workspace == wanted]

    def begin_create_subscription(self, workspace_id: str, name: str, *, model_id: str) -> Operation | None:
        self._enter("begin_create_subscription", workspace_id, name, model_id=model_id)
        key = _key(workspace_id, name)
        self.subscriptions[key] = MarketplaceSubscription(
            id=WorkspaceId.parse(workspace_id).marketplace_subscription_id(name),
            name=name,
            model_id=model_id,
            status=None,
            provisioning_state="Creating",
        )

        def finish(succeeded: bool) -> None:
            if key not in self.subscriptions:  # deleted while the operation ran
                return
            self.subscriptions[key] = replace(
                self.subscriptions[key],
                status=self.subscription_outcome if succeeded else None,
                provisioning_state="Succeeded" if succeeded else "Failed",
            )
            if succeeded and self.subscription_outcome == "Subscribed":
                self._reinstate(workspace_id, model_id)

        return self._start(finish)

    def begin_delete_subscription(self, workspace_id: str, name: str) -> Operation | None:
        self._enter("begin_delete_subscription", workspace_id, name)
        key = _key(workspace_id, name)
        return self._start(lambda succeeded: succeeded and self.subscriptions.pop(key, None))

    def get_operation(self, operation: Operation) -> OperationProgress:
        self._enter("get_operation", operation.url)
        pending = self._operations.get(operation.url)
        if pending is None:
            raise not_found(operation.url)
        if not pending.done and pending.polls_left > 0:
            pending.polls_left -= 1
            return OperationProgress(done=False, succeeded=False, retry_after=self.poll_retry_after)
        if not pending.done:
            pending.done = True
            pending.finish(pending.error is None)
        code, message = pending.error or (None, None)
        return OperationProgress(done=True, succeeded=pending.error is None, error_code=code, error_message=message)

    def _start(self, finish: Callable[[bool], Any]) -> Operation | None:
        error, self.fail_next_operation = self.fail_next_operation, None
        if self.synchronous:
            finish(error is None)
            return None
        url = f"{self.OPERATIONS_URL}{next(self._operation_ids)}?api-version=2024-01-01-preview"
        self._operations[url] = _PendingOperation(self.polls_before_done, error, finish)
        return Operation(url=url, retry_after=self.operation_retry_after)

    def _reinstate(self, workspace_id: str, model_id: str) -> None:
        """Subscribing again brings the project's provisioned endpoints of the model back Online (as the emulator
        does: an endpoint's endpointState follows the health of its subscription)."""
        workspace = WorkspaceId.parse(workspace_id).key
        for key, endpoint in self.endpoints.items():
            same_model = endpoint.model_id.lower() == model_id.lower()
            if key[0] == workspace and same_model and endpoint.provisioning_state == "Succeeded":
                self.endpoints[key] = replace(endpoint, endpoint_state="Online")

    def _forget(self, key: tuple[str, str]) -> None:
        self.endpoints.pop(key, None)
        self.keys.pop(key, None)


class FakeAuthorization(_Recorder):
    """Grants per scope; what a scope reports includes what its ancestors grant, as ARM's APIs do."""

    def __init__(self, principal_id: str) -> None:
        super().__init__()
        self.principal_id = principal_id
        self._own: list[tuple[str, Mapping[str, Sequence[str]]]] = []
        self._grants: list[tuple[str, str, PrincipalAccess]] = []
        # Report reads as served from an adapter's cache (what a refusal is read again for).
        self.answers_from_cache = False

    def grant_own(self, scope: str, *blocks: Mapping[str, Sequence[str]]) -> None:
        """Permissions the broker's identity holds at `scope` (the permissions API's blocks)."""
        self._own.extend((scope, block) for block in blocks)

    def revoke_own(self) -> None:
        """Take every permission of the broker's identity away (its role assignments stay)."""
        self._own.clear()

    def grant(
        self,
        principal_id: str,
        scope: str,
        *,
        permissions: Sequence[Mapping[str, Sequence[str]]] = (),
        denials: Sequence[Mapping[str, Sequence[str]]] = (),
        roles: Sequence[str] = (),
    ) -> None:
        """Role assignments (and deny assignments) of any principal at `scope`."""
        access = PrincipalAccess(permissions=tuple(permissions), denials=tuple(denials), role_names=frozenset(roles))
        self._grants.append((principal_id.lower(), scope, access))

    def revoke(self, principal_id: str) -> None:
        """Take every role and deny assignment of `principal_id` away, at every scope."""
        self._grants = [grant for grant in self._grants if grant[0] != principal_id.lower()]

    def own_principal_id(self) -> str:
        self._enter("own_principal_id")
        return self.principal_id

    def own_permissions(self, scope: str) -> list[Mapping[str, Sequence[str]]]:
        self._enter("own_permissions", scope)
        return [block for granted_at, block in self._own if is_within(scope, granted_at)]

    def principal_access(self, principal_id: str, scope: str, *, fresh: bool = False) -> PrincipalAccess:
        self._enter("principal_access", principal_id, scope, **({"fresh": True} if fresh else {}))
        held = self._held(principal_id, scope)
        return PrincipalAccess(
            permissions=tuple(block for access in held for block in access.permissions),
            denials=tuple(block for access in held for block in access.denials),
            role_names=frozenset(role for access in held for role in access.role_names),
            cached=self.answers_from_cache and not fresh,
        )

    def assigned_role_ids(self, principal_id: str, scope: str) -> frozenset[str]:
        """Role names granted with `grant`, as role definition GUIDs where the name is a built-in role's."""
        self._enter("assigned_role_ids", principal_id, scope)
        ids = {name.lower(): role_id for role_id, name in SUFFICIENT_ROLES.items()}
        return frozenset(
            ids.get(role.lower(), role) for access in self._held(principal_id, scope) for role in access.role_names
        )

    def _held(self, principal_id: str, scope: str) -> list[PrincipalAccess]:
        return [
            access
            for principal, granted_at, access in self._grants
            if principal == principal_id.lower() and is_within(scope, granted_at)
        ]


@dataclass(frozen=True)
class SecretVersion:
    value: str
    secret: StoredSecret


class FakeSecretStore(_Recorder):
    """A vault of versioned secrets; names compare case-insensitively, as Key Vault's do."""

    VAULT_URL = "https://kv-broker-test.vault.azure.net"

    def __init__(self) -> None:
        super().__init__()
        self.versions: dict[str, list[SecretVersion]] = defaultdict(list)
        self._version_ids = itertools.count(1)

    def latest(self, name: str) -> SecretVersion | None:
        versions = self.versions.get(name.lower())
        return versions[-1] if versions else None

    def set_secret(
        self,
        name: str,
        value: str,
        *,
        content_type: str,
        tags: Mapping[str, str],
        expires_on: datetime | None = None,
    ) -> StoredSecret:
        # The value is deliberately left out of the call log, as the adapter's logging would leave it out.
        self._enter("set_secret", name, content_type=content_type, tags=dict(tags), expires_on=expires_on)
        version = f"{next(self._version_ids):032x}"
        secret = StoredSecret(
            id=f"{self.VAULT_URL}/secrets/{name}/{version}",
            name=name,
            version=version,
            enabled=True,
            expires_on=expires_on,
            tags=dict(tags),
            content_type=content_type,
        )
        self.versions[name.lower()].append(SecretVersion(value, secret))
        return secret

    def get_secret_value(self, name: str) -> str | None:
        self._enter("get_secret_value", name)
        latest = self.latest(name)
        return latest.value if latest and latest.secret.enabled else None

    def get_secret(self, name: str) -> StoredSecret | None:
        self._enter("get_secret", name)
        latest = self.latest(name)
        return latest.secret if latest else None

    def list_secrets(self) -> list[StoredSecret]:
        self._enter("list_secrets")
        return [versions[-1].secret for versions in self.versions.values() if versions]

    def set_enabled(self, name: str, enabled: bool) -> None:
        self._enter("set_enabled", name, enabled)
        versions = self.versions[name.lower()]
        versions[-1] = SecretVersion(versions[-1].value, replace(versions[-1].secret, enabled=enabled))

    def delete_secret(self, name: str) -> None:
        self._enter("delete_secret", name)
        self.versions.pop(name.lower(), None)


@dataclass(frozen=True)
class SentMessage:
    body: dict[str, Any]
    delay_seconds: float
    text: str


class FakeQueue:
    """A queue that keeps what was sent; messages must survive a JSON round trip, as on the real queue."""

    def __init__(self) -> None:
        self.sent: list[SentMessage] = []
        self.raw: list[str] = []

    def send(self, message: Mapping[str, Any], *, delay_seconds: float = 0) -> None:
        text = json.dumps(message)
        self.sent.append(SentMessage(json.loads(text), delay_seconds, text))

    def send_raw(self, text: str) -> None:
        self.raw.append(text)

    @property
    def bodies(self) -> list[dict[str, Any]]:
        return [message.body for message in self.sent]

    def take(self) -> SentMessage:
        """The oldest message, removed (delays are recorded, not waited for)."""
        return self.sent.pop(0)


@dataclass(frozen=True)
class StoredDocument:
    document: dict[str, Any]
    etag: str


@dataclass(frozen=True)
class DocumentPage:
    documents: list[dict[str, Any]]
    continuation_token: str | None


# Table Storage's largest string property (UTF-16 bytes); the whole JSON document is one.
MAX_PROPERTY_BYTES = 64 * 1024


class PropertyValueTooLargeError(Exception):
    """What Table Storage answers (PropertyValueTooLarge) to a row whose document is over MAX_PROPERTY_BYTES."""


@dataclass
class _Row:
    document: str
    index: dict[str, Any]
    etag: str


class InMemoryDocumentTable:
    """The document table contract of shared/adapters/tables.py, in memory: JSON text, ETags, paged queries."""

    def __init__(self) -> None:
        self._rows: dict[tuple[str, str], _Row] = {}
        self._etags = itertools.count(1)
        self._lock = threading.RLock()
        self.conflicts = 0
        self.transactions = 0

    def _etag(self) -> str:
        return f'W/"{next(self._etags)}"'

    @staticmethod
    def _document_text(partition: str, key: str, document: Mapping[str, Any]) -> str:
        """The document as stored, refused as Table Storage refuses a string property over 64 KiB (UTF-16)."""
        text = json.dumps(document)
        if len(text.encode("utf-16-le")) > MAX_PROPERTY_BYTES:
            raise PropertyValueTooLargeError(f"{partition}/{key}: the document is over 64 KiB")
        return text

    def create(self, partition: str, key: str, document: Mapping[str, Any], index: Mapping[str, Any]) -> str:
        with self._lock:
            if (partition, key) in self._rows:
                raise RecordExistsError(f"{partition}/{key}")
            row = _Row(self._document_text(partition, key, document), dict(index), self._etag())
            self._rows[(partition, key)] = row
            return row.etag

    def get(self, partition: str, key: str) -> StoredDocument | None:
        with self._lock:
            row = self._rows.get((partition, key))
            return StoredDocument(json.loads(row.document), row.etag) if row else None

    def replace(
        self, partition: str, key: str, document: Mapping[str, Any], index: Mapping[str, Any], etag: str
    ) -> str:
        with self._lock:
            row = self._rows.get((partition, key))
            if row is None or row.etag != etag:
                self.conflicts += 1
                raise RecordChangedError(f"{partition}/{key}")
            text = self._document_text(partition, key, document)
            row.document, row.index, row.etag = text, dict(index), self._etag()
            return row.etag

    def delete(self, partition: str, key: str) -> None:
        with self._lock:
            self._rows.pop((partition, key), None)

    def transact(self, partition: str, writes: Sequence[TableWrite]) -> list[str]:
        """All of `writes` or none, as an entity-group transaction: every condition is checked before any row
        changes. Counted as one round trip."""
        assert 0 < len(writes) <= 100, "Table Storage takes 1 to 100 operations per transaction"
        assert len({write.key for write in writes}) == len(writes), "a transaction touches each row once"
        with self._lock:
            self.transactions += 1
            for write in writes:
                row = self._rows.get((partition, write.key))
                if write.action == "create" and row is not None:
                    raise RecordExistsError(f"{partition}/{write.key}")
                if write.action == "replace" and (row is None or row.etag != write.etag):
                    self.conflicts += 1
                    raise RecordChangedError(f"{partition}/{write.key}")
            texts = [self._document_text(partition, write.key, write.document) for write in writes]
            etags = []
            for write, text in zip(writes, texts, strict=True):
                row = _Row(text, dict(write.index), self._etag())
                self._rows[(partition, write.key)] = row
                etags.append(row.etag)
            return etags

    def query(
        self,
        partition: str | None,
        equals: Mapping[str, str],
        *,
        page_size: int,
        continuation_token: str | None = None,
        or_key: str | None = None,
    ) -> DocumentPage:
        """Matching documents in (partition, key) order, as Table Storage returns them."""
        if continuation_token is not None and not continuation_token.isdigit():
            raise ValueError("not a continuation token of this store")
        assert 0 < page_size <= 1000, "Table Storage returns at most 1,000 entities a page"
        assert or_key is None or equals, "or_key widens a filter on index columns"
        with self._lock:
            matching = [
                json.loads(row.document)
                for (row_partition, key), row in sorted(self._rows.items(), key=lambda item: item[0])
                if partition in (None, row_partition)
                and (all(row.index.get(k) == v for k, v in equals.items()) or key == or_key)
            ]
        start = int(continuation_token or 0)
        end = start + page_size
        return DocumentPage(matching[start:end], str(end) if end < len(matching) else None)

    def documents(self, partition: str) -> list[str]:
        with self._lock:
            return [row.document for (row_partition, _), row in self._rows.items() if row_partition == partition]

    def documents_of_kind(self, kind: str) -> list[str]:
        """Every document of `kind` (the store's Kind column), whichever partition holds it."""
        with self._lock:
            return [row.document for row in self._rows.values() if row.index.get(KIND) == kind]


class InMemoryRunRepository(RunStore):
    """The production run store over an in-memory table, with hooks that let tests interleave a concurrent writer."""

    HOOKED = (
        "create",
        "save",
        "create_deployment",
        "save_deployment",
        "claim_idempotency_key",
        "start_run",
        "join_run",
        "save_answered",
    )

    def __init__(self) -> None:
        self.table = InMemoryDocumentTable()
        super().__init__(self.table)
        self._hooks: dict[str, list[Callable[[], None]]] = defaultdict(list)

    def before_next(self, operation: str, action: Callable[[], None]) -> None:
        """Run `action` just before the next call of `operation` (one of HOOKED)."""
        assert operation in self.HOOKED, operation
        self._hooks[operation].append(action)

    def _hook(self, operation: str) -> None:
        hooks, self._hooks[operation] = self._hooks[operation], []
        for action in hooks:
            action()

    @property
    def conflicts(self) -> int:
        return self.table.conflicts

    def create(self, run: RunRecord) -> Any:
        self._hook("create")
        return super().create(run)

    def save(self, run: RunRecord, etag: str) -> Any:
        self._hook("save")
        return super().save(run, etag)

    def create_deployment(self, deployment: Deployment) -> Any:
        self._hook("create_deployment")
        return super().create_deployment(deployment)

    def save_deployment(self, deployment: Deployment, etag: str) -> Any:
        self._hook("save_deployment")
        return super().save_deployment(deployment, etag)

    def claim_idempotency_key(self, caller: str, key: str, *, run_id: str, fingerprint: str) -> Any:
        self._hook("claim_idempotency_key")
        return super().claim_idempotency_key(caller, key, run_id=run_id, fingerprint=fingerprint)

    def start_run(self, run: RunRecord, deployment: Deployment, deployment_etag: str | None) -> Any:
        self._hook("start_run")
        return super().start_run(run, deployment, deployment_etag)

    def join_run(self, run_id: str, joiner: RunRequester, *, deployment_id: str | None) -> None:
        self._hook("join_run")
        super().join_run(run_id, joiner, deployment_id=deployment_id)

    def save_answered(self, deployment: Deployment, etag: str, *, ticket: str | None, run_id: str | None) -> Any:
        self._hook("save_answered")
        return super().save_answered(deployment, etag, ticket=ticket, run_id=run_id)

    @property
    def all_runs(self) -> list[RunRecord]:
        return [RunRecord.from_storage_dict(json.loads(text)) for text in self.table.documents_of_kind(RUNS)]

    @property
    def all_deployments(self) -> list[Deployment]:
        return [Deployment.from_storage_dict(json.loads(text)) for text in self.table.documents_of_kind(DEPLOYMENTS)]

    def stored_text(self) -> str:
        """Every stored document, as the table holds them (for checks that no key leaked into storage)."""
        return "\n".join(self.table.documents_of_kind(RUNS) + self.table.documents_of_kind(DEPLOYMENTS))


def _key(workspace_id: str, name: str) -> tuple[str, str]:
    return WorkspaceId.parse(workspace_id).key, name.lower()


def _keys_for(workspace_id: str, name: str, *, generation: int) -> EndpointKeys:
    seed = f"{workspace_id.lower()}/{name.lower()}/{generation}"
    return EndpointKeys(
        primary=hashlib.sha256(f"{seed}/primary".encode()).hexdigest(),
        secondary=hashlib.sha256(f"{seed}/secondary".encode()).hexdigest(),
    )


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


# Azure Storage's own limit on a queue message, for tests of what the broker does when a queue refuses one.

AZURE_QUEUE_MESSAGE_BYTES = 64 * 1024


class QueueRefusedError(Exception):
    """What sending raises when the queue will not take a message (Azure answers 400 MessageTooLarge, say)."""


def limit_like_azure(queue: FakeQueue, *, refuse_all: bool = False) -> list[str]:
    """Make `queue` refuse, as Azure Storage does, a message whose base64 text (the host's messageEncoding) is over
    64 KiB, or with `refuse_all` every message; returns the list the refused texts are added to."""
    refused: list[str] = []
    send, send_raw = queue.send, queue.send_raw

    def check(text: str) -> None:
        if refuse_all or len(base64.b64encode(text.encode())) > AZURE_QUEUE_MESSAGE_BYTES:
            refused.append(text)
            raise QueueRefusedError(f"MessageTooLarge: {len(text)} characters")

    def limited_send(message: Mapping[str, Any], *, delay_seconds: float = 0) -> None:
        check(json.dumps(message))
        send(message, delay_seconds=delay_seconds)

    def limited_send_raw(text: str) -> None:
        check(text)
        send_raw(text)

    queue.send = limited_send  # type: ignore[method-assign]
    queue.send_raw = limited_send_raw  # type: ignore[method-assign]
    return refused
