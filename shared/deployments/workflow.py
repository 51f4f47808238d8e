"""The provisioning workflow: one idempotent step per work-queue message, never waiting on Azure in-process.

Each step reads the current state in Azure before acting, so a redelivered or resumed message repeats nothing
harmful. A long-running operation is started, and its status URL travels in a delayed message; the next step runs
when ARM's Retry-After says it is worth asking again. Transient failures go back on the queue with backoff;
permanent ones end the run Failed with Azure's own code and message.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from shared.azure_errors import AzureCallError
from shared.catalog import ModelCatalog
from shared.deployments.preflight import MANAGED_BY_TAG, MANAGED_BY_VALUE, DeploymentPlan, plan_for
from shared.deployments.work import PROVISION, STORE_KEYS, SUBSCRIBE, WorkItem
from shared.events import deployment_event, event_kind_for
from shared.lifecycle.connections import EndpointNotReadyError, connect
from shared.lifecycle.key_secrets import KEY_TYPES, store_key
from shared.ports import (
    Endpoint,
    EndpointKeys,
    MachineLearningPort,
    MessageQueuePort,
    Operation,
    RunRepositoryPort,
    SecretStorePort,
    WorkspaceConnectionsPort,
)
from shared.redaction import default_registry
from shared.runs import CrossRegion, EndpointInfo, RunError, RunRecord, RunStatus, SecretIds
from shared.telemetry import BROKER_TELEMETRY, OUTCOME, BrokerTelemetry, StepOutcome

LOGGER = logging.getLogger(__name__)
SUBSCRIBED = "subscribed"
SUCCEEDED = "succeeded"
IN_PROGRESS_STATES = frozenset({"creating", "updating", "accepted", "running", "inprogress"})
STEP_STATUS = {
    SUBSCRIBE: RunStatus.SUBSCRIBING,
    PROVISION: RunStatus.PROVISIONING,
    STORE_KEYS: RunStatus.STORING_KEYS,
}


@dataclass(frozen=True)
class WorkflowTimings:
    """When to look again: ARM's Retry-After wins; these apply when it gives none."""

    poll_seconds: float = 5.0
    max_transient_attempts: int = 8
    max_backoff_seconds: float = 60.0

    def backoff(self, attempt: int, retry_after: float | None) -> float:
        return retry_after if retry_after else min(self.max_backoff_seconds, 2.0**attempt)


