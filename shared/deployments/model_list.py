"""GET /api/models: the model catalog as one project sees it, a page at a time.

For each catalogued model (the shipped catalog with the operator's overrides): how it is sold, whether the project's
region offers it (else where it is offered, and the cross-region hub that would deploy it), whether the
approved-model policy allows it, whether the broker deploys into the project at all, and whether a new deployment
would wait for an approver. These are the answers preflight's local checks and the region check would give, so a
portal can offer only what a request would get past them.

The project's region is read once per page, as availability reads it. A project outside the broker's allowed
targets is not read (the broker reads nothing of a workspace it does not deploy into, as preflight): its models are
listed with `workspace.allowed: false` and no region. Pages follow the catalog ordered by model id
(case-insensitively); a continuation token names the last model id served and the filters it was issued for, so a
page never repeats or skips a model that stays in the catalog, and a token sent with other filters is refused.
"""

from __future__ import annotations

import base64
import hashlib
import json
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

from shared.approvals import ApprovalPolicy, ApprovalRequirement
from shared.azure_ids import WorkspaceId
from shared.catalog import CatalogEntry
from shared.deployments.preflight import PreflightPolicy
from shared.model_ids import parse_model_id
from shared.policy import PolicyDecision, publisher_of
from shared.ports import MachineLearningPort

_TOKEN_VERSION = 1


class InvalidContinuationTokenError(ValueError):
    """The token was not issued by this list, or was issued for other filters."""


class _Wire(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, validate_by_name=True, extra="forbid", frozen=True)


class PolicyVerdict(_Wire):
    """A policy's answer: allowed, or the rule that refuses and why (the sentence preflight's problem carries)."""

    allowed: bool
    rule: str | None = Field(default=None, description="The setting's filter that refuses (when not allowed)")
    reason: str | None = Field(default=None, description="Why not, naming what is configured (when not allowed)")

    @classmethod
    def of(cls, decision: PolicyDecision) -> PolicyVerdict:
        if decision.allowed:
            return cls(allowed=True)
        return cls(allowed=False, rule=decision.rule, reason=decision.reason)


class CrossRegionHub(_Wire):
    """The configured hub project whose region offers the model (BROKER_CROSS_REGION_HUBS)."""

    workspace_id: str
    location: str


class RegionFit(_Wire):
    """Whether the project's region offers the model, and where it is offered."""

    location: str | None = Field(
        description="The project's region (ARM location name); null when the broker does not deploy into the "
        "project, and so did not read it"
    )
    offered: bool | None = Field(
        description="Whether that region offers the model; null when the catalog does not list the model's regions "
        "(Azure decides) or the region was not read"
    )
    supported_regions: tuple[str, ...] | None = Field(
        description="The regions that offer the model, or null when the catalog does not know"
    )
    cross_region_hub: CrossRegionHub | None = Field(
        default=None,
        description="When the project's region does not offer the model: the hub project a request with "
        "allowCrossRegion: true would deploy it in, if one is configured for a region that does",
    )


class ApprovalNeed(_Wire):
    """Whether a new deployment of the model into the project would wait in PendingApproval (a repair never does)."""

    required: bool
    rule: str | None = Field(
        default=None, description="marketplace, publisher, model, workspace or subscription (when required)"
    )
    reason: str | None = Field(default=None, description="Why an approver must agree (when required)")

    @classmethod
    def of(cls, requirement: ApprovalRequirement | None) -> ApprovalNeed:
        if requirement is None:
            return cls(required=False)
        return cls(required=True, rule=requirement.rule, reason=requirement.reason)


class ModelListing(_Wire):
    """One catalogued model as a project sees it: `GET /api/models` lists these."""

    model_id: str = Field(description="azureml://registries/<registry>/models/<name>, versionless")
    name: str = Field(description="The model's name in the catalog")
    registry: str
    publisher: str = Field(
        description="The publisher its registry names ('azureml-meta' is 'meta'), as the policies read it"
    )
    family: str | None = Field(default=None, description="The catalog's family, which policies accept as a publisher")
    sold_directly: bool = Field(description="Sold directly by Azure: no Marketplace subscription")
    requires_marketplace_subscription: bool = Field(description="Sold through Azure Marketplace")
    region: RegionFit
    policy: PolicyVerdict = Field(
        description="The approved-model policy (BROKER_APPROVED_REGISTRIES, _PUBLISHERS, _MODELS)"
    )
    workspace: PolicyVerdict = Field(
        description="Whether the broker deploys into the project (BROKER_ALLOWED_SUBSCRIPTIONS, _RESOURCE_GROUPS, "
        "_WORKSPACES); the same for every model"
    )
    approval: ApprovalNeed

    def to_wire(self) -> dict[str, Any]:
        return self.model_dump(mode="json", by_alias=True)


