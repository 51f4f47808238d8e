"""Intake's rules that what-if must apply exactly as intake does: where a run starts, what a short re-request
means, and how refusals Azure gives while checking a request are answered. Shared here so the two cannot drift."""

from __future__ import annotations

from shared.azure_errors import AzureCallError
from shared.deployment import ConditionType, DeploymentSpec
from shared.deployments.observe import Observation
from shared.deployments.workflow import SUCCEEDED
from shared.plan import DeploymentPlan
from shared.ports import Endpoint
from shared.problems import Problem
from shared.requests import DeploymentRequest
from shared.runs import RunRecord, RunStatus


def first_status(plan: DeploymentPlan, existing: Endpoint | None, seen: Observation | None) -> tuple[RunStatus, str]:
    """Where a run starts: at the first thing Azure's state lacks (a repair) or at the beginning."""
    if seen is not None:
        failing = {condition.type for condition in seen.failing()}
        lacks = ", ".join(f"{item.type} ({item.reason})" for item in seen.failing()) or "nothing"
        detail = f"repairing: Azure reports {lacks}"
        unhealthy = bool(failing & {ConditionType.SUBSCRIPTION_READY, ConditionType.HEALTHY})
        if plan.subscription_name is not None and unhealthy:
            return RunStatus.SUBSCRIBING, detail
        if unhealthy or ConditionType.ENDPOINT_READY in failing:
            return RunStatus.PROVISIONING, detail
        return RunStatus.STORING_KEYS, detail
    # Only a provisioned endpoint may skip to its keys; one left Creating or Failed is provisioned again.
    if existing is not None and existing.provisioning_state.lower() == SUCCEEDED:
        return RunStatus.STORING_KEYS, f"endpoint '{plan.endpoint_name}' exists; storing its keys"
    if plan.subscription_name is not None:
        return RunStatus.SUBSCRIBING, plan.classification.explanation
    return RunStatus.PROVISIONING, plan.classification.explanation


def completed(request: DeploymentRequest, spec: DeploymentSpec) -> DeploymentRequest:
    """`request` with what it left out taken from the deployment it asks for again: omitting the endpoint name or
    content safety means "as it is", not "the default", so a re-POST of the short form joins a customised deployment."""
    given = request.model_fields_set
    filled = {name: getattr(spec, name) for name in ("endpoint_name", "content_safety") if name not in given}
    return request.model_copy(update=filled) if filled else request


def torn_down_meanwhile(teardown: RunRecord) -> Problem:
    return Problem.of(
        "deployment-state-conflict",
        f"Run {teardown.id} is tearing this deployment down ({teardown.status}); request it again once it has "
        "finished.",
        runId=teardown.id,
        deploymentId=teardown.deployment_id,
    )


def azure_refusal(error: AzureCallError, request: DeploymentRequest) -> Problem | None:
    """A preflight read Azure refused for good: the request is rejected, saying why, rather than failing."""
    if error.transient:
        return None
    if error.not_found:
        return Problem.of(
            "not-found", f"Workspace {request.workspace_id} was not found: {error.message}", azureCode=error.code
        )
    if error.status == 403:
        return Problem.of(
            "broker-permissions-missing",
            f"Azure refused the broker's identity while checking the request ({error.code}): {error.message}",
            azureCode=error.code,
        )
    return None
