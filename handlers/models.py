"""GET /api/models: the model catalog as one project sees it (shared/deployments/model_list.py), paged and filtered;
GET /api/models/availability: where one model deploys, how it is sold, and whether a workspace's region fits.

Like every read, both need a signed-in caller. Only parsing and response shaping live here; the deployment service
is imported inside each function so that importing function_app (every cold start) loads no Azure SDK."""

from __future__ import annotations

import azure.functions as func

from handlers.http_responses import json_response, problem_response, problems_on_crash
from handlers.listing import page_size, paged_response, query_parameters, workspace_filter
from handlers.principal import UnauthenticatedError, caller_of
from handlers.submissions import CHALLENGE
from shared.azure_errors import AzureCallError
from shared.azure_ids import InvalidResourceIdError, WorkspaceId
from shared.model_ids import EXPECTED_FORM, InvalidModelIdError, parse_model_id
from shared.problems import NOT_FOUND, Problem

DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 100
# Filters and paging carried from one page's URL to the next; anything else (the `code` key above all) is not.
LIST_PARAMETERS = ("workspaceId", "publisher", "name", "pageSize")

blueprint = func.Blueprint()


@blueprint.function_name("list_models")
@blueprint.route(route="models", methods=["GET"], auth_level=func.AuthLevel.FUNCTION)
@problems_on_crash
def list_models(req: func.HttpRequest) -> func.HttpResponse:
    from shared.deployments.composition import deployment_service

    try:
        caller_of(req.headers)
    except UnauthenticatedError as error:
        return problem_response(error.problem, headers=CHALLENGE)
    params = query_parameters(req)
    errors: list[dict[str, str]] = []
    workspace_id = workspace_filter(params.get("workspaceId"), errors)
    if "workspaceId" not in params:
        errors.append({"field": "workspaceId", "message": "This query parameter is required: the project's ARM id."})
    size = page_size(params.get("pageSize"), errors, default=DEFAULT_PAGE_SIZE, maximum=MAX_PAGE_SIZE)
    if errors or workspace_id is None:
        return problem_response(Problem.validation(errors))

    def fetch(token: str | None) -> tuple[list[dict], str | None]:
        page = deployment_service().list_models(
            workspace_id,
            publisher=params.get("publisher"),
            name=params.get("name"),
            page_size=size,
            continuation_token=token,
        )
        return [item.to_wire() for item in page.items], page.continuation_token

    try:
        return paged_response(req, params, LIST_PARAMETERS, fetch)
    except AzureCallError as error:
        if not error.not_found:
            raise
        return problem_response(_missing_workspace(workspace_id, error))


@blueprint.function_name("model_availability")
@blueprint.route(route="models/availability", methods=["GET"], auth_level=func.AuthLevel.FUNCTION)
@problems_on_crash
def model_availability(req: func.HttpRequest) -> func.HttpResponse:
    from shared.deployments.composition import deployment_service

    try:
        caller_of(req.headers)
    except UnauthenticatedError as error:
        return problem_response(error.problem, headers=CHALLENGE)
    model_id = req.params.get("modelId", "").strip()
    workspace_id = req.params.get("workspaceId", "").strip() or None
    errors: list[dict[str, str]] = []
    if not model_id:
        errors.append({"field": "modelId", "message": f"This query parameter is required: {EXPECTED_FORM}."})
    else:
        try:
            model_id = parse_model_id(model_id).normalized
        except InvalidModelIdError as error:
            errors.append({"field": "modelId", "message": str(error)})
    if workspace_id is not None:
        try:
            workspace_id = WorkspaceId.parse(workspace_id).resource_id
        except InvalidResourceIdError as error:
            errors.append({"field": "workspaceId", "message": str(error)})
    if errors:
        return problem_response(Problem.validation(errors))

    try:
        return json_response(deployment_service().availability(model_id, workspace_id))
    except AzureCallError as error:
        if not error.not_found:
            raise
        return problem_response(_missing_workspace(workspace_id, error))


def _missing_workspace(workspace_id: str | None, error: AzureCallError) -> Problem:
    return Problem(NOT_FOUND, f"Workspace '{workspace_id}' does not exist: {error.message}")
