"""The in-memory run repository behaves like the Table Storage one where the domain depends on it."""

import pytest

from shared.azure_errors import RecordChangedError, RecordExistsError
from shared.runs import RunRecord, RunStatus

from .fakes import START, FakeMachineLearning, InMemoryRunRepository
from .scenario import DIRECT_MODEL, REQUESTER, WORKSPACE_ID, request

AT = START


def new_run(run_id="run-1"):
    return RunRecord.new(run_id=run_id, caller=REQUESTER, request=request(DIRECT_MODEL), at=AT)


def test_a_run_is_created_once():
    runs = InMemoryRunRepository()
    runs.create(new_run())

    with pytest.raises(RecordExistsError):
        runs.create(new_run())


def test_a_save_with_a_stale_etag_is_refused():
    runs = InMemoryRunRepository()
    stale = runs.create(new_run())
    runs.save(stale.run.transition(RunStatus.VALIDATING, at=AT), stale.etag)

    with pytest.raises(RecordChangedError):
        runs.save(stale.run, stale.etag)


def test_an_update_that_keeps_losing_gives_up():
    runs = InMemoryRunRepository(max_update_attempts=2)
    runs.create(new_run())

    def interfere():
        stored = runs.get("run-1")
        runs.save(stored.run, stored.etag)
        runs.before_next("save", interfere)

    runs.before_next("save", interfere)

    with pytest.raises(RecordChangedError):
        runs.update("run-1", lambda run: run.transition(RunStatus.VALIDATING, at=AT))


def test_updating_a_missing_run_is_a_key_error():
    with pytest.raises(KeyError):
        InMemoryRunRepository().update("missing", lambda run: run)


def test_only_the_first_claim_wins_and_only_its_holder_releases_it():
    runs = InMemoryRunRepository()

    assert runs.claim_deployment(WORKSPACE_ID, DIRECT_MODEL, "run-1") == "run-1"
    assert runs.claim_deployment(WORKSPACE_ID.upper(), DIRECT_MODEL.lower(), "run-2") == "run-1"
    runs.release_deployment(WORKSPACE_ID, DIRECT_MODEL, "run-2")
    assert runs.deployment_holder(WORKSPACE_ID, DIRECT_MODEL) == "run-1"
    assert not runs.take_over_deployment(WORKSPACE_ID, DIRECT_MODEL, "run-9", "run-2")
    assert runs.take_over_deployment(WORKSPACE_ID, DIRECT_MODEL, "run-1", "run-2")
    runs.release_deployment(WORKSPACE_ID, DIRECT_MODEL, "run-2")
    assert runs.deployment_holder(WORKSPACE_ID, DIRECT_MODEL) is None
    assert runs.take_over_deployment(WORKSPACE_ID, DIRECT_MODEL, "run-2", "run-3")
    assert runs.deployment_holder(WORKSPACE_ID, DIRECT_MODEL) == "run-3"


def test_a_foreign_continuation_token_is_refused():
    with pytest.raises(ValueError, match="continuation token"):
        InMemoryRunRepository().list(continuation_token="abc")


def test_operations_finish_only_after_being_polled():
    ml = FakeMachineLearning()
    ml.add_endpoint(WORKSPACE_ID, "ep", DIRECT_MODEL)

    operation = ml.begin_delete_endpoint(WORKSPACE_ID, "ep")

    assert not ml.get_operation(operation).done
    assert ml.get_endpoint(WORKSPACE_ID, "ep") is not None
    assert ml.get_operation(operation).succeeded
    assert ml.get_endpoint(WORKSPACE_ID, "ep") is None
