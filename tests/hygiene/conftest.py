"""Fixtures: a world of in-memory fakes wired as the composition root wires the scanner, and an emulated broker."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from devstack.emulator.testing import running_emulator
from shared.deployment import Phase
from shared.hygiene.alerts import QueueAlertChannel
from shared.hygiene.findings import FindingRecord
from shared.hygiene.scan import HygieneScanner
from shared.hygiene.store import FindingStore
from shared.problems import Problem
from shared.run_outcomes import Submission
from shared.telemetry import BROKER_TELEMETRY, BrokerTelemetry

from .emulated import COHERE, LLAMA, PHI, EmulatedBroker, scenario
from .fakes import (
    Clock,
    FakeMachineLearning,
    FakeRuns,
    FakeSecretStore,
    InMemoryDocumentTable,
    RecordingQueue,
    run,
    settings,
)


@dataclass
class World:
    ml: FakeMachineLearning = field(default_factory=FakeMachineLearning)
    secrets: FakeSecretStore = field(default_factory=FakeSecretStore)
    runs: FakeRuns = field(default_factory=FakeRuns)
    table: InMemoryDocumentTable = field(default_factory=InMemoryDocumentTable)
    queue: RecordingQueue = field(default_factory=RecordingQueue)
    clock: Clock = field(default_factory=Clock)
    sleeps: list[float] = field(default_factory=list)
    # Deployment ids the resubscribe remediation asked to repair, in order; `repair_problem` makes the broker refuse.
    repairs: list[str] = field(default_factory=list)
    repair_problem: Problem | None = None
    telemetry: BrokerTelemetry = BROKER_TELEMETRY

    def repair(self, deployment_id: str) -> Submission | None:
        """What DeploymentService.repair does, as far as the scan can tell: a repair run claims the deployment."""
        self.repairs.append(deployment_id)
        if self.repair_problem is not None:
            return Submission("rejected", problem=self.repair_problem)
        stored = self.runs.get_deployment(deployment_id)
        if stored is None:
            return None
        repair_run = run(
            f"repair-{len(self.repairs)}", stored.deployment.spec.workspace_id, deployment_id=deployment_id
        )
        claimed = self.runs.update_deployment(
            deployment_id,
            lambda current: current.changed(at=self.clock.now, phase=Phase.PROVISIONING, current_run_id=repair_run.id),
        )
        return Submission("repair", run=repair_run, deployment=claimed)

    @property
    def store(self) -> FindingStore:
        return FindingStore(self.table)

    def scanner(self, **changes: Any) -> HygieneScanner:
        return HygieneScanner(
            settings=settings(**changes),
            machine_learning=self.ml,
            secret_store=self.secrets,
            runs=self.runs,
            store=self.store,
            channels=[QueueAlertChannel(self.queue)],
            clock=self.clock,
            sleep=self.sleeps.append,
            repair=self.repair,
            telemetry=self.telemetry,
        )

    def scan(self, **changes: Any) -> dict[str, Any]:
        return self.scanner(**changes).scan()

    def findings(self, rule: str | None = None, state: str | None = None) -> list[FindingRecord]:
        return self.store.query(rule=rule, state=state, page_size=1000).records

    def alerts(self) -> list[tuple[str, str, str]]:
        """(kind, rule, resource) of every alert sent so far, in order."""
        return [
            (message["type"].rsplit(".", 1)[-1], message["data"]["rule"], message["subject"])
            for message in self.queue.messages
        ]

    def take_alerts(self) -> list[tuple[str, str, str]]:
        sent = self.alerts()
        self.queue.messages.clear()
        return sent


@pytest.fixture
def world() -> World:
    return World()


@pytest.fixture
def broker(azurite, monkeypatch: pytest.MonkeyPatch) -> Iterator[EmulatedBroker]:
    with running_emulator(scenario()) as emulator:
        # The SDK clients trust the emulator's throw-away CA through this, as with the env file.
        monkeypatch.setenv("REQUESTS_CA_BUNDLE", emulator.ca_bundle)
        yield EmulatedBroker(emulator, azurite.connection_string)


@pytest.fixture
def deployed(broker: EmulatedBroker) -> EmulatedBroker:
    """demo-project: two Marketplace endpoints on their own subscriptions and a sold-directly one; the West Europe
    project: its own Llama subscription and endpoint. Everything healthy, keys in Key Vault."""
    broker.subscribe("demo-project", "llama-sub", LLAMA)
    broker.subscribe("demo-project", "cohere-sub", COHERE)
    broker.subscribe("demo-project-westeurope", "llama-sub", LLAMA)
    broker.deploy("demo-project", "llama-ep", LLAMA)
    broker.deploy("demo-project", "cohere-ep", COHERE)
    broker.deploy("demo-project", "phi-ep", PHI)
    broker.deploy("demo-project-westeurope", "llama-we", LLAMA)
    return broker
