"""The workflow never blocks on Azure, and survives a worker dying mid-step."""

from __future__ import annotations

import time

import pytest

from devstack.emulator.testing import running_emulator
from tests.integration.conftest import Broker, start_broker_host, storage_of

pytestmark = pytest.mark.integration

PHI = "azureml://registries/azureml/models/Phi-4-multimodal-instruct"


def _wait(predicate, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.2)


def test_a_sixty_second_operation_never_holds_an_invocation(azurite, tmp_path):
    with running_emulator(timings={"lroSeconds": 60.0, "retryAfterMs": 500}) as emulator:
        host = start_broker_host(emulator, azurite.connection_string, tmp_path / "host.log")
        broker = Broker(host, emulator, azurite.connection_string)
        try:
            response = broker.call(
                "POST",
                "/api/deployments",
                caller=broker.requester,
                json={"workspaceId": broker.workspace_id(), "modelId": PHI},
            )
            run_id = response.json()["id"]
            polls = host.wait_for_invocations(lambda record: record["function"] == "advance_deployment", count=4)

            assert broker.run(run_id)["status"] == "Provisioning"
            emulator.admin.complete_operations()
            assert broker.wait_for_run(run_id)["status"] == "Succeeded"
            # "A few seconds" at most, against a 60-second operation; cold imports and preflight fit well inside.
            assert max(record["durationMs"] for record in host.invocations()) < 5000
            assert len(polls) >= 4
        finally:
            host.stop()


def test_a_worker_killed_mid_step_is_resumed_by_the_next_host(azurite, tmp_path):
    with running_emulator(timings={"lroSeconds": 1.0, "retryAfterMs": 300}) as emulator:
        lease = ["--queue-lease-seconds", "2"]
        host = start_broker_host(emulator, azurite.connection_string, tmp_path / "first.log", extra_args=lease)
        broker = Broker(host, emulator, azurite.connection_string)
        # The first operation poll hangs, so the worker is inside a step when it dies.
        stall = emulator.admin.add_fault(pathRegex="mfeOperationsStatus", method="GET", latencyMs=5000, count=1)
        response = broker.call(
            "POST",
            "/api/deployments",
            caller=broker.requester,
            json={
                "workspaceId": broker.workspace_id(),
                "modelId": "azureml://registries/azureml/models/Phi-4-mini-reasoning",
            },
        )
        run_id = response.json()["id"]
        _wait(lambda: _hits(emulator, stall["id"]) == 1)
        host.kill()

        successor = start_broker_host(
            emulator, azurite.connection_string, tmp_path / "second.log", extra_args=lease, **storage_of(host)
        )
        try:
            run = Broker(successor, emulator, azurite.connection_string).wait_for_run(run_id)
        finally:
            successor.stop()

    assert run["status"] == "Succeeded", run
    assert [step["status"] for step in run["steps"]][-3:] == ["StoringKeys", "Verifying", "Succeeded"]


def _hits(emulator, rule_id: str) -> int:
    return next(rule["hits"] for rule in emulator.admin.call("GET", "/faults") if rule["id"] == rule_id)
