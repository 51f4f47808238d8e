"""What the rules see in one scan: the inventory, the broker's secrets and active runs, and which of them loaded.

A source that failed to load (Key Vault, the run store, one workspace) makes the rules that depend on it
inconclusive for that scope: they report nothing there, and their open findings there are neither refreshed nor
resolved, so an outage never looks like a fix.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from functools import cached_property
from typing import TypeVar

from shared.hygiene.inventory import CallFailure, Retrier, ScanMachineLearningPort, WorkspaceInventory
from shared.hygiene.settings import HygieneSettings
from shared.ports import SecretStorePort, StoredSecret
from shared.runs import RunRecord

T = TypeVar("T")
R = TypeVar("R")


class Source(StrEnum):
    WORKSPACE = "workspace"
    SECRETS = "secrets"
    RUNS = "runs"


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
    secret_store: SecretStorePort | None
    retrier: Retrier
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
