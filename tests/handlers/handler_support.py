"""An in-memory stand-in for the deployment service, and helpers to build trigger inputs as the host does."""

from __future__ import annotations

import base64
import functools
import inspect
import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

import azure.functions as func
from azure.functions.queue import QueueMessage

from shared.access import Caller
from shared.deployment import Deployment, DeploymentRequester, DeploymentSpec, Phase, deployment_id
from shared.deployments.service import IdempotencyConflictError
from shared.deployments.visibility import VisiblePage
from shared.naming import derive_endpoint_name
from shared.problems import Problem
from shared.requests import DeploymentRequest
from shared.run_outcomes import Submission
from shared.runs import EndpointInfo, RunError, RunRecord, RunRequester, RunStatus, SecretIds

ORIGIN = "https://broker.example.net"
CALLER = "3f2504e0-4f89-41d3-9a0c-0305e82c3301"
SUBSCRIPTION = "00000000-0000-0000-0000-0000000000aa"
WORKSPACE = (
    f"/subscriptions/{SUBSCRIPTION}/resourceGroups/rg-ai/providers/Microsoft.MachineLearningServices/workspaces/proj-a"
)
MODEL = "azureml://registries/azureml-meta/models/Llama-3.3-70B-Instruct"
OBJECT_ID_CLAIM = "http://schemas.microsoft.com/identity/claims/objectidentifier"
STARTED = datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC)
VAULT = "https://kv-broker.vault.azure.net/secrets"