@dataclass(frozen=True)
class ModelFilters:
    """Which catalogued models to list for a project: `publisher` matches the registry's publisher or the catalog
    family exactly, `name` is part of the model id's name or the catalog name; both ignore case."""

    workspace: WorkspaceId
    publisher: str | None = None
    name: str | None = None

    def matches(self, entry: CatalogEntry) -> bool:
        if self.publisher is not None:
            publishers = {publisher_of(parse_model_id(entry.model_id)), (entry.family or "").casefold()}
            if self.publisher.casefold() not in publishers:
                return False
        if self.name is not None:
            names = (parse_model_id(entry.model_id).name.casefold(), entry.name.casefold())
            return any(self.name.casefold() in candidate for candidate in names)
        return True

    @property
    def fingerprint(self) -> str:
        """What a continuation token is bound to: the filters as they compare (ids and names ignoring case)."""
        compared = [self.workspace.key, (self.publisher or "").casefold(), (self.name or "").casefold()]
        return hashlib.sha256(json.dumps(compared).encode()).hexdigest()[:16]


@dataclass(frozen=True)
class ModelPage:
    """A page of the list, and the token to read on from (None after the last page)."""

    items: tuple[ModelListing, ...]
    continuation_token: str | None


class ModelLister:
    """Reads the catalog and the policies from configuration, and a project's region from Azure."""

    def __init__(
        self, *, policy: PreflightPolicy, approvals: ApprovalPolicy, machine_learning: MachineLearningPort
    ) -> None:
        self._policy = policy
        self._approvals = approvals
        self._ml = machine_learning

    def page(self, filters: ModelFilters, *, page_size: int, continuation_token: str | None = None) -> ModelPage:
        """Up to `page_size` models after the token's, in model id order. Raises InvalidContinuationTokenError for a
        token this list did not issue for `filters` (before any Azure read), and AzureCallError when the project's
        region cannot be read (not found included)."""
        after = _read_token(continuation_token, filters) if continuation_token else None
        target = PolicyVerdict.of(self._policy.allowed_targets.evaluate(filters.workspace))
        # Read even for a page that turns out empty, so a missing project is a 404 whatever the filters.
        location = self._ml.get_workspace(filters.workspace.resource_id).location if target.allowed else None
        remaining = [
            entry
            for entry in sorted(self._policy.catalog.entries, key=lambda item: item.key)
            if (after is None or entry.key > after) and filters.matches(entry)
        ]
        served = remaining[:page_size]
        items = tuple(self._listing(entry, filters.workspace, location, target) for entry in served)
        more = len(remaining) > page_size
        return ModelPage(items, _token(served[-1].key, filters) if more else None)

    def _listing(
        self, entry: CatalogEntry, workspace: WorkspaceId, location: str | None, target: PolicyVerdict
    ) -> ModelListing:
        catalog = self._policy.catalog
        model = parse_model_id(entry.model_id)
        classification = catalog.classify(model)
        offered = catalog.supports_location(model, location) if location is not None else None
        hub = self._policy.hubs.for_model(model, catalog, requester=workspace) if offered is False else None
        return ModelListing(
            model_id=entry.model_id,
            name=entry.name,
            registry=entry.registry,
            publisher=publisher_of(model),
            family=entry.family,
            sold_directly=classification.sold_directly,
            requires_marketplace_subscription=classification.requires_marketplace_subscription,
            region=RegionFit(
                location=location,
                offered=offered,
                supported_regions=entry.locations,
                cross_region_hub=(
                    CrossRegionHub(workspace_id=hub.workspace.resource_id, location=hub.location) if hub else None
                ),
            ),
            policy=PolicyVerdict.of(self._policy.approved_models.evaluate(model, family=entry.family)),
            workspace=target,
            approval=ApprovalNeed.of(self._approvals.requirement(workspace, model, classification)),
        )


def _token(last_key: str, filters: ModelFilters) -> str:
    document = {"v": _TOKEN_VERSION, "after": last_key, "filters": filters.fingerprint}
    return base64.urlsafe_b64encode(json.dumps(document).encode()).decode().rstrip("=")


def _read_token(token: str, filters: ModelFilters) -> str:
    """The model key a token resumes after; InvalidContinuationTokenError unless this list issued it for `filters`."""
    try:
        document = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
    except ValueError as error:  # bad base64, UTF-8 or JSON
        raise InvalidContinuationTokenError("continuationToken is not one this list issued") from error
    issued = isinstance(document, dict) and document.get("v") == _TOKEN_VERSION
    if not issued or not isinstance(document.get("after"), str):
        raise InvalidContinuationTokenError("continuationToken is not one this list issued")
    if document.get("filters") != filters.fingerprint:
        raise InvalidContinuationTokenError("continuationToken was issued for other filters")
    return document["after"]
