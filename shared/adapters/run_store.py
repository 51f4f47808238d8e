"""Deployments, runs, and the rows that make intake idempotent and ticket look-ups complete, in one table.

- A deployment row per (workspace, model) holds the Deployment resource; its `status.currentRunId`, changed only
  with ETag concurrency, is the single-flight claim that lets one run at a time write to Azure.
- A run row per operation (deploy, repair, delete); its `InFlight` column ("true" while the run has not ended or a
  key rotation on it has not) is what the watchdog queries.
- An idempotency row maps (caller, Idempotency-Key) to the answer the first request got (a run or a deployment)
  and the fingerprint of that request, so a retried POST gets the same answer and a reused key is caught.
- A ticket row per (ticket, run) makes `?ticket=` find every request, joiners included.
- A poison row per malformed request message (keyed by its queue message id) is the claim that copies it to the
  poison queue once, however often it is delivered.
- An undelivered row per message the broker could not send (partition `undelivered`: the message itself, where it
  was going and why it failed), for an operator to query and resend rather than a retry that never ends.
Claims are rows whose creation either succeeds or fails with a conflict: Table Storage is the arbiter.
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from shared.azure_errors import RecordChangedError, RecordExistsError
from shared.deployment import Deployment
from shared.runs import RunRecord

RUNS = "run"
DEPLOYMENTS = "deployment"
IDEMPOTENCY = "idempotency"
TICKETS = "ticket"
POISON = "poison"
UNDELIVERED = "undelivered"
MAX_UPDATE_ATTEMPTS = 8
IN_FLIGHT = "InFlight"


class DocumentTablePort(Protocol):
    """The document table the store needs (shared/adapters/tables.py; an in-memory one in tests)."""

    def create(self, partition: str, key: str, document: Any, index: Any) -> str: ...
    def get(self, partition: str, key: str) -> Any: ...
    def replace(self, partition: str, key: str, document: Any, index: Any, etag: str) -> str: ...
    def delete(self, partition: str, key: str) -> None: ...
    def query(self, partition: str, equals: Any, *, page_size: int, continuation_token: str | None = None) -> Any: ...


@dataclass(frozen=True)
class StoredRun:
    run: RunRecord
    etag: str


@dataclass(frozen=True)
class StoredDeployment:
    deployment: Deployment
    etag: str


@dataclass(frozen=True)
class RunPage:
    runs: list[RunRecord]
    continuation_token: str | None


@dataclass(frozen=True)
class DeploymentPage:
    deployments: list[Deployment]
    continuation_token: str | None


@dataclass(frozen=True)
class IdempotencyClaim:
    """Who answers (caller, key): a run, or (for a request answered by a Ready deployment) the deployment."""

    run_id: str | None
    deployment_id: str | None
    fingerprint: str


class RunStore:
    def __init__(self, table: DocumentTablePort) -> None:
        self._table = table

    # -- runs ------------------------------------------------------------------------------------------------------

    def create(self, run: RunRecord) -> StoredRun:
        stored = StoredRun(run, self._table.create(RUNS, run.id, run.to_storage_dict(), _run_index(run)))
        self.index_ticket(run.ticket, run_id=run.id, deployment_id=run.deployment_id)
        return stored

    def get(self, run_id: str) -> StoredRun | None:
        stored = self._table.get(RUNS, run_id)
        return StoredRun(RunRecord.from_storage_dict(stored.document), stored.etag) if stored else None

    def save(self, run: RunRecord, etag: str) -> StoredRun:
        """Write `run` if nobody changed it since `etag` was read; RecordChangedError otherwise."""
        return StoredRun(run, self._table.replace(RUNS, run.id, run.to_storage_dict(), _run_index(run), etag))

    def update(self, run_id: str, change: Callable[[RunRecord], RunRecord]) -> RunRecord:
        """Apply `change` to the latest record, re-reading and re-applying when another writer got there first."""
        return _update(lambda: self.get(run_id), lambda stored: stored.run, self.save, change, f"run {run_id}")

    def list(
        self,
        *,
        workspace_id: str | None = None,
        status: str | None = None,
        ticket: str | None = None,
        deployment_id: str | None = None,
        page_size: int = 50,
        continuation_token: str | None = None,
    ) -> RunPage:
        """Runs, newest filters first; with `ticket`, every run that ticket reached (the other filters then apply
        within each page, so a page may hold fewer than `page_size`)."""
        if ticket:
            rows = self._table.query(
                TICKETS, {"Ticket": ticket}, page_size=page_size, continuation_token=continuation_token
            )
            runs = [stored.run for row in rows.documents if (stored := self.get(row["runId"])) is not None]
            wanted = {"WorkspaceId": workspace_id, "Status": status, "DeploymentId": deployment_id}
            runs = [run for run in runs if _matches(_run_index(run), wanted)]
            return RunPage(runs, rows.continuation_token)
        equals = _present(
            WorkspaceId=workspace_id.lower() if workspace_id else None, Status=status, DeploymentId=deployment_id
        )
        page = self._table.query(RUNS, equals, page_size=page_size, continuation_token=continuation_token)
        return RunPage([RunRecord.from_storage_dict(doc) for doc in page.documents], page.continuation_token)

    def list_in_flight(self, *, page_size: int = 100, continuation_token: str | None = None) -> RunPage:
        """Runs a chain of work messages should be carrying (RunRecord.in_flight): the watchdog's sweep."""
        page = self._table.query(RUNS, {IN_FLIGHT: "true"}, page_size=page_size, continuation_token=continuation_token)
        return RunPage([RunRecord.from_storage_dict(doc) for doc in page.documents], page.continuation_token)

    def index_ticket(self, ticket: str | None, *, run_id: str, deployment_id: str | None) -> None:
        """Make `ticket` find `run_id` (idempotent)."""
        if not ticket:
            return
        document = {"ticket": ticket, "runId": run_id, "deploymentId": deployment_id}
        index = _present(Ticket=ticket, RunId=run_id, DeploymentId=deployment_id)
        with contextlib.suppress(RecordExistsError):
            self._table.create(TICKETS, f"{_digest(ticket)}-{run_id}", document, index)

    # -- malformed messages and what could not be sent -----------------------------------------------------------

    def claim_poison(self, message_id: str, details: Mapping[str, Any] | None = None) -> bool:
        """Claim the poison copy of request message `message_id`: True for the delivery that made the claim (it
        copies the message), False when an earlier delivery made it. `details` are kept on the claim for operators."""
        document = {"messageId": message_id, **(details or {})}
        try:
            self._table.create(POISON, _digest(message_id), document, {})
        except RecordExistsError:
            return False
        return True

    def release_poison(self, message_id: str) -> None:
        """Give the claim up (its copy failed), so the next delivery copies the message."""
        self._table.delete(POISON, _digest(message_id))

    def record_undelivered(self, kind: str, key: str, document: Mapping[str, Any]) -> None:
        """Keep a message that could not be sent (`kind`: what it is, e.g. `event`; `key`: its id) in partition
        `undelivered`, for an operator to find (PartitionKey eq 'undelivered') and resend. Idempotent per key."""
        with contextlib.suppress(RecordExistsError):
            self._table.create(
                UNDELIVERED, f"{kind}-{_digest(key)}", {"kind": kind, "key": key, **document}, {"Kind": kind}
            )

    def list_undelivered(self, *, kind: str | None = None, page_size: int = 50, continuation_token: str | None = None):
        """The undelivered rows (of `kind`), a page at a time."""
        return self._table.query(
            UNDELIVERED, _present(Kind=kind), page_size=page_size, continuation_token=continuation_token
        )

    # -- deployments -----------------------------------------------------------------------------------------------

    def get_deployment(self, deployment_id: str) -> StoredDeployment | None:
        stored = self._table.get(DEPLOYMENTS, deployment_id)
        return StoredDeployment(Deployment.from_storage_dict(stored.document), stored.etag) if stored else None

    def create_deployment(self, deployment: Deployment) -> StoredDeployment:
        """Store a new deployment; RecordExistsError when a concurrent request made it first."""
        etag = self._table.create(
            DEPLOYMENTS, deployment.id, deployment.to_storage_dict(), _deployment_index(deployment)
        )
        return StoredDeployment(deployment, etag)

    def save_deployment(self, deployment: Deployment, etag: str) -> StoredDeployment:
        """Write `deployment` if nobody changed it since `etag` was read; RecordChangedError otherwise."""
        etag = self._table.replace(
            DEPLOYMENTS, deployment.id, deployment.to_storage_dict(), _deployment_index(deployment), etag
        )
        return StoredDeployment(deployment, etag)

    def update_deployment(self, deployment_id: str, change: Callable[[Deployment], Deployment]) -> Deployment:
        return _update(
            lambda: self.get_deployment(deployment_id),
            lambda stored: stored.deployment,
            self.save_deployment,
            change,
            f"deployment {deployment_id}",
        )

    def list_deployments(
        self,
        *,
        workspace_id: str | None = None,
        model_id: str | None = None,
        phase: str | None = None,
        ticket: str | None = None,
        page_size: int = 50,
        continuation_token: str | None = None,
    ) -> DeploymentPage:
        wanted = {
            "WorkspaceId": workspace_id.lower() if workspace_id else None,
            "ModelId": model_id.lower() if model_id else None,
            "Phase": phase,
        }
        if ticket:
            rows = self._table.query(
                TICKETS, {"Ticket": ticket}, page_size=page_size, continuation_token=continuation_token
            )
            ids = dict.fromkeys(row["deploymentId"] for row in rows.documents if row.get("deploymentId"))
            found = [stored.deployment for item in ids if (stored := self.get_deployment(item)) is not None]
            found = [item for item in found if _matches(_deployment_index(item), wanted)]
            return DeploymentPage(found, rows.continuation_token)
        page = self._table.query(
            DEPLOYMENTS, _present(**wanted), page_size=page_size, continuation_token=continuation_token
        )
        return DeploymentPage([Deployment.from_storage_dict(doc) for doc in page.documents], page.continuation_token)

    # -- idempotency -----------------------------------------------------------------------------------------------

    def claim_idempotency_key(self, caller: str, key: str, *, run_id: str, fingerprint: str) -> IdempotencyClaim:
        """The claim on (caller, key): this call's (run_id, fingerprint) when it made it, else the earlier one."""
        row_key = _digest(caller.lower(), key)
        document = {"runId": run_id, "deploymentId": None, "fingerprint": fingerprint}
        while True:
            try:
                self._table.create(IDEMPOTENCY, row_key, document, {})
                return IdempotencyClaim(run_id, None, fingerprint)
            except RecordExistsError:
                stored = self._table.get(IDEMPOTENCY, row_key)
                if stored is not None:
                    found = stored.document
                    return IdempotencyClaim(found.get("runId"), found.get("deploymentId"), found.get("fingerprint", ""))

    def answer_idempotency_key(
        self, caller: str, key: str, *, run_id: str | None = None, deployment_id: str | None = None
    ) -> None:
        """Record what answered (caller, key) when it was not the run the claim was made for (a join, a Ready
        deployment)."""
        row_key = _digest(caller.lower(), key)
        stored = self._table.get(IDEMPOTENCY, row_key)
        if stored is None:
            return
        document = {**stored.document, "runId": run_id, "deploymentId": deployment_id}
        # Only the request holding the key writes it; a change means it was already answered.
        with contextlib.suppress(RecordChangedError):
            self._table.replace(IDEMPOTENCY, row_key, document, {}, stored.etag)