@dataclass
class FakeDeploymentService:
    """Keeps runs and deployments in dicts and answers as the real service does, in miniature:

    - a request for a deployment that does not exist (or is gone) starts a run and makes the deployment (created);
    - one for a deployment whose run is in flight joins that run (joined);
    - one for a Ready deployment is answered by it (ready);
    - `reject_with` makes submit answer as a failed preflight does (a Rejected run recording the problem);
    - a retry with the same Idempotency-Key gets the first answer (replayed), another body a 422;
    - `failure` is raised by every call; `finish(run_id)` ends a run as the workflow would.
    """

    runs: dict[str, RunRecord] = field(default_factory=dict)
    deployments: dict[str, Deployment] = field(default_factory=dict)
    calls: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    reject_with: Problem | None = None
    failure: Exception | None = None
    availability_answer: dict[str, Any] = field(default_factory=lambda: {"modelId": MODEL, "soldDirectly": False})
    _keys: dict[tuple[str, str], tuple[DeploymentRequest, str | None, str | None]] = field(default_factory=dict)

    def _record(self, operation: str, **arguments: Any) -> None:
        self.calls.append((operation, arguments))
        if self.failure is not None:
            raise self.failure

    def _now(self) -> datetime:
        return STARTED + timedelta(seconds=len(self.runs))

    # -- intake ----------------------------------------------------------------------------------------------------

    def submit(
        self,
        request: DeploymentRequest,
        *,
        caller: str,
        idempotency_key: str | None = None,
        ticket: str | None = None,
    ) -> Submission:
        self._record("submit", request=request, caller=caller, idempotency_key=idempotency_key, ticket=ticket)
        return self._submit(request, caller=caller, idempotency_key=idempotency_key, ticket=ticket)

    def _submit(
        self, request: DeploymentRequest, *, caller: str, idempotency_key: str | None, ticket: str | None
    ) -> Submission:
        if idempotency_key and (caller, idempotency_key) in self._keys:
            return self._replay(request, *self._keys[caller, idempotency_key])
        at = self._now()
        run = RunRecord.new(
            run_id=f"run-{len(self.runs) + 1}",
            caller=caller,
            request=request,
            at=at,
            ticket=ticket,
            idempotency_key=idempotency_key,
        ).transition(RunStatus.VALIDATING, at=at)
        the_id = deployment_id(request.workspace, request.model)
        deployment = self.deployments.get(the_id)
        if self.reject_with is not None:
            problem = self.reject_with
            error = RunError(code=problem.kind.slug, message=problem.detail or problem.kind.title)
            self.runs[run.id] = run.transition(RunStatus.REJECTED, at=at, error=error)
            return self._answer(
                idempotency_key, caller, request, Submission("rejected", run=self.runs[run.id], problem=problem)
            )
        if deployment is not None and not deployment.is_gone:
            current = self.runs.get(deployment.status.current_run_id or "")
            if current is not None and not current.is_terminal:
                joiner = RunRequester(caller=caller, ticket=run.ticket, at=at)
                self.runs[current.id] = current.with_changes(at=at, joined=(*current.joined, joiner))
                submission = Submission("joined", run=self.runs[current.id], deployment=deployment)
                return self._answer(idempotency_key, caller, request, submission)
            if deployment.status.phase is Phase.READY:
                requester = DeploymentRequester(caller=caller, ticket=run.ticket, outcome="ready", at=at)
                self.deployments[the_id] = deployment.with_request(requester, at=at)
                submission = Submission("ready", deployment=self.deployments[the_id])
                return self._answer(idempotency_key, caller, request, submission)
        return self._answer(idempotency_key, caller, request, self._start(run, request, deployment, "deploy"))

    def _start(
        self, run: RunRecord, request: DeploymentRequest, deployment: Deployment | None, operation: str
    ) -> Submission:
        at = run.updated_at
        endpoint_name = request.endpoint_name or derive_endpoint_name(request.model, request.workspace)
        spec = DeploymentSpec(
            workspace_id=request.workspace_id,
            model_id=request.model_id,
            endpoint_name=endpoint_name,
            content_safety=request.content_safety,
            tags=request.tags,
        )
        outcome = "created" if operation == "deploy" else "repair"
        requester = DeploymentRequester(caller=run.caller, ticket=run.ticket, run_id=run.id, outcome=outcome, at=at)
        if deployment is None:
            claimed = Deployment.new(spec, run_id=run.id, requester=requester, at=at)
        elif deployment.is_gone:
            claimed = deployment.recreated(spec, run_id=run.id, requester=requester, at=at)
        else:
            claimed = deployment.with_request(requester, at=at).changed(
                at=at, phase=Phase.PROVISIONING, current_run_id=run.id
            )
        endpoint = EndpointInfo(name=endpoint_name, id=request.workspace.serverless_endpoint_id(endpoint_name))
        started = run.model_copy(update={"operation": operation, "deployment_id": claimed.id}).transition(
            RunStatus.PROVISIONING, at=at, endpoint=endpoint
        )
        self.runs[started.id] = started
        self.deployments[claimed.id] = claimed
        return Submission("created" if operation == "deploy" else "repair", run=started, deployment=claimed)

    def _answer(self, key: str | None, caller: str, request: DeploymentRequest, submission: Submission) -> Submission:
        if key:
            run_id = submission.run.id if submission.run else None
            the_id = submission.deployment.id if submission.deployment else None
            self._keys[caller, key] = (request, run_id, the_id)
        return submission

    def _replay(self, request: DeploymentRequest, first: DeploymentRequest, run_id: str | None, the_id: str | None):
        if request != first:
            raise IdempotencyConflictError(Problem.of("idempotency-conflict", "used before", runId=run_id))
        run = self.runs.get(run_id) if run_id else None
        deployment = self.deployments.get(the_id) if the_id else None
        if run is not None and run.status is RunStatus.REJECTED:
            assert run.error is not None
            return Submission("rejected", run=run, problem=Problem.of(run.error.code, run.error.message))
        return Submission("replayed", run=run, deployment=deployment)

    def repair(self, the_id: str, *, caller: str) -> Submission | None:
        self._record("repair", the_id=the_id, caller=caller)
        deployment = self.deployments.get(the_id)
        if deployment is None:
            return None
        if deployment.status.phase in (Phase.DELETED, Phase.DELETING):
            problem = Problem.of("deployment-state-conflict", f"{the_id} is {deployment.status.phase}")
            return Submission("rejected", deployment=deployment, problem=problem)
        if deployment.status.phase is Phase.READY:
            return Submission("ready", deployment=deployment)
        at = self._now()
        request = deployment.spec.to_request()
        run = RunRecord.new(run_id=f"run-{len(self.runs) + 1}", caller=caller, request=request, at=at)
        return self._start(run.transition(RunStatus.VALIDATING, at=at), request, deployment, "repair")

    def finish(self, run_id: str) -> RunRecord:
        """End run `run_id` Succeeded and its deployment Ready, as the workflow's last step does."""
        run = self.runs[run_id]
        at = run.updated_at + timedelta(minutes=5)
        assert run.endpoint is not None
        secret_ids = SecretIds(
            primary=f"{VAULT}/{run.endpoint.name}-primary/1", secondary=f"{VAULT}/{run.endpoint.name}-secondary/1"
        )
        done = run.transition(RunStatus.STORING_KEYS, at=at).transition(
            RunStatus.VERIFYING, at=at, secret_ids=secret_ids
        )
        done = done.transition(RunStatus.SUCCEEDED, at=at)
        self.runs[run_id] = done
        if run.deployment_id:
            self.deployments[run.deployment_id] = self.deployments[run.deployment_id].run_finished(done, at=at)
        return done

    # -- reads -----------------------------------------------------------------------------------------------------

    # The caller is recorded, not judged: the real service's visibility rule has tests of its own.

    def get(self, run_id: str, *, caller: Caller) -> RunRecord | None:
        self._record("get", run_id=run_id, caller=caller)
        return self.runs.get(run_id)

    def get_deployment(self, the_id: str, *, caller: Caller) -> Deployment | None:
        self._record("get_deployment", the_id=the_id, caller=caller)
        return self.deployments.get(the_id)

    def list(
        self,
        *,
        caller: Caller,
        workspace_id: str | None,
        status: str | None,
        ticket: str | None,
        deployment_id: str | None,
        page_size: int,
        continuation_token: str | None,
    ) -> VisiblePage[RunRecord]:
        self._record(
            "list",
            caller=caller,
            workspace_id=workspace_id,
            status=status,
            ticket=ticket,
            deployment_id=deployment_id,
            page_size=page_size,
            continuation_token=continuation_token,
        )
        matching = [
            run
            for run in self.runs.values()
            if (status is None or run.status.value == status)
            and (ticket is None or ticket in {requester.ticket for requester in run.requesters})
            and (workspace_id is None or run.request.workspace_id.lower() == workspace_id.lower())
            and (deployment_id is None or run.deployment_id == deployment_id)
        ]
        page, token = _page(matching, page_size, continuation_token)
        return VisiblePage(page, token)

    def list_deployments(
        self,
        *,
        caller: Caller,
        workspace_id: str | None,
        model_id: str | None,
        phase: str | None,
        ticket: str | None,
        page_size: int,
        continuation_token: str | None,
    ) -> VisiblePage[Deployment]:
        self._record(
            "list_deployments",
            caller=caller,
            workspace_id=workspace_id,
            model_id=model_id,
            phase=phase,
            ticket=ticket,
            page_size=page_size,
            continuation_token=continuation_token,
        )
        matching = [
            deployment
            for deployment in self.deployments.values()
            if (phase is None or deployment.status.phase.value == phase)
            and (ticket is None or ticket in {requester.ticket for requester in deployment.requests})
            and (workspace_id is None or deployment.spec.workspace_id.lower() == workspace_id.lower())
            and (model_id is None or deployment.spec.model_id.lower() == model_id.lower())
        ]
        page, token = _page(matching, page_size, continuation_token)
        return VisiblePage(page, token)

    # -- queue and worker ------------------------------------------------------------------------------------------

    def intake_message(self, body: bytes | str, *, message_id: str) -> Submission | None:
        self._record("intake_message", body=body, message_id=message_id)
        try:
            document = json.loads(body)
            request = DeploymentRequest.from_wire({k: v for k, v in document.items() if k != "requestedBy"})
        except ValueError:  # JSON, UTF-8 and validation errors alike: the real service poisons the message
            return None
        return self._submit(
            request, caller=document["requestedBy"], idempotency_key=None, ticket=document.get("ticket")
        )

    def advance(self, work_message: str) -> None:
        self._record("advance", work_message=work_message)

    def availability(self, model_id: str, workspace_id: str | None) -> dict[str, Any]:
        self._record("availability", model_id=model_id, workspace_id=workspace_id)
        return self.availability_answer

    def operations(self) -> list[str]:
        return [operation for operation, _ in self.calls]


