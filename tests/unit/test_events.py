import json
from datetime import UTC, datetime, timedelta, timezone

import pytest

from shared.events import (
    DEFAULT_SOURCE,
    EVENT_TYPE_PREFIX,
    EventKind,
    accepted_event,
    answered_without_a_run_events,
    deployment_event,
    event_kind_for,
    malformed_request_rejected_event,
    outcome_events,
)
from shared.requests import DeploymentRequest
from shared.runs import EndpointInfo, RunError, RunRecord, RunRequester, RunStatus, SecretIds

SUB = "0b1f6471-1bf0-4dda-aec3-111122223333"
WS = f"/subscriptions/{SUB}/resourceGroups/rg-ai/providers/Microsoft.MachineLearningServices/workspaces/proj-a"
MODEL = "azureml://registries/azureml-deepseek/models/DeepSeek-R1"
T0 = datetime(2026, 11, 27, 9, 0, tzinfo=UTC)
ENDPOINT = EndpointInfo(
    name="ep", id=f"{WS}/serverlessEndpoints/ep", scoring_uri="https://ep-x.eastus2.models.ai.azure.com"
)
SECRETS = SecretIds(
    primary="https://kv.vault.azure.net/secrets/serverless-ep-primary/1",
    secondary="https://kv.vault.azure.net/secrets/serverless-ep-secondary/2",
)


DEPLOYMENT_ID = "proj-a--deepseek-r1--0123456789"


def accepted() -> RunRecord:
    request = DeploymentRequest(workspace_id=WS, model_id=MODEL)
    return RunRecord.new(
        run_id="run-1", caller="oid", request=request, at=T0, ticket="INC-7", deployment_id=DEPLOYMENT_ID
    )


def succeeded(run: RunRecord | None = None) -> RunRecord:
    return (
        (run or accepted())
        .transition(RunStatus.VALIDATING, at=T0)
        .transition(RunStatus.PROVISIONING, at=T0, endpoint=ENDPOINT)
        .transition(RunStatus.STORING_KEYS, at=T0)
        .transition(RunStatus.VERIFYING, at=T0, secret_ids=SECRETS)
        .transition(RunStatus.SUCCEEDED, at=T0)
    )


def joiners(*tickets: str | None) -> list[RunRequester]:
    return [
        RunRequester(caller=f"oid-{index}", ticket=ticket, at=T0, request_id=f"req-{index}")
        for index, ticket in enumerate(tickets, start=1)
    ]


@pytest.mark.parametrize(
    ("status", "kind"),
    [
        (RunStatus.ACCEPTED, EventKind.ACCEPTED),
        (RunStatus.SUCCEEDED, EventKind.SUCCEEDED),
        (RunStatus.FAILED, EventKind.FAILED),
        (RunStatus.REJECTED, EventKind.REJECTED),
        (RunStatus.DELETED, EventKind.DELETED),
        (RunStatus.VALIDATING, None),
        (RunStatus.PROVISIONING, None),
        (RunStatus.DELETING, None),
    ],
)
def test_which_statuses_publish(status, kind):
    assert event_kind_for(status) is kind


def test_event_types_share_one_prefix():
    assert {kind.event_type for kind in EventKind} == {
        f"com.contoso.broker.deployment.{name}"
        for name in (
            *("accepted", "succeeded", "failed", "rejected", "deleted", "keyrotated", "keyrotationfailed"),
            *("approvalrequested", "approved", "approvalrejected"),
        )
    }
    assert EVENT_TYPE_PREFIX == "com.contoso.broker.deployment"


def test_a_succeeded_event_carries_the_endpoint_and_secret_ids():
    event = deployment_event(succeeded(), time=T0 + timedelta(seconds=5))

    assert event == {
        "specversion": "1.0",
        "id": "run-1/succeeded",
        "source": DEFAULT_SOURCE,
        "type": "com.contoso.broker.deployment.succeeded",
        "subject": "run-1",
        "time": "2026-11-27T09:00:05Z",
        "datacontenttype": "application/json",
        "data": {
            "runId": "run-1",
            "deploymentId": DEPLOYMENT_ID,
            "operation": "deploy",
            "ticket": "INC-7",
            "status": "Succeeded",
            "workspaceId": WS,
            "modelId": MODEL,
            "endpointName": "ep",
            "endpointId": ENDPOINT.id,
            "scoringUri": ENDPOINT.scoring_uri,
            "secretIds": {"primary": SECRETS.primary, "secondary": SECRETS.secondary},
            "error": None,
        },
    }


def test_an_accepted_event_has_no_endpoint_yet_and_a_custom_source():
    event = deployment_event(accepted(), time=T0, source="https://broker.contoso.com")

    assert event["type"] == "com.contoso.broker.deployment.accepted"
    assert event["source"] == "https://broker.contoso.com"
    assert event["data"]["endpointName"] is None
    assert event["data"]["scoringUri"] is None
    assert event["data"]["secretIds"] is None


def test_a_rejected_event_carries_the_error():
    error = RunError(code="model-not-approved", message="Not approved.", details=[{"rule": "registry"}])
    run = accepted().transition(RunStatus.REJECTED, at=T0, error=error)

    event = deployment_event(run, time=T0)

    assert event["id"] == "run-1/rejected"
    assert event["data"]["error"] == {
        "code": "model-not-approved",
        "message": "Not approved.",
        "details": [{"rule": "registry"}],
    }


def test_republishing_an_outcome_yields_the_same_event_id():
    first = deployment_event(succeeded(), time=T0)
    again = deployment_event(succeeded(), time=T0 + timedelta(1))

    assert first["id"] == again["id"] == "run-1/succeeded"
    assert first["time"] != again["time"]


