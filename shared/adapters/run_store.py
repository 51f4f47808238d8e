"""Deployments, runs, and the rows that make intake idempotent and ticket look-ups complete, in one table.

A deployment and everything about it live in one partition, its home (`home-<8 hex of the deployment id's hash>`),
so that a request's writes go to Table Storage as one entity-group transaction (one round trip, all or nothing):
- a deployment row per (workspace, model) holds the Deployment resource; its `status.currentRunId`, changed only
  with ETag concurrency, is the single-flight claim that lets one run at a time write to Azure;
- a run row per operation (deploy, repair, delete); its `InFlight` column ("true" while the run has not ended or a
  key rotation on it has not) is what the watchdog queries. A run id names its home (`<unique>.<8 hex>`,
  `new_run_id`), so GET /api/runs/{id} and every work step read it with one point read; a run id the store did not
  mint lives in partition `run`;
- a joiner row per request that joined a run in flight (`joiner:<run id>:<request id>`): a join inserts it with the
  request's ticket row and touches neither the run nor the deployment, so concurrent joins never contend and the run
  row stays small however many join. The run's end is announced to every joiner row (`joiners`); the public run's
  `joined` view and the deployment's request history are made from them when read for the API (`run_view`,
  `deployment_view`);
- a ticket row per (ticket, run) makes `?ticket=` find every request, joiners included.
Every such row has a `Kind` column (deployment, run, joiner, ticket): lists, the watchdog's sweep and ticket look-ups
are queries across partitions on it (one partition, the deployment's home, for the runs of one deployment).

Outside the homes:
- an idempotency row (partition `idempotency`) maps (caller, Idempotency-Key) to the answer the first request got
  (a run or a deployment) and the fingerprint of that request, so a retried POST gets the same answer and a reused
  key is caught, whichever deployment the reuse asks for;
- a poison row per malformed request message (keyed by its queue message id) is the claim that copies it to the
  poison queue once, however often it is delivered;
- an undelivered row per message the broker could not send (partition `undelivered`: the message itself, where it
  was going and why it failed), for an operator to query and resend rather than a retry that never ends.
Claims are rows whose creation either succeeds or fails with a conflict: Table Storage is the arbiter.
"""

from __future__ import annotations

import contextlib
import hashlib
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from shared.azure_errors import RecordChangedError, RecordExistsError
from shared.deployment import Deployment, DeploymentRequester
from shared.runs import RunRecord, RunRequester

RUNS = "run"
DEPLOYMENTS = "deployment"
TICKETS = "ticket"
JOINERS = "joiner"
IDEMPOTENCY = "idempotency"
POISON = "poison"
UNDELIVERED = "undelivered"
MAX_UPDATE_ATTEMPTS = 8
# Table Storage's largest page; joiners are read whole (the announcer answers each of them).
JOINER_PAGE_SIZE = 1000
IN_FLIGHT = "InFlight"
KIND = "Kind"
RUN_ID = "RunId"
# Where a run whose id names no home is kept (ids minted elsewhere than new_run_id).
UNHOMED_RUNS = RUNS
_HOME_TAG = re.compile(r"^[0-9a-f]{8}$")


@dataclass(frozen=True)
class TableWrite:
    """One row written in an entity-group transaction: `create` (refused when it exists), `replace` (refused
    unless its ETag still matches) or `upsert`."""

    action: Literal["create", "replace", "upsert"]
    key: str
    document: Mapping[str, Any]
    index: Mapping[str, Any]
    etag: str | None = None