class StepFailedError(Exception):
    """Azure finished an operation unsuccessfully; the run fails with this code and message."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


class Workflow:
    def __init__(
        self,
        *,
        runs: RunRepositoryPort,
        machine_learning: MachineLearningPort,
        secrets: SecretStorePort,
        work_queue: MessageQueuePort,
        events: MessageQueuePort,
        catalog: ModelCatalog,
        clock: Callable[[], datetime],
        timings: WorkflowTimings | None = None,
        key_validity_days: int | None = None,
        connections: WorkspaceConnectionsPort | None = None,
        telemetry: BrokerTelemetry = BROKER_TELEMETRY,
    ) -> None:
        self._runs = runs
        self._ml = machine_learning
        self._secrets = secrets
        self._work = work_queue
        self._events = events
        self._catalog = catalog
        self._clock = clock
        self._timings = timings or WorkflowTimings()
        # Keys get an expiry (and the dual-key rotation tags) only when a validity period is configured.
        self._key_validity_days = key_validity_days
        self._connections = connections
        self._telemetry = telemetry
        self._steps = {SUBSCRIBE: self._subscribe, PROVISION: self._provision, STORE_KEYS: self._store_keys}

    def start(self, run: RunRecord) -> None:
        """Queue the first step for a run that intake moved past Validating."""
        first = {
            RunStatus.SUBSCRIBING: SUBSCRIBE,
            RunStatus.PROVISIONING: PROVISION,
            RunStatus.STORING_KEYS: STORE_KEYS,
        }
        self._work.send(WorkItem(run.id, first[run.status]).to_message())

    def advance(self, item: WorkItem) -> None:
        with self._telemetry.step_span(item.run_id, item.step) as span:
            span.set_attribute(OUTCOME, self._advance(item))

    def _advance(self, item: WorkItem) -> StepOutcome:
        stored = self._runs.get(item.run_id)
        if stored is None:
            LOGGER.warning("work item for unknown run %s dropped", item.run_id)
            return StepOutcome.DROPPED
        run: RunRecord = stored.run
        if run.status is not STEP_STATUS[item.step]:
            # A duplicate or stale delivery: the run already moved past (or never reached) this step.
            LOGGER.info("run %s is %s; %s message dropped", run.id, run.status, item.step)
            return StepOutcome.DROPPED
        plan = plan_for(run.request, self._catalog, target=run.deployment_target)
        try:
            return self._steps[item.step](run, plan, item)
        except StepFailedError as failure:
            self._fail(run.id, plan, failure.code, failure.message)
        except AzureCallError as error:
            if error.transient and item.attempt < self._timings.max_transient_attempts:
                delay = self._timings.backoff(item.attempt, error.retry_after)
                LOGGER.info("run %s step %s: transient %s, retrying in %.0fs", run.id, item.step, error.code, delay)
                self._work.send(item.retried().to_message(), delay_seconds=delay)
                return StepOutcome.RETRIED
            self._fail(run.id, plan, error.code, error.message)
        return StepOutcome.FAILED

    def _subscribe(self, run: RunRecord, plan: DeploymentPlan, item: WorkItem) -> StepOutcome:
        workspace_id, name = plan.workspace.resource_id, plan.subscription_name
        assert name is not None, "only Marketplace models are routed through subscribe"
        if item.operation_url and not self._operation_finished(item):
            return StepOutcome.WAITING
        subscription = self._ml.get_subscription(workspace_id, name)
        if subscription and (subscription.status or "").lower() == SUBSCRIBED:
            self._move(run.id, RunStatus.PROVISIONING, f"Marketplace subscription '{name}' is Subscribed")
            self._work.send(item.next(PROVISION).to_message())
            return StepOutcome.ADVANCED
        if item.operation_url:
            status = subscription.status if subscription else "missing"
            raise StepFailedError(
                "MarketplaceSubscriptionNotActive",
                f"Marketplace subscription '{name}' finished creating but is {status}, so the offer cannot be used.",
            )
        return self._wait(item, self._ml.begin_create_subscription(workspace_id, name, model_id=plan.model.normalized))

    def _provision(self, run: RunRecord, plan: DeploymentPlan, item: WorkItem) -> StepOutcome:
        workspace_id = plan.workspace.resource_id
        if item.operation_url and not self._operation_finished(item):
            return StepOutcome.WAITING
        endpoint = self._ml.get_endpoint(workspace_id, plan.endpoint_name)
        if endpoint is not None:
            state = endpoint.provisioning_state.lower()
            if state == SUCCEEDED:
                self._move(run.id, RunStatus.STORING_KEYS, f"endpoint '{endpoint.name}' is provisioned")
                self._work.send(item.next(STORE_KEYS).to_message())
                return StepOutcome.ADVANCED
            if state in IN_PROGRESS_STATES:
                self._work.send(item.to_message(), delay_seconds=self._timings.poll_seconds)
                return StepOutcome.WAITING
            if item.operation_url:
                raise StepFailedError(
                    "EndpointProvisioningFailed",
                    f"Endpoint '{endpoint.name}' ended {endpoint.provisioning_state}.",
                )
        workspace = self._ml.get_workspace(workspace_id)
        operation = self._ml.begin_create_endpoint(
            workspace_id,
            plan.endpoint_name,
            model_id=plan.model.normalized,
            location=workspace.location,
            content_safety=run.request.content_safety,
            tags=_endpoint_tags(run),
        )
        return self._wait(item, operation)

    def _store_keys(self, run: RunRecord, plan: DeploymentPlan, item: WorkItem) -> StepOutcome:
        workspace_id = plan.workspace.resource_id
        endpoint = self._ml.get_endpoint(workspace_id, plan.endpoint_name)
        if endpoint is None:
            raise StepFailedError(
                "EndpointNotFound", f"Endpoint '{plan.endpoint_name}' disappeared before its keys were stored."
            )
        keys = self._ml.list_keys(workspace_id, plan.endpoint_name)
        default_registry.register(keys.primary, keys.secondary)
        secret_ids = self._write_secrets(run, plan, keys)
        cross_region = self._connect(run, endpoint, keys)
        info = EndpointInfo(name=endpoint.name, id=endpoint.id, scoring_uri=endpoint.scoring_uri)

        def succeed(current: RunRecord) -> RunRecord:
            done = current.transition(
                RunStatus.SUCCEEDED,
                at=self._clock(),
                detail="keys stored in Key Vault" + (", connection created" if cross_region else ""),
                endpoint=info,
                secret_ids=secret_ids,
            )
            return done.with_changes(at=done.updated_at, cross_region=cross_region) if cross_region else done

        finished = self._runs.update(run.id, succeed)
        self._announce(finished)
        return StepOutcome.ADVANCED

    def _connect(self, run: RunRecord, endpoint: Endpoint, keys: EndpointKeys) -> CrossRegion | None:
        """For a cross-region deployment, the connection from the requester's project to the hub's endpoint."""
        if run.cross_region is None:
            return None
        assert self._connections is not None, "cross-region deployments need the connections adapter"
        current = run.cross_region.connection
        try:
            connection = connect(
                self._connections,
                run,
                endpoint=endpoint,
                keys=keys,
                key_type=current.key_type if current else "primary",
            )
        except EndpointNotReadyError as error:
            raise StepFailedError("EndpointNotReady", str(error)) from error
        return run.cross_region.model_copy(update={"connection": connection})

    def _write_secrets(self, run: RunRecord, plan: DeploymentPlan, keys: EndpointKeys) -> SecretIds:
        now = self._clock()
        stored = {
            key_type: store_key(
                self._secrets,
                plan,
                run_id=run.id,
                key_type=key_type,
                value=getattr(keys, key_type),
                validity_days=self._key_validity_days,
                now=now,
            )
            for key_type in KEY_TYPES
        }
        return SecretIds(**{key_type: secret.id for key_type, secret in stored.items()})

    def _operation_finished(self, item: WorkItem) -> bool:
        """Poll the operation once; False (and a delayed re-poll queued) while it is still running."""
        assert item.operation_url is not None
        progress = self._ml.get_operation(Operation(item.operation_url))
        if not progress.done:
            delay = progress.retry_after or self._timings.poll_seconds
            self._work.send(item.to_message(), delay_seconds=delay)
            return False
        if not progress.succeeded:
            raise StepFailedError(
                progress.error_code or "OperationFailed", progress.error_message or "Azure reported failure."
            )
        return True

    def _wait(self, item: WorkItem, operation: Operation | None) -> StepOutcome:
        if operation is None:
            # Finished synchronously (200/201 without an operation header): look at the resource again.
            self._work.send(item.retried().to_message(), delay_seconds=1)
            return StepOutcome.WAITING
        delay = operation.retry_after or self._timings.poll_seconds
        self._work.send(item.polling(operation.url).to_message(), delay_seconds=delay)
        return StepOutcome.WAITING

    def _move(self, run_id: str, status: RunStatus, detail: str) -> None:
        self._runs.update(run_id, lambda current: current.transition(status, at=self._clock(), detail=detail))

    def _fail(self, run_id: str, plan: DeploymentPlan, code: str, message: str) -> None:
        failed = self._runs.update(
            run_id,
            lambda current: (
                current
                if current.is_terminal
                else current.transition(RunStatus.FAILED, at=self._clock(), error=RunError(code=code, message=message))
            ),
        )
        self._runs.release_deployment(plan.workspace.resource_id, plan.model.normalized, run_id)
        self._announce(failed)

    def _announce(self, run: RunRecord) -> None:
        if event_kind_for(run.status) is not None:
            self._events.send(deployment_event(run, time=self._clock()))
            self._telemetry.run_finished(run)


def _endpoint_tags(run: RunRecord) -> dict[str, str]:
    return {**(run.request.tags or {}), MANAGED_BY_TAG: MANAGED_BY_VALUE, "brokerRunId": run.id}
