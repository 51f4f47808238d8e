"""The client's models read the JSON the broker's own models write, keep it whole, and survive what they do not know."""

from __future__ import annotations

from datetime import UTC, datetime

from deployment_broker_client import (
    Deployment,
    DeploymentPhase,
    Finding,
    KeyRotation,
    KeyRotationStatus,
    KeyType,
    ModelAvailability,
    Problem,
    Run,
    RunStatus,
)

from shared.deployment import Phase
from tests.clients import wire


def test_a_succeeded_run_reads_its_steps_endpoint_secret_ids_and_resource_location():
    document = wire.run_document(*wire.DEPLOY_PATH, wire.RunStatus.SUCCEEDED)

    run = Run.from_dict(document)

    assert run.status is RunStatus.SUCCEEDED
    assert run.is_terminal
    assert [step.status for step in run.steps] == [
        RunStatus.ACCEPTED,
        RunStatus.VALIDATING,
        RunStatus.PROVISIONING,
        RunStatus.STORING_KEYS,
        RunStatus.VERIFYING,
        RunStatus.SUCCEEDED,
    ]
    assert run.steps[0].at == datetime(2026, 5, 1, 12, 0, tzinfo=UTC)
    assert run.endpoint is not None
    assert run.endpoint.scoring_uri == wire.ENDPOINT.scoring_uri
    assert run.secret_ids is not None
    assert run.secret_ids.primary == wire.SECRETS.primary
    assert (run.workspace_id, run.model_id, run.ticket) == (wire.WORKSPACE, wire.MODEL, "T-1")
    assert run.resource_location == f"{wire.API}/deployments/{wire.DEPLOYMENT_ID}"
    assert run.as_dict() == document


def test_a_rejected_run_carries_its_error():
    run = Run.from_dict(wire.run_document(wire.RunStatus.REJECTED))

    assert run.status is RunStatus.REJECTED
    assert run.error is not None
    assert run.error.code == "region-unsupported"


def test_a_status_this_client_does_not_know_stays_a_string_and_members_it_does_not_know_are_kept():
    document = {**wire.run_document(), "status": "Quarantined", "futureMember": {"x": 1}}

    run = Run.from_dict(document)

    assert run.status == "Quarantined"
    assert not run.is_terminal
    assert run.as_dict()["futureMember"] == {"x": 1}


def test_pending_approval_is_a_known_status_in_flight():
    run = Run.from_dict(wire.pending_approval_document())

    assert run.status is RunStatus.PENDING_APPROVAL
    assert not run.is_terminal


def test_a_ready_deployment_reads_spec_status_and_conditions():
    deployment = Deployment.from_dict(wire.deployment_document())

    assert deployment.id == wire.DEPLOYMENT_ID
    assert deployment.status.phase is DeploymentPhase.READY
    assert deployment.spec.model_id == wire.MODEL
    assert deployment.status.secret_ids is not None
    assert deployment.status.secret_ids.secondary == wire.SECRETS.secondary
    assert deployment.status.keys_run_id == wire.RUN_ID
    assert {condition.type for condition in deployment.status.conditions} == {
        "SubscriptionReady",
        "EndpointReady",
        "KeysStored",
        "Healthy",
    }
    assert deployment.status.condition("Healthy") is not None
    assert deployment.requests[0].outcome == "created"


def test_a_deleted_deployment_names_its_delete_run():
    deployment = Deployment.from_dict(wire.deployment_document(Phase.DELETED))

    assert deployment.status.phase is DeploymentPhase.DELETED
    assert deployment.status.delete_run_id == wire.RUN_ID


def test_key_rotations_read_pending_and_rotated():
    pending = KeyRotation.from_dict(wire.rotation_document())
    rotated = KeyRotation.from_dict(wire.rotation_document("Rotated"))

    assert (pending.key_type, pending.status, pending.in_progress) == (
        KeyType.SECONDARY,
        KeyRotationStatus.PENDING,
        True,
    )
    assert rotated.status is KeyRotationStatus.ROTATED
    assert not rotated.in_progress
    assert rotated.secret_id is not None
    assert rotated.secret_id.endswith("/2")


def test_a_finding_reads_its_deployment_tickets_and_recommended_action():
    finding = Finding.from_dict(wire.finding_document())

    assert (finding.rule, finding.severity, finding.state) == ("endpoint-unhealthy", "high", "open")
    assert finding.deployment_id == wire.DEPLOYMENT_ID
    assert finding.tickets == ("T-1",)
    assert finding.recommended_action.endswith("/repair")


def test_model_availability_reads_regions_and_the_workspace_fit():
    availability = ModelAvailability.from_dict(wire.availability_document(location="westeurope"))

    assert availability.sold_directly
    assert availability.supported_regions is not None
    assert "eastus2" in availability.supported_regions
    assert availability.workspace is not None
    assert availability.workspace.supported is False


def test_a_problem_gives_its_slug_run_and_extension_members():
    document = wire.problem_document(
        "region-unsupported", "westeurope does not offer it.", runId=wire.RUN_ID, supportedRegions=["eastus2"]
    )

    problem = Problem.from_dict(document)

    assert (problem.status, problem.slug, problem.run_id) == (422, "region-unsupported", wire.RUN_ID)
    assert problem.title == "The model cannot be deployed in the workspace's region"
    assert problem.extensions["supportedRegions"] == ["eastus2"]
    assert problem.as_dict() == document


def test_a_problem_without_a_type_is_about_blank():
    problem = Problem.from_dict({"title": "Unauthorized", "status": 401})

    assert problem.type == "about:blank"
    assert problem.run_id is None
