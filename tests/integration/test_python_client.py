"""The Python client and the `broker` CLI against the local stack: Azurite, the emulator and the local host.

The client signs in with azure-identity at the emulator's Entra ID and calls the host through Easy Auth, exactly as
a portal would; the CLI runs as its installed console script in a subprocess, configured by environment only.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from deployment_broker_client import (
    BrokerClient,
    BrokerError,
    DeploymentPhase,
    KeyRotation,
    KeyRotationStatus,
    RunStatus,
    WhatIfVerdict,
)

from devstack.emulator.testing import running_emulator
from tests.integration.conftest import Broker, broker_on, client_credential, until

pytestmark = pytest.mark.integration

PHI = "azureml://registries/azureml/models/Phi-4"
PHI_MINI = "azureml://registries/azureml/models/Phi-4-mini-instruct"
# The models the approving broker's policy sends to an approver.
NEEDS_APPROVAL = (
    "azureml://registries/azureml/models/Phi-4-reasoning",
    "azureml://registries/azureml/models/MAI-DS-R1",
)
# Sold directly, but not offered in westeurope (the demo-project-westeurope region).
DEEPSEEK = "azureml://registries/azureml-deepseek/models/DeepSeek-R1"
BROKER_CLI = Path(sys.executable).parent / "broker"
# What a shell needs of the parent environment; everything the CLI reads is set explicitly.
INHERITED = ("PATH", "HOME", "LANG", "TMPDIR")


@pytest.fixture(scope="module")
def approving_broker(azurite, tmp_path_factory) -> Iterator[Broker]:
    """A broker whose approval policy names the NEEDS_APPROVAL models."""
    with (
        running_emulator(timings={"lroSeconds": 1.0, "retryAfterMs": 300}) as emulator,
        broker_on(
            emulator,
            azurite.connection_string,
            tmp_path_factory.mktemp("approving") / "host.log",
            BROKER_APPROVALS_ENABLED="true",
            BROKER_APPROVAL_MODELS=",".join(NEEDS_APPROVAL),
        ) as broker,
    ):
        yield broker


def _client(broker: Broker, who: str) -> BrokerClient:
    return BrokerClient(
        broker.host.url,
        client_credential(broker.emulator, who),
        scope=broker.emulator.env["BROKER_API_SCOPE"],
        function_key=broker.host.function_key,
        polling_interval=0.25,
    )


def _cli_env(broker: Broker, who: str) -> dict[str, str]:
    """The environment `broker` needs, named as .devstack/run.env names it plus azure-identity's client secret."""
    principal = broker.emulator.state.scenario.principal(who)
    assert principal is not None
    return {
        **{name: os.environ[name] for name in INHERITED if name in os.environ},
        "BROKER_URL": broker.host.url,
        "BROKER_FUNCTION_KEY": broker.host.function_key,
        "BROKER_API_SCOPE": broker.emulator.env["BROKER_API_SCOPE"],
        "AZURE_TENANT_ID": broker.emulator.env["AZURE_TENANT_ID"],
        "AZURE_CLIENT_ID": principal["clientId"],
        "AZURE_CLIENT_SECRET": principal["clientSecret"],
        "AZURE_AUTHORITY_HOST": broker.emulator.env["EMULATOR_AUTHORITY"],
        "REQUESTS_CA_BUNDLE": str(broker.emulator.ca_bundle),
    }


def _cli(env: dict[str, str], *argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(BROKER_CLI), *argv], env=env, capture_output=True, text=True, timeout=180, check=False)


def _json(done: subprocess.CompletedProcess[str]) -> Any:
    assert done.stdout, done.stderr
    return json.loads(done.stdout)


def _finished_rotation(client: BrokerClient, run_id: str, rotation_id: str) -> KeyRotation | None:
    found = client.get_run(run_id).key_rotation(rotation_id)
    return found if found is not None and not found.in_progress else None


