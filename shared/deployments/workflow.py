"""The provisioning workflow of deploy and repair runs: subscribe, provision, store keys, verify.

Each step reads Azure's state before acting and does only what differs from the spec, so a redelivered message, a
resumed run and a repair all converge on the same state: a Subscribed subscription is reused, a provisioned
endpoint is kept, and a key is written to Key Vault only when the stored value differs. The last step re-reads
everything (shared/deployments/observe.py) and the run succeeds only when Azure reports every condition True.
Each step records what it saw on the deployment's conditions. A message carrying an operation URL polls it first; the
step itself runs only once that operation has succeeded.

A step moves its run on only while its message's chain still carries the run (the step token, shared/engine.py): the
status change is written only if the run's token is still the message's, and only the step that wrote it carries on
with the next step, under the new token. A chain the watchdog replaced, or a duplicate delivery, therefore never
starts a second chain, and never announces the run's end a second time.

Carrying on happens in the same invocation: a poll that sees its operation finished goes straight into the next step
(provision, store-keys, verify) as if that step's message had arrived, admitted through the same gate, instead of
paying a queue message and the listener's pick-up delay per hand-off. Only when a step has to wait on Azure (or on
the write pacer), or the invocation has run for StepTimings.carry_on_seconds, does the chain go back to the queue. If
a step carried on this way fails unexpectedly, its message is queued after all, so the host's redelivery still
retries it as it would have before. (A host that dies mid-invocation leaves the run to the watchdog, as it always
did between a status write and the next message.)
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection
from datetime import datetime

from shared.catalog import ModelCatalog
from shared.cross_region import EndpointNotReadyError, connect
from shared.deployment import Condition, ConditionType, Deployment, condition
from shared.deployments.observe import DEFAULT_HEALTHY_STATES, PROVISIONING_IN_PROGRESS, observe
from shared.engine import (
    DEPLOY_STEPS,
    PROVISION,
    RESUME_STEP,
    STORE_KEYS,
    SUBSCRIBE,
    VERIFY,
    StepFailedError,
    StepQueue,
    WorkItem,
)
from shared.engine import STEP_STATUS as ENGINE_STEP_STATUS
from shared.key_secrets import KEY_TYPES, RUN_TAG, store_key
from shared.ownership import ownership_tags
from shared.plan import DeploymentPlan, plan_for
from shared.ports import (
    Endpoint,
    EndpointKeys,
    MachineLearningPort,
    MessageQueuePort,
    RunRepositoryPort,
    SecretStorePort,
    WorkspaceConnectionsPort,
)
from shared.redaction import default_registry
from shared.run_outcomes import announce
from shared.runs import CrossRegion, EndpointInfo, RunError, RunRecord, RunStatus, SecretIds
from shared.telemetry import BROKER_TELEMETRY, OUTCOME, BrokerTelemetry, StepOutcome

LOGGER = logging.getLogger(__name__)
SUBSCRIBED = "subscribed"
SUCCEEDED = "succeeded"
STEP_STATUS = {step: ENGINE_STEP_STATUS[step] for step in DEPLOY_STEPS}
FIRST_STEP = {status: RESUME_STEP[status] for status in STEP_STATUS.values()}


class Workflow:
    def __init__(
        self,
        *,
        runs: RunRepositoryPort,
        machine_learning: MachineLearningPort,
        secrets: SecretStorePort,
        steps: StepQueue,
        events: MessageQueuePort,
        catalog: ModelCatalog,
        clock: Callable[[], datetime],
        key_validity_days: int | None = None,
        connections: WorkspaceConnectionsPort | None = None,
        healthy_states: Collection[str] = DEFAULT_HEALTHY_STATES,
        telemetry: BrokerTelemetry = BROKER_TELEMETRY,
    ) -> None:
        self._runs = runs
        self._ml = machine_learning
        self._secrets = secrets
        self._steps = steps
        self._events = events
        self._catalog = catalog
        self._clock = clock
        # Keys get an expiry (and the dual-key rotation tags) only when a validity period is configured.
        self._key_validity_days = key_validity_days
        self._connections = connections
        self._healthy_states = healthy_states
        self._telemetry = telemetry
        self._handlers = {
            SUBSCRIBE: self._subscribe,
            PROVISION: self._provision,
            STORE_KEYS: self._store_keys,
            VERIFY: self._verify,
        }

    def start(self, run: RunRecord) -> None:
        """Queue the first step for a run that intake moved past Validating (and stored)."""
        self._steps.send(WorkItem(run.id, FIRST_STEP[run.status], step_token=run.step_token))

    def advance(self, item: WorkItem) -> None:
        """Run `item`'s step, then each step it hands the run to, until one waits, the run ends, or the invocation
        has run long enough (StepTimings.carry_on_seconds: the rest goes through the queue)."""
        started = self._steps.started()
        with self._telemetry.step_span(item.run_id, item.step) as span:
            outcome, carried = self._advance(item)
            span.set_attribute(OUTCOME, outcome)
        while carried is not None and self._steps.carry_on(carried, started=started):
            with self._telemetry.step_span(carried.run_id, carried.step) as span:
                try:
                    outcome, following = self._advance(carried)
                except Exception:
                    # The step's message goes to the queue after all, so the host retries it on its own delivery.
                    LOGGER.exception("run %s: %s failed when carried on; queued instead", carried.run_id, carried.step)
                    self._steps.send(carried)
                    return
                span.set_attribute(OUTCOME, outcome)
            carried = following

    def _advance(self, item: WorkItem) -> tuple[StepOutcome, WorkItem | None]:
        """The step's outcome, and the next step's item when the step moved the run on and that step can run now."""
        run = self._steps.admit(self._runs, item, now=self._clock())
        if run is None:
            return StepOutcome.DROPPED, None
        plan = plan_for(run.request, self._catalog, target=run.deployment_target)
        handler = self._handlers[item.step]
        carried: list[WorkItem] = []

        def step() -> StepOutcome:
            # A poll that finds the operation still running writes nothing, so it needs no claim check: most polls
            # cost the run's read, ARM's answer and the next message, and only a finished one reads the deployment.
            progress = self._steps.poll(item) if item.operation_url else None
            if item.operation_url and progress is None:
                return StepOutcome.WAITING
            if not self._still_current(run):
                self._fail(
                    run, item, "RunSuperseded", "Another run took over this deployment; this run writes nothing more."
                )
                return StepOutcome.DROPPED
            if progress is not None:
                self._steps.require_success(progress)
            result = handler(run, plan, item)
            if isinstance(result, WorkItem):
                carried.append(result)
                return StepOutcome.ADVANCED
            return result

        outcome = self._steps.run(item, step, lambda code, message: self._fail(run, item, code, message))
        return outcome, (carried[0] if carried else None)

    def _still_current(self, run: RunRecord) -> bool:
        """Whether `run` still holds its deployment's claim: only the current run may write to Azure."""
        if run.deployment_id is None:
            return True
        stored = self._runs.get_deployment(run.deployment_id)
        return stored is not None and stored.deployment.status.current_run_id == run.id

    def _subscribe(self, run: RunRecord, plan: DeploymentPlan, item: WorkItem) -> StepOutcome | WorkItem:
        workspace_id, name = plan.workspace.resource_id, plan.subscription_name
        assert name is not None, "only Marketplace models are routed through subscribe"
        subscription = self._ml.get_subscription(workspace_id, name)
        if subscription and (subscription.status or "").lower() == SUBSCRIBED:
            self._note(
                run,
                condition(
                    ConditionType.SUBSCRIPTION_READY, "True", "Subscribed", f"'{name}' is Subscribed.", at=self._clock()
                ),
            )
            return self._move_on(
                item, RunStatus.PROVISIONING, PROVISION, f"Marketplace subscription '{name}' is Subscribed"
            )
        state = (subscription.provisioning_state or "").lower() if subscription else ""
        if state in PROVISIONING_IN_PROGRESS and not item.operation_url:
            # Being created by this run's earlier chain (one the watchdog replaced, so its operation URL went with it):
            # look again later rather than subscribing a second time.
            return self._steps.look_again(item)
        if item.operation_url:
            status = subscription.status if subscription else "missing"
            raise StepFailedError(
                "MarketplaceSubscriptionNotActive",
                f"Marketplace subscription '{name}' finished creating but is {status}, so the offer cannot be used.",
            )
        if (paced := self._steps.paced(item, plan.workspace.subscription_id)) is not None:
            return paced
        return self._steps.wait(
            item, self._ml.begin_create_subscription(workspace_id, name, model_id=plan.model.normalized)
        )

    def _provision(self, run: RunRecord, plan: DeploymentPlan, item: WorkItem) -> StepOutcome | WorkItem:
        workspace_id = plan.workspace.resource_id
        endpoint = self._ml.get_endpoint(workspace_id, plan.endpoint_name)
        if endpoint is not None:
            state = endpoint.provisioning_state.lower()
            if state == SUCCEEDED:
                self._note(
                    run,
                    condition(
                        ConditionType.ENDPOINT_READY,
                        "True",
                        "Provisioned",
                        f"'{endpoint.name}' is provisioned.",
                        at=self._clock(),
                    ),
                )
                return self._move_on(
                    item, RunStatus.STORING_KEYS, STORE_KEYS, f"endpoint '{endpoint.name}' is provisioned"
                )
            if state in PROVISIONING_IN_PROGRESS:
                return self._steps.look_again(item)
            if item.operation_url:
                raise StepFailedError(
                    "EndpointProvisioningFailed",
                    f"Endpoint '{endpoint.name}' ended {endpoint.provisioning_state}.",
                )
        workspace = self._ml.get_workspace(workspace_id)
        if (paced := self._steps.paced(item, plan.workspace.subscription_id)) is not None:
            return paced
        operation = self._ml.begin_create_endpoint(
            workspace_id,
            plan.endpoint_name,
            model_id=plan.model.normalized,
            location=workspace.location,
            content_safety=run.request.content_safety,
            tags=_endpoint_tags(run),
        )
        return self._steps.wait(item, operation)

    def _store_keys(self, run: RunRecord, plan: DeploymentPlan, item: WorkItem) -> StepOutcome | WorkItem:
        workspace_id = plan.workspace.resource_id
        endpoint = self._ml.get_endpoint(workspace_id, plan.endpoint_name)
        if endpoint is None:
            raise StepFailedError(
                "EndpointNotFound", f"Endpoint '{plan.endpoint_name}' disappeared before its keys were stored."
            )
        # listKeys is a POST: ARM counts it against the subscription's writes.
        if (paced := self._steps.paced(item, plan.workspace.subscription_id)) is not None:
            return paced
        keys = self._ml.list_keys(workspace_id, plan.endpoint_name)
        default_registry.register(keys.primary, keys.secondary)
        secret_ids, written = self._write_secrets(run, plan, keys)
        cross_region = self._connect(run, endpoint, keys)
        info = EndpointInfo(name=endpoint.name, id=endpoint.id, scoring_uri=endpoint.scoring_uri)
        detail = ("keys stored in Key Vault" if written else "Key Vault already holds the current keys") + (
            ", connection created" if cross_region else ""
        )
        self._note(
            run,
            condition(
                ConditionType.KEYS_STORED, "True", "Stored", "Both endpoint keys are in Key Vault.", at=self._clock()
            ),
        )

        def stored(current: RunRecord) -> RunRecord:
            moved = current.transition(
                RunStatus.VERIFYING, at=self._clock(), detail=detail, endpoint=info, secret_ids=secret_ids
            )
            return moved.with_changes(at=moved.updated_at, cross_region=cross_region) if cross_region else moved

        moved, made = self._fenced(item, stored)
        return item.next(VERIFY, step_token=moved.step_token) if made else StepOutcome.ADVANCED

    def _verify(self, run: RunRecord, plan: DeploymentPlan, item: WorkItem) -> StepOutcome:
        seen = observe(
            plan,
            machine_learning=self._ml,
            secrets=self._secrets,
            at=self._clock(),
            healthy_states=self._healthy_states,
        )
        if not seen.all_true:
            # Recorded before failing too, so the deployment says which condition failed rather than what was pending.
            self._note(run, *seen.conditions)
            if seen.settling and item.attempt < self._steps.timings.max_verify_attempts:
                return self._steps.later(item)
            raise StepFailedError(
                "DeploymentNotHealthy", f"Azure does not report the deployment whole: {seen.summary()}."
            )
        endpoint = seen.endpoint
        assert endpoint is not None, "EndpointReady is True only when the endpoint exists"
        info = EndpointInfo(name=endpoint.name, id=endpoint.id, scoring_uri=endpoint.scoring_uri)
        done = run.transition(
            RunStatus.SUCCEEDED, at=self._clock(), detail="Azure reports every condition True", endpoint=info
        )
        # The deployment is marked first: if the worker dies before the run is, the redelivered step repeats both.
        keys_written = any(secret is not None and secret.tags.get(RUN_TAG) == run.id for secret in seen.secrets)
        if run.deployment_id:
            self._runs.update_deployment(
                run.deployment_id,
                lambda current: current.run_finished(
                    done, at=self._clock(), conditions=seen.conditions, keys_written=keys_written
                ),
            )
        finished, made = self._fenced(
            item,
            lambda current: current.transition(
                RunStatus.SUCCEEDED, at=self._clock(), detail="Azure reports every condition True", endpoint=info
            ),
        )
        if made:
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

    def _write_secrets(self, run: RunRecord, plan: DeploymentPlan, keys: EndpointKeys) -> tuple[SecretIds, bool]:
        """Key Vault's secret ids for both keys, writing a new version only where the stored value differs (or the
        secret is missing or disabled); whether anything was written."""
        now = self._clock()
        ids: dict[str, str] = {}
        written = False
        for key_type in KEY_TYPES:
            value = getattr(keys, key_type)
            name = getattr(plan.secret_names, key_type)
            current = self._secrets.get_secret(name)
            if current is not None and current.enabled and self._secrets.get_secret_value(name) == value:
                ids[key_type] = current.id
                continue
            stored = store_key(
                self._secrets,
                plan,
                run_id=run.id,
                key_type=key_type,
                value=value,
                validity_days=self._key_validity_days,
                now=now,
            )
            ids[key_type] = stored.id
            written = True
        return SecretIds(**ids), written

    def _note(self, run: RunRecord, *conditions: Condition) -> None:
        """Record what a step saw on the deployment, unless another run has taken it over since."""
        if run.deployment_id is None:
            return

        def noted(current: Deployment) -> Deployment:
            if current.status.current_run_id != run.id:
                return current
            return current.with_conditions(conditions, at=self._clock())

        self._runs.update_deployment(run.deployment_id, noted)

    def _fenced(self, item: WorkItem, change: Callable[[RunRecord], RunRecord]) -> tuple[RunRecord, bool]:
        """Apply the status change `change` to `item`'s run while `item`'s chain still carries it (same step token,
        still at the step): the run as stored, and whether this call changed it (False when another chain, or an
        earlier delivery, moved it first)."""
        made = False

        def fenced(current: RunRecord) -> RunRecord:
            nonlocal made
            made = current.step_token == item.step_token and current.status is STEP_STATUS[item.step]
            return change(current) if made else current

        stored = self._runs.update(item.run_id, fenced)
        if not made:
            LOGGER.info("run %s: this %s chain no longer carries the run; nothing written", item.run_id, item.step)
        return stored, made

    def _move_on(self, item: WorkItem, status: RunStatus, step: str, detail: str) -> StepOutcome | WorkItem:
        """Move the run to `status`; `step`'s item, under the token the move gave it, for the caller to carry on with
        (ADVANCED without one when another chain or delivery moved the run first)."""
        moved, made = self._fenced(item, lambda current: current.transition(status, at=self._clock(), detail=detail))
        return item.next(step, step_token=moved.step_token) if made else StepOutcome.ADVANCED

    def _fail(self, run: RunRecord, item: WorkItem, code: str, message: str) -> None:
        error = RunError(code=code, message=message)
        failed, made = self._fenced(
            item, lambda current: current.transition(RunStatus.FAILED, at=self._clock(), error=error)
        )
        # The deployment hears of the run's end either way (a no-op unless the run ended and is still its current
        # run); only the chain whose write ended the run announces it.
        if run.deployment_id:
            self._runs.update_deployment(
                run.deployment_id, lambda current: current.run_finished(failed, at=self._clock())
            )
        if made:
            self._announce(failed)

    def _announce(self, run: RunRecord) -> None:
        announce(self._events, run, self._clock(), self._telemetry, joiners=self._runs.joiners(run.id))


def _endpoint_tags(run: RunRecord) -> dict[str, str]:
    return {**(run.request.tags or {}), **ownership_tags(), "brokerRunId": run.id}
