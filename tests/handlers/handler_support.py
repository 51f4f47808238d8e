"""An in-memory stand-in for the deployment service, and helpers to build trigger inputs as the host does."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

import azure.functions as func
from azure.functions.queue import QueueMessage

from shared.deployments.service import IdempotencyConflictError, Submission
from shared.problems import Problem
from shared.requests import DeploymentRequest
from shared.runs import RunError, RunRecord, RunStatus

ORIGIN = "https://broker.example.net"
CALLER = "3f2504e0-4f89-41d3-9a0c-0305e82c3301"
SUBSCRIPTION = "00000000-0000-0000-0000-0000000000aa"
WORKSPACE = (
    f"/subscriptions/{SUBSCRIPTION}/resourceGroups/rg-ai/providers/Microsoft.MachineLearningServices/workspaces/proj-a"
)
MODEL = "azureml://registries/azureml-meta/models/Llama-3.3-70B-Instruct"
OBJECT_ID_CLAIM = "http://schemas.microsoft.com/identity/claims/objectidentifier"
STARTED = datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC)


@dataclass(frozen=True)
class Page:
    runs: list[RunRecord]
    continuation_token: str | None


@dataclass
class FakeDeploymentService:
    """Keeps runs in a dict; `reject_with` makes submit answer as a failed preflight does; `failure` is raised."""

    runs: dict[str, RunRecord] = field(default_factory=dict)
    calls: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    reject_with: Problem | None = None
    failure: Exception | None = None
    availability_answer: dict[str, Any] = field(default_factory=lambda: {"modelId": MODEL, "soldDirectly": False})
    _keys: dict[tuple[str, str], str] = field(default_factory=dict)

    def _record(self, operation: str, **arguments: Any) -> None:
        self.calls.append((operation, arguments))
        if self.failure is not None:
            raise self.failure

    def submit(
        self,
        request: DeploymentRequest,
        *,
        caller: str,
        idempotency_key: str | None = None,
        ticket: str | None = None,
    ) -> Submission:
        self._record("submit", request=request, caller=caller, idempotency_key=idempotency_key, ticket=ticket)
        if idempotency_key and (caller, idempotency_key) in self._keys:
            earlier = self.runs[self._keys[caller, idempotency_key]]
            if earlier.request != request:
                raise IdempotencyConflictError(Problem.of("idempotency-conflict", "used before", runId=earlier.id))
            return Submission(earlier, created=False, problem=None)
        at = STARTED + timedelta(seconds=len(self.runs))
        run = RunRecord.new(
            run_id=f"run-{len(self.runs) + 1}", caller=caller, request=request, at=at, idempotency_key=idempotency_key
        ).transition(RunStatus.VALIDATING, at=at)
        problem = self.reject_with
        if problem is not None:
            error = RunError(code=problem.kind.slug, message=problem.detail or problem.kind.title)
            run = run.transition(RunStatus.REJECTED, at=at, error=error)
        self.runs[run.id] = run
        if idempotency_key:
            self._keys[caller, idempotency_key] = run.id
        return Submission(run, created=True, problem=problem)

    def get(self, run_id: str) -> RunRecord | None:
        self._record("get", run_id=run_id)
        return self.runs.get(run_id)

    def list(
        self,
        *,
        workspace_id: str | None,
        status: str | None,
        ticket: str | None,
        page_size: int,
        continuation_token: str | None,
    ) -> Page:
        self._record(
            "list",
            workspace_id=workspace_id,
            status=status,
            ticket=ticket,
            page_size=page_size,
            continuation_token=continuation_token,
        )
        start = 0
        if continuation_token is not None:
            if not continuation_token.startswith("offset-"):
                raise ValueError("continuationToken is not one this service issued")
            start = int(continuation_token.removeprefix("offset-"))
        matching = [
            run
            for run in self.runs.values()
            if (status is None or run.status.value == status)
            and (ticket is None or run.ticket == ticket)
            and (workspace_id is None or run.request.workspace_id.lower() == workspace_id.lower())
        ]
        end = start + page_size
        return Page(matching[start:end], f"offset-{end}" if end < len(matching) else None)

    def intake_message(self, body: str, *, message_id: str) -> Submission | None:
        self._record("intake_message", body=body, message_id=message_id)
        try:
            document = json.loads(body)
            request = DeploymentRequest.from_wire({k: v for k, v in document.items() if k != "requestedBy"})
        except ValueError:
            return None
        return self.submit(request, caller=document["requestedBy"], ticket=document.get("ticket"))

    def advance(self, work_message: str) -> None:
        self._record("advance", work_message=work_message)

    def availability(self, model_id: str, workspace_id: str | None) -> dict[str, Any]:
        self._record("availability", model_id=model_id, workspace_id=workspace_id)
        return self.availability_answer

    def operations(self) -> list[str]:
        return [operation for operation, _ in self.calls]


def user_function(builder: Any) -> Callable[..., Any]:
    """The Python function a blueprint decorator registered, as the worker calls it."""
    return builder.build().get_user_function()


def principal_header(object_id: str = CALLER, *, claim: str = OBJECT_ID_CLAIM) -> str:
    principal = {
        "auth_typ": "aad",
        "claims": [{"typ": "name", "val": "Ada"}, {"typ": claim, "val": object_id}],
        "name_typ": "name",
        "role_typ": "roles",
    }
    return base64.b64encode(json.dumps(principal).encode()).decode()


def http_request(
    method: str,
    path: str,
    *,
    body: object = None,
    raw_body: bytes | None = None,
    headers: Mapping[str, str] | None = None,
    params: Mapping[str, str] | None = None,
    route_params: Mapping[str, str] | None = None,
) -> func.HttpRequest:
    """A request as the host builds it: absolute URL with its query string, and the query already parsed."""
    query = f"?{urlencode(params)}" if params else ""
    data = raw_body if raw_body is not None else (b"" if body is None else json.dumps(body).encode())
    return func.HttpRequest(
        method,
        f"{ORIGIN}{path}{query}",
        headers=dict(headers or {}),
        params=dict(params or {}),
        route_params=dict(route_params or {}),
        body=data,
    )


def queue_message(body: bytes, *, message_id: str = "msg-1", dequeue_count: int = 1) -> QueueMessage:
    return QueueMessage(id=message_id, body=body, dequeue_count=dequeue_count)


def json_body(response: func.HttpResponse) -> Any:
    return json.loads(response.get_body())


AUTHENTICATED_HEADERS = {"X-MS-CLIENT-PRINCIPAL": principal_header()}
