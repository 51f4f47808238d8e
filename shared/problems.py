"""RFC 9457 problem details, with every failure type the broker reports defined once, here.

A problem type's slug doubles as the `code` of a rejected run's error, so an HTTP client, a queue consumer reading
an event and an operator reading a run record all see the same stable identifier.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

PROBLEM_TYPE_BASE = "https://contoso.com/problems/deployment-broker/"
CONTENT_TYPE = "application/problem+json"

_STANDARD_MEMBERS = frozenset({"type", "title", "status", "detail", "instance"})
# RFC 9457 section 3.2: extension names should start with a letter and use letters, digits and '_', 3+ long.
_EXTENSION_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]{2,}$")


@dataclass(frozen=True)
class ProblemType:
    slug: str
    title: str
    status: int

    @property
    def uri(self) -> str:
        return PROBLEM_TYPE_BASE + self.slug


VALIDATION_FAILED = ProblemType("validation-failed", "The request is not valid", 400)
# The body broke a limit of shared/wire.py: bigger than 1 MiB (413), or not JSON in UTF-8 by its Content-Type (415).
PAYLOAD_TOO_LARGE = ProblemType("payload-too-large", "The request body is larger than the broker accepts", 413)
UNSUPPORTED_MEDIA_TYPE = ProblemType(
    "unsupported-media-type", "The request body is not JSON (application/json in UTF-8)", 415
)
ENDPOINT_NAME_INVALID = ProblemType("endpoint-name-invalid", "The endpoint name is not valid", 400)
UNAUTHORIZED = ProblemType("unauthorized", "The caller is not authenticated", 401)
REQUESTER_FORBIDDEN = ProblemType("requester-forbidden", "The caller may not deploy into this workspace", 403)
MODEL_NOT_APPROVED = ProblemType("model-not-approved", "The model is not approved for deployment", 403)
WORKSPACE_NOT_ALLOWED = ProblemType("workspace-not-allowed", "The broker does not deploy into this workspace", 403)
BROKER_PERMISSIONS_MISSING = ProblemType(
    "broker-permissions-missing", "The broker lacks the permissions this deployment needs", 403
)
NOT_FOUND = ProblemType("not-found", "No such resource", 404)
DEPLOYMENT_CONFLICT = ProblemType(
    "deployment-conflict", "The workspace already has a deployment that conflicts with this one", 409
)
REGION_UNSUPPORTED = ProblemType("region-unsupported", "The model cannot be deployed in the workspace's region", 422)
MODEL_UNKNOWN = ProblemType("model-unknown", "The model is not in the model catalog", 422)
# The IETF Idempotency-Key draft answers a reused key with a different payload with 422.
IDEMPOTENCY_CONFLICT = ProblemType(
    "idempotency-conflict", "The idempotency key was already used for a different request", 422
)
SUBSCRIPTION_IN_USE = ProblemType(
    "subscription-in-use", "Other endpoints use the Marketplace subscription this request would delete", 409
)
DEPLOYMENT_STATE_CONFLICT = ProblemType(
    "deployment-state-conflict", "The deployment's current state does not allow this operation", 409
)
# Approvals (shared/deployments/approvals.py): who may decide, on which run, and how a waiting request ends.
APPROVER_REQUIRED = ProblemType("approver-required", "Only an approver may decide on requests that need approval", 403)
SELF_APPROVAL_FORBIDDEN = ProblemType("self-approval-forbidden", "Requesters may not decide on their own requests", 403)
RUN_STATE_CONFLICT = ProblemType("run-state-conflict", "The run's current state does not allow this decision", 409)
APPROVAL_REJECTED = ProblemType("approval-rejected", "An approver rejected the request", 403)
APPROVAL_EXPIRED = ProblemType("approval-expired", "No approver decided on the request in time", 403)
APPROVAL_WITHDRAWN = ProblemType(
    "approval-withdrawn", "The deployment was deleted while its request waited for approval", 409
)
AZURE_UNAVAILABLE = ProblemType("azure-unavailable", "Azure did not answer in time; retry later", 503)
INTERNAL = ProblemType("internal", "The broker failed unexpectedly", 500)

CATALOG: Mapping[str, ProblemType] = {
    kind.slug: kind
    for kind in (
        VALIDATION_FAILED,
        PAYLOAD_TOO_LARGE,
        UNSUPPORTED_MEDIA_TYPE,
        ENDPOINT_NAME_INVALID,
        UNAUTHORIZED,
        REQUESTER_FORBIDDEN,
        MODEL_NOT_APPROVED,
        WORKSPACE_NOT_ALLOWED,
        BROKER_PERMISSIONS_MISSING,
        NOT_FOUND,
        DEPLOYMENT_CONFLICT,
        REGION_UNSUPPORTED,
        MODEL_UNKNOWN,
        IDEMPOTENCY_CONFLICT,
        SUBSCRIPTION_IN_USE,
        DEPLOYMENT_STATE_CONFLICT,
        APPROVER_REQUIRED,
        SELF_APPROVAL_FORBIDDEN,
        RUN_STATE_CONFLICT,
        APPROVAL_REJECTED,
        APPROVAL_EXPIRED,
        APPROVAL_WITHDRAWN,
        AZURE_UNAVAILABLE,
        INTERNAL,
    )
}


@dataclass(frozen=True)
class Problem:
    """One problem occurrence; `extensions` become top-level members (e.g. `errors`, `missingActions`)."""

    kind: ProblemType
    detail: str | None = None
    instance: str | None = None
    extensions: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for name in self.extensions:
            if name in _STANDARD_MEMBERS or not _EXTENSION_NAME.match(name):
                raise ValueError(f"'{name}' cannot be a problem extension member.")

    @classmethod
    def of(cls, slug: str, detail: str | None = None, *, instance: str | None = None, **extensions: Any) -> Problem:
        """A problem of a catalogued type; an unknown slug is a programming error (KeyError)."""
        return cls(CATALOG[slug], detail, instance, extensions)

    @classmethod
    def validation(cls, errors: list[dict[str, str]], *, instance: str | None = None) -> Problem:
        """400 validation-failed listing `[{field, message}]` (see shared.requests.validation_problems)."""
        fields = ", ".join(dict.fromkeys(error["field"] for error in errors))
        return cls(VALIDATION_FAILED, f"Invalid fields: {fields}.", instance, {"errors": errors})

    @property
    def status(self) -> int:
        return self.kind.status

    def to_dict(self) -> dict[str, Any]:
        body: dict[str, Any] = {"type": self.kind.uri, "title": self.kind.title, "status": self.kind.status}
        if self.detail is not None:
            body["detail"] = self.detail
        if self.instance is not None:
            body["instance"] = self.instance
        body.update(self.extensions)
        return body
