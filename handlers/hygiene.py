"""The hygiene scan on a timer (%HYGIENE_SCHEDULE%, runnable now with POST /admin/functions/hygiene_scan), and
/api/hygiene/findings and /api/hygiene/report to read what it found.

Only parsing and response shaping live here. The scanner and store are imported inside each function, so importing
function_app (every cold start) loads no Azure SDK.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from urllib.parse import urlencode, urlsplit

import azure.functions as func

from handlers.http_responses import json_response, problem_response, problems_on_crash
from shared.azure_ids import InvalidResourceIdError, WorkspaceId
from shared.hygiene.findings import FindingState, Severity
from shared.hygiene.rules import RULES
from shared.problems import NOT_FOUND, Problem

LOGGER = logging.getLogger(__name__)
DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 200
# Filters and paging carried from one page's URL to the next; anything else (the `code` key above all) is not.
LIST_PARAMETERS = ("rule", "severity", "workspaceId", "state", "pageSize")

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
    from shared.hygiene.composition import finding_store

    params = {name: value.strip() for name, value in req.params.items() if value.strip()}
    errors: list[dict[str, str]] = []
    rule = _choice(params, "rule", RULES, errors)
    severity = _choice(params, "severity", [item.value for item in Severity], errors)
    state = _choice(params, "state", [item.value for item in FindingState], errors)
    workspace_id = _workspace(params.get("workspaceId"), errors)
    page_size = _page_size(params.get("pageSize"), errors)
    if errors:
        return problem_response(Problem.validation(errors))
    token = params.get("continuationToken")
    try:
        page = finding_store().query(
            rule=rule,
            severity=severity,
            workspace_id=workspace_id,
            state=state,
            page_size=page_size,
            continuation_token=token,
        )
    except ValueError:
        if token is None:
            raise
        message = "This token was not issued by this service for these filters; start again without it."
        return problem_response(Problem.validation([{"field": "continuationToken", "message": message}]))
    next_link = None
    if page.continuation_token:
        query = {name: params[name] for name in LIST_PARAMETERS if name in params}
        query["continuationToken"] = page.continuation_token
        next_link = f"{_origin(req)}{urlsplit(req.url).path}?{urlencode(query)}"
    return json_response({"value": [record.to_public_dict() for record in page.records], "nextLink": next_link})


@blueprint.function_name("hygiene_report")
@blueprint.route(route="hygiene/report", methods=["GET"], auth_level=func.AuthLevel.FUNCTION)
@problems_on_crash
def hygiene_report(req: func.HttpRequest) -> func.HttpResponse:
    from shared.hygiene.composition import finding_store

    report = finding_store().latest_report()
    if report is None:
        return problem_response(Problem(NOT_FOUND, "No hygiene scan has finished yet."))
    return json_response(report)


def _choice(params: dict[str, str], name: str, allowed: Iterable[str], errors: list[dict[str, str]]) -> str | None:
    value = params.get(name)
    choices = sorted(allowed)
    if value is None or value in choices:
        return value
    errors.append({"field": name, "message": f"'{value}' is not one of: {', '.join(choices)}."})
    return None


def _workspace(value: str | None, errors: list[dict[str, str]]) -> str | None:
    if value is None:
        return None
    try:
        return WorkspaceId.parse(value).resource_id
    except InvalidResourceIdError as error:
        errors.append({"field": "workspaceId", "message": str(error)})
        return None


def _page_size(value: str | None, errors: list[dict[str, str]]) -> int:
    if value is None:
        return DEFAULT_PAGE_SIZE
    if value.isdigit() and 1 <= int(value) <= MAX_PAGE_SIZE:
        return int(value)
    errors.append({"field": "pageSize", "message": f"pageSize must be a whole number from 1 to {MAX_PAGE_SIZE}."})
    return DEFAULT_PAGE_SIZE


def _origin(req: func.HttpRequest) -> str:
    parts = urlsplit(req.url)
    return f"{parts.scheme}://{parts.netloc}"
