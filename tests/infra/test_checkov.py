"""checkov over every file in infra/: each file parses, no check crashes, and every failed check is one that
infra/checkov-baseline.json accepts with its reason; an accepted finding that no longer fails must leave the baseline.

checkov lives in its own virtualenv (`make checkov` or `make test` builds .venv-checkov); without it this module is
skipped.
"""

from __future__ import annotations

import json
import os
import subprocess
from typing import Any

import pytest

from .bicep import INFRA, REPO

CHECKOV = REPO / ".venv-checkov" / "bin" / "checkov"
BASELINE = INFRA / "checkov-baseline.json"

Finding = tuple[str, str, str]  # file (relative to infra/, as checkov names it), resource, check id


@pytest.fixture(scope="module")
def report() -> dict[str, Any]:
    if not CHECKOV.is_file():
        pytest.skip("checkov's virtualenv .venv-checkov is missing; `make checkov` creates it")
    completed = subprocess.run(
        [CHECKOV, "--directory", INFRA, "--framework", "bicep", "--skip-download", "--output", "json"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
        # Offline: no guideline mapping to fetch.
        env={**os.environ, "BC_SKIP_MAPPING": "TRUE"},
    )
    # A check that raises is logged and left out of the report, so it would pass unseen.
    assert "Failed to run check" not in completed.stderr, completed.stderr
    return json.loads(completed.stdout)


def baseline() -> dict[Finding, str]:
    accepted: dict[Finding, str] = {}
    for entry in json.loads(BASELINE.read_text(encoding="utf-8"))["failed_checks"]:
        for finding in entry["findings"]:
            for check_id in finding["check_ids"]:
                accepted[(entry["file"], finding["resource"], check_id)] = finding["reason"]
    return accepted


def test_checkov_parses_every_infra_file(report: dict[str, Any]) -> None:
    assert report["results"]["parsing_errors"] == []
    assert report["summary"]["parsing_errors"] == 0


def test_every_failed_check_is_an_accepted_finding(report: dict[str, Any]) -> None:
    failed = {
        (check["file_path"], check["resource"], check["check_id"]) for check in report["results"]["failed_checks"]
    }
    accepted = baseline()
    assert failed - accepted.keys() == set(), "new checkov findings: fix them, or accept them in the baseline"
    assert accepted.keys() - failed == set(), "accepted findings that no longer fail: remove them from the baseline"


def test_every_accepted_finding_says_why() -> None:
    for finding, reason in baseline().items():
        assert len(reason.split()) >= 5, f"{finding}: the baseline must say why it is accepted"


def test_the_network_checks_that_once_failed_now_pass(report: dict[str, Any]) -> None:
    passed = {(check["check_id"], check["resource"]) for check in report["results"]["passed_checks"]}
    assert {
        ("CKV_AZURE_35", "Microsoft.Storage/storageAccounts.account"),  # default-deny firewall
        ("CKV_AZURE_59", "Microsoft.Storage/storageAccounts.account"),  # public network access disabled
        ("CKV_AZURE_109", "Microsoft.KeyVault/vaults.vault"),  # default-deny firewall
        ("CKV_AZURE_189", "Microsoft.KeyVault/vaults.vault"),  # public network access disabled
    } <= passed
