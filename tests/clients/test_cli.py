"""The `broker` command over a fake transport: what it prints for people and scripts, and its exit codes."""

from __future__ import annotations

import io
import json
from collections.abc import Mapping
from typing import Any

from azure.identity import ClientSecretCredential, DefaultAzureCredential
from deployment_broker_client import _output as output
from deployment_broker_client.cli import (
    EXIT_FAILED,
    EXIT_OK,
    EXIT_REJECTED,
    EXIT_USAGE,
    Settings,
    credential_from,
    main,
)

from tests.clients import wire
from tests.clients.fakes import API, ENDPOINT, SCOPE, FakeBroker, client_over

RUN_PATH = f"/runs/{wire.RUN_ID}"
DEPLOYMENT_PATH = f"/deployments/{wire.DEPLOYMENT_ID}"
ACCEPTED_HEADERS = {"Operation-Location": f"{API}{RUN_PATH}", "Location": f"{API}{DEPLOYMENT_PATH}"}
ENVIRONMENT = {"BROKER_URL": ENDPOINT, "BROKER_API_SCOPE": SCOPE, "BROKER_FUNCTION_KEY": "key"}
S = wire.RunStatus


def _broker(broker: FakeBroker, *argv: str, environ: Mapping[str, str] = ENVIRONMENT) -> tuple[int, str, str]:
    """Run `broker argv...` against `broker`; (exit code, stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()

    def factory(settings: Settings, _: Mapping[str, str]) -> Any:
        assert (settings.endpoint, settings.scope) == (ENDPOINT, SCOPE)
        return client_over(broker)

    code = main(list(argv), environ=environ, client_factory=factory, out=out, err=err)
    return code, out.getvalue(), err.getvalue()


def _words(text: str) -> str:
    """The text with every run of whitespace made one space: detail views align their values."""
    return " ".join(text.split())


def _deploying(broker: FakeBroker, *ending: S) -> FakeBroker:
    broker.answer("POST", "/deployments", 202, wire.run_document(), ACCEPTED_HEADERS)
    broker.answer("GET", RUN_PATH, 200, wire.run_document(S.VALIDATING))
    broker.answer("GET", RUN_PATH, 200, wire.run_document(*ending))
    return broker.answer("GET", DEPLOYMENT_PATH, 200, wire.deployment_document())


def test_deploy_wait_prints_one_line_per_step_then_the_ready_deployment():
    broker = _deploying(FakeBroker(), *wire.DEPLOY_PATH, S.SUCCEEDED)

    code, out, err = _broker(broker, "deploy", "--workspace", wire.WORKSPACE, "--model", wire.MODEL, "--wait")

    assert code == EXIT_OK
    steps = [line.split()[3] for line in err.splitlines()]
    assert steps == ["Accepted", "Validating", "Provisioning", "StoringKeys", "Verifying", "Succeeded"]
    assert f"deploy {wire.RUN_ID}" in err.splitlines()[0]
    assert "phase: Ready" in _words(out)
    assert wire.SECRETS.primary in out


def test_deploy_wait_with_json_output_prints_the_deployment_as_the_broker_sent_it():
    broker = _deploying(FakeBroker(), *wire.DEPLOY_PATH, S.SUCCEEDED)

    code, out, _ = _broker(
        broker, "deploy", "--workspace", wire.WORKSPACE, "--model", wire.MODEL, "--wait", "--output", "json"
    )

    assert code == EXIT_OK
    assert json.loads(out) == wire.deployment_document()


def test_deploy_without_wait_prints_the_accepted_run():
    broker = _deploying(FakeBroker(), *wire.DEPLOY_PATH, S.SUCCEEDED)

    code, out, err = _broker(broker, "deploy", "--workspace", wire.WORKSPACE, "--model", wire.MODEL, "-o", "json")

    assert code == EXIT_OK
    assert json.loads(out)["status"] == "Accepted"
    assert err == ""


def test_a_refused_request_exits_3_with_the_problem_on_stderr():
    problem = wire.problem_document("region-unsupported", "westeurope does not offer it.", runId=wire.RUN_ID)
    broker = FakeBroker().answer("POST", "/deployments", 422, problem)

    code, out, err = _broker(broker, "deploy", "--workspace", wire.WORKSPACE, "--model", wire.MODEL, "--wait")

    assert code == EXIT_REJECTED
    assert "422 region-unsupported: westeurope does not offer it." in err
    assert f"recorded as run {wire.RUN_ID}" in err
    assert out == ""


def test_a_run_that_fails_exits_4_and_prints_the_run():
    broker = _deploying(FakeBroker(), S.VALIDATING, S.PROVISIONING, S.FAILED)

    code, out, err = _broker(broker, "deploy", "--workspace", wire.WORKSPACE, "--model", wire.MODEL, "--wait")

    assert code == EXIT_FAILED
    assert f"run {wire.RUN_ID} ended Failed: eastus2 does not offer it." in err
    assert "status: Failed" in _words(out)


def test_a_call_the_broker_refuses_without_a_run_exits_1():
    problem = wire.problem_document("not-found", "There is no deployment 'x'.")
    broker = FakeBroker().answer("GET", "/deployments/x", 404, problem)

    code, _, err = _broker(broker, "status", "x")

    assert code == 1
    assert "404 not-found: There is no deployment 'x'." in err


def test_status_of_a_rejected_run_exits_3_and_shows_its_steps():
    broker = FakeBroker().answer("GET", RUN_PATH, 200, wire.run_document(S.REJECTED))

    code, out, _ = _broker(broker, "status", wire.RUN_ID)

    assert code == EXIT_REJECTED
    assert "error: region-unsupported: eastus2 does not offer it." in _words(out)
    assert "Rejected" in out.splitlines()[-1]


def test_status_wait_follows_a_run_waiting_for_an_approver():
    broker = FakeBroker().answer("GET", RUN_PATH, 200, wire.pending_approval_document())
    broker.answer("GET", RUN_PATH, 200, wire.run_document(*wire.DEPLOY_PATH, S.SUCCEEDED))

    code, _, err = _broker(broker, "status", wire.RUN_ID, "--wait", "--timeout", "30")

    assert code == EXIT_OK
    assert "PendingApproval  waiting for an approver" in err
    assert err.splitlines()[-1].split()[3] == "Succeeded"


def test_list_prints_a_table_of_deployments_and_runs():
    broker = FakeBroker().answer("GET", "/deployments", 200, {"value": [wire.deployment_document()], "nextLink": None})
    broker.answer("GET", "/runs", 200, {"value": [wire.run_document(S.REJECTED)], "nextLink": None})

    code, deployments, _ = _broker(broker, "list", "--workspace", wire.WORKSPACE)
    runs_code, runs, _ = _broker(broker, "list", "--runs", "--ticket", "T-1")

    assert (code, runs_code) == (EXIT_OK, EXIT_OK)
    header, row = deployments.splitlines()
    assert header.split() == ["ID", "PHASE", "MODEL", "WORKSPACE", "ENDPOINT", "UPDATED"]
    assert row.split() == [wire.DEPLOYMENT_ID, "Ready", "Phi-4", "demo-project", "phi-4", "2026-05-01T12:00:00Z"]
    assert runs.splitlines()[1].split()[:3] == [wire.RUN_ID, "deploy", "Rejected"]


def test_run_filters_without_runs_are_a_usage_error():
    code, _, err = _broker(FakeBroker(), "list", "--status", "Failed")

    assert code == EXIT_USAGE
    assert "--runs" in err


def test_rotate_wait_follows_the_rotation_on_the_keys_run():
    rotate_path = f"{DEPLOYMENT_PATH}/rotate-keys"
    run = wire.run_document(*wire.DEPLOY_PATH, S.SUCCEEDED)
    broker = FakeBroker().answer("POST", rotate_path, 202, wire.rotation_document(), ACCEPTED_HEADERS)
    broker.answer("GET", DEPLOYMENT_PATH, 200, wire.deployment_document())
    broker.answer("GET", RUN_PATH, 200, {**run, "keyRotations": [wire.rotation_document("Rotated")]})

    code, out, err = _broker(broker, "rotate", wire.DEPLOYMENT_ID, "--key", "secondary", "--wait", "--timeout", "30")

    assert code == EXIT_OK
    assert err.splitlines() == ["rotating the secondary key: Pending", "rotating the secondary key: Rotated"]
    assert "status: Rotated" in _words(out)


def test_findings_and_models_print_for_people():
    broker = FakeBroker().answer(
        "GET", "/hygiene/findings", 200, {"value": [wire.finding_document()], "nextLink": None}
    )
    broker.answer("GET", "/models/availability", 200, wire.availability_document(location="westeurope"))

    _, findings, _ = _broker(broker, "findings", "--state", "open")
    _, models, _ = _broker(broker, "models", "--model", wire.MODEL, "--workspace", wire.WORKSPACE)

    assert findings.splitlines()[1].split()[:4] == ["endpoint-unhealthy", "high", "open", "phi-4"]
    assert "sold: directly by Azure" in _words(models)
    assert "workspace: demo-project (westeurope): not offered" in _words(models)


def test_missing_settings_are_a_usage_error():
    code, _, err = _broker(FakeBroker(), "list", environ={})

    assert code == EXIT_USAGE
    assert "BROKER_ENDPOINT" in err


def test_client_secret_variables_sign_in_at_their_authority_others_use_default_azure_credential():
    secret = {"AZURE_TENANT_ID": "tenant", "AZURE_CLIENT_ID": "client", "AZURE_CLIENT_SECRET": "secret"}

    assert isinstance(
        credential_from({**secret, "AZURE_AUTHORITY_HOST": "https://127.0.0.1:8443"}), ClientSecretCredential
    )
    assert isinstance(credential_from({"AZURE_CLIENT_ID": "client"}), DefaultAzureCredential)


def test_tables_pad_columns_and_show_empty_cells_as_a_dash():
    assert output.table(("A", "LONGER"), [("wide-cell", ""), ("x", "y")]).splitlines() == [
        "A          LONGER",
        "wide-cell  -",
        "x          y",
    ]


def _what_if(verdict: str) -> dict[str, Any]:
    """A what-if answer in the shape of shared/deployments/what_if.py's WhatIf."""
    failed = verdict == "rejected"
    return {
        "verdict": verdict,
        "outcome": "rejected" if failed else "create",
        "deploymentId": wire.DEPLOYMENT_ID,
        "summary": "The region does not offer the model." if failed else "A deploy run would create it.",
        "checks": [
            {
                "name": "region",
                "outcome": "failed" if failed else "passed",
                "detail": "eastus2 does not offer it." if failed else "eastus2 offers it.",
                "problem": {"slug": "region-unsupported"} if failed else None,
            }
        ],
        "plan": [] if failed else [{"action": "createEndpoint", "target": wire.ENDPOINT.id, "write": "always"}],
    }


