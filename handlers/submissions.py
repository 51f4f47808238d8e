"""How an answered request becomes an HTTP response, the same for POST, repair and DELETE.

A run that is started or joined answers 202 with the run as the body, `Operation-Location` pointing at the run
(the status monitor) and `Location` at the deployment (the resource). A deployment that already is as asked answers
200 with the deployment. A refusal answers with its problem; the run that records it is the problem's `instance`
and `Operation-Location`, and its `runId` unless the problem names the run it is about (the deployment's run in
flight, or the run its spec conflicts with).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote, urlsplit

import azure.functions as func

from handlers.http_responses import json_response, problem_response
from handlers.listing import origin
from shared.problems import Problem
from shared.run_outcomes import Submission
from shared.runs import RunRecord

# RFC 9110 requires a challenge on 401; callers authenticate to Easy Auth with Entra bearer tokens.
CHALLENGE = {"WWW-Authenticate": 'Bearer realm="serverless-deployment-broker"'}
_COLLECTIONS = ("/deployments", "/runs")
# The member a finished deploy or repair run's status monitor adds: where the deployment it made lives.
RESOURCE_LOCATION = "resourceLocation"


def api_base(req: func.HttpRequest) -> str:
    """`scheme://host/<routePrefix>`, from the URL that was called."""
    path = urlsplit(req.url).path
    cut = min((index for marker in _COLLECTIONS if (index := path.find(marker)) >= 0), default=len(path))
    return origin(req) + path[:cut]


def deployment_url(req: func.HttpRequest, deployment_id: str) -> str:
    return f"{api_base(req)}/deployments/{quote(deployment_id, safe='')}"


def run_url(req: func.HttpRequest, run_id: str) -> str:
    return f"{api_base(req)}/runs/{quote(run_id, safe='')}"


def public_run(req: func.HttpRequest, run: RunRecord) -> dict[str, Any]:
    """The run as a status monitor: `resourceLocation` names the deployment once the run has ended."""
    body = run.to_public_dict()
    if run.is_terminal and run.deployment_id and run.operation != "delete":
        body[RESOURCE_LOCATION] = deployment_url(req, run.deployment_id)
    return body


def submission_response(req: func.HttpRequest, submission: Submission) -> func.HttpResponse:
    run, deployment = submission.run, submission.deployment
    headers: dict[str, str] = {}
    if the_id := _deployment_of(submission):
        headers["Location"] = deployment_url(req, the_id)
    if run is not None:
        headers["Operation-Location"] = run_url(req, run.id)
    if submission.problem is not None:
        problem = submission.problem
        # A problem naming the run it is about (the deployment's run in flight, say) keeps it: the run recording
        # the refusal is the instance and Operation-Location. Otherwise runId names that recording run.
        extensions = dict(problem.extensions)
        if run is not None and extensions.get("runId") is None:
            extensions["runId"] = run.id
        instance = problem.instance or (run_url(req, run.id) if run else None)
        return problem_response(Problem(problem.kind, problem.detail, instance, extensions), headers=headers)
    if submission.accepted:
        assert run is not None, "an accepted request always has its run"
        return json_response(public_run(req, run), status_code=202, headers=headers)
    if submission.answer == "replayed" and run is not None:
        return json_response(public_run(req, run), headers=headers)
    assert deployment is not None, "a request answered without a run is answered by its deployment"
    return json_response(deployment.to_public_dict(), headers=headers)


def _deployment_of(submission: Submission) -> str | None:
    """The deployment an answer is about: the one answering, or the one a refusal names (a conflict with it)."""
    if submission.deployment is not None:
        return submission.deployment.id
    if submission.run is not None and submission.run.deployment_id:
        return submission.run.deployment_id
    named = submission.problem.extensions.get("deploymentId") if submission.problem else None
    return named if isinstance(named, str) and named else None
