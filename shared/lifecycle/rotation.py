"""Key rotation: regenerate exactly one endpoint key through ARM's regenerateKeys operation (the SDK's own call never
sends it, azure-facts §1) and store the new value as a new version of that key's secret, with a fresh expiry and the
dual-key tags. The other key is never touched, so consumers switch keys without downtime.

Scheduled rotation follows the dual-key pattern: when a key's secret nears expiry (or has expired), the ALTERNATE
key - the one consumers were not using - is regenerated and becomes the fresh credential, while the expiring one
keeps working until consumers have moved. Each expiring secret version triggers one rotation, remembered on the run
(`keyRotations[].triggerSecret`), so a daily timer never rotates twice for the same expiry.

A rotation is recorded on the deployment's run (`keyRotations`: Pending -> Regenerating -> Rotated | Failed) and
runs from the work queue: regenerateKeys may answer 200 with the keys or 202 with a Location to poll, and the
polling travels in delayed messages like every other long-running operation. A cross-region deployment's connection
is first pointed at the other key, so the project using it never holds a key being regenerated.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from shared.catalog import ModelCatalog
from shared.cross_region import EndpointNotReadyError, connect
from shared.deployment import Deployment, Phase
from shared.engine import ROTATE_KEY, StepFailedError, WorkItem
from shared.events import key_rotation_event
from shared.key_secrets import (
    CREDENTIAL_ID_TAG,
    KEY_TYPE_TAG,
    KEY_TYPES,
    RUN_TAG,
    SECRET_CONTENT_TYPE,
    alternate,
    key_expiry,
    store_key,
)
from shared.lifecycle.steps import LifecycleOperation, LifecyclePorts
from shared.ownership import MANAGED_BY_TAG, MANAGED_BY_VALUE
from shared.plan import DeploymentPlan, plan_for
from shared.ports import (
    StoredSecret,
)
from shared.problems import Problem
from shared.redaction import default_registry
from shared.required_permissions import REQUESTER_ROTATE_ACTION
from shared.run_outcomes import requester_problem, update_once
from shared.runs import KeyRotation, RunError, RunRecord, RunStatus, SecretIds

LOGGER = logging.getLogger(__name__)
# A deployment being torn down, or torn down, has no keys to rotate: its endpoint and secrets are going or gone.
NO_KEYS_PHASES = frozenset({Phase.DELETING, Phase.DELETED})


@dataclass(frozen=True)
class RotationOutcome:
    run: RunRecord
    rotation: KeyRotation | None
    problem: Problem | None


@dataclass(frozen=True)
class KeyPolicy:
    """How long a key is valid, and how long before expiry its alternate is rotated (from configuration)."""

    validity_days: int
    window_days: int


def is_broker_key_secret(secret: StoredSecret) -> bool:
    tags = secret.tags
    return (
        secret.content_type == SECRET_CONTENT_TYPE
        and tags.get(MANAGED_BY_TAG) == MANAGED_BY_VALUE
        and bool(tags.get(RUN_TAG))
        and (tags.get(CREDENTIAL_ID_TAG) or tags.get(KEY_TYPE_TAG)) in KEY_TYPES
    )


def secrets_due(secrets: Iterable[StoredSecret], *, now: datetime, window: timedelta) -> list[StoredSecret]:
    """The broker's enabled key secrets whose current version expires within `window` (or has expired), in name
    order; a secret without an expiry is never due."""
    horizon = now + window
    due = [
        secret
        for secret in secrets
        if secret.enabled and secret.expires_on is not None and secret.expires_on <= horizon
        if is_broker_key_secret(secret)
    ]
    return sorted(due, key=lambda secret: secret.name)


def trigger_of(secret: StoredSecret) -> str:
    """Identifies one version's expiry: a new version (or a new expiry) is a new trigger."""
    assert secret.expires_on is not None
    return f"{secret.name}@{secret.expires_on.isoformat()}"


def rotation_problem(run: RunRecord) -> Problem | None:
    """Why `run`'s keys cannot be rotated now, if they cannot."""
    if run.operation == "delete" or run.status is not RunStatus.SUCCEEDED:
        return Problem.of(
            "deployment-state-conflict",
            f"Run {run.id} is a {run.operation} run in status {run.status}; only a Succeeded deployment has keys "
            "to rotate.",
            runStatus=run.status.value,
        )
    pending = run.pending_rotation
    if pending is not None:
        return Problem.of(
            "deployment-state-conflict",
            f"Rotation {pending.id} of the {pending.key_type} key is still {pending.status}; rotate again once it "
            "has finished.",
            rotationId=pending.id,
        )
    return None


def keys_problem(deployment: Deployment, keys_run: RunRecord | None) -> Problem | None:
    """Why `deployment` has no keys to rotate (`keys_run` is the run whose secrets hold them), if it has none."""
    if deployment.status.phase not in NO_KEYS_PHASES and keys_run is not None:
        return None
    return Problem.of(
        "deployment-state-conflict",
        f"Deployment {deployment.id} is {deployment.status.phase} and has no keys to rotate.",
        deploymentId=deployment.id,
        phase=deployment.status.phase.value,
    )


