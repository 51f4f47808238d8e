"""/api/deployments: request a deployment, read one, list them, and repair one.

Every route needs a signed-in caller. Reads show only the deployments the caller may see
(shared/deployments/visibility.py); one they may not answers 404 as a missing one does (repair included), and lists
leave it out. Only request parsing and response shaping live here; the deployment service decides everything else.
It is imported inside each function so that importing function_app (every cold start) loads no Azure SDK.
"""

from __future__ import annotations

import azure.functions as func
from pydantic import ValidationError

from handlers.http_responses import json_object_body, json_response, problem_response, problems_on_crash
from handlers.listing import choice_filter, model_filter, page_size, paged_response, query_parameters, workspace_filter
from handlers.principal import UnauthenticatedError, caller_object_id, caller_of
from handlers.submissions import CHALLENGE, submission_response
from handlers.tracing import invocation_trace
from shared.deployment import Phase
from shared.problems import NOT_FOUND, Problem
from shared.requests import DeploymentRequest, validation_problems
from shared.telemetry import continued

IDEMPOTENCY_KEY_HEADER = "Idempotency-Key"
MAX_IDEMPOTENCY_KEY = 255
DEFAULT_PAGE_SIZE = 20
MAX_PAGE_SIZE = 100
# Filters and paging carried from one page's URL to the next; anything else (the `code` key above all) is not.
LIST_PARAMETERS = ("workspaceId", "modelId", "phase", "ticket", "pageSize")

blueprint = func.Blueprint()


@blueprint.function_name("submit_deployment")
@blueprint.route(route="deployments", methods=["POST"], auth_level=func.AuthLevel.FUNCTION)
def submit_deployment(req: func.HttpRequest, context: func.Context) -> func.HttpResponse:
    # The request's trace is the deployment's: its run's steps and events continue it (shared/telemetry.py).
    with continued(invocation_trace(context)):
        return _submit_deployment(req)


@problems_on_crash
def _submit_deployment(req: func.HttpRequest) -> func.HttpResponse:
    from shared.deployments.composition import deployment_service
    from shared.deployments.service import IdempotencyConflictError

    try:
        caller = caller_object_id(req.headers)
    except UnauthenticatedError as error:
        return problem_response(error.problem, headers=CHALLENGE)
    parsed = _deployment_request(req)
    if isinstance(parsed, Problem):
        return problem_response(parsed)
    idempotency_key = req.headers.get(IDEMPOTENCY_KEY_HEADER)
    key_problem = _idempotency_key_problem(idempotency_key)
    if key_problem:
        return problem_response(key_problem)

    try:
        submission = deployment_service().submit(parsed, caller=caller, idempotency_key=idempotency_key)
    except IdempotencyConflictError as error:
        return problem_response(error.problem)
    return submission_response(req, submission)


@blueprint.function_name("get_deployment")
@blueprint.route(route="deployments/{deploymentId}", methods=["GET"], auth_level=func.AuthLevel.FUNCTION)
@problems_on_crash
def get_deployment(req: func.HttpRequest) -> func.HttpResponse:
    from shared.deployments.composition import deployment_service

    try:
        caller = caller_of(req.headers)
    except UnauthenticatedError as error:
        return problem_response(error.problem, headers=CHALLENGE)
    the_id = req.route_params.get("deploymentId", "")
    deployment = deployment_service().get_deployment(the_id, caller=caller)
    if deployment is None:
        return problem_response(Problem(NOT_FOUND, f"There is no deployment '{the_id}'."))
    return json_response(deployment.to_public_dict())


@blueprint.function_name("list_deployments")
@blueprint.route(route="deployments", methods=["GET"], auth_level=func.AuthLevel.FUNCTION)
@problems_on_crash
def list_deployments(req: func.HttpRequest) -> func.HttpResponse:
    from shared.deployments.composition import deployment_service

    try:
        caller = caller_of(req.headers)
    except UnauthenticatedError as error:
        return problem_response(error.problem, headers=CHALLENGE)
    params = query_parameters(req)
    errors: list[dict[str, str]] = []
    workspace_id = workspace_filter(params.get("workspaceId"), errors)
    model_id = model_filter(params.get("modelId"), errors)
    phase = choice_filter(params.get("phase"), "phase", (phase.value for phase in Phase), errors)
    size = page_size(params.get("pageSize"), errors, default=DEFAULT_PAGE_SIZE, maximum=MAX_PAGE_SIZE)
    if errors:
        return problem_response(Problem.validation(errors))

    def fetch(token: str | None) -> tuple[list[dict], str | None]:
        page = deployment_service().list_deployments(
            caller=caller,
            workspace_id=workspace_id,
            model_id=model_id,
            phase=phase,
            ticket=params.get("ticket"),
            page_size=size,
            continuation_token=token,
        )
        return [deployment.to_public_dict() for deployment in page.items], page.continuation_token

    return paged_response(req, params, LIST_PARAMETERS, fetch)


@blueprint.function_name("repair_deployment")
@blueprint.route(route="deployments/{deploymentId}/repair", methods=["POST"], auth_level=func.AuthLevel.FUNCTION)
@problems_on_crash
def repair_deployment(req: func.HttpRequest) -> func.HttpResponse:
    from shared.deployments.composition import deployment_service

    try:
        caller = caller_of(req.headers)
    except UnauthenticatedError as error:
        return problem_response(error.problem, headers=CHALLENGE)
    the_id = req.route_params.get("deploymentId", "")
    service = deployment_service()
    # Asked first, so a deployment the caller may not see is answered as a missing one, whatever its state.
    submission = None
    if service.get_deployment(the_id, caller=caller) is not None:
        submission = service.repair(the_id, caller=caller.object_id)
    if submission is None:
        return problem_response(Problem(NOT_FOUND, f"There is no deployment '{the_id}'."))
    return submission_response(req, submission)


def _deployment_request(req: func.HttpRequest) -> DeploymentRequest | Problem:
    document = json_object_body(req)
    if isinstance(document, Problem):
        return document
    try:
        return DeploymentRequest.from_wire(document)
    except ValidationError as error:
        return Problem.validation(validation_problems(error))


def _idempotency_key_problem(key: str | None) -> Problem | None:
    if key is None:
        return None
    if not key.strip():
        message = "The key is blank; omit the header or send a unique value."
    elif len(key) > MAX_IDEMPOTENCY_KEY:
        message = f"The key is {len(key)} characters long; the limit is {MAX_IDEMPOTENCY_KEY}."
    else:
        return None
    return Problem.validation([{"field": IDEMPOTENCY_KEY_HEADER, "message": message}])
