"""Settings the broker reads from its environment (app settings in Azure, local.settings.json locally)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass


@dataclass(frozen=True, kw_only=True)
class StorageSettings:
    """Where queues and tables live: a connection string locally, identity-based URIs in Azure."""

    connection_string: str | None
    queue_service_uri: str | None
    table_service_uri: str | None

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> StorageSettings:
        return cls(
            connection_string=env.get("AzureWebJobsStorage") or None,
            queue_service_uri=env.get("AzureWebJobsStorage__queueServiceUri") or None,
            table_service_uri=env.get("AzureWebJobsStorage__tableServiceUri") or None,
        )


@dataclass(frozen=True, kw_only=True)
class Settings:
    storage: StorageSettings

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env
        return cls(storage=StorageSettings.from_env(env))
