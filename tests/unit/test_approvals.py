"""The approval policy (which requests wait for an approver), the decision body, and a run's approval record."""

from datetime import UTC, datetime, timedelta

import pytest
from pydantic import ValidationError

from shared.approvals import DEFAULT_APPROVAL_EXPIRY, MAX_APPROVAL_COMMENT, ApprovalPolicy, DecisionRequest
from shared.azure_ids import WorkspaceId
from shared.catalog import ModelClassification
from shared.model_ids import parse_model_id
from shared.requests import DeploymentRequest, validation_problems
from shared.runs import Approval, IllegalTransitionError, RunRecord, RunStatus

SUBSCRIPTION = "0b1f6471-1bf0-4dda-aec3-111122223333"
WORKSPACE = WorkspaceId.parse(
    f"/subscriptions/{SUBSCRIPTION}/resourceGroups/rg-ai/providers/Microsoft.MachineLearningServices/workspaces/proj-a"
)
OTHER_WORKSPACE = WorkspaceId.parse(
    "/subscriptions/7d2c0c56-0000-4a1e-9f5c-444455556666/resourceGroups/rg-b/providers/"
    "Microsoft.MachineLearningServices/workspaces/proj-b"
)
COHERE = parse_model_id("azureml://registries/azureml-cohere/models/Cohere-command-r-08-2024")
PHI = parse_model_id("azureml://registries/azureml/models/Phi-4")
MARKETPLACE = ModelClassification(
    COHERE.normalized, requires_marketplace_subscription=True, source="catalog", explanation=""
)
DIRECT = ModelClassification(PHI.normalized, requires_marketplace_subscription=False, source="catalog", explanation="")
T0 = datetime(2026, 11, 27, 9, 0, tzinfo=UTC)


def rule(policy: ApprovalPolicy, workspace=WORKSPACE, model=PHI, classification=DIRECT) -> str | None:
    requirement = policy.requirement(workspace, model, classification)
    return requirement.rule if requirement else None


# The policy.


def test_a_disabled_policy_asks_for_nothing_whatever_it_lists():
    policy = ApprovalPolicy.from_settings(enabled=False, publishers="cohere", subscription_ids=SUBSCRIPTION)

    assert policy.requirement(WORKSPACE, COHERE, MARKETPLACE) is None


def test_once_enabled_marketplace_models_need_approval_and_models_sold_directly_do_not():
    policy = ApprovalPolicy.from_settings(enabled=True)

    requirement = policy.requirement(WORKSPACE, COHERE, MARKETPLACE)

    assert requirement is not None
    assert requirement.rule == "marketplace"
    assert COHERE.normalized in requirement.reason
    assert rule(policy) is None
    assert policy.expiry == DEFAULT_APPROVAL_EXPIRY == timedelta(hours=72)


def test_the_marketplace_rule_can_be_turned_off():
    assert (
        rule(ApprovalPolicy.from_settings(enabled=True, marketplace=False), model=COHERE, classification=MARKETPLACE)
        is None
    )


@pytest.mark.parametrize(
    ("settings", "expected"),
    [
        ({"publishers": " AzureML , other"}, "publisher"),
        ({"model_ids": "azureml://registries/azureml/models/phi-4/versions/3"}, "model"),
        ({"workspace_ids": WORKSPACE.resource_id.upper()}, "workspace"),
        ({"subscription_ids": SUBSCRIPTION.upper()}, "subscription"),
    ],
)
def test_each_dimension_names_requests_case_insensitively(settings, expected):
    policy = ApprovalPolicy.from_settings(enabled=True, marketplace=False, **settings)

    assert rule(policy) == expected
    assert rule(policy, workspace=OTHER_WORKSPACE, model=COHERE, classification=MARKETPLACE) is None


def test_the_first_rule_that_asks_is_the_one_named():
    policy = ApprovalPolicy.from_settings(enabled=True, publishers="cohere", subscription_ids=SUBSCRIPTION)

    assert rule(policy, model=COHERE, classification=MARKETPLACE) == "marketplace"


