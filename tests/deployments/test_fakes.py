"""The fakes behave like Azure and Table Storage where the domain depends on it; the run store over the in-memory
table is the production one, so these check the table and the test hooks more than the store."""

import pytest

from shared.adapters.run_store import MAX_UPDATE_ATTEMPTS
from shared.azure_errors import RecordChangedError, RecordExistsError
from shared.deployment import Deployment, DeploymentRequester, DeploymentSpec, Phase
from shared.runs import RunRecord, RunStatus

from .fakes import START, FakeMachineLearning, FakeSecretStore, InMemoryRunRepository
from .scenario import DIRECT_MODEL, MARKETPLACE_MODEL, REQUESTER, WORKSPACE_ID, request

AT = START
SPEC = DeploymentSpec(workspace_id=WORKSPACE_ID, model_id=DIRECT_MODEL, endpoint_name="ep", content_safety="Enabled")


def new_run(run_id="run-1", ticket=None):
    return RunRecord.new(run_id=run_id, caller=REQUESTER, request=request(DIRECT_MODEL), at=AT, ticket=ticket)


def new_deployment(run_id="run-1"):
    requester = DeploymentRequester(caller=REQUESTER, run_id=run_id, outcome="created", at=AT)
    return Deployment.new(SPEC, run_id=run_id, requester=requester, at=AT)


# The store over the in-memory table.


def test_a_run_is_created_once():
    runs = InMemoryRunRepository()
    runs.create(new_run())

    with pytest.raises(RecordExistsError):
        runs.create(new_run())


def test_a_save_with_a_stale_etag_is_refused_and_counted():
    runs = InMemoryRunRepository()
    stale = runs.create(new_run())
    runs.save(stale.run.transition(RunStatus.VALIDATING, at=AT), stale.etag)

    with pytest.raises(RecordChangedError):
        runs.save(stale.run, stale.etag)
    assert runs.conflicts == 1


def test_an_update_that_keeps_losing_gives_up():
    runs = InMemoryRunRepository()
    runs.create(new_run())
    interferences = []

    def interfere():
        interferences.append(True)
        stored = runs.get("run-1")
        runs.save(stored.run.with_changes(at=AT, warnings=(f"touch {len(interferences)}",)), stored.etag)
        runs.before_next("save", interfere)

    runs.before_next("save", interfere)

    with pytest.raises(RecordChangedError, match="kept changing"):
        runs.update("run-1", lambda run: run.transition(RunStatus.VALIDATING, at=AT))
    assert runs.conflicts == MAX_UPDATE_ATTEMPTS


def test_updating_a_missing_run_is_a_key_error():
    with pytest.raises(KeyError):
        InMemoryRunRepository().update("missing", lambda run: run)


def test_a_deployment_is_created_once_and_saved_only_with_its_latest_etag():
    runs = InMemoryRunRepository()
    created = runs.create_deployment(new_deployment())

    with pytest.raises(RecordExistsError):
        runs.create_deployment(new_deployment("run-2"))
    runs.save_deployment(created.deployment.changed(at=AT, phase=Phase.READY), created.etag)
    with pytest.raises(RecordChangedError):
        runs.save_deployment(created.deployment.changed(at=AT, phase=Phase.FAILED), created.etag)
    assert [item.status.phase for item in runs.all_deployments] == [Phase.READY]


def test_each_hook_runs_once_just_before_the_next_call_of_its_operation():
    runs = InMemoryRunRepository()
    seen = []
    for operation in InMemoryRunRepository.HOOKED:
        runs.before_next(operation, lambda operation=operation: seen.append((operation, len(runs.all_runs))))

    runs.claim_idempotency_key(REQUESTER, "key-1", run_id="run-1", fingerprint="f")
    runs.create_deployment(new_deployment())
    runs.create(new_run())
    runs.update("run-1", lambda run: run.transition(RunStatus.VALIDATING, at=AT))
    runs.update_deployment(new_deployment().id, lambda deployment: deployment.changed(at=AT, phase=Phase.READY))
    runs.update("run-1", lambda run: run.transition(RunStatus.PROVISIONING, at=AT))

    assert seen == [
        ("claim_idempotency_key", 0),
        ("create_deployment", 0),
        ("create", 0),
        ("save", 1),
        ("save_deployment", 1),
    ]


