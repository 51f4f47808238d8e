"""begin_deploy and begin_delete over a fake transport: the pipeline's headers, following Operation-Location to the
run's end, the deployment it left, refusals and failures as errors, approval waits and continuation tokens."""

from __future__ import annotations

import uuid

import pytest
from azure.core.exceptions import ResourceExistsError, ServiceRequestError
from deployment_broker_client import (
    BrokerClient,
    BrokerConflictError,
    BrokerError,
    DeploymentPhase,
    RunStatus,
    RunUnsuccessfulError,
)

from shared.deployment import Phase
from tests.clients import wire
from tests.clients.fakes import API, FUNCTION_KEY, SCOPE, TOKEN, FakeBroker, FakeCredential, client_over

RUN_PATH = f"/runs/{wire.RUN_ID}"
DEPLOYMENT_PATH = f"/deployments/{wire.DEPLOYMENT_ID}"
ACCEPTED_HEADERS = {"Operation-Location": f"{API}{RUN_PATH}", "Location": f"{API}{DEPLOYMENT_PATH}"}
S = wire.RunStatus


def _deploying(broker: FakeBroker) -> FakeBroker:
    broker.answer("POST", "/deployments", 202, wire.run_document(), ACCEPTED_HEADERS)
    broker.answer("GET", RUN_PATH, 200, wire.run_document(S.VALIDATING, S.PROVISIONING))
    broker.answer("GET", RUN_PATH, 200, wire.run_document(*wire.DEPLOY_PATH, S.SUCCEEDED))
    return broker.answer("GET", DEPLOYMENT_PATH, 200, wire.deployment_document())


def test_deploy_follows_the_run_to_success_and_returns_the_ready_deployment():
    broker = _deploying(FakeBroker())
    seen: list[str] = []

    poller = client_over(broker).begin_deploy(
        wire.WORKSPACE, wire.MODEL, ticket="T-1", progress_hook=lambda run: seen.append(str(run.status))
    )
    deployment = poller.result(timeout=10)

    assert deployment.status.phase is DeploymentPhase.READY
    assert deployment.status.secret_ids is not None
    assert poller.status() == RunStatus.SUCCEEDED
    assert poller.polling_method().latest_run.status is RunStatus.SUCCEEDED
    assert seen == ["Accepted", "Provisioning", "Succeeded"]
    [post] = broker.calls("POST", "/deployments")
    assert post.body == {"workspaceId": wire.WORKSPACE, "modelId": wire.MODEL, "ticket": "T-1"}
    assert len(broker.calls("GET", RUN_PATH)) == 2
    assert len(broker.calls("GET", DEPLOYMENT_PATH)) == 1


def test_every_request_carries_the_function_key_a_bearer_token_and_the_sdk_user_agent():
    broker = _deploying(FakeBroker())
    credential = FakeCredential()

    client_over(broker, credential=credential).begin_deploy(wire.WORKSPACE, wire.MODEL).result(timeout=10)

    assert credential.scopes[0] == (SCOPE,)
    for sent in broker.sent:
        assert sent.headers["x-functions-key"] == FUNCTION_KEY
        assert sent.headers["Authorization"] == f"Bearer {TOKEN}"
        assert sent.headers["User-Agent"].startswith("azsdk-python-deployment-broker-client/0.1.0 ")
    uuid.UUID(broker.calls("POST", "/deployments")[0].headers["Idempotency-Key"])


def test_an_idempotency_key_given_is_sent_as_is():
    broker = _deploying(FakeBroker())

    client_over(broker).begin_deploy(wire.WORKSPACE, wire.MODEL, idempotency_key="portal-42").result(timeout=10)

    assert broker.calls("POST", "/deployments")[0].headers["Idempotency-Key"] == "portal-42"


def test_a_deployment_ready_as_asked_completes_at_once_without_polling():
    broker = FakeBroker().answer(
        "POST", "/deployments", 200, wire.deployment_document(), {"Location": f"{API}{DEPLOYMENT_PATH}"}
    )

    poller = client_over(broker).begin_deploy(wire.WORKSPACE, wire.MODEL)

    assert poller.done()
    assert poller.result().id == wire.DEPLOYMENT_ID
    assert poller.status() == RunStatus.SUCCEEDED
    assert poller.polling_method().latest_run is None
    assert len(broker.sent) == 1


def test_a_run_waiting_for_an_approver_is_polled_until_it_moves_on():
    broker = FakeBroker().answer("POST", "/deployments", 202, wire.run_document(), ACCEPTED_HEADERS)
    broker.answer("GET", RUN_PATH, 200, wire.pending_approval_document())
    broker.answer("GET", RUN_PATH, 200, wire.pending_approval_document())
    broker.answer("GET", RUN_PATH, 200, wire.run_document(*wire.DEPLOY_PATH, S.SUCCEEDED))
    broker.answer("GET", DEPLOYMENT_PATH, 200, wire.deployment_document())
    seen: list[str] = []

    deployment = (
        client_over(broker)
        .begin_deploy(wire.WORKSPACE, wire.MODEL, progress_hook=lambda run: seen.append(str(run.status)))
        .result(timeout=10)
    )

    assert deployment.status.phase is DeploymentPhase.READY
    assert seen == ["Accepted", "PendingApproval", "Succeeded"]
    assert len(broker.calls("GET", RUN_PATH)) == 3


