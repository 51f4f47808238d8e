"""Azure Storage queues: connection-string (Azurite) or identity-based (Azure) clients."""

from __future__ import annotations

from azure.storage.queue import QueueServiceClient

from shared.adapters.identity import broker_credential
from shared.config import StorageSettings


class StorageNotConfiguredError(RuntimeError):
    """Neither a connection string nor a queue service URI is set."""


def queue_service_client(settings: StorageSettings) -> QueueServiceClient:
    if settings.connection_string:
        return QueueServiceClient.from_connection_string(settings.connection_string)
    if settings.queue_service_uri:
        return QueueServiceClient(settings.queue_service_uri, credential=broker_credential())
    raise StorageNotConfiguredError(
        "Set AzureWebJobsStorage (connection string) or AzureWebJobsStorage__queueServiceUri."
    )


def probe_queue_service(settings: StorageSettings) -> None:
    """Raise unless the queue service answers an authenticated request."""
    with queue_service_client(settings) as client:
        # No retries: the storage SDK's default back-off (about a minute) would outlast any health probe.
        next(iter(client.list_queues(results_per_page=1, retry_total=0)), None)
