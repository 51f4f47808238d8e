"""The step chain a run carries: its token, heartbeat and recoveries, and which step resumes it."""

from datetime import timedelta

import pytest

from shared.engine import (
    DELETE_ENDPOINT,
    DELETE_SUBSCRIPTION,
    PROVISION,
    ROTATE_KEY,
    SUBSCRIBE,
    VERIFY,
    MalformedWorkItemError,
    WorkItem,
    is_current_step,
    resume_step,
)
from shared.runs import KeyRotation, RunRecord, RunStatus

from .test_runs import T0, happy_path, new_run


def test_the_token_moves_on_with_each_status_change_and_not_with_a_repeated_one():
    run = new_run()
    validating = run.transition(RunStatus.VALIDATING, at=T0)

    assert (run.step_token, validating.step_token) == (0, 1)
    assert validating.transition(RunStatus.VALIDATING, at=T0).step_token == 1
    assert happy_path(run).step_token == 6


def test_a_heartbeat_moves_the_last_activity_but_not_the_public_record():
    run = new_run().transition(RunStatus.VALIDATING, at=T0)
    later = T0 + timedelta(seconds=30)

    beat = run.stepped(at=later)

    assert (beat.step_token, beat.last_activity, beat.updated_at) == (run.step_token, later, T0)
    assert beat.to_public_dict() == run.to_public_dict()
    assert RunRecord.from_storage_dict(beat.to_storage_dict()) == beat


def test_a_recovery_moves_the_token_on_and_counts_until_the_next_status_change():
    run = new_run().transition(RunStatus.VALIDATING, at=T0)

    twice = run.recovered(at=T0).recovered(at=T0 + timedelta(minutes=1))
    moved = twice.transition(RunStatus.PROVISIONING, at=T0 + timedelta(minutes=2))

    assert (twice.step_token, twice.recoveries, twice.stepped_at) == (3, 2, T0 + timedelta(minutes=1))
    assert (moved.step_token, moved.recoveries) == (4, 0)
    assert "recoveries" not in twice.to_public_dict()


def test_a_run_is_in_flight_until_it_ends_and_while_a_rotation_on_it_runs():
    done = happy_path(new_run())
    rotation = KeyRotation(id="r-1", key_type="primary", trigger="manual", status="Pending", requested_at=T0)
    rotating = done.with_changes(at=T0, key_rotations=(rotation,)).rechained(at=T0)

    assert new_run().in_flight
    assert not done.in_flight
    assert rotating.in_flight
    assert rotating.step_token == done.step_token + 1
    assert (resume_step(rotating), is_current_step(rotating, ROTATE_KEY), is_current_step(done, ROTATE_KEY)) == (
        ROTATE_KEY,
        True,
        False,
    )


@pytest.mark.parametrize(
    ("status", "step"),
    [
        (RunStatus.SUBSCRIBING, SUBSCRIBE),
        (RunStatus.PROVISIONING, PROVISION),
        (RunStatus.VERIFYING, VERIFY),
        (RunStatus.DELETING, DELETE_ENDPOINT),
        (RunStatus.ACCEPTED, None),
        (RunStatus.VALIDATING, None),
        (RunStatus.SUCCEEDED, None),
    ],
)
def test_the_step_that_resumes_a_run_follows_from_its_status(status, step):
    run = new_run().model_copy(update={"status": status})

    assert resume_step(run) == step


def test_both_teardown_steps_belong_to_a_deleting_run():
    deleting = new_run(operation="delete").model_copy(update={"status": RunStatus.DELETING})

    assert is_current_step(deleting, DELETE_ENDPOINT)
    assert is_current_step(deleting, DELETE_SUBSCRIPTION)
    assert not is_current_step(deleting, PROVISION)


def test_a_work_item_carries_its_token_through_polls_retries_and_into_the_same_chains_next_step():
    item = WorkItem("run-1", PROVISION, step_token=4)

    assert item.polling("https://op", since=0.0).retried().step_token == 4
    assert item.waiting(since=0.0).step_token == 4
    assert item.next(DELETE_SUBSCRIPTION).step_token == 4
    assert item.next(VERIFY, step_token=5).step_token == 5
    assert WorkItem.from_message('{"run_id": "run-1", "step": "verify", "step_token": 7}').step_token == 7


@pytest.mark.parametrize("token", ['"7"', "-1", "1.5", "true"])
def test_a_token_the_broker_never_writes_is_a_malformed_item(token):
    with pytest.raises(MalformedWorkItemError, match="step_token"):
        WorkItem.from_message(f'{{"run_id": "run-1", "step": "verify", "step_token": {token}}}')
