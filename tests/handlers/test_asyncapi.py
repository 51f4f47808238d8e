"""The AsyncAPI document: valid AsyncAPI 3.0.0, generated from the models the broker sends with, and real messages
(events of real runs, a queue request, a hygiene alert, the examples) valid against it."""

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft7Validator, Draft202012Validator

from handlers import asyncapi
from handlers.asyncapi import asyncapi_document, contract_examples
from shared.events import DATA_MODELS, EventKind, malformed_request_rejected_event
from shared.hygiene.alerts import cloud_event
from shared.hygiene.findings import AlertKind
from shared.requests import QueueDeploymentRequest
from tests.deployments.approving import approving_world
from tests.deployments.scenario import DIRECT_MODEL, MARKETPLACE_MODEL, REQUESTER, build_world, request
from tests.deployments.test_approvals import APPROVER
from tests.handlers.handler_support import http_request, json_body, user_function
from tests.hygiene.conftest import World as HygieneWorld
from tests.hygiene.fakes import WS_A, endpoint

REPO_ROOT = Path(__file__).resolve().parents[2]
ASYNCAPI_SCHEMA = REPO_ROOT / "node_modules" / "@asyncapi" / "specs" / "schemas" / "3.0.0.json"
NOW = datetime(2026, 11, 27, 9, 0, tzinfo=UTC)
serve_document = user_function(asyncapi.asyncapi)


def message_errors(channel: str, message: str, instance: object) -> list[str]:
    """Why `instance` is not `message` of `channel`, resolving $refs inside the document."""
    document = asyncapi_document()
    payload = document["channels"][channel]["messages"][message]["payload"]
    validator = Draft202012Validator({**payload, "components": document["components"]})
    return [f"{error.json_path}: {error.message}" for error in validator.iter_errors(instance)]


def event_errors(event: dict[str, Any]) -> list[str]:
    return message_errors("deploymentEvents", event["type"].rsplit(".", 1)[-1], event)


@pytest.fixture(scope="module")
def asyncapi_schema() -> dict[str, Any]:
    if not ASYNCAPI_SCHEMA.exists():
        pytest.skip("node_modules lacks @asyncapi/specs; run make install")
    return json.loads(ASYNCAPI_SCHEMA.read_text(encoding="utf-8"))


def test_the_document_is_valid_asyncapi_3(asyncapi_schema):
    validator = Draft7Validator(asyncapi_schema)

    assert [error.message for error in validator.iter_errors(asyncapi_document())] == []
    broken = {**asyncapi_document(), "operations": {"x": {"action": "publish", "channel": {"$ref": "#/channels/a"}}}}
    assert list(validator.iter_errors(broken)), "the AsyncAPI schema must refuse a version 2 operation"


def test_every_queue_and_every_event_type_is_described_with_the_brokers_direction():
    document = asyncapi_document()
    channels = document["channels"]

    assert document["asyncapi"] == "3.0.0"
    assert {name: channel["address"] for name, channel in channels.items()} == {
        "deploymentRequests": "deployment-requests",
        "deploymentRequestsPoison": "deployment-requests-poison",
        "deploymentEvents": "deployment-events",
        "hygieneAlerts": "hygiene-alerts",
    }
    assert set(channels["deploymentEvents"]["messages"]) == {kind.value for kind in EventKind} | {"rejectedMessage"}
    assert set(channels["hygieneAlerts"]["messages"]) == {kind.value for kind in AlertKind}
    directions = {operation["channel"]["$ref"]: operation["action"] for operation in document["operations"].values()}
    assert directions == {
        "#/channels/deploymentRequests": "receive",
        "#/channels/deploymentRequestsPoison": "send",
        "#/channels/deploymentEvents": "send",
        "#/channels/hygieneAlerts": "send",
    }
    for operation in document["operations"].values():
        channel = operation["channel"]["$ref"].rsplit("/", 1)[-1]
        referenced = {reference["$ref"].rsplit("/", 1)[-1] for reference in operation["messages"]}
        assert referenced == set(channels[channel]["messages"])


