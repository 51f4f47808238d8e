"""The emulator in the test process: a fresh one per test (it starts in a few milliseconds), with short LROs."""

from collections.abc import Callable, Iterator

import pytest
from azure.ai.ml import MLClient
from azure.identity import ManagedIdentityCredential

from devstack.emulator.testing import EmulatorHandle, running_emulator

from .schema_checks import record_contract

# Operations finish in 0.2 s and clients poll every 50 ms, so SDK pollers return quickly.
FAST_TIMINGS = {"lroSeconds": 0.2, "retryAfterMs": 50}


@pytest.fixture
def emulator() -> Iterator[EmulatorHandle]:
    """The emulator, strict (the default); every Machine Learning answer it gives is checked against its schema."""
    with running_emulator(timings=FAST_TIMINGS) as handle:
        contract = record_contract(handle)
        yield handle
    assert contract.violations == []


@pytest.fixture
def emulator_env(emulator: EmulatorHandle, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """The env-file variables applied to this process, as sourcing .devstack/emulator.env would."""
    for name, value in emulator.env.items():
        monkeypatch.setenv(name, value)
    return emulator.env


@pytest.fixture
def ml_client(emulator_env: dict[str, str]) -> Callable[..., MLClient]:
    """MLClient as the seed document builds it, with a managed-identity credential from the emulator."""

    def make(workspace: str = "demo-project", client_id: str | None = None) -> MLClient:
        return MLClient(
            credential=ManagedIdentityCredential(client_id=client_id),
            subscription_id=emulator_env["AZURE_SUBSCRIPTION_ID"],
            resource_group_name=emulator_env["AZURE_RESOURCE_GROUP"],
            workspace_name=workspace,
        )

    return make
