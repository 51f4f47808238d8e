"""Adapters against the emulator: real SDK clients, the emulator's CA trusted through REQUESTS_CA_BUNDLE.

The emulator is strict, its default: a request body its api-version's schema does not allow gets ARM's 400
InvalidRequestContent. No adapter call may get one, and every Machine Learning answer is checked against its schema.
"""

import json
from collections.abc import Iterator

import pytest

from devstack.emulator.testing import EmulatorHandle, running_emulator
from shared.adapters.arm import ArmClient
from tests.emulator.schema_checks import record_contract


@pytest.fixture
def emulator(monkeypatch: pytest.MonkeyPatch) -> Iterator[EmulatorHandle]:
    with running_emulator(timings={"lroSeconds": 0.2, "retryAfterMs": 100}) as running:
        assert not running.state.scenario.loose
        contract = record_contract(running)
        refused: list[str] = []

        def note_invalid_bodies(request, response) -> None:
            if response.status == 400 and b"InvalidRequestContent" in (response.body or b""):
                refused.append(f"{request.method} {request.path_qs}: {json.loads(response.body)['error']['message']}")

        running.state.response_checks.append(note_invalid_bodies)
        for name, value in running.env.items():
            monkeypatch.setenv(name, value)
        yield running
    assert refused == []
    assert contract.violations == []


@pytest.fixture
def arm(emulator: EmulatorHandle) -> ArmClient:
    return ArmClient(emulator.arm_url, emulator.credential())
