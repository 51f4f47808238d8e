"""GET /api/openapi.json: the OpenAPI 3.1 description of the broker's HTTP API (anonymous).

Bodies are described by the JSON Schema of the same pydantic models the code validates and serialises with, and
problem types come from shared.problems.CATALOG, so the document cannot drift from what the broker accepts and
answers. It is built on first request and cached; only `servers` (the caller's origin) is added per request.
"""

from __future__ import annotations

import functools
from typing import Any
from urllib.parse import urlsplit

import azure.functions as func
from pydantic.json_schema import models_json_schema

from handlers.deployments import DEFAULT_PAGE_SIZE, IDEMPOTENCY_KEY_HEADER, MAX_IDEMPOTENCY_KEY, MAX_PAGE_SIZE
from handlers.http_responses import json_response, problems_on_crash
from handlers.principal import OBJECT_ID_CLAIMS, PRINCIPAL_HEADER, PRINCIPAL_ID_HEADER
from shared.problems import CATALOG, CONTENT_TYPE
from shared.requests import DeploymentRequest, QueueDeploymentRequest, RotateKeysRequest
from shared.runs import RunRecord
from shared.version import broker_version

OPENAPI_VERSION = "3.1.0"
ROUTE_PREFIX = "/api"  # host.json extensions.http.routePrefix
SCHEMAS = "#/components/schemas/"
# What to_public_dict() leaves out of a run: an idempotency key is private to the caller who chose it.
PRIVATE_RUN_FIELDS = ("idempotencyKey",)

blueprint = func.Blueprint()


@blueprint.function_name("openapi_document")
@blueprint.route(route="openapi.json", methods=["GET"], auth_level=func.AuthLevel.ANONYMOUS)
@problems_on_crash
def openapi(req: func.HttpRequest) -> func.HttpResponse:
    parts = urlsplit(req.url)
    servers = [{"url": f"{parts.scheme}://{parts.netloc}"}] if parts.netloc else []
    return json_response({**openapi_document(), "servers": servers})


@functools.cache
def openapi_document() -> dict[str, Any]:
    return {
        "openapi": OPENAPI_VERSION,
        "info": {
            "title": "Serverless Deployment Broker",
            "version": broker_version(),
            "description": (
                "Self-service Azure AI Foundry serverless API deployments. A deployment request is answered at "
                "once with a run; poll the run (Operation-Location) until it is Succeeded, Rejected or Failed. "
                "Errors are RFC 9457 application/problem+json with a stable `type` per failure. Ticketing systems "
                "may instead put a QueueDeploymentRequest on the deployment-requests queue."
            ),
        },
        "paths": _paths(),
        "components": {"schemas": _schemas(), "securitySchemes": _SECURITY_SCHEMES},
        "security": [{"functionKey": []}, {"functionKeyQuery": []}],
    }


_SECURITY_SCHEMES = {
    "functionKey": {"type": "apiKey", "in": "header", "name": "x-functions-key"},
    "functionKeyQuery": {"type": "apiKey", "in": "query", "name": "code"},
}


