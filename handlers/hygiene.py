"""The hygiene scan on a timer (%HYGIENE_SCHEDULE%, runnable now with POST /admin/functions/hygiene_scan), and
/api/hygiene/findings and /api/hygiene/report to read what it found. Each finding names the deployment it is about
(deploymentId, runId, tickets) and its recommendedAction; `?deploymentId=` lists the findings about one deployment.

Both reads need a signed-in caller and follow the visibility rule of runs and deployments
(shared/deployments/visibility.py), judged on each finding's workspace and the deployment it is about: lists leave
out what the caller may not see, and the report is counted over what they may (whole for auditors and approvers).
Only parsing and response shaping live here. The scanner and store are imported inside each function, so importing
function_app (every cold start) loads no Azure SDK.
"""

from __future__ import annotations

import logging

import azure.functions as func

from handlers.http_responses import json_response, problem_response, problems_on_crash
from handlers.listing import choice_filter, page_size, paged_response, query_parameters, workspace_filter
from handlers.principal import UnauthenticatedError, caller_of
from handlers.submissions import CHALLENGE
from shared.deployments.visibility import visible_page
from shared.hygiene.findings import FindingRecord, FindingState, Severity
from shared.hygiene.report import report_as_seen
from shared.hygiene.rules import RULES
from shared.problems import NOT_FOUND, Problem

LOGGER = logging.getLogger(__name__)
DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 200
# Filters and paging carried from one page's URL to the next; anything else (the `code` key above all) is not.
LIST_PARAMETERS = ("rule", "severity", "workspaceId", "state", "deploymentId", "pageSize")

blueprint = func.Blueprint()


@blueprint.function_name("hygiene_scan")
@blueprint.schedule(arg_name="timer", schedule="%HYGIENE_SCHEDULE%", run_on_startup=False, use_monitor=True)
def hygiene_scan(timer: func.TimerRequest) -> None:
    from shared.hygiene.composition import hygiene_scanner

    if timer.past_due:
        LOGGER.info("hygiene scan is past due; running now")
    hygiene_scanner().scan()


@blueprint.function_name("hygiene_findings")
@blueprint.route(route="hygiene/findings", methods=["GET"], auth_level=func.AuthLevel.FUNCTION)
@problems_on_crash
def hygiene_findings(req: func.HttpRequest) -> func.HttpResponse:
    from shared.deployments.composition import deployment_service
    from shared.hygiene.composition import finding_store

    try:
        caller = caller_of(req.headers)
    except UnauthenticatedError as error:
        return problem_response(error.problem, headers=CHALLENGE)
    params = query_parameters(req)
    errors: list[dict[str, str]] = []
    rule = choice_filter(params.get("rule"), "rule", RULES, errors)
    severity = choice_filter(params.get("severity"), "severity", [item.value for item in Severity], errors)
    state = choice_filter(params.get("state"), "state", [item.value for item in FindingState], errors)
    workspace_id = workspace_filter(params.get("workspaceId"), errors)
    deployment_id = (params.get("deploymentId") or "").strip() or None
    size = page_size(params.get("pageSize"), errors, default=DEFAULT_PAGE_SIZE, maximum=MAX_PAGE_SIZE)
    if errors:
        return problem_response(Problem.validation(errors))

    visibility = deployment_service().visibility(caller)

    def read(count: int, token: str | None) -> tuple[list[FindingRecord], str | None]:
        page = finding_store().query(
            rule=rule,
            severity=severity,
            workspace_id=workspace_id,
            state=state,
            deployment_id=deployment_id,
            page_size=count,
            continuation_token=token,
        )
        return page.records, page.continuation_token

    def fetch(token: str | None) -> tuple[list[dict], str | None]:
        page = visible_page(
            read,
            lambda record: visibility.sees_finding(record.workspace_id, record.deployment_id),
            page_size=size,
            continuation_token=token,
        )
        return [record.to_public_dict() for record in page.items], page.continuation_token

    return paged_response(req, params, LIST_PARAMETERS, fetch)


@blueprint.function_name("hygiene_report")
@blueprint.route(route="hygiene/report", methods=["GET"], auth_level=func.AuthLevel.FUNCTION)
@problems_on_crash
def hygiene_report(req: func.HttpRequest) -> func.HttpResponse:
    from shared.deployments.composition import deployment_service
    from shared.hygiene.composition import finding_store

    try:
        caller = caller_of(req.headers)
    except UnauthenticatedError as error:
        return problem_response(error.problem, headers=CHALLENGE)
    store = finding_store()
    report = store.latest_report()
    if report is None:
        return problem_response(Problem(NOT_FOUND, "No hygiene scan has finished yet."))
    visibility = deployment_service().visibility(caller)
    if visibility.sees_everything:
        return json_response(report_as_seen(report, None))
    visible = [record for record in store.live() if visibility.sees_finding(record.workspace_id, record.deployment_id)]
    return json_response(report_as_seen(report, visible))
