from datetime import UTC, datetime, timedelta

import pytest
from pydantic import ValidationError

from shared.requests import DeploymentRequest
from shared.runs import (
    ALLOWED_TRANSITIONS,
    MAX_LISTED_JOINERS,
    TERMINAL_STATUSES,
    EndpointInfo,
    IllegalTransitionError,
    RunError,
    RunRecord,
    RunRequester,
    RunStatus,
    SecretIds,
)

SUB = "0b1f6471-1bf0-4dda-aec3-111122223333"
WS = f"/subscriptions/{SUB}/resourceGroups/rg-ai/providers/Microsoft.MachineLearningServices/workspaces/proj-a"
T0 = datetime(2026, 11, 27, 9, 0, tzinfo=UTC)
REQUEST = DeploymentRequest(
    workspace_id=WS, model_id="azureml://registries/azureml-deepseek/models/DeepSeek-R1", ticket="CHG-1"
)
ENDPOINT = EndpointInfo(
    name="deepseek-r1-abc123",
    id=f"{WS}/serverlessEndpoints/deepseek-r1-abc123",
    scoring_uri="https://deepseek-r1-abc123-xyz.eastus2.models.ai.azure.com",
)
SECRETS = SecretIds(
    primary="https://kv-broker.vault.azure.net/secrets/serverless-x-primary/0123abcd",
    secondary="https://kv-broker.vault.azure.net/secrets/serverless-x-secondary",
)


def ticks():
    minute = 0

    def at() -> datetime:
        nonlocal minute
        minute += 1
        return T0 + timedelta(minutes=minute)

    return at


def new_run(**kwargs) -> RunRecord:
    return RunRecord.new(run_id="run-1", caller="caller-oid", request=REQUEST, at=T0, **kwargs)


def happy_path(run: RunRecord) -> RunRecord:
    at = ticks()
    run = run.transition(RunStatus.VALIDATING, at=at())
    run = run.transition(RunStatus.SUBSCRIBING, at=at())
    run = run.transition(RunStatus.PROVISIONING, at=at(), endpoint=ENDPOINT.model_copy(update={"scoring_uri": None}))
    run = run.transition(RunStatus.STORING_KEYS, at=at(), endpoint=ENDPOINT)
    run = run.transition(RunStatus.VERIFYING, at=at(), secret_ids=SECRETS, detail="keys stored")
    return run.transition(RunStatus.SUCCEEDED, at=at(), detail="Azure reports every condition True")


def verifying(run: RunRecord, **values) -> RunRecord:
    return (
        run.transition(RunStatus.VALIDATING, at=T0)
        .transition(RunStatus.STORING_KEYS, at=T0)
        .transition(RunStatus.VERIFYING, at=T0, **values)
    )


def test_a_new_run_is_accepted_with_one_step():
    run = new_run(idempotency_key="key-1", detail="via HTTP")

    assert run.status is RunStatus.ACCEPTED
    assert run.ticket == "CHG-1"
    assert [(step.status, step.at, step.detail) for step in run.steps] == [(RunStatus.ACCEPTED, T0, "via HTTP")]
    assert run.created_at == run.updated_at == T0
    assert not run.is_terminal


def test_an_explicit_ticket_wins_over_the_request_ticket():
    assert new_run(ticket="INC-9").ticket == "INC-9"


def test_the_happy_path_records_every_step_and_ends_succeeded():
    run = happy_path(new_run())

    assert run.status is RunStatus.SUCCEEDED
    assert run.is_terminal
    assert [step.status for step in run.steps] == [
        RunStatus.ACCEPTED,
        RunStatus.VALIDATING,
        RunStatus.SUBSCRIBING,
        RunStatus.PROVISIONING,
        RunStatus.STORING_KEYS,
        RunStatus.VERIFYING,
        RunStatus.SUCCEEDED,
    ]
    assert run.updated_at == T0 + timedelta(minutes=6)
    assert run.endpoint == ENDPOINT
    assert run.secret_ids == SECRETS
    assert run.created_at == T0


def test_transitions_return_new_records():
    run = new_run()

    moved = run.transition(RunStatus.VALIDATING, at=T0)

    assert run.status is RunStatus.ACCEPTED
    assert moved.status is RunStatus.VALIDATING