def test_a_run_announces_its_outcome_once_to_every_request_it_answers():
    run = succeeded()

    events = list(outcome_events(run, joiners("CHG-2", None, "CHG-4"), time=T0))

    assert [event["id"] for event in events] == [
        "run-1/succeeded",
        "run-1/succeeded/req-1",
        "run-1/succeeded/req-2",
        "run-1/succeeded/req-3",
    ]
    assert [event["data"]["ticket"] for event in events] == ["INC-7", "CHG-2", None, "CHG-4"]
    assert {event["subject"] for event in events} == {"run-1"}
    assert {event["type"] for event in events} == {EventKind.SUCCEEDED.event_type}
    # Apart from the ticket, every requester hears the same outcome.
    assert len({json.dumps({**event["data"], "ticket": None}, sort_keys=True) for event in events}) == 1


def test_a_run_nobody_joined_announces_its_outcome_once():
    (event,) = outcome_events(succeeded(), [], time=T0)

    assert event == deployment_event(succeeded(), time=T0)


def test_a_joiner_gets_its_own_accepted_event_carrying_the_runs_current_status():
    run = accepted().transition(RunStatus.VALIDATING, at=T0).transition(RunStatus.PROVISIONING, at=T0)
    (colleague,) = joiners("CHG-2")

    first, joiner = accepted_event(run, time=T0), accepted_event(run, time=T0, requester=colleague)

    assert (first["id"], joiner["id"]) == ("run-1/accepted", "run-1/accepted/req-1")
    assert {first["type"], joiner["type"]} == {EventKind.ACCEPTED.event_type}
    assert (first["data"]["ticket"], joiner["data"]["ticket"]) == ("INC-7", "CHG-2")
    assert first["data"]["status"] == joiner["data"]["status"] == "Provisioning"


def ready_deployment() -> dict:
    return {
        "id": DEPLOYMENT_ID,
        "spec": {"workspaceId": WS, "modelId": MODEL, "endpointName": "ep"},
        "status": {
            "phase": "Ready",
            "endpoint": {"name": "ep", "id": ENDPOINT.id, "scoringUri": ENDPOINT.scoring_uri},
            "secretIds": {"primary": SECRETS.primary, "secondary": SECRETS.secondary},
            "currentRunId": "run-3",
            "keysRunId": "run-1",
        },
    }


def test_a_request_answered_by_a_ready_deployment_gets_accepted_then_succeeded_naming_the_run_that_made_it_ready():
    accepted_now, succeeded_now = answered_without_a_run_events(
        ready_deployment(), EventKind.SUCCEEDED, ticket="CHG-9", request_number=4, time=T0
    )

    assert [accepted_now["type"], succeeded_now["type"]] == [
        EventKind.ACCEPTED.event_type,
        EventKind.SUCCEEDED.event_type,
    ]
    assert [accepted_now["id"], succeeded_now["id"]] == [
        f"{DEPLOYMENT_ID}/request-4/accepted",
        f"{DEPLOYMENT_ID}/request-4/succeeded",
    ]
    assert accepted_now["subject"] == succeeded_now["subject"] == DEPLOYMENT_ID
    assert accepted_now["data"] == succeeded_now["data"]
    assert succeeded_now["data"] == {
        "runId": "run-3",
        "deploymentId": DEPLOYMENT_ID,
        "operation": "deploy",
        "ticket": "CHG-9",
        "status": "Succeeded",
        "workspaceId": WS,
        "modelId": MODEL,
        "endpointName": "ep",
        "endpointId": ENDPOINT.id,
        "scoringUri": ENDPOINT.scoring_uri,
        "secretIds": {"primary": SECRETS.primary, "secondary": SECRETS.secondary},
        "error": None,
        "detail": "The deployment was already Ready; nothing was changed.",
    }


def test_each_request_a_ready_deployment_answers_gets_its_own_event_ids():
    first = answered_without_a_run_events(
        ready_deployment(), EventKind.SUCCEEDED, ticket="CHG-9", request_number=4, time=T0
    )
    second = answered_without_a_run_events(
        ready_deployment(), EventKind.SUCCEEDED, ticket="CHG-9", request_number=5, time=T0
    )

    assert not {event["id"] for event in first} & {event["id"] for event in second}


def test_intermediate_statuses_publish_nothing():
    with pytest.raises(
        ValueError, match="Run run-1 is Validating; only Accepted, Succeeded, Failed, Rejected, Deleted publish"
    ):
        deployment_event(accepted().transition(RunStatus.VALIDATING, at=T0), time=T0)


def test_event_time_keeps_a_non_utc_offset_and_refuses_naive_times():
    offset = datetime(2026, 11, 27, 10, 0, tzinfo=timezone(timedelta(hours=1)))

    assert deployment_event(accepted(), time=offset)["time"] == "2026-11-27T10:00:00+01:00"
    with pytest.raises(ValueError, match="must carry a time zone"):
        deployment_event(accepted(), time=datetime(2026, 11, 27))


def test_a_malformed_queue_message_with_a_ticket_gets_a_rejected_event():
    event = malformed_request_rejected_event(
        message_id="msg-9",
        ticket="INC-7",
        code="validation-failed",
        message="Invalid fields: modelId.",
        details=[{"field": "modelId", "message": "This field is required."}],
        time=T0,
    )

    assert event["type"] == "com.contoso.broker.deployment.rejected"
    assert event["subject"] == "msg-9"
    assert event["id"] == "message-msg-9/rejected"
    assert event["data"] == {
        "runId": None,
        "ticket": "INC-7",
        "status": "Rejected",
        "error": {
            "code": "validation-failed",
            "message": "Invalid fields: modelId.",
            "details": [{"field": "modelId", "message": "This field is required."}],
        },
    }
