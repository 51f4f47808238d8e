"""The connection that lets a project use an endpoint deployed for it in a hub project of another region."""

from __future__ import annotations

from shared.cross_region import connection_name
from shared.deployments.preflight import MANAGED_BY_TAG, MANAGED_BY_VALUE
from shared.ports import Endpoint, EndpointKeys, WorkspaceConnectionsPort
from shared.runs import ConnectionInfo, RunRecord

CONNECTION_CATEGORY = "Serverless"


class EndpointNotReadyError(Exception):
    """The endpoint has no inference URI yet, so nothing can connect to it."""


def connect(
    connections: WorkspaceConnectionsPort,
    run: RunRecord,
    *,
    endpoint: Endpoint,
    keys: EndpointKeys,
    key_type: str,
) -> ConnectionInfo:
    """Create or update (PUT is idempotent) the requester's connection so that it authenticates with `key_type`."""
    if not endpoint.scoring_uri:
        raise EndpointNotReadyError(f"Endpoint '{endpoint.name}' has no inference URI to connect to.")
    requester = run.request.workspace.resource_id
    made = connections.put_api_key_connection(
        requester,
        connection_name(endpoint.name),
        category=CONNECTION_CATEGORY,
        target=endpoint.scoring_uri,
        key=keys.primary if key_type == "primary" else keys.secondary,
        metadata={"endpointId": endpoint.id, "keyType": key_type, MANAGED_BY_TAG: MANAGED_BY_VALUE},
    )
    return ConnectionInfo(workspace_id=requester, name=made.name, id=made.id, key_type=key_type)
