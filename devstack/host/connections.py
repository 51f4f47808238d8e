"""Storage connections, resolved from a binding's `connection` as the Functions host resolves them.

For a connection name `X` (default `AzureWebJobsStorage`) the host looks at the setting `AzureWebJobsX`, then `X`
(WebJobs' GetWebJobsConnectionStringSection), and uses the first that exists, as a value or as `<name>__*` settings:

- a non-empty value is a connection string (account key or SAS);
- otherwise the connection is identity-based: the queue service is `<name>__queueServiceUri` (`__serviceUri` is an
  alias, except for AzureWebJobsStorage, which serves several services), or `https://<name>__accountName
  .queue.core.windows.net`; the token credential comes from `__credential`, `__clientId`,
  `__managedIdentityResourceId`, `__managedIdentityObjectId`, `__tenantId`, `__clientSecret` as
  Microsoft.Extensions.Azure's ClientFactory.CreateCredential picks it, else DefaultAzureCredential.

Property names match ignoring case, as .NET configuration keys do. Every queue the host touches for a connection
(triggers, their `-poison` queues, outputs) goes through the one client and credential made for it here. TLS: a
`REQUESTS_CA_BUNDLE` in the environment is the CA file for storage and identity requests (the convention the
Python SDKs' sync clients follow; the async ones used here need it passed), so the emulator's CA is trusted
locally; without it the system roots are used.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from azure.core.credentials_async import AsyncTokenCredential
from azure.storage.queue.aio import QueueClient, QueueServiceClient

from devstack.host.settings import SettingsError

DEFAULT_CONNECTION = "AzureWebJobsStorage"
WEBJOBS_PREFIX = "AzureWebJobs"
CA_BUNDLE_SETTING = "REQUESTS_CA_BUNDLE"
_QUEUE_ENDPOINT = "https://{account}.queue.core.windows.net"

log = logging.getLogger(__name__)


class ConnectionSettingError(SettingsError):
    """A binding's connection resolves to nothing the host can use."""


@dataclass(frozen=True)
class CredentialOptions:
    """The `<name>__*` properties that choose the token credential of an identity-based connection."""

    credential: str | None = None
    client_id: str | None = None
    managed_identity_resource_id: str | None = None
    managed_identity_object_id: str | None = None
    tenant_id: str | None = None
    client_secret: str | None = None

    def describe(self) -> str:
        if (self.credential or "").lower() == "managedidentity":
            for label, value in (
                ("client id", self.client_id),
                ("resource id", self.managed_identity_resource_id),
                ("object id", self.managed_identity_object_id),
            ):
                if value:
                    return f"managed identity ({label} {value})"
            return "managed identity (system-assigned)"
        if self.tenant_id and self.client_id and self.client_secret:
            return f"client secret of {self.client_id}"
        return "DefaultAzureCredential"


@dataclass(frozen=True)
class StorageConnection:
    """What a connection name resolved to; `setting` is the name that was found."""

    name: str
    setting: str
    connection_string: str | None = None
    queue_service_uri: str | None = None
    credential: CredentialOptions | None = None

    @property
    def identity_based(self) -> bool:
        return self.connection_string is None

    @property
    def key(self) -> str:
        """Identifies the storage account: two names with the same connection share listeners' wake-ups."""
        return self.connection_string or (self.queue_service_uri or "").rstrip("/").lower()

    def describe(self) -> str:
        """For logs: never the connection string (it holds the key)."""
        if self.connection_string is not None:
            return f"{self.setting}: connection string"
        assert self.credential is not None
        return f"{self.setting}: identity-based, {self.queue_service_uri}, {self.credential.describe()}"


def resolve_storage_connection(connection: str, environ: Mapping[str, str]) -> StorageConnection:
    """The storage connection a binding's `connection` names; ConnectionSettingError when it names nothing."""
    name = connection or DEFAULT_CONNECTION
    candidates = [name] if name.startswith(WEBJOBS_PREFIX) else [f"{WEBJOBS_PREFIX}{name}", name]
    for setting in candidates:
        value = environ.get(setting)
        section = _section(environ, setting)
        if value:
            return StorageConnection(name, setting, connection_string=value)
        if not section:
            continue
        uri = section.get("queueserviceuri")
        if not uri and setting != DEFAULT_CONNECTION:
            uri = section.get("serviceuri")
        if not uri and section.get("accountname"):
            uri = _QUEUE_ENDPOINT.format(account=section["accountname"])
        if not uri:
            raise ConnectionSettingError(
                f"storage connection {name!r}: {setting}__* settings are set but none names the queue service; "
                f"set {setting}__queueServiceUri"
            )
        options = CredentialOptions(
            credential=section.get("credential"),
            client_id=section.get("clientid"),
            managed_identity_resource_id=section.get("managedidentityresourceid"),
            managed_identity_object_id=section.get("managedidentityobjectid"),
            tenant_id=section.get("tenantid"),
            client_secret=section.get("clientsecret"),
        )
        return StorageConnection(name, setting, queue_service_uri=uri, credential=options)
    raise ConnectionSettingError(
        f"storage connection setting {name!r} is not defined: set {name} to a connection string, or "
        f"{name}__queueServiceUri (identity-based, with {name}__credential / __clientId as needed)"
    )


