"""Findings and the latest scan report in Table Storage (the `hygienefindings` table), with ETag concurrency.

Each finding is one row keyed by its stable identity, with flat index columns (rule, severity, workspace, state,
the deployment it is about, whether alerts are waiting) so the HTTP API and the scan can filter without reading
every row.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from shared.azure_errors import RecordChangedError, RecordExistsError
from shared.hygiene.findings import FindingRecord, FindingState

FINDINGS = "finding"
REPORTS = "report"
LATEST_REPORT = "latest"
PAGE_SIZE = 500
MAX_REPORT_ATTEMPTS = 3


class DocumentTablePort(Protocol):
    """The document-table operations used here (shared.adapters.tables.DocumentTable implements them)."""

    def create(self, partition: str, key: str, document: Mapping[str, Any], index: Mapping[str, Any]) -> str: ...
    def get(self, partition: str, key: str) -> Any: ...
    def replace(
        self, partition: str, key: str, document: Mapping[str, Any], index: Mapping[str, Any], etag: str
    ) -> str: ...
    def delete(self, partition: str, key: str) -> None: ...
    def query(
        self, partition: str, equals: Mapping[str, str], *, page_size: int, continuation_token: str | None = None
    ) -> Any: ...


@dataclass(frozen=True)
class StoredFinding:
    record: FindingRecord
    etag: str


@dataclass(frozen=True)
class FindingPage:
    records: list[FindingRecord]
    continuation_token: str | None


class FindingStore:
    def __init__(self, table: DocumentTablePort) -> None:
        self._table = table

    def get(self, key: str) -> StoredFinding | None:
        stored = self._table.get(FINDINGS, key)
        return StoredFinding(FindingRecord.from_storage_dict(stored.document), stored.etag) if stored else None

    def create(self, record: FindingRecord) -> StoredFinding:
        """Raises RecordExistsError when another scan created it first."""
        return StoredFinding(record, self._table.create(FINDINGS, record.key, record.to_storage_dict(), _index(record)))

    def save(self, record: FindingRecord, etag: str) -> StoredFinding:
        """Raises RecordChangedError when another scan changed it since `etag`."""
        return StoredFinding(
            record, self._table.replace(FINDINGS, record.key, record.to_storage_dict(), _index(record), etag)
        )

    def delete(self, key: str) -> None:
        self._table.delete(FINDINGS, key)

    def query(
        self,
        *,
        rule: str | None = None,
        severity: str | None = None,
        workspace_id: str | None = None,
        state: str | None = None,
        deployment_id: str | None = None,
        page_size: int = 50,
        continuation_token: str | None = None,
    ) -> FindingPage:
        equals = {
            column: value
            for column, value in (
                ("Rule", rule),
                ("Severity", severity),
                ("WorkspaceId", workspace_id.lower() if workspace_id else None),
                ("State", state),
                ("DeploymentId", deployment_id.lower() if deployment_id else None),
            )
            if value
        }
        page = self._table.query(FINDINGS, equals, page_size=page_size, continuation_token=continuation_token)
        return FindingPage([FindingRecord.from_storage_dict(doc) for doc in page.documents], page.continuation_token)

    def all_where(self, **equals: str) -> Iterator[FindingRecord]:
        """Every finding matching the index columns given (e.g. State="open"), across all pages."""
        token: str | None = None
        while True:
            page = self._table.query(FINDINGS, equals, page_size=PAGE_SIZE, continuation_token=token)
            yield from (FindingRecord.from_storage_dict(doc) for doc in page.documents)
            token = page.continuation_token
            if not token:
                return

    def live(self) -> list[FindingRecord]:
        """Open and pending findings: the ones a scan may refresh or resolve."""
        return [*self.all_where(State=FindingState.OPEN.value), *self.all_where(State=FindingState.PENDING.value)]

    def with_undelivered_alerts(self) -> list[FindingRecord]:
        return list(self.all_where(AlertsPending="true"))

    def save_report(self, report: Mapping[str, Any]) -> None:
        # Last writer wins: a report describes one finished scan, and a newer one replaces it whole.
        for _ in range(MAX_REPORT_ATTEMPTS):
            stored = self._table.get(REPORTS, LATEST_REPORT)
            try:
                if stored is None:
                    self._table.create(REPORTS, LATEST_REPORT, report, {})
                else:
                    self._table.replace(REPORTS, LATEST_REPORT, report, {}, stored.etag)
                return
            except (RecordExistsError, RecordChangedError):
                continue
        raise RecordChangedError(f"the latest report kept changing under {MAX_REPORT_ATTEMPTS} attempts to write it")

    def latest_report(self) -> dict[str, Any] | None:
        stored = self._table.get(REPORTS, LATEST_REPORT)
        return stored.document if stored else None


def _index(record: FindingRecord) -> dict[str, str]:
    return {
        "Rule": record.rule,
        "Severity": record.severity.value,
        "WorkspaceId": (record.workspace_id or "").lower(),
        "State": record.state.value,
        "DeploymentId": (record.deployment_id or "").lower(),
        "AlertsPending": "true" if record.outbox else "false",
        "LastSeen": record.last_seen.isoformat(),
    }
