"""`python -m devstack token`: a bearer token for a demo principal from the emulator's token endpoint, for curl."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from devstack.envfile import write_env_file

REPO = Path(__file__).resolve().parents[2]
# Settings a shell may carry that would change what the command reads.
STACK_SETTINGS = ("AZURE_TENANT_ID", "EMULATOR_AUTHORITY", "BROKER_API_SCOPE", "REQUESTS_CA_BUNDLE")


def run_token(*arguments: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    base = {name: value for name, value in os.environ.items() if name not in STACK_SETTINGS}
    return subprocess.run(
        [sys.executable, "-m", "devstack", "token", *arguments],
        cwd=REPO,
        env={**base, "PYTHONPATH": str(REPO), **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def claims_of(token: str) -> dict:
    payload = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))


@pytest.mark.parametrize(("who", "role"), [("requester", "REQUESTER"), ("reader", "READER"), ("broker", "BROKER")])
def test_it_prints_a_token_for_the_broker_api_as_a_demo_role(emulator, tmp_path, who, role):
    result = run_token("--as", who, env={**emulator.env, "DEVSTACK_DIR": str(tmp_path)})

    assert result.returncode == 0, result.stderr
    claims = claims_of(result.stdout.strip())
    assert claims["oid"] == emulator.env[f"DEMO_{role}_OBJECT_ID"]
    assert claims["aud"] == emulator.env["BROKER_API_CLIENT_ID"]


def test_the_principal_may_be_named_by_object_id_and_the_scope_chosen(emulator, tmp_path):
    reader = emulator.env["DEMO_READER_OBJECT_ID"]
    env = {**emulator.env, "DEVSTACK_DIR": str(tmp_path)}

    result = run_token("--as", reader, "--scope", "https://management.azure.com/.default", env=env)

    assert result.returncode == 0, result.stderr
    assert claims_of(result.stdout.strip())["aud"] == "https://management.azure.com"
    assert claims_of(result.stdout.strip())["oid"] == reader


def test_without_the_environment_it_reads_the_stacks_env_file(emulator, tmp_path):
    write_env_file(tmp_path / "run.env", emulator.env)

    result = run_token(env={"DEVSTACK_DIR": str(tmp_path)})

    assert result.returncode == 0, result.stderr
    assert claims_of(result.stdout.strip())["oid"] == emulator.env["DEMO_REQUESTER_OBJECT_ID"]


def test_without_a_stack_it_says_what_is_missing(tmp_path):
    result = run_token(env={"DEVSTACK_DIR": str(tmp_path)})

    assert result.returncode == 2
    assert "EMULATOR_AUTHORITY" in result.stderr
    assert "make run" in result.stderr


def test_an_unknown_principal_is_refused(emulator, tmp_path):
    result = run_token("--as", "mallory", env={**emulator.env, "DEVSTACK_DIR": str(tmp_path)})

    assert result.returncode == 2
    assert "'mallory' is none of the demo principals" in result.stderr


def test_no_command_prints_the_usage():
    result = subprocess.run(
        [sys.executable, "-m", "devstack"], cwd=REPO, capture_output=True, text=True, timeout=30, check=False
    )

    assert result.returncode == 2
    assert "token" in result.stderr
