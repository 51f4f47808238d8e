"""Deployment requests as they arrive over HTTP and on the queue, validated precisely enough to name the field.

The wire uses camelCase (`from_wire` accepts aliases only, so a snake_case key is reported as unknown); Python code
constructs with snake_case. Identifiers are normalised on the way in: the model id loses `/versions/N` (serverless
always deploys the latest version) and the workspace id takes its canonical form, so equal requests compare equal.
The OpenAPI document is generated from these same models (`model_json_schema()`).
"""

from __future__ import annotations

import re
from typing import Any, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator
from pydantic.alias_generators import to_camel

from shared.azure_ids import WorkspaceId
from shared.model_ids import ModelId, parse_model_id
from shared.naming import ENDPOINT_NAME_PATTERN, validate_endpoint_name

MAX_TAGS = 15  # leaves room under ARM's 50 for the tags the broker adds itself
MAX_TAG_NAME = 512
MAX_TAG_VALUE = 256
MAX_TICKET = 256
# ARM refuses these characters in tag names and reserves these prefixes for Azure.
_FORBIDDEN_TAG_CHARACTERS = frozenset("<>%&\\?/")
_RESERVED_TAG_PREFIXES = ("microsoft", "azure", "windows")
_GUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")

ContentSafety = Literal["Enabled", "Disabled"]
RequestType = Literal["deploy", "delete"]


