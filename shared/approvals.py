"""Which requests wait for a human decision before the broker writes anything to Azure, and who may make it.

Marketplace (partner and community) models bill through Azure Marketplace, and subscribing a project to one accepts
the offer's terms, so enterprises put an approval in front of that. The policy is off unless enabled; once enabled it
covers Marketplace models unless told otherwise, and any of the listed publishers, models, workspaces or
subscriptions besides. Only a new deployment (a deploy run) asks: a repair re-creates what was approved already.
Approvers decide with `POST /api/runs/{runId}/approve` or `/reject`, whose body is a DecisionRequest.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Self

from pydantic import BaseModel, ConfigDict, Field, field_validator
from pydantic.alias_generators import to_camel

from shared.azure_ids import WorkspaceId
from shared.catalog import ModelClassification
from shared.model_ids import ModelId, parse_model_id
from shared.policy import publisher_of, split_setting

DEFAULT_APPROVAL_EXPIRY = timedelta(hours=72)
MAX_APPROVAL_COMMENT = 1000


@dataclass(frozen=True)
class ApprovalRequirement:
    """Why a request needs approval: the rule that asked (`marketplace`, `publisher`, `model`, `workspace` or
    `subscription`) and a sentence for the requester and the approver."""

    rule: str
    reason: str


@dataclass(frozen=True)
class ApprovalPolicy:
    enabled: bool = False
    marketplace: bool = True
    publishers: frozenset[str] = frozenset()
    model_keys: frozenset[str] = frozenset()
    workspace_keys: frozenset[str] = frozenset()
    subscription_ids: frozenset[str] = frozenset()
    expiry: timedelta = DEFAULT_APPROVAL_EXPIRY

    @classmethod
    def from_settings(
        cls,
        *,
        enabled: bool,
        marketplace: bool = True,
        publishers: str = "",
        model_ids: str = "",
        workspace_ids: str = "",
        subscription_ids: str = "",
        expiry: timedelta = DEFAULT_APPROVAL_EXPIRY,
    ) -> ApprovalPolicy:
        """Build from settings; an unparsable model or workspace id raises ValueError, so a typo fails at start-up."""
        return cls(
            enabled=enabled,
            marketplace=marketplace,
            publishers=frozenset(item.lower() for item in split_setting(publishers)),
            model_keys=frozenset(parse_model_id(item).key for item in split_setting(model_ids)),
            workspace_keys=frozenset(WorkspaceId.parse(item).key for item in split_setting(workspace_ids)),
            subscription_ids=frozenset(item.lower() for item in split_setting(subscription_ids)),
            expiry=expiry,
        )

    def requirement(
        self, workspace: WorkspaceId, model: ModelId, classification: ModelClassification
    ) -> ApprovalRequirement | None:
        """The first rule that asks for approval of deploying `model` into `workspace`; None when none does."""
        if not self.enabled:
            return None
        publisher = publisher_of(model)
        rules = (
            (
                self.marketplace and classification.requires_marketplace_subscription,
                "marketplace",
                f"{model.normalized} is sold through Azure Marketplace: subscribing the project accepts the offer's "
                "terms and bills through Marketplace, so an approver must agree first.",
            ),
            (publisher in self.publishers, "publisher", f"Models published by '{publisher}' need an approver."),
            (model.key in self.model_keys, "model", f"{model.normalized} needs an approver."),
            (
                workspace.key in self.workspace_keys,
                "workspace",
                f"Deployments into workspace {workspace.name} need an approver.",
            ),
            (
                workspace.subscription_id in self.subscription_ids,
                "subscription",
                f"Deployments into subscription {workspace.subscription_id} need an approver.",
            ),
        )
        return next((ApprovalRequirement(rule, reason) for asks, rule, reason in rules if asks), None)


class DecisionRequest(BaseModel):
    """`POST /api/runs/{runId}/approve` and `/reject` body (a rejection needs its comment)."""

    model_config = ConfigDict(alias_generator=to_camel, validate_by_name=True, extra="forbid", frozen=True)

    comment: str | None = Field(
        default=None,
        max_length=MAX_APPROVAL_COMMENT,
        description=f"Why; recorded on the run and sent with its events (required to reject, at most "
        f"{MAX_APPROVAL_COMMENT} characters)",
    )

    @field_validator("comment")
    @classmethod
    def _blank_is_none(cls, value: str | None) -> str | None:
        if value is None:
            return None
        return value.strip() or None

    @classmethod
    def from_wire(cls, body: Any) -> Self:
        return cls.model_validate(body, by_alias=True, by_name=False)
