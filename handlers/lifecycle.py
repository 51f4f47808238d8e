"""After a deployment: DELETE /api/deployments/{deploymentId} (teardown), POST .../{deploymentId}/rotate-keys, and
the timer that rotates keys whose secrets near expiry (%KEY_ROTATION_SCHEDULE%; run it now with
POST /admin/functions/rotate_expiring_keys and the master key).

A deployment the caller may not see (shared/deployments/visibility.py) answers 404 as a missing one does, before
anything that would tell it exists. Only request parsing and response shaping live here; the lifecycle service is
imported inside each function so that importing function_app loads no Azure SDK.
"""

from __future__ import annotations

import logging

import azure.functions as func
from pydantic import ValidationError

from handlers.http_responses import json_object_body, json_response, problem_response, problems_on_crash
from handlers.principal import UnauthenticatedError, caller_of
from handlers.submissions import CHALLENGE, deployment_url, run_url, submission_response
from shared.problems import NOT_FOUND, Problem
from shared.requests import RotateKeysRequest, validation_problems

LOGGER = logging.getLogger(__name__)
DELETE_SUBSCRIPTION_PARAMETER = "deleteSubscription"
_BOOLEANS = {"true": True, "false": False}

blueprint = func.Blueprint()


@blueprint.function_name("delete_deployment")
@blueprint.route(route="deployments/{deploymentId}", methods=["DELETE"], auth_level=func.AuthLevel.FUNCTION)
@problems_on_crash
def delete_deployment(req: func.HttpRequest) -> func.HttpResponse:
    from shared.deployments.composition import deployment_service, lifecycle_service

    try:
        caller = caller_of(req.headers)
    except UnauthenticatedError as error:
        return problem_response(error.problem, headers=CHALLENGE)
    flag = (req.params.get(DELETE_SUBSCRIPTION_PARAMETER) or "false").strip().lower()
    if flag not in _BOOLEANS:
        message = f"'{flag[:32]}' is not a boolean; use true or false."
        return problem_response(Problem.validation([{"field": DELETE_SUBSCRIPTION_PARAMETER, "message": message}]))

    the_id = req.route_params.get("deploymentId", "")
    submission = None
    if deployment_service().get_deployment(the_id, caller=caller) is not None:
        submission = lifecycle_service().delete(the_id, caller=caller.object_id, delete_subscription=_BOOLEANS[flag])
    if submission is None:
        return problem_response(Problem(NOT_FOUND, f"There is no deployment '{the_id}'."))
    return submission_response(req, submission)


@blueprint.function_name("rotate_deployment_keys")
@blueprint.route(route="deployments/{deploymentId}/rotate-keys", methods=["POST"], auth_level=func.AuthLevel.FUNCTION)
@problems_on_crash
def rotate_deployment_keys(req: func.HttpRequest) -> func.HttpResponse:
    from shared.deployments.composition import deployment_service, lifecycle_service

    try:
        caller = caller_of(req.headers)
    except UnauthenticatedError as error:
        return problem_response(error.problem, headers=CHALLENGE)
    parsed = _rotate_request(req)
    if isinstance(parsed, Problem):
        return problem_response(parsed)

    the_id = req.route_params.get("deploymentId", "")
    outcome = None
    if deployment_service().get_deployment(the_id, caller=caller) is not None:
        outcome = lifecycle_service().rotate(the_id, parsed.key_type, caller=caller.object_id)
    if outcome is None:
        return problem_response(Problem(NOT_FOUND, f"There is no deployment '{the_id}'."))
    headers = {"Location": deployment_url(req, the_id)}
    if isinstance(outcome, Problem):
        return problem_response(outcome, headers=headers)
    if outcome.problem is not None or outcome.rotation is None:
        assert outcome.problem is not None
        return problem_response(outcome.problem, headers=headers)
    headers["Operation-Location"] = run_url(req, outcome.run.id)
    return json_response(outcome.rotation.model_dump(mode="json", by_alias=True), status_code=202, headers=headers)


@blueprint.function_name("rotate_expiring_keys")
@blueprint.schedule(arg_name="timer", schedule="%KEY_ROTATION_SCHEDULE%", run_on_startup=False, use_monitor=True)
def rotate_expiring_keys(timer: func.TimerRequest) -> None:
    from shared.deployments.composition import lifecycle_service

    started = lifecycle_service().rotate_expiring()
    LOGGER.info(
        "Key rotation%s: %d rotation(s) started%s",
        " (past due)" if timer.past_due else "",
        len(started),
        "".join(f"; {rotation.reason} -> {rotation.key_type} key" for rotation in started),
    )


def _rotate_request(req: func.HttpRequest) -> RotateKeysRequest | Problem:
    document = json_object_body(req)
    if isinstance(document, Problem):
        return document
    try:
        return RotateKeysRequest.from_wire(document)
    except ValidationError as error:
        return Problem.validation(validation_problems(error))
