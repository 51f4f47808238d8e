"""The deployment service the handlers call: intake (HTTP and queue), reads, worker steps, availability.

Intake reconciles each request against the Deployment resource of its (project, model):
- none yet, or deleted, or failed -> a deploy run (202);
- in flight with the same spec -> the request joins that run and gets its own events (202);
- Ready as asked, and Azure agrees -> the deployment, nothing written (200);
- Degraded, or Ready but Azure disagrees -> a repair run (202);
- asking for another spec -> 409 deployment-conflict.

A deploy run the approval policy names waits in PendingApproval instead of starting, and approvers decide it
(shared/deployments/approvals.py).
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import time
import uuid
from collections.abc import Callable, Collection
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from pydantic import ValidationError

from shared.access import BrokerRoles, Caller
from shared.approvals import ApprovalPolicy
from shared.azure_errors import AzureCallError, RecordChangedError, RecordExistsError
from shared.azure_ids import WorkspaceId
from shared.catalog import ModelCatalog
from shared.deployment import (
    Deployment,
    DeploymentRequester,
    DeploymentSpec,
    Phase,
    RequestOutcome,
    deployment_id,
)
from shared.deployments.approvals import ApprovalDesk, Decision
from shared.deployments.intake_rules import azure_refusal, completed, first_status, torn_down_meanwhile
from shared.deployments.model_list import ModelFilters, ModelLister, ModelPage
from shared.deployments.observe import DEFAULT_HEALTHY_STATES, Observation, observe
from shared.deployments.preflight import (
    PreflightContext,
    PreflightPolicy,
    PreflightResult,
    conflict_problem,
    run_join_preflight,
    run_preflight,
    spec_for,
)
from shared.deployments.visibility import Visibility, VisiblePage, visible_page
from shared.deployments.what_if import WhatIf, WhatIfPlanner
from shared.deployments.workflow import Workflow
from shared.engine import LIFECYCLE_STEPS, WorkItem, settled_run
from shared.events import (
    EventKind,
    accepted_event,
    answered_without_a_run_events,
    approval_event,
    malformed_request_rejected_event,
)
from shared.model_ids import parse_model_id
from shared.plan import DeploymentPlan
from shared.ports import (
    AuthorizationPort,
    MachineLearningPort,
    MessageQueuePort,
    RunRepositoryPort,
    SecretStorePort,
)
from shared.problems import Problem
from shared.requests import DeploymentRequest, QueueDeploymentRequest, validation_problems
from shared.run_outcomes import Submission, announce, join_in_flight, problem_of, rejected
from shared.runs import Approval, CrossRegion, EndpointInfo, RunOperation, RunRecord, RunStatus
from shared.telemetry import BROKER_TELEMETRY, BrokerTelemetry, continued
from shared.wire import QUEUE_LIMITS, WireError, decoded_text, read_json_object, top_level_string

LOGGER = logging.getLogger(__name__)
# Concurrent requests for one deployment settle within a few rounds; more means something keeps rewriting it.
MAX_RECONCILE_ROUNDS = 16
# Each concurrent Ready answer rewrites the deployment's history once; a write lost to another costs one more round
# trip, so this covers a few hundred simultaneous answers.
MAX_READY_ANSWER_ATTEMPTS = 256
# What a base64-encoded queue message (64 KiB) holds: the poison copy of a message that arrived on one always fits.
MAX_POISON_COPY_BYTES = 48 * 1024
_LOGGED_DETAIL = 1000
_SURROGATES = re.compile("[\ud800-\udfff]")
NO_APPROVALS = ApprovalPolicy()
DEFAULT_ROLES = BrokerRoles()


class IdempotencyConflictError(Exception):
    """The Idempotency-Key was used before, by the same caller, with a different request."""

    def __init__(self, problem: Problem) -> None:
        super().__init__(problem.detail)
        self.problem = problem


@dataclass(frozen=True)
class Queues:
    work: MessageQueuePort
    events: MessageQueuePort
    requests_poison: MessageQueuePort


class LifecycleHandler(Protocol):
    """Teardown and key rotation (shared/lifecycle), which share the request queue and the work queue."""

    def intake_delete(self, message: QueueDeploymentRequest, *, idempotency_key: str) -> Submission: ...
    def advance(self, item: WorkItem) -> None: ...


@dataclass(frozen=True)
class _Ask:
    """One request under reconciliation."""

    request: DeploymentRequest
    caller: str
    ticket: str | None
    idempotency_key: str | None
    run: RunRecord  # the Validating run this request starts if it must start one


class DeploymentService:
    def __init__(
        self,
        *,
        runs: RunRepositoryPort,
        machine_learning: MachineLearningPort,
        authorization: AuthorizationPort,
        secrets: SecretStorePort,
        workflow: Workflow,
        queues: Queues,
        policy: PreflightPolicy,
        clock: Callable[[], datetime],
        new_id: Callable[[], str] = lambda: str(uuid.uuid4()),
        sleep: Callable[[float], None] = time.sleep,
        monotonic: Callable[[], float] = time.monotonic,
        lifecycle: LifecycleHandler | None = None,
        healthy_states: Collection[str] = DEFAULT_HEALTHY_STATES,
        telemetry: BrokerTelemetry = BROKER_TELEMETRY,
        approvals: ApprovalPolicy = NO_APPROVALS,
        roles: BrokerRoles = DEFAULT_ROLES,
    ) -> None:
        self._approvals = approvals
        self._roles = roles
        self._lifecycle = lifecycle
        self._telemetry = telemetry
        self._sleep = sleep
        self._monotonic = monotonic
        self._runs = runs
        self._ml = machine_learning
        self._authorization = authorization
        self._secrets = secrets
        self._workflow = workflow
        self._queues = queues
        self._policy = policy
        self._clock = clock
        self._new_id = new_id
        self._healthy_states = healthy_states
        self._desk = ApprovalDesk(
            runs=runs,
            events=queues.events,
            roles=roles,
            clock=clock,
            restart=self._restart,
            start=workflow.start,
            telemetry=telemetry,
        )

    @property
    def catalog(self) -> ModelCatalog:
        return self._policy.catalog

    @property
    def lifecycle(self) -> LifecycleHandler | None:
        return self._lifecycle

    # -- approvals -------------------------------------------------------------------------------------------------

    def approve(self, run_id: str, *, caller: Caller, comment: str | None = None) -> Decision:
        return self._desk.approve(run_id, caller=caller, comment=comment)

    def reject(self, run_id: str, *, caller: Caller, comment: str) -> Decision:
        return self._desk.reject(run_id, caller=caller, comment=comment)

    def _restart(self, run: RunRecord) -> tuple[RunStatus, str] | Problem:
        """Where an approved run goes on, from the full preflight run again for its request and original caller."""
        stored = self._runs.get_deployment(run.deployment_id) if run.deployment_id else None
        deployment = stored.deployment if stored is not None and not stored.deployment.is_gone else None
        result, problem = self._preflight(run.request, run.caller, deployment, joining=False)
        if problem is not None:
            return problem
        assert result.plan is not None, "a passed preflight always has a plan"
        return first_status(result.plan, result.existing_endpoint, None)

    # -- intake ----------------------------------------------------------------------------------------------------

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
            run_id = submission.run.id if submission.run else None
            self._telemetry.describe_submission(
                span, run_id or "", created=submission.answer in ("created", "repair"), problem=submission.problem
            )
            return submission

    def _submit(
        self, request: DeploymentRequest, *, caller: str, idempotency_key: str | None, ticket: str | None
    ) -> Submission:
        the_id = deployment_id(request.workspace, request.model)
        # Minted in the deployment's home partition, so the run and the claim are written in one transaction.
        run_id = self._runs.new_run_id(the_id, self._new_id())
        if idempotency_key:
            fingerprint = _fingerprint(request)
            claim = self._runs.claim_idempotency_key(caller, idempotency_key, run_id=run_id, fingerprint=fingerprint)
            if claim.run_id != run_id:
                replay = self._replay(claim, fingerprint, idempotency_key)
                if replay is not None:
                    return replay
                run_id = claim.run_id  # the first attempt claimed the key but never stored its run: finish its work

        stored = self._runs.get_deployment(the_id)
        existing = stored.deployment if stored and not stored.deployment.is_gone else None
        request = completed(request, existing.spec) if existing else request
        at = self._clock()
        run = RunRecord.new(
            run_id=run_id, caller=caller, request=request, at=at, ticket=ticket, idempotency_key=idempotency_key
        ).transition(RunStatus.VALIDATING, at=at)
        ask = _Ask(request, caller, run.ticket, idempotency_key, run)
        # Joining a run in flight or answering from a Ready deployment writes nothing to Azure: that needs only the
        # checks for joining. Should the answer turn out to be a new run after all, _start completes the rest.
        joining = existing is not None and (existing.status.phase is Phase.READY or existing.in_flight)
        result, problem = self._preflight(request, caller, existing, joining=joining)
        if problem is not None:
            return self._reject(run, problem, deployment_id=the_id if existing else None)
        assert result.plan is not None, "a passed preflight always has a plan"
        if result.warnings:
            ask = _Ask(request, caller, run.ticket, idempotency_key, run.with_changes(at=at, warnings=result.warnings))
        spec = spec_for(request, result.plan, result.target)
        return self._reconcile(ask, the_id, spec, result, stored)

    def _reconcile(
        self, ask: _Ask, the_id: str, spec: DeploymentSpec, result: PreflightResult, stored: Any
    ) -> Submission:
        """Answer `ask` from the deployment as `stored` (read before preflight), retrying from a fresh read when a
        concurrent request changed it: every write is ETag-conditional, so a stale read costs a round, never a wrong
        answer."""
        for round_number in range(MAX_RECONCILE_ROUNDS):
            if round_number:
                stored = self._runs.get_deployment(the_id)
            try:
                if stored is None or stored.deployment.is_gone:
                    return self._start(ask, spec, result, stored, operation="deploy")
                deployment = stored.deployment
                # Only a deployment marked in flight has a current run that may be joined or need catching up.
                in_flight = deployment.in_flight
                current_stored = self._current_run(deployment, ask.run.id) if in_flight else None
                current = current_stored.run if current_stored else None
                if current is not None and current.is_terminal and deployment.in_flight:
                    # The run ended but the worker died before the deployment heard: catch it up, then look again.
                    self._runs.save_deployment(deployment.run_finished(current, at=self._clock()), stored.etag)
                    continue
                if current_stored is not None and not current_stored.run.is_terminal:
                    return self._join(ask, stored, current_stored, spec)
                if current is None and deployment.in_flight:
                    # Its run crashed before it was stored: take the claim over.
                    operation = "repair" if deployment.status.keys_run_id else "deploy"
                    return self._start(ask, spec, result, stored, operation=operation)
                differences = deployment.spec.differences(spec)
                if differences:
                    return self._reject(ask.run, conflict_problem(deployment, differences), deployment_id=the_id)
                seen = self._observe(result.plan)
                if deployment.status.phase is Phase.READY and seen.all_true:
                    return self._already_ready(ask, stored, seen)
                return self._start(ask, spec, result, stored, operation="repair", seen=seen)
            except (RecordChangedError, RecordExistsError):
                continue  # another request changed the deployment first: look at it again
        raise RecordChangedError(f"deployment {the_id} kept changing while request {ask.run.id} was answered")

    def _current_run(self, deployment: Deployment, own_run_id: str) -> Any:
        """The stored run holding the deployment's claim (with its ETag), if another request's and stored."""
        run_id = deployment.status.current_run_id
        if run_id is None or run_id == own_run_id:
            return None
        stored = self._runs.get(run_id)
        if stored is None and settled_run(self._runs, run_id, sleep=self._sleep, monotonic=self._monotonic):
            stored = self._runs.get(run_id)
        return stored

    def _start(
        self,
        ask: _Ask,
        spec: DeploymentSpec,
        result: PreflightResult,
        stored: Any,
        *,
        operation: RunOperation,
        seen: Observation | None = None,
    ) -> Submission:
        """Claim the deployment for a new run of `operation`, store the run and queue its first step; or, for a deploy
        run the approval policy names, store it waiting for approval (holding the claim) and queue nothing."""
        if not result.complete:
            known = stored.deployment if stored is not None and not stored.deployment.is_gone else None
            result, problem = self._preflight(ask.request, ask.caller, known, joining=False)
            if problem is not None:
                return self._reject(ask.run, problem, deployment_id=known.id if known else None)
            assert result.plan is not None, "a passed preflight always has a plan"
            spec = spec_for(ask.request, result.plan, result.target)
        plan = result.plan
        assert plan is not None
        at = self._clock()
        # Only a new deployment asks: a repair re-creates what was approved already.
        requirement = (
            self._approvals.requirement(ask.request.workspace, plan.model, plan.classification)
            if operation == "deploy"
            else None
        )
        phase = Phase.PROVISIONING if requirement is None else Phase.PENDING_APPROVAL
        outcome: RequestOutcome = "created" if operation == "deploy" else "repair"
        requester = DeploymentRequester(caller=ask.caller, ticket=ask.ticket, run_id=ask.run.id, outcome=outcome, at=at)
        claimed = _claimed(stored, spec, requester, phase=phase, seen=seen, at=at)
        endpoint = EndpointInfo(name=plan.endpoint_name, id=plan.endpoint_id)
        claiming = ask.run.model_copy(update={"operation": operation, "deployment_id": claimed.id})
        if requirement is None:
            status, detail = first_status(plan, result.existing_endpoint, seen)
            run = claiming.transition(status, at=at, detail=detail, endpoint=endpoint)
        else:
            approval = Approval(
                rule=requirement.rule,
                reason=requirement.reason,
                requested_at=at,
                expires_at=at + self._approvals.expiry,
            )
            run = claiming.transition(
                RunStatus.PENDING_APPROVAL, at=at, detail=requirement.reason, endpoint=endpoint, approval=approval
            )
        if result.target is not None:
            run = run.with_changes(at=at, cross_region=CrossRegion(hub_workspace_id=result.target.resource_id))
        try:
            self._runs.start_run(run, claimed, stored.etag if stored is not None else None)
        except (RecordChangedError, RecordExistsError):
            if self._runs.get(run.id) is None:
                raise  # another request changed the deployment first: _reconcile looks again
            # Only attempts sharing an Idempotency-Key share a run id: the other one stored, queues and announces it.
            LOGGER.info("run %s was stored by a concurrent attempt", run.id)
            return self._stored_answer(run.id)
        # A run waiting for approval queues nothing: the decision starts it (shared/deployments/approvals.py).
        if not run.awaiting_approval:
            self._workflow.start(run)
        self._queues.events.send(accepted_event(run, time=self._clock()))
        if run.awaiting_approval:
            self._queues.events.send(approval_event(run, time=self._clock()))
        return Submission("created" if operation == "deploy" else "repair", run=run, deployment=claimed)

    def _join(self, ask: _Ask, stored: Any, current_stored: Any, spec: DeploymentSpec) -> Submission:
        """Register `ask` on the run in flight, which then answers it too (RecordChangedError to look again when that
        run has ended meanwhile)."""
        deployment: Deployment = stored.deployment
        current: RunRecord = current_stored.run
        if current.operation == "delete":
            return self._reject(ask.run, torn_down_meanwhile(current), deployment_id=deployment.id)
        differences = deployment.spec.differences(spec)
        if differences:
            return self._reject(ask.run, conflict_problem(deployment, differences), deployment_id=deployment.id)
        return join_in_flight(
            self._runs,
            self._queues.events,
            current,
            deployment,
            request_id=ask.run.id,
            caller=ask.caller,
            ticket=ask.ticket,
            idempotency_key=ask.idempotency_key,
            at=self._clock(),
        )

    def _already_ready(self, ask: _Ask, stored: Any, seen: Observation) -> Submission:
        at = self._clock()
        requester = DeploymentRequester(caller=ask.caller, ticket=ask.ticket, outcome="ready", at=at)
        answered: Deployment = stored.deployment
        for _ in range(MAX_READY_ANSWER_ATTEMPTS):
            deployment: Deployment = stored.deployment
            updated = deployment.with_conditions(seen.conditions, at=at).with_request(requester, at=at)
            try:
                # Every request is kept in the ticket index, under the run its events name: the one that made it Ready.
                saved = self._runs.save_answered(
                    updated, stored.etag, ticket=ask.ticket, run_id=updated.status.current_run_id
                ).deployment
                break
            except RecordChangedError:
                # Concurrent Ready answers all rewrite the row: while it is still the same Ready deployment, this
                # request's observation stands and only the write is tried again, without reading Azure again.
                stored = self._runs.get_deployment(answered.id)
                if stored is None or not _same_ready(stored.deployment, answered):
                    raise
        else:
            raise RecordChangedError(f"deployment {answered.id} kept changing while request {ask.run.id} was answered")
        if ask.idempotency_key:
            self._runs.answer_idempotency_key(ask.caller, ask.idempotency_key, deployment_id=saved.id)
        for event in answered_without_a_run_events(
            saved.to_public_dict(), EventKind.SUCCEEDED, ticket=ask.ticket, request_number=saved.request_count, time=at
        ):
            self._queues.events.send(event)
        return Submission("ready", deployment=self._runs.deployment_view(saved))

    def _observe(self, plan: DeploymentPlan | None) -> Observation:
        assert plan is not None
        return observe(
            plan,
            machine_learning=self._ml,
            secrets=self._secrets,
            at=self._clock(),
            healthy_states=self._healthy_states,
        )

    def _preflight(
        self, request: DeploymentRequest, caller: str, deployment: Deployment | None, *, joining: bool
    ) -> tuple[PreflightResult, Problem | None]:
        """Check `request`: in full, or with the checks for joining `deployment` when `joining` and it asks for it
        exactly as it is."""

        def context() -> PreflightContext:
            return PreflightContext(
                request=request,
                caller=caller,
                policy=self._policy,
                machine_learning=self._ml,
                authorization=self._authorization,
                deployment=deployment,
            )

        try:
            joined = run_join_preflight(context(), deployment) if joining and deployment is not None else None
            result = joined or run_preflight(context())
        except AzureCallError as error:
            problem = azure_refusal(error, request)
            if problem is None:
                raise
            return PreflightResult(problem, None, None, ()), problem
        return result, result.problem

    def _replay(self, claim: Any, fingerprint: str, key: str) -> Submission | None:
        """The earlier answer to this Idempotency-Key; None when the earlier attempt never stored one."""
        if claim.fingerprint != fingerprint:
            raise IdempotencyConflictError(
                Problem.of(
                    "idempotency-conflict",
                    f"Idempotency-Key '{key}' was already used for a different request. Send a new key for a new "
                    "request.",
                    runId=claim.run_id,
                )
            )
        if claim.deployment_id is not None:
            stored = self._runs.get_deployment(claim.deployment_id)
            return Submission("replayed", deployment=self._runs.deployment_view(stored.deployment)) if stored else None
        earlier = self._runs.run_view(claim.run_id)
        return self._answer_of(earlier) if earlier is not None else None

    def _stored_answer(self, run_id: str) -> Submission:
        """The answer of the concurrent attempt that stored run `run_id` first."""
        stored = self._runs.get(run_id)
        assert stored is not None, "a run that could not be created is stored"
        return self._answer_of(stored.run)

    def _answer_of(self, run: RunRecord) -> Submission:
        """A stored run as the answer to a request that repeats the one that made it."""
        problem = problem_of(run)
        deployment = self._runs.get_deployment(run.deployment_id) if run.deployment_id else None
        return Submission(
            "rejected" if problem else "replayed",
            run=run,
            deployment=deployment.deployment if deployment else None,
            problem=problem,
        )

    def _reject(self, run: RunRecord, problem: Problem, *, deployment_id: str | None = None) -> Submission:
        refused = rejected(run.model_copy(update={"deployment_id": deployment_id}), problem, at=self._clock())
        if not self._create(refused):
            return self._stored_answer(refused.id)
        announce(self._queues.events, refused, self._clock(), self._telemetry)
        return Submission("rejected", run=refused, problem=problem)

    def _create(self, run: RunRecord) -> bool:
        """Store a new run; False when it is stored already. Only runs sharing an Idempotency-Key share an id, so a
        conflict here is a concurrent attempt of the same request that stored it first (and queues and announces it
        itself): this attempt answers with that run instead of starting or announcing it a second time."""
        try:
            self._runs.create(run)
        except RecordExistsError:
            LOGGER.info("run %s was stored by a concurrent attempt", run.id)
            return False
        return True

    # -- reads -----------------------------------------------------------------------------------------------------

    # Reads for the API show who each run answers and each deployment's whole request history, joiners included,
    # and only what the caller may see (shared/deployments/visibility.py): what they may not is answered as missing.

    def visibility(self, caller: Caller) -> Visibility:
        """What `caller` may see, for one request: build one per request, so each workspace is judged once."""
        return Visibility(
            caller, roles=self._roles, authorization=self._authorization, deployment=self._deployment_view
        )

    def get(self, run_id: str, *, caller: Caller) -> RunRecord | None:
        """The run; None when there is none or `caller` may not see it (the two are answered alike)."""
        run = self._runs.run_view(run_id)
        return run if run is not None and self._sees_run(self.visibility(caller), run) else None

    def get_deployment(self, the_id: str, *, caller: Caller) -> Deployment | None:
        """The deployment; None when there is none or `caller` may not see it (the two are answered alike)."""
        deployment = self._deployment_view(the_id)
        visible = deployment is not None and self.visibility(caller).sees_deployment(deployment)
        return deployment if visible else None

    def list(
        self, *, caller: Caller, page_size: int = 50, continuation_token: str | None = None, **filters: Any
    ) -> VisiblePage[RunRecord]:
        """The runs `filters` select that `caller` may see, a full page at a time (see visible_page)."""
        visibility = self.visibility(caller)

        def read(count: int, token: str | None) -> tuple[list[RunRecord], str | None]:
            page = self._runs.list(**filters, page_size=count, continuation_token=token)
            return [self._runs.with_joiners(run) for run in page.runs], page.continuation_token

        return visible_page(
            read,
            lambda run: self._sees_run(visibility, run),
            page_size=page_size,
            continuation_token=continuation_token,
        )

    def list_deployments(
        self, *, caller: Caller, page_size: int = 50, continuation_token: str | None = None, **filters: Any
    ) -> VisiblePage[Deployment]:
        """The deployments `filters` select that `caller` may see, a full page at a time (see visible_page)."""
        visibility = self.visibility(caller)

        def read(count: int, token: str | None) -> tuple[list[Deployment], str | None]:
            page = self._runs.list_deployments(**filters, page_size=count, continuation_token=token)
            return [self._runs.deployment_view(item) for item in page.deployments], page.continuation_token

        return visible_page(
            read,
            visibility.sees_deployment,
            page_size=page_size,
            continuation_token=continuation_token,
        )

    def repair(self, the_id: str, *, caller: str) -> Submission | None:
        """Re-reconcile a deployment as if its request had been sent again; None when there is no such deployment.
        The HTTP route asks get_deployment first, so a caller who may not see it is answered as if it were missing;
        hygiene's resubscribe remediation repairs as the broker itself."""
        deployment = self._deployment_view(the_id)
        if deployment is None:
            return None
        if deployment.status.phase in (Phase.DELETED, Phase.DELETING):
            return Submission(
                "rejected",
                deployment=deployment,
                problem=Problem.of(
                    "deployment-state-conflict",
                    f"Deployment {the_id} is {deployment.status.phase}; POST /api/deployments to deploy it again.",
                    deploymentId=the_id,
                ),
            )
        return self.submit(deployment.spec.to_request(), caller=caller)

    def _deployment_view(self, the_id: str) -> Deployment | None:
        stored = self._runs.get_deployment(the_id)
        return self._runs.deployment_view(stored.deployment) if stored else None

    def _sees_run(self, visibility: Visibility, run: RunRecord) -> bool:
        return visibility.sees_run(run, all_joiners=lambda: self._runs.joiners(run.id))

    # -- queue and worker ------------------------------------------------------------------------------------------

    def intake_message(self, body: bytes | str, *, message_id: str) -> Submission | None:
        """A `deployment-requests` message, as the bytes that arrived (or their text). One that breaks a limit of
        shared/wire.py or is not a valid request is poisoned (see _poison) and None returned; nothing such a message
        holds makes this raise."""
        try:
            document = read_json_object(body, QUEUE_LIMITS)
        except WireError as error:
            refusal = _Refusal(error.problem_type.slug, error.message, [error.as_error()], limit=error.limit)
            self._poison(body, message_id, refusal, ticket=top_level_string(body, "ticket"))
            return None
        try:
            message = QueueDeploymentRequest.from_wire(document)
        except ValidationError as error:
            errors = validation_problems(error)
            detail = "The request message is not valid: " + "; ".join(f"{e['field']}: {e['message']}" for e in errors)
            self._poison(body, message_id, _Refusal("validation-failed", detail, errors), ticket=_ticket_of(document))
            return None
        # The same message delivered twice, or re-sent verbatim, must not make a second run.
        key = "message:" + hashlib.sha256(decoded_text(body).strip().encode()).hexdigest()
        if message.type == "delete" and self._lifecycle is not None:
            return self._lifecycle.intake_delete(message, idempotency_key=key)
        if message.type != "deploy":
            refusal = _Refusal("validation-failed", f"Request type '{message.type}' is not supported yet.", [])
            self._poison(body, message_id, refusal, ticket=message.ticket)
            return None
        return self.submit(
            message.deployment_request(), caller=message.requested_by, idempotency_key=key, ticket=message.ticket
        )

    def advance(self, work_message: str) -> None:
        item = WorkItem.from_message(work_message)
        # The step continues the trace of the request that started its chain, whatever invocation delivered it.
        with continued(item.trace_context):
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

    def list_models(
        self,
        workspace_id: str,
        *,
        publisher: str | None = None,
        name: str | None = None,
        page_size: int = 50,
        continuation_token: str | None = None,
    ) -> ModelPage:
        """The catalog as project `workspace_id` sees it, a page at a time (InvalidContinuationTokenError for a token
        issued for other filters)."""
        lister = ModelLister(policy=self._policy, approvals=self._approvals, machine_learning=self._ml)
        filters = ModelFilters(WorkspaceId.parse(workspace_id), publisher=publisher, name=name)
        return lister.page(filters, page_size=page_size, continuation_token=continuation_token)

    def what_if(self, request: DeploymentRequest, *, caller: Caller) -> WhatIf:
        """What submitting `request` would do, from reads alone."""
        planner = WhatIfPlanner(
            runs=self._runs,
            machine_learning=self._ml,
            authorization=self._authorization,
            secrets=self._secrets,
            policy=self._policy,
            approvals=self._approvals,
            roles=self._roles,
            clock=self._clock,
            healthy_states=self._healthy_states,
        )
        return planner.what_if(request, caller=caller)

    def _poison(self, raw: bytes | str, message_id: str, refusal: _Refusal, *, ticket: str | None) -> None:
        """Copy a malformed message to the poison queue once however often it is delivered, and tell its ticket.

        Decided before copying: the delivery that claims the copy in the run store (a row keyed by the queue
        message id) copies it, and a redelivery finds the claim and copies and sends nothing. A copy that fails
        gives the claim back and raises, so the host's retry copies it; a crash between the claim and the copy
        loses the copy rather than making two. Once the message is copied nothing raises: the rejected event
        (bounded to fit a queue message) goes out when a ticket is readable, or is recorded as undelivered.
        """
        LOGGER.warning("deployment request message %s poisoned: %s", message_id, refusal.message[:_LOGGED_DETAIL])
        copy = _poison_copy(raw)
        received = raw if isinstance(raw, bytes) else raw.encode("utf-8", "surrogatepass")
        # What an operator needs to match the claim with the copy (and with the original, should the copy differ).
        details = {
            "code": refusal.code,
            "limit": refusal.limit,
            "bytes": len(received),
            "sha256": hashlib.sha256(received).hexdigest(),
            "copyTruncated": copy.truncated,
            "at": self._clock().isoformat(),
        }
        if not self._runs.claim_poison(message_id, details):
            LOGGER.info(
                "deployment request message %s was poisoned by an earlier delivery; not copied again", message_id
            )
            return
        try:
            self._queues.requests_poison.send_raw(copy.text)
        except Exception:
            self._runs.release_poison(message_id)
            raise
        if ticket:
            self._tell_rejected(message_id, ticket, refusal)

    def _tell_rejected(self, message_id: str, ticket: str, refusal: _Refusal) -> None:
        """Send the rejected event; one the queue refuses (or that cannot be built) is recorded, never raised."""
        try:
            event = malformed_request_rejected_event(
                message_id=message_id,
                ticket=ticket,
                code=refusal.code,
                message=refusal.message,
                time=self._clock(),
                details=refusal.details,
            )
        except Exception:  # a message is completed once copied, whatever it held
            LOGGER.exception("the rejected event for request message %s could not be built", message_id)
            return
        try:
            self._queues.events.send(event)
        except Exception as error:  # noqa: BLE001 - recorded for an operator rather than retried forever
            self._record_undelivered(event, error)

    def _record_undelivered(self, event: dict[str, Any], error: Exception) -> None:
        reason = f"{type(error).__name__}: {str(error)[:_LOGGED_DETAIL]}"
        LOGGER.error("event %s could not be sent (%s); recorded as undelivered", event["id"], reason)
        try:
            self._runs.record_undelivered(
                "event",
                event["id"],
                {"queue": "events", "event": event, "error": reason, "at": self._clock().isoformat()},
            )
        except Exception:  # the log line above is then the only record
            LOGGER.exception("event %s could not be recorded as undelivered either", event["id"])


