"""Settings the broker reads from its environment (app settings in Azure, local.settings.json locally).

Every setting is listed in local.settings.sample.json and the README; names are read here and nowhere else.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

PUBLIC_ARM_URL = "https://management.azure.com"
_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off"})


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
    arm_url: str
    key_vault_url: str | None
    requests_queue: str
    work_queue: str
    events_queue: str
    runs_table: str
    approved_registries: str
    approved_publishers: str
    approved_models: str
    allowed_subscriptions: str
    allowed_resource_groups: str
    allowed_workspaces: str
    catalog_overrides_path: str | None
    allow_uncatalogued_models: bool
    permission_strictness: str
    poll_seconds: float

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env
        return cls(
            storage=StorageSettings.from_env(env),
            arm_url=env.get("AZURE_RESOURCE_MANAGER_URL") or PUBLIC_ARM_URL,
            key_vault_url=env.get("AZURE_KEYVAULT_URL") or None,
            requests_queue=env.get("DEPLOYMENT_REQUESTS_QUEUE") or "deployment-requests",
            work_queue=env.get("DEPLOYMENT_WORK_QUEUE") or "deployment-work",
            events_queue=env.get("DEPLOYMENT_EVENTS_QUEUE") or "deployment-events",
            runs_table=env.get("DEPLOYMENT_RUNS_TABLE") or "deploymentruns",
            approved_registries=env.get("BROKER_APPROVED_REGISTRIES", ""),
            approved_publishers=env.get("BROKER_APPROVED_PUBLISHERS", ""),
            approved_models=env.get("BROKER_APPROVED_MODELS", ""),
            allowed_subscriptions=env.get("BROKER_ALLOWED_SUBSCRIPTIONS", ""),
            allowed_resource_groups=env.get("BROKER_ALLOWED_RESOURCE_GROUPS", ""),
            allowed_workspaces=env.get("BROKER_ALLOWED_WORKSPACES", ""),
            catalog_overrides_path=env.get("BROKER_MODEL_CATALOG_OVERRIDES") or None,
            allow_uncatalogued_models=_flag(env, "BROKER_ALLOW_UNCATALOGUED_MODELS", default=False),
            permission_strictness=env.get("BROKER_PERMISSION_STRICTNESS", ""),
            poll_seconds=float(env.get("BROKER_POLL_SECONDS") or 5),
        )


def _flag(env: Mapping[str, str], name: str, *, default: bool) -> bool:
    """A boolean setting, spelled as the hygiene settings accept it (true/false, 1/0, yes/no, on/off; any case)."""
    raw = (env.get(name) or "").strip().lower()
    if not raw:
        return default
    if raw in _TRUE:
        return True
    if raw in _FALSE:
        return False
    raise ValueError(f"{name}='{env[name]}' is not a boolean; use true or false.")