def _page(items: list[Any], page_size: int, token: str | None) -> tuple[list[Any], str | None]:
    start = 0
    if token is not None:
        if not token.startswith("offset-"):
            raise ValueError("continuationToken is not one this service issued")
        start = int(token.removeprefix("offset-"))
    end = start + page_size
    return items[start:end], f"offset-{end}" if end < len(items) else None


def user_function(builder: Any) -> Callable[..., Any]:
    """The Python function a blueprint decorator registered, as the worker calls it: with no invocation context (so
    no trace to continue) for a function that takes one."""
    function = builder.build().get_user_function()
    if "context" in inspect.signature(function).parameters:
        return functools.partial(function, context=None)
    return function


def principal_header(object_id: str = CALLER, *, claim: str = OBJECT_ID_CLAIM, roles: Iterable[str] = ()) -> str:
    """The principal Easy Auth injects for `object_id`, carrying the app `roles` its token holds."""
    app_roles = [{"typ": "roles", "val": role} for role in roles]
    principal = {
        "auth_typ": "aad",
        "claims": [{"typ": "name", "val": "Ada"}, {"typ": claim, "val": object_id}, *app_roles],
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
    headers: Mapping[str, str | None] | None = None,
    params: Mapping[str, str] | None = None,
    route_params: Mapping[str, str] | None = None,
) -> func.HttpRequest:
    """A request as the host builds it: absolute URL with its query string, and the query already parsed. A body
    goes with `Content-Type: application/json`, as an HTTP client sends JSON, unless `headers` names another one
    (`Content-Type: None` sends none)."""
    query = f"?{urlencode(params)}" if params else ""
    data = raw_body if raw_body is not None else (b"" if body is None else json.dumps(body).encode())
    sent = dict(headers or {})
    if data and not any(name.lower() == "content-type" for name in sent):
        sent["Content-Type"] = "application/json"
    sent = {name: value for name, value in sent.items() if value is not None}
    return func.HttpRequest(
        method,
        f"{ORIGIN}{path}{query}",
        headers=sent,
        params=dict(params or {}),
        route_params=dict(route_params or {}),
        body=data,
    )


def queue_message(body: bytes, *, message_id: str = "msg-1", dequeue_count: int = 1) -> QueueMessage:
    return QueueMessage(id=message_id, body=body, dequeue_count=dequeue_count)


def json_body(response: func.HttpResponse) -> Any:
    return json.loads(response.get_body())


AUTHENTICATED_HEADERS = {"X-MS-CLIENT-PRINCIPAL": principal_header()}
