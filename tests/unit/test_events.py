from datetime import UTC, datetime, timedelta, timezone

import pytest

from shared.events import (
    DEFAULT_SOURCE,
    EVENT_TYPE_PREFIX,
    EventKind,
    deployment_event,
    event_kind_for,
    malformed_request_rejected_event,
)
from shared.requests import DeploymentRequest
from shared.runs import EndpointInfo, RunError, RunRecord, RunStatus, SecretIds

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


def accepted() -> RunRecord:
    request = DeploymentRequest(workspace_id=WS, model_id=MODEL)
    return RunRecord.new(run_id="run-1", caller="oid", request=request, at=T0, ticket="INC-7")


def succeeded() -> RunRecord:
    return (
        accepted()
        .transition(RunStatus.VALIDATING, at=T0)
        .transition(RunStatus.PROVISIONING, at=T0, endpoint=ENDPOINT)
        .transition(RunStatus.STORING_KEYS, at=T0)
        .transition(RunStatus.SUCCEEDED, at=T0, secret_ids=SECRETS)
    )


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
        for name in ("accepted", "succeeded", "failed", "rejected", "deleted", "keyrotated", "keyrotationfailed")
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
    assert deployment_event(succeeded(), time=T0)["id"] == deployment_event(succeeded(), time=T0 + timedelta(1))["id"]


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
