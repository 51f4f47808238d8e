"""Run records in Table Storage, plus the two claims that make intake idempotent and single-flight.

- An idempotency claim maps (caller, Idempotency-Key) to the run it created, so a retried POST finds that run.
- A deployment claim maps (workspace, model) to the one run that may create its endpoint, so concurrent requests
  for the same model in the same project never create two endpoints or two subscriptions.
Claims are rows whose creation either succeeds or fails with a conflict: Table Storage is the arbiter.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass

from shared.adapters.tables import DocumentTable
from shared.azure_errors import RecordChangedError, RecordExistsError
from shared.runs import RunRecord

RUNS = "run"
IDEMPOTENCY = "idempotency"
DEPLOYMENT_CLAIM = "deployment-claim"
MAX_UPDATE_ATTEMPTS = 8


@dataclass(frozen=True)
class StoredRun:
    run: RunRecord
    etag: str


@dataclass(frozen=True)
class RunPage:
    runs: list[RunRecord]
    continuation_token: str | None


class RunStore:
    def __init__(self, table: DocumentTable) -> None:
        self._table = table

    def create(self, run: RunRecord) -> StoredRun:
        return StoredRun(run, self._table.create(RUNS, run.id, run.to_storage_dict(), _index(run)))

    def get(self, run_id: str) -> StoredRun | None:
        stored = self._table.get(RUNS, run_id)
        return StoredRun(RunRecord.from_storage_dict(stored.document), stored.etag) if stored else None

    def save(self, run: RunRecord, etag: str) -> StoredRun:
        """Write `run` if nobody changed it since `etag` was read; RecordChangedError otherwise."""
        return StoredRun(run, self._table.replace(RUNS, run.id, run.to_storage_dict(), _index(run), etag))

    def update(self, run_id: str, change: Callable[[RunRecord], RunRecord]) -> RunRecord:
        """Apply `change` to the latest record, re-reading and re-applying when another writer got there first."""
        for _ in range(MAX_UPDATE_ATTEMPTS):
            stored = self.get(run_id)
            if stored is None:
                raise KeyError(run_id)
            changed = change(stored.run)
            if changed == stored.run:
                return changed
            try:
                return self.save(changed, stored.etag).run
            except RecordChangedError:
                continue
        raise RecordChangedError(f"run {run_id} kept changing under {MAX_UPDATE_ATTEMPTS} attempts to update it")

    def list(
        self,
        *,
        workspace_id: str | None = None,
        status: str | None = None,
        ticket: str | None = None,
        page_size: int = 50,
        continuation_token: str | None = None,
    ) -> RunPage:
        equals = {
            column: value
            for column, value in (
                ("WorkspaceId", workspace_id.lower() if workspace_id else None),
                ("Status", status),
                ("Ticket", ticket),
            )
            if value
        }
        page = self._table.query(RUNS, equals, page_size=page_size, continuation_token=continuation_token)
        return RunPage([RunRecord.from_storage_dict(doc) for doc in page.documents], page.continuation_token)

    def claim_idempotency_key(self, caller: str, key: str, run_id: str) -> str:
        """The run id that owns (caller, key): `run_id` when this call claimed it, else the earlier one."""
        return self._claim(IDEMPOTENCY, _digest(caller.lower(), key), run_id)

    def claim_deployment(self, workspace_id: str, model_id: str, run_id: str) -> str:
        """The run id that owns deploying `model_id` into `workspace_id`."""
        return self._claim(DEPLOYMENT_CLAIM, _digest(workspace_id.lower(), model_id.lower()), run_id)

    def take_over_deployment(self, workspace_id: str, model_id: str, previous_run_id: str, run_id: str) -> bool:
        """Move the claim from a finished run to `run_id`; False when someone else moved it first."""
        key = _digest(workspace_id.lower(), model_id.lower())
        stored = self._table.get(DEPLOYMENT_CLAIM, key)
        if stored is None:
            return self._claim(DEPLOYMENT_CLAIM, key, run_id) == run_id
        if stored.document.get("runId") != previous_run_id:
            return False
        try:
            self._table.replace(DEPLOYMENT_CLAIM, key, {"runId": run_id}, {}, stored.etag)
        except RecordChangedError:
            return False
        return True

    def release_deployment(self, workspace_id: str, model_id: str, run_id: str) -> None:
        """Drop the claim if `run_id` still holds it (a rejected or failed run lets the next request try)."""
        key = _digest(workspace_id.lower(), model_id.lower())
        stored = self._table.get(DEPLOYMENT_CLAIM, key)
        if stored and stored.document.get("runId") == run_id:
            self._table.delete(DEPLOYMENT_CLAIM, key)

    def _claim(self, partition: str, key: str, run_id: str) -> str:
        try:
            self._table.create(partition, key, {"runId": run_id}, {})
        except RecordExistsError:
            stored = self._table.get(partition, key)
            if stored is None:  # released between our create and get: try once more
                return self._claim(partition, key, run_id)
            return stored.document["runId"]
        return run_id


def _index(run: RunRecord) -> dict[str, str]:
    return {
        "Status": run.status.value,
        "WorkspaceId": run.request.workspace_id.lower(),
        "Ticket": run.ticket or "",
        "Caller": run.caller.lower(),
        "Operation": run.operation,
        "CreatedAt": run.created_at.isoformat(),
    }


def _digest(*parts: str) -> str:
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()
