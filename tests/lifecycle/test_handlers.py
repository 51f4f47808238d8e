"""The lifecycle HTTP functions and the rotation timer, over the real lifecycle service on in-memory ports."""

import pytest
from azure.functions.timer import TimerRequest

from handlers import lifecycle as handlers
from shared.lifecycle import composition
from tests.deployments.scenario import REQUESTER
from tests.handlers.handler_support import http_request, json_body, principal_header, user_function

from .world import LifecycleWorld, build

delete = user_function(handlers.delete_deployment)
rotate = user_function(handlers.rotate_deployment_keys)
rotate_expiring = user_function(handlers.rotate_expiring_keys)
AS_REQUESTER = {"X-MS-CLIENT-PRINCIPAL": principal_header(REQUESTER)}


@pytest.fixture
def world(monkeypatch: pytest.MonkeyPatch) -> LifecycleWorld:
    built = build()
    monkeypatch.setattr(composition, "lifecycle_service", lambda: built.lifecycle)
    return built


def delete_request(run_id: str, **params: str):
    return http_request(
        "DELETE", f"/api/deployments/{run_id}", headers=AS_REQUESTER, params=params, route_params={"runId": run_id}
    )


def rotate_request(run_id: str, body: object, headers=AS_REQUESTER):
    path = f"/api/deployments/{run_id}/rotate-keys"
    return http_request("POST", path, body=body, headers=headers, route_params={"runId": run_id})


def test_delete_answers_202_with_the_delete_run_and_where_to_poll_it(world):
    run = world.deploy()

    response = delete(delete_request(run.id, deleteSubscription="TRUE"))

    assert response.status_code == 202
    body = json_body(response)
    assert (body["operation"], body["deploymentRunId"], body["deleteSubscription"]) == ("delete", run.id, True)
    assert response.headers["Location"] == f"/api/deployments/{body['id']}"
    assert response.headers["Operation-Location"] == f"https://broker.example.net/api/deployments/{body['id']}"


def test_a_refused_delete_is_a_problem_naming_the_run_that_recorded_it(world):
    run = world.deploy()
    world.lifecycle.delete(run.id, caller=REQUESTER, delete_subscription=False)

    response = delete(delete_request(run.id))
    again = delete(delete_request(json_body(response)["id"]))

    assert response.status_code == 200  # the teardown under way answers
    assert again.status_code == 409
    assert json_body(again)["type"].endswith("/deployment-state-conflict")
    assert json_body(again)["runId"] == again.headers["Location"].rsplit("/", 1)[-1]


@pytest.mark.parametrize(
    ("request_", "status", "fields"),
    [
        (lambda: delete_request("run-x", deleteSubscription="maybe"), 400, ["deleteSubscription"]),
        (lambda: delete_request("no-such-run"), 404, None),
        (lambda: rotate_request("no-such-run", {"keyType": "primary"}), 404, None),
        (lambda: rotate_request("run-x", {"keyType": "tertiary"}), 400, ["keyType"]),
        (lambda: rotate_request("run-x", {"key_type": "primary"}), 400, ["keyType", "key_type"]),
        (lambda: rotate_request("run-x", None), 400, ["(body)"]),
        (lambda: rotate_request("run-x", {"keyType": "primary"}, headers={}), 401, None),
    ],
    ids=["bad-flag", "unknown-run", "rotate-unknown-run", "bad-key-type", "snake-case", "no-body", "anonymous"],
)
def test_bad_requests_are_answered_with_problems(world, request_, status, fields):
    request = request_()
    response = (delete if request.method == "DELETE" else rotate)(request)

    assert response.status_code == status
    assert response.mimetype == "application/problem+json"
    if fields:
        assert [error["field"] for error in json_body(response)["errors"]] == fields


def test_rotate_answers_202_with_the_rotation_recorded_on_the_run(world):
    run = world.deploy()

    response = rotate(rotate_request(run.id, {"keyType": "secondary"}))

    assert response.status_code == 202
    rotation = json_body(response)
    assert (rotation["keyType"], rotation["status"], rotation["trigger"]) == ("secondary", "Pending", "manual")
    assert response.headers["Location"] == f"/api/deployments/{run.id}"
    assert [item.id for item in world.run(run.id).key_rotations] == [rotation["id"]]


def test_the_timer_starts_the_rotations_due(world):
    run = world.deploy()
    world.clock.advance(86400 * 89)

    rotate_expiring(TimerRequest(past_due=False))

    assert [item.trigger for item in world.run(run.id).key_rotations] == ["scheduled"]
