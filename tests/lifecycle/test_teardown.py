from dataclasses import replace

import pytest

from shared.azure_errors import AzureCallError
from shared.deployments.preflight import plan_for
from shared.lifecycle.teardown import dependent_endpoints
from shared.ports import Endpoint, MarketplaceSubscription
from shared.requests import DeploymentRequest, QueueDeploymentRequest
from shared.runs import RunStatus
from tests.deployments.scenario import CATALOG, DIRECT_MODEL, MARKETPLACE_MODEL, REQUESTER, WORKSPACE_ID

from .world import HUB_ID, build

SUBSCRIPTION_ID = f"{WORKSPACE_ID}/marketplaceSubscriptions/Cohere-command-r-08-2024-subscription"
STRANGER = "9d9d9d9d-0000-4000-8000-000000000001"


def endpoint(name: str, model_id: str, subscription_id: str | None) -> Endpoint:
    return Endpoint(
        f"{WORKSPACE_ID}/serverlessEndpoints/{name}", name, model_id, "Succeeded", "Online", None, subscription_id
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


def test_teardown_deletes_endpoint_secrets_and_subscription_then_releases_the_claim_and_links_the_runs():
    world = build()
    deployed = world.deploy(MARKETPLACE_MODEL)
    plan = plan_for(deployed.request, CATALOG)

    submission = world.lifecycle.delete(deployed.id, caller=REQUESTER, delete_subscription=True)
    world.drain()

    deleted = world.run(submission.run.id)
    assert (submission.created, submission.problem) == (True, None)
    assert [step.status for step in deleted.steps] == [
        RunStatus.ACCEPTED,
        RunStatus.VALIDATING,
        RunStatus.DELETING,
        RunStatus.DELETED,
    ]
    assert (deleted.operation, deleted.deployment_run_id) == ("delete", deployed.id)
    assert world.run(deployed.id).deleted_by_run_id == deleted.id
    assert world.ml.endpoint(WORKSPACE_ID, plan.endpoint_name) is None
    assert world.ml.subscription(WORKSPACE_ID, plan.subscription_name) is None
    assert world.secrets.latest(plan.secret_names.primary) is None
    assert world.secrets.latest(plan.secret_names.secondary) is None
    assert world.runs.deployment_holder(WORKSPACE_ID, MARKETPLACE_MODEL) is None
    assert world.event_types()[-2:] == ["accepted", "deleted"]


def test_a_second_teardown_finds_nothing_left_and_ends_deleted():
    world = build()
    deployed = world.deploy()
    world.lifecycle.delete(deployed.id, caller=REQUESTER, delete_subscription=False)
    world.drain()

    again = world.lifecycle.delete(deployed.id, caller=REQUESTER, delete_subscription=False)
    world.drain()

    assert world.run(again.run.id).status is RunStatus.DELETED
    assert world.ml.calls_to("begin_delete_endpoint")[1:] == []


def test_a_delete_during_a_teardown_answers_with_that_teardown():
    world = build()
    deployed = world.deploy()

    first = world.lifecycle.delete(deployed.id, caller=REQUESTER, delete_subscription=False)
    second = world.lifecycle.delete(deployed.id, caller=REQUESTER, delete_subscription=False)

    assert (second.run.id, second.created) == (first.run.id, False)


def test_a_deployment_request_during_a_teardown_is_rejected_until_it_has_finished():
    world = build()
    deployed = world.deploy()
    teardown = world.lifecycle.delete(deployed.id, caller=REQUESTER, delete_subscription=False)

    refused = world.service.submit(deployed.request, caller=REQUESTER)

    assert refused.problem.kind.slug == "deployment-state-conflict"
    assert teardown.run.id in refused.problem.detail


def test_a_shared_subscription_is_refused_before_anything_is_deleted():
    world = build()
    deployed = world.deploy(MARKETPLACE_MODEL)
    plan = plan_for(deployed.request, CATALOG)
    subscription = world.ml.subscription(WORKSPACE_ID, plan.subscription_name)
    other = world.ml.add_endpoint(WORKSPACE_ID, "by-hand", "azureml://registries/azureml-cohere/models/Sibling")
    world.ml.endpoints[(other.id.split("/serverlessEndpoints/")[0].lower(), "by-hand")] = replace(
        other, marketplace_subscription_id=subscription.id
    )

    refused = world.lifecycle.delete(deployed.id, caller=REQUESTER, delete_subscription=True)

    assert refused.problem.kind.slug == "subscription-in-use"
    assert refused.problem.extensions["dependentEndpoints"] == ["by-hand"]
    assert refused.run.status is RunStatus.REJECTED
    assert world.ml.calls_to("begin_delete_endpoint") == []
    assert world.ml.endpoint(WORKSPACE_ID, plan.endpoint_name) is not None
    assert world.secrets.latest(plan.secret_names.primary) is not None
    assert world.runs.deployment_holder(WORKSPACE_ID, MARKETPLACE_MODEL) == deployed.id


@pytest.mark.parametrize(("caller", "slug"), [(STRANGER, "requester-forbidden"), (REQUESTER, None)])
def test_the_caller_needs_the_delete_action_on_the_workspace(caller, slug):
    world = build()
    deployed = world.deploy()

    submission = world.lifecycle.delete(deployed.id, caller=caller, delete_subscription=False)

    assert (submission.problem.kind.slug if submission.problem else None) == slug


def test_an_endpoint_the_broker_did_not_make_is_not_deleted():
    world = build()
    world.ml.add_endpoint(
        WORKSPACE_ID,
        plan_for(DeploymentRequest(workspace_id=WORKSPACE_ID, model_id=DIRECT_MODEL), CATALOG).endpoint_name,
        DIRECT_MODEL,
    )
    message = QueueDeploymentRequest(
        workspace_id=WORKSPACE_ID, model_id=DIRECT_MODEL, requested_by=REQUESTER, ticket="INC-1", type="delete"
    )

    refused = world.lifecycle.intake_delete(message, idempotency_key="message:1")

    assert refused.problem.kind.slug == "deployment-conflict"
    assert "not made by the broker" in refused.problem.detail


def test_a_queue_delete_finds_the_deployment_by_its_request_and_a_redelivery_makes_no_second_run():
    world = build()
    deployed = world.deploy()
    message = QueueDeploymentRequest(
        workspace_id=WORKSPACE_ID, model_id=DIRECT_MODEL, requested_by=REQUESTER, ticket="INC-2", type="delete"
    )

    first = world.lifecycle.intake_delete(message, idempotency_key="message:2")
    again = world.lifecycle.intake_delete(message, idempotency_key="message:2")
    world.drain()

    assert first.run.deployment_run_id == deployed.id
    assert (again.run.id, again.created) == (first.run.id, False)
    assert world.run(first.run.id).status is RunStatus.DELETED


def test_a_failed_endpoint_deletion_fails_the_run_with_azures_error_and_releases_the_claim():
    world = build()
    deployed = world.deploy()
    world.ml.fail_next_operation = ("DeletionFailed", "The endpoint could not be deleted.")

    submission = world.lifecycle.delete(deployed.id, caller=REQUESTER, delete_subscription=False)
    world.drain()

    failed = world.run(submission.run.id)
    assert failed.status is RunStatus.FAILED
    assert (failed.error.code, failed.error.message) == ("DeletionFailed", "The endpoint could not be deleted.")
    assert world.runs.deployment_holder(WORKSPACE_ID, DIRECT_MODEL) is None
    assert world.run(deployed.id).deleted_by_run_id is None


@pytest.mark.parametrize("status", [RunStatus.REJECTED, RunStatus.PROVISIONING])
def test_a_rejected_or_unfinished_deployment_cannot_be_torn_down(status):
    world = build()
    world.ml.polls_before_done = 5
    submission = world.service.submit(
        DeploymentRequest(
            workspace_id=WORKSPACE_ID,
            model_id=DIRECT_MODEL if status is RunStatus.PROVISIONING else "azureml://registries/nope/models/X",
        ),
        caller=REQUESTER,
    )
    assert submission.run.status is status

    refused = world.lifecycle.delete(submission.run.id, caller=REQUESTER, delete_subscription=False)

    assert refused.problem.kind.slug == "deployment-state-conflict"
    assert refused.problem.extensions["runStatus"] == status.value


def test_a_cross_region_teardown_deletes_the_hub_endpoint_and_the_projects_connection():
    world = build(location="westeurope", hub=True)
    deployed = world.deploy(allow_cross_region=True)
    assert len(world.connections.connections) == 1

    submission = world.lifecycle.delete(deployed.id, caller=REQUESTER, delete_subscription=False)
    world.drain()

    assert world.run(submission.run.id).status is RunStatus.DELETED
    assert submission.run.cross_region.hub_workspace_id == HUB_ID
    assert world.ml.endpoint(HUB_ID, deployed.endpoint.name) is None
    assert world.connections.connections == {}
    assert world.runs.deployment_holder(HUB_ID, DIRECT_MODEL) is None


def test_deleting_an_old_deployment_again_leaves_the_model_deployed_since_alone():
    world = build()
    old = world.deploy()
    world.lifecycle.delete(old.id, caller=REQUESTER, delete_subscription=False)
    world.drain()
    new = world.deploy()
    deletions = len(world.ml.calls_to("begin_delete_endpoint"))

    again = world.lifecycle.delete(old.id, caller=REQUESTER, delete_subscription=False)
    world.drain()

    assert again.run.status is RunStatus.DELETED
    assert new.id in again.run.steps[-1].detail
    assert len(world.ml.calls_to("begin_delete_endpoint")) == deletions
    assert world.ml.endpoint(WORKSPACE_ID, new.endpoint.name) is not None
    assert world.runs.deployment_holder(WORKSPACE_ID, DIRECT_MODEL) == new.id


def test_a_throttled_step_is_retried_from_the_queue_with_azures_retry_after():
    world = build()
    deployed = world.deploy()
    world.ml.fail_next("get_endpoint", AzureCallError(429, "TooManyRequests", "Slow down.", retry_after=7))

    submission = world.lifecycle.delete(deployed.id, caller=REQUESTER, delete_subscription=False)
    world.drain()

    retried = [message for message in world.processed if message.body.get("attempt") == 1]
    assert [(message.body["step"], message.delay_seconds) for message in retried] == [("delete-endpoint", 7)]
    assert world.run(submission.run.id).status is RunStatus.DELETED