def async_credential(options: CredentialOptions, **transport: Any) -> AsyncTokenCredential:
    """The token credential `options` name, chosen as ClientFactory.CreateCredential chooses it."""
    from azure.identity.aio import ClientSecretCredential, DefaultAzureCredential, ManagedIdentityCredential

    if (options.credential or "").lower() == "managedidentity":
        named = [
            value
            for value in (options.client_id, options.managed_identity_resource_id, options.managed_identity_object_id)
            if value
        ]
        if len(named) > 1:
            raise ConnectionSettingError(
                "only one of clientId, managedIdentityResourceId or managedIdentityObjectId can be specified for "
                "managed identity"
            )
        if options.managed_identity_resource_id:
            return ManagedIdentityCredential(
                identity_config={"mi_res_id": options.managed_identity_resource_id}, **transport
            )
        if options.managed_identity_object_id:
            return ManagedIdentityCredential(
                identity_config={"object_id": options.managed_identity_object_id}, **transport
            )
        return ManagedIdentityCredential(client_id=options.client_id, **transport)
    if options.tenant_id and options.client_id and options.client_secret:
        return ClientSecretCredential(options.tenant_id, options.client_id, options.client_secret, **transport)
    if options.managed_identity_object_id:
        raise ConnectionSettingError("managedIdentityObjectId is only supported when credential is managedidentity")
    if options.managed_identity_resource_id:
        # The .NET DefaultAzureCredential takes a resource id; the Python one does not.
        raise ConnectionSettingError("managedIdentityResourceId needs credential=managedidentity in this host")
    if options.client_id:
        return DefaultAzureCredential(managed_identity_client_id=options.client_id, **transport)
    return DefaultAzureCredential(**transport)


class QueueService:
    """One connection's queue service client and the credential only it uses; closed together."""

    def __init__(self, client: QueueServiceClient, credential: AsyncTokenCredential | None = None) -> None:
        self._client = client
        self._credential = credential

    def get_queue_client(self, queue_name: str) -> QueueClient:
        return self._client.get_queue_client(queue_name)

    async def close(self) -> None:
        await self._client.close()
        if self._credential is not None:
            await self._credential.close()


class StorageConnections:
    """The host's storage connections: each name resolved once, one queue service (and credential) per name."""

    def __init__(self, environ: Mapping[str, str]) -> None:
        self._environ = environ
        self._resolved: dict[str, StorageConnection] = {}
        self._services: dict[str, QueueService] = {}

    def resolve(self, connection: str) -> StorageConnection:
        if connection not in self._resolved:
            self._resolved[connection] = resolve_storage_connection(connection, self._environ)
        return self._resolved[connection]

    def key(self, connection: str) -> str:
        return self.resolve(connection).key

    def queue_service(self, connection: str) -> QueueService:
        if connection not in self._services:
            self._services[connection] = self._open(self.resolve(connection))
        return self._services[connection]

    def _open(self, resolved: StorageConnection) -> QueueService:
        ca_bundle = self._environ.get(CA_BUNDLE_SETTING)
        transport = {"connection_verify": ca_bundle} if ca_bundle else {}
        log.info("storage connection %s", resolved.describe())
        if resolved.connection_string is not None:
            return QueueService(QueueServiceClient.from_connection_string(resolved.connection_string, **transport))
        assert resolved.queue_service_uri is not None
        assert resolved.credential is not None
        credential = async_credential(resolved.credential, **transport)
        return QueueService(
            QueueServiceClient(resolved.queue_service_uri, credential=credential, **transport), credential
        )

    async def close(self) -> None:
        for service in self._services.values():
            await service.close()
        self._services.clear()


def _section(environ: Mapping[str, str], setting: str) -> dict[str, str]:
    """The non-empty `<setting>__<property>` values by lower-cased property (`:` separates them too, as in .NET)."""
    found = {}
    for separator in ("__", ":"):
        prefix = f"{setting}{separator}".lower()
        for name, value in environ.items():
            if name.lower().startswith(prefix) and value and value.strip():
                found.setdefault(name[len(prefix) :].lower(), value.strip())
    return found
