"""The workflow never blocks on Azure, and survives a worker dying mid-step."""

from __future__ import annotations

import time
import uuid
from collections import Counter
from datetime import UTC, datetime

import pytest
from azure.keyvault.secrets import SecretClient

from devstack.emulator.testing import running_emulator
from tests.integration.conftest import TERMINAL, Broker, start_broker_host, storage_of

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


# Several deployments in flight, the host killed three times mid-step, and leases of 10 minutes (the host's default,
# as on Azure): only the watchdog can bring the runs back within the 2 minutes. Its schedule and stall threshold are
# shortened here to keep the test short; the README works the default settings through.
MODELS = (
    "azureml://registries/azureml-cohere/models/Cohere-command-r-08-2024",
    "azureml://registries/azureml-mistral/models/Codestral-2501",
    "azureml://registries/azureml-deepseek/models/DeepSeek-R1",
    "azureml://registries/azureml/models/MAI-DS-R1",
    PHI,
    "azureml://registries/azureml/models/Phi-4-mini-reasoning",
)
KILLS = 3
RECOVERY_BUDGET_SECONDS = 120.0


def test_runs_interrupted_by_three_host_kills_finish_within_two_minutes_of_the_last_restart(azurite, tmp_path):
    suffix = uuid.uuid4().hex[:8]
    settings = {
        "WATCHDOG_SCHEDULE": "*/2 * * * * *",
        "WATCHDOG_STALL_SECONDS": "8",
        # Queues of its own: the messages the killed hosts leased stay invisible for 10 minutes.
        "DEPLOYMENT_WORK_QUEUE": f"work-{suffix}",
        "DEPLOYMENT_REQUESTS_QUEUE": f"requests-{suffix}",
    }
    with running_emulator(timings={"lroSeconds": 4.0, "retryAfterMs": 500}) as emulator:
        admin = emulator.admin
        host = start_broker_host(emulator, azurite.connection_string, tmp_path / "host-0.log", **settings)
        storage = {**storage_of(host), **settings}
        broker = Broker(host, emulator, azurite.connection_string)
        workspace_id = broker.workspace_id()
        tickets = {}
        for model in MODELS:
            ticket = f"KILL-{uuid.uuid4().hex[:6]}"
            response = broker.call(
                "POST",
                "/api/deployments",
                caller=broker.requester,
                json={"workspaceId": workspace_id, "modelId": model, "ticket": ticket},
            )
            assert response.status_code == 202, response.text
            tickets[response.json()["id"]] = ticket

        for kill in range(1, KILLS + 1):
            # Every ARM and Key Vault call hangs, so the host dies inside steps, holding their messages (and the rest
            # of its batch); a step that had made its last Azure call meanwhile finishes, announcement included (the
            # broker announces a run's end at most once: a host dying between that write and the send loses it).
            hang = admin.add_fault(pathRegex="^/(subscriptions|providers|secrets)/", method="*", latencyMs=30_000)
            _wait(lambda rule_id=hang["id"]: _hits(emulator, rule_id) >= 1, timeout=60)
            time.sleep(1)
            host.kill()
            admin.clear_faults()
            host = start_broker_host(emulator, azurite.connection_string, tmp_path / f"host-{kill}.log", **storage)
            broker = Broker(host, emulator, azurite.connection_string)
            in_flight = [run_id for run_id in tickets if broker.run(run_id)["status"] not in TERMINAL]
            assert in_flight, f"every run had finished by kill {kill}"
        restarted = datetime.now(UTC)

        try:
            runs = {run_id: broker.wait_for_run(run_id, timeout=RECOVERY_BUDGET_SECONDS) for run_id in tickets}
            events = broker.events(timeout=30, until=lambda got: _terminal_tickets(got) >= set(tickets.values()))
            time.sleep(3)  # anything sent twice would arrive by now
            events += broker.events(timeout=1)
        finally:
            host.stop()

        finished = {run_id: datetime.fromisoformat(run["steps"][-1]["at"]) for run_id, run in runs.items()}
        recovery = max(finished.values()) - restarted
        print(f"\nlast run finished {recovery.total_seconds():.1f}s after the last restart")
        assert {run["status"] for run in runs.values()} == {"Succeeded"}, runs
        assert recovery.total_seconds() < RECOVERY_BUDGET_SECONDS
        logs = "".join(path.read_text(errors="replace") for path in sorted(tmp_path.glob("host-*.log")))
        assert "re-enqueued under step token" in logs, "the watchdog, not a lease, brought the stalled runs back"

        arm = emulator.arm()
        endpoints = arm.request("GET", f"{workspace_id}/serverlessEndpoints").json()["value"]
        subscriptions = arm.request("GET", f"{workspace_id}/marketplaceSubscriptions").json()["value"]
        assert sorted(e["properties"]["modelSettings"]["modelId"] for e in endpoints) == sorted(MODELS)
        assert sorted(s["properties"]["modelId"] for s in subscriptions) == sorted(MODELS[:2])

        kinds = Counter((event["data"]["ticket"], event["type"].rsplit(".", 1)[-1]) for event in events)
        expected = Counter({(ticket, kind): 1 for ticket in tickets.values() for kind in ("accepted", "succeeded")})
        assert kinds == expected, (f"extra: {kinds - expected}, missing: {expected - kinds}", runs)

        vault = SecretClient(
            emulator.vault_url,
            emulator.credential(),
            verify_challenge_resource=False,
            connection_verify=emulator.ca_bundle,
        )
        for run in runs.values():
            keys = arm.request("POST", f"{workspace_id}/serverlessEndpoints/{run['endpoint']['name']}/listKeys").json()
            stored = [
                vault.get_secret(_secret_name(run["secretIds"][which])).value for which in ("primary", "secondary")
            ]
            assert stored == [keys["primaryKey"], keys["secondaryKey"]]


def _terminal_tickets(events: list[dict]) -> set[str]:
    return {event["data"]["ticket"] for event in events if not event["type"].endswith(".accepted")}


def _secret_name(secret_id: str) -> str:
    return secret_id.split("/secrets/")[1].split("/", maxsplit=1)[0]
