"""The Deployment resource: its id, its conditions, how a run's end maps onto it, and its request history."""

import re
from datetime import UTC, datetime, timedelta
from urllib.parse import quote

import pytest

from shared.azure_ids import WorkspaceId
from shared.deployment import (
    MAX_INLINE_REQUESTS,
    ConditionType,
    Deployment,
    DeploymentRequester,
    DeploymentSpec,
    Phase,
    condition,
    deployment_id,
    deployment_id_of,
)
from shared.model_ids import parse_model_id
from shared.requests import DeploymentRequest
from shared.runs import EndpointInfo, RunError, RunRecord, RunStatus, SecretIds

SUB = "0b1f6471-1bf0-4dda-aec3-111122223333"
OTHER_SUB = "7d2c0c56-0000-4a1e-9f5c-444455556666"
WS = f"/subscriptions/{SUB}/resourceGroups/rg-ai/providers/Microsoft.MachineLearningServices/workspaces/Proj-A"
MODEL = "azureml://registries/azureml-deepseek/models/DeepSeek-R1"
T0 = datetime(2026, 11, 27, 9, 0, tzinfo=UTC)
T1, T2 = T0 + timedelta(minutes=1), T0 + timedelta(minutes=2)
ENDPOINT = EndpointInfo(
    name="deepseek-r1-ab12", id=f"{WS}/serverlessEndpoints/deepseek-r1-ab12", scoring_uri="https://x"
)
SECRETS = SecretIds(
    primary="https://kv.vault.azure.net/secrets/serverless-ep-primary/1",
    secondary="https://kv.vault.azure.net/secrets/serverless-ep-secondary/2",
)
SPEC = DeploymentSpec(workspace_id=WS, model_id=MODEL, endpoint_name="deepseek-r1-ab12", content_safety="Enabled")


def the_id(workspace: str = WS, model: str = MODEL) -> str:
    return deployment_id(WorkspaceId.parse(workspace), parse_model_id(model))


def requester(caller: str = "oid", *, ticket: str | None = None, at: datetime = T0) -> DeploymentRequester:
    return DeploymentRequester(caller=caller, ticket=ticket, run_id="run-1", outcome="created", at=at)


def new_deployment(run_id: str = "run-1") -> Deployment:
    return Deployment.new(SPEC, run_id=run_id, requester=requester(), at=T0)


def run_of(operation: str = "deploy", run_id: str = "run-1") -> RunRecord:
    request = DeploymentRequest(workspace_id=WS, model_id=MODEL)
    return RunRecord.new(run_id=run_id, caller="oid", request=request, at=T0, operation=operation).transition(
        RunStatus.VALIDATING, at=T0
    )


def succeeded(run_id: str = "run-1", operation: str = "deploy") -> RunRecord:
    return (
        run_of(operation, run_id)
        .transition(RunStatus.STORING_KEYS, at=T1, endpoint=ENDPOINT)
        .transition(RunStatus.VERIFYING, at=T1, secret_ids=SECRETS)
        .transition(RunStatus.SUCCEEDED, at=T1)
    )


def failed(operation: str = "deploy", run_id: str = "run-1") -> RunRecord:
    error = RunError(code="QuotaExceeded", message="No quota.")
    return run_of(operation, run_id).transition(RunStatus.FAILED, at=T1, error=error)


def all_true(at: datetime) -> list:
    return [condition(kind, "True", "Fine", "All good.", at=at) for kind in ConditionType]


# Ids.


def test_the_id_is_readable_and_the_same_for_the_same_project_and_model():
    assert re.fullmatch(r"proj-a--deepseek-r1--[0-9a-f]{10}", the_id())
    assert the_id() == the_id()
    assert the_id(WS.lower(), MODEL.lower()) == the_id()
    assert the_id(model=f"{MODEL}/versions/3") == the_id()


@pytest.mark.parametrize(
    "model",
    [MODEL, "azureml://registries/azureml-meta/models/Llama-3.3-70B_Instruct.v2", "azureml://registries/r/models/A.B"],
)
def test_the_id_is_url_safe(model):
    value = the_id(model=model)

    assert quote(value, safe="") == value
    assert re.fullmatch(r"[a-z0-9._-]+", value)


def test_the_id_differs_for_every_other_project_or_model():
    ids = {
        the_id(),
        the_id(model="azureml://registries/azureml-cohere/models/Cohere-command-r-08-2024"),
        # The same model name in another registry, and the same project name elsewhere, keep their readable part.
        the_id(model="azureml://registries/other-registry/models/DeepSeek-R1"),
        the_id(WS.replace("Proj-A", "proj-b")),
        the_id(WS.replace("rg-ai", "rg-other")),
        the_id(WS.replace(SUB, OTHER_SUB)),
    }

    assert len(ids) == 6


def test_a_spec_names_its_deployment():
    assert deployment_id_of(SPEC) == the_id()