def test_re_entering_the_current_status_changes_nothing():
    run = new_run().transition(RunStatus.VALIDATING, at=T0)

    assert run.transition(RunStatus.VALIDATING, at=T0 + timedelta(hours=1), detail="again") is run


@pytest.mark.parametrize(
    ("path", "illegal"),
    [
        ([], RunStatus.PROVISIONING),
        ([], RunStatus.SUCCEEDED),
        ([RunStatus.VALIDATING], RunStatus.SUCCEEDED),
        ([RunStatus.VALIDATING, RunStatus.SUBSCRIBING], RunStatus.STORING_KEYS),
        ([RunStatus.VALIDATING, RunStatus.PROVISIONING], RunStatus.SUBSCRIBING),
        ([RunStatus.VALIDATING, RunStatus.PROVISIONING], RunStatus.REJECTED),
        ([RunStatus.VALIDATING, RunStatus.STORING_KEYS], RunStatus.SUCCEEDED),
        ([RunStatus.VALIDATING, RunStatus.VERIFYING], RunStatus.STORING_KEYS),
    ],
)
def test_illegal_transitions_raise(path, illegal):
    run = new_run()
    for status in path:
        run = run.transition(status, at=T0)

    with pytest.raises(IllegalTransitionError, match=f"Run run-1 cannot go from {run.status} to {illegal}."):
        run.transition(illegal, at=T0, error=RunError(code="x", message="y"))


@pytest.mark.parametrize("terminal", sorted(TERMINAL_STATUSES))
def test_terminal_statuses_allow_nothing(terminal):
    assert ALLOWED_TRANSITIONS[terminal] == frozenset()


def test_every_status_has_a_row_in_the_table():
    assert set(ALLOWED_TRANSITIONS) == set(RunStatus)


def test_a_sold_directly_model_skips_subscribing():
    run = new_run().transition(RunStatus.VALIDATING, at=T0).transition(RunStatus.PROVISIONING, at=T0)

    assert run.status is RunStatus.PROVISIONING


def test_an_existing_broker_endpoint_goes_straight_to_storing_keys():
    run = new_run().transition(RunStatus.VALIDATING, at=T0).transition(RunStatus.STORING_KEYS, at=T0, endpoint=ENDPOINT)

    assert run.status is RunStatus.STORING_KEYS


def test_succeeded_is_reached_only_through_verifying():
    storing = new_run().transition(RunStatus.VALIDATING, at=T0).transition(RunStatus.STORING_KEYS, at=T0)

    with pytest.raises(IllegalTransitionError, match="cannot go from StoringKeys to Succeeded"):
        storing.transition(RunStatus.SUCCEEDED, at=T0, endpoint=ENDPOINT, secret_ids=SECRETS)
    assert storing.transition(RunStatus.VERIFYING, at=T0).status is RunStatus.VERIFYING


def test_verifying_may_fail_but_not_be_rejected():
    run = verifying(new_run())
    error = RunError(code="DeploymentNotHealthy", message="Healthy=False")

    assert run.transition(RunStatus.FAILED, at=T0, error=error).error == error
    with pytest.raises(IllegalTransitionError, match="cannot go from Verifying to Rejected"):
        run.transition(RunStatus.REJECTED, at=T0, error=error)


def test_succeeded_requires_endpoint_and_secret_ids():
    with pytest.raises(IllegalTransitionError, match="cannot succeed before its endpoint and secret ids are recorded"):
        verifying(new_run(), secret_ids=SECRETS).transition(RunStatus.SUCCEEDED, at=T0)
    with pytest.raises(IllegalTransitionError, match="cannot succeed before"):
        verifying(new_run(), endpoint=ENDPOINT).transition(RunStatus.SUCCEEDED, at=T0)
    done = verifying(new_run(), endpoint=ENDPOINT, secret_ids=SECRETS).transition(RunStatus.SUCCEEDED, at=T0)
    assert done.is_terminal


@pytest.mark.parametrize("status", [RunStatus.REJECTED, RunStatus.FAILED])
def test_rejected_and_failed_require_an_error(status):
    with pytest.raises(IllegalTransitionError, match=f"cannot end {status} without an error"):
        new_run().transition(status, at=T0)


