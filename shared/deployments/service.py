"""The deployment service the handlers call: intake (HTTP and queue), reads, worker steps, availability."""

from __future__ import annotations

import hashlib
import json
import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from pydantic import ValidationError

from shared.azure_errors import AzureCallError, RecordExistsError
from shared.azure_ids import WorkspaceId
from shared.catalog import ModelCatalog
from shared.deployments.preflight import (
    DeploymentPlan,
    PreflightContext,
    PreflightPolicy,
    PreflightResult,
    run_preflight,
)
from shared.deployments.work import LIFECYCLE_STEPS, WorkItem
from shared.deployments.workflow import SUCCEEDED, Workflow
from shared.events import deployment_event, malformed_request_rejected_event
from shared.model_ids import parse_model_id
from shared.ports import AuthorizationPort, Endpoint, MachineLearningPort, MessageQueuePort, RunRepositoryPort
from shared.problems import Problem
from shared.requests import DeploymentRequest, QueueDeploymentRequest, validation_problems
from shared.runs import CrossRegion, EndpointInfo, RunError, RunRecord, RunStatus
from shared.telemetry import BROKER_TELEMETRY, BrokerTelemetry

LOGGER = logging.getLogger(__name__)
# A concurrent request stores its run within milliseconds of claiming; a claim without a run after this is abandoned.
CLAIM_SETTLE_SECONDS = 3.0
CLAIM_POLL_SECONDS = 0.05


class IdempotencyConflictError(Exception):
    """The Idempotency-Key was used before, by the same caller, with a different request."""

    def __init__(self, problem: Problem) -> None:
        super().__init__(problem.detail)
        self.problem = problem


@dataclass(frozen=True)
class Submission:
    run: RunRecord
    created: bool
    problem: Problem | None


@dataclass(frozen=True)
class Queues:
    work: MessageQueuePort
    events: MessageQueuePort
    requests_poison: MessageQueuePort


class LifecycleHandler(Protocol):
    """Teardown and key rotation (shared/lifecycle), which share the request queue and the work queue."""

    def intake_delete(self, message: QueueDeploymentRequest, *, idempotency_key: str) -> Submission: ...
    def advance(self, item: WorkItem) -> None: ...