def test_an_unparsable_id_in_the_settings_fails_at_start_up():
    with pytest.raises(ValueError, match="'not-a-workspace' is not a workspace id"):
        ApprovalPolicy.from_settings(enabled=True, workspace_ids="not-a-workspace")
    with pytest.raises(ValueError, match="'Phi-4' does not start with 'azureml://'"):
        ApprovalPolicy.from_settings(enabled=True, model_ids="Phi-4")


# The decision body.


def test_a_decision_body_takes_an_optional_comment_and_nothing_else():
    assert DecisionRequest.from_wire({}).comment is None
    assert DecisionRequest.from_wire({"comment": "  FIN-7 approved  "}).comment == "FIN-7 approved"
    assert DecisionRequest.from_wire({"comment": "   "}).comment is None

    with pytest.raises(ValidationError) as unknown:
        DecisionRequest.from_wire({"comment": "ok", "approved": True})
    assert validation_problems(unknown.value) == [{"field": "approved", "message": "This field is not recognised."}]
    with pytest.raises(ValidationError) as too_long:
        DecisionRequest.from_wire({"comment": "x" * (MAX_APPROVAL_COMMENT + 1)})
    assert validation_problems(too_long.value)[0]["field"] == "comment"
    assert DecisionRequest.from_wire({"comment": "x" * MAX_APPROVAL_COMMENT}).comment


# The run's approval.


def waiting_run() -> RunRecord:
    request = DeploymentRequest(workspace_id=WORKSPACE.resource_id, model_id=COHERE.normalized)
    approval = Approval(rule="marketplace", reason="Marketplace", requested_at=T0, expires_at=T0 + timedelta(hours=1))
    validating = RunRecord.new(run_id="run-1", caller="c", request=request, at=T0).transition(
        RunStatus.VALIDATING, at=T0
    )
    return validating.transition(RunStatus.PENDING_APPROVAL, at=T0, approval=approval)


def test_an_approval_expires_only_undecided_and_at_its_expiry():
    approval = waiting_run().approval

    assert approval.pending
    assert not approval.expired_by(T0 + timedelta(minutes=59))
    assert approval.expired_by(T0 + timedelta(hours=1))
    decided = approval.decided("approved", at=T0, by="a", comment="")
    assert (decided.decision, decided.decided_by, decided.comment) == ("approved", "a", None)
    assert not decided.expired_by(T0 + timedelta(days=1))


def test_a_run_waits_for_approval_only_with_an_open_approval_and_leaves_only_once_decided():
    run = waiting_run()
    validating = run.model_copy(update={"status": RunStatus.VALIDATING, "steps": run.steps[:2], "approval": None})

    with pytest.raises(IllegalTransitionError):
        validating.transition(RunStatus.PENDING_APPROVAL, at=T0)
    with pytest.raises(IllegalTransitionError):
        run.transition(RunStatus.SUBSCRIBING, at=T0)
    moved = run.transition(RunStatus.SUBSCRIBING, at=T0, approval=run.approval.decided("approved", at=T0, by="a"))
    assert moved.step_token == run.step_token + 1
    with pytest.raises(IllegalTransitionError):
        run.transition(RunStatus.VERIFYING, at=T0)


def test_a_delete_run_never_waits_for_approval():
    run = waiting_run()
    delete = run.model_copy(update={"status": RunStatus.VALIDATING, "steps": run.steps[:2], "operation": "delete"})

    with pytest.raises(IllegalTransitionError):
        delete.transition(RunStatus.PENDING_APPROVAL, at=T0, approval=run.approval)


def test_the_approval_is_public_and_survives_storage():
    run = waiting_run()

    assert run.to_public_dict()["approval"]["expiresAt"] == "2026-11-27T10:00:00Z"
    assert RunRecord.from_storage_dict(run.to_storage_dict()) == run
