import pytest
from pydantic import ValidationError

from shared.requests import QueueDeploymentRequest, validation_problems
from tests.deployments.scenario import DIRECT_MODEL, REQUESTER, WORKSPACE_ID

BODY = {"workspaceId": WORKSPACE_ID, "modelId": DIRECT_MODEL, "requestedBy": REQUESTER, "ticket": "INC-9"}


def test_a_delete_message_may_ask_for_the_subscription_too():
    message = QueueDeploymentRequest.from_wire({**BODY, "type": "delete", "deleteSubscription": True})

    assert (message.type, message.delete_subscription) == ("delete", True)


def test_delete_subscription_on_a_deploy_message_is_refused_naming_the_field():
    with pytest.raises(ValidationError) as caught:
        QueueDeploymentRequest.from_wire({**BODY, "deleteSubscription": True})

    assert validation_problems(caught.value) == [
        {"field": "deleteSubscription", "message": "deleteSubscription applies only to messages of type delete."}
    ]