def test_whatif_prints_the_checks_and_plan_and_exits_3_when_it_would_be_rejected():
    allowed = FakeBroker().answer("POST", "/deployments/what-if", 200, _what_if("allowed"))
    rejected = FakeBroker().answer("POST", "/deployments/what-if", 200, _what_if("rejected"))

    allowed_code, plan, _ = _broker(allowed, "whatif", "--workspace", wire.WORKSPACE, "--model", wire.MODEL)
    rejected_code, _, _ = _broker(rejected, "whatif", "--workspace", wire.WORKSPACE, "--model", wire.MODEL)

    assert (allowed_code, rejected_code) == (EXIT_OK, EXIT_REJECTED)
    assert "verdict: allowed" in _words(plan)
    assert "createEndpoint always phi-4" in _words(plan)
    [sent] = allowed.calls("POST", "/deployments/what-if")
    assert sent.body == {"workspaceId": wire.WORKSPACE, "modelId": wire.MODEL}


def test_approve_and_reject_post_the_comment_and_print_the_run():
    broker = FakeBroker().answer("POST", f"{RUN_PATH}/approve", 200, wire.run_document(S.VALIDATING))
    broker.answer("POST", f"{RUN_PATH}/reject", 200, wire.run_document(S.REJECTED))

    approved, out, _ = _broker(broker, "approve", wire.RUN_ID)
    rejected, _, _ = _broker(broker, "reject", wire.RUN_ID, "--comment", "not this quarter")

    assert (approved, rejected) == (EXIT_OK, EXIT_OK)
    assert "status: Validating" in _words(out)
    assert broker.calls("POST", f"{RUN_PATH}/approve")[0].body == {}
    assert broker.calls("POST", f"{RUN_PATH}/reject")[0].body == {"comment": "not this quarter"}


def test_status_of_a_deployment_id_shows_the_deployment():
    broker = FakeBroker().answer("GET", DEPLOYMENT_PATH, 200, wire.deployment_document())

    code, out, _ = _broker(broker, "status", wire.DEPLOYMENT_ID)

    assert code == EXIT_OK
    assert "phase: Ready" in _words(out)
    assert "Healthy" in out
