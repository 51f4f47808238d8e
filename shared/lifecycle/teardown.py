"""Teardown: a deployment's endpoint (a non-blocking LRO; already gone counts as success), its two Key Vault secrets
(soft delete, so they stay recoverable), the cross-region connection if any, and - only when asked and no other
endpoint in the project uses it - the Marketplace subscription.

A teardown is a run of its own (operation "delete": Validating -> Deleting -> Deleted) whose `deploymentRunId`
names the deploy run it tears down; when it ends Deleted, the deploy run records `deletedByRunId`, so each record
leads to the other. While it runs, the delete run holds the deployment claim that deploy runs take, so a teardown
and a deployment of the same model in the same project never interleave; Deleted releases the claim.

Every check happens before anything is deleted: the requester's permission, an endpoint the broker did not make
(refused), and a subscription other endpoints still bill through (refused, naming them). Tearing down twice, or an
endpoint already deleted out of band, ends Deleted like the first time.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

from shared.azure_errors import RecordExistsError
from shared.azure_ids import WorkspaceId
from shared.catalog import ModelCatalog
from shared.cross_region import connection_name
from shared.deployments.preflight import MANAGED_BY_TAG, MANAGED_BY_VALUE, DeploymentPlan, PreflightPolicy, plan_for
from shared.deployments.service import Submission
from shared.deployments.work import DELETE_ENDPOINT, DELETE_SUBSCRIPTION, WorkItem
from shared.lifecycle.runs import accepted_event, announce, rejected, requester_problem, settled_run
from shared.lifecycle.steps import LifecycleOperation, LifecyclePorts
from shared.naming import InvalidNameError
from shared.ports import (
    Endpoint,
    MarketplaceSubscription,
)
from shared.problems import Problem
from shared.requests import DeploymentRequest
from shared.required_permissions import REQUESTER_DELETE_ACTION
from shared.runs import CrossRegion, EndpointInfo, RunError, RunRecord, RunStatus

LOGGER = logging.getLogger(__name__)
DELETING = "deleting"


@dataclass(frozen=True)
class TeardownRequest:
    request: DeploymentRequest
    caller: str
    ticket: str | None
    delete_subscription: bool
    # The deploy run being torn down; a queue message names a deployment by its request, which may find none.
    deployment_run: RunRecord | None
    idempotency_key: str | None = None


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


def _redeployed_since(holder: RunRecord, deployment: RunRecord | None) -> bool:
    return (
        deployment is not None
        and deployment.deleted_by_run_id is not None
        and holder.id != deployment.id
        and holder.operation == "deploy"
        and holder.status is RunStatus.SUCCEEDED
    )


def deployment_state_problem(run: RunRecord) -> Problem | None:
    """Why `run` cannot be torn down now, if it cannot."""
    if run.operation != "deploy":
        target = f" Delete deployment run {run.deployment_run_id} instead." if run.deployment_run_id else ""
        return Problem.of(
            "deployment-state-conflict",
            f"Run {run.id} is a delete run, not a deployment.{target}",
            runStatus=run.status.value,
        )
    if run.status is RunStatus.REJECTED:
        return Problem.of(
            "deployment-state-conflict",
            f"Run {run.id} was rejected, so it deployed nothing to tear down.",
            runStatus=run.status.value,
        )
    if not run.is_terminal:
        return Problem.of(
            "deployment-state-conflict",
            f"Run {run.id} is still {run.status}; delete the deployment once it has finished.",
            runStatus=run.status.value,
        )
    return None


class Teardown(LifecycleOperation):
    def __init__(self, ports: LifecyclePorts, *, policy: PreflightPolicy) -> None:
        super().__init__(ports)
        self._policy = policy

    @property
    def catalog(self) -> ModelCatalog:
        return self._policy.catalog

    # -- intake ----------------------------------------------------------------------------------------------------

    def submit(self, ask: TeardownRequest) -> Submission:
        run_id = self._new_id()
        if ask.idempotency_key:
            owner = self._runs.claim_idempotency_key(ask.caller, ask.idempotency_key, run_id)
            if owner != run_id:
                earlier = self._runs.get(owner)
                if earlier is not None:
                    return Submission(earlier.run, created=False, problem=_problem_of(earlier.run))
                run_id = owner  # the first attempt claimed the key but never stored its run: finish its work
        deployment = ask.deployment_run
        run = (
            RunRecord.new(
                run_id=run_id,
                caller=ask.caller,
                request=ask.request,
                at=self._clock(),
                operation="delete",
                ticket=ask.ticket,
                idempotency_key=ask.idempotency_key,
            )
            .with_changes(
                at=self._clock(),
                deployment_run_id=deployment.id if deployment else None,
                delete_subscription=ask.delete_subscription,
            )
            .transition(RunStatus.VALIDATING, at=self._clock())
        )
        problem = deployment_state_problem(deployment) if deployment else None
        problem = problem or requester_problem(
            self._authorization, ask.request.workspace, ask.caller, REQUESTER_DELETE_ACTION
        )
        if problem is not None:
            return self._reject(run, problem)
        target = self._target(ask)
        if target is not None:
            # Remembered on the delete run, so that its steps work on the hub without deciding it again.
            run = run.with_changes(at=run.updated_at, cross_region=CrossRegion(hub_workspace_id=target.resource_id))
        try:
            plan = plan_for(ask.request, self._policy.catalog, target=target)
        except InvalidNameError as error:
            return self._reject(run, Problem.of("endpoint-name-invalid", str(error)))
        problem = self._what_blocks(plan, ask.delete_subscription)
        if problem is not None:
            return self._reject(run, problem)
        return self._start(run, plan, deployment)

    def _target(self, ask: TeardownRequest) -> WorkspaceId | None:
        """Where the deployment's endpoint lives: the hub of a cross-region deployment, else the workspace."""
        if ask.deployment_run is not None:
            return ask.deployment_run.deployment_target
        request, catalog = ask.request, self._policy.catalog
        if not request.allow_cross_region:
            return None
        hub = self._policy.hubs.for_model(request.model, catalog, requester=request.workspace)
        if hub is None:
            return None
        location = self._ml.get_workspace(request.workspace.resource_id).location
        return hub.workspace if catalog.supports_location(request.model, location) is False else None

    def _what_blocks(self, plan: DeploymentPlan, delete_subscription: bool) -> Problem | None:
        workspace_id = plan.workspace.resource_id
        endpoints = self._ml.list_endpoints(workspace_id)
        mine = next((item for item in endpoints if item.name.lower() == plan.endpoint_name.lower()), None)
        if mine is not None and mine.tags.get(MANAGED_BY_TAG) != MANAGED_BY_VALUE:
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

    def _start(self, run: RunRecord, plan: DeploymentPlan, deployment: RunRecord | None) -> Submission:
        holder = self._claim(plan, run.id, deployment)
        if holder is not None and holder.operation == "delete":
            # A teardown of this deployment is already under way: it answers this request too.
            return Submission(holder, created=False, problem=None)
        if holder is not None and not holder.is_terminal:
            return self._reject(
                run,
                Problem.of(
                    "deployment-state-conflict",
                    f"Run {holder.id} is deploying {plan.model.normalized} into workspace {plan.workspace.name} "
                    f"({holder.status}); delete the deployment once it has finished.",
                    runId=holder.id,
                ),
            )
        info = EndpointInfo(name=plan.endpoint_name, id=plan.endpoint_id)
        if holder is not None:
            # The deployment was torn down before and the model deployed again since: that one is not ours.
            assert deployment is not None, "only a torn-down deployment run can have been deployed again since"
            torn_down = f"deployment already torn down by run {deployment.deleted_by_run_id}"
            run = run.transition(RunStatus.DELETING, at=self._clock(), detail=torn_down, endpoint=info).transition(
                RunStatus.DELETED,
                at=self._clock(),
                detail=f"nothing deleted: run {holder.id} has deployed the model again since",
            )
            return self._store_and_announce(run, started=False)
        run = run.transition(RunStatus.DELETING, at=self._clock(), detail=self._scope(plan, run), endpoint=info)
        return self._store_and_announce(run, started=True)

    def _claim(self, plan: DeploymentPlan, run_id: str, deployment: RunRecord | None) -> RunRecord | None:
        """Take the deployment claim; the run holding it instead when it is in flight, or when it deployed the model
        again after `deployment` was torn down (its endpoint is not the one this request is about)."""
        workspace_id, model_id = plan.workspace.resource_id, plan.model.normalized
        while (owner := self._runs.claim_deployment(workspace_id, model_id, run_id)) != run_id:
            holder = settled_run(self._runs, owner)
            if holder is not None and (not holder.is_terminal or _redeployed_since(holder, deployment)):
                return holder
            if self._runs.take_over_deployment(workspace_id, model_id, owner, run_id):
                break
        return None

    def _scope(self, plan: DeploymentPlan, run: RunRecord) -> str:
        parts = [f"endpoint '{plan.endpoint_name}'", "its Key Vault secrets"]
        if run.deployment_run_id is None:
            parts.append("(no deployment run found for this request; deleting what the broker made)")
        if run.delete_subscription:
            parts.append(
                f"Marketplace subscription '{plan.subscription_name}'"
                if plan.subscription_name
                else "(the model is sold directly by Azure: no Marketplace subscription to delete)"
            )
        return "deleting " + ", ".join(parts)

    def _store_and_announce(self, run: RunRecord, *, started: bool) -> Submission:
        try:
            self._runs.create(run)
        except RecordExistsError:
            earlier = self._runs.get(run.id)
            return Submission(earlier.run, created=False, problem=_problem_of(earlier.run))
        if started:
            self._events.send(accepted_event(run, self._clock()))
            self._steps.send(WorkItem(run.id, DELETE_ENDPOINT))
        else:
            announce(self._events, run, self._clock())
        return Submission(run, created=True, problem=None)

    def _reject(self, run: RunRecord, problem: Problem) -> Submission:
        refused = rejected(run, problem, at=self._clock())
        try:
            self._runs.create(refused)
        except RecordExistsError:
            earlier = self._runs.get(run.id)
            return Submission(earlier.run, created=False, problem=_problem_of(earlier.run))
        announce(self._events, refused, self._clock())
        return Submission(refused, created=True, problem=problem)

    # -- steps -----------------------------------------------------------------------------------------------------

    def advance(self, item: WorkItem) -> None:
        stored = self._runs.get(item.run_id)
        if stored is None or stored.run.status is not RunStatus.DELETING:
            LOGGER.info("run %s is not being deleted; %s message dropped", item.run_id, item.step)
            return
        run: RunRecord = stored.run
        plan = plan_for(run.request, self._policy.catalog, target=run.deployment_target)
        step = self._delete_endpoint if item.step == DELETE_ENDPOINT else self._delete_subscription
        self._steps.run(item, lambda: step(run, plan, item), lambda code, message: self._fail(run, plan, code, message))

    def _delete_endpoint(self, run: RunRecord, plan: DeploymentPlan, item: WorkItem) -> None:
        workspace_id = plan.workspace.resource_id
        if item.operation_url and not self._steps.operation_finished(item):
            return
        endpoint = self._ml.get_endpoint(workspace_id, plan.endpoint_name)
        if endpoint is not None and endpoint.provisioning_state.lower() == DELETING and not item.operation_url:
            # Being deleted already (a redelivered message, or someone else): look again later.
            self._steps.send(item, delay_seconds=self._steps.timings.poll_seconds)
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
            self._steps.send(item, delay_seconds=self._steps.timings.poll_seconds)
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
        # The deploy run is marked first: if the worker dies before Deleted, the redelivered step repeats it all.
        if run.deployment_run_id and self._runs.get(run.deployment_run_id) is not None:
            self._runs.update(
                run.deployment_run_id, lambda current: current.with_changes(at=self._clock(), deleted_by_run_id=run.id)
            )
        self._runs.release_deployment(plan.workspace.resource_id, plan.model.normalized, run.id)
        finished = self._runs.update(
            run.id,
            lambda current: (
                current
                if current.is_terminal
                else current.transition(RunStatus.DELETED, at=self._clock(), detail=detail)
            ),
        )
        announce(self._events, finished, self._clock())

    def _fail(self, run: RunRecord, plan: DeploymentPlan, code: str, message: str) -> None:
        failed = self._runs.update(
            run.id,
            lambda current: (
                current
                if current.is_terminal
                else current.transition(RunStatus.FAILED, at=self._clock(), error=RunError(code=code, message=message))
            ),
        )
        self._runs.release_deployment(plan.workspace.resource_id, plan.model.normalized, run.id)
        announce(self._events, failed, self._clock())


def _problem_of(run: RunRecord) -> Problem | None:
    if run.status is not RunStatus.REJECTED or run.error is None:
        return None
    extensions = dict(run.error.details[0]) if run.error.details else {}
    return Problem.of(run.error.code, run.error.message, **extensions)
