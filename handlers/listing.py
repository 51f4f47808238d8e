"""Paged list endpoints: query parameters, filter validation, continuation tokens and absolute nextLinks."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any
from urllib.parse import urlencode, urlsplit

import azure.functions as func

from handlers.http_responses import json_response, problem_response
from shared.azure_ids import InvalidResourceIdError, WorkspaceId
from shared.model_ids import InvalidModelIdError, parse_model_id
from shared.problems import Problem

FieldErrors = list[dict[str, str]]
# A page of public dicts and the token for the next one (None on the last page).
Fetch = Callable[[str | None], tuple[Sequence[Mapping[str, Any]], str | None]]


def query_parameters(req: func.HttpRequest) -> dict[str, str]:
    """Non-blank query parameters, trimmed."""
    return {name: value.strip() for name, value in req.params.items() if value.strip()}


def workspace_filter(value: str | None, errors: FieldErrors) -> str | None:
    if value is None:
        return None
    try:
        return WorkspaceId.parse(value).resource_id
    except InvalidResourceIdError as error:
        errors.append({"field": "workspaceId", "message": str(error)})
        return None


def model_filter(value: str | None, errors: FieldErrors) -> str | None:
    if value is None:
        return None
    try:
        return parse_model_id(value).normalized
    except InvalidModelIdError as error:
        errors.append({"field": "modelId", "message": str(error)})
        return None


def choice_filter(value: str | None, name: str, allowed: Iterable[str], errors: FieldErrors) -> str | None:
    """`value` as its allowed spelling (matched case-insensitively), or None with an error naming the choices."""
    if value is None:
        return None
    choices = sorted(allowed)
    match = next((choice for choice in choices if choice.lower() == value.lower()), None)
    if match is None:
        errors.append({"field": name, "message": f"'{value[:64]}' is not one of: {', '.join(choices)}."})
    return match


def page_size(value: str | None, errors: FieldErrors, *, default: int, maximum: int) -> int:
    if value is None:
        return default
    if value.isascii() and value.isdigit() and 1 <= int(value) <= maximum:
        return int(value)
    errors.append({"field": "pageSize", "message": f"Use a whole number from 1 to {maximum}."})
    return default


def paged_response(
    req: func.HttpRequest, params: Mapping[str, str], carried: Sequence[str], fetch: Fetch
) -> func.HttpResponse:
    """`{"value": [...], "nextLink": ...}`; the link carries only `carried` parameters (never a `code` key)."""
    token = params.get("continuationToken")
    try:
        items, next_token = fetch(token)
    except ValueError:
        if token is None:
            raise
        message = "This token was not issued by this service for these filters; start again without it."
        return problem_response(Problem.validation([{"field": "continuationToken", "message": message}]))
    next_link = None
    if next_token:
        query = {name: params[name] for name in carried if name in params}
        query["continuationToken"] = next_token
        next_link = f"{origin(req)}{urlsplit(req.url).path.rstrip('/')}?{urlencode(query)}"
    return json_response({"value": list(items), "nextLink": next_link})


def origin(req: func.HttpRequest) -> str:
    parts = urlsplit(req.url)
    return f"{parts.scheme}://{parts.netloc}" if parts.netloc else ""
