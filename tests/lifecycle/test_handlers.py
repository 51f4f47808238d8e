"""The lifecycle HTTP functions and the rotation timer, over the production assembly on in-memory ports."""

import pytest
from azure.functions.timer import TimerRequest

from handlers import lifecycle as handlers
from handlers import runs as run_handlers
from shared.deployments import composition
from shared.runs import RunStatus
from tests.deployments.scenario import AUDITOR, REQUESTER, request
from tests.handlers.handler_support import ORIGIN, http_request, json_body, principal_header, user_function

from .world import LifecycleWorld, build

delete = user_function(handlers.delete_deployment)
rotate = user_function(handlers.rotate_deployment_keys)
rotate_expiring = user_function(handlers.rotate_expiring_keys)
get_run = user_function(run_handlers.get_run)
AS_REQUESTER = {"X-MS-CLIENT-PRINCIPAL": principal_header(REQUESTER)}


@pytest.fixture
def world(monkeypatch: pytest.MonkeyPatch) -> LifecycleWorld:
    built = build()
    # lifecycle_service() is the deployment service's own lifecycle service, as in production.
    monkeypatch.setattr(composition, "deployment_service", lambda: built.service)
    return built


def delete_request(the_id: str, **params: str):
    return http_request(
        "DELETE",
        f"/api/deployments/{the_id}",
        headers=AS_REQUESTER,
        params=params,
        route_params={"deploymentId": the_id},
    )


def rotate_request(the_id: str, body: object, headers=AS_REQUESTER):
    path = f"/api/deployments/{the_id}/rotate-keys"
    return http_request("POST", path, body=body, headers=headers, route_params={"deploymentId": the_id})


def deployment_url(the_id: str) -> str:
    return f"{ORIGIN}/api/deployments/{the_id}"


def run_url(run_id: str) -> str:
    return f"{ORIGIN}/api/runs/{run_id}"


def test_lifecycle_service_is_the_deployment_services_own(world):
    assert composition.lifecycle_service() is world.service.lifecycle


def test_delete_answers_202_with_the_delete_run_and_where_to_poll_it(world):
    run = world.deploy()

    response = delete(delete_request(run.deployment_id, deleteSubscription="TRUE"))

    assert response.status_code == 202
    body = json_body(response)
    assert (body["operation"], body["deploymentId"], body["deleteSubscription"]) == (
        "delete",
        run.deployment_id,
        True,
    )
    assert body["status"] == "Deleting"
    assert response.headers["Location"] == deployment_url(run.deployment_id)
    assert response.headers["Operation-Location"] == run_url(body["id"])


def test_deleting_twice_over_http_joins_the_teardown_in_flight_then_answers_200_with_the_deleted_deployment(world):
    run = world.deploy()

    first = delete(delete_request(run.deployment_id))
    joined = delete(delete_request(run.deployment_id))
    world.drain()
    events_before = len(world.events.sent)
    runs_before = len(world.runs.all_runs)
    deleted = delete(delete_request(run.deployment_id))

    delete_run_id = json_body(first)["id"]
    assert (first.status_code, joined.status_code, deleted.status_code) == (202, 202, 200)
    assert json_body(joined)["id"] == delete_run_id
    assert [joiner["caller"] for joiner in json_body(joined)["joined"]] == [REQUESTER]
    assert joined.headers["Operation-Location"] == run_url(delete_run_id)
    body = json_body(deleted)
    assert body == world.service.get_deployment(run.deployment_id, caller=AUDITOR).to_public_dict()
    assert (body["status"]["phase"], body["status"]["deleteRunId"]) == ("Deleted", delete_run_id)
    assert deleted.headers["Location"] == deployment_url(run.deployment_id)
    assert deleted.headers["Operation-Location"] == run_url(delete_run_id), "the original delete run"
    assert (len(world.runs.all_runs), len(world.events.sent)) == (runs_before, events_before), "no new run or event"
    assert world.run(delete_run_id).status is RunStatus.DELETED
    monitor = json_body(
        get_run(
            http_request(
                "GET", f"/api/runs/{delete_run_id}", headers=AS_REQUESTER, route_params={"runId": delete_run_id}
            )
        )
    )
    assert monitor["status"] == "Deleted"
    assert "resourceLocation" not in monitor, "a delete run leaves no resource to point at"