def _update(
    read: Callable[[], Any], value_of: Callable[[Any], Any], save: Callable[[Any, str], Any], change: Any, what: str
) -> Any:
    for _ in range(MAX_UPDATE_ATTEMPTS):
        stored = read()
        if stored is None:
            raise KeyError(what)
        current = value_of(stored)
        changed = change(current)
        if changed == current:
            return changed
        try:
            return value_of(save(changed, stored.etag))
        except RecordChangedError:
            continue
    raise RecordChangedError(f"{what} kept changing under {MAX_UPDATE_ATTEMPTS} attempts to update it")


def _run_index(run: RunRecord) -> dict[str, str]:
    return {
        "Status": run.status.value,
        "WorkspaceId": run.request.workspace_id.lower(),
        "Ticket": run.ticket or "",
        "Caller": run.caller.lower(),
        "Operation": run.operation,
        "DeploymentId": run.deployment_id or "",
        "CreatedAt": run.created_at.isoformat(),
        IN_FLIGHT: "true" if run.in_flight else "false",
    }


def _deployment_index(deployment: Deployment) -> dict[str, str]:
    return {
        "Phase": deployment.status.phase.value,
        "WorkspaceId": deployment.spec.workspace_id.lower(),
        "ModelId": deployment.spec.model_id.lower(),
        "CurrentRunId": deployment.status.current_run_id or "",
    }


def _present(**columns: str | None) -> dict[str, str]:
    return {column: value for column, value in columns.items() if value}


def _matches(index: dict[str, str], wanted: dict[str, str | None]) -> bool:
    return all(index.get(column, "").lower() == value.lower() for column, value in wanted.items() if value)


def _digest(*parts: str) -> str:
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()