def test_a_rejection_carries_its_error():
    error = RunError(
        code="region-unsupported",
        message="DeepSeek-R1 is not offered in westeurope.",
        details=[{"regions": ["eastus"]}],
    )

    run = new_run().transition(RunStatus.VALIDATING, at=T0).transition(RunStatus.REJECTED, at=T0, error=error)

    assert run.error == error
    assert run.is_terminal


def test_delete_runs_take_their_own_path():
    run = new_run(operation="delete").transition(RunStatus.VALIDATING, at=T0)

    with pytest.raises(IllegalTransitionError, match=r"A delete run \(run-1\) never enters Provisioning."):
        run.transition(RunStatus.PROVISIONING, at=T0)
    deleted = run.transition(RunStatus.DELETING, at=T0).transition(RunStatus.DELETED, at=T0)
    assert deleted.is_terminal


@pytest.mark.parametrize("operation", ["deploy", "repair"])
def test_deploy_and_repair_runs_never_delete(operation):
    validating = new_run(operation=operation).transition(RunStatus.VALIDATING, at=T0)

    with pytest.raises(IllegalTransitionError, match=rf"A {operation} run \(run-1\) never enters Deleting."):
        validating.transition(RunStatus.DELETING, at=T0)


@pytest.mark.parametrize("status", [RunStatus.SUBSCRIBING, RunStatus.PROVISIONING, RunStatus.STORING_KEYS])
def test_a_repair_run_may_start_at_any_provisioning_step(status):
    run = new_run(operation="repair", deployment_id="proj-a--deepseek-r1--0123456789")

    started = run.transition(RunStatus.VALIDATING, at=T0).transition(status, at=T0)

    assert (started.operation, started.status) == ("repair", status)
    assert started.deployment_id == "proj-a--deepseek-r1--0123456789"


def test_a_new_run_is_a_deploy_run_of_no_deployment_yet():
    run = new_run()

    assert (run.operation, run.deployment_id, run.joined, run.warnings) == ("deploy", None, (), ())


def test_the_requesters_are_the_starting_request_then_those_that_joined():
    joiner = RunRequester(caller="colleague-oid", ticket="CHG-2", at=T0 + timedelta(minutes=3))
    run = new_run().with_changes(at=T0 + timedelta(minutes=3), joined=(joiner,))

    assert run.requesters == (RunRequester(caller="caller-oid", ticket="CHG-1", at=T0), joiner)
    assert new_run().requesters == (RunRequester(caller="caller-oid", ticket="CHG-1", at=T0),)


def test_with_changes_validates_and_stamps_the_time():
    later = T0 + timedelta(minutes=9)

    changed = new_run().with_changes(at=later, warnings=("classified by the prefix rule",))

    assert (changed.warnings, changed.updated_at, changed.status) == (
        ("classified by the prefix rule",),
        later,
        RunStatus.ACCEPTED,
    )
    with pytest.raises(ValidationError):
        new_run().with_changes(at=later, operation="upgrade")


def test_timestamps_must_be_timezone_aware():
    with pytest.raises(ValidationError, match="timezone"):
        RunRecord.new(run_id="r", caller="c", request=REQUEST, at=datetime(2026, 1, 1))
    with pytest.raises(ValidationError, match="timezone"):
        new_run().transition(RunStatus.VALIDATING, at=datetime(2026, 1, 1))


@pytest.mark.parametrize(
    "value",
    [
        "0123456789abcdef0123456789abcdef",  # a key value, not an id
        "http://kv.vault.azure.net/secrets/name",
        "https://kv.vault.azure.net/keys/name",
        "https://kv.vault.azure.net/secrets/9name",
        "https://kv.vault.azure.net/secrets/name/v1/extra",
        "https://kv.vault.azure.net/secrets/name?value=abc",
        "https:///secrets/name",
    ],
)
def test_secret_ids_accept_only_key_vault_secret_urls(value):
    with pytest.raises(ValidationError) as caught:
        SecretIds(primary=value, secondary=SECRETS.secondary)

    assert "Not a Key Vault secret id" in str(caught.value)
    assert value not in str(caught.value)


