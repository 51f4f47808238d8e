import threading
from dataclasses import replace

import pytest

from shared.azure_errors import AzureCallError
from shared.deployment import ConditionType, Phase, deployment_id
from shared.lifecycle.teardown import dependent_endpoints
from shared.plan import plan_for
from shared.ports import Endpoint, MarketplaceSubscription
from shared.problems import Problem
from shared.requests import DeploymentRequest, QueueDeploymentRequest
from shared.runs import RunStatus
from tests.deployments.scenario import (
    AUDITOR,
    CATALOG,
    DIRECT_MODEL,
    MARKETPLACE_MODEL,
    REQUESTER,
    WORKSPACE_ID,
    request,
)

from .world import HUB_ID, build

SUBSCRIPTION_ID = f"{WORKSPACE_ID}/marketplaceSubscriptions/Cohere-command-r-08-2024-subscription"
STRANGER = "9d9d9d9d-0000-4000-8000-000000000001"
CONCURRENT_DELETES = 20


def endpoint(name: str, model_id: str, subscription_id: str | None) -> Endpoint:
    return Endpoint(
        f"{WORKSPACE_ID}/serverlessEndpoints/{name}", name, model_id, "Succeeded", "Online", None, subscription_id
    )


def statuses(run):
    return [step.status for step in run.steps]


def delete_message(ticket: str, model_id: str = DIRECT_MODEL) -> QueueDeploymentRequest:
    return QueueDeploymentRequest(
        workspace_id=WORKSPACE_ID, model_id=model_id, requested_by=REQUESTER, ticket=ticket, type="delete"
    )


def test_dependents_are_endpoints_billed_through_the_subscription_other_than_the_one_torn_down():
    subscription = MarketplaceSubscription(SUBSCRIPTION_ID, "sub", MARKETPLACE_MODEL, "Subscribed", "Succeeded")
    endpoints = [
        endpoint("mine", MARKETPLACE_MODEL, SUBSCRIPTION_ID),
        endpoint("same-offer", "azureml://registries/azureml-cohere/models/Other", SUBSCRIPTION_ID.upper()),
        endpoint("unlinked-same-model", MARKETPLACE_MODEL, None),
        endpoint("elsewhere", MARKETPLACE_MODEL, f"{SUBSCRIPTION_ID}-2"),
        endpoint("direct", DIRECT_MODEL, None),
    ]

    assert dependent_endpoints(endpoints, subscription, excluding="MINE") == ["same-offer", "unlinked-same-model"]


def test_teardown_deletes_endpoint_secrets_and_subscription_and_leaves_the_deployment_deleted():
    world = build()
    deployed = world.deploy(MARKETPLACE_MODEL)
    plan = plan_for(deployed.request, CATALOG)

    submission = world.lifecycle.delete(deployed.deployment_id, caller=REQUESTER, delete_subscription=True)
    in_flight = world.service.get_deployment(deployed.deployment_id, caller=AUDITOR)
    world.drain()

    deleted = world.run(submission.run.id)
    assert (submission.answer, submission.problem) == ("created", None)
    assert (in_flight.status.phase, in_flight.status.current_run_id) == (Phase.DELETING, deleted.id)
    assert statuses(deleted) == [RunStatus.ACCEPTED, RunStatus.VALIDATING, RunStatus.DELETING, RunStatus.DELETED]
    assert (deleted.operation, deleted.deployment_id, deleted.delete_subscription) == (
        "delete",
        deployed.deployment_id,
        True,
    )
    assert world.ml.endpoint(WORKSPACE_ID, plan.endpoint_name) is None
    assert world.ml.subscription(WORKSPACE_ID, plan.subscription_name) is None
    assert world.secrets.latest(plan.secret_names.primary) is None
    assert world.secrets.latest(plan.secret_names.secondary) is None
    deployment = world.service.get_deployment(deployed.deployment_id, caller=AUDITOR)
    assert (deployment.status.phase, deployment.status.delete_run_id) == (Phase.DELETED, deleted.id)
    assert deployment.status.secret_ids is None
    assert {(condition.status, condition.reason) for condition in deployment.status.conditions} == {
        ("False", "Deleted")
    }
    assert [condition.type for condition in deployment.status.conditions] == list(ConditionType)
    assert [(item.run_id, item.outcome) for item in deployment.requests] == [
        (deployed.id, "created"),
        (deleted.id, "created"),
    ]
    assert world.event_types()[-2:] == ["accepted", "deleted"]
    assert world.events.bodies[-1]["data"]["deploymentId"] == deployed.deployment_id


