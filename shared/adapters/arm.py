"""Azure Resource Manager over azure-mgmt-core's pipeline: the calls the ML SDK cannot make without blocking.

Writes return as soon as ARM accepts them, with the operation URL to poll later from a queue message, so no
function ever sleeps on a long-running operation. Nor on throttling: the pipeline retries only connection failures
(briefly); a 429 or 5xx comes back at once as AzureCallError with ARM's Retry-After, for the step engine to re-queue
(or intake to answer 503 with it). Every write's answer tells the write pacer (shared/pacing.py) what ARM has left.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

from azure.core.configuration import Configuration
from azure.core.credentials import TokenCredential
from azure.core.exceptions import ServiceRequestError, ServiceResponseError
from azure.core.pipeline import policies
from azure.core.rest import HttpRequest, HttpResponse
from azure.mgmt.core import ARMPipelineClient
from azure.mgmt.core.policies import ARMHttpLoggingPolicy

from shared.azure_errors import AzureCallError
from shared.pacing import WritePacer

LOGGER = logging.getLogger(__name__)
ARM_SCOPE = "https://management.azure.com/.default"
TERMINAL_OPERATION_STATES = frozenset({"succeeded", "failed", "canceled"})
REMAINING_WRITES = "x-ms-ratelimit-remaining-subscription-writes"
THROTTLED = 429
_SUBSCRIPTION = re.compile(r"/subscriptions/([^/?#]+)", re.IGNORECASE)


@dataclass(frozen=True)
class AcceptedOperation:
    """ARM accepted a write; `operation_url` is None when it finished synchronously."""

    status: int
    resource: dict[str, Any] | None
    operation_url: str | None
    retry_after: float | None


@dataclass(frozen=True)
class OperationStatus:
    status: str
    error: dict[str, Any] | None
    retry_after: float | None

    @property
    def done(self) -> bool:
        return self.status.lower() in TERMINAL_OPERATION_STATES

    @property
    def succeeded(self) -> bool:
        return self.status.lower() == "succeeded"


class ArmClient:
    """Thin ARM client: JSON in, JSON out, Azure's errors as AzureCallError."""

    def __init__(
        self, base_url: str, credential: TokenCredential, *, retry_total: int = 2, pacer: WritePacer | None = None
    ) -> None:
        config = Configuration()
        # retry_status=0: no answer is retried in the pipeline, so nothing sleeps on a Retry-After in a function.
        config.retry_policy = policies.RetryPolicy(retry_total=retry_total, retry_status=0, retry_backoff_max=4)
        config.authentication_policy = policies.BearerTokenCredentialPolicy(credential, ARM_SCOPE)
        config.logging_policy = ARMHttpLoggingPolicy()
        self._base_url = base_url.rstrip("/")
        self._client = ARMPipelineClient(base_url=self._base_url, config=config)
        self._pacer = pacer

    def close(self) -> None:
        self._client.close()

    def get(self, path: str, api_version: str, *, params: dict[str, str] | None = None) -> dict[str, Any]:
        response = self._send("GET", path, api_version, params=params)
        return _json(response)

    def list(self, path: str, api_version: str, *, params: dict[str, str] | None = None) -> Iterator[dict]:
        """Every item of a paged ARM list, following absolute `nextLink`s."""
        page = self.get(path, api_version, params=params)
        while True:
            yield from page.get("value", [])
            next_link = page.get("nextLink")
            if not next_link:
                return
            page = _json(self._send_url("GET", next_link))

    def begin_put(self, path: str, api_version: str, body: dict[str, Any]) -> AcceptedOperation:
        return self._accepted(self._send("PUT", path, api_version, body=body))

    def begin_delete(self, path: str, api_version: str) -> AcceptedOperation:
        try:
            return self._accepted(self._send("DELETE", path, api_version))
        except AzureCallError as error:
            if error.not_found:
                return AcceptedOperation(204, None, None, None)
            raise

    def post(self, path: str, api_version: str, body: dict[str, Any] | None = None) -> AcceptedOperation:
        return self._accepted(self._send("POST", path, api_version, body=body))

    def probe(self) -> None:
        """Raise unless ARM answers an authenticated read: the Reader role definition, which any principal may see."""
        self.get(
            "/providers/Microsoft.Authorization/roleDefinitions",
            "2022-04-01",
            params={"$filter": "roleName eq 'Reader'"},
        )

    def get_operation(self, operation_url: str) -> OperationStatus:
        response = self._send_url("GET", operation_url)
        body = _json(response) if response.text() else {}
        # A Location-style poll answers 202 while running and 200/204 when done, without a status field.
        status = body.get("status") or ("InProgress" if response.status_code == 202 else "Succeeded")
        return OperationStatus(status, body.get("error"), _retry_after(response))

    def _send(
        self,
        method: str,
        path: str,
        api_version: str,
        *,
        body: Any = None,
        params: dict[str, str] | None = None,
    ) -> HttpResponse:
        query = {"api-version": api_version, **(params or {})}
        return self._send_url(method, f"{self._base_url}{path}", params=query, body=body)

    def _send_url(
        self, method: str, url: str, *, params: dict[str, str] | None = None, body: Any = None
    ) -> HttpResponse:
        request = HttpRequest(method, url, params=params, json=body)
        try:
            response = self._client.send_request(request)
        except (ServiceRequestError, ServiceResponseError) as error:
            raise AzureCallError(None, "ConnectionFailed", str(error).splitlines()[0]) from error
        self._tell_pacer(url, response)
        if response.status_code >= 400:
            raise _error_from(response)
        return response

    def _tell_pacer(self, url: str, response: HttpResponse) -> None:
        remaining = _count(response.headers.get(REMAINING_WRITES))
        subscription = _SUBSCRIPTION.search(url)
        if self._pacer is None or remaining is None or subscription is None:
            return
        self._pacer.observe(subscription.group(1), remaining, spent=response.status_code != THROTTLED)

    @staticmethod
    def _accepted(response: HttpResponse) -> AcceptedOperation:
        operation_url = response.headers.get("Azure-AsyncOperation") or response.headers.get("Location")
        resource = _json(response) if response.text() else None
        return AcceptedOperation(response.status_code, resource, operation_url, _retry_after(response))


