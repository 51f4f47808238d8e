"""JSON and RFC 9457 problem+json responses, bounded JSON request bodies, and the last-resort guard that turns a
crash into a 500 problem."""

from __future__ import annotations

import functools
import json
import logging
import traceback
from collections.abc import Callable, Mapping
from typing import Any

import azure.functions as func

from shared.azure_errors import AzureCallError
from shared.problems import AZURE_UNAVAILABLE, CONTENT_TYPE, INTERNAL, Problem
from shared.redaction import default_registry
from shared.wire import HTTP_LIMITS, WireError, check_media_type, read_json_object

LOGGER = logging.getLogger(__name__)

HttpHandler = Callable[[func.HttpRequest], func.HttpResponse]


def json_response(
    body: object, *, status_code: int = 200, headers: Mapping[str, str] | None = None
) -> func.HttpResponse:
    return func.HttpResponse(
        json.dumps(body),
        status_code=status_code,
        mimetype="application/json",
        headers=dict(headers or {}),
    )


def problem_response(problem: Problem, *, headers: Mapping[str, str] | None = None) -> func.HttpResponse:
    """`problem` as application/problem+json with its own status code."""
    return func.HttpResponse(
        json.dumps(problem.to_dict()),
        status_code=problem.status,
        mimetype=CONTENT_TYPE,
        headers=dict(headers or {}),
    )


def json_object_body(req: func.HttpRequest) -> dict[str, Any] | Problem:
    """The request's body as a JSON object read within shared/wire.py's HTTP limits, or the problem to answer:
    415 unsupported-media-type (a body without a JSON Content-Type in UTF-8), 413 payload-too-large (over 1 MiB),
    400 validation-failed naming the limit for everything else (empty, not UTF-8, too deep, a string too long,
    duplicate members, not an object)."""
    body = req.get_body()
    content_type = req.headers.get("Content-Type")
    try:
        # A Content-Type is required with a body; an empty body is refused below as empty whatever its type.
        if body or content_type is not None:
            check_media_type(content_type, HTTP_LIMITS)
        return read_json_object(body, HTTP_LIMITS)
    except WireError as error:
        return error.problem()


def problems_on_crash(handler: HttpHandler) -> HttpHandler:
    """Answer any exception `handler` lets escape with a 500 `internal` problem that reveals nothing of it.

    The exception text may quote an Azure response body, so it stays out of the response and reaches the log only
    after every key the process knows of has been scrubbed from it.
    """

    @functools.wraps(handler)
    def guarded(req: func.HttpRequest) -> func.HttpResponse:
        try:
            return handler(req)
        except Exception as error:  # noqa: BLE001 - the guard exists to catch what nothing else did
            if isinstance(error, AzureCallError) and error.transient:
                return _azure_unavailable(req, handler, error)
            LOGGER.error(
                "%s %s failed unexpectedly:\n%s",
                req.method,
                handler.__name__,
                default_registry.redact(traceback.format_exc()),
            )
            return problem_response(
                Problem(INTERNAL, "The broker failed unexpectedly; the error has been logged. Try again later.")
            )

    return guarded


def _azure_unavailable(req: func.HttpRequest, handler: HttpHandler, error: AzureCallError) -> func.HttpResponse:
    # Throttled or unavailable after the pipeline's own retries: the caller may simply try again later.
    LOGGER.warning("%s %s: Azure unavailable (%s)", req.method, handler.__name__, error.code)
    retry_after = str(max(1, round(error.retry_after or 10)))
    return problem_response(
        Problem(AZURE_UNAVAILABLE, f"Azure answered {error.code}; retry after {retry_after} seconds."),
        headers={"Retry-After": retry_after},
    )
