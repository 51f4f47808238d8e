"""The polling method behind `begin_deploy` and `begin_delete`: follow the run, then read the deployment it left.

The broker answers a request it starts (or joins) with `202`, the run as the body and `Operation-Location` naming
the run; the run is the status monitor, polled until it ends. A run that ends Succeeded or Deleted completes the
poller with the deployment (the run's `resourceLocation`, else the answer's `Location`); one that ends Rejected or
Failed raises RunUnsuccessfulError carrying the run. A request the broker answers without a run (`200` with the
deployment: Ready as asked, or already deleted) completes the poller at once. A run waiting in `PendingApproval`
is polled like any other status: it moves on when an approver decides.
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from azure.core.pipeline import PipelineResponse
from azure.core.polling import PollingMethod
from azure.core.rest import HttpRequest, HttpResponse

from deployment_broker_client._exceptions import RunUnsuccessfulError, error_from
from deployment_broker_client._models import (
    UNSUCCESSFUL_RUN_STATUSES,
    Deployment,
    DeploymentPhase,
    Run,
    RunStatus,
)

OPERATION_LOCATION = "Operation-Location"
LOCATION = "Location"
IN_PROGRESS = "InProgress"
ProgressHook = Callable[[Run], None]
Deserialize = Callable[[HttpResponse], Deployment]


@dataclass(frozen=True)
class _Resumed:
    """Where a poller restored from a continuation token picks up: the run to follow and the deployment it makes."""

    operation_location: str | None
    location: str | None


def is_run(body: Any) -> bool:
    """Whether a JSON body is a run (a status monitor) rather than a deployment: a run's status is a string."""
    return isinstance(body, Mapping) and isinstance(body.get("status"), str) and "steps" in body


class RunPollingMethod(PollingMethod[Deployment]):
    """Polls `Operation-Location` every `polling_interval` seconds (or the broker's Retry-After) until the run ends.

    `progress_hook`, when given, is called from the polling thread with each run record whose status or steps
    changed, starting with the first; `latest_run` is the latest record seen.
    """

    def __init__(
        self, *, api_base: str, polling_interval: float = 1.0, progress_hook: ProgressHook | None = None
    ) -> None:
        self._api_base = api_base
        self._interval = polling_interval
        self._progress = progress_hook
        self._client: Any = None
        self._deserialize: Deserialize | None = None
        self._operation_location: str | None = None
        self._location: str | None = None
        self._run: Run | None = None
        self._resource: Deployment | None = None
        self._last_response: HttpResponse | None = None
        self._delay = polling_interval

    @property
    def latest_run(self) -> Run | None:
        """The latest record of the run being followed; None for a request answered at once by its deployment."""
        return self._run

    def initialize(self, client: Any, initial_response: Any, deserialization_callback: Deserialize) -> None:
        self._client = client
        self._deserialize = deserialization_callback
        if isinstance(initial_response, _Resumed):
            self._operation_location, self._location = initial_response.operation_location, initial_response.location
            return
        response = _http_response(initial_response)
        self._last_response = response
        self._delay = _retry_after(response) or self._interval
        self._operation_location = response.headers.get(OPERATION_LOCATION)
        self._location = response.headers.get(LOCATION)
        body = response.json()
        if is_run(body):
            if not self._operation_location:
                raise ValueError("The broker answered with a run but no Operation-Location header to poll.")
            self._observe(Run.from_dict(body))
        else:
            self._resource = deserialization_callback(response)

    def status(self) -> str:
        if self._run is not None:
            return str(self._run.status)
        if self._resource is not None:
            return RunStatus.DELETED if self._resource.status.phase == DeploymentPhase.DELETED else RunStatus.SUCCEEDED
        return IN_PROGRESS

    def finished(self) -> bool:
        return self._resource is not None

    def resource(self) -> Deployment:
        if self._resource is None:
            raise RuntimeError("The operation has not completed; wait for the poller first.")
        return self._resource

    def get_continuation_token(self) -> str:
        state = {"operationLocation": self._operation_location, "location": self._location}
        return base64.urlsafe_b64encode(json.dumps(state).encode()).decode()

    @classmethod
    def from_continuation_token(cls, continuation_token: str, **kwargs: Any) -> tuple[Any, _Resumed, Deserialize]:
        try:
            state = json.loads(base64.urlsafe_b64decode(continuation_token.encode()))
            resumed = _Resumed(state["operationLocation"], state["location"])
        except (ValueError, KeyError, TypeError) as error:
            raise ValueError("Not a continuation token of this client's pollers.") from error
        return kwargs["client"], resumed, kwargs["deserialization_callback"]

    def run(self) -> None:
        """Poll until the run ends, then read the deployment; raises RunUnsuccessfulError on Rejected or Failed."""
        if self._operation_location is not None:
            run = self._run or self._refresh()
            while not run.is_terminal:
                time.sleep(self._delay)
                run = self._refresh()
            if run.status in UNSUCCESSFUL_RUN_STATUSES:
                assert self._last_response is not None
                raise RunUnsuccessfulError(run, response=self._last_response)
        assert self._deserialize is not None
        self._resource = self._deserialize(self._get(self._resource_location()))

    def _refresh(self) -> Run:
        assert self._operation_location is not None
        response = self._get(self._operation_location)
        self._delay = _retry_after(response) or self._interval
        run = Run.from_dict(response.json())
        self._observe(run)
        return run

    def _observe(self, run: Run) -> None:
        before = self._run
        self._run = run
        changed = before is None or (before.status, len(before.steps)) != (run.status, len(run.steps))
        if changed and self._progress is not None:
            self._progress(run)

    def _resource_location(self) -> str:
        run = self._run
        if run is not None and run.resource_location:
            return run.resource_location
        if self._location:
            return self._location
        if run is not None and run.deployment_id:
            return f"{self._api_base}/deployments/{quote(run.deployment_id, safe='')}"
        raise ValueError("The broker named no deployment for this operation.")

    def _get(self, url: str) -> HttpResponse:
        response = self._client.send_request(HttpRequest("GET", url))
        self._last_response = response
        if response.status_code >= 400:
            raise error_from(response)
        return response


def _http_response(response: Any) -> HttpResponse:
    return response.http_response if isinstance(response, PipelineResponse) else response


def _retry_after(response: HttpResponse) -> float | None:
    value = (response.headers.get("Retry-After") or "").strip()
    return float(value) if value.isdigit() else None
