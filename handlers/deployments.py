"""/api/deployments: submit a deployment request, read its run, list runs.

Only request parsing and response shaping live here; the deployment service decides everything else. It is
imported inside each function so that importing function_app (every cold start) loads no Azure SDK.
"""

from __future__ import annotations

import json
from urllib.parse import quote, urlsplit

import azure.functions as func
from pydantic import ValidationError

from handlers.http_responses import json_response, problem_response, problems_on_crash
from handlers.listing import choice_filter, origin, page_size, paged_response, query_parameters, workspace_filter
from handlers.principal import UnauthenticatedError, caller_object_id
from shared.problems import NOT_FOUND, Problem
from shared.requests import DeploymentRequest, validation_problems
from shared.runs import RunStatus

IDEMPOTENCY_KEY_HEADER = "Idempotency-Key"
MAX_IDEMPOTENCY_KEY = 255
DEFAULT_PAGE_SIZE = 20
MAX_PAGE_SIZE = 100
# Filters and paging carried from one page's URL to the next; anything else (the `code` key above all) is not.
LIST_PARAMETERS = ("workspaceId", "status", "ticket", "pageSize")
# RFC 9110 requires a challenge on 401; callers authenticate to Easy Auth with Entra bearer tokens.
_CHALLENGE = {"WWW-Authenticate": 'Bearer realm="serverless-deployment-broker"'}

blueprint = func.Blueprint()


@blueprint.function_name("submit_deployment")
@blueprint.route(route="deployments", methods=["POST"], auth_level=func.AuthLevel.FUNCTION)
@problems_on_crash
def submit_deployment(req: func.HttpRequest) -> func.HttpResponse:
    from shared.deployments.composition import deployment_service
    from shared.deployments.service import IdempotencyConflictError

    try:
        caller = caller_object_id(req.headers)
    except UnauthenticatedError as error:
        return problem_response(error.problem, headers=_CHALLENGE)
    parsed = _deployment_request(req.get_body())
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
    run = submission.run
    run_path = f"{urlsplit(req.url).path.rstrip('/')}/{quote(run.id, safe='')}"
    if submission.problem is not None:
        problem = submission.problem
        rejected = Problem(
            problem.kind, problem.detail, problem.instance or run_path, {**problem.extensions, "runId": run.id}
        )
        return problem_response(rejected, headers={"Location": run_path})
    headers = {"Location": run_path, "Operation-Location": origin(req) + run_path}
    return json_response(run.to_public_dict(), status_code=202 if submission.created else 200, headers=headers)


@blueprint.function_name("get_deployment")
@blueprint.route(route="deployments/{runId}", methods=["GET"], auth_level=func.AuthLevel.FUNCTION)
@problems_on_crash
def get_deployment(req: func.HttpRequest) -> func.HttpResponse:
    from shared.deployments.composition import deployment_service

    run_id = req.route_params.get("runId", "")
    run = deployment_service().get(run_id)
    if run is None:
        return problem_response(Problem(NOT_FOUND, f"There is no deployment run '{run_id}'."))
    return json_response(run.to_public_dict())


@blueprint.function_name("list_deployments")
@blueprint.route(route="deployments", methods=["GET"], auth_level=func.AuthLevel.FUNCTION)
@problems_on_crash
def list_deployments(req: func.HttpRequest) -> func.HttpResponse:
    from shared.deployments.composition import deployment_service

    params = query_parameters(req)
    errors: list[dict[str, str]] = []
    workspace_id = workspace_filter(params.get("workspaceId"), errors)
    status = choice_filter(params.get("status"), "status", (status.value for status in RunStatus), errors)
    size = page_size(params.get("pageSize"), errors, default=DEFAULT_PAGE_SIZE, maximum=MAX_PAGE_SIZE)
    if errors:
        return problem_response(Problem.validation(errors))

    def fetch(token: str | None) -> tuple[list[dict], str | None]:
        page = deployment_service().list(
            workspace_id=workspace_id,
            status=status,
            ticket=params.get("ticket"),
            page_size=size,
            continuation_token=token,
        )
        return [run.to_public_dict() for run in page.runs], page.continuation_token

    return paged_response(req, params, LIST_PARAMETERS, fetch)


def _deployment_request(body: bytes) -> DeploymentRequest | Problem:
    if not body.strip():
        return Problem.validation([{"field": "(body)", "message": "The body is empty; send a JSON object."}])
    try:
        document = json.loads(body)
    except ValueError as error:  # invalid JSON and bytes that are not UTF-8 alike
        return Problem.validation([{"field": "(body)", "message": f"The body is not valid JSON: {error}."}])
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
