"""Adapters against the emulator: real SDK clients, the emulator's CA trusted through REQUESTS_CA_BUNDLE."""

from collections.abc import Iterator

import pytest

from devstack.emulator.testing import EmulatorHandle, running_emulator
from shared.adapters.arm import ArmClient


@pytest.fixture
def emulator(monkeypatch: pytest.MonkeyPatch) -> Iterator[EmulatorHandle]:
    with running_emulator(timings={"lroSeconds": 0.2, "retryAfterMs": 100}) as running:
        for name, value in running.env.items():
            monkeypatch.setenv(name, value)
        yield running


@pytest.fixture
def arm(emulator: EmulatorHandle) -> ArmClient:
    return ArmClient(emulator.arm_url, emulator.credential())
