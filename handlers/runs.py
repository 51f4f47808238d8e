"""/api/runs: the status monitors of operations on deployments (deploy, repair, delete), one run per operation.

Every read needs a signed-in caller and shows only the runs they may see (shared/deployments/visibility.py): another's
run answers 404 as a missing one does, and lists leave it out. Only request parsing and response shaping live here;
the deployment service is imported inside each function so that importing function_app loads no Azure SDK.
"""

from __future__ import annotations

import azure.functions as func

from handlers.http_responses import json_response, problem_response, problems_on_crash
from handlers.listing import choice_filter, page_size, paged_response, query_parameters, workspace_filter
from handlers.principal import UnauthenticatedError, caller_of
from handlers.submissions import CHALLENGE, public_run
from shared.problems import NOT_FOUND, Problem
from shared.runs import RunStatus

DEFAULT_PAGE_SIZE = 20
MAX_PAGE_SIZE = 100
LIST_PARAMETERS = ("deploymentId", "workspaceId", "status", "ticket", "pageSize")

blueprint = func.Blueprint()


@blueprint.function_name("get_run")
@blueprint.route(route="runs/{runId}", methods=["GET"], auth_level=func.AuthLevel.FUNCTION)
@problems_on_crash
def get_run(req: func.HttpRequest) -> func.HttpResponse:
    from shared.deployments.composition import deployment_service

    try:
        caller = caller_of(req.headers)
    except UnauthenticatedError as error:
        return problem_response(error.problem, headers=CHALLENGE)
    run_id = req.route_params.get("runId", "")
    run = deployment_service().get(run_id, caller=caller)
    if run is None:
        return problem_response(Problem(NOT_FOUND, f"There is no run '{run_id}'."))
    return json_response(public_run(req, run))


@blueprint.function_name("list_runs")
@blueprint.route(route="runs", methods=["GET"], auth_level=func.AuthLevel.FUNCTION)
@problems_on_crash
def list_runs(req: func.HttpRequest) -> func.HttpResponse:
    from shared.deployments.composition import deployment_service

    try:
        caller = caller_of(req.headers)
    except UnauthenticatedError as error:
        return problem_response(error.problem, headers=CHALLENGE)
    params = query_parameters(req)
    errors: list[dict[str, str]] = []
    workspace_id = workspace_filter(params.get("workspaceId"), errors)
    status = choice_filter(params.get("status"), "status", (status.value for status in RunStatus), errors)
    size = page_size(params.get("pageSize"), errors, default=DEFAULT_PAGE_SIZE, maximum=MAX_PAGE_SIZE)
    if errors:
        return problem_response(Problem.validation(errors))

    def fetch(token: str | None) -> tuple[list[dict], str | None]:
        page = deployment_service().list(
            caller=caller,
            workspace_id=workspace_id,
            status=status,
            ticket=params.get("ticket"),
            deployment_id=params.get("deploymentId"),
            page_size=size,
            continuation_token=token,
        )
        return [public_run(req, run) for run in page.items], page.continuation_token

    return paged_response(req, params, LIST_PARAMETERS, fetch)
