"""POST /api/deployments/what-if: what POST /api/deployments with the same body would do, writing nothing.

The body is read and refused exactly as a deployment request's (the same helper), and a signed-in caller is needed
as for one. An Idempotency-Key is not read: nothing is stored to replay. The deployment service plans the answer
(shared/deployments/what_if.py); it is imported inside the function so that importing function_app loads no SDK.
"""

from __future__ import annotations

import azure.functions as func

from handlers.deployments import _deployment_request
from handlers.http_responses import json_response, problem_response, problems_on_crash
from handlers.principal import UnauthenticatedError, caller_of
from handlers.submissions import CHALLENGE
from shared.problems import Problem

blueprint = func.Blueprint()


@blueprint.function_name("what_if_deployment")
@blueprint.route(route="deployments/what-if", methods=["POST"], auth_level=func.AuthLevel.FUNCTION)
@problems_on_crash
def what_if_deployment(req: func.HttpRequest) -> func.HttpResponse:
    from shared.deployments.composition import deployment_service

    try:
        caller = caller_of(req.headers)
    except UnauthenticatedError as error:
        return problem_response(error.problem, headers=CHALLENGE)
    parsed = _deployment_request(req)
    if isinstance(parsed, Problem):
        return problem_response(parsed)
    return json_response(deployment_service().what_if(parsed, caller=caller).to_wire())