class DeploymentService:
    def __init__(
        self,
        *,
        runs: RunRepositoryPort,
        machine_learning: MachineLearningPort,
        authorization: AuthorizationPort,
        workflow: Workflow,
        queues: Queues,
        policy: PreflightPolicy,
        clock: Callable[[], datetime],
        new_id: Callable[[], str] = lambda: str(uuid.uuid4()),
        sleep: Callable[[float], None] = time.sleep,
        monotonic: Callable[[], float] = time.monotonic,
        lifecycle: LifecycleHandler | None = None,
        telemetry: BrokerTelemetry = BROKER_TELEMETRY,
    ) -> None:
        self._lifecycle = lifecycle
        self._telemetry = telemetry
        self._sleep = sleep
        self._monotonic = monotonic
        self._runs = runs
        self._ml = machine_learning
        self._authorization = authorization
        self._workflow = workflow
        self._queues = queues
        self._policy = policy
        self._clock = clock
        self._new_id = new_id

    @property
    def catalog(self) -> ModelCatalog:
        return self._policy.catalog

    @property
    def lifecycle(self) -> LifecycleHandler | None:
        return self._lifecycle

    def submit(
        self,
        request: DeploymentRequest,
        *,
        caller: str,
        idempotency_key: str | None = None,
        ticket: str | None = None,
    ) -> Submission:
        with self._telemetry.submit_span() as span:
            submission = self._submit(request, caller=caller, idempotency_key=idempotency_key, ticket=ticket)
            self._telemetry.describe_submission(
                span, submission.run.id, created=submission.created, problem=submission.problem
            )
            return submission

    def _submit(
        self, request: DeploymentRequest, *, caller: str, idempotency_key: str | None, ticket: str | None
    ) -> Submission:
        run_id = self._new_id()
        if idempotency_key:
            owner = self._runs.claim_idempotency_key(caller, idempotency_key, run_id)
            if owner != run_id:
                earlier = self._runs.get(owner)
                if earlier is not None:
                    return self._replay(earlier.run, request, idempotency_key)
                run_id = owner  # the first attempt claimed the key but never stored its run: finish its work

        run = RunRecord.new(
            run_id=run_id,
            caller=caller,
            request=request,
            at=self._clock(),
            ticket=ticket,
            idempotency_key=idempotency_key,
        ).transition(RunStatus.VALIDATING, at=self._clock())
        result, problem = self._preflight(request, caller)
        if problem is not None:
            return self._reject(run, problem)
        plan = result.plan
        assert plan is not None, "a passed preflight always has a plan"
        holder = self._claim_deployment(plan, run.id)
        if holder is not None and holder.operation == "delete":
            return self._reject(run, _torn_down_meanwhile(holder))
        if holder is not None:
            return Submission(holder, created=False, problem=None)
        next_status, detail = _first_status(plan, result.existing_endpoint)
        run = run.transition(
            next_status,
            at=self._clock(),
            detail=detail,
            endpoint=EndpointInfo(name=plan.endpoint_name, id=plan.endpoint_id),
        )
        if result.target is not None:
            run = run.with_changes(
                at=run.updated_at, cross_region=CrossRegion(hub_workspace_id=result.target.resource_id)
            )
        replay = self._create(run)
        if replay is not None:
            return replay
        self._workflow.start(run)
        self._queues.events.send(_accepted_event(run, self._clock()))
        return Submission(run, created=True, problem=None)

    def _preflight(self, request: DeploymentRequest, caller: str) -> tuple[PreflightResult, Problem | None]:
        context = PreflightContext(
            request=request,
            caller=caller,
            policy=self._policy,
            machine_learning=self._ml,
            authorization=self._authorization,
        )
        try:
            result = run_preflight(context)
        except AzureCallError as error:
            problem = _azure_refusal(error, request)
            if problem is None:
                raise
            return PreflightResult(problem, None, None, ()), problem
        return result, result.problem

    def _claim_deployment(self, plan: DeploymentPlan, run_id: str) -> RunRecord | None:
        """Claim the right to deploy `plan`; the run in flight that holds it instead, if any."""
        workspace_id, model_id = plan.workspace.resource_id, plan.model.normalized
        # Claim again under the same run id after losing a take-over race, so the run keeps its idempotency key.
        while (owner := self._runs.claim_deployment(workspace_id, model_id, run_id)) != run_id:
            holder = self._settled_run(owner)
            if holder is not None and not holder.run.is_terminal:
                return holder.run
            if self._runs.take_over_deployment(workspace_id, model_id, owner, run_id):
                break
        return None

    def _settled_run(self, run_id: str) -> Any:
        """The claim holder's stored run, allowing it the moment between claiming and storing its record.

        A holder still missing after that window crashed before storing its run, and its claim may be taken over.
        """
        deadline = self._monotonic() + CLAIM_SETTLE_SECONDS
        while (stored := self._runs.get(run_id)) is None and self._monotonic() < deadline:
            self._sleep(CLAIM_POLL_SECONDS)
        return stored

    def get(self, run_id: str) -> RunRecord | None:
        stored = self._runs.get(run_id)
        return stored.run if stored else None

    def list(
        self,
        *,
        workspace_id: str | None,
        status: str | None,
        ticket: str | None,
        page_size: int,
        continuation_token: str | None,
    ) -> Any:
        return self._runs.list(
            workspace_id=workspace_id,
            status=status,
            ticket=ticket,
            page_size=page_size,
            continuation_token=continuation_token,
        )

    def intake_message(self, body: str, *, message_id: str) -> Submission | None:
        """A `deployment-requests` message; a malformed one is poisoned at once, with a rejected event."""
        try:
            message = QueueDeploymentRequest.from_wire(json.loads(body))
        except (json.JSONDecodeError, ValidationError) as error:
            self._poison(body, message_id, error)
            return None
        # The same message delivered twice, or re-sent verbatim, must not make a second run.
        key = "message:" + hashlib.sha256(body.strip().encode()).hexdigest()
        if message.type == "delete" and self._lifecycle is not None:
            return self._lifecycle.intake_delete(message, idempotency_key=key)
        if message.type != "deploy":
            self._poison(body, message_id, None, detail=f"Request type '{message.type}' is not supported yet.")
            return None
        return self.submit(
            message.deployment_request(), caller=message.requested_by, idempotency_key=key, ticket=message.ticket
        )

    def advance(self, work_message: str) -> None:
        item = WorkItem.from_message(work_message)
        if item.step in LIFECYCLE_STEPS and self._lifecycle is not None:
            self._lifecycle.advance(item)
            return
        self._workflow.advance(item)

    def availability(self, model_id: str, workspace_id: str | None) -> dict[str, Any]:
        model = parse_model_id(model_id)
        classification = self.catalog.classify(model)
        regions = self.catalog.supported_locations(model)
        answer: dict[str, Any] = {
            **classification.to_dict(),
            "supportedRegions": list(regions) if regions is not None else None,
        }
        if workspace_id:
            workspace = self._ml.get_workspace(WorkspaceId.parse(workspace_id).resource_id)
            answer["workspace"] = {
                "id": workspace.id,
                "location": workspace.location,
                "supported": self.catalog.supports_location(model, workspace.location),
            }
        return answer

    def _replay(self, earlier: RunRecord, request: DeploymentRequest, key: str) -> Submission:
        if earlier.request != request:
            raise IdempotencyConflictError(
                Problem.of(
                    "idempotency-conflict",
                    f"Idempotency-Key '{key}' was already used for a different request (run {earlier.id}). "
                    "Send a new key for a new request.",
                    runId=earlier.id,
                )
            )
        problem = _problem_of(earlier)
        return Submission(earlier, created=False, problem=problem)

    def _reject(self, run: RunRecord, problem: Problem) -> Submission:
        extensions = dict(problem.extensions)
        details = [extensions] if extensions else []
        rejected = run.transition(
            RunStatus.REJECTED,
            at=self._clock(),
            detail=problem.kind.slug,
            error=RunError(code=problem.kind.slug, message=problem.detail or problem.kind.title, details=details),
        )
        replay = self._create(rejected)
        if replay is not None:
            return replay
        self._queues.events.send(deployment_event(rejected, time=self._clock()))
        self._telemetry.run_finished(rejected)
        return Submission(rejected, created=True, problem=problem)

    def _create(self, run: RunRecord) -> Submission | None:
        """Store a new run; None when stored, else the replay of the run a concurrent same-key attempt stored."""
        try:
            self._runs.create(run)
        except RecordExistsError:
            # Only runs sharing an Idempotency-Key share an id: the other attempt won, so answer as a replay does.
            earlier = self._runs.get(run.id)
            return self._replay(earlier.run, run.request, run.idempotency_key or "")
        return None

    def _poison(self, body: str, message_id: str, error: Exception | None, *, detail: str | None = None) -> None:
        self._queues.requests_poison.send_raw(body)
        ticket = _readable_ticket(body)
        if isinstance(error, ValidationError):
            errors = validation_problems(error)
            message = "The request message is not valid: " + "; ".join(f"{e['field']}: {e['message']}" for e in errors)
        else:
            errors = []
            message = detail or "The request message is not JSON."
        LOGGER.warning("deployment request message %s poisoned: %s", message_id, message)
        if ticket:
            self._queues.events.send(
                malformed_request_rejected_event(
                    message_id=message_id,
                    ticket=ticket,
                    code="validation-failed",
                    message=message,
                    time=self._clock(),
                    details=errors,
                )
            )


