"""Azure Table Storage as a JSON document store with ETag concurrency, entity-group transactions and paged, filtered
queries."""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from azure.core import MatchConditions
from azure.core.exceptions import ResourceExistsError, ResourceModifiedError, ResourceNotFoundError
from azure.data.tables import TableClient, TableErrorCode, TableTransactionError, UpdateMode

from shared.adapters.run_store import TableWrite
from shared.adapters.storage import table_service_client
from shared.azure_errors import RecordChangedError, RecordExistsError
from shared.config import StorageSettings

DOCUMENT_PROPERTY = "Document"


@dataclass(frozen=True)
class StoredDocument:
    document: dict[str, Any]
    etag: str


@dataclass(frozen=True)
class DocumentPage:
    documents: list[dict[str, Any]]
    continuation_token: str | None


class DocumentTable:
    """One table; each entity holds a JSON document plus flat index columns that queries can filter on."""

    def __init__(self, client: TableClient) -> None:
        self._client = client

    @classmethod
    def open(cls, settings: StorageSettings, table_name: str) -> DocumentTable:
        service = table_service_client(settings)
        service.create_table_if_not_exists(table_name)
        return cls(service.get_table_client(table_name))

    def create(self, partition: str, key: str, document: Mapping[str, Any], index: Mapping[str, Any]) -> str:
        try:
            metadata = self._client.create_entity(self._entity(partition, key, document, index))
        except ResourceExistsError as error:
            raise RecordExistsError(f"{partition}/{key}") from error
        return metadata["etag"]

    def get(self, partition: str, key: str) -> StoredDocument | None:
        try:
            entity = self._client.get_entity(partition, key)
        except ResourceNotFoundError:
            return None
        return StoredDocument(json.loads(entity[DOCUMENT_PROPERTY]), entity.metadata["etag"])

    def replace(
        self, partition: str, key: str, document: Mapping[str, Any], index: Mapping[str, Any], etag: str
    ) -> str:
        try:
            metadata = self._client.update_entity(
                self._entity(partition, key, document, index),
                mode=UpdateMode.REPLACE,
                etag=etag,
                match_condition=MatchConditions.IfNotModified,
            )
        except (ResourceModifiedError, ResourceNotFoundError) as error:
            raise RecordChangedError(f"{partition}/{key}") from error
        return metadata["etag"]

    def delete(self, partition: str, key: str) -> None:
        self._client.delete_entity(partition, key)

    def transact(self, partition: str, writes: Sequence[TableWrite]) -> list[str]:
        """Apply `writes` to one partition all or nothing (an entity-group transaction, one round trip): the new
        ETags in order. A create of an existing row raises RecordExistsError, a replace whose ETag no longer matches
        RecordChangedError, and then nothing was written."""
        operations = [self._operation(partition, write) for write in writes]
        try:
            results = self._client.submit_transaction(operations)
        except TableTransactionError as error:
            failed = writes[error.index] if 0 <= error.index < len(writes) else writes[0]
            where = f"{partition}/{failed.key}"
            if error.error_code == TableErrorCode.ENTITY_ALREADY_EXISTS:
                raise RecordExistsError(where) from error
            if error.error_code in (TableErrorCode.UPDATE_CONDITION_NOT_SATISFIED, TableErrorCode.RESOURCE_NOT_FOUND):
                raise RecordChangedError(where) from error
            raise
        return [result["etag"] for result in results]

    def query(
        self,
        partition: str | None,
        equals: Mapping[str, str],
        *,
        page_size: int,
        continuation_token: str | None = None,
        or_key: str | None = None,
    ) -> DocumentPage:
        """A page of documents whose index columns equal `equals` (or, with `or_key`, that are the row `or_key`), in
        `partition` or (None) across the table, in key order."""
        parameters: dict[str, Any] = {} if partition is None else {"partition": partition}
        columns = []
        for number, (column, value) in enumerate(sorted(equals.items())):
            columns.append(f"{column} eq @p{number}")
            parameters[f"p{number}"] = value
        clauses = [] if partition is None else ["PartitionKey eq @partition"]
        if or_key is not None:
            assert columns, "or_key widens a filter on index columns"
            parameters["key"] = or_key
            # Spaced apart: the SDK substitutes a parameter only where it stands as a word of its own.
            clauses.append(f"( ( {' and '.join(columns)} ) or RowKey eq @key )")
        else:
            clauses.extend(columns)
        entities = (
            self._client.query_entities(" and ".join(clauses), parameters=parameters, results_per_page=page_size)
            if clauses
            else self._client.list_entities(results_per_page=page_size)
        )
        pages = entities.by_page(continuation_token=_decode_token(continuation_token))
        page = next(pages, [])
        documents = [json.loads(entity[DOCUMENT_PROPERTY]) for entity in page]
        return DocumentPage(documents, _encode_token(pages.continuation_token))

    def _operation(self, partition: str, write: TableWrite) -> tuple[Any, ...]:
        entity = self._entity(partition, write.key, write.document, write.index)
        if write.action == "create":
            return ("create", entity)
        if write.action == "upsert":
            return ("upsert", entity, {"mode": UpdateMode.REPLACE})
        options = {"mode": UpdateMode.REPLACE, "etag": write.etag, "match_condition": MatchConditions.IfNotModified}
        return ("update", entity, options)

    @staticmethod
    def _entity(partition: str, key: str, document: Mapping[str, Any], index: Mapping[str, Any]) -> dict[str, Any]:
        return {"PartitionKey": partition, "RowKey": key, **index, DOCUMENT_PROPERTY: json.dumps(document)}


def _encode_token(token: Any) -> str | None:
    if not token:
        return None
    return base64.urlsafe_b64encode(json.dumps(token).encode()).decode()


def _decode_token(token: str | None) -> Any:
    if not token:
        return None
    try:
        return json.loads(base64.urlsafe_b64decode(token.encode()))
    except (ValueError, json.JSONDecodeError) as error:
        raise ValueError("continuationToken is not one this service issued") from error