def test_a_run_ending_rejected_raises_with_the_run_and_its_error():
    broker = FakeBroker().answer("POST", "/deployments", 202, wire.run_document(), ACCEPTED_HEADERS)
    broker.answer("GET", RUN_PATH, 200, wire.run_document(S.REJECTED))

    poller = client_over(broker).begin_deploy(wire.WORKSPACE, wire.MODEL)

    with pytest.raises(RunUnsuccessfulError) as raised:
        poller.result(timeout=10)
    assert raised.value.run.status is RunStatus.REJECTED
    assert raised.value.run_error is not None
    assert raised.value.run_error.code == "region-unsupported"
    assert broker.calls("GET", DEPLOYMENT_PATH) == []


def test_a_refused_request_raises_the_problem_naming_the_rejected_run():
    problem = wire.problem_document("region-unsupported", "westeurope does not offer it.", runId=wire.RUN_ID)
    broker = FakeBroker().answer("POST", "/deployments", 422, problem, {"Operation-Location": f"{API}{RUN_PATH}"})

    with pytest.raises(BrokerError) as raised:
        client_over(broker).begin_deploy(wire.WORKSPACE, wire.MODEL)

    assert raised.value.status_code == 422
    assert raised.value.problem is not None
    assert raised.value.problem.slug == "region-unsupported"
    assert raised.value.run_id == wire.RUN_ID
    assert "region-unsupported: westeurope does not offer it." in raised.value.message


def test_a_conflict_is_also_azure_cores_resource_exists_error():
    problem = wire.problem_document("deployment-conflict", "Another endpoint name.", runId=wire.RUN_ID)
    broker = FakeBroker().answer("POST", "/deployments", 409, problem)

    with pytest.raises(ResourceExistsError) as raised:
        client_over(broker).begin_deploy(wire.WORKSPACE, wire.MODEL, endpoint_name="other")

    assert isinstance(raised.value, BrokerConflictError)


def test_delete_follows_the_delete_run_and_returns_the_deleted_deployment():
    broker = FakeBroker().answer(
        "DELETE", DEPLOYMENT_PATH, 202, wire.run_document(operation="delete"), ACCEPTED_HEADERS
    )
    broker.answer("GET", RUN_PATH, 200, wire.run_document(S.VALIDATING, S.DELETING, operation="delete"))
    broker.answer("GET", RUN_PATH, 200, wire.run_document(S.VALIDATING, S.DELETING, S.DELETED, operation="delete"))
    broker.answer("GET", DEPLOYMENT_PATH, 200, wire.deployment_document(Phase.DELETED))

    poller = client_over(broker).begin_delete(wire.DEPLOYMENT_ID, delete_subscription=True)
    deployment = poller.result(timeout=10)

    assert deployment.status.phase is DeploymentPhase.DELETED
    assert poller.status() == RunStatus.DELETED
    assert broker.calls("DELETE", DEPLOYMENT_PATH)[0].query == {"deleteSubscription": ["true"]}


def test_repair_of_a_deployment_azure_agrees_with_completes_at_once():
    broker = FakeBroker().answer("POST", f"{DEPLOYMENT_PATH}/repair", 200, wire.deployment_document())

    poller = client_over(broker).begin_repair(wire.DEPLOYMENT_ID)

    assert poller.done()
    assert poller.result().status.phase is DeploymentPhase.READY


def test_a_poller_resumes_from_its_continuation_token():
    broker = FakeBroker().answer("POST", "/deployments", 202, wire.run_document(), ACCEPTED_HEADERS)
    broker.answer("GET", RUN_PATH, 200, wire.run_document(*wire.DEPLOY_PATH, S.SUCCEEDED))
    broker.answer("GET", DEPLOYMENT_PATH, 200, wire.deployment_document())
    client = client_over(broker)
    token = client.begin_deploy(wire.WORKSPACE, wire.MODEL).continuation_token()

    resumed = client.begin_deploy(wire.WORKSPACE, wire.MODEL, continuation_token=token)

    assert resumed.result(timeout=10).id == wire.DEPLOYMENT_ID
    assert len(broker.calls("POST", "/deployments")) == 1


def test_a_bearer_token_goes_over_plain_http_to_loopback_only():
    broker = FakeBroker().answer("GET", DEPLOYMENT_PATH, 200, wire.deployment_document())
    remote = BrokerClient("http://broker.example.com", FakeCredential(), scope=SCOPE, transport=broker, retry_total=0)

    with pytest.raises(ServiceRequestError, match="non-TLS"):
        remote.get_deployment(wire.DEPLOYMENT_ID)
    assert client_over(broker).get_deployment(wire.DEPLOYMENT_ID).id == wire.DEPLOYMENT_ID


def test_the_scope_is_required():
    with pytest.raises(ValueError, match="scope"):
        BrokerClient("https://broker.example.com", FakeCredential(), scope="")
