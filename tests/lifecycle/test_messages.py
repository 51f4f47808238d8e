"""Delete requests on the deployment-requests queue: parsed, routed to teardown, answered by events."""

import json

import pytest
from pydantic import ValidationError

from shared.deployment import Phase
from shared.plan import plan_for
from shared.requests import QueueDeploymentRequest, validation_problems
from shared.runs import RunStatus
from tests.deployments.scenario import AUDITOR, CATALOG, DIRECT_MODEL, MARKETPLACE_MODEL, REQUESTER, WORKSPACE_ID

from .world import build

BODY = {"workspaceId": WORKSPACE_ID, "modelId": DIRECT_MODEL, "requestedBy": REQUESTER, "ticket": "INC-9"}
DELETE = {**BODY, "type": "delete"}


def test_a_delete_message_may_ask_for_the_subscription_too():
    message = QueueDeploymentRequest.from_wire({**BODY, "type": "delete", "deleteSubscription": True})

    assert (message.type, message.delete_subscription) == ("delete", True)


def test_delete_subscription_on_a_deploy_message_is_refused_naming_the_field():
    with pytest.raises(ValidationError) as caught:
        QueueDeploymentRequest.from_wire({**BODY, "deleteSubscription": True})

    assert validation_problems(caught.value) == [
        {"field": "deleteSubscription", "message": "deleteSubscription applies only to messages of type delete."}
    ]


def test_a_delete_message_tears_the_deployment_down_and_its_ticket_hears_how_it_ended():
    world = build()
    deployed = world.deploy()

    submission = world.service.intake_message(json.dumps(DELETE), message_id="m-1")
    world.drain()

    assert submission.answer == "created"
    run = world.run(submission.run.id)
    assert (run.operation, run.status, run.ticket, run.caller) == ("delete", RunStatus.DELETED, "INC-9", REQUESTER)
    assert run.deployment_id == deployed.deployment_id
    assert world.service.get_deployment(deployed.deployment_id, caller=AUDITOR).status.phase is Phase.DELETED
    announced = [(body["type"].rsplit(".", 1)[-1], body["data"]["ticket"]) for body in world.events.bodies[-2:]]
    assert announced == [("accepted", "INC-9"), ("deleted", "INC-9")]


def test_the_same_delete_message_delivered_twice_makes_one_delete_run():
    world = build()
    world.deploy()
    text = json.dumps(DELETE)

    first = world.service.intake_message(text, message_id="m-1")
    again = world.service.intake_message(text + "\n", message_id="m-1")
    world.drain()

    assert (again.answer, again.run.id) == ("replayed", first.run.id)
    assert [run.id for run in world.runs.all_runs if run.operation == "delete"] == [first.run.id]
    assert world.event_types().count("deleted") == 1


def test_a_delete_message_for_a_deployment_the_broker_does_not_have_is_rejected_as_not_found():
    world = build()

    refused = world.service.intake_message(json.dumps(DELETE), message_id="m-2")
    again = world.service.intake_message(json.dumps(DELETE), message_id="m-2")

    assert (refused.answer, refused.problem.kind.slug) == ("rejected", "not-found")
    assert DIRECT_MODEL in refused.problem.detail
    assert (refused.run.operation, refused.run.status) == ("delete", RunStatus.REJECTED)
    assert again.run.id == refused.run.id
    assert len(world.runs.all_runs) == 1
    [event] = world.events.bodies
    assert event["type"].endswith(".rejected")
    assert (event["data"]["ticket"], event["data"]["error"]["code"]) == ("INC-9", "not-found")


def test_a_delete_message_may_take_the_marketplace_subscription_with_it():
    world = build()
    deployed = world.deploy(MARKETPLACE_MODEL)
    plan = plan_for(deployed.request, CATALOG)

    submission = world.service.intake_message(
        json.dumps({**DELETE, "modelId": MARKETPLACE_MODEL, "deleteSubscription": True}), message_id="m-3"
    )
    world.drain()

    assert world.run(submission.run.id).delete_subscription is True
    assert world.ml.subscription(WORKSPACE_ID, plan.subscription_name) is None
    assert world.run(submission.run.id).status is RunStatus.DELETED


def test_a_malformed_delete_message_is_poisoned_and_its_ticket_told():
    world = build()

    answer = world.service.intake_message(json.dumps({**BODY, "deleteSubscription": True}), message_id="m-4")

    assert answer is None
    assert world.poison.raw == [json.dumps({**BODY, "deleteSubscription": True})]
    [event] = world.events.bodies
    assert (event["data"]["ticket"], event["data"]["error"]["code"]) == ("INC-9", "validation-failed")
    assert "deleteSubscription" in event["data"]["error"]["message"]
    assert world.runs.all_runs == []