def test_only_known_operations_can_be_hooked():
    with pytest.raises(AssertionError):
        InMemoryRunRepository().before_next("join", lambda: None)


def test_a_foreign_continuation_token_is_refused():
    with pytest.raises(ValueError, match="continuation token"):
        InMemoryRunRepository().list(continuation_token="abc")


def test_the_ticket_index_finds_each_run_once():
    runs = InMemoryRunRepository()
    runs.create(new_run("run-1", ticket="CHG-1"))
    runs.create(new_run("run-2", ticket="CHG-2"))
    runs.index_ticket("CHG-1", run_id="run-2", deployment_id=None)
    runs.index_ticket("CHG-1", run_id="run-2", deployment_id=None)

    assert [run.id for run in runs.list(ticket="CHG-1").runs] == ["run-1", "run-2"]
    assert [run.id for run in runs.list(ticket="CHG-2").runs] == ["run-2"]


def test_stored_text_is_what_the_table_holds():
    runs = InMemoryRunRepository()
    runs.create(new_run(ticket="CHG-1"))
    runs.create_deployment(new_deployment())

    text = runs.stored_text()

    assert '"ticket": "CHG-1"' in text
    assert '"currentRunId": "run-1"' in text


# Azure.


def test_operations_finish_only_after_being_polled():
    ml = FakeMachineLearning()
    ml.add_endpoint(WORKSPACE_ID, "ep", DIRECT_MODEL)

    operation = ml.begin_delete_endpoint(WORKSPACE_ID, "ep")

    assert not ml.get_operation(operation).done
    assert ml.get_endpoint(WORKSPACE_ID, "ep") is not None
    assert ml.get_operation(operation).succeeded
    assert ml.get_endpoint(WORKSPACE_ID, "ep") is None


def test_subscribing_again_brings_the_models_endpoints_back_online():
    ml = FakeMachineLearning()
    ml.synchronous = True
    ml.add_endpoint(WORKSPACE_ID, "cohere", MARKETPLACE_MODEL)
    ml.add_endpoint(WORKSPACE_ID, "other", DIRECT_MODEL)
    ml.add_endpoint(WORKSPACE_ID, "half-made", MARKETPLACE_MODEL, provisioning_state="Creating")
    ml.add_subscription(WORKSPACE_ID, "cohere-sub", MARKETPLACE_MODEL, status="Subscribed")
    ml.remove_subscription(WORKSPACE_ID, "cohere-sub")
    for name in ("cohere", "other"):
        ml.set_endpoint_health(WORKSPACE_ID, name, "Suspended")

    ml.begin_create_subscription(WORKSPACE_ID, "cohere-sub", model_id=MARKETPLACE_MODEL)

    assert ml.subscription(WORKSPACE_ID, "cohere-sub").status == "Subscribed"
    assert [ml.endpoint(WORKSPACE_ID, name).endpoint_state for name in ("cohere", "other", "half-made")] == [
        "Online",
        "Suspended",
        "Creating",
    ]
    assert "remove_subscription" not in ml.call_names


def test_key_vault_keeps_every_version_and_reads_the_latest():
    secrets = FakeSecretStore()
    first = secrets.set_secret("s", "one", content_type="t", tags={})
    second = secrets.set_secret("S", "two", content_type="t", tags={})

    assert first.id != second.id
    assert secrets.get_secret("s") == second
    assert secrets.get_secret_value("s") == "two"
    secrets.set_enabled("s", False)
    assert secrets.get_secret_value("s") is None
    assert len(secrets.versions["s"]) == 2
