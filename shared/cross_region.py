"""Cross-region deployments: hub projects per region, for models the requester's region does not offer.

The seed's way out for such a project is to deploy in a project of a region that offers the model and consume the
endpoint through a connection. Configuration names one hub project per region:

    BROKER_CROSS_REGION_HUBS = "eastus2=/subscriptions/.../workspaces/hub-eus2,swedencentral=/subscriptions/..."

A hub is used only for models the catalog says its region offers, and only when the request allows it.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable
from dataclasses import dataclass

from shared.azure_ids import InvalidResourceIdError, WorkspaceId
from shared.catalog import ModelCatalog, normalize_location
from shared.model_ids import ModelId
from shared.ownership import ownership_tags
from shared.ports import Endpoint, EndpointKeys, WorkspaceConnectionsPort
from shared.runs import ConnectionInfo, RunRecord

CONNECTION_CATEGORY = "Serverless"

# [I] The connections API documents no name rule; the workspace name rule is the safe subset assumed here.
CONNECTION_NAME_PATTERN = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_-]{2,32}$")
CONNECTION_NAME_MAX = 33
_HASH_LENGTH = 6


class HubSettingError(ValueError):
    """BROKER_CROSS_REGION_HUBS cannot be read; the message names the entry and the expected form."""


@dataclass(frozen=True)
class Hub:
    location: str
    workspace: WorkspaceId


class CrossRegionHubs:
    def __init__(self, hubs: Iterable[Hub] = ()) -> None:
        self._hubs = tuple(hubs)

    @classmethod
    def from_setting(cls, text: str | None) -> CrossRegionHubs:
        """Parse `region=workspace id` entries separated by commas; blank means no hubs."""
        hubs = []
        for entry in (part.strip() for part in (text or "").split(",")):
            if not entry:
                continue
            location, separator, workspace_id = entry.partition("=")
            if not separator or not location.strip():
                raise HubSettingError(
                    f"Cross-region hub entry '{entry}' is not '<region>=<workspace id>' "
                    "(e.g. eastus2=/subscriptions/.../workspaces/hub-eus2)."
                )
            try:
                workspace = WorkspaceId.parse(workspace_id)
            except InvalidResourceIdError as error:
                raise HubSettingError(f"Cross-region hub entry for '{location.strip()}': {error}") from error
            hubs.append(Hub(normalize_location(location), workspace))
        return cls(hubs)

    @property
    def hubs(self) -> tuple[Hub, ...]:
        return self._hubs

    def for_model(self, model: ModelId, catalog: ModelCatalog, *, requester: WorkspaceId) -> Hub | None:
        """The first configured hub whose region the catalog says offers `model` (never the requester's own)."""
        for hub in self._hubs:
            if hub.workspace.key != requester.key and catalog.supports_location(model, hub.location) is True:
                return hub
        return None


def connection_name(endpoint_name: str) -> str:
    """The connection's name in the requester's project: the endpoint's own name when it fits the rule, else a
    shortened one made unique by a hash of the full name (deterministic, so a retried step finds it)."""
    if CONNECTION_NAME_PATTERN.match(endpoint_name):
        return endpoint_name
    digest = hashlib.sha256(endpoint_name.lower().encode()).hexdigest()[:_HASH_LENGTH]
    stem = endpoint_name[: CONNECTION_NAME_MAX - _HASH_LENGTH - 1].rstrip("-_")
    return f"{stem}-{digest}"


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
    """Create or update (PUT is idempotent) the requester's connection to the hub's endpoint, authenticating with
    `key_type`."""
    if not endpoint.scoring_uri:
        raise EndpointNotReadyError(f"Endpoint '{endpoint.name}' has no inference URI to connect to.")
    requester = run.request.workspace.resource_id
    made = connections.put_api_key_connection(
        requester,
        connection_name(endpoint.name),
        category=CONNECTION_CATEGORY,
        target=endpoint.scoring_uri,
        key=keys.primary if key_type == "primary" else keys.secondary,
        metadata={"endpointId": endpoint.id, "keyType": key_type, **ownership_tags()},
    )
    return ConnectionInfo(workspace_id=requester, name=made.name, id=made.id, key_type=key_type)