def _paths() -> dict[str, Any]:
    return {
        f"{ROUTE_PREFIX}/deployments": {
            "post": {
                "operationId": "submit_deployment",
                "summary": "Request a serverless deployment of a model into a workspace",
                "parameters": [_IDEMPOTENCY_KEY, *_PRINCIPAL_HEADERS],
                "requestBody": {
                    "required": True,
                    "content": {"application/json": {"schema": _ref("DeploymentRequest")}},
                },
                "responses": {
                    "202": _run_response("Accepted: a new run; poll Operation-Location for its outcome"),
                    "200": _run_response("An existing run answers this request (same Idempotency-Key, or in flight)"),
                    **_problem_responses(
                        "validation-failed",
                        "endpoint-name-invalid",
                        "unauthorized",
                        "requester-forbidden",
                        "model-not-approved",
                        "workspace-not-allowed",
                        "broker-permissions-missing",
                        "deployment-conflict",
                        "region-unsupported",
                        "idempotency-conflict",
                        "azure-unavailable",
                        "internal",
                    ),
                },
            },
            "get": {
                "operationId": "list_deployments",
                "summary": "List runs matching the filters, a page at a time",
                "parameters": [
                    _query("workspaceId", "Only runs for this workspace (ARM id)"),
                    _query("status", "Only runs in this status", {"$ref": SCHEMAS + "RunStatus"}),
                    _query("ticket", "Only runs for this ticket"),
                    _query("continuationToken", "From the previous page's nextLink"),
                    _query(
                        "pageSize",
                        "Runs per page",
                        {"type": "integer", "minimum": 1, "maximum": MAX_PAGE_SIZE, "default": DEFAULT_PAGE_SIZE},
                    ),
                ],
                "responses": {
                    "200": _json_response("A page of runs", _ref("RunPage")),
                    **_problem_responses("validation-failed", "internal"),
                },
            },
        },
        f"{ROUTE_PREFIX}/deployments/{{runId}}": {
            "get": {
                "operationId": "get_deployment",
                "summary": "A run: its status, step history, endpoint, Key Vault secret ids or error",
                "parameters": [
                    {"name": "runId", "in": "path", "required": True, "schema": {"type": "string"}},
                ],
                "responses": {
                    "200": _json_response("The run", _ref("RunRecord")),
                    **_problem_responses("not-found", "internal"),
                },
            },
            "delete": {
                "operationId": "delete_deployment",
                "summary": "Tear down the deployment this deploy run made: endpoint, Key Vault secrets (soft delete), "
                "cross-region connection and, when asked and unused elsewhere, the Marketplace subscription. "
                "Answered with a delete run (Validating, Deleting, Deleted) that names this run; the deploy run "
                "records the delete run once it is Deleted.",
                "parameters": [
                    {"name": "runId", "in": "path", "required": True, "schema": {"type": "string"}},
                    _query(
                        "deleteSubscription",
                        "Also delete the Marketplace subscription (refused while other endpoints use it)",
                        {"type": "boolean", "default": False},
                    ),
                    *_PRINCIPAL_HEADERS,
                ],
                "responses": {
                    "202": _run_response("Accepted: a new delete run; poll Operation-Location for its outcome"),
                    "200": _run_response("A teardown of this deployment is already under way: its run"),
                    **_problem_responses(
                        "validation-failed",
                        "unauthorized",
                        "requester-forbidden",
                        "not-found",
                        "deployment-conflict",
                        "subscription-in-use",
                        "deployment-state-conflict",
                        "azure-unavailable",
                        "internal",
                    ),
                },
            },
        },
        f"{ROUTE_PREFIX}/deployments/{{runId}}/rotate-keys": {
            "post": {
                "operationId": "rotate_deployment_keys",
                "summary": "Regenerate one key of the deployment's endpoint and store it as a new version of that "
                "key's Key Vault secret; the other key is left alone. Poll the run's keyRotations for the outcome.",
                "parameters": [
                    {"name": "runId", "in": "path", "required": True, "schema": {"type": "string"}},
                    *_PRINCIPAL_HEADERS,
                ],
                "requestBody": {
                    "required": True,
                    "content": {"application/json": {"schema": _ref("RotateKeysRequest")}},
                },
                "responses": {
                    "202": {
                        **_json_response("Accepted: the rotation, recorded on the run", _ref("KeyRotation")),
                        "headers": _RUN_HEADERS,
                    },
                    **_problem_responses(
                        "validation-failed",
                        "unauthorized",
                        "requester-forbidden",
                        "not-found",
                        "deployment-state-conflict",
                        "azure-unavailable",
                        "internal",
                    ),
                },
            },
        },
        f"{ROUTE_PREFIX}/models/availability": {
            "get": {
                "operationId": "model_availability",
                "summary": "Where a model deploys, whether it is sold through Marketplace, and whether a "
                "workspace's region fits",
                "parameters": [
                    _query("modelId", "azureml://registries/<registry>/models/<name>", required=True),
                    _query("workspaceId", "Also check this workspace's region (ARM id)"),
                ],
                "responses": {
                    "200": _json_response("The model's availability", _ref("ModelAvailability")),
                    **_problem_responses("validation-failed", "not-found", "azure-unavailable", "internal"),
                },
            },
        },
        f"{ROUTE_PREFIX}/hygiene/findings": {
            "get": {
                "operationId": "hygiene_findings",
                "summary": "Hygiene findings: Unhealthy, failed or unmanaged endpoints, missing or orphaned secrets, "
                "stuck runs",
                "parameters": [
                    _query("rule", "Only findings of this rule"),
                    _query("severity", "Only findings of this severity"),
                    _query("workspaceId", "Only findings in this workspace (ARM id)"),
                    _query("state", "open, resolved or pending"),
                    _query("continuationToken", "From the previous page's nextLink"),
                    _query("pageSize", "Findings per page", {"type": "integer", "minimum": 1}),
                ],
                "responses": {
                    "200": _json_response("A page of findings", {"type": "object"}),
                    **_problem_responses("validation-failed", "internal"),
                },
            },
        },
        f"{ROUTE_PREFIX}/hygiene/report": {
            "get": {
                "operationId": "hygiene_report",
                "summary": "The latest hygiene scan: when, how long, what was scanned, counts and errors",
                "responses": {
                    "200": _json_response("The latest scan report", {"type": "object"}),
                    **_problem_responses("not-found", "internal"),
                },
            },
        },
        f"{ROUTE_PREFIX}/openapi.json": {
            "get": {
                "operationId": "openapi_document",
                "summary": "This document",
                "security": [],
                "responses": {"200": _json_response("OpenAPI 3.1 document", {"type": "object"})},
            },
        },
        f"{ROUTE_PREFIX}/health": {
            "get": {
                "operationId": "health",
                "summary": "Version and reachability of each dependency",
                "security": [],
                "responses": {
                    "200": _json_response("Every dependency answers", _ref("Health")),
                    "503": _json_response("A dependency does not answer", _ref("Health")),
                },
            },
        },
    }