def test_the_client_deploys_waits_lists_rotates_and_deletes(broker):
    client = _client(broker, broker.requester)
    ticket = f"PY-{uuid.uuid4().hex[:8]}"
    workspace = broker.workspace_id()
    assert client.what_if(workspace, PHI, ticket=ticket).verdict is WhatIfVerdict.ALLOWED
    availability = client.get_model_availability(PHI, workspace_id=workspace)
    assert availability.sold_directly
    assert availability.workspace is not None
    assert availability.workspace.supported is True
    seen: list[str] = []

    poller = client.begin_deploy(workspace, PHI, ticket=ticket, progress_hook=lambda run: seen.append(run.status))
    deployment = poller.result(timeout=120)

    run = poller.polling_method().latest_run
    assert run is not None
    assert run.status is RunStatus.SUCCEEDED
    # The 202 may already show a later step (the broker carries on in the same invocation); the record has them all.
    assert seen[-1] is RunStatus.SUCCEEDED
    assert [step.status for step in run.steps][:: len(run.steps) - 1] == [RunStatus.ACCEPTED, RunStatus.SUCCEEDED]
    assert deployment.status.phase is DeploymentPhase.READY
    assert all(condition.is_true for condition in deployment.status.conditions)
    secrets = deployment.status.secret_ids
    assert secrets is not None
    assert secrets.primary.startswith(broker.emulator.env["AZURE_KEYVAULT_URL"])
    assert [item.id for item in client.list_deployments(ticket=ticket)] == [deployment.id]
    assert run.id in [item.id for item in client.list_runs(deployment_id=deployment.id)]
    # Asking again for what is Ready answers at once with the deployment: no run, no polling.
    again = client.begin_deploy(workspace, PHI, ticket=ticket)
    assert again.done()
    assert again.result().id == deployment.id

    rotation = client.rotate_keys(deployment.id, "secondary")
    assert rotation.in_progress
    keys_run_id = deployment.status.keys_run_id
    assert keys_run_id is not None
    rotated = until(lambda: _finished_rotation(client, keys_run_id, rotation.id), 60)
    assert rotated.status is KeyRotationStatus.ROTATED
    assert rotated.secret_id is not None
    assert rotated.secret_id != secrets.secondary

    deleted = client.begin_delete(deployment.id).result(timeout=120)

    assert deleted.status.phase is DeploymentPhase.DELETED
    assert deleted.status.delete_run_id is not None
    assert client.get_run(deleted.status.delete_run_id).status is RunStatus.DELETED


def test_the_client_raises_the_problem_of_a_rejected_request(broker):
    client = _client(broker, broker.emulator.env["DEMO_BROKER_OBJECT_ID"])

    with pytest.raises(BrokerError) as raised:
        client.begin_deploy(broker.workspace_id("demo-project-westeurope"), DEEPSEEK)

    problem = raised.value.problem
    assert problem is not None
    assert (problem.status, problem.slug) == (422, "region-unsupported")
    assert raised.value.run_id is not None
    assert client.get_run(raised.value.run_id).status is RunStatus.REJECTED


