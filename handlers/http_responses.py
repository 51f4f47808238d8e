"""JSON and RFC 9457 problem+json responses."""

from __future__ import annotations

import json
from collections.abc import Mapping

import azure.functions as func

PROBLEM_TYPE_BASE = "https://broker.example.com/problems/"


def json_response(
    body: object, *, status_code: int = 200, headers: Mapping[str, str] | None = None
) -> func.HttpResponse:
    return func.HttpResponse(
        json.dumps(body),
        status_code=status_code,
        mimetype="application/json",
        headers=dict(headers or {}),
    )