def _schemas() -> dict[str, Any]:
    _, generated = models_json_schema(
        [
            (DeploymentRequest, "validation"),
            (QueueDeploymentRequest, "validation"),
            (RotateKeysRequest, "validation"),
            (RunRecord, "serialization"),
        ],
        by_alias=True,
        ref_template=SCHEMAS + "{model}",
    )
    schemas: dict[str, Any] = generated["$defs"]
    run = schemas["RunRecord"]
    for name in PRIVATE_RUN_FIELDS:
        run["properties"].pop(name)
    run["required"] = [name for name in run["required"] if name not in PRIVATE_RUN_FIELDS]
    schemas["QueueDeploymentRequest"]["description"] = (
        "A deployment-requests queue message (base64 JSON): the HTTP body plus who asked and the ticket; the "
        "outcome is published as a CloudEvent on deployment-events."
    )
    return {
        **schemas,
        "RunPage": {
            "type": "object",
            "properties": {
                "value": {"type": "array", "items": _ref("RunRecord")},
                "nextLink": {
                    "anyOf": [{"type": "string", "format": "uri"}, {"type": "null"}],
                    "description": "The next page (same filters), or null on the last page",
                },
            },
            "required": ["value", "nextLink"],
            "additionalProperties": False,
        },
        "Problem": _problem_schema(),
        "ModelAvailability": _AVAILABILITY_SCHEMA,
        "Health": _HEALTH_SCHEMA,
    }


def _problem_schema() -> dict[str, Any]:
    listing = "\n".join(f"- `{kind.uri}` ({kind.status}): {kind.title}" for kind in CATALOG.values())
    return {
        "type": "object",
        "description": "RFC 9457 problem details. Extensions such as `missingActions` may appear besides these.",
        "properties": {
            "type": {
                "type": "string",
                "format": "uri",
                "enum": [kind.uri for kind in CATALOG.values()],
                "description": f"The failure, stable across releases:\n{listing}",
            },
            "title": {"type": "string"},
            "status": {"type": "integer", "enum": sorted({kind.status for kind in CATALOG.values()})},
            "detail": {"type": "string", "description": "What is wrong and how to fix it"},
            "instance": {"type": "string", "format": "uri-reference"},
            "runId": {"type": "string", "description": "The run that recorded this rejection"},
            "errors": {
                "type": "array",
                "description": "Each invalid field (validation-failed)",
                "items": {
                    "type": "object",
                    "properties": {"field": {"type": "string"}, "message": {"type": "string"}},
                    "required": ["field", "message"],
                },
            },
        },
        "required": ["type", "title", "status"],
    }


