"""The lifecycle service the handlers and the deployment service call: teardown, key rotation, their work steps."""

from __future__ import annotations

from shared.deployment import deployment_id
from shared.engine import DELETE_ENDPOINT, DELETE_SUBSCRIPTION, ROTATE_KEY, WorkItem
from shared.lifecycle.rotation import KeyRotator, RotationOutcome, keys_problem
from shared.lifecycle.teardown import Teardown
from shared.ports import RunRepositoryPort
from shared.problems import Problem
from shared.requests import QueueDeploymentRequest
from shared.run_outcomes import Submission
from shared.runs import KeyRotation


class LifecycleService:
    def __init__(self, *, runs: RunRepositoryPort, teardown: Teardown, rotator: KeyRotator) -> None:
        self._runs = runs
        self._teardown = teardown
        self._rotator = rotator

    def delete(self, the_id: str, *, caller: str, delete_subscription: bool) -> Submission | None:
        """Tear deployment `the_id` down; None when there is no such deployment."""
        return self._teardown.submit(the_id, caller=caller, delete_subscription=delete_subscription)

    def intake_delete(self, message: QueueDeploymentRequest, *, idempotency_key: str) -> Submission:
        """A `deployment-requests` message of type delete: it names the deployment by its workspace and model."""
        request = message.deployment_request()
        the_id = deployment_id(request.workspace, request.model)
        submission = self._teardown.submit(
            the_id,
            caller=message.requested_by,
            delete_subscription=message.delete_subscription,
            ticket=message.ticket,
            idempotency_key=idempotency_key,
        )
        return submission or self._teardown.refuse_unknown(
            request, caller=message.requested_by, ticket=message.ticket, idempotency_key=idempotency_key
        )

    def rotate(self, the_id: str, key_type: str, *, caller: str) -> RotationOutcome | Problem | None:
        """Rotate one key of deployment `the_id`; None when there is no such deployment, a problem when it has no
        keys to rotate."""
        stored = self._runs.get_deployment(the_id)
        if stored is None:
            return None
        deployment = stored.deployment
        keys_run = self._runs.get(deployment.status.keys_run_id) if deployment.status.keys_run_id else None
        problem = keys_problem(deployment, keys_run.run if keys_run else None)
        if problem is not None:
            return problem
        assert keys_run is not None, "a deployment with keys names the run holding them"
        return self._rotator.request(keys_run.run, key_type, caller=caller)

    def rotate_expiring(self) -> list[KeyRotation]:
        return self._rotator.rotate_expiring()

    def advance(self, item: WorkItem) -> None:
        if item.step in (DELETE_ENDPOINT, DELETE_SUBSCRIPTION):
            self._teardown.advance(item)
        elif item.step == ROTATE_KEY:
            self._rotator.advance(item)
        else:
            raise ValueError(f"step '{item.step}' is not a lifecycle step")