class DeploymentRequest(BaseModel):
    """`POST /api/deployments` body."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        validate_by_name=True,
        validate_by_alias=True,
        extra="forbid",
        frozen=True,
    )

    workspace_id: str = Field(
        description="ARM id of the target project: /subscriptions/{id}/resourceGroups/{rg}/providers/"
        "Microsoft.MachineLearningServices/workspaces/{name}",
    )
    model_id: str = Field(
        description="azureml://registries/<registry>/models/<name>; a /versions/N suffix is ignored "
        "(serverless deploys the latest version)",
    )
    endpoint_name: str | None = Field(
        default=None,
        description="Serverless endpoint name; derived from the model name when omitted",
        json_schema_extra={"pattern": ENDPOINT_NAME_PATTERN.pattern},
    )
    content_safety: ContentSafety = Field(default="Enabled", description="Azure AI Content Safety on the endpoint")
    ticket: str | None = Field(default=None, description="Caller's reference, echoed in status and events")
    tags: dict[str, str] | None = Field(default=None, description=f"At most {MAX_TAGS} tags for the endpoint")
    allow_cross_region: bool = Field(
        default=False,
        description="Accept a workspace whose region does not host the model (consume it via a connection)",
    )

    @classmethod
    def from_wire(cls, body: Any) -> Self:
        """Validate a decoded JSON body; only camelCase names are accepted."""
        return cls.model_validate(body, by_alias=True, by_name=False)

    def to_wire(self) -> dict[str, Any]:
        """The camelCase JSON form (for run records and events)."""
        return self.model_dump(mode="json", by_alias=True)

    @property
    def workspace(self) -> WorkspaceId:
        return WorkspaceId.parse(self.workspace_id)

    @property
    def model(self) -> ModelId:
        return parse_model_id(self.model_id)

    @field_validator("workspace_id")
    @classmethod
    def _canonical_workspace(cls, value: str) -> str:
        return WorkspaceId.parse(value).resource_id

    @field_validator("model_id")
    @classmethod
    def _versionless_model(cls, value: str) -> str:
        return parse_model_id(value).normalized

    @field_validator("endpoint_name")
    @classmethod
    def _valid_endpoint_name(cls, value: str | None) -> str | None:
        return None if value is None else validate_endpoint_name(value)

    @field_validator("ticket")
    @classmethod
    def _valid_ticket(cls, value: str | None) -> str | None:
        if value is None:
            return None
        ticket = value.strip()
        if not ticket:
            raise ValueError("The ticket is blank; omit it or give a reference.")
        if len(ticket) > MAX_TICKET:
            raise ValueError(f"The ticket is {len(ticket)} characters long; the limit is {MAX_TICKET}.")
        return ticket

    @field_validator("tags")
    @classmethod
    def _valid_tags(cls, value: dict[str, str] | None) -> dict[str, str] | None:
        if value is None:
            return None
        if len(value) > MAX_TAGS:
            raise ValueError(f"{len(value)} tags given; the limit is {MAX_TAGS}.")
        for name, tag_value in value.items():
            problem = _tag_problem(name, tag_value)
            if problem:
                raise ValueError(problem)
        return value


class QueueDeploymentRequest(DeploymentRequest):
    """A `deployment-requests` queue message: the HTTP body plus who asked, the ticket, and what to do."""

    requested_by: str = Field(description="Object id (GUID) of the principal the request is made for")
    ticket: str = Field(description="Caller's reference, echoed in the outcome event")
    type: RequestType = Field(default="deploy", description="deploy, or delete the deployment")
    delete_subscription: bool = Field(
        default=False,
        description="With type delete: also delete the Marketplace subscription, unless another endpoint uses it",
    )

    @field_validator("requested_by")
    @classmethod
    def _object_id(cls, value: str) -> str:
        if not _GUID.match(value.strip()):
            raise ValueError(f"requestedBy '{value}' is not an object id (a GUID such as 00000000-0000-...).")
        return value.strip().lower()

    @field_validator("delete_subscription")
    @classmethod
    def _only_when_deleting(cls, value: bool, info: ValidationInfo) -> bool:
        if value and info.data.get("type") != "delete":
            raise ValueError("deleteSubscription applies only to messages of type delete.")
        return value

    def deployment_request(self) -> DeploymentRequest:
        """The part every run stores, whatever the intake."""
        return DeploymentRequest.model_validate(
            self.model_dump(include=set(DeploymentRequest.model_fields)), by_name=True
        )


class RotateKeysRequest(BaseModel):
    """`POST /api/deployments/{deploymentId}/rotate-keys` body."""

    model_config = ConfigDict(alias_generator=to_camel, validate_by_name=True, extra="forbid", frozen=True)

    key_type: Literal["primary", "secondary"] = Field(
        description="The key to regenerate; the other key keeps working, so consumers can switch without downtime"
    )

    @classmethod
    def from_wire(cls, body: Any) -> Self:
        return cls.model_validate(body, by_alias=True, by_name=False)


_WIRE_NAMES = frozenset(to_camel(name) for name in QueueDeploymentRequest.model_fields)


def validation_problems(error: ValidationError) -> list[dict[str, str]]:
    """Pydantic errors as `[{field, message}]` for problem details: dotted wire names, our own messages."""
    problems = []
    for item in error.errors(include_url=False):
        field = ".".join(str(part) for part in item["loc"]) or "(body)"
        problems.append({"field": field, "message": _message(item)})
    return problems


def _message(item: Any) -> str:
    kind = item["type"]
    if kind == "missing":
        return "This field is required."
    if kind == "extra_forbidden":
        suggestion = to_camel(str(item["loc"][-1]))
        if suggestion in _WIRE_NAMES and suggestion != item["loc"][-1]:
            return f"This field is not recognised; did you mean '{suggestion}'?"
        return "This field is not recognised."
    if kind == "model_type":
        return "The body must be a JSON object."
    if kind == "value_error":
        return str(item["ctx"]["error"])
    return str(item["msg"])


def _tag_problem(name: str, value: str) -> str | None:
    if not name.strip():
        return "A tag name is blank."
    if len(name) > MAX_TAG_NAME:
        return f"Tag name '{name[:40]}...' is {len(name)} characters long; the limit is {MAX_TAG_NAME}."
    forbidden = sorted(set(name) & _FORBIDDEN_TAG_CHARACTERS)
    if forbidden:
        return f"Tag name '{name}' contains {', '.join(repr(c) for c in forbidden)}, which Azure does not allow."
    if name.lower().startswith(_RESERVED_TAG_PREFIXES):
        return f"Tag name '{name}' starts with a prefix Azure reserves (microsoft, azure, windows)."
    if len(value) > MAX_TAG_VALUE:
        return f"The value of tag '{name}' is {len(value)} characters long; the limit is {MAX_TAG_VALUE}."
    return None
