"""Errors: azure-core's HttpResponseError family, each carrying the broker's RFC 9457 problem.

A caller catching azure-core's own types (`ResourceNotFoundError`, `ClientAuthenticationError`,
`ResourceExistsError`, `HttpResponseError`) catches these too; `problem` holds the broker's answer (type, title,
status, detail and extension members such as `runId`, `errors` or `supportedRegions`).
"""

from __future__ import annotations

import json
from typing import Any

from azure.core.exceptions import (
    ClientAuthenticationError,
    HttpResponseError,
    ResourceExistsError,
    ResourceNotFoundError,
)
from azure.core.rest import HttpResponse

from deployment_broker_client._models import Problem, Run, RunError

PROBLEM_CONTENT_TYPE = "application/problem+json"


class BrokerError(HttpResponseError):
    """The broker refused a call; `problem` is its RFC 9457 problem (None when the answer was not one, e.g. a proxy's
    error page)."""

    def __init__(self, message: str, *, response: HttpResponse, problem: Problem | None) -> None:
        super().__init__(message=message, response=response)
        self.problem = problem

    @property
    def run_id(self) -> str | None:
        """The run recording the refusal, when the broker recorded it (a request it rejected is a Rejected run)."""
        return self.problem.run_id if self.problem else None


class BrokerAuthenticationError(BrokerError, ClientAuthenticationError):
    """401: no bearer token, or one Easy Auth does not accept (wrong audience or tenant, expired)."""


class BrokerNotFoundError(BrokerError, ResourceNotFoundError):
    """404: no such deployment, run or workspace (or no hygiene scan yet)."""


class BrokerConflictError(BrokerError, ResourceExistsError):
    """409: the deployment exists as something else, its state does not allow the call, or a subscription is in use."""


_BY_STATUS: dict[int, type[BrokerError]] = {
    401: BrokerAuthenticationError,
    404: BrokerNotFoundError,
    409: BrokerConflictError,
}


class RunUnsuccessfulError(HttpResponseError):
    """A run the poller followed ended Rejected or Failed; `run` is its final record and `error` its reason."""

    def __init__(self, run: Run, *, response: HttpResponse) -> None:
        reason = f"{run.error.code}: {run.error.message}" if run.error else "no reason recorded"
        # Not handed to HttpResponseError: that 200 is no error answer, and it would read the run's `error` as OData.
        super().__init__(message=f"Run {run.id} ended {run.status} ({reason})")
        self.response = response
        self.run = run
        self.run_error: RunError | None = run.error


def problem_of(response: HttpResponse) -> Problem | None:
    """The response's RFC 9457 problem, or None when its body is not one."""
    try:
        body: Any = response.json()
    except (ValueError, json.JSONDecodeError):
        return None
    if not isinstance(body, dict) or ("type" not in body and not isinstance(body.get("status"), int)):
        return None
    return Problem.from_dict(body)


def error_from(response: HttpResponse) -> BrokerError:
    """The BrokerError subclass for an error response, with its problem and a message a person can act on."""
    problem = problem_of(response)
    kind = _BY_STATUS.get(response.status_code, BrokerError)
    if problem is None:
        message = f"({response.status_code}) {response.reason or 'error'}: {response.text()[:300]}".rstrip(": ")
    else:
        message = f"({response.status_code}) {problem.slug}: {problem.detail or problem.title or ''}".rstrip(": ")
    return kind(message, response=response, problem=problem)