def test_payloads_are_the_models_the_broker_validates_with():
    schemas = asyncapi_document()["components"]["schemas"]
    ref_template = "#/components/schemas/{model}"

    queue = QueueDeploymentRequest.model_json_schema(by_alias=True, ref_template=ref_template)
    assert schemas["QueueDeploymentRequest"]["properties"] == queue["properties"]
    for kind, model in DATA_MODELS.items():
        generated = model.model_json_schema(by_alias=True, mode="serialization", ref_template=ref_template)
        assert schemas[model.__name__]["properties"] == generated["properties"], kind
    assert "traceparent" in schemas["CloudEvent"]["properties"]
    assert "$defs" not in json.dumps(asyncapi_document())


def test_the_events_of_real_runs_match_their_messages():
    world = build_world()
    submission = world.service.submit(request(DIRECT_MODEL, ticket="CHG-1"), caller=REQUESTER)
    world.drain()
    world.lifecycle.rotate(submission.deployment.id, "primary", caller=REQUESTER)
    world.drain()
    world.lifecycle.delete(submission.deployment.id, caller=REQUESTER, delete_subscription=False)
    world.drain()
    elsewhere = build_world(location="westeurope")
    elsewhere.service.submit(request(DIRECT_MODEL, ticket="CHG-2"), caller=REQUESTER)
    approving = approving_world()
    waiting = approving.service.submit(request(MARKETPLACE_MODEL, ticket="CHG-3"), caller=REQUESTER)
    approving.service.approve(waiting.run.id, caller=APPROVER, comment="Budget approved in FIN-7.")
    approving.drain()
    refused = approving_world()
    waiting = refused.service.submit(request(MARKETPLACE_MODEL, ticket="CHG-4"), caller=REQUESTER)
    refused.service.reject(waiting.run.id, caller=APPROVER, comment="Use the model sold directly.")

    events = [*world.events.bodies, *elsewhere.events.bodies, *approving.events.bodies, *refused.events.bodies]
    kinds = {event["type"].rsplit(".", 1)[-1] for event in events}
    assert kinds >= {"accepted", "succeeded", "keyrotated", "deleted", "rejected", "approvalrequested", "approved"}
    assert "approvalrejected" in kinds
    for event in events:
        assert event_errors(event) == [], event["type"]


def test_a_rejected_malformed_message_matches_its_own_message_and_not_a_runs():
    event = malformed_request_rejected_event(
        message_id="m-1", ticket="CHG-9", code="validation-failed", message="Not valid.", time=NOW
    )

    assert message_errors("deploymentEvents", "rejectedMessage", event) == []
    assert message_errors("deploymentEvents", "rejected", event), "a run's rejected event has another data schema"


def test_a_real_hygiene_alert_matches_its_message():
    world = HygieneWorld()
    world.ml.add(WS_A, endpoint(WS_A, "llama", subscription="gone-sub"))
    world.scan(workspaces=(WS_A,))
    (record,) = world.findings(rule="endpoint-unhealthy")

    (sent,) = [message for message in world.queue.messages if message["data"]["rule"] == "endpoint-unhealthy"]
    assert message_errors("hygieneAlerts", "opened", sent) == []
    scheduled = cloud_event(record, AlertKind.DELETION_SCHEDULED, time=NOW, extra={"deleteAfter": NOW.isoformat()})
    assert message_errors("hygieneAlerts", "deletion-scheduled", scheduled) == []
    assert message_errors("hygieneAlerts", "opened", {**sent, "data": {**sent["data"], "apiKey": "x"}})


def test_the_examples_match_their_messages_and_refusals_are_caught():
    examples = contract_examples()

    assert message_errors("deploymentRequests", "deploymentRequest", examples["queueRequest"]) == []
    QueueDeploymentRequest.from_wire(examples["queueRequest"])
    for name, event in examples["events"].items():
        assert message_errors("deploymentEvents", name, event) == [], name
    assert message_errors("hygieneAlerts", "opened", examples["hygieneAlert"]) == []
    succeeded = examples["events"]["succeeded"]
    assert message_errors("deploymentEvents", "succeeded", {**succeeded, "traceparent": "not-a-trace"})
    assert message_errors("deploymentEvents", "failed", succeeded), "the type is fixed per message"
    assert message_errors("deploymentRequests", "deploymentRequest", {"modelId": DIRECT_MODEL})


def test_the_document_is_served_as_json():
    response = serve_document(http_request("GET", "/api/asyncapi.json"))

    assert response.status_code == 200
    assert response.mimetype == "application/json"
    assert json_body(response) == json.loads(json.dumps(asyncapi_document()))