# A new deployment and its conditions.


def test_a_new_deployment_is_provisioning_its_first_run_with_nothing_observed_yet():
    deployment = new_deployment()

    assert deployment.id == the_id()
    assert (deployment.status.phase, deployment.status.current_run_id) == (Phase.PROVISIONING, "run-1")
    assert [(c.type, c.status, c.reason) for c in deployment.status.conditions] == [
        (kind, "Unknown", "Pending") for kind in ConditionType
    ]
    assert (deployment.requests, deployment.request_count) == ((requester(),), 1)
    assert not deployment.all_conditions_true
    assert not deployment.is_gone


def test_conditions_are_replaced_by_type_and_kept_in_a_fixed_order():
    healthy = condition(ConditionType.HEALTHY, "False", "EndpointOffline", "Offline.", at=T1)
    keys = condition(ConditionType.KEYS_STORED, "True", "Stored", "Stored.", at=T1)

    deployment = new_deployment().with_conditions([healthy, keys], at=T1)

    assert [c.type for c in deployment.status.conditions] == list(ConditionType)
    assert deployment.condition(ConditionType.HEALTHY) == healthy
    assert deployment.condition(ConditionType.KEYS_STORED) == keys
    assert deployment.condition(ConditionType.ENDPOINT_READY).reason == "Pending"
    assert deployment.status.observed_at == deployment.updated_at == T1


def test_a_condition_keeps_its_transition_time_while_its_status_stays():
    first = new_deployment().with_conditions(
        [condition(ConditionType.HEALTHY, "False", "EndpointSuspended", "Suspended.", at=T1)], at=T1
    )

    same_status = first.with_conditions(
        [condition(ConditionType.HEALTHY, "False", "SubscriptionMissing", "Gone.", at=T2)], at=T2
    )
    changed = same_status.with_conditions([condition(ConditionType.HEALTHY, "True", "Online", "Online.", at=T2)], at=T2)

    kept = same_status.condition(ConditionType.HEALTHY)
    assert (kept.reason, kept.message, kept.last_transition_time) == ("SubscriptionMissing", "Gone.", T1)
    assert changed.condition(ConditionType.HEALTHY).last_transition_time == T2


def test_all_conditions_true_needs_every_condition():
    deployment = new_deployment().with_conditions(all_true(T1), at=T1)
    one_false = deployment.with_conditions(
        [condition(ConditionType.KEYS_STORED, "False", "SecretsDisabled", "Disabled.", at=T2)], at=T2
    )
    none_at_all = deployment.changed(at=T2, conditions=())

    assert deployment.all_conditions_true
    assert not one_false.all_conditions_true
    assert not none_at_all.all_conditions_true


# How a run's end maps onto the deployment.


def test_a_succeeded_deploy_makes_it_ready_with_the_runs_endpoint_and_keys():
    deployment = new_deployment().changed(at=T0, error=RunError(code="Old", message="Earlier failure."))

    ready = deployment.run_finished(succeeded(), at=T2, conditions=all_true(T2), keys_written=True)

    assert ready.status.phase is Phase.READY
    assert (ready.status.endpoint, ready.status.secret_ids) == (ENDPOINT, SECRETS)
    assert (ready.status.keys_run_id, ready.status.current_run_id, ready.status.error) == ("run-1", "run-1", None)
    assert ready.all_conditions_true
    assert ready.updated_at == T2


def test_a_run_that_wrote_no_keys_leaves_them_on_the_run_that_did():
    keys_from_run_1 = new_deployment().run_finished(succeeded(), at=T1, keys_written=True)
    repairing = keys_from_run_1.changed(at=T1, phase=Phase.PROVISIONING, current_run_id="run-2")

    repaired = repairing.run_finished(succeeded("run-2", "repair"), at=T2, keys_written=False)
    rewritten = repairing.run_finished(succeeded("run-2", "repair"), at=T2, keys_written=True)

    assert repaired.status.keys_run_id == "run-1"
    assert rewritten.status.keys_run_id == "run-2"
    # A deployment that never had a keys run takes the succeeding one, whatever it wrote.
    assert new_deployment().run_finished(succeeded(), at=T1).status.keys_run_id == "run-1"


@pytest.mark.parametrize(
    ("operation", "phase"), [("deploy", Phase.FAILED), ("repair", Phase.DEGRADED), ("delete", Phase.FAILED)]
)
def test_a_failed_run_leaves_the_deployment_failed_unless_it_was_a_repair(operation, phase):
    ended = new_deployment().run_finished(failed(operation), at=T2)

    assert ended.status.phase is phase
    assert ended.status.error == RunError(code="QuotaExceeded", message="No quota.")
    assert ended.is_gone is (phase is Phase.FAILED)