def test_a_deployment_unknown_to_the_broker_cannot_be_deleted_over_http():
    world = build()

    assert world.lifecycle.delete("proj-a--nothing--0000000000", caller=REQUESTER, delete_subscription=False) is None
    assert world.runs.all_runs == []


def test_deleting_twice_makes_one_delete_run_and_one_deleted_event_and_answers_the_second_with_that_run():
    world = build()
    deployed = world.deploy()
    first = world.lifecycle.delete(deployed.deployment_id, caller=REQUESTER, delete_subscription=False)
    world.drain()
    azure_calls = len(world.ml.calls)

    again = world.lifecycle.delete(deployed.deployment_id, caller=REQUESTER, delete_subscription=False)
    world.drain()

    assert again.answer == "deleted"
    assert again.run == world.run(first.run.id)
    assert again.run.status is RunStatus.DELETED
    assert again.deployment.status.delete_run_id == first.run.id
    assert again.problem is None
    assert [run.id for run in world.runs.all_runs if run.operation == "delete"] == [first.run.id]
    assert world.event_types().count("deleted") == 1
    assert len(world.ml.calls) == azure_calls, "nothing is asked of Azure again"
    assert world.work.sent == []


def test_a_delete_during_a_teardown_joins_it_and_is_answered_with_its_own_event():
    world = build()
    deployed = world.deploy()

    first = world.lifecycle.delete(deployed.deployment_id, caller=REQUESTER, delete_subscription=False)
    second = world.lifecycle.intake_delete(delete_message("INC-7"), idempotency_key="message:7")
    world.drain()

    assert (second.answer, second.run.id) == ("joined", first.run.id)
    assert [(joiner.caller, joiner.ticket) for joiner in second.run.joined] == [(REQUESTER, "INC-7")]
    deleted_events = [body for body in world.events.bodies if body["type"].endswith(".deleted")]
    assert [event["data"]["ticket"] for event in deleted_events] == [None, "INC-7"]
    assert len({event["id"] for event in deleted_events}) == 2
    deployment = world.service.get_deployment(deployed.deployment_id, caller=AUDITOR)
    assert [(item.run_id, item.outcome, item.ticket) for item in deployment.requests[1:]] == [
        (first.run.id, "created", None),
        (first.run.id, "joined", "INC-7"),
    ]
    assert [run.id for run in world.runs.list(ticket="INC-7").runs] == [first.run.id]


