"""A world of in-memory fakes for the hygiene scan, with the scanner wired exactly as the composition root does."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest

from shared.hygiene.alerts import QueueAlertChannel
from shared.hygiene.findings import FindingRecord
from shared.hygiene.scan import HygieneScanner
from shared.hygiene.store import FindingStore

from .fakes import (
    Clock,
    FakeMachineLearning,
    FakeRuns,
    FakeSecretStore,
    InMemoryDocumentTable,
    RecordingQueue,
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