class DocumentTablePort(Protocol):
    """The document table the store needs (shared/adapters/tables.py; an in-memory one in tests)."""

    def create(self, partition: str, key: str, document: Any, index: Any) -> str: ...
    def get(self, partition: str, key: str) -> Any: ...
    def replace(self, partition: str, key: str, document: Any, index: Any, etag: str) -> str: ...
    def delete(self, partition: str, key: str) -> None: ...
    def transact(self, partition: str, writes: Sequence[TableWrite]) -> list[str]: ...
    def query(
        self,
        partition: str | None,
        equals: Any,
        *,
        page_size: int,
        continuation_token: str | None = None,
        or_key: str | None = None,
    ) -> Any: ...


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

    @staticmethod
    def new_run_id(deployment_id: str, unique: str) -> str:
        """An id for a new run of deployment `deployment_id`: `unique`, naming the deployment's home."""
        return f"{unique}.{_home_tag(deployment_id)}"

    # -- runs ------------------------------------------------------------------------------------------------------

    def create(self, run: RunRecord) -> StoredRun:
        """Store a new run (and its ticket row) in one round trip; RecordExistsError when it is stored already."""
        (etag, *_) = self._table.transact(_run_home(run.id), [_new_run(run), *_ticket_rows(run.ticket, run)])
        return StoredRun(run, etag)

    def get(self, run_id: str) -> StoredRun | None:
        stored = self._table.get(_run_home(run_id), _run_key(run_id))
        return StoredRun(RunRecord.from_storage_dict(stored.document), stored.etag) if stored else None

    def save(self, run: RunRecord, etag: str) -> StoredRun:
        """Write `run` if nobody changed it since `etag` was read; RecordChangedError otherwise."""
        return StoredRun(
            run, self._table.replace(_run_home(run.id), _run_key(run.id), run.to_storage_dict(), _run_index(run), etag)
        )

    def update(self, run_id: str, change: Callable[[RunRecord], RunRecord]) -> RunRecord:
        """Apply `change` to the latest record, re-reading and re-applying when another writer got there first."""
        return _update(lambda: self.get(run_id), lambda stored: stored.run, self.save, change, f"run {run_id}")

    def start_run(self, run: RunRecord, deployment: Deployment, deployment_etag: str | None) -> StoredDeployment:
        """Claim `deployment` for the new run `run` and store the run and its ticket row, all or nothing, in one round
        trip: the deployment is created (no `deployment_etag`) or replaced if unchanged since that ETag was read.
        RecordExistsError or RecordChangedError when a concurrent request wrote first; nothing is written then."""
        home = _deployment_home(deployment.id)
        assert _run_home(run.id) == home, f"run {run.id} was not minted in deployment {deployment.id}'s home"
        claim = _deployment_write(deployment, deployment_etag)
        (etag, *_) = self._table.transact(home, [claim, _new_run(run), *_ticket_rows(run.ticket, run)])
        return StoredDeployment(deployment, etag)

    def join_run(self, run_id: str, joiner: RunRequester, *, deployment_id: str | None) -> None:
        """Record that the request `joiner` joined run `run_id`: its joiner row and ticket row, in one round trip.
        Neither the run nor its deployment is written, so joins never contend; writing the same request again (a
        redelivery, a retry under its Idempotency-Key) changes nothing."""
        assert joiner.request_id, "a joiner is keyed by its request id"
        document = {
            "runId": run_id,
            "requestId": joiner.request_id,
            "caller": joiner.caller,
            "ticket": joiner.ticket,
            "at": joiner.at.isoformat(),
        }
        index = _present(Kind=JOINERS, RunId=run_id, DeploymentId=deployment_id)
        row = TableWrite("upsert", f"{JOINERS}:{run_id}:{joiner.request_id}", document, index)
        tickets = _ticket_rows(joiner.ticket, run_id=run_id, deployment_id=deployment_id)
        self._table.transact(_run_home(run_id), [row, *tickets])

    def joiners(self, run_id: str) -> list[RunRequester]:
        """Every request that joined run `run_id` (one paged query in its home)."""
        return [_joiner(row) for row in self._rows(_run_home(run_id), {KIND: JOINERS, RUN_ID: run_id})]

    def run_view(self, run_id: str) -> RunRecord | None:
        """The run as the API shows it, its `joined` view made from its joiner rows: one query reads both."""
        rows = self._rows(_run_home(run_id), {KIND: JOINERS, RUN_ID: run_id}, or_key=_run_key(run_id))
        run = next((RunRecord.from_storage_dict(row) for row in rows if "requestId" not in row), None)
        return run.with_joiners(_joiner(row) for row in rows if "requestId" in row) if run else None

    def with_joiners(self, run: RunRecord) -> RunRecord:
        """`run` (as read) with its `joined` view."""
        return run.with_joiners(self.joiners(run.id))

    def deployment_view(self, deployment: Deployment) -> Deployment:
        """`deployment` (as read) as the API shows it: its request history with the requests that joined its runs."""
        rows = self._rows(_deployment_home(deployment.id), {KIND: JOINERS, "DeploymentId": deployment.id})
        joined = [
            DeploymentRequester(
                caller=row["caller"], ticket=row["ticket"], run_id=row["runId"], outcome="joined", at=row["at"]
            )
            for row in rows
        ]
        return deployment.with_joined(joined)

    def save_answered(
        self, deployment: Deployment, etag: str, *, ticket: str | None, run_id: str | None
    ) -> StoredDeployment:
        """Write `deployment` (if unchanged since `etag`) with the ticket row of a request it answered without a run
        of its own (`run_id`: the run that made it as it is), in one round trip."""
        home = _deployment_home(deployment.id)
        rows = _ticket_rows(ticket, run_id=run_id, deployment_id=deployment.id) if run_id else []
        if run_id and _run_home(run_id) != home:  # a run id minted elsewhere keeps its ticket row with it
            self.index_ticket(ticket, run_id=run_id, deployment_id=deployment.id)
            rows = []
        (etag, *_) = self._table.transact(home, [_deployment_write(deployment, etag), *rows])
        return StoredDeployment(deployment, etag)

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
                None, {KIND: TICKETS, "Ticket": ticket}, page_size=page_size, continuation_token=continuation_token
            )
            runs = [stored.run for row in rows.documents if (stored := self.get(row["runId"])) is not None]
            wanted = {"WorkspaceId": workspace_id, "Status": status, "DeploymentId": deployment_id}
            runs = [run for run in runs if _matches(_run_index(run), wanted)]
            return RunPage(runs, rows.continuation_token)
        equals = _present(
            Kind=RUNS,
            WorkspaceId=workspace_id.lower() if workspace_id else None,
            Status=status,
            DeploymentId=deployment_id,
        )
        # A deployment's runs share its home; runs minted elsewhere are not found by deployment then.
        partition = _deployment_home(deployment_id) if deployment_id else None
        page = self._table.query(partition, equals, page_size=page_size, continuation_token=continuation_token)
        return RunPage([RunRecord.from_storage_dict(doc) for doc in page.documents], page.continuation_token)

    def list_in_flight(self, *, page_size: int = 100, continuation_token: str | None = None) -> RunPage:
        """Runs a chain of work messages should be carrying (RunRecord.in_flight): the watchdog's sweep."""
        page = self._table.query(
            None, {KIND: RUNS, IN_FLIGHT: "true"}, page_size=page_size, continuation_token=continuation_token
        )
        return RunPage([RunRecord.from_storage_dict(doc) for doc in page.documents], page.continuation_token)

    def index_ticket(self, ticket: str | None, *, run_id: str, deployment_id: str | None) -> None:
        """Make `ticket` find `run_id` (idempotent)."""
        rows = _ticket_rows(ticket, run_id=run_id, deployment_id=deployment_id)
        if rows:
            self._table.transact(_run_home(run_id), rows)

    def _rows(self, partition: str, equals: Mapping[str, str], *, or_key: str | None = None) -> list[dict[str, Any]]:
        rows: list[dict[str, Any]] = []
        token = None
        while True:
            page = self._table.query(
                partition, equals, page_size=JOINER_PAGE_SIZE, continuation_token=token, or_key=or_key
            )
            rows.extend(page.documents)
            token = page.continuation_token
            if not token:
                return rows

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
        stored = self._table.get(_deployment_home(deployment_id), _deployment_key(deployment_id))
        return StoredDeployment(Deployment.from_storage_dict(stored.document), stored.etag) if stored else None

    def create_deployment(self, deployment: Deployment) -> StoredDeployment:
        """Store a new deployment; RecordExistsError when a concurrent request made it first."""
        etag = self._table.create(
            _deployment_home(deployment.id),
            _deployment_key(deployment.id),
            deployment.to_storage_dict(),
            _deployment_index(deployment),
        )
        return StoredDeployment(deployment, etag)

    def save_deployment(self, deployment: Deployment, etag: str) -> StoredDeployment:
        """Write `deployment` if nobody changed it since `etag` was read; RecordChangedError otherwise."""
        etag = self._table.replace(
            _deployment_home(deployment.id),
            _deployment_key(deployment.id),
            deployment.to_storage_dict(),
            _deployment_index(deployment),
            etag,
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
                None, {KIND: TICKETS, "Ticket": ticket}, page_size=page_size, continuation_token=continuation_token
            )
            ids = dict.fromkeys(row["deploymentId"] for row in rows.documents if row.get("deploymentId"))
            found = [stored.deployment for item in ids if (stored := self.get_deployment(item)) is not None]
            found = [item for item in found if _matches(_deployment_index(item), wanted)]
            return DeploymentPage(found, rows.continuation_token)
        page = self._table.query(
            None, _present(Kind=DEPLOYMENTS, **wanted), page_size=page_size, continuation_token=continuation_token
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


def _home_tag(deployment_id: str) -> str:
    return hashlib.sha256(deployment_id.encode()).hexdigest()[:8]


def _deployment_home(deployment_id: str) -> str:
    return f"home-{_home_tag(deployment_id)}"


def _run_home(run_id: str) -> str:
    _, _, tag = run_id.rpartition(".")
    return f"home-{tag}" if _HOME_TAG.match(tag) else UNHOMED_RUNS


def _run_key(run_id: str) -> str:
    return f"{RUNS}:{run_id}"


def _deployment_key(deployment_id: str) -> str:
    return f"{DEPLOYMENTS}:{deployment_id}"


def _new_run(run: RunRecord) -> TableWrite:
    return TableWrite("create", _run_key(run.id), run.to_storage_dict(), _run_index(run))


def _deployment_write(deployment: Deployment, etag: str | None) -> TableWrite:
    key, document, index = _deployment_key(deployment.id), deployment.to_storage_dict(), _deployment_index(deployment)
    return (
        TableWrite("create", key, document, index)
        if etag is None
        else TableWrite("replace", key, document, index, etag)
    )


def _ticket_rows(
    ticket: str | None, run: RunRecord | None = None, *, run_id: str | None = None, deployment_id: str | None = None
) -> list[TableWrite]:
    """The ticket row that makes `ticket` find a run (upserted, so writing it again changes nothing), if any."""
    if not ticket:
        return []
    run_id = run.id if run else run_id
    deployment_id = run.deployment_id if run else deployment_id
    assert run_id is not None
    document = {"ticket": ticket, "runId": run_id, "deploymentId": deployment_id}
    index = _present(Kind=TICKETS, Ticket=ticket, RunId=run_id, DeploymentId=deployment_id)
    return [TableWrite("upsert", f"{TICKETS}:{_digest(ticket)}-{run_id}", document, index)]


def _joiner(row: Mapping[str, Any]) -> RunRequester:
    return RunRequester(caller=row["caller"], ticket=row["ticket"], at=row["at"], request_id=row["requestId"])


def _run_index(run: RunRecord) -> dict[str, str]:
    return {
        KIND: RUNS,
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
        KIND: DEPLOYMENTS,
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