def test_a_delete_while_a_deploy_is_in_flight_is_a_409_naming_that_run(world):
    world.ml.polls_before_done = 5
    deploying = world.service.submit(request(), caller=REQUESTER)

    response = delete(delete_request(deploying.deployment.id))

    assert response.status_code == 409
    body = json_body(response)
    assert body["type"].endswith("/deployment-state-conflict")
    assert (body["runId"], body["deploymentId"]) == (deploying.run.id, deploying.deployment.id)
    refusal = body["instance"].rsplit("/", 1)[-1]
    assert response.headers["Operation-Location"] == body["instance"] == run_url(refusal)
    assert response.headers["Location"] == deployment_url(deploying.deployment.id)
    recorded = world.run(refusal)
    assert (recorded.operation, recorded.status) == ("delete", RunStatus.REJECTED)
    assert world.run(deploying.run.id).status is deploying.run.status is RunStatus.SUBSCRIBING, "the deploy goes on"


@pytest.mark.parametrize(
    ("request_", "status", "fields"),
    [
        (lambda: delete_request("some-deployment", deleteSubscription="maybe"), 400, ["deleteSubscription"]),
        (lambda: delete_request("no-such-deployment"), 404, None),
        (lambda: rotate_request("no-such-deployment", {"keyType": "primary"}), 404, None),
        (lambda: rotate_request("some-deployment", {"keyType": "tertiary"}), 400, ["keyType"]),
        (lambda: rotate_request("some-deployment", {"key_type": "primary"}), 400, ["keyType", "key_type"]),
        (lambda: rotate_request("some-deployment", None), 400, ["(body)"]),
        (lambda: rotate_request("some-deployment", {"keyType": "primary"}, headers={}), 401, None),
    ],
    ids=[
        "bad-flag",
        "unknown-deployment",
        "rotate-unknown-deployment",
        "bad-key-type",
        "snake-case",
        "no-body",
        "anonymous",
    ],
)
def test_bad_requests_are_answered_with_problems(world, request_, status, fields):
    request = request_()
    response = (delete if request.method == "DELETE" else rotate)(request)

    assert response.status_code == status
    assert response.mimetype == "application/problem+json"
    if fields:
        assert [error["field"] for error in json_body(response)["errors"]] == fields
    assert world.runs.all_runs == []


def test_rotate_answers_202_with_the_rotation_recorded_on_the_keys_run(world):
    run = world.deploy()

    response = rotate(rotate_request(run.deployment_id, {"keyType": "secondary"}))

    assert response.status_code == 202
    rotation = json_body(response)
    assert (rotation["keyType"], rotation["status"], rotation["trigger"]) == ("secondary", "Pending", "manual")
    assert rotation["requestedBy"] == REQUESTER
    assert response.headers["Location"] == deployment_url(run.deployment_id)
    assert response.headers["Operation-Location"] == run_url(run.id)
    assert [item.id for item in world.run(run.id).key_rotations] == [rotation["id"]]


def test_rotating_the_keys_of_a_deleted_deployment_is_a_409(world):
    run = world.deploy()
    delete(delete_request(run.deployment_id))
    world.drain()

    response = rotate(rotate_request(run.deployment_id, {"keyType": "primary"}))

    assert response.status_code == 409
    body = json_body(response)
    assert body["type"].endswith("/deployment-state-conflict")
    assert (body["deploymentId"], body["phase"]) == (run.deployment_id, "Deleted")
    assert response.headers["Location"] == deployment_url(run.deployment_id)
    assert world.run(run.id).key_rotations == ()


def test_the_timer_starts_the_rotations_due(world):
    run = world.deploy()
    world.clock.advance(86400 * 89)

    rotate_expiring(TimerRequest(past_due=False))

    assert [item.trigger for item in world.run(run.id).key_rotations] == ["scheduled"]


STRANGER = "9d8c7b6a-5f4e-4d3c-8b2a-1f0e9d8c7b6a"
AS_STRANGER = {"X-MS-CLIENT-PRINCIPAL": principal_header(STRANGER)}


def test_a_deployment_the_caller_may_not_see_is_neither_deleted_nor_rotated_and_answers_404_as_a_missing_one(world):
    run = world.deploy()
    runs_before, events_before = len(world.runs.all_runs), len(world.events.sent)

    hidden = [
        delete(
            http_request(
                "DELETE",
                f"/api/deployments/{run.deployment_id}",
                headers=AS_STRANGER,
                route_params={"deploymentId": run.deployment_id},
            )
        ),
        rotate(rotate_request(run.deployment_id, {"keyType": "primary"}, headers=AS_STRANGER)),
    ]
    missing = rotate(rotate_request("no-such-deployment", {"keyType": "primary"}, headers=AS_STRANGER))

    for response in hidden:
        assert response.status_code == 404
        body = json_body(response)
        assert body == {**json_body(missing), "detail": f"There is no deployment '{run.deployment_id}'."}
        assert "Location" not in response.headers
    assert (len(world.runs.all_runs), len(world.events.sent)) == (runs_before, events_before)
    assert world.work.sent == []