def test_a_misplaced_key_is_not_echoed_when_a_stored_record_is_read():
    key = "0123456789abcdef0123456789abcdef"
    stored = happy_path(new_run()).to_storage_dict()
    stored["secretIds"]["primary"] = key

    with pytest.raises(ValidationError) as caught:
        RunRecord.from_storage_dict(stored)

    assert key not in str(caught.value)
    assert "Not a Key Vault secret id" in str(caught.value)


def test_secret_ids_accept_a_loopback_vault():
    assert SecretIds(primary="https://127.0.0.1:8443/secrets/a-1", secondary="https://localhost/secrets/b/abc").primary


def test_the_public_form_is_camel_case_json_without_the_idempotency_key():
    run = happy_path(new_run(idempotency_key="key-1"))

    public = run.to_public_dict()

    assert "idempotencyKey" not in public
    assert public["id"] == "run-1"
    assert public["status"] == "Succeeded"
    assert public["createdAt"] == "2026-11-27T09:00:00Z"
    assert public["request"]["workspaceId"] == WS
    assert public["endpoint"] == {
        "name": ENDPOINT.name,
        "id": ENDPOINT.id,
        "scoringUri": ENDPOINT.scoring_uri,
    }
    assert public["secretIds"] == {"primary": SECRETS.primary, "secondary": SECRETS.secondary}
    assert public["steps"][-1] == {
        "status": "Succeeded",
        "at": "2026-11-27T09:06:00Z",
        "detail": "Azure reports every condition True",
    }
    assert public["error"] is None
    assert (public["operation"], public["deploymentId"], public["joined"], public["warnings"]) == (
        "deploy",
        None,
        [],
        [],
    )


def test_the_storage_form_round_trips():
    run = happy_path(new_run(idempotency_key="key-1", deployment_id="d-1"))

    stored = run.to_storage_dict()

    assert stored["idempotencyKey"] == "key-1"
    assert RunRecord.from_storage_dict(stored) == run


def test_the_joined_view_is_never_stored_on_the_run():
    joiner = RunRequester(caller="colleague-oid", ticket="CHG-2", at=T0, request_id="req-2")
    run = happy_path(new_run()).with_joiners([joiner])

    stored = run.to_storage_dict()

    assert "joined" not in stored
    assert "joinedCount" not in stored
    assert RunRecord.from_storage_dict(stored) == happy_path(new_run())


def test_the_joined_view_lists_the_first_joiners_and_counts_them_all():
    joiners = [
        RunRequester(caller=f"oid-{number}", at=T0 + timedelta(seconds=number), request_id=f"req-{number}")
        for number in range(MAX_LISTED_JOINERS + 20)
    ]

    run = new_run().with_joiners(reversed(joiners))
    public = run.to_public_dict()

    assert run.joined == tuple(joiners[:MAX_LISTED_JOINERS])
    assert (public["joinedCount"], len(public["joined"])) == (MAX_LISTED_JOINERS + 20, MAX_LISTED_JOINERS)
    assert "requestId" not in public["joined"][0], "a joiner's request id stays private to the broker"


def test_a_stored_record_whose_steps_disagree_with_its_status_is_refused():
    stored = new_run().to_storage_dict() | {"status": "Validating"}

    with pytest.raises(ValidationError, match=r"The last step must record the current status\."):
        RunRecord.from_storage_dict(stored)


def test_a_status_given_as_text_is_held_to_the_same_rules():
    storing = new_run().transition("Validating", at=T0).transition("StoringKeys", at=T0)

    assert storing.status is RunStatus.STORING_KEYS
    with pytest.raises(IllegalTransitionError, match="cannot succeed before"):
        storing.transition("Verifying", at=T0).transition("Succeeded", at=T0)
    with pytest.raises(ValueError, match="'Done' is not a valid RunStatus"):
        storing.transition("Done", at=T0)


def test_values_passed_to_a_transition_are_validated():
    validating = new_run().transition(RunStatus.VALIDATING, at=T0)

    with pytest.raises(ValidationError, match="Not a Key Vault secret id"):
        validating.transition(
            RunStatus.STORING_KEYS, at=T0, secret_ids={"primary": "raw-key-value-123456", "secondary": "x"}
        )