class KeyRotator(LifecycleOperation):
    def __init__(self, ports: LifecyclePorts, *, catalog: ModelCatalog, policy: KeyPolicy) -> None:
        super().__init__(ports)
        self._catalog = catalog
        self._policy = policy

    # -- starting a rotation ---------------------------------------------------------------------------------------

    def request(self, run: RunRecord, key_type: str, *, caller: str) -> RotationOutcome:
        """Rotate `key_type` of `run`'s endpoint for `caller`, who must be allowed to regenerate its keys."""
        problem = rotation_problem(run) or requester_problem(
            self._authorization, run.request.workspace, caller, REQUESTER_ROTATE_ACTION
        )
        if problem is not None:
            return RotationOutcome(run, None, problem)
        return self._start(run, key_type, trigger="manual", requested_by=caller)

    def rotate_expiring(self) -> list[KeyRotation]:
        """The timer's pass: for each key secret due, rotate its alternate key (once per expiring version)."""
        started = []
        now = self._clock()
        window = timedelta(days=self._policy.window_days)
        for secret in secrets_due(self._secrets.list_secrets(), now=now, window=window):
            stored = self._runs.get(secret.tags[RUN_TAG])
            trigger = trigger_of(secret)
            if stored is None or rotation_problem(stored.run) is not None or self._torn_down(stored.run):
                continue
            if any(rotation.trigger_secret == trigger for rotation in stored.run.key_rotations):
                continue
            expiring = secret.tags.get(CREDENTIAL_ID_TAG) or secret.tags[KEY_TYPE_TAG]
            assert secret.expires_on is not None
            state = "expired" if secret.expires_on <= now else "expires"
            outcome = self._start(
                stored.run,
                alternate(expiring),
                trigger="scheduled",
                reason=f"secret {secret.name} ({expiring} key) {state} {secret.expires_on.isoformat()}",
                trigger_secret=trigger,
            )
            if outcome.rotation is not None:
                started.append(outcome.rotation)
        return started

    def _torn_down(self, run: RunRecord) -> Phase | None:
        """The phase of `run`'s deployment when it is being (or has been) torn down; None otherwise."""
        stored = self._runs.get_deployment(run.deployment_id) if run.deployment_id else None
        phase = stored.deployment.status.phase if stored else None
        return phase if phase in NO_KEYS_PHASES else None

    def _start(self, run: RunRecord, key_type: str, *, trigger: str, **details: str) -> RotationOutcome:
        rotation = KeyRotation(
            id=self._new_id(),
            key_type=key_type,
            trigger=trigger,
            status="Pending",
            requested_at=self._clock(),
            **details,
        )

        def add(current: RunRecord) -> RunRecord:
            # Another rotation may have started since `run` was read: then this one does not.
            if rotation_problem(current) is not None:
                return current
            # A rotation is a new chain of steps on the run: a message left from an earlier one no longer counts.
            added = current.with_changes(at=self._clock(), key_rotations=(*current.key_rotations, rotation))
            return added.rechained(at=added.updated_at)

        updated = self._runs.update(run.id, add)
        if updated.pending_rotation is None or updated.pending_rotation.id != rotation.id:
            return RotationOutcome(updated, None, rotation_problem(updated))
        self._steps.send(WorkItem(run.id, ROTATE_KEY, step_token=updated.step_token))
        return RotationOutcome(updated, rotation, None)

    # -- the rotate-key step ---------------------------------------------------------------------------------------

    def advance(self, item: WorkItem) -> None:
        # Only a message of the run's current chain, while a rotation is in progress, goes on (shared/engine.py).
        run = self._steps.admit(self._runs, item, now=self._clock())
        rotation = run.pending_rotation if run else None
        if run is None or rotation is None:
            return
        plan = plan_for(run.request, self._catalog, target=run.deployment_target)
        self._steps.run(
            item,
            lambda: self._rotate(run, rotation, plan, item),
            lambda code, message: self._finish(run.id, rotation.id, error=RunError(code=code, message=message)),
        )

    def _rotate(self, run: RunRecord, rotation: KeyRotation, plan: DeploymentPlan, item: WorkItem) -> None:
        workspace_id, name = plan.workspace.resource_id, plan.endpoint_name
        phase = self._torn_down(run)
        if phase is not None:
            # A teardown started since the rotation was asked for: its endpoint's keys are not regenerated, nor
            # its secrets written again behind the teardown.
            raise StepFailedError("DeploymentDeleted", f"Deployment {run.deployment_id} is {phase}; no key rotated.")
        if rotation.status == "Pending":
            self._move_connection_off(run, plan, rotation.key_type)
            operation = self._ml.regenerate_key(workspace_id, name, rotation.key_type)
            regenerating = self._regenerating(run.id, rotation.id, operation.url if operation else None)
            if not regenerating:
                return  # another delivery of this step regenerated the key meanwhile and carries the rotation on
            if operation is not None:
                self._steps.wait(item, operation)
                return
        else:
            # Regenerating: the operation to wait for travels in the message, and on the rotation for redeliveries.
            url = item.operation_url or rotation.operation_url
            if url:
                polled = item if item.operation_url else item.polling(url, since=self._clock().timestamp())
                if not self._steps.operation_finished(polled):
                    return
        self._store(run, rotation, plan)

    def _move_connection_off(self, run: RunRecord, plan: DeploymentPlan, key_type: str) -> None:
        """Point a cross-region connection at the other key before `key_type` is regenerated."""
        connection = run.cross_region.connection if run.cross_region else None
        if connection is None or connection.key_type != key_type:
            return
        endpoint = self._ml.get_endpoint(plan.workspace.resource_id, plan.endpoint_name)
        if endpoint is None:
            raise StepFailedError("EndpointNotFound", f"Endpoint '{plan.endpoint_name}' no longer exists.")
        keys = self._ml.list_keys(plan.workspace.resource_id, plan.endpoint_name)
        default_registry.register(keys.primary, keys.secondary)
        try:
            moved = connect(self._connections, run, endpoint=endpoint, keys=keys, key_type=alternate(key_type))
        except EndpointNotReadyError as error:
            raise StepFailedError("EndpointNotReady", str(error)) from error
        assert run.cross_region is not None
        cross_region = run.cross_region.model_copy(update={"connection": moved})
        self._runs.update(run.id, lambda current: current.with_changes(at=self._clock(), cross_region=cross_region))

    def _store(self, run: RunRecord, rotation: KeyRotation, plan: DeploymentPlan) -> None:
        keys = self._ml.list_keys(plan.workspace.resource_id, plan.endpoint_name)
        default_registry.register(keys.primary, keys.secondary)
        key_type = rotation.key_type
        now = self._clock()
        stored = store_key(
            self._secrets,
            plan,
            run_id=run.id,
            key_type=key_type,
            value=getattr(keys, key_type),
            validity_days=self._policy.validity_days,
            now=now,
        )
        self._finish(run.id, rotation.id, secret_id=stored.id, expires_on=key_expiry(now, self._policy.validity_days))

    def _regenerating(self, run_id: str, rotation_id: str, operation_url: str | None) -> bool:
        """Record that the key is being regenerated, if the rotation is still Pending; whether this call did."""

        def change(current: RunRecord) -> RunRecord | None:
            rotation = next(item for item in current.key_rotations if item.id == rotation_id)
            if rotation.status != "Pending":
                return None
            moved = _changed(rotation, status="Regenerating", operation_url=operation_url)
            rotations = tuple(moved if item.id == rotation_id else item for item in current.key_rotations)
            return current.with_changes(at=self._clock(), key_rotations=rotations)

        return update_once(self._runs, run_id, change)[1]

    def _finish(
        self,
        run_id: str,
        rotation_id: str,
        *,
        secret_id: str | None = None,
        expires_on: datetime | None = None,
        error: RunError | None = None,
    ) -> None:
        def change(current: RunRecord) -> RunRecord | None:
            rotation = next(item for item in current.key_rotations if item.id == rotation_id)
            if not rotation.in_progress:
                return None
            done = _changed(
                rotation,
                status="Failed" if error else "Rotated",
                secret_id=secret_id,
                expires_on=expires_on,
                completed_at=self._clock(),
                error=error,
            )
            rotations = tuple(done if item.id == rotation_id else item for item in current.key_rotations)
            ids = current.secret_ids
            if secret_id and ids is not None:
                # The run points at the key's current version, so readers of the record fetch the live key.
                ids = SecretIds.model_validate({**ids.model_dump(), rotation.key_type: secret_id})
            return current.with_changes(at=self._clock(), key_rotations=rotations, secret_ids=ids)

        finished, made = update_once(self._runs, run_id, change)
        if not made:
            return  # another delivery of this step finished the rotation and announced it
        if finished.deployment_id and finished.secret_ids is not None:
            ids = finished.secret_ids

            def follow(current: Deployment) -> Deployment:
                # The deployment shows the live key versions while this run's secrets hold its keys.
                if current.status.keys_run_id != run_id:
                    return current
                return current.changed(at=self._clock(), secret_ids=ids)

            self._runs.update_deployment(finished.deployment_id, follow)
        rotation = next(item for item in finished.key_rotations if item.id == rotation_id)
        self._events.send(key_rotation_event(finished, rotation, time=self._clock()))


def _changed(rotation: KeyRotation, **changes: object) -> KeyRotation:
    return KeyRotation.model_validate({**dict(rotation), **changes})
