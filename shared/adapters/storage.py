"""Azure Storage clients for one storage connection, as the Functions host reads it.

A connection string (Azurite in tests) signs requests with the account key. Otherwise the connection is
identity-based, as in Azure, where the account refuses shared keys (`allowSharedKeyAccess: false`): the service URIs
from `AzureWebJobsStorage__queueServiceUri` / `__tableServiceUri` and a bearer token for `https://storage.azure.com`
from `storage_credential` (managed identity in Azure, the emulator's identity endpoint with `make run`).
"""

from __future__ import annotations

from typing import Any

from azure.data.tables import TableServiceClient
from azure.storage.queue import QueueClient, QueueServiceClient

from shared.adapters.identity import storage_credential
from shared.config import STORAGE_CONNECTION, StorageSettings


class StorageNotConfiguredError(ValueError):
    """Neither a connection string nor the service URI for the service asked for is set."""

    def __init__(self, service: str) -> None:
        super().__init__(
            f"Set {STORAGE_CONNECTION} (a connection string) or {STORAGE_CONNECTION}__{service}ServiceUri "
            f"(identity-based, as in Azure) for {service} storage."
        )


def queue_service_client(settings: StorageSettings, **options: Any) -> QueueServiceClient:
    if settings.connection_string:
        return QueueServiceClient.from_connection_string(settings.connection_string, **options)
    if settings.queue_service_uri:
        return QueueServiceClient(
            settings.queue_service_uri, credential=storage_credential(settings.credential), **options
        )
    raise StorageNotConfiguredError("queue")


def queue_client(settings: StorageSettings, queue_name: str, **options: Any) -> QueueClient:
    if settings.connection_string:
        return QueueClient.from_connection_string(settings.connection_string, queue_name, **options)
    if settings.queue_service_uri:
        return QueueClient(
            settings.queue_service_uri, queue_name, credential=storage_credential(settings.credential), **options
        )
    raise StorageNotConfiguredError("queue")


def table_service_client(settings: StorageSettings) -> TableServiceClient:
    if settings.connection_string:
        return TableServiceClient.from_connection_string(settings.connection_string)
    if settings.table_service_uri:
        return TableServiceClient(settings.table_service_uri, credential=storage_credential(settings.credential))
    raise StorageNotConfiguredError("table")


def probe_queue_service(settings: StorageSettings) -> None:
    """Raise unless the queue service answers an authenticated request."""
    with queue_service_client(settings) as client:
        # No retries: the storage SDK's default back-off (about a minute) would outlast any health probe.
        next(iter(client.list_queues(results_per_page=1, retry_total=0)), None)
