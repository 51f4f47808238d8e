"""GET /api/models/availability: where a model deploys, how it is sold, and whether a workspace's region fits.

Like every read, it needs a signed-in caller."""

from __future__ import annotations

import azure.functions as func

from handlers.http_responses import json_response, problem_response, problems_on_crash
from handlers.principal import UnauthenticatedError, caller_of
from handlers.submissions import CHALLENGE
from shared.azure_errors import AzureCallError
from shared.azure_ids import InvalidResourceIdError, WorkspaceId
from shared.model_ids import EXPECTED_FORM, InvalidModelIdError, parse_model_id
from shared.problems import NOT_FOUND, Problem

blueprint = func.Blueprint()


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
        return problem_response(Problem(NOT_FOUND, f"Workspace '{workspace_id}' does not exist: {error.message}"))
