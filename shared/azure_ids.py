"""Azure Resource Manager ids for the one resource the broker targets: a Machine Learning workspace (project).

ARM ids are case-insensitive, so parsing accepts any casing of the fixed parts and every comparison goes through
a lowercase key; the canonical string keeps the names as given, because ARM echoes names back as created.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum

PROVIDER = "Microsoft.MachineLearningServices"
WORKSPACE_TYPE = "workspaces"
EXPECTED_FORM = (
    "/subscriptions/{subscriptionId}/resourceGroups/{resourceGroup}/providers/"
    "Microsoft.MachineLearningServices/workspaces/{workspaceName}"
)

_GUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
# Resource group names: 1-90 of letters (any script), digits, '_', '-', '.', '(' and ')', not ending in '.'.
_RESOURCE_GROUP = re.compile(r"^[\w.()-]{1,90}$")
_WORKSPACE_NAME = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_-]{2,32}$")


class InvalidResourceIdError(ValueError):
    """An id that is not a workspace id; the message names the offending part and shows the expected form."""


class ScopeLevel(StrEnum):
    """The three scopes at which the broker's permissions are checked (seed: "Permissions required")."""

    SUBSCRIPTION = "subscription"
    RESOURCE_GROUP = "resourceGroup"
    WORKSPACE = "workspace"


@dataclass(frozen=True)
class WorkspaceId:
    """A validated workspace id. The subscription id is lowercased; names keep the casing they were given."""

    subscription_id: str
    resource_group: str
    name: str

    @classmethod
    def parse(cls, value: str) -> WorkspaceId:
        """Parse a workspace ARM id; raise InvalidResourceIdError naming the first part that is wrong."""
        text = (value or "").strip()
        if not text:
            raise InvalidResourceIdError(f"The workspace id is empty; expected {EXPECTED_FORM}.")
        parts = text.strip("/").split("/")
        shape_fits = (
            text.startswith("/")
            and len(parts) == 8
            and parts[0].lower() == "subscriptions"
            and parts[2].lower() == "resourcegroups"
            and parts[4].lower() == "providers"
        )
        if not shape_fits:
            raise InvalidResourceIdError(f"'{text}' is not a workspace id; expected {EXPECTED_FORM}.")
        subscription_id, resource_group, provider, resource_type, name = (
            parts[1],
            parts[3],
            parts[5],
            parts[6],
            parts[7],
        )
        if provider.lower() != PROVIDER.lower() or resource_type.lower() != WORKSPACE_TYPE:
            raise InvalidResourceIdError(
                f"'{text}' names a '{provider}/{resource_type}' resource; the broker deploys only into "
                f"{PROVIDER}/{WORKSPACE_TYPE} (expected {EXPECTED_FORM})."
            )
        if not _GUID.match(subscription_id):
            raise InvalidResourceIdError(f"The subscription id '{subscription_id}' in '{text}' is not a GUID.")
        if not _RESOURCE_GROUP.match(resource_group) or resource_group.endswith("."):
            raise InvalidResourceIdError(
                f"The resource group name '{resource_group}' in '{text}' is invalid: 1-90 letters, digits, "
                "'_', '-', '.', '(' or ')', not ending in '.'."
            )
        if not _WORKSPACE_NAME.match(name):
            raise InvalidResourceIdError(
                f"The workspace name '{name}' in '{text}' is invalid: 3-33 letters, digits, '_' or '-', "
                "starting with a letter or digit."
            )
        return cls(subscription_id=subscription_id.lower(), resource_group=resource_group, name=name)

    @property
    def subscription_scope(self) -> str:
        return f"/subscriptions/{self.subscription_id}"

    @property
    def resource_group_scope(self) -> str:
        return f"{self.subscription_scope}/resourceGroups/{self.resource_group}"

    @property
    def resource_id(self) -> str:
        """The canonical workspace id (also the workspace scope)."""
        return f"{self.resource_group_scope}/providers/{PROVIDER}/{WORKSPACE_TYPE}/{self.name}"

    @property
    def key(self) -> str:
        """Case-insensitive identity, for comparisons, hashing and storage keys."""
        return self.resource_id.lower()

    def scope(self, level: ScopeLevel) -> str:
        """The ARM scope id at which permissions of the given level are evaluated."""
        return {
            ScopeLevel.SUBSCRIPTION: self.subscription_scope,
            ScopeLevel.RESOURCE_GROUP: self.resource_group_scope,
            ScopeLevel.WORKSPACE: self.resource_id,
        }[level]

    def serverless_endpoint_id(self, endpoint_name: str) -> str:
        return f"{self.resource_id}/serverlessEndpoints/{endpoint_name}"

    def marketplace_subscription_id(self, subscription_name: str) -> str:
        return f"{self.resource_id}/marketplaceSubscriptions/{subscription_name}"

    def __str__(self) -> str:
        return self.resource_id


def normalize_scope(scope: str) -> str:
    """Lowercase, without surrounding whitespace or trailing '/': the form in which scopes are compared."""
    return scope.strip().rstrip("/").lower()


def is_within(scope: str, ancestor: str) -> bool:
    """True when `scope` equals `ancestor` or lies below it (case-insensitive, whole path segments only)."""
    child, parent = normalize_scope(scope), normalize_scope(ancestor)
    return child == parent or child.startswith(parent + "/")
