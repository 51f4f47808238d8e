"""POST /api/runs/{runId}/approve and /reject over the real deployment service (in-memory ports): the caller from the
principal, the body's rules, and each decision's HTTP answer."""

import pytest

from handlers import approvals
from shared.access import DEFAULT_APPROVER_ROLE
from shared.approvals import MAX_APPROVAL_COMMENT
from shared.deployments import composition
from shared.problems import PROBLEM_TYPE_BASE
from tests.deployments.approving import approving_world
from tests.deployments.scenario import MARKETPLACE_MODEL, REQUESTER
from tests.handlers.handler_support import ORIGIN, http_request, json_body, principal_header, user_function

approve = user_function(approvals.approve_run)
reject = user_function(approvals.reject_run)
APPROVER = "a99a0000-0000-4000-8000-00000000000a"


@pytest.fixture
def world(monkeypatch: pytest.MonkeyPatch):
    built = approving_world()
    monkeypatch.setattr(composition, "deployment_service", lambda: built.service)
    return built


@pytest.fixture
def waiting(world):
    return world.submit(MARKETPLACE_MODEL, ticket="CHG-1").run


def as_caller(object_id: str = APPROVER, *, roles=(DEFAULT_APPROVER_ROLE,)) -> dict[str, str]:
    return {"X-MS-CLIENT-PRINCIPAL": principal_header(object_id, roles=roles)}


def call(handler, run_id: str, verb: str, *, body: object = None, headers=None, **options):
    return handler(
        http_request(
            "POST",
            f"/api/runs/{run_id}/{verb}",
            body=body,
            headers=as_caller() if headers is None else headers,
            route_params={"runId": run_id},
            **options,
        )
    )


def problem_type(response) -> str:
    return json_body(response)["type"].removeprefix(PROBLEM_TYPE_BASE)


def test_an_approval_answers_200_with_the_run_on_its_way(world, waiting):
    response = call(approve, waiting.id, "approve", body={"comment": "FIN-7"})

    assert response.status_code == 200
    body = json_body(response)
    assert (body["id"], body["status"]) == (waiting.id, "Subscribing")
    assert body["approval"]["decision"] == "approved"
    assert (body["approval"]["decidedBy"], body["approval"]["comment"]) == (APPROVER, "FIN-7")
    assert response.headers["Operation-Location"] == f"{ORIGIN}/api/runs/{waiting.id}"


def test_an_approval_may_come_without_a_body(world, waiting):
    response = call(approve, waiting.id, "approve")

    assert response.status_code == 200
    assert json_body(response)["approval"]["comment"] is None


def test_a_rejection_answers_200_with_the_rejected_run_and_its_comment(world, waiting):
    response = call(reject, waiting.id, "reject", body={"comment": "Not in this budget."})

    assert response.status_code == 200
    body = json_body(response)
    assert body["status"] == "Rejected"
    assert body["error"]["code"] == "approval-rejected"
    assert body["approval"]["comment"] == "Not in this budget."


@pytest.mark.parametrize("body", [None, {}, {"comment": "  "}])
def test_a_rejection_needs_a_comment(world, waiting, body):
    response = call(reject, waiting.id, "reject", body=body)

    assert response.status_code == 400
    assert problem_type(response) == "validation-failed"
    assert json_body(response)["errors"][0]["field"] in ("comment", "(body)")
    assert world.run(waiting.id).status.value == "PendingApproval"


def test_unknown_fields_and_long_comments_are_refused_as_other_bodies_are(world, waiting):
    unknown = call(approve, waiting.id, "approve", body={"comment": "ok", "decision": "approved"})
    too_long = call(reject, waiting.id, "reject", body={"comment": "x" * (MAX_APPROVAL_COMMENT + 1)})
    not_json = call(
        approve, waiting.id, "approve", raw_body=b"ok", headers={**as_caller(), "Content-Type": "text/plain"}
    )

    assert (unknown.status_code, json_body(unknown)["errors"]) == (
        400,
        [{"field": "decision", "message": "This field is not recognised."}],
    )
    assert (too_long.status_code, json_body(too_long)["errors"][0]["field"]) == (400, "comment")
    assert not_json.status_code == 415
    assert world.run(waiting.id).status.value == "PendingApproval"


def test_without_a_caller_the_answer_is_401_with_the_challenge(world, waiting):
    response = call(approve, waiting.id, "approve", headers={})

    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"].startswith("Bearer ")


def test_refusals_answer_with_their_problems(world, waiting):
    not_an_approver = call(approve, waiting.id, "approve", headers=as_caller(roles=()))
    own_request = call(approve, waiting.id, "approve", headers=as_caller(REQUESTER))
    missing = call(approve, "run-none.00000000", "approve")

    assert (not_an_approver.status_code, problem_type(not_an_approver)) == (403, "approver-required")
    assert (own_request.status_code, problem_type(own_request)) == (403, "self-approval-forbidden")
    assert (missing.status_code, problem_type(missing)) == (404, "not-found")


def test_the_same_decision_again_is_200_and_the_other_one_409(world, waiting):
    call(approve, waiting.id, "approve")

    again = call(approve, waiting.id, "approve", headers=as_caller("a99a0000-0000-4000-8000-00000000000b"))
    conflict = call(reject, waiting.id, "reject", body={"comment": "no"})

    assert again.status_code == 200
    assert json_body(again)["approval"]["decidedBy"] == APPROVER
    assert conflict.status_code == 409
    problem = json_body(conflict)
    assert problem_type(conflict) == "run-state-conflict"
    assert (problem["runStatus"], problem["decision"]) == ("Subscribing", "approved")
    assert problem["instance"] == f"{ORIGIN}/api/runs/{waiting.id}"
