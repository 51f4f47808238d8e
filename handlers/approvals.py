"""POST /api/runs/{runId}/approve and /reject: an approver's decision on a run waiting in PendingApproval.

Both take `{"comment": "..."}` (required to reject; approve may send no body at all) and answer 200 with the run as
the decision left it, also when that decision had been made already; refusals are problems: 401 without a caller,
403 `approver-required` or `self-approval-forbidden`, 404 for no such run, 409 `run-state-conflict` when the run is
not waiting (the other decision was made, it expired, or it never waited). The decision itself is the deployment
service's (shared/deployments/approvals.py), imported inside each function so that importing function_app loads no
Azure SDK.
"""

from __future__ import annotations

from typing import Literal

import azure.functions as func
from pydantic import ValidationError

from handlers.http_responses import json_object_body, json_response, problem_response, problems_on_crash
from handlers.principal import UnauthenticatedError, caller_of
from handlers.submissions import CHALLENGE, public_run, run_url
from shared.approvals import DecisionRequest
from shared.problems import Problem
from shared.requests import validation_problems

Verb = Literal["approve", "reject"]

blueprint = func.Blueprint()


@blueprint.function_name("approve_run")
@blueprint.route(route="runs/{runId}/approve", methods=["POST"], auth_level=func.AuthLevel.FUNCTION)
@problems_on_crash
def approve_run(req: func.HttpRequest) -> func.HttpResponse:
    return _decide(req, "approve")


@blueprint.function_name("reject_run")
@blueprint.route(route="runs/{runId}/reject", methods=["POST"], auth_level=func.AuthLevel.FUNCTION)
@problems_on_crash
def reject_run(req: func.HttpRequest) -> func.HttpResponse:
    return _decide(req, "reject")


def _decide(req: func.HttpRequest, verb: Verb) -> func.HttpResponse:
    from shared.deployments.composition import deployment_service

    try:
        caller = caller_of(req.headers)
    except UnauthenticatedError as error:
        return problem_response(error.problem, headers=CHALLENGE)
    parsed = _decision_request(req, verb)
    if isinstance(parsed, Problem):
        return problem_response(parsed)
    run_id = req.route_params.get("runId", "")
    service = deployment_service()
    if verb == "approve":
        decision = service.approve(run_id, caller=caller, comment=parsed.comment)
    else:
        assert parsed.comment is not None, "a rejection's comment is checked above"
        decision = service.reject(run_id, caller=caller, comment=parsed.comment)
    if decision.problem is not None:
        problem = decision.problem
        instance = run_url(req, decision.run.id) if decision.run is not None else None
        return problem_response(Problem(problem.kind, problem.detail, instance, problem.extensions))
    assert decision.run is not None, "a decision without a problem answers with its run"
    return json_response(public_run(req, decision.run), headers={"Operation-Location": run_url(req, decision.run.id)})


def _decision_request(req: func.HttpRequest, verb: Verb) -> DecisionRequest | Problem:
    # An approval needs nothing said, so it may come without a body; a rejection must say why.
    document = json_object_body(req) if req.get_body() or verb == "reject" else {}
    if isinstance(document, Problem):
        return document
    try:
        parsed = DecisionRequest.from_wire(document)
    except ValidationError as error:
        return Problem.validation(validation_problems(error))
    if verb == "reject" and parsed.comment is None:
        return Problem.validation([{"field": "comment", "message": "A rejection needs a comment saying why."}])
    return parsed