def _json(response: HttpResponse) -> dict[str, Any]:
    try:
        return response.json()
    except (json.JSONDecodeError, ValueError) as error:
        raise AzureCallError(
            response.status_code, "InvalidResponse", "ARM answered with a body that is not JSON"
        ) from error


def _retry_after(response: HttpResponse) -> float | None:
    """The poll or retry delay ARM asks for, in seconds: `retry-after-ms` / `x-ms-retry-after-ms` (milliseconds,
    the finer grain, so they win), else `Retry-After` (whole seconds as ARM sends it on 201/202 and 429, or an
    HTTP date). None when absent or not positive (ARM means "use your default" then)."""
    headers = response.headers
    for name in ("retry-after-ms", "x-ms-retry-after-ms"):
        seconds = _number(headers.get(name), scale=1000)
        if seconds is not None:
            return seconds
    value = headers.get("Retry-After")
    seconds = _number(value, scale=1)
    if seconds is None and value:
        seconds = _seconds_until(value)
    return seconds


def _number(value: str | None, *, scale: int) -> float | None:
    if not value:
        return None
    try:
        seconds = float(value) / scale
    except ValueError:
        return None
    return seconds if seconds > 0 else None


def _count(value: str | None) -> int | None:
    try:
        count = int(value or "")
    except ValueError:
        return None
    return count if count >= 0 else None


def _seconds_until(http_date: str) -> float | None:
    try:
        moment = parsedate_to_datetime(http_date)
    except (TypeError, ValueError):
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    seconds = (moment - datetime.now(UTC)).total_seconds()
    return seconds if seconds > 0 else None


def _error_from(response: HttpResponse) -> AzureCallError:
    try:
        error = response.json().get("error") or {}
    except (json.JSONDecodeError, ValueError, AttributeError):
        error = {}
    return AzureCallError(
        response.status_code,
        error.get("code") or f"Http{response.status_code}",
        error.get("message") or response.reason or "",
        retry_after=_retry_after(response),
        target=error.get("target"),
    )
