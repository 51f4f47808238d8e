"""GET /api/openapi.json: the OpenAPI 3.1 description of the broker's HTTP API (anonymous).

Bodies are described by the JSON Schema of the same pydantic models the code validates and serialises with, and
problem types come from shared.problems.CATALOG, so the document cannot drift from what the broker accepts and
answers. Every JSON response carries examples: real bodies from handlers/contract_examples.json (the tests check
them against their schemas) and one per problem type. It is built on first request and cached; only `servers` (the
caller's origin) is added per request.
"""

from __future__ import annotations

import functools
from typing import Any
from urllib.parse import urlsplit

import azure.functions as func
from pydantic.json_schema import models_json_schema

from handlers import docs
from handlers.asyncapi import contract_examples
from handlers.deployments import DEFAULT_PAGE_SIZE as DEPLOYMENT_PAGE_SIZE
from handlers.deployments import IDEMPOTENCY_KEY_HEADER, MAX_IDEMPOTENCY_KEY
from handlers.deployments import MAX_PAGE_SIZE as MAX_DEPLOYMENT_PAGE_SIZE
from handlers.http_responses import json_response, problems_on_crash
from handlers.hygiene import DEFAULT_PAGE_SIZE as FINDING_PAGE_SIZE
from handlers.hygiene import MAX_PAGE_SIZE as MAX_FINDING_PAGE_SIZE
from handlers.models import DEFAULT_PAGE_SIZE as MODEL_PAGE_SIZE
from handlers.models import MAX_PAGE_SIZE as MAX_MODEL_PAGE_SIZE
from handlers.principal import OBJECT_ID_CLAIMS, PRINCIPAL_HEADER, PRINCIPAL_ID_HEADER
from handlers.runs import DEFAULT_PAGE_SIZE as RUN_PAGE_SIZE
from handlers.runs import MAX_PAGE_SIZE as MAX_RUN_PAGE_SIZE
from handlers.submissions import RESOURCE_LOCATION
from shared.approvals import MAX_APPROVAL_COMMENT, DecisionRequest
from shared.deployment import Deployment
from shared.deployments.model_list import ModelListing
from shared.deployments.what_if import WhatIf
from shared.hygiene.findings import PRIVATE_FIELDS as PRIVATE_FINDING_FIELDS
from shared.hygiene.findings import FindingRecord
from shared.hygiene.report import ScanReport, VisibleScanReport
from shared.problems import (
    AZURE_UNAVAILABLE,
    CATALOG,
    CONTENT_TYPE,
    INTERNAL,
    PAYLOAD_TOO_LARGE,
    UNAUTHORIZED,
    UNSUPPORTED_MEDIA_TYPE,
)
from shared.requests import DeploymentRequest, QueueDeploymentRequest, RotateKeysRequest
from shared.runs import MAX_LISTED_JOINERS, RunRecord
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
                "Self-service Azure AI Foundry serverless API deployments. Each (workspace, model) has one "
                "Deployment resource (Location), with a spec, a phase and conditions read from Azure. Operations on "
                "it (deploy, repair, delete) are runs: a request that starts or joins one is answered 202 at once; "
                "poll the run (Operation-Location) until it ends, then GET the deployment. A request the deployment "
                "already satisfies is answered 200 with the deployment. Errors are RFC 9457 "
                "application/problem+json with a stable `type` per failure. Ticketing systems may instead put a "
                "QueueDeploymentRequest on the deployment-requests queue and read CloudEvents from "
                "deployment-events."
            ),
        },
        "paths": _with_examples(_paths()),
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
                "description": "Reconciled against the deployment of that model in that workspace: none yet (or "
                "deleted, or failed) starts a deploy run; one in flight for the same spec is joined; a Ready one "
                "Azure agrees with answers at once; a Degraded one, or one Azure disagrees with, gets a repair run; "
                "a request for another spec is refused (409 deployment-conflict).",
                "parameters": [_IDEMPOTENCY_KEY, *_PRINCIPAL_HEADERS],
                "requestBody": {
                    "required": True,
                    "content": {"application/json": {"schema": _ref("DeploymentRequest")}},
                },
                "responses": {
                    "200": {
                        **_json_response(
                            "Nothing to run: the deployment was already Ready as asked (the Deployment), or a retry "
                            "with the same Idempotency-Key gets the first answer again (that Deployment or run)",
                            {"oneOf": [_ref("Deployment"), _ref("RunRecord")]},
                        ),
                        "headers": {"Location": _DEPLOYMENT_LOCATION, "Operation-Location": _ANSWERING_RUN},
                    },
                    "202": _run_response(
                        "Accepted: a new deploy or repair run, or the run already in flight for the same spec, "
                        "which now answers this request too; poll Operation-Location until it ends. A new "
                        "deployment the approval policy names waits in PendingApproval, before any Azure write, "
                        "until an approver decides (POST /api/runs/{runId}/approve or /reject) or it expires"
                    ),
                    **_problem_responses(
                        "validation-failed",
                        "payload-too-large",
                        "unsupported-media-type",
                        "endpoint-name-invalid",
                        "unauthorized",
                        "requester-forbidden",
                        "model-not-approved",
                        "workspace-not-allowed",
                        "broker-permissions-missing",
                        "not-found",
                        "deployment-conflict",
                        "deployment-state-conflict",
                        "region-unsupported",
                        "model-unknown",
                        "idempotency-conflict",
                        "approval-rejected",
                        "approval-expired",
                        "approval-withdrawn",
                        "azure-unavailable",
                        "internal",
                        recorded=True,
                    ),
                },
            },
            "get": {
                "operationId": "list_deployments",
                "summary": "List deployments matching the filters, a page at a time",
                "description": "Only the deployments the caller may see: in workspaces they may read "
                "(Microsoft.MachineLearningServices/workspaces/read), those they requested, or every one for the "
                "auditor and approver app roles. The others are left out silently, and a page is filled from "
                "further store pages (a page may still come back short, with its nextLink).",
                "parameters": [
                    *_PRINCIPAL_HEADERS,
                    _query("workspaceId", "Only deployments into this workspace (ARM id)"),
                    _query("modelId", "Only deployments of this model (azureml://registries/<registry>/models/<name>)"),
                    _query("phase", "Only deployments in this phase", _ref("Phase")),
                    _query("ticket", "Only deployments a request with this ticket asked for"),
                    _query("continuationToken", "From the previous page's nextLink"),
                    _page_size("Deployments per page", DEPLOYMENT_PAGE_SIZE, MAX_DEPLOYMENT_PAGE_SIZE),
                ],
                "responses": {
                    "200": _json_response("A page of deployments", _ref("DeploymentPage")),
                    **_problem_responses("validation-failed", "unauthorized", "azure-unavailable", "internal"),
                },
            },
        },
        f"{ROUTE_PREFIX}/deployments/what-if": {
            "post": {
                "operationId": "what_if_deployment",
                "summary": "What POST /api/deployments with this body would do, writing nothing anywhere",
                "description": "Walks intake's path with reads only (ARM GETs, permission reads, Key Vault secret "
                "properties): the verdict, what intake would do (create, join, ready, repair or rejected), every "
                "preflight check with its outcome (not only the first failure), the approval a deploy run would "
                "wait for, each Azure write its run would make, and the per-deployment limits. No run, row, queue "
                "message, ARM or Key Vault write, and no listKeys. A caller who may not deploy into the workspace "
                "(and holds neither the auditor nor the approver role) is answered as if no deployment existed.",
                "parameters": list(_PRINCIPAL_HEADERS),
                "requestBody": {
                    "required": True,
                    "content": {"application/json": {"schema": _ref("DeploymentRequest")}},
                },
                "responses": {
                    "200": _json_response("What the request would do", _ref("WhatIf")),
                    **_problem_responses(
                        "validation-failed",
                        "payload-too-large",
                        "unsupported-media-type",
                        "unauthorized",
                        "azure-unavailable",
                        "internal",
                    ),
                },
            },
        },
        f"{ROUTE_PREFIX}/deployments/{{deploymentId}}": {
            "get": {
                "operationId": "get_deployment",
                "summary": "A deployment: its spec, phase, conditions, endpoint, Key Vault secret ids and runs",
                "description": "A deployment the caller may not see (see the list) answers 404 exactly as a "
                "missing one does; so do its repair, delete and rotate-keys.",
                "parameters": [_DEPLOYMENT_ID, *_PRINCIPAL_HEADERS],
                "responses": {
                    "200": _json_response("The deployment", _ref("Deployment")),
                    **_problem_responses("unauthorized", "not-found", "azure-unavailable", "internal"),
                },
            },
            "delete": {
                "operationId": "delete_deployment",
                "summary": "Tear the deployment down: endpoint, Key Vault secrets (soft delete), cross-region "
                "connection and, when asked and unused elsewhere, the Marketplace subscription",
                "description": "Answered with a delete run (Validating, Deleting, Deleted). Idempotent at the "
                "resource: a deployment already Deleted answers 200 with itself (status.deleteRunId names the "
                "run that deleted it; no new run, no new event), and a teardown in flight answers 202 with its "
                "run, which then answers this request too. Refused while a deploy or repair run is in flight, except "
                "a deploy run waiting for approval: that request is withdrawn (its run ends Rejected, "
                "approval-withdrawn) and the teardown goes on, finding nothing made in Azure.",
                "parameters": [
                    _DEPLOYMENT_ID,
                    _query(
                        "deleteSubscription",
                        "Also delete the Marketplace subscription (refused while other endpoints use it)",
                        {"type": "boolean", "default": False},
                    ),
                    *_PRINCIPAL_HEADERS,
                ],
                "responses": {
                    "200": {
                        **_json_response(
                            "Already deleted: the deployment, as its delete run left it", _ref("Deployment")
                        ),
                        "headers": {
                            "Location": _DEPLOYMENT_LOCATION,
                            "Operation-Location": {
                                "description": "The delete run that deleted it (absolute URL)",
                                "schema": _URL,
                            },
                        },
                    },
                    "202": _run_response(
                        "Accepted: a new delete run, or the delete run already in flight, which now answers this "
                        "request too; poll Operation-Location until it is Deleted or Failed"
                    ),
                    **_problem_responses(
                        "validation-failed",
                        "endpoint-name-invalid",
                        "unauthorized",
                        "requester-forbidden",
                        "not-found",
                        "deployment-conflict",
                        "subscription-in-use",
                        "deployment-state-conflict",
                        "azure-unavailable",
                        "internal",
                        recorded=True,
                    ),
                },
            },
        },
        f"{ROUTE_PREFIX}/deployments/{{deploymentId}}/repair": {
            "post": {
                "operationId": "repair_deployment",
                "summary": "Reconcile the deployment with Azure again, as if its request had been sent again",
                "description": "Azure's state is re-read: when it reports every condition True the deployment "
                "answers as it is; otherwise a repair run starts at the first thing Azure lacks.",
                "parameters": [_DEPLOYMENT_ID, *_PRINCIPAL_HEADERS],
                "responses": {
                    "200": {
                        **_json_response("Nothing to repair: the deployment, Ready", _ref("Deployment")),
                        "headers": {"Location": _DEPLOYMENT_LOCATION},
                    },
                    "202": _run_response(
                        "Accepted: a repair (or, for a failed deployment, a deploy) run, or the run already in "
                        "flight; poll Operation-Location until it ends"
                    ),
                    **_problem_responses(
                        "unauthorized",
                        "requester-forbidden",
                        "model-not-approved",
                        "workspace-not-allowed",
                        "broker-permissions-missing",
                        "not-found",
                        "deployment-conflict",
                        "deployment-state-conflict",
                        "region-unsupported",
                        "model-unknown",
                        "azure-unavailable",
                        "internal",
                        recorded=True,
                    ),
                },
            },
        },
        f"{ROUTE_PREFIX}/deployments/{{deploymentId}}/rotate-keys": {
            "post": {
                "operationId": "rotate_deployment_keys",
                "summary": "Regenerate one key of the deployment's endpoint and store it as a new version of that "
                "key's Key Vault secret; the other key is left alone",
                "description": "The rotation is recorded on the run whose secrets hold the deployment's keys "
                "(status.keysRunId); poll that run's keyRotations (Operation-Location) for the outcome.",
                "parameters": [_DEPLOYMENT_ID, *_PRINCIPAL_HEADERS],
                "requestBody": {
                    "required": True,
                    "content": {"application/json": {"schema": _ref("RotateKeysRequest")}},
                },
                "responses": {
                    "202": {
                        **_json_response("Accepted: the rotation, recorded on the run", _ref("KeyRotation")),
                        "headers": {
                            "Location": _DEPLOYMENT_LOCATION,
                            "Operation-Location": {
                                "description": "The run recording the rotation (absolute URL) to poll",
                                "schema": _URL,
                            },
                        },
                    },
                    **_with_headers(
                        _problem_responses(
                            "validation-failed",
                            "payload-too-large",
                            "unsupported-media-type",
                            "unauthorized",
                            "requester-forbidden",
                            "not-found",
                            "deployment-state-conflict",
                            "azure-unavailable",
                            "internal",
                        ),
                        {"403", "409"},
                        {"Location": _DEPLOYMENT_LOCATION},
                    ),
                },
            },
        },
        f"{ROUTE_PREFIX}/runs": {
            "get": {
                "operationId": "list_runs",
                "summary": "List runs (deploy, repair and delete operations) matching the filters, a page at a time",
                "description": "Only the runs the caller may see: in workspaces they may read "
                "(Microsoft.MachineLearningServices/workspaces/read), those they started or joined, or every one "
                "for the auditor and approver app roles. The others are left out silently, and a page is filled "
                "from further store pages (a page may still come back short, with its nextLink).",
                "parameters": [
                    *_PRINCIPAL_HEADERS,
                    _query("deploymentId", "Only runs of this deployment"),
                    _query("workspaceId", "Only runs for this workspace (ARM id)"),
                    _query("status", "Only runs in this status", _ref("RunStatus")),
                    _query("ticket", "Only runs answering a request with this ticket, joined requests included"),
                    _query("continuationToken", "From the previous page's nextLink"),
                    _page_size("Runs per page", RUN_PAGE_SIZE, MAX_RUN_PAGE_SIZE),
                ],
                "responses": {
                    "200": _json_response("A page of runs", _ref("RunPage")),
                    **_problem_responses("validation-failed", "unauthorized", "azure-unavailable", "internal"),
                },
            },
        },
        f"{ROUTE_PREFIX}/runs/{{runId}}": {
            "get": {
                "operationId": "get_run",
                "summary": "A run, the status monitor of one operation: its status, step history, endpoint, Key "
                "Vault secret ids or error, and once a deploy or repair run has ended, resourceLocation",
                "description": "A run the caller may not see (see the list) answers 404 as a missing one does.",
                "parameters": [
                    {"name": "runId", "in": "path", "required": True, "schema": {"type": "string"}},
                    *_PRINCIPAL_HEADERS,
                ],
                "responses": {
                    "200": _json_response("The run", _ref("RunRecord")),
                    **_problem_responses("unauthorized", "not-found", "azure-unavailable", "internal"),
                },
            },
        },
        **_approval_paths(),
        f"{ROUTE_PREFIX}/models": {
            "get": {
                "operationId": "list_models",
                "summary": "The model catalog as a project sees it: how each model is sold, whether the project's "
                "region offers it (else where), whether policy allows it, and whether a new deployment would wait "
                "for an approver",
                "description": "Ordered by model id. A workspace the broker does not deploy into is not read: every "
                "model says workspace.allowed false and region.location null. A continuationToken is bound to the "
                "filters it was issued for; with others it is a 400.",
                "parameters": [
                    _query("workspaceId", "The project (ARM id)", required=True),
                    _query("publisher", "Only this publisher ('meta', as the registry names it) or catalog family"),
                    _query("name", "Only models whose name contains this (ignoring case)"),
                    _query("continuationToken", "From the previous page's nextLink"),
                    _page_size("Models per page", MODEL_PAGE_SIZE, MAX_MODEL_PAGE_SIZE),
                    *_PRINCIPAL_HEADERS,
                ],
                "responses": {
                    "200": _json_response("A page of models", _ref("ModelPage")),
                    **_problem_responses(
                        "validation-failed", "unauthorized", "not-found", "azure-unavailable", "internal"
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
                    *_PRINCIPAL_HEADERS,
                ],
                "responses": {
                    "200": _json_response("The model's availability", _ref("ModelAvailability")),
                    **_problem_responses(
                        "validation-failed", "unauthorized", "not-found", "azure-unavailable", "internal"
                    ),
                },
            },
        },
        f"{ROUTE_PREFIX}/hygiene/findings": {
            "get": {
                "operationId": "hygiene_findings",
                "summary": "Hygiene findings: Unhealthy, failed or unmanaged endpoints, missing or orphaned secrets, "
                "stuck runs",
                "description": "Only the findings in workspaces the caller may read, or every one for the auditor "
                "and approver app roles; the others are left out silently, as in the run and deployment lists.",
                "parameters": [
                    *_PRINCIPAL_HEADERS,
                    _query("rule", "Only findings of this rule"),
                    _query("severity", "Only findings of this severity"),
                    _query("workspaceId", "Only findings in this workspace (ARM id)"),
                    _query("state", "open, resolved or pending"),
                    _query("deploymentId", "Only findings about this deployment"),
                    _query("continuationToken", "From the previous page's nextLink"),
                    _page_size("Findings per page", FINDING_PAGE_SIZE, MAX_FINDING_PAGE_SIZE),
                ],
                "responses": {
                    "200": _json_response("A page of findings", _ref("FindingPage")),
                    **_problem_responses("validation-failed", "unauthorized", "azure-unavailable", "internal"),
                },
            },
        },
        f"{ROUTE_PREFIX}/hygiene/report": {
            "get": {
                "operationId": "hygiene_report",
                "summary": "The latest hygiene scan: when, how long, what was scanned, counts and errors",
                "description": "Whole (scope: all) for the auditor and approver app roles; for anyone else "
                "(scope: visible) when the scan ran and with which rules, and the open and pending findings "
                "counted over those the caller may see.",
                "parameters": [*_PRINCIPAL_HEADERS],
                "responses": {
                    "200": _json_response(
                        "The latest scan report, whole (scope: all) or as the caller may see it (scope: visible)",
                        {"oneOf": [_ref("ScanReport"), _ref("VisibleScanReport")]},
                    ),
                    **_problem_responses("unauthorized", "not-found", "azure-unavailable", "internal"),
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
        f"{ROUTE_PREFIX}/asyncapi.json": {
            "get": {
                "operationId": "asyncapi_document",
                "summary": "The AsyncAPI 3.0.0 document of the queues: deployment-requests messages, each "
                "CloudEvent type on deployment-events with its data schema, and hygiene-alerts",
                "security": [],
                "responses": {"200": _json_response("AsyncAPI 3.0.0 document", {"type": "object"})},
            },
        },
        **_docs_paths(),
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


def _docs_paths() -> dict[str, Any]:
    """GET /api/docs, the API reference page, and each file it loads (handlers/docs.py)."""
    described = {
        docs.PAGE: "The API reference: Swagger UI rendering this document, served by the app with no CDN",
        **{asset: f"A file the API reference page loads ({asset.mimetype})" for asset in docs.ASSETS},
    }
    return {
        f"{ROUTE_PREFIX}/{asset.route}": {
            "get": {
                "operationId": asset.function_name,
                "summary": summary,
                "security": [],
                "responses": {
                    "200": {
                        "description": summary,
                        "headers": {
                            "Content-Security-Policy": {
                                "description": "Scripts, styles and fetches from the app alone",
                                "schema": {"type": "string", "const": docs.CONTENT_SECURITY_POLICY},
                            }
                        },
                        "content": {asset.mimetype: {"schema": {"type": "string"}}},
                    }
                },
            }
        }
        for asset, summary in described.items()
    }


def _approval_paths() -> dict[str, Any]:
    """POST /api/runs/{runId}/approve and /reject (handlers/approvals.py)."""
    common = (
        "Only for callers holding the approver app role (or group), who neither made nor joined the request. The "
        "answer is the run as the decision left it; the same decision made again, by anyone, answers 200 with the "
        "run as it is (its `approval` shows the decision that was made). The other decision, an expired approval "
        "or a run not waiting for approval is 409 run-state-conflict, naming the run's status and decision."
    )
    described = {
        "approve": (
            "Approve a deploy run waiting in PendingApproval",
            "The full preflight runs again for the original request and requester (access may have changed while "
            "it waited): the run then goes on to its first step (Subscribing, Provisioning or StoringKeys) and the "
            "deployment to Provisioning, or, if preflight now refuses it, the run ends Rejected with that problem "
            "(still 200: the approval was recorded). Events: approved, to every request the run answers. ",
            False,
        ),
        "reject": (
            "Reject a deploy run waiting in PendingApproval, saying why",
            "The run ends Rejected (error code approval-rejected, with the comment), which releases a new "
            "deployment so that a later request starts afresh. Events: approvalrejected, then rejected, to every "
            "request the run answers. ",
            True,
        ),
    }
    return {
        f"{ROUTE_PREFIX}/runs/{{runId}}/{verb}": {
            "post": {
                "operationId": f"{verb}_run",
                "summary": summary,
                "description": description + common,
                "parameters": [
                    {"name": "runId", "in": "path", "required": True, "schema": {"type": "string"}},
                    *_PRINCIPAL_HEADERS,
                ],
                "requestBody": {
                    "required": required,
                    "description": f"The decision's comment (at most {MAX_APPROVAL_COMMENT} characters)"
                    + ("; required" if required else "; the body may be left out"),
                    "content": {"application/json": {"schema": _ref("DecisionRequest")}},
                },
                "responses": {
                    "200": {
                        **_json_response("The run, with its approval decided", _ref("RunRecord")),
                        "headers": {"Operation-Location": _RUN_LOCATION},
                    },
                    **_problem_responses(
                        "validation-failed",
                        "payload-too-large",
                        "unsupported-media-type",
                        "unauthorized",
                        "approver-required",
                        "self-approval-forbidden",
                        "not-found",
                        "run-state-conflict",
                        "azure-unavailable",
                        "internal",
                    ),
                },
            },
        }
        for verb, (summary, description, required) in described.items()
    }


def _schemas() -> dict[str, Any]:
    _, generated = models_json_schema(
        [
            (DeploymentRequest, "validation"),
            (QueueDeploymentRequest, "validation"),
            (RotateKeysRequest, "validation"),
            (DecisionRequest, "validation"),
            (RunRecord, "serialization"),
            (Deployment, "serialization"),
            (WhatIf, "serialization"),
            (ModelListing, "serialization"),
            (FindingRecord, "serialization"),
            (ScanReport, "serialization"),
            (VisibleScanReport, "serialization"),
        ],
        by_alias=True,
        ref_template=SCHEMAS + "{model}",
    )
    schemas: dict[str, Any] = generated["$defs"]
    run = schemas["RunRecord"]
    for name in PRIVATE_RUN_FIELDS:
        run["properties"].pop(name)
    run["required"] = [name for name in run["required"] if name not in PRIVATE_RUN_FIELDS]
    run["properties"][RESOURCE_LOCATION] = {
        "type": "string",
        "format": "uri",
        "description": "The deployment this run operated on (absolute URL); present once a deploy or repair run "
        "has ended",
    }
    run["properties"]["joined"]["description"] = (
        f"Requests that joined the run while it was in flight, the first {MAX_LISTED_JOINERS} to join, oldest first"
    )
    run["properties"]["joinedCount"]["description"] = "How many requests joined the run, all of them"
    run["description"] = (
        "A run: one operation (deploy, repair or delete) on a deployment, from acceptance to its end, with every "
        "status it went through. Requests that joined it while it was in flight are counted in `joinedCount` and "
        f"the first {MAX_LISTED_JOINERS} listed in `joined`; each hears the run's end by its own event. A deploy "
        "run the approval policy named carries `approval`: why it waited and until when, then the decision "
        "(approved, rejected, expired or withdrawn), who made it, when and why."
    )
    schemas["Deployment"]["description"] = (
        "The Deployment resource: one per (workspace, model). `spec` is what was asked for; `status` is what "
        "Azure was last seen to hold (phase and conditions), the run in flight (currentRunId), the run whose Key "
        "Vault secrets hold the keys (keysRunId) and the run that deleted it (deleteRunId)."
    )
    finding = schemas.pop("FindingRecord")
    for name in PRIVATE_FINDING_FIELDS:
        finding["properties"].pop(name)
    finding["required"] = [name for name in finding["required"] if name not in PRIVATE_FINDING_FIELDS]
    finding["description"] = (
        "A hygiene finding: what a rule observed about one resource, its state (pending, open, resolved), the "
        "deployment it is about, the call that fixes it (recommendedAction) and the remediation audit trail."
    )
    schemas["Finding"] = finding
    schemas.pop("PendingAlert")
    schemas["QueueDeploymentRequest"]["description"] = (
        "A deployment-requests queue message (base64 JSON): the HTTP body plus who asked and the ticket; the "
        "outcome is published as a CloudEvent on deployment-events."
    )
    return {
        **schemas,
        "DeploymentPage": _page_schema("Deployment"),
        "RunPage": _page_schema("RunRecord"),
        "FindingPage": _page_schema("Finding"),
        "Problem": _problem_schema(),
        "ModelAvailability": _AVAILABILITY_SCHEMA,
        "ModelPage": _page_schema("ModelListing"),
        "Health": _HEALTH_SCHEMA,
    }


def _page_schema(item: str) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": {
            "value": {"type": "array", "items": _ref(item)},
            "nextLink": {
                "anyOf": [{"type": "string", "format": "uri"}, {"type": "null"}],
                "description": "The next page (same filters), or null on the last page",
            },
        },
        "required": ["value", "nextLink"],
        "additionalProperties": False,
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
            "runId": {
                "type": "string",
                "description": "The run the problem is about (the deployment's run in flight, or its current run "
                "for a conflict); otherwise the Rejected run that recorded this refusal",
            },
            "deploymentId": {"type": "string", "description": "The deployment the problem is about"},
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
_URL = {"type": "string", "format": "uri"}
_DEPLOYMENT_ID = {
    "name": "deploymentId",
    "in": "path",
    "required": True,
    "description": "`<workspace>--<model>--<hash>`: the same for the same (workspace, model)",
    "schema": {"type": "string"},
}
_DEPLOYMENT_LOCATION = {"description": "The deployment (absolute URL)", "schema": _URL}
_RUN_LOCATION = {"description": "The run (absolute URL) to poll until it ends", "schema": _URL}
_ANSWERING_RUN = {"description": "The run that answers, when a run does (absolute URL)", "schema": _URL}
_RUN_HEADERS = {"Location": _DEPLOYMENT_LOCATION, "Operation-Location": _RUN_LOCATION}
_RECORDED_HEADERS = {
    "Location": {
        "description": "The deployment the refusal concerns, when there is one (absolute URL)",
        "schema": _URL,
    },
    "Operation-Location": {
        "description": "The Rejected run recording the refusal, when one does (absolute URL; also `instance`)",
        "schema": _URL,
    },
}
_RETRY_AFTER = {
    "Retry-After": {"description": "Seconds to wait before trying again", "schema": {"type": "integer", "minimum": 1}}
}
_CHALLENGE = {
    "WWW-Authenticate": {"description": "The Bearer challenge (RFC 9110)", "schema": {"type": "string"}},
}
# Statuses no run ever records: no caller, a body refused before it is read, or the broker or Azure failing.
_UNRECORDED_STATUSES = {
    UNAUTHORIZED.status,
    PAYLOAD_TOO_LARGE.status,
    UNSUPPORTED_MEDIA_TYPE.status,
    INTERNAL.status,
    AZURE_UNAVAILABLE.status,
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


def _page_size(description: str, default: int, maximum: int) -> dict[str, Any]:
    return _query("pageSize", description, {"type": "integer", "minimum": 1, "maximum": maximum, "default": default})


def _run_response(description: str) -> dict[str, Any]:
    return {**_json_response(description, _ref("RunRecord")), "headers": _RUN_HEADERS}


def _with_headers(responses: dict[str, Any], statuses: set[str], headers: dict[str, Any]) -> dict[str, Any]:
    """`responses` with `headers` added to those of `statuses`."""
    return {
        status: {**response, "headers": {**response.get("headers", {}), **headers}} if status in statuses else response
        for status, response in responses.items()
    }


# The real bodies each component schema is shown with (keys of handlers/contract_examples.json); "<schema>
# <status>" when a status has its own.
_EXAMPLES_OF = {
    "RunRecord": ("runAccepted", "runSucceeded", "runApproved"),
    "Deployment": ("deployment",),
    "RunPage": ("runPage",),
    "DeploymentPage": ("deploymentPage",),
    "KeyRotation": ("keyRotation",),
    "WhatIf": ("whatIf",),
    "FindingPage": ("findingPage",),
    "ScanReport": ("scanReport",),
    "VisibleScanReport": ("visibleScanReport",),
    "ModelPage": ("modelPage",),
    "ModelAvailability": ("modelAvailability",),
    "Health": ("health",),
    "Health 503": ("healthDegraded",),
}
# What each problem type's example says; every other member is the catalog's.
_PROBLEM_DETAILS = {
    "validation-failed": "Invalid fields: modelId.",
    "payload-too-large": "The body is 1048577 bytes; the limit is 1048576 (1 MiB).",
    "unsupported-media-type": "Content-Type text/plain is not JSON; send application/json in UTF-8.",
    "endpoint-name-invalid": "Endpoint name 'My Endpoint' must be 3-32 letters, digits and hyphens.",
    "unauthorized": "No bearer token for the broker's API came with the request.",
    "requester-forbidden": "The caller may not deploy into workspace proj-a.",
    "model-not-approved": "The registry azureml-cohere is not among the approved registries.",
    "workspace-not-allowed": "The broker does not deploy into resource group rg-sandbox.",
    "broker-permissions-missing": "The broker lacks Microsoft.MachineLearningServices/workspaces/serverlessEndpoints/"
    "write at the workspace.",
    "not-found": "No deployment proj-a--deepseek-r1--e507a61de4.",
    "deployment-conflict": "proj-a already has a deployment of this model with endpointName deepseek-r1-f8a150.",
    "region-unsupported": "DeepSeek-R1 is not offered in westeurope; it is offered in eastus2 and swedencentral.",
    "model-unknown": "azureml://registries/azureml-deepseek/models/DeepSeek-R2 is not in the model catalog.",
    "idempotency-conflict": "Idempotency-Key demo-1 was used for a different request.",
    "subscription-in-use": "Endpoints cohere-a and cohere-b still use the Marketplace subscription.",
    "deployment-state-conflict": "A deploy run is in flight (run-0001.351bdd24); wait for it to end.",
    "approver-required": "Only callers with the Broker.Approver app role may decide.",
    "self-approval-forbidden": "The caller made this request and may not decide on it.",
    "run-state-conflict": "Run run-0001.351bdd24 is Succeeded, not PendingApproval.",
    "approval-rejected": "Rejected by an approver: use the model sold directly.",
    "approval-expired": "No approver decided within 72 hours.",
    "approval-withdrawn": "The deployment was deleted while the request waited for approval.",
    "azure-unavailable": "Azure Resource Manager did not answer in time; retry after 30 seconds.",
    "internal": "The broker failed unexpectedly; the error is logged with this request's operation id.",
}


def problem_example(slug: str) -> dict[str, Any]:
    """The example body of one problem type."""
    kind = CATALOG[slug]
    return {"type": kind.uri, "title": kind.title, "status": kind.status, "detail": _PROBLEM_DETAILS[slug]}


def _with_examples(paths: dict[str, Any]) -> dict[str, Any]:
    """`paths` with examples on every JSON response: the real bodies of its schema's components, and one per
    problem type its description names."""
    examples = contract_examples()
    for item in paths.values():
        for operation in item.values():
            for status, response in operation["responses"].items():
                for media_type, content in response.get("content", {}).items():
                    if media_type == CONTENT_TYPE:
                        # Titles may hold "; " too (azure-unavailable's), so only catalogued slugs count.
                        named_parts = (part.split(":")[0] for part in response["description"].split("; "))
                        slugs = [slug for slug in named_parts if slug in CATALOG]
                        content["examples"] = {slug: {"value": problem_example(slug)} for slug in slugs}
                        continue
                    schema = content["schema"]
                    names = [option.get("$ref", "").removeprefix(SCHEMAS) for option in schema.get("oneOf", [schema])]
                    keys = [
                        key
                        for name in names
                        for key in _EXAMPLES_OF.get(f"{name} {status}", _EXAMPLES_OF.get(name, ()))
                    ]
                    named = {key: {"value": examples[key]} for key in keys}
                    if named:
                        content["examples"] = named
    return paths


def _problem_responses(*slugs: str, recorded: bool = False) -> dict[str, Any]:
    """One response per status, naming the problem types an operation can answer with under it.

    `recorded`: the operation stores a Rejected run for each refusal it makes past validation, and links it.
    """
    titles: dict[int, list[str]] = {}
    for slug in slugs:
        kind = CATALOG[slug]
        titles.setdefault(kind.status, []).append(f"{kind.slug}: {kind.title}")
    responses: dict[str, Any] = {}
    for status, names in sorted(titles.items()):
        response: dict[str, Any] = {
            "description": "; ".join(names),
            "content": {CONTENT_TYPE: {"schema": _ref("Problem")}},
        }
        headers = {
            **(_RETRY_AFTER if status == AZURE_UNAVAILABLE.status else {}),
            **(_CHALLENGE if status == UNAUTHORIZED.status else {}),
            **(_RECORDED_HEADERS if recorded and status not in _UNRECORDED_STATUSES else {}),
        }
        if headers:
            response["headers"] = headers
        responses[str(status)] = response
    return responses
