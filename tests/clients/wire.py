"""The broker's JSON, made by the broker's own models (shared/), so the client's tests read what the broker sends."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from shared.catalog import ModelCatalog
from shared.deployment import Deployment, DeploymentRequester, DeploymentSpec, Phase, deployment_id_of
from shared.hygiene.findings import FindingRecord, FindingState, Severity
from shared.problems import Problem
from shared.requests import DeploymentRequest
from shared.runs import EndpointInfo, KeyRotation, RunError, RunRecord, RunStatus, SecretIds
from tests.clients.fakes import API

AT = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)
CALLER = "3f2504e0-4f89-41d3-9a0c-0305e82c3301"
RUN_ID = "1b4e28ba-2fa1-41d2-883f-0016d3cca427"
WORKSPACE = (
    "/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/rg-demo/providers/"
    "Microsoft.MachineLearningServices/workspaces/demo-project"
)
MODEL = "azureml://registries/azureml/models/Phi-4"
SPEC = DeploymentSpec(workspace_id=WORKSPACE, model_id=MODEL, endpoint_name="phi-4", content_safety="Enabled")
DEPLOYMENT_ID = deployment_id_of(SPEC)
ENDPOINT = EndpointInfo(
    name="phi-4",
    id=f"{WORKSPACE}/serverlessEndpoints/phi-4",
    scoring_uri="https://phi-4.eastus2.models.ai.azure.com",
)
SECRETS = SecretIds(
    primary="https://vault.vault.azure.net/secrets/phi-4-primary/1",
    secondary="https://vault.vault.azure.net/secrets/phi-4-secondary/1",
)
DEPLOY_PATH = [RunStatus.VALIDATING, RunStatus.PROVISIONING, RunStatus.STORING_KEYS, RunStatus.VERIFYING]


def run_record(*statuses: RunStatus, operation: str = "deploy", run_id: str = RUN_ID) -> RunRecord:
    """A run that went through `statuses` after Accepted, a second apart, recording what each status promises."""
    run = RunRecord.new(
        run_id=run_id,
        caller=CALLER,
        request=DeploymentRequest(workspace_id=WORKSPACE, model_id=MODEL, ticket="T-1"),
        at=AT,
        operation=operation,  # type: ignore[arg-type]
        deployment_id=DEPLOYMENT_ID,
    )
    for second, status in enumerate(statuses, start=1):
        extras: dict[str, Any] = {}
        if status is RunStatus.STORING_KEYS:
            extras = {"endpoint": ENDPOINT, "secret_ids": SECRETS}
        if status in (RunStatus.REJECTED, RunStatus.FAILED):
            extras = {"error": RunError(code="region-unsupported", message="eastus2 does not offer it.")}
        run = run.transition(status, at=AT + timedelta(seconds=second), **extras)
    return run


def run_document(*statuses: RunStatus, operation: str = "deploy", run_id: str = RUN_ID) -> dict[str, Any]:
    """The run as GET /api/runs/{id} answers: a finished deploy names its deployment in resourceLocation."""
    run = run_record(*statuses, operation=operation, run_id=run_id)
    document = run.to_public_dict()
    if run.is_terminal and operation != "delete":
        document["resourceLocation"] = f"{API}/deployments/{DEPLOYMENT_ID}"
    return document


def pending_approval_document() -> dict[str, Any]:
    """An accepted run waiting for an approver (issue 13's PendingApproval, not yet in the broker's enum here)."""
    document = run_document()
    step = {"status": "PendingApproval", "at": (AT + timedelta(seconds=1)).isoformat(), "detail": "needs approval"}
    return {**document, "status": "PendingApproval", "steps": [*document["steps"], step]}


def deployment_document(phase: Phase = Phase.READY) -> dict[str, Any]:
    requester = DeploymentRequester(caller=CALLER, ticket="T-1", run_id=RUN_ID, outcome="created", at=AT)
    deployment = Deployment.new(SPEC, run_id=RUN_ID, requester=requester, at=AT)
    if phase is Phase.READY:
        deployment = deployment.changed(
            at=AT, phase=phase, endpoint=ENDPOINT, secret_ids=SECRETS, keys_run_id=RUN_ID, current_run_id=None
        )
    else:
        deployment = deployment.changed(at=AT, phase=phase, delete_run_id=RUN_ID, current_run_id=None)
    return deployment.to_public_dict()


def rotation_document(status: str = "Pending") -> dict[str, Any]:
    rotation = KeyRotation(
        id="rotation-1",
        key_type="secondary",
        trigger="manual",
        status=status,  # type: ignore[arg-type]
        requested_at=AT,
        requested_by=CALLER,
        secret_id=None if status == "Pending" else f"{SECRETS.secondary[:-1]}2",
        completed_at=None if status == "Pending" else AT + timedelta(seconds=3),
    )
    return rotation.model_dump(mode="json", by_alias=True)


def finding_document() -> dict[str, Any]:
    record = FindingRecord(
        key="f" * 40,
        rule="endpoint-unhealthy",
        severity=Severity.HIGH,
        resource_id=ENDPOINT.id,
        workspace_id=WORKSPACE,
        summary="The endpoint's Marketplace subscription was deleted.",
        evidence={"endpointState": "Unhealthy"},
        state=FindingState.OPEN,
        first_seen=AT,
        last_seen=AT,
        opened_at=AT,
        deployment_id=DEPLOYMENT_ID,
        run_id=RUN_ID,
        tickets=("T-1",),
        recommended_action=f"POST /api/deployments/{DEPLOYMENT_ID}/repair",
    )
    return record.to_public_dict()


def availability_document(model: str = MODEL, location: str = "eastus2") -> dict[str, Any]:
    """As DeploymentService.availability builds it, from the shipped catalog."""
    catalog = ModelCatalog.load()
    regions = catalog.supported_locations(model)
    return {
        **catalog.classify(model).to_dict(),
        "supportedRegions": list(regions) if regions is not None else None,
        "workspace": {"id": WORKSPACE, "location": location, "supported": catalog.supports_location(model, location)},
    }


def problem_document(slug: str, detail: str, **extensions: Any) -> dict[str, Any]:
    return Problem.of(slug, detail, **extensions).to_dict()