def _first_status(plan: DeploymentPlan, existing: Endpoint | None) -> tuple[RunStatus, str]:
    # Only a provisioned endpoint may skip to its keys; one left Creating or Failed is provisioned again.
    if existing is not None and existing.provisioning_state.lower() == SUCCEEDED:
        return RunStatus.STORING_KEYS, f"endpoint '{plan.endpoint_name}' exists; re-storing keys"
    if plan.subscription_name is not None:
        return RunStatus.SUBSCRIBING, plan.classification.explanation
    return RunStatus.PROVISIONING, plan.classification.explanation


def _torn_down_meanwhile(teardown: RunRecord) -> Problem:
    return Problem.of(
        "deployment-state-conflict",
        f"Run {teardown.id} is tearing this deployment down ({teardown.status}); request it again once it has "
        "finished.",
        runId=teardown.id,
    )


def _azure_refusal(error: AzureCallError, request: DeploymentRequest) -> Problem | None:
    """A preflight read Azure refused for good: the request is rejected, saying why, rather than failing."""
    if error.transient:
        return None
    if error.not_found:
        return Problem.of(
            "not-found", f"Workspace {request.workspace_id} was not found: {error.message}", azureCode=error.code
        )
    if error.status == 403:
        return Problem.of(
            "broker-permissions-missing",
            f"Azure refused the broker's identity while checking the request ({error.code}): {error.message}",
            azureCode=error.code,
        )
    return None


def _accepted_event(run: RunRecord, now: datetime) -> dict[str, Any]:
    # Intake announces acceptance even though the run already moved on to its first provisioning status.
    event = deployment_event(run.model_copy(update={"status": RunStatus.ACCEPTED}), time=now)
    event["data"]["status"] = run.status.value
    return event


def _problem_of(run: RunRecord) -> Problem | None:
    if run.status is not RunStatus.REJECTED or run.error is None:
        return None
    extensions = dict(run.error.details[0]) if run.error.details else {}
    return Problem.of(run.error.code, run.error.message, **extensions)


def _readable_ticket(body: str) -> str | None:
    try:
        ticket = json.loads(body).get("ticket")
    except (json.JSONDecodeError, AttributeError):
        return None
    return ticket if isinstance(ticket, str) and ticket.strip() else None
