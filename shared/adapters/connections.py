"""Machine Learning workspace connections over ARM (implements WorkspaceConnectionsPort).

A connection in the requester's project is how it consumes an endpoint deployed in another project (seed: "consume
serverless API deployment from a different project"): category Serverless, target the endpoint's URI, ApiKey
credentials. ARM never returns the credentials on PUT or GET, so nothing read back here carries a key.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from shared.adapters.arm import ArmClient
from shared.adapters.machine_learning import ML_API_VERSION
from shared.azure_errors import AzureCallError
from shared.ports import WorkspaceConnection

# The api-version of the other Machine Learning calls (shared/adapters/machine_learning.py says why this one).
CONNECTIONS_API_VERSION = ML_API_VERSION


class WorkspaceConnectionsAdapter:
    def __init__(self, arm: ArmClient) -> None:
        self._arm = arm

    def put_api_key_connection(
        self, workspace_id: str, name: str, *, category: str, target: str, key: str, metadata: Mapping[str, str]
    ) -> WorkspaceConnection:
        body = api_key_connection_body(category=category, target=target, key=key, metadata=metadata)
        accepted = self._arm.begin_put(_path(workspace_id, name), CONNECTIONS_API_VERSION, body)
        # The connections API answers PUT synchronously (200 with the resource); read it back if it did not.
        return _connection(accepted.resource) if accepted.resource else self._require(workspace_id, name)

    def get_connection(self, workspace_id: str, name: str) -> WorkspaceConnection | None:
        try:
            return _connection(self._arm.get(_path(workspace_id, name), CONNECTIONS_API_VERSION))
        except AzureCallError as error:
            if error.not_found:
                return None
            raise

    def delete_connection(self, workspace_id: str, name: str) -> None:
        # ArmClient treats a 404 on DELETE as already deleted.
        self._arm.begin_delete(_path(workspace_id, name), CONNECTIONS_API_VERSION)

    def _require(self, workspace_id: str, name: str) -> WorkspaceConnection:
        found = self.get_connection(workspace_id, name)
        if found is None:
            raise AzureCallError(404, "ConnectionNotFound", f"Connection '{name}' is missing right after its PUT.")
        return found


def api_key_connection_body(*, category: str, target: str, key: str, metadata: Mapping[str, str]) -> dict[str, Any]:
    """An ApiKey connection PUT at CONNECTIONS_API_VERSION (`category` is one of the API's ConnectionCategory values,
    Serverless for an endpoint)."""
    return {
        "properties": {
            "category": category,
            "target": target,
            "authType": "ApiKey",
            "credentials": {"key": key},
            "metadata": dict(metadata),
        }
    }


def _path(workspace_id: str, name: str) -> str:
    return f"{workspace_id}/connections/{name}"


def _connection(body: Mapping[str, Any]) -> WorkspaceConnection:
    properties = body.get("properties") or {}
    return WorkspaceConnection(
        id=body["id"],
        name=body["name"],
        category=properties.get("category"),
        target=properties.get("target"),
        metadata=properties.get("metadata") or {},
    )
