"""Everything the emulator knows: the scenario and the resources created against it, guarded by one lock.

Handlers take `state.lock` (a re-entrant threading lock: the admin API, tests and the event loop may all touch the
state) around every read-modify-write and never await while holding it. With a state file, the resources and the Key
Vault secrets survive a restart: `commit()` writes them after each change.
"""

from __future__ import annotations

import json
import os
import secrets
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from devstack.emulator.catalog import ModelCatalog
from devstack.emulator.faults import FaultRules
from devstack.emulator.keyvault_store import SecretStore, deletion_seconds
from devstack.emulator.requestlog import RequestLog
from devstack.emulator.resources import (
    Endpoint,
    MarketplaceSubscription,
    Operation,
    WorkspaceKey,
    to_json,
)
from devstack.emulator.scenario import Scenario, scenario_from_dict
from devstack.emulator.throttle import Throttle
from devstack.emulator.tokens import TokenService

ResourceKey = tuple[WorkspaceKey, str]
VAULT_PREFIX = "keyvault:"


class EmulatorState:
    def __init__(
        self,
        document: dict[str, Any],
        *,
        state_file: Path | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.lock = threading.RLock()
        self.clock = clock
        self.state_file = state_file
        # One signing secret per process: tokens stay valid across scenario reloads, never across restarts.
        self._token_secret = secrets.token_bytes(32)
        self.faults = FaultRules()
        self.requests = RequestLog()
        self.endpoints: dict[ResourceKey, Endpoint] = {}
        self.subscriptions: dict[ResourceKey, MarketplaceSubscription] = {}
        self.operations: dict[str, Operation] = {}
        # Per-scenario stores other emulator parts keep here (e.g. Key Vault secrets), dropped on reload.
        self.extensions: dict[str, Any] = {}
        # Called with (request, response) for every ARM answer; tests check answers against the schemas with it.
        self.response_checks: list[Callable[[Any, Any], None]] = []
        # Bumped on every scenario (re)load, so caches derived from the scenario know when to rebuild.
        self.generation = 0
        self.scenario: Scenario
        self.catalog: ModelCatalog
        self.tokens: TokenService
        self.throttle: Throttle
        # Read before load(), which starts the world empty and writes that down.
        saved = json.loads(state_file.read_text(encoding="utf-8")) if state_file and state_file.exists() else None
        self.load(document)
        if saved is not None:
            self._restore(saved)
            self.commit()

    def load(self, document: dict[str, Any]) -> None:
        """Switch to a scenario and forget every resource, fault rule and log entry created before."""
        scenario = scenario_from_dict(document)
        with self.lock:
            self.scenario = scenario
            self.catalog = ModelCatalog.for_scenario(scenario.models)
            self.tokens = TokenService(self._token_secret, scenario.tenant_id)
            if hasattr(self, "throttle"):
                self.throttle.configure(scenario.throttling)
            else:
                self.throttle = Throttle(scenario.throttling)
            self.endpoints.clear()
            self.subscriptions.clear()
            self.operations.clear()
            self.extensions.clear()
            self.faults.clear()
            self.requests.clear()
            self.generation += 1
            self.commit()

    def vault_store(self, vault_id: str) -> SecretStore:
        """The secrets of the vault with this resource id (made empty on first use)."""
        with self.lock:
            return self.extensions.setdefault(
                VAULT_PREFIX + vault_id.lower(),
                SecretStore(clock=self.clock, deletion_seconds=deletion_seconds(self.scenario.source)),
            )

    def reset(self) -> None:
        self.load(self.scenario.source)

    def commit(self) -> None:
        """Persist the resources if a state file was given (atomically: a crash never leaves half a file)."""
        if self.state_file is None:
            return
        with self.lock:
            snapshot = {
                "endpoints": [to_json(item) for item in self.endpoints.values()],
                "subscriptions": [to_json(item) for item in self.subscriptions.values()],
                "operations": [to_json(item) for item in self.operations.values()],
                "keyVaults": {
                    key.removeprefix(VAULT_PREFIX): store.snapshot()
                    for key, store in self.extensions.items()
                    if key.startswith(VAULT_PREFIX)
                },
            }
            self.state_file.parent.mkdir(parents=True, exist_ok=True)
            partial = self.state_file.with_name(self.state_file.name + ".tmp")
            partial.write_text(json.dumps(snapshot, indent=1), encoding="utf-8")
            os.replace(partial, self.state_file)

    def _restore(self, snapshot: dict[str, Any]) -> None:
        with self.lock:
            for raw in snapshot.get("endpoints", ()):
                endpoint = Endpoint(**raw)
                self.endpoints[(endpoint.key, endpoint.name.lower())] = endpoint
            for raw in snapshot.get("subscriptions", ()):
                subscription = MarketplaceSubscription(**raw)
                self.subscriptions[(subscription.key, subscription.name.lower())] = subscription
            for raw in snapshot.get("operations", ()):
                operation = Operation(**raw)
                self.operations[operation.id] = operation
            known = {vault.resource_id.lower() for vault in self.scenario.vaults}
            for vault_id, raw in (snapshot.get("keyVaults") or {}).items():
                if vault_id in known:  # a vault the scenario no longer has is forgotten
                    self.vault_store(vault_id).restore(raw)
