"""GET /api/asyncapi.json: the AsyncAPI 3.0.0 description of the broker's queues and events (anonymous).

Payloads are the JSON Schema of the pydantic models the broker validates with: QueueDeploymentRequest for what
ticketing systems send, and the event data models of shared/events.py for each CloudEvent type it sends; operations
are from the broker's side (it receives deployment-requests and sends the rest). Examples are real messages, kept in
handlers/contract_examples.json and checked against these schemas by the tests. Built once, on first request.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any

import azure.functions as func
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel
from pydantic.json_schema import models_json_schema

from handlers.http_responses import json_response, problems_on_crash
from shared.events import (
    DATA_MODELS,
    DEFAULT_SOURCE,
    CloudEvent,
    EventKind,
    RejectedMessageEventData,
)
from shared.hygiene.alerts import DEPLOYMENT_EXTENSION, EVENT_SOURCE, event_type
from shared.hygiene.findings import AlertKind, FindingState, Severity
from shared.requests import QueueDeploymentRequest
from shared.version import broker_version

ASYNCAPI_VERSION = "3.0.0"
SCHEMAS = "#/components/schemas/"
EXAMPLES = Path(__file__).resolve().parent / "contract_examples.json"
CLOUDEVENTS_CONTENT_TYPE = "application/cloudevents+json"

blueprint = func.Blueprint()


class FindingAlertData(BaseModel):
    """`data` of a hygiene-alerts CloudEvent (shared/hygiene/alerts.py): the finding, the deployment it is about,
    and the call that fixes it. Evidence holds facts about the resource, never a key."""

    model_config = ConfigDict(alias_generator=to_camel, validate_by_name=True, extra="forbid", frozen=True)

    finding_id: str = Field(description="Stable per rule and resource (GET /api/hygiene/findings)")
    occurrence: int = Field(ge=1, description="Counts the times the condition came back after being resolved")
    kind: AlertKind
    rule: str
    severity: Severity
    state: FindingState
    workspace_id: str | None
    resource_id: str
    summary: str
    deployment_id: str | None
    run_id: str | None
    tickets: list[str]
    recommended_action: str
    evidence: dict[str, Any]
    first_seen: AwareDatetime
    last_seen: AwareDatetime
    resolved_at: AwareDatetime | None
    delete_after: AwareDatetime | None = Field(
        default=None, description="Only on deletion-scheduled: when the remediation may delete the resource"
    )


@blueprint.function_name("asyncapi_document")
@blueprint.route(route="asyncapi.json", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
@problems_on_crash
def asyncapi(req: func.HttpRequest) -> func.HttpResponse:
    return json_response(asyncapi_document())


@functools.cache
def asyncapi_document() -> dict[str, Any]:
    examples = contract_examples()
    deployment_messages = {kind.value: _deployment_event_message(kind, examples) for kind in EventKind}
    deployment_messages["rejectedMessage"] = {
        "name": "rejectedMessage",
        "title": "A deployment-requests message was refused",
        "summary": "Type com.contoso.broker.deployment.rejected, for a message that never became a run: subject "
        "and id name the queue message; sent only when a ticket can be read from it. The message itself goes to "
        "deployment-requests-poison.",
        "contentType": CLOUDEVENTS_CONTENT_TYPE,
        "payload": _envelope(EventKind.REJECTED.event_type, DEFAULT_SOURCE, "RejectedMessageEventData"),
        "examples": [{"name": "validation-failed", "payload": examples["events"]["rejectedMessage"]}],
    }
    alert_messages = {kind.value: _alert_message(kind, examples) for kind in AlertKind}
    return {
        "asyncapi": ASYNCAPI_VERSION,
        "info": {
            "title": "Serverless Deployment Broker queues and events",
            "version": broker_version(),
            "description": (
                "Azure Storage queues the broker reads and writes. Every message is UTF-8 JSON, base64-encoded as "
                "the Functions queue bindings and azure-storage-queue's default encoding expect. Ticketing systems "
                "put a deployment request on deployment-requests and read its outcome from deployment-events: "
                "each request gets exactly one accepted and one terminal event (succeeded, failed, rejected or "
                "deleted) carrying its own ticket, joiners included. Events are CloudEvents 1.0 in structured JSON "
                "mode; ids are stable, so a repeated announcement can be dropped by (source, id). The queue names "
                "are the defaults; DEPLOYMENT_REQUESTS_QUEUE and DEPLOYMENT_EVENTS_QUEUE rename them. The HTTP API "
                "is described at /api/openapi.json."
            ),
        },
        "defaultContentType": "application/json",
        "servers": {
            "storage": {
                "host": "{account}.queue.core.windows.net",
                "protocol": "https",
                "description": "The broker's storage account (Entra ID auth, no keys: Storage Queue Data "
                "Message Sender to send requests, Reader/Processor to read events)",
                "variables": {"account": {"description": "Storage account name"}},
            }
        },
        "channels": {
            "deploymentRequests": {
                "address": "deployment-requests",
                "title": "Deployment requests from ticketing systems",
                "description": "Same semantics as POST /api/deployments (type deploy) and DELETE "
                "/api/deployments/{id} (type delete), for the principal requestedBy names. At most 64 KiB of "
                "message text (48 KiB of JSON once base64-encoded); a malformed message goes to "
                "deployment-requests-poison, with a rejected event when its ticket is readable.",
                "messages": {
                    "deploymentRequest": {
                        "name": "deploymentRequest",
                        "title": "A deployment request",
                        "contentType": "application/json",
                        "payload": _ref("QueueDeploymentRequest"),
                        "examples": [{"name": "deploy", "payload": examples["queueRequest"]}],
                    }
                },
            },
            "deploymentRequestsPoison": {
                "address": "deployment-requests-poison",
                "title": "Refused deployment requests",
                "description": "Each malformed deployment-requests message, copied exactly once as it arrived, "
                "except that bytes that are not UTF-8 become U+FFFD and a copy over 48 KiB is cut to fit.",
                "messages": {
                    "poisonedRequest": {
                        "name": "poisonedRequest",
                        "title": "A refused deployment request, as it arrived",
                        "contentType": "text/plain",
                        "payload": {"type": "string", "maxLength": 48 * 1024},
                    }
                },
            },
            "deploymentEvents": {
                "address": "deployment-events",
                "title": "Deployment events",
                "description": "CloudEvents about runs (subject = run id; the deployment id for a request "
                "answered without a run) and key rotations.",
                "messages": deployment_messages,
            },
            "hygieneAlerts": {
                "address": "hygiene-alerts",
                "title": "Hygiene alerts",
                "description": "A CloudEvent each time a hygiene finding opens, is resolved, or is scheduled for "
                "deletion (subject = the resource id; the deploymentid extension names the deployment).",
                "messages": alert_messages,
            },
        },
        "operations": {
            "receiveDeploymentRequest": _operation("receive", "deploymentRequests", ["deploymentRequest"]),
            "sendPoisonedRequest": _operation("send", "deploymentRequestsPoison", ["poisonedRequest"]),
            "sendDeploymentEvent": _operation("send", "deploymentEvents", list(deployment_messages)),
            "sendHygieneAlert": _operation("send", "hygieneAlerts", list(alert_messages)),
        },
        "components": {"schemas": _schemas()},
    }


@functools.cache
def contract_examples() -> dict[str, Any]:
    """Real messages and responses, shared with the OpenAPI document's examples."""
    return json.loads(EXAMPLES.read_text(encoding="utf-8"))


