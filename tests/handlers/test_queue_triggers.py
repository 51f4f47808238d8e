import json
import logging

import pytest

from handlers import intake, worker
from shared.runs import RunStatus
from tests.handlers.handler_support import CALLER, MODEL, WORKSPACE, queue_message, user_function

intake_request = user_function(intake.intake_deployment_request)
advance = user_function(worker.advance_deployment)

MESSAGE = {"workspaceId": WORKSPACE, "modelId": MODEL, "ticket": "CHG-7", "requestedBy": CALLER}


def test_the_intake_listens_on_the_configured_requests_queue():
    trigger = intake.intake_deployment_request.build().get_trigger()

    assert trigger.type == "queueTrigger"
    assert trigger.queue_name == "%DEPLOYMENT_REQUESTS_QUEUE%"
    assert trigger.connection == "AzureWebJobsStorage"


def test_the_worker_listens_on_the_configured_work_queue():
    trigger = worker.advance_deployment.build().get_trigger()

    assert trigger.type == "queueTrigger"
    assert trigger.queue_name == "%DEPLOYMENT_WORK_QUEUE%"
    assert trigger.connection == "AzureWebJobsStorage"


def test_a_request_message_is_handed_to_the_service_as_the_bytes_that_arrived_with_its_id(service, caplog):
    raw = (json.dumps(MESSAGE, ensure_ascii=False) + " ").encode()

    with caplog.at_level(logging.INFO, logger="handlers.intake"):
        intake_request(queue_message(raw, message_id="m-17"))

    assert service.calls[0] == ("intake_message", {"body": raw, "message_id": "m-17"})
    run = service.runs["run-1"]
    assert (run.ticket, run.caller, run.status) == ("CHG-7", CALLER, RunStatus.PROVISIONING)
    assert "Request message m-17 answered (created) by run-1." in caplog.text
    assert CALLER not in caplog.text, "message bodies stay out of the log"


def test_a_message_answered_by_a_ready_deployment_is_logged_with_the_deployment(service, caplog):
    intake_request(queue_message(json.dumps(MESSAGE).encode()))
    service.finish("run-1")
    [deployment] = service.deployments.values()

    with caplog.at_level(logging.INFO, logger="handlers.intake"):
        intake_request(queue_message(json.dumps({**MESSAGE, "ticket": "CHG-8"}).encode(), message_id="m-19"))

    assert f"Request message m-19 answered (ready) by {deployment.id}." in caplog.text
    assert len(service.runs) == 1
    assert service.deployments[deployment.id].requests[-1].ticket == "CHG-8"


def test_a_message_for_a_deployment_in_flight_is_logged_as_joining_its_run(service, caplog):
    intake_request(queue_message(json.dumps(MESSAGE).encode()))

    with caplog.at_level(logging.INFO, logger="handlers.intake"):
        intake_request(queue_message(json.dumps({**MESSAGE, "ticket": "CHG-8"}).encode(), message_id="m-20"))

    assert "Request message m-20 answered (joined) by run-1." in caplog.text
    assert [joiner.ticket for joiner in service.runs["run-1"].joined] == ["CHG-8"]


def test_non_ascii_text_survives_the_trip(service):
    text = json.dumps({**MESSAGE, "tags": {"owner": "Zoë"}}, ensure_ascii=False)

    intake_request(queue_message(text.encode()))

    assert service.calls[0][1]["body"].decode() == text
    assert service.runs["run-1"].request.tags == {"owner": "Zoë"}


def test_a_malformed_message_left_to_the_service_is_logged_as_poisoned(service, caplog):
    with caplog.at_level(logging.INFO, logger="handlers.intake"):
        intake_request(queue_message(b"{not json", message_id="m-18"))

    assert service.operations() == ["intake_message"]
    assert "m-18 was malformed" in caplog.text


def test_a_failing_service_fails_the_invocation_so_the_host_retries(service):
    service.failure = ConnectionError("table storage unreachable")

    with pytest.raises(ConnectionError):
        intake_request(queue_message(json.dumps(MESSAGE).encode()))


def test_a_body_that_is_not_utf8_reaches_the_service_to_be_poisoned_and_the_invocation_succeeds(service, caplog):
    with caplog.at_level(logging.INFO, logger="handlers.intake"):
        intake_request(queue_message(b"\xff\xfe{}", message_id="m-21"))

    assert service.calls == [("intake_message", {"body": b"\xff\xfe{}", "message_id": "m-21"})]
    assert "m-21 was malformed" in caplog.text


def test_a_work_message_is_one_worker_step(service):
    text = json.dumps({"run_id": "run-1", "step": "provision"})

    advance(queue_message(text.encode(), dequeue_count=3))

    assert service.calls == [("advance", {"work_message": text})]


def test_a_failing_step_fails_the_invocation_so_the_host_retries(service):
    service.failure = TimeoutError("ARM did not answer")

    with pytest.raises(TimeoutError):
        advance(queue_message(b'{"run_id": "run-1", "step": "provision"}'))