def test_a_deleted_run_marks_every_condition_false_and_forgets_the_keys():
    ready = new_deployment().run_finished(succeeded(), at=T1, conditions=all_true(T1), keys_written=True)
    deleting = ready.changed(at=T1, phase=Phase.DELETING, current_run_id="run-9")
    run = run_of("delete", "run-9").transition(RunStatus.DELETING, at=T2).transition(RunStatus.DELETED, at=T2)

    deleted = deleting.run_finished(run, at=T2)

    assert (deleted.status.phase, deleted.status.delete_run_id, deleted.status.secret_ids) == (
        Phase.DELETED,
        "run-9",
        None,
    )
    assert [(c.status, c.reason, c.last_transition_time) for c in deleted.status.conditions] == [
        ("False", "Deleted", T2)
    ] * len(ConditionType)
    assert deleted.is_gone


def test_a_run_that_is_not_the_current_one_changes_nothing():
    deployment = new_deployment(run_id="run-2")

    assert deployment.run_finished(succeeded("run-1"), at=T2, conditions=all_true(T2)) is deployment
    assert deployment.run_finished(failed(run_id="run-1"), at=T2) is deployment


def test_a_run_still_in_flight_changes_nothing():
    deployment = new_deployment()

    assert deployment.run_finished(run_of(), at=T2, conditions=all_true(T2)) is deployment


# What a new request asks for that the deployment does not.


@pytest.mark.parametrize(
    ("changes", "differences"),
    [
        ({}, []),
        ({"endpoint_name": "DEEPSEEK-R1-AB12"}, []),
        ({"endpoint_name": "another-name"}, ["endpointName"]),
        ({"content_safety": "Disabled"}, ["contentSafety"]),
        ({"cross_region_hub": WS}, ["crossRegionHub"]),
        ({"endpoint_name": "x-y-z", "content_safety": "Disabled"}, ["endpointName", "contentSafety"]),
    ],
)
def test_differences_name_the_fields_asked_for_differently(changes, differences):
    assert SPEC.differences(SPEC.model_copy(update=changes)) == differences


def test_tags_count_only_when_the_new_request_names_some():
    tagged = SPEC.model_copy(update={"tags": {"costCenter": "ai-1"}})

    assert tagged.differences(SPEC) == []
    assert tagged.differences(tagged) == []
    assert tagged.differences(SPEC.model_copy(update={"tags": {"costCenter": "ai-2"}})) == ["tags"]
    assert tagged.differences(SPEC.model_copy(update={"tags": {}})) == ["tags"]
    assert SPEC.differences(tagged) == ["tags"]


def test_a_spec_turns_back_into_the_request_that_makes_it():
    hub = WS.replace("Proj-A", "hub-eus2")
    spec = SPEC.model_copy(update={"tags": {"a": "b"}, "cross_region_hub": hub})

    request = spec.to_request(ticket="CHG-1")

    assert (request.workspace_id, request.model_id, request.endpoint_name) == (WS, MODEL, "deepseek-r1-ab12")
    assert (request.tags, request.ticket, request.allow_cross_region) == ({"a": "b"}, "CHG-1", True)
    assert not SPEC.to_request().allow_cross_region


# Requests.


def test_requests_are_kept_inline_up_to_the_cap_and_all_are_counted():
    deployment = new_deployment()
    for number in range(MAX_INLINE_REQUESTS + 10):
        deployment = deployment.with_request(requester(f"caller-{number}"), at=T1)

    assert deployment.request_count == MAX_INLINE_REQUESTS + 11
    assert len(deployment.requests) == MAX_INLINE_REQUESTS
    assert deployment.requests[0].caller == "caller-10"
    assert deployment.requests[-1].caller == f"caller-{MAX_INLINE_REQUESTS + 9}"
    assert deployment.updated_at == T1


def test_a_gone_deployment_made_again_starts_a_fresh_history_but_keeps_counting():
    gone = new_deployment().with_request(requester("second"), at=T1).run_finished(failed(), at=T1)
    spec = SPEC.model_copy(update={"content_safety": "Disabled"})

    again = gone.recreated(spec, run_id="run-5", requester=requester("third", at=T2), at=T2)

    assert (again.id, again.spec, again.status.phase, again.status.current_run_id) == (
        gone.id,
        spec,
        Phase.PROVISIONING,
        "run-5",
    )
    assert (again.status.error, again.created_at) == (None, T2)
    assert [item.caller for item in again.requests] == ["third"]
    assert again.request_count == 3


def test_the_stored_and_public_forms_are_camel_case_and_round_trip():
    deployment = new_deployment().run_finished(succeeded(), at=T1, conditions=all_true(T1), keys_written=True)

    stored = deployment.to_storage_dict()

    assert Deployment.from_storage_dict(stored) == deployment
    assert stored["status"]["currentRunId"] == "run-1"
    assert stored["status"]["conditions"][0]["lastTransitionTime"] == "2026-11-27T09:01:00Z"
    assert deployment.to_public_dict()["requestCount"] == 1