def _schemas() -> dict[str, Any]:
    data_models = {model for model in DATA_MODELS.values()} | {RejectedMessageEventData, FindingAlertData}
    _, generated = models_json_schema(
        [
            (QueueDeploymentRequest, "validation"),
            (CloudEvent, "serialization"),
            *((model, "serialization") for model in sorted(data_models, key=lambda model: model.__name__)),
        ],
        by_alias=True,
        ref_template=SCHEMAS + "{model}",
    )
    return generated["$defs"]


def _deployment_event_message(kind: EventKind, examples: dict[str, Any]) -> dict[str, Any]:
    return {
        "name": kind.value,
        "title": kind.event_type,
        "summary": _EVENT_SUMMARIES[kind],
        "contentType": CLOUDEVENTS_CONTENT_TYPE,
        "payload": _envelope(kind.event_type, DEFAULT_SOURCE, DATA_MODELS[kind].__name__),
        "examples": [{"name": kind.value, "payload": examples["events"][kind.value]}],
    }


def _alert_message(kind: AlertKind, examples: dict[str, Any]) -> dict[str, Any]:
    message: dict[str, Any] = {
        "name": kind.value,
        "title": event_type(kind),
        "summary": _ALERT_SUMMARIES[kind],
        "contentType": CLOUDEVENTS_CONTENT_TYPE,
        "payload": _envelope(
            event_type(kind),
            EVENT_SOURCE,
            "FindingAlertData",
            extensions={DEPLOYMENT_EXTENSION: {"type": "string", "description": "The deployment the finding is about"}},
        ),
    }
    if kind is AlertKind.OPENED:
        message["examples"] = [{"name": "endpoint-unhealthy", "payload": examples["hygieneAlert"]}]
    return message


def _envelope(type_: str, source: str, data_schema: str, *, extensions: dict[str, Any] | None = None) -> dict[str, Any]:
    """The CloudEvent envelope, with this message's type, source and data schema."""
    return {
        "allOf": [
            _ref("CloudEvent"),
            {
                "type": "object",
                "properties": {
                    "type": {"const": type_},
                    "source": {"const": source},
                    "data": _ref(data_schema),
                    **(extensions or {}),
                },
            },
        ]
    }


def _operation(action: str, channel: str, messages: list[str]) -> dict[str, Any]:
    return {
        "action": action,
        "channel": {"$ref": f"#/channels/{channel}"},
        "messages": [{"$ref": f"#/channels/{channel}/messages/{name}"} for name in messages],
    }


def _ref(name: str) -> dict[str, str]:
    return {"$ref": SCHEMAS + name}


_EVENT_SUMMARIES = {
    EventKind.ACCEPTED: "The request was taken: a run started, joined, or (for one the deployment already "
    "answered) the run that made it so. First event of every request.",
    EventKind.SUCCEEDED: "The deploy or repair run ended with every condition True (endpoint, keys in Key Vault).",
    EventKind.FAILED: "Azure failed, or did not report the deployment whole; error carries Azure's code.",
    EventKind.REJECTED: "A preflight check (or an approver) refused the request; error.code is the problem slug.",
    EventKind.DELETED: "The delete run tore the deployment down (or it was already deleted).",
    EventKind.KEY_ROTATED: "A key was regenerated and stored as a new version of its Key Vault secret.",
    EventKind.KEY_ROTATION_FAILED: "A key rotation failed; the previous key version stays valid.",
    EventKind.APPROVAL_REQUESTED: "The request waits in PendingApproval, before any Azure write, for an approver.",
    EventKind.APPROVED: "An approver approved the request; the run goes on.",
    EventKind.APPROVAL_REJECTED: "An approver rejected the request, it expired, or it was withdrawn by a delete.",
}
_ALERT_SUMMARIES = {
    AlertKind.OPENED: "A finding opened (its condition lasted past its grace window).",
    AlertKind.RESOLVED: "A finding's condition is gone.",
    AlertKind.DELETION_SCHEDULED: "Remediation will delete the resource after the grace period (deleteAfter).",
}
