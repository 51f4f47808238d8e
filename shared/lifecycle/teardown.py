"""Teardown: a deployment's endpoint (a non-blocking LRO; already gone counts as success), its two Key Vault secrets
(soft delete, so they stay recoverable), the cross-region connection if any, and - only when asked and no other
endpoint in the project uses it - the Marketplace subscription.

A teardown is a delete run (Validating -> Deleting -> Deleted) of the deployment, which it claims like every run:
while it is the deployment's current run, no deploy or repair of the same model in the same project interleaves.
Deleting is idempotent at the resource: a deployment already Deleted answers with its original delete run (no new
run, no new event), and a delete in flight answers with that run, which then answers this request too.

Every check happens before anything is deleted: the requester's permission, an endpoint the broker did not make
(refused), and a subscription other endpoints still bill through (refused, naming them).

Deleting a deployment whose deploy run waits for approval withdraws that request: once the checks pass, the waiting
run ends Rejected (`approval-withdrawn`, with its approval and rejected events), which releases the deployment, and
the teardown goes on as for any failed deployment (nothing was made in Azure, so its steps find nothing to delete),
leaving it Deleted.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any

from shared.azure_errors import RecordChangedError, RecordExistsError
from shared.catalog import ModelCatalog
from shared.cross_region import connection_name
from shared.deployment import Deployment, DeploymentRequester, Phase
from shared.deployment import deployment_id as deployment_id_for
from shared.engine import DELETE_ENDPOINT, DELETE_SUBSCRIPTION, WorkItem, settled_run
from shared.events import EventKind, accepted_event, answered_without_a_run_events
from shared.lifecycle.steps import LifecycleOperation, LifecyclePorts
from shared.naming import InvalidNameError
from shared.ownership import is_broker_managed
from shared.plan import DeploymentPlan, plan_for
from shared.ports import Endpoint, MarketplaceSubscription
from shared.problems import Problem
from shared.requests import DeploymentRequest
from shared.required_permissions import REQUESTER_DELETE_ACTION
from shared.run_outcomes import (
    Submission,
    announce,
    close_approval,
    join_in_flight,
    problem_of,
    rejected,
    requester_problem,
    update_once,
)
from shared.runs import CrossRegion, EndpointInfo, RunError, RunRecord, RunStatus

LOGGER = logging.getLogger(__name__)
DELETING = "deleting"
MAX_ROUNDS = 16


def dependent_endpoints(
    endpoints: Sequence[Endpoint], subscription: MarketplaceSubscription, *, excluding: str
) -> list[str]:
    """Names of the endpoints, other than `excluding`, that bill through `subscription`: those naming it as their
    marketplaceSubscriptionId, and those without one for the subscription's own model (the property is read-only
    and not always returned)."""
    names = []
    for endpoint in endpoints:
        if endpoint.name.lower() == excluding.lower():
            continue
        linked = endpoint.marketplace_subscription_id
        if (linked and linked.lower() == subscription.id.lower()) or (
            not linked and endpoint.model_id.lower() == subscription.model_id.lower()
        ):
            names.append(endpoint.name)
    return sorted(names)


class Teardown(LifecycleOperation):
    def __init__(self, ports: LifecyclePorts, *, catalog: ModelCatalog) -> None:
        super().__init__(ports)
        self._catalog = catalog

    @property
    def catalog(self) -> ModelCatalog:
        return self._catalog

    # -- intake ----------------------------------------------------------------------------------------------------

    def submit(
        self,
        deployment_id: str,
        *,
        caller: str,
        delete_subscription: bool,
        ticket: str | None = None,
        idempotency_key: str | None = None,
    ) -> Submission | None:
        """Delete deployment `deployment_id` for `caller`; None when there is no such deployment."""
        stored = self._runs.get_deployment(deployment_id)
        if stored is None:
            return None
        run_id = self._runs.new_run_id(deployment_id, self._new_id())
        if idempotency_key:
            claim = self._runs.claim_idempotency_key(caller, idempotency_key, run_id=run_id, fingerprint=deployment_id)
            if claim.run_id != run_id:
                earlier = self._runs.get(claim.run_id)
                if earlier is not None:
                    return _replayed(earlier.run, stored.deployment)
                run_id = claim.run_id  # the first attempt claimed the key but never stored its run: finish its work
        deployment: Deployment = stored.deployment
        at = self._clock()
        run = (
            RunRecord.new(
                run_id=run_id,
                caller=caller,
                request=deployment.spec.to_request(ticket=ticket),
                at=at,
                operation="delete",
                deployment_id=deployment_id,
                ticket=ticket,
                idempotency_key=idempotency_key,
            )
            .with_changes(at=at, delete_subscription=delete_subscription)
            .transition(RunStatus.VALIDATING, at=at)
        )
        if deployment.spec.cross_region_hub is not None:
            # Remembered on the delete run, so that its steps work on the hub without deciding it again.
            run = run.with_changes(at=at, cross_region=CrossRegion(hub_workspace_id=deployment.spec.cross_region_hub))
        for _ in range(MAX_ROUNDS):
            try:
                return self._reconcile(run, deployment_id)
            except (RecordChangedError, RecordExistsError):
                continue  # a concurrent request changed the deployment first: look at it again
        raise RecordChangedError(f"deployment {deployment_id} kept changing while delete run {run.id} was answered")

    def refuse_unknown(
        self, request: DeploymentRequest, *, caller: str, ticket: str, idempotency_key: str
    ) -> Submission:
        """A queue message asking to delete a deployment the broker does not have: a Rejected run answers it."""
        run_id = self._runs.new_run_id(deployment_id_for(request.workspace, request.model), self._new_id())
        claim = self._runs.claim_idempotency_key(caller, idempotency_key, run_id=run_id, fingerprint="unknown")
        if claim.run_id != run_id and (earlier := self._runs.get(claim.run_id)) is not None:
            return _replayed(earlier.run, None)
        at = self._clock()
        run = RunRecord.new(
            run_id=claim.run_id or run_id,
            caller=caller,
            request=request,
            at=at,
            operation="delete",
            ticket=ticket,
            idempotency_key=idempotency_key,
        ).transition(RunStatus.VALIDATING, at=at)
        problem = Problem.of(
            "not-found",
            f"There is no deployment of {request.model_id} in workspace {request.workspace.name} to delete.",
        )
        return self._reject(run, problem)

    def _reconcile(self, run: RunRecord, deployment_id: str) -> Submission:
        stored = self._runs.get_deployment(deployment_id)
        assert stored is not None, "deployments are never removed, only marked Deleted"
        deployment: Deployment = stored.deployment
        if deployment.status.phase is Phase.DELETED:
            return self._already_deleted(run, stored)
        current_id = deployment.status.current_run_id
        current = (
            settled_run(self._runs, current_id, sleep=self._sleep, monotonic=self._monotonic)
            if current_id not in (None, run.id)
            else None
        )
        if current is not None and not current.is_terminal:
            if current.operation == "delete":
                return join_in_flight(
                    self._runs,
                    self._events,
                    current,
                    deployment,
                    request_id=run.id,
                    caller=run.caller,
                    ticket=run.ticket,
                    idempotency_key=run.idempotency_key,
                    at=self._clock(),
                )
            if not current.awaiting_approval:
                return self._reject(run, _busy(deployment, current))
        plan, problem = self._checked(run)
        if problem is not None:
            return self._reject(run, problem)
        if current is not None and current.awaiting_approval:
            self._withdraw(current, run)
            raise RecordChangedError(f"run {current.id} was withdrawn: deployment {deployment_id} is released")
        assert plan is not None
        at = self._clock()
        requester = DeploymentRequester(caller=run.caller, ticket=run.ticket, run_id=run.id, outcome="created", at=at)
        claimed = deployment.with_request(requester, at=at).changed(at=at, phase=Phase.DELETING, current_run_id=run.id)
        saved = self._runs.save_deployment(claimed, stored.etag).deployment
        info = EndpointInfo(name=plan.endpoint_name, id=plan.endpoint_id)
        started = run.transition(RunStatus.DELETING, at=at, detail=self._scope(plan, run), endpoint=info)
        try:
            self._runs.create(started)
        except RecordExistsError:
            LOGGER.info("delete run %s was stored by an earlier attempt", started.id)
        self._events.send(accepted_event(started, time=self._clock()))
        self._steps.send(WorkItem(started.id, DELETE_ENDPOINT, step_token=started.step_token))
        return Submission("created", run=started, deployment=saved)

    def _withdraw(self, waiting: RunRecord, teardown: RunRecord) -> None:
        """End the deploy run `waiting` for approval, for the delete request `teardown` (no-op if it was decided or
        withdrawn meanwhile: the next round sees what it became)."""
        problem = Problem.of(
            "approval-withdrawn",
            f"{teardown.caller} deleted deployment {waiting.deployment_id} (run {teardown.id}) before an approver "
            "decided; nothing had been made in Azure.",
            deleteRunId=teardown.id,
        )
        close_approval(
            self._runs,
            self._events,
            waiting.id,
            decision="withdrawn",
            problem=problem,
            at=self._clock(),
            by=teardown.caller,
        )

    def _already_deleted(self, run: RunRecord, stored: Any) -> Submission:
        """The original delete run answers; a request with a ticket (a queue message) also hears so by event, while
        an HTTP caller has its answer in the response and no second `deleted` event goes out."""
        deployment: Deployment = stored.deployment
        original = self._runs.get(deployment.status.delete_run_id) if deployment.status.delete_run_id else None
        if run.ticket:
            at = self._clock()
            requester = DeploymentRequester(
                caller=run.caller, ticket=run.ticket, run_id=deployment.status.delete_run_id, outcome="deleted", at=at
            )
            deployment = self._runs.save_deployment(deployment.with_request(requester, at=at), stored.etag).deployment
            if deployment.status.delete_run_id:
                self._runs.index_ticket(run.ticket, run_id=deployment.status.delete_run_id, deployment_id=deployment.id)
            if run.idempotency_key and deployment.status.delete_run_id:
                self._runs.answer_idempotency_key(
                    run.caller, run.idempotency_key, run_id=deployment.status.delete_run_id
                )
            for event in answered_without_a_run_events(
                deployment.to_public_dict(),
                EventKind.DELETED,
                ticket=run.ticket,
                request_number=deployment.request_count,
                time=at,
            ):
                self._events.send(event)
        return Submission(
            "deleted", run=original.run if original else None, deployment=self._runs.deployment_view(deployment)
        )

    def _checked(self, run: RunRecord) -> tuple[DeploymentPlan | None, Problem | None]:
        """The teardown's plan once every check has passed, or the problem of the first that failed."""
        problem = requester_problem(self._authorization, run.request.workspace, run.caller, REQUESTER_DELETE_ACTION)
        if problem is not None:
            return None, problem
        try:
            plan = plan_for(run.request, self._catalog, target=run.deployment_target)
        except InvalidNameError as error:
            return None, Problem.of("endpoint-name-invalid", str(error))
        return plan, self._what_blocks(plan, run.delete_subscription)

    def _what_blocks(self, plan: DeploymentPlan, delete_subscription: bool) -> Problem | None:
        workspace_id = plan.workspace.resource_id
        endpoints = self._ml.list_endpoints(workspace_id)
        mine = next((item for item in endpoints if item.name.lower() == plan.endpoint_name.lower()), None)
        if mine is not None and not is_broker_managed(mine.tags):
            return Problem.of(
                "deployment-conflict",
                f"Endpoint '{mine.name}' in workspace {plan.workspace.name} was not made by the broker, so the "
                "broker will not delete it. Delete it yourself if it is no longer needed.",
                existingEndpoint=mine.name,
            )
        if not (delete_subscription and plan.subscription_name):
            return None
        subscription = self._ml.get_subscription(workspace_id, plan.subscription_name)
        if subscription is None:
            return None
        dependents = dependent_endpoints(endpoints, subscription, excluding=plan.endpoint_name)
        if not dependents:
            return None
        return Problem.of(
            "subscription-in-use",
            f"Marketplace subscription '{subscription.name}' cannot be deleted: endpoint(s) "
            f"{', '.join(repr(name) for name in dependents)} in workspace {plan.workspace.name} use it and would "
            "become unusable. Delete those endpoints first, or send the request without deleteSubscription to "
            "delete only this deployment.",
            subscription=subscription.name,
            dependentEndpoints=dependents,
        )

    def _scope(self, plan: DeploymentPlan, run: RunRecord) -> str:
        parts = [f"endpoint '{plan.endpoint_name}'", "its Key Vault secrets"]
        if run.delete_subscription:
            parts.append(
                f"Marketplace subscription '{plan.subscription_name}'"
                if plan.subscription_name
                else "(the model is sold directly by Azure: no Marketplace subscription to delete)"
            )
        return "deleting " + ", ".join(parts)

    def _reject(self, run: RunRecord, problem: Problem) -> Submission:
        refused = rejected(run, problem, at=self._clock())
        try:
            self._runs.create(refused)
        except RecordExistsError:
            earlier = self._runs.get(run.id)
            return _replayed(earlier.run, None)
        announce(self._events, refused, self._clock())
        return Submission("rejected", run=refused, problem=problem)

    # -- steps -----------------------------------------------------------------------------------------------------

    def advance(self, item: WorkItem) -> None:
        # Only a message of the run's current chain goes on (shared/engine.py); any other is dropped.
        run = self._steps.admit(self._runs, item, now=self._clock())
        if run is None:
            return
        plan = plan_for(run.request, self._catalog, target=run.deployment_target)
        step = self._delete_endpoint if item.step == DELETE_ENDPOINT else self._delete_subscription
        self._steps.run(item, lambda: step(run, plan, item), lambda code, message: self._fail(run, plan, code, message))

    def _delete_endpoint(self, run: RunRecord, plan: DeploymentPlan, item: WorkItem) -> None:
        workspace_id = plan.workspace.resource_id
        if item.operation_url and not self._steps.operation_finished(item):
            return
        endpoint = self._ml.get_endpoint(workspace_id, plan.endpoint_name)
        if endpoint is not None and endpoint.provisioning_state.lower() == DELETING and not item.operation_url:
            # Being deleted already (a redelivered message, or someone else): look again later.
            self._steps.look_again(item)
            return
        if endpoint is not None:
            operation = self._ml.begin_delete_endpoint(workspace_id, plan.endpoint_name)
            if operation is not None:
                self._steps.wait(item, operation)
                return
        self._remove_secrets_and_connection(run, plan)
        if run.delete_subscription and plan.subscription_name:
            self._steps.send(item.next(DELETE_SUBSCRIPTION))
            return
        self._finish(run, plan, f"endpoint '{plan.endpoint_name}' and its Key Vault secrets deleted")

    def _remove_secrets_and_connection(self, run: RunRecord, plan: DeploymentPlan) -> None:
        for name in (plan.secret_names.primary, plan.secret_names.secondary):
            self._secrets.delete_secret(name)
        requester = run.request.workspace
        if plan.workspace.key != requester.key:
            # A cross-region deployment: its connection has a deterministic name in the requester's project.
            self._connections.delete_connection(requester.resource_id, connection_name(plan.endpoint_name))

    def _delete_subscription(self, run: RunRecord, plan: DeploymentPlan, item: WorkItem) -> None:
        workspace_id, name = plan.workspace.resource_id, plan.subscription_name
        assert name is not None, "only Marketplace models are routed through delete-subscription"
        if item.operation_url and not self._steps.operation_finished(item):
            return
        subscription = self._ml.get_subscription(workspace_id, name)
        done = f"endpoint '{plan.endpoint_name}', its Key Vault secrets and Marketplace subscription '{name}' deleted"
        if subscription is None:
            self._finish(run, plan, done)
            return
        if (subscription.provisioning_state or "").lower() == DELETING and not item.operation_url:
            self._steps.look_again(item)
            return
        # Checked at intake already; an endpoint made since then must not be broken either.
        dependents = dependent_endpoints(
            self._ml.list_endpoints(workspace_id), subscription, excluding=plan.endpoint_name
        )
        if dependents:
            kept = f"Marketplace subscription '{name}' kept: endpoint(s) {', '.join(dependents)} began using it"
            self._finish(run, plan, f"endpoint '{plan.endpoint_name}' and its Key Vault secrets deleted; {kept}")
            return
        operation = self._ml.begin_delete_subscription(workspace_id, name)
        if operation is None:
            self._finish(run, plan, done)
            return
        self._steps.wait(item, operation)

    def _finish(self, run: RunRecord, plan: DeploymentPlan, detail: str) -> None:
        done = run.transition(RunStatus.DELETED, at=self._clock(), detail=detail)
        # The deployment is marked first: if the worker dies before the run is, the redelivered step repeats it all.
        if run.deployment_id:
            self._runs.update_deployment(
                run.deployment_id, lambda current: current.run_finished(done, at=self._clock())
            )
        self._end(run, lambda current: current.transition(RunStatus.DELETED, at=self._clock(), detail=detail))

    def _fail(self, run: RunRecord, plan: DeploymentPlan, code: str, message: str) -> None:
        error = RunError(code=code, message=message)
        failed = self._end(run, lambda current: current.transition(RunStatus.FAILED, at=self._clock(), error=error))
        if run.deployment_id:
            self._runs.update_deployment(
                run.deployment_id, lambda current: current.run_finished(failed, at=self._clock())
            )

    def _end(self, run: RunRecord, ending: Callable[[RunRecord], RunRecord]) -> RunRecord:
        """End the run; only the call that ended it announces the end."""
        ended, made = update_once(self._runs, run.id, lambda current: None if current.is_terminal else ending(current))
        if made:
            announce(self._events, ended, self._clock(), joiners=self._runs.joiners(ended.id))
        return ended


def _busy(deployment: Deployment, current: RunRecord) -> Problem:
    return Problem.of(
        "deployment-state-conflict",
        f"Run {current.id} ({current.operation}) of deployment {deployment.id} is still {current.status}; delete "
        "the deployment once that run has finished.",
        runId=current.id,
        deploymentId=deployment.id,
    )


def _replayed(run: RunRecord, deployment: Deployment | None) -> Submission:
    problem = problem_of(run)
    return Submission("rejected" if problem else "replayed", run=run, deployment=deployment, problem=problem)
