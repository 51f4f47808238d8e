"""What the rules see in one scan: the inventory, the broker's secrets, runs and deployments, and which loaded.

A source that failed to load (Key Vault, the run store, one workspace) makes the rules that depend on it
inconclusive for that scope: they report nothing there, and their open findings there are neither refreshed nor
resolved, so an outage never looks like a fix. The broker's deployments are read only to say which Deployment
resource a finding is about; when they cannot be read, findings keep the deployment they were linked to before.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from functools import cached_property
from typing import TypeVar

from shared.deployment import Deployment, Phase
from shared.hygiene.findings import FindingRecord
from shared.hygiene.inventory import CallFailure, Retrier, ScanMachineLearningPort, WorkspaceInventory
from shared.hygiene.key_drift import DriftTally, ScanSecretStorePort
from shared.hygiene.settings import HygieneSettings
from shared.ports import StoredSecret
from shared.runs import RunRecord

T = TypeVar("T")
R = TypeVar("R")
ENDPOINTS_SEGMENT = "/serverlessendpoints/"


class Source(StrEnum):
    WORKSPACE = "workspace"
    SECRETS = "secrets"
    RUNS = "runs"
    DEPLOYMENTS = "deployments"


@dataclass
class ScanContext:
    now: datetime
    settings: HygieneSettings
    # Keyed by lowercased workspace id (ARM ids compare case-insensitively).
    inventories: dict[str, WorkspaceInventory]
    # None: the source could not be read this scan.
    secrets: list[StoredSecret] | None
    active_runs: list[RunRecord] | None
    machine_learning: ScanMachineLearningPort
    secret_store: ScanSecretStorePort | None
    retrier: Retrier
    # Which endpoints' keys this scan compares with listKeys, and what those comparisons did.
    key_drift: DriftTally
    deployments: list[Deployment] | None = None
    # The open and pending findings before this scan (a rule may look again at what it reported).
    live_findings: Sequence[FindingRecord] = ()
    # Every stored run's deployment id, by run id (an endpoint's brokerRunId tag and a secret's run tag name one).
    run_deployments: dict[str, str] = field(default_factory=dict)
    inconclusive: set[tuple[str, str]] = field(default_factory=set)
    errors: list[dict[str, object]] = field(default_factory=list)

    def reachable(self) -> Iterator[WorkspaceInventory]:
        return (inventory for inventory in self.inventories.values() if inventory.reachable)

    def inventory(self, workspace_id: str | None) -> WorkspaceInventory | None:
        return self.inventories.get(workspace_id.lower()) if workspace_id else None

    def available(self, source: Source, workspace_id: str | None = None) -> bool:
        if source is Source.SECRETS:
            return self.secrets is not None
        if source is Source.RUNS:
            return self.active_runs is not None
        if source is Source.DEPLOYMENTS:
            return self.deployments is not None
        inventory = self.inventory(workspace_id)
        return inventory is not None and inventory.reachable

    @cached_property
    def secrets_by_name(self) -> dict[str, StoredSecret]:
        # Key Vault names are case-insensitive.
        return {secret.name.lower(): secret for secret in self.secrets or ()}

    @cached_property
    def busy_workspaces(self) -> frozenset[str]:
        """Workspaces with a run in progress: their endpoints and secrets may be legitimately half-made."""
        return frozenset(run.request.workspace_id.lower() for run in self.active_runs or ())

    @cached_property
    def deployments_by_id(self) -> dict[str, Deployment]:
        return {deployment.id: deployment for deployment in self.deployments or ()}

    @cached_property
    def deployments_by_endpoint(self) -> dict[str, Deployment]:
        """Deployments by their endpoint's ARM id, lowercased. Should two name one endpoint (one deleted, the
        other made again under the same name), the one still in use wins, then the newer."""
        ranked = sorted(
            (deployment for deployment in self.deployments or () if deployment.status.endpoint is not None),
            key=lambda deployment: (deployment.status.phase is not Phase.DELETED, deployment.updated_at),
        )
        return {deployment.status.endpoint.id.lower(): deployment for deployment in ranked}  # type: ignore[union-attr]

    def deployment_for(self, resource_id: str | None, run_id: str | None = None) -> Deployment | None:
        """The deployment whose endpoint is `resource_id`, else the deployment of run `run_id` (a resource's tag)."""
        found = self.deployments_by_endpoint.get(resource_id.lower()) if resource_id else None
        if found is None and run_id:
            deployment_id = self.run_deployments.get(run_id)
            found = self.deployments_by_id.get(deployment_id) if deployment_id else None
        return found

    def mark_inconclusive(self, rule: str, resource_id: str, error: Exception) -> None:
        failure = CallFailure.of(error)
        self.inconclusive.add((rule, resource_id.lower()))
        self.errors.append({"scope": resource_id, "rule": rule, **failure.as_dict()})

    def is_inconclusive(self, rule: str, resource_id: str) -> bool:
        return (rule, resource_id.lower()) in self.inconclusive

    def parallel(self, action: Callable[[T], R], items: Sequence[T]) -> list[R]:
        """`action` over `items` in the scan's bounded pool (per-item Azure reads such as key checks)."""
        if not items:
            return []
        with ThreadPoolExecutor(max_workers=self.settings.max_workers, thread_name_prefix="hygiene-rule") as pool:
            return list(pool.map(action, items))


def endpoint_workspace(endpoint_id: str) -> str | None:
    """The workspace holding an endpoint (`<workspace>/serverlessEndpoints/<name>`); None for another kind of id."""
    cut = endpoint_id.lower().rfind(ENDPOINTS_SEGMENT)
    return endpoint_id[:cut] if cut > 0 else None