def test_the_cli_deploys_with_wait_lists_rotates_and_deletes(broker):
    env = _cli_env(broker, broker.requester)
    workspace = broker.workspace_id()
    ticket = f"CLI-{uuid.uuid4().hex[:8]}"

    deployed = _cli(
        env, "deploy", "--workspace", workspace, "--model", PHI_MINI, "--ticket", ticket, "--wait", "-o", "json"
    )

    assert deployed.returncode == 0, deployed.stderr
    deployment = _json(deployed)
    assert deployment["status"]["phase"] == "Ready"
    assert set(deployment["status"]["secretIds"]) == {"primary", "secondary"}
    progress = [line.split()[3] for line in deployed.stderr.splitlines()]
    assert (progress[0], progress[-1]) == ("Accepted", "Succeeded")
    assert "Provisioning" in progress

    listed = _cli(env, "list", "--ticket", ticket)
    assert listed.returncode == 0, listed.stderr
    assert listed.stdout.splitlines()[1].split()[:2] == [deployment["id"], "Ready"]
    runs = _json(_cli(env, "list", "--runs", "--deployment", deployment["id"], "-o", "json"))
    assert [run["status"] for run in runs] == ["Succeeded"]

    rotated = _cli(env, "rotate", deployment["id"], "--key", "primary", "--wait", "--timeout", "60", "-o", "json")
    assert rotated.returncode == 0, rotated.stderr
    rotation = _json(rotated)
    assert rotation["status"] == "Rotated"
    keys_run = _json(_cli(env, "status", deployment["status"]["keysRunId"], "-o", "json"))
    assert rotation["id"] in [item["id"] for item in keys_run["keyRotations"]]

    models = _cli(env, "models", "--model", PHI_MINI, "--workspace", workspace)
    assert models.returncode == 0, models.stderr
    assert "demo-project (eastus2): offered" in " ".join(models.stdout.split())
    findings = _cli(env, "findings", "--deployment", deployment["id"])
    assert findings.returncode == 0, findings.stderr

    deleted = _cli(env, "delete", deployment["id"], "--wait", "-o", "json")

    assert deleted.returncode == 0, deleted.stderr
    assert _json(deleted)["status"]["phase"] == "Deleted"
    status = _cli(env, "status", deployment["id"])
    assert status.returncode == 0, status.stderr
    assert "phase: Deleted" in " ".join(status.stdout.split())


def test_the_cli_exits_3_for_a_request_the_region_does_not_offer(broker):
    env = _cli_env(broker, broker.emulator.env["DEMO_BROKER_OBJECT_ID"])
    workspace = broker.workspace_id("demo-project-westeurope")

    whatif = _cli(env, "whatif", "--workspace", workspace, "--model", DEEPSEEK)
    rejected = _cli(env, "deploy", "--workspace", workspace, "--model", DEEPSEEK, "--wait", "-o", "json")

    assert whatif.returncode == 3, whatif.stderr
    assert rejected.returncode == 3, rejected.stderr
    assert "422 region-unsupported" in rejected.stderr
    problem = _json(rejected)
    assert problem["type"].endswith("/region-unsupported")
    status = _cli(env, "status", problem["runId"])
    assert status.returncode == 3, status.stderr
    unreachable = _cli({**env, "BROKER_API_SCOPE": ""}, "list")
    assert unreachable.returncode == 2


def _waiting_deploy(broker: Broker, model: str, ticket: str) -> tuple[subprocess.Popen[str], str]:
    """`broker deploy --wait` started for the requester, and the id of its run once it waits for an approver."""
    command = [str(BROKER_CLI), "deploy", "--workspace", broker.workspace_id(), "--model", model]
    process = subprocess.Popen(
        [*command, "--ticket", ticket, "--wait", "-o", "json"],
        env=_cli_env(broker, broker.requester),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    waiting = until(lambda: [run for run in broker.runs(ticket=ticket) if run["status"] == "PendingApproval"], 60)
    return process, waiting[0]["id"]


def test_the_cli_waits_for_an_approver_and_ends_as_the_approver_decides(approving_broker):
    broker = approving_broker
    approved_ticket, rejected_ticket = (f"APPROVE-{uuid.uuid4().hex[:8]}" for _ in range(2))
    approved, approved_run = _waiting_deploy(broker, NEEDS_APPROVAL[0], approved_ticket)
    rejected, rejected_run = _waiting_deploy(broker, NEEDS_APPROVAL[1], rejected_ticket)

    decided = _client(broker, broker.approver).approve_run(approved_run, comment="pilot")
    refusal = _cli(_cli_env(broker, broker.approver), "reject", rejected_run, "--comment", "not this quarter")
    approved_out, approved_err = approved.communicate(timeout=120)
    rejected_out, rejected_err = rejected.communicate(timeout=120)

    assert decided.status is not RunStatus.PENDING_APPROVAL
    assert refusal.returncode == 0, refusal.stderr
    assert approved.returncode == 0, approved_err
    assert "waiting for an approver" in approved_err
    assert json.loads(approved_out)["status"]["phase"] == "Ready"
    assert rejected.returncode == 3, rejected_err
    assert "waiting for an approver" in rejected_err
    assert json.loads(rejected_out)["status"] == "Rejected"
