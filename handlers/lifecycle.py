"""After a deployment: DELETE /api/deployments/{runId} (teardown), POST /api/deployments/{runId}/rotate-keys, and
the timer that rotates keys whose secrets near expiry (%KEY_ROTATION_SCHEDULE%; run it now with
POST /admin/functions/rotate_expiring_keys and the master key).

Only request parsing and response shaping live here; the lifecycle service is imported inside each function so
that importing function_app loads no Azure SDK.
"""

from __future__ import annotations

import json
import logging
from urllib.parse import quote, urlsplit

import azure.functions as func
from pydantic import ValidationError

from handlers.http_responses import json_response, problem_response, problems_on_crash
from handlers.listing import origin
from handlers.principal import UnauthenticatedError, caller_object_id
from shared.problems import NOT_FOUND, Problem
from shared.requests import RotateKeysRequest, validation_problems

LOGGER = logging.getLogger(__name__)
DELETE_SUBSCRIPTION_PARAMETER = "deleteSubscription"
_BOOLEANS = {"true": True, "false": False}
# RFC 9110 requires a challenge on 401; callers authenticate to Easy Auth with Entra bearer tokens.
_CHALLENGE = {"WWW-Authenticate": 'Bearer realm="serverless-deployment-broker"'}

blueprint = func.Blueprint()


@blueprint.function_name("delete_deployment")
@blueprint.route(route="deployments/{runId}", methods=["DELETE"], auth_level=func.AuthLevel.FUNCTION)
@problems_on_crash
def delete_deployment(req: func.HttpRequest) -> func.HttpResponse:
    from shared.lifecycle.composition import lifecycle_service

    try:
        caller = caller_object_id(req.headers)
    except UnauthenticatedError as error:
        return problem_response(error.problem, headers=_CHALLENGE)
    flag = (req.params.get(DELETE_SUBSCRIPTION_PARAMETER) or "false").strip().lower()
    if flag not in _BOOLEANS:
        message = f"'{flag[:32]}' is not a boolean; use true or false."
        return problem_response(Problem.validation([{"field": DELETE_SUBSCRIPTION_PARAMETER, "message": message}]))

    run_id = req.route_params.get("runId", "")
    submission = lifecycle_service().delete(run_id, caller=caller, delete_subscription=_BOOLEANS[flag])
    if submission is None:
        return problem_response(Problem(NOT_FOUND, f"There is no deployment run '{run_id}'."))
    run = submission.run
    run_path = _run_path(req, run.id)
    if submission.problem is not None:
        problem = submission.problem
        refused = Problem(problem.kind, problem.detail, problem.instance, {**problem.extensions, "runId": run.id})
        return problem_response(refused, headers={"Location": run_path})
    headers = {"Location": run_path, "Operation-Location": origin(req) + run_path}
    return json_response(run.to_public_dict(), status_code=202 if submission.created else 200, headers=headers)


@blueprint.function_name("rotate_deployment_keys")
@blueprint.route(route="deployments/{runId}/rotate-keys", methods=["POST"], auth_level=func.AuthLevel.FUNCTION)
@problems_on_crash
def rotate_deployment_keys(req: func.HttpRequest) -> func.HttpResponse:
    from shared.lifecycle.composition import lifecycle_service

    try:
        caller = caller_object_id(req.headers)
    except UnauthenticatedError as error:
        return problem_response(error.problem, headers=_CHALLENGE)
    parsed = _rotate_request(req.get_body())
    if isinstance(parsed, Problem):
        return problem_response(parsed)

    run_id = req.route_params.get("runId", "")
    outcome = lifecycle_service().rotate(run_id, parsed.key_type, caller=caller)
    if outcome is None:
        return problem_response(Problem(NOT_FOUND, f"There is no deployment run '{run_id}'."))
    run_path = _run_path(req, run_id)
    if outcome.problem is not None or outcome.rotation is None:
        assert outcome.problem is not None
        return problem_response(outcome.problem, headers={"Location": run_path})
    headers = {"Location": run_path, "Operation-Location": origin(req) + run_path}
    return json_response(outcome.rotation.model_dump(mode="json", by_alias=True), status_code=202, headers=headers)


@blueprint.function_name("rotate_expiring_keys")
@blueprint.schedule(arg_name="timer", schedule="%KEY_ROTATION_SCHEDULE%", run_on_startup=False, use_monitor=True)
def rotate_expiring_keys(timer: func.TimerRequest) -> None:
    from shared.lifecycle.composition import lifecycle_service

    started = lifecycle_service().rotate_expiring()
    LOGGER.info(
        "Key rotation%s: %d rotation(s) started%s",
        " (past due)" if timer.past_due else "",
        len(started),
        "".join(f"; {rotation.reason} -> {rotation.key_type} key" for rotation in started),
    )


def _rotate_request(body: bytes) -> RotateKeysRequest | Problem:
    try:
        document = json.loads(body) if body.strip() else None
    except ValueError as error:
        return Problem.validation([{"field": "(body)", "message": f"The body is not valid JSON: {error}."}])
    if document is None:
        return Problem.validation([{"field": "(body)", "message": 'Send {"keyType": "primary" | "secondary"}.'}])
    try:
        return RotateKeysRequest.from_wire(document)
    except ValidationError as error:
        return Problem.validation(validation_problems(error))


def _run_path(req: func.HttpRequest, run_id: str) -> str:
    # The run lives at /<prefix>/deployments/{runId}, whichever of its URLs was called.
    path = urlsplit(req.url).path.rstrip("/")
    prefix = path[: path.index("/deployments/")] if "/deployments/" in path else ""
    return f"{prefix}/deployments/{quote(run_id, safe='')}"
