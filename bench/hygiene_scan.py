"""Benchmark: the hygiene scan over many emulated workspaces (default 1,000), writing bench/results/hygiene_scan.json.

    python -m bench.hygiene_scan [--workspaces 1000] [--deployed 200] [--broken 20] [--workers 8]

Starts Azurite and the emulator in process, deploys a Llama endpoint the broker's way (subscription, endpoint, two
Key Vault secrets) into the first `--deployed` workspaces, deletes the Marketplace subscription of `--broken` of
them, then times a first scan (every finding new), a second (nothing changed) and a third after the subscriptions
are restored (every finding resolves).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from devstack.azurite import start_azurite
from devstack.emulator.scenario import load_scenario_document
from devstack.emulator.testing import running_emulator
from shared.adapters.arm import ArmClient
from shared.adapters.keyvault import KeyVaultAdapter
from shared.adapters.machine_learning import MachineLearningAdapter
from shared.azure_ids import WorkspaceId
from shared.config import Settings
from shared.hygiene.composition import build_hygiene_scanner
from shared.hygiene.settings import HygieneSettings
from shared.naming import key_vault_secret_names
from shared.ownership import MANAGED_BY_TAG, MANAGED_BY_VALUE

SUBSCRIPTION = "00000000-0000-0000-0000-000000000000"
LLAMA = "azureml://registries/azureml-meta/models/Llama-3.3-70B-Instruct"
WORKSPACES_PER_GROUP = 100


def scenario(workspaces: int) -> dict[str, Any]:
    document = load_scenario_document()
    groups = [f"rg-bench-{number:03d}" for number in range(-(-workspaces // WORKSPACES_PER_GROUP))]
    document["subscriptions"] = [
        {
            "subscriptionId": SUBSCRIPTION,
            "resourceGroups": [{"name": group, "location": "eastus2"} for group in ["rg-demo", *groups]],
        }
    ]
    document["workspaces"] = [
        {
            "resourceGroup": groups[number // WORKSPACES_PER_GROUP],
            "name": f"bench-{number:04d}",
            "location": "eastus2",
        }
        for number in range(workspaces)
    ]
    broker = document["brokerPrincipalId"]
    document["roleAssignments"] = [
        *document["roleAssignments"],
        {"principalId": broker, "roleName": "Azure AI Developer", "scope": f"/subscriptions/{SUBSCRIPTION}"},
    ]
    document["models"] = [{"modelId": LLAMA, "locations": ["eastus2"]}]
    # Operations are completed through the admin API, never by waiting.
    document["timings"] = {"lroSeconds": 3600, "retryAfterMs": 50}
    return document


def workspace_id(document: dict[str, Any], number: int) -> str:
    workspace = document["workspaces"][number]
    return (
        f"/subscriptions/{SUBSCRIPTION}/resourceGroups/{workspace['resourceGroup']}/providers/"
        f"Microsoft.MachineLearningServices/workspaces/{workspace['name']}"
    )


def deploy(emulator: Any, document: dict[str, Any], deployed: int, workers: int) -> None:
    credential = emulator.credential()
    arm = ArmClient(emulator.arm_url, credential)
    ml = MachineLearningAdapter(arm)
    vault = KeyVaultAdapter(emulator.vault_url, credential)
    targets = [workspace_id(document, number) for number in range(deployed)]

    def subscribe(target: str) -> None:
        ml.begin_create_subscription(target, "llama-sub", model_id=LLAMA)

    def create_endpoint(target: str) -> None:
        tags = {MANAGED_BY_TAG: MANAGED_BY_VALUE}
        ml.begin_create_endpoint(
            target, f"llama-{target[-4:]}", model_id=LLAMA, location="eastus2", content_safety="Enabled", tags=tags
        )

    def store_keys(target: str) -> None:
        name = f"llama-{target[-4:]}"
        names = key_vault_secret_names(WorkspaceId.parse(target), name)
        keys = ml.list_keys(target, name)
        for key_type, secret, value in (
            ("primary", names.primary, keys.primary),
            ("secondary", names.secondary, keys.secondary),
        ):
            tags = {
                "workspace": target,
                "endpoint": name,
                "model": LLAMA,
                "run": "bench",
                "keyType": key_type,
                MANAGED_BY_TAG: MANAGED_BY_VALUE,
            }
            vault.set_secret(secret, value, content_type="application/vnd.azure-ai-serverless-endpoint-key", tags=tags)

    with ThreadPoolExecutor(max_workers=workers) as pool:
        for step in (subscribe, create_endpoint, store_keys):
            list(pool.map(step, targets))
            emulator.admin.complete_operations()


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workspaces", type=int, default=1000)
    parser.add_argument("--deployed", type=int, default=200)
    parser.add_argument("--broken", type=int, default=20)
    parser.add_argument("--workers", type=int, default=8)
    args = parser.parse_args(argv)
    document = scenario(args.workspaces)
    azurite = start_azurite()
    try:
        with running_emulator(document) as emulator:
            os.environ["REQUESTS_CA_BUNDLE"] = emulator.ca_bundle
            setup_started = time.perf_counter()
            deploy(emulator, document, args.deployed, args.workers)
            setup_seconds = time.perf_counter() - setup_started
            suffix = uuid.uuid4().hex[:8]
            settings = Settings.from_env(
                {
                    "AzureWebJobsStorage": azurite.connection_string,
                    "AZURE_RESOURCE_MANAGER_URL": emulator.arm_url,
                    "AZURE_KEYVAULT_URL": emulator.vault_url,
                    "DEPLOYMENT_RUNS_TABLE": f"runs{suffix}",
                }
            )
            hygiene = HygieneSettings.from_env(
                {
                    "HYGIENE_WORKSPACES": ",".join(workspace_id(document, n) for n in range(args.workspaces)),
                    "HYGIENE_FINDINGS_TABLE": f"findings{suffix}",
                    "HYGIENE_ALERTS_QUEUE": f"hygiene-alerts-{suffix}",
                    "HYGIENE_MAX_WORKERS": str(args.workers),
                }
            )
            scanner = build_hygiene_scanner(settings, hygiene, credential=emulator.credential())
            broken = [document["workspaces"][number]["name"] for number in range(args.broken)]
            for name in broken:
                emulator.admin.subscription_action("delete", name, "llama-sub")
            scans = [_timed_scan(emulator, scanner, "first: every finding new")]
            scans.append(_timed_scan(emulator, scanner, "second: nothing changed"))
            _resubscribe(emulator, document, args.broken)
            scans.append(_timed_scan(emulator, scanner, "third: subscriptions restored"))
    finally:
        azurite.stop()
    return {
        "workspaces": args.workspaces,
        "deployedEndpoints": args.deployed,
        "brokenSubscriptions": args.broken,
        "maxWorkers": args.workers,
        "setupSeconds": round(setup_seconds, 2),
        "scans": scans,
        "peakRssMiB": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "note": "Emulator, Azurite and scanner share one machine (the emulator in the scanner's process).",
    }


def run() -> dict[str, Any]:
    """The default scan for `python -m bench` (which writes bench/results/hygiene_scan.json)."""
    return main([])


def _resubscribe(emulator: Any, document: dict[str, Any], broken: int) -> None:
    credential = emulator.credential()
    ml = MachineLearningAdapter(ArmClient(emulator.arm_url, credential))
    for number in range(broken):
        ml.begin_create_subscription(workspace_id(document, number), "llama-sub", model_id=LLAMA)
    emulator.admin.complete_operations()


def _timed_scan(emulator: Any, scanner: Any, label: str) -> dict[str, Any]:
    emulator.admin.clear_requests()
    started = time.perf_counter()
    report = scanner.scan()
    seconds = time.perf_counter() - started
    requests = emulator.admin.requests(limit=0)["total"]
    summary = {
        "scan": label,
        "seconds": round(seconds, 2),
        "workspacesPerSecond": round(report["workspaces"]["scanned"] / seconds, 1),
        "emulatorRequests": requests,
        "workspaces": report["workspaces"],
        "resources": report["resources"],
        "findings": report["findings"],
        "alerts": report["alerts"],
        "deployments": report["deployments"],
        "errorCount": report["errorCount"],
    }
    print(json.dumps(summary), flush=True)
    return summary


if __name__ == "__main__":
    print(json.dumps(main(), indent=2))