def test_twenty_concurrent_deletes_make_one_delete_run_that_answers_them_all():
    world = build()
    deployed = world.deploy()
    start = threading.Barrier(CONCURRENT_DELETES)
    answers = []

    def delete() -> None:
        start.wait()
        answers.append(world.lifecycle.delete(deployed.deployment_id, caller=REQUESTER, delete_subscription=False))

    threads = [threading.Thread(target=delete) for _ in range(CONCURRENT_DELETES)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    world.drain()

    [delete_run] = [run for run in world.runs.all_runs if run.operation == "delete"]
    assert sorted(answer.answer for answer in answers) == ["created"] + ["joined"] * (CONCURRENT_DELETES - 1)
    assert {answer.run.id for answer in answers} == {delete_run.id}
    assert delete_run.status is RunStatus.DELETED
    assert len(world.runs.joiners(delete_run.id)) == CONCURRENT_DELETES - 1
    assert world.event_types().count("deleted") == CONCURRENT_DELETES, "each request hears how it ended"
    assert len(world.ml.calls_to("begin_delete_endpoint")) == 1


def test_a_delete_that_loses_the_claim_to_a_concurrent_one_joins_the_winner():
    world = build()
    deployed = world.deploy()
    concurrent = []
    world.runs.before_next(
        "save_deployment",
        lambda: concurrent.append(
            world.lifecycle.delete(deployed.deployment_id, caller=REQUESTER, delete_subscription=False)
        ),
    )

    late = world.lifecycle.delete(deployed.deployment_id, caller=REQUESTER, delete_subscription=False)

    [winner] = concurrent
    assert (winner.answer, late.answer) == ("created", "joined")
    assert late.run.id == winner.run.id
    assert [run.id for run in world.runs.all_runs if run.operation == "delete"] == [winner.run.id]
    assert world.runs.conflicts >= 1


def test_a_delete_while_a_deploy_is_in_flight_is_refused_and_the_deploy_goes_on():
    world = build()
    world.ml.polls_before_done = 3
    deploying = world.service.submit(request(DIRECT_MODEL), caller=REQUESTER)

    refused = world.lifecycle.delete(deploying.deployment.id, caller=REQUESTER, delete_subscription=False)
    world.drain()

    assert refused.answer == "rejected"
    assert refused.problem.kind.slug == "deployment-state-conflict"
    assert refused.problem.status == 409
    assert refused.problem.extensions == {"runId": deploying.run.id, "deploymentId": deploying.deployment.id}
    assert (refused.run.operation, refused.run.status) == ("delete", RunStatus.REJECTED)
    assert world.run(deploying.run.id).status is RunStatus.SUCCEEDED
    assert world.service.get_deployment(deploying.deployment.id, caller=AUDITOR).status.phase is Phase.READY
    assert world.ml.calls_to("begin_delete_endpoint") == []


def test_a_deployment_request_during_a_teardown_is_rejected_until_it_has_finished():
    world = build()
    deployed = world.deploy()
    teardown = world.lifecycle.delete(deployed.deployment_id, caller=REQUESTER, delete_subscription=False)

    refused = world.service.submit(deployed.request, caller=REQUESTER)

    assert refused.problem.kind.slug == "deployment-state-conflict"
    assert teardown.run.id in refused.problem.detail
    assert refused.problem.extensions["runId"] == teardown.run.id


def test_after_a_teardown_the_same_request_deploys_the_same_deployment_afresh():
    world = build()
    deployed = world.deploy()
    teardown = world.lifecycle.delete(deployed.deployment_id, caller=REQUESTER, delete_subscription=False)
    world.drain()

    again = world.service.submit(deployed.request, caller=REQUESTER)
    world.drain()

    assert again.answer == "created"
    assert again.run.id not in (deployed.id, teardown.run.id)
    assert (
        again.run.deployment_id
        == deployed.deployment_id
        == deployment_id(deployed.request.workspace, deployed.request.model)
    )
    redeployed = world.run(again.run.id)
    assert (redeployed.operation, redeployed.status) == ("deploy", RunStatus.SUCCEEDED)
    deployment = world.service.get_deployment(deployed.deployment_id, caller=AUDITOR)
    assert deployment.status.phase is Phase.READY
    assert (deployment.status.current_run_id, deployment.status.keys_run_id) == (again.run.id, again.run.id)
    assert deployment.status.delete_run_id is None
    assert deployment.all_conditions_true
    assert [item.run_id for item in deployment.requests] == [again.run.id]
    assert world.ml.endpoint(WORKSPACE_ID, redeployed.endpoint.name) is not None
    assert [run.operation for run in world.runs.list(deployment_id=deployed.deployment_id).runs] == [
        "deploy",
        "delete",
        "deploy",
    ]


def test_rotating_the_keys_of_a_deleted_deployment_is_a_409_problem():
    world = build()
    deployed = world.deploy()
    world.lifecycle.delete(deployed.deployment_id, caller=REQUESTER, delete_subscription=False)
    world.drain()

    refused = world.lifecycle.rotate(deployed.deployment_id, "primary", caller=REQUESTER)

    assert isinstance(refused, Problem)
    assert (refused.kind.slug, refused.status) == ("deployment-state-conflict", 409)
    assert refused.extensions == {"deploymentId": deployed.deployment_id, "phase": "Deleted"}
    assert world.ml.calls_to("regenerate_key") == []


def test_a_shared_subscription_is_refused_before_anything_is_deleted():
    world = build()
    deployed = world.deploy(MARKETPLACE_MODEL)
    plan = plan_for(deployed.request, CATALOG)
    subscription = world.ml.subscription(WORKSPACE_ID, plan.subscription_name)
    other = world.ml.add_endpoint(WORKSPACE_ID, "by-hand", "azureml://registries/azureml-cohere/models/Sibling")
    world.ml.endpoints[(other.id.split("/serverlessEndpoints/")[0].lower(), "by-hand")] = replace(
        other, marketplace_subscription_id=subscription.id
    )

    refused = world.lifecycle.delete(deployed.deployment_id, caller=REQUESTER, delete_subscription=True)

    assert refused.problem.kind.slug == "subscription-in-use"
    assert refused.problem.extensions["dependentEndpoints"] == ["by-hand"]
    assert refused.run.status is RunStatus.REJECTED
    assert world.ml.calls_to("begin_delete_endpoint") == []
    assert world.ml.endpoint(WORKSPACE_ID, plan.endpoint_name) is not None
    assert world.secrets.latest(plan.secret_names.primary) is not None
    deployment = world.service.get_deployment(deployed.deployment_id, caller=AUDITOR)
    assert (deployment.status.phase, deployment.status.current_run_id) == (Phase.READY, deployed.id)


@pytest.mark.parametrize(("caller", "slug"), [(STRANGER, "requester-forbidden"), (REQUESTER, None)])
def test_the_caller_needs_the_delete_action_on_the_workspace(caller, slug):
    world = build()
    deployed = world.deploy()

    submission = world.lifecycle.delete(deployed.deployment_id, caller=caller, delete_subscription=False)

    assert (submission.problem.kind.slug if submission.problem else None) == slug
    phase = world.service.get_deployment(deployed.deployment_id, caller=AUDITOR).status.phase
    assert phase is (Phase.READY if slug else Phase.DELETING)


def test_an_endpoint_no_longer_the_brokers_is_not_deleted():
    world = build()
    deployed = world.deploy()
    name = deployed.endpoint.name
    key = next(key for key in world.ml.endpoints if key[1] == name.lower())
    world.ml.endpoints[key] = replace(world.ml.endpoints[key], tags={"owner": "someone-else"})

    refused = world.lifecycle.intake_delete(delete_message("INC-1"), idempotency_key="message:1")

    assert refused.problem.kind.slug == "deployment-conflict"
    assert "not made by the broker" in refused.problem.detail
    assert refused.run.deployment_id == deployed.deployment_id
    assert world.ml.endpoint(WORKSPACE_ID, name) is not None


def test_a_queue_delete_finds_the_deployment_by_its_workspace_and_model_and_a_redelivery_makes_no_second_run():
    world = build()
    deployed = world.deploy()

    first = world.lifecycle.intake_delete(delete_message("INC-2"), idempotency_key="message:2")
    again = world.lifecycle.intake_delete(delete_message("INC-2"), idempotency_key="message:2")
    world.drain()

    assert first.answer == "created"
    assert (first.run.deployment_id, first.run.ticket) == (deployed.deployment_id, "INC-2")
    assert (again.answer, again.run.id) == ("replayed", first.run.id)
    assert world.run(first.run.id).status is RunStatus.DELETED
    assert [run.id for run in world.runs.all_runs if run.operation == "delete"] == [first.run.id]
    assert world.event_types().count("deleted") == 1


def test_a_queue_delete_of_a_deleted_deployment_hears_back_once_naming_the_original_delete_run():
    world = build()
    deployed = world.deploy()
    first = world.lifecycle.delete(deployed.deployment_id, caller=REQUESTER, delete_subscription=False)
    world.drain()
    world.events.sent.clear()

    answered = world.lifecycle.intake_delete(delete_message("INC-8"), idempotency_key="message:8")
    redelivered = world.lifecycle.intake_delete(delete_message("INC-8"), idempotency_key="message:8")

    assert (answered.answer, answered.run.id) == ("deleted", first.run.id)
    assert (redelivered.answer, redelivered.run.id) == ("replayed", first.run.id)
    assert [(body["type"].rsplit(".", 1)[-1], body["data"]["ticket"]) for body in world.events.bodies] == [
        ("accepted", "INC-8"),
        ("deleted", "INC-8"),
    ]
    assert {body["data"]["runId"] for body in world.events.bodies} == {first.run.id}
    assert [run.id for run in world.runs.list(ticket="INC-8").runs] == [first.run.id]
    assert [run.id for run in world.runs.all_runs if run.operation == "delete"] == [first.run.id]
    assert world.service.get_deployment(deployed.deployment_id, caller=AUDITOR).requests[-1].outcome == "deleted"


def test_a_queue_delete_of_a_deployment_the_broker_does_not_have_is_rejected_once_as_not_found():
    world = build()

    refused = world.lifecycle.intake_delete(delete_message("INC-3"), idempotency_key="message:3")
    again = world.lifecycle.intake_delete(delete_message("INC-3"), idempotency_key="message:3")

    assert refused.answer == "rejected"
    assert (refused.problem.kind.slug, refused.problem.status) == ("not-found", 404)
    assert (refused.run.operation, refused.run.status, refused.run.ticket) == ("delete", RunStatus.REJECTED, "INC-3")
    assert (again.answer, again.run.id, again.problem.kind.slug) == ("rejected", refused.run.id, "not-found")
    assert len(world.runs.all_runs) == 1
    assert world.event_types() == ["rejected"]
    assert world.events.bodies[0]["data"]["ticket"] == "INC-3"


def test_a_failed_endpoint_deletion_fails_the_run_with_azures_error_and_the_deployment_may_be_deleted_again():
    world = build()
    deployed = world.deploy()
    world.ml.fail_next_operation = ("DeletionFailed", "The endpoint could not be deleted.")

    submission = world.lifecycle.delete(deployed.deployment_id, caller=REQUESTER, delete_subscription=False)
    world.drain()

    failed = world.run(submission.run.id)
    assert failed.status is RunStatus.FAILED
    assert (failed.error.code, failed.error.message) == ("DeletionFailed", "The endpoint could not be deleted.")
    deployment = world.service.get_deployment(deployed.deployment_id, caller=AUDITOR)
    assert (deployment.status.phase, deployment.status.error) == (Phase.FAILED, failed.error)
    assert deployment.status.delete_run_id is None
    assert world.event_types()[-1] == "failed"

    retried = world.lifecycle.delete(deployed.deployment_id, caller=REQUESTER, delete_subscription=False)
    world.drain()

    assert retried.answer == "created"
    assert retried.run.id != failed.id
    assert world.service.get_deployment(deployed.deployment_id, caller=AUDITOR).status.delete_run_id == retried.run.id


def test_a_cross_region_teardown_deletes_the_hub_endpoint_and_the_projects_connection():
    world = build(location="westeurope", hub=True)
    deployed = world.deploy(allow_cross_region=True)
    assert len(world.connections.connections) == 1

    submission = world.lifecycle.delete(deployed.deployment_id, caller=REQUESTER, delete_subscription=False)
    world.drain()

    assert world.run(submission.run.id).status is RunStatus.DELETED
    assert submission.run.cross_region.hub_workspace_id == HUB_ID
    assert world.ml.endpoint(HUB_ID, deployed.endpoint.name) is None
    hub_plan = plan_for(deployed.request, CATALOG, target=deployed.deployment_target)
    assert world.secrets.latest(hub_plan.secret_names.primary) is None
    assert world.connections.connections == {}
    assert world.service.get_deployment(deployed.deployment_id, caller=AUDITOR).status.phase is Phase.DELETED


def test_a_throttled_step_is_retried_from_the_queue_with_azures_retry_after():
    world = build()
    deployed = world.deploy()
    world.ml.fail_next("get_endpoint", AzureCallError(429, "TooManyRequests", "Slow down.", retry_after=7))

    submission = world.lifecycle.delete(deployed.deployment_id, caller=REQUESTER, delete_subscription=False)
    world.drain()

    # Re-queued after Retry-After, without spending a transient attempt: throttling never fails a run.
    steps = [(message.body["step"], message.body.get("attempt"), message.delay_seconds) for message in world.processed]
    assert ("delete-endpoint", 0, 7) in steps
    assert all(attempt == 0 for _, attempt, _ in steps)
    assert world.run(submission.run.id).status is RunStatus.DELETED


def test_a_deployment_whose_deploy_failed_can_be_torn_down():
    world = build()
    world.ml.fail_next("begin_create_endpoint", AzureCallError(400, "BadRequest", "No."))
    failed = world.deploy()
    assert world.service.get_deployment(failed.deployment_id, caller=AUDITOR).status.phase is Phase.FAILED

    submission = world.lifecycle.delete(failed.deployment_id, caller=REQUESTER, delete_subscription=False)
    world.drain()

    assert world.run(submission.run.id).status is RunStatus.DELETED
    assert world.service.get_deployment(failed.deployment_id, caller=AUDITOR).status.phase is Phase.DELETED


def test_the_request_a_delete_run_records_is_the_deployments_spec():
    world = build()
    deployed = world.deploy(endpoint_name="my-endpoint", tags={"team": "ai"})

    submission = world.lifecycle.delete(deployed.deployment_id, caller=REQUESTER, delete_subscription=False)

    assert submission.run.request == DeploymentRequest(
        workspace_id=WORKSPACE_ID, model_id=DIRECT_MODEL, endpoint_name="my-endpoint", tags={"team": "ai"}
    )
    assert submission.run.endpoint.name == "my-endpoint"


def test_two_copies_of_the_last_delete_step_running_at_once_announce_the_end_once():
    world = build()
    deployed = world.deploy()
    world.lifecycle.delete(deployed.deployment_id, caller=REQUESTER, delete_subscription=False)
    world.step_until("delete-endpoint")
    last = world.work.sent[0]
    # The copy runs while the first is between its Azure calls and ending the run, as a redelivery after a lost
    # lease would.
    world.runs.before_next("save", lambda: world.service.advance(last.text))

    world.drain()

    assert world.event_types().count("deleted") == 1
    assert world.deployment().status.phase is Phase.DELETED