_AVAILABILITY_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "modelId": {"type": "string"},
        "soldDirectly": {"type": "boolean"},
        "requiresMarketplaceSubscription": {"type": "boolean"},
        "source": {"enum": ["catalog", "prefix-rule"], "description": "What decided how the model is sold"},
        "explanation": {"type": "string"},
        "supportedRegions": {
            "anyOf": [{"type": "array", "items": {"type": "string"}}, {"type": "null"}],
            "description": "ARM location names; null when the catalog does not know them",
        },
        "workspace": {
            "type": "object",
            "properties": {
                "id": {"type": "string"},
                "location": {"type": "string"},
                "supported": {"anyOf": [{"type": "boolean"}, {"type": "null"}]},
            },
            "required": ["id", "location", "supported"],
        },
    },
    "required": ["modelId", "soldDirectly", "requiresMarketplaceSubscription", "source", "supportedRegions"],
    "additionalProperties": False,
}

_HEALTH_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "status": {"enum": ["healthy", "degraded"]},
        "version": {"type": "string"},
        "dependencies": {
            "type": "object",
            "additionalProperties": {
                "type": "object",
                "properties": {
                    "status": {"enum": ["ok", "unavailable"]},
                    "latencyMs": {"type": "number"},
                    "error": {"type": "string"},
                },
                "required": ["status", "latencyMs"],
            },
        },
    },
    "required": ["status", "version", "dependencies"],
}

_IDEMPOTENCY_KEY = {
    "name": IDEMPOTENCY_KEY_HEADER,
    "in": "header",
    "description": "Retrying with the same key (same caller, same body) returns the same run instead of a new one",
    "schema": {"type": "string", "minLength": 1, "maxLength": MAX_IDEMPOTENCY_KEY},
}
_PRINCIPAL_HEADERS = [
    {
        "name": PRINCIPAL_HEADER,
        "in": "header",
        "description": "Set by App Service authentication in Azure: base64 JSON whose claims carry the caller's "
        f"object id ('{OBJECT_ID_CLAIMS[0]}' or 'oid'). This or {PRINCIPAL_ID_HEADER} is required.",
        "schema": {"type": "string"},
    },
    {
        "name": PRINCIPAL_ID_HEADER,
        "in": "header",
        "description": f"The caller's object id; used when {PRINCIPAL_HEADER} carries none.",
        "schema": {"type": "string", "format": "uuid"},
    },
]
_RUN_HEADERS = {
    "Location": {"description": "The run (relative URL)", "schema": {"type": "string"}},
    "Operation-Location": {"description": "The run (absolute URL) to poll", "schema": {"type": "string"}},
}


def _ref(name: str) -> dict[str, str]:
    return {"$ref": SCHEMAS + name}


def _query(name: str, description: str, schema: dict[str, Any] | None = None, *, required: bool = False) -> dict:
    return {
        "name": name,
        "in": "query",
        "required": required,
        "description": description,
        "schema": schema or {"type": "string"},
    }


def _json_response(description: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _run_response(description: str) -> dict[str, Any]:
    return {**_json_response(description, _ref("RunRecord")), "headers": _RUN_HEADERS}


def _problem_responses(*slugs: str) -> dict[str, Any]:
    """One response per status, naming the problem types an operation can answer with under it."""
    titles: dict[int, list[str]] = {}
    for slug in slugs:
        kind = CATALOG[slug]
        titles.setdefault(kind.status, []).append(f"{kind.slug}: {kind.title}")
    return {
        str(status): {
            "description": "; ".join(names),
            "content": {CONTENT_TYPE: {"schema": _ref("Problem")}},
        }
        for status, names in sorted(titles.items())
    }