@dataclass(frozen=True)
class _Refusal:
    """Why a request message is poisoned: the problem slug, what is wrong, the fields, and the wire limit broken."""

    code: str
    message: str
    details: list[dict[str, str]]
    limit: str | None = None


@dataclass(frozen=True)
class _PoisonCopy:
    text: str
    truncated: bool


def _poison_copy(raw: bytes | str) -> _PoisonCopy:
    """The poison queue's copy: the message as it arrived when it is UTF-8 text; otherwise with each undecodable
    byte as U+FFFD (the queue port carries text). Cut, should it be longer, to what a base64 queue message holds."""
    text = _SURROGATES.sub("\ufffd", raw) if isinstance(raw, str) else raw.decode("utf-8", errors="replace")
    encoded = text.encode("utf-8")
    if len(encoded) <= MAX_POISON_COPY_BYTES:
        return _PoisonCopy(text, truncated=False)
    return _PoisonCopy(encoded[:MAX_POISON_COPY_BYTES].decode("utf-8", errors="ignore"), truncated=True)


def _ticket_of(document: dict[str, Any]) -> str | None:
    ticket = document.get("ticket")
    return ticket if isinstance(ticket, str) and ticket.strip() else None


def _claimed(
    stored: Any,
    spec: DeploymentSpec,
    requester: DeploymentRequester,
    *,
    phase: Phase,
    seen: Observation | None,
    at: datetime,
) -> Deployment:
    """The deployment as `requester`'s new run claims it: made (afresh, when it is gone), or taken over."""
    run_id = requester.run_id
    assert run_id is not None, "a request that starts a run names it"
    if stored is None:
        return Deployment.new(spec, run_id=run_id, requester=requester, at=at, phase=phase)
    deployment: Deployment = stored.deployment
    if deployment.is_gone:
        return deployment.recreated(spec, run_id=run_id, requester=requester, at=at, phase=phase)
    claimed = deployment.with_request(requester, at=at).changed(at=at, phase=phase, current_run_id=run_id, error=None)
    return claimed.with_conditions(seen.conditions, at=at) if seen is not None else claimed


def _same_ready(current: Deployment, answered: Deployment) -> bool:
    """Whether `current` is still the Ready deployment a request was being answered from (same spec, same run)."""
    return (
        current.status.phase is Phase.READY
        and current.status.current_run_id == answered.status.current_run_id
        and current.spec == answered.spec
    )


def _fingerprint(request: DeploymentRequest) -> str:
    return hashlib.sha256(json.dumps(request.to_wire(), sort_keys=True).encode()).hexdigest()
