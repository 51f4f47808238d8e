"""The lifecycle service the handlers and the deployment service call: teardown, key rotation, their work steps."""

from __future__ import annotations

from shared.deployments.preflight import plan_for
from shared.deployments.service import Submission
from shared.deployments.work import DELETE_ENDPOINT, DELETE_SUBSCRIPTION, ROTATE_KEY, WorkItem
from shared.lifecycle.rotation import KeyRotator, RotationOutcome
from shared.lifecycle.teardown import Teardown, TeardownRequest
from shared.model_ids import normalize_model_id
from shared.ports import RunRepositoryPort
from shared.requests import DeploymentRequest, QueueDeploymentRequest
from shared.runs import KeyRotation, RunRecord, RunStatus

PAGE_SIZE = 100


class LifecycleService:
    def __init__(self, *, runs: RunRepositoryPort, teardown: Teardown, rotator: KeyRotator) -> None:
        self._runs = runs
        self._teardown = teardown
        self._rotator = rotator

    def delete(self, run_id: str, *, caller: str, delete_subscription: bool) -> Submission | None:
        """Tear down the deployment deploy run `run_id` made; None when there is no such run."""
        stored = self._runs.get(run_id)
        if stored is None:
            return None
        run: RunRecord = stored.run
        ask = TeardownRequest(run.request, caller, run.ticket, delete_subscription, deployment_run=run)
        return self._teardown.submit(ask)

    def intake_delete(self, message: QueueDeploymentRequest, *, idempotency_key: str) -> Submission:
        """A `deployment-requests` message of type delete: it names the deployment by the body that deployed it."""
        request = message.deployment_request()
        ask = TeardownRequest(
            request,
            message.requested_by,
            message.ticket,
            message.delete_subscription,
            deployment_run=self._latest_deployment(request),
            idempotency_key=idempotency_key,
        )
        return self._teardown.submit(ask)

    def rotate(self, run_id: str, key_type: str, *, caller: str) -> RotationOutcome | None:
        """Rotate one key of the deployment run `run_id` made; None when there is no such run."""
        stored = self._runs.get(run_id)
        return None if stored is None else self._rotator.request(stored.run, key_type, caller=caller)

    def rotate_expiring(self) -> list[KeyRotation]:
        return self._rotator.rotate_expiring()

    def advance(self, item: WorkItem) -> None:
        if item.step in (DELETE_ENDPOINT, DELETE_SUBSCRIPTION):
            self._teardown.advance(item)
        elif item.step == ROTATE_KEY:
            self._rotator.advance(item)
        else:
            raise ValueError(f"step '{item.step}' is not a lifecycle step")

    def _latest_deployment(self, request: DeploymentRequest) -> RunRecord | None:
        """The newest Succeeded deploy run of this model and endpoint in the workspace, preferring one that was
        not torn down yet."""
        model = request.model.normalized.lower()
        wanted = plan_for(request, self._teardown.catalog).endpoint_name.lower()
        found: list[RunRecord] = []
        token = None
        while True:
            page = self._runs.list(
                workspace_id=request.workspace_id,
                status=RunStatus.SUCCEEDED.value,
                page_size=PAGE_SIZE,
                continuation_token=token,
            )
            found += [
                run
                for run in page.runs
                if run.operation == "deploy"
                and normalize_model_id(run.request.model_id).lower() == model
                and (run.endpoint is None or run.endpoint.name.lower() == wanted)
            ]
            token = page.continuation_token
            if not token:
                break
        found.sort(key=lambda run: (run.deleted_by_run_id is None, run.created_at))
        return found[-1] if found else None
