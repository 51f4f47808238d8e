"""Identity-based storage for tests, wired as `make run` wires it: Azurite over HTTPS with OAuth (`--oauth basic`),
its certificate signed by the emulator's CA, bearer tokens for https://storage.azure.com from the emulator's
managed-identity endpoint, and a CA bundle holding that CA and the system roots.

`with identity_storage(emulator) as storage:` starts the Azurite; `storage.env()` is what an app or host gets instead
of a connection string; `storage.queue(name)` / `storage.table(name)` are the test's own clients (tokens minted in
process for the broker identity, never an account key).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from azure.core.exceptions import ResourceExistsError
from azure.data.tables import TableClient, TableServiceClient
from azure.storage.queue import QueueClient

from devstack.azurite import Azurite, start_azurite
from devstack.ca_bundle import write_ca_bundle
from devstack.emulator.testing import EmulatorHandle

STORAGE = "AzureWebJobsStorage"
IDENTITY_SETTINGS = ("IDENTITY_ENDPOINT", "IDENTITY_HEADER")


@dataclass
class IdentityStorage:
    azurite: Azurite
    emulator: EmulatorHandle
    ca_bundle: Path

    @property
    def broker_client_id(self) -> str:
        scenario = self.emulator.state.scenario
        return scenario.principal(scenario.broker_principal_id)["clientId"]

    def connection_settings(self, connection: str = STORAGE, *, client_id: str | None = None) -> dict[str, str]:
        """An identity-based connection as infra/ sets it: service URIs and the user-assigned identity's client id."""
        return {
            f"{connection}__queueServiceUri": self.azurite.queue_service_uri,
            f"{connection}__tableServiceUri": self.azurite.table_service_uri,
            f"{connection}__credential": "managedidentity",
            f"{connection}__clientId": client_id or self.broker_client_id,
        }

    def identity_env(self) -> dict[str, str]:
        """The managed-identity endpoint and the CA bundle (emulator CA + system roots)."""
        return {
            **{name: self.emulator.env[name] for name in IDENTITY_SETTINGS},
            "REQUESTS_CA_BUNDLE": str(self.ca_bundle),
        }

    def env(self, connection: str = STORAGE) -> dict[str, str]:
        return {**self.identity_env(), **self.connection_settings(connection)}

    def queue(self, name: str) -> QueueClient:
        client = QueueClient(
            self.azurite.queue_service_uri,
            name,
            credential=self.emulator.credential(),
            connection_verify=str(self.ca_bundle),
        )
        with contextlib.suppress(ResourceExistsError):
            client.create_queue()
        return client

    def table(self, name: str) -> TableClient:
        service = TableServiceClient(
            self.azurite.table_service_uri, credential=self.emulator.credential(), connection_verify=str(self.ca_bundle)
        )
        return service.get_table_client(name)


@contextlib.contextmanager
def identity_storage(emulator: EmulatorHandle, *, log_dir: Path | None = None) -> Iterator[IdentityStorage]:
    """Azurite in HTTPS + OAuth mode with the emulator's server certificate, for as long as the block runs."""
    tls = emulator.server.tls
    # environ={}: only the emulator CA and the system roots, whatever this process exports.
    bundle = write_ca_bundle(tls.ca_cert.parent / "ca-bundle.pem", [tls.ca_cert], environ={})
    azurite = start_azurite(tls=tls, oauth=True, log_dir=log_dir)
    try:
        yield IdentityStorage(azurite, emulator, bundle)
    finally:
        azurite.stop()
