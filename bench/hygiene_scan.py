"""Benchmark: the hygiene scan against a naive SDK scan of the same emulated tenant, in the same run.

    python -m bench.hygiene_scan [--workspaces 1000] [--endpoints 5] [--broken 20] [--workers 8]

Starts Azurite and the emulator in process and deploys `--endpoints` Llama endpoints the broker's way (one Marketplace
subscription, the endpoints, two fingerprinted Key Vault secrets each) into every one of `--workspaces` workspaces,
then deletes the subscription of `--broken` of them. Then, on the same tenant and with the same thread-pool width:

- the naive scan: the seed's SDKs (azure-ai-ml's MLClient per workspace, azure-keyvault-secrets), listing endpoints
  and subscriptions, then for every endpoint `get`, `get_keys` and both secrets' values;
- the broker's scans, 15 minutes apart on the scanner's clock: the first (no earlier report, so every endpoint's keys
  are compared with listKeys, by fingerprint), an ordinary one (nothing changed), and one after the subscriptions
  are restored (every finding resolves).

Calls are counted from the emulator's request log (ARM, and Key Vault including its one 401 challenge per client);
wall time is each scan's own. The emulator, Azurite and the scanners share one process and machine, so the figures
compare call patterns on the same footing rather than predict Azure's latencies.
"""

from __future__ import annotations

import argparse
import hmac
import json
import os
import resource
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from bench.harness.figures import figure
from devstack.azurite import start_azurite
from devstack.emulator.scenario import load_scenario_document
from devstack.emulator.testing import EmulatorHandle, running_emulator
from shared.adapters.arm import ArmClient
from shared.adapters.keyvault import KeyVaultAdapter
from shared.adapters.machine_learning import MachineLearningAdapter
from shared.azure_ids import WorkspaceId
from shared.config import Settings
from shared.hygiene.composition import build_hygiene_scanner
from shared.hygiene.settings import HygieneSettings
from shared.key_secrets import KEY_FINGERPRINT_TAG, SECRET_CONTENT_TYPE, key_fingerprint, key_secret_tags
from shared.naming import key_vault_secret_names
from shared.ownership import MANAGED_BY_TAG, MANAGED_BY_VALUE

SUBSCRIPTION = "00000000-0000-0000-0000-000000000000"
LLAMA = "azureml://registries/azureml-meta/models/Llama-3.3-70B-Instruct"
# One endpoint per model per project (Azure's rule): short name, model, and whether it is sold via Marketplace.
MODELS = (
    ("llama", LLAMA, True),
    ("cohere", "azureml://registries/azureml-cohere/models/Cohere-command-r-08-2024", True),
    ("phi", "azureml://registries/azureml/models/Phi-4", False),
    ("phi-mini", "azureml://registries/azureml/models/Phi-4-mini-instruct", False),
    ("phi-reasoning", "azureml://registries/azureml/models/Phi-4-reasoning", False),
)
SOLD_DIRECTLY_PREFIX = "azureml://registries/azureml/"
# The subscription deleted in the broken workspaces: their Llama endpoint turns unhealthy.
SUBSCRIPTION_NAME = "llama-sub"
WORKSPACES_PER_GROUP = 100
SCAN_EVERY = timedelta(minutes=15)
GOAL_ARM = 1.1
GOAL_KEY_VAULT = 1.0
GOAL_WALL_RATIO = 0.5


@dataclass(frozen=True)
class Load:
    workspaces: int = 1000
    endpoints: int = 5
    broken: int = 20
    workers: int = 8


FULL = Load()
QUICK = Load(workspaces=100)


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
    document["models"] = [
        {"modelId": model, "locations": ["eastus2"], "soldDirectly": not sold_via_marketplace}
        for _, model, sold_via_marketplace in MODELS
    ]
    # Operations are completed through the admin API, never by waiting.
    document["timings"] = {"lroSeconds": 3600, "retryAfterMs": 50}
    return document


def workspace_id(document: dict[str, Any], number: int) -> str:
    workspace = document["workspaces"][number]
    return (
        f"/subscriptions/{SUBSCRIPTION}/resourceGroups/{workspace['resourceGroup']}/providers/"
        f"Microsoft.MachineLearningServices/workspaces/{workspace['name']}"
    )


def endpoints_of(load: Load, target: str) -> list[tuple[str, str, str]]:
    """(workspace, endpoint name, model) of each endpoint in a workspace."""
    return [(target, f"{short}-{target[-4:]}", model) for short, model, _ in MODELS[: load.endpoints]]


def deploy(emulator: EmulatorHandle, document: dict[str, Any], load: Load) -> None:
    """Every workspace gets its subscription, its endpoints and their secrets, tagged as the broker tags them."""
    credential = emulator.credential()
    ml = MachineLearningAdapter(ArmClient(emulator.arm_url, credential))
    vault = KeyVaultAdapter(emulator.vault_url, credential)
    targets = [workspace_id(document, number) for number in range(load.workspaces)]
    endpoints = [item for target in targets for item in endpoints_of(load, target)]
    subscriptions = [
        (target, f"{short}-sub", model)
        for target in targets
        for short, model, sold_via_marketplace in MODELS[: load.endpoints]
        if sold_via_marketplace
    ]

    def subscribe(item: tuple[str, str, str]) -> None:
        target, name, model = item
        ml.begin_create_subscription(target, name, model_id=model)

    def create_endpoint(item: tuple[str, str, str]) -> None:
        target, name, model = item
        tags = {MANAGED_BY_TAG: MANAGED_BY_VALUE, "brokerRunId": "bench"}
        ml.begin_create_endpoint(target, name, model_id=model, location="eastus2", content_safety="Enabled", tags=tags)

    def store_keys(item: tuple[str, str, str]) -> None:
        target, name, model = item
        names = key_vault_secret_names(WorkspaceId.parse(target), name)
        keys = ml.list_keys(target, name)
        for key_type, secret, value in (
            ("primary", names.primary, keys.primary),
            ("secondary", names.secondary, keys.secondary),
        ):
            tags = key_secret_tags(
                workspace_id=target,
                endpoint_name=name,
                endpoint_id=f"{target}/serverlessEndpoints/{name}",
                model_id=model,
                run_id="bench",
                key_type=key_type,
                validity_days=None,
            )
            tags[KEY_FINGERPRINT_TAG] = key_fingerprint(value)
            vault.set_secret(secret, value, content_type=SECRET_CONTENT_TYPE, tags=tags)

    with ThreadPoolExecutor(max_workers=load.workers) as pool:
        list(pool.map(subscribe, subscriptions))
        emulator.admin.complete_operations()
        list(pool.map(create_endpoint, endpoints))
        emulator.admin.complete_operations()
        list(pool.map(store_keys, endpoints))


@dataclass(frozen=True)
class Calls:
    arm: int
    key_vault: int
    list_keys: int
    secret_reads: int

    @classmethod
    def of(cls, counts: dict[str, int]) -> Calls:
        """From the request log's per-route counts ("METHOD arm:/route" or "METHOD vault:<name>:/route")."""
        arm = key_vault = list_keys = secret_reads = 0
        for key, count in counts.items():
            method, _, route = key.partition(" ")
            if route.startswith("arm:"):
                arm += count
                list_keys += count if route.endswith("/listKeys") else 0
            elif route.startswith("vault:"):
                key_vault += count
                path = route.split(":", 2)[2]
                secret_reads += count if method == "GET" and path.startswith("/secrets/{name}") else 0
        return cls(arm, key_vault, list_keys, secret_reads)

    def per_endpoint(self, endpoints: int) -> dict[str, float]:
        return {name: round(value / max(endpoints, 1), 3) for name, value in asdict(self).items()}


def measured(emulator: EmulatorHandle, label: str, endpoints: int, action: Callable[[], dict]) -> dict[str, Any]:
    emulator.admin.clear_requests()
    started = time.perf_counter()
    outcome = action()
    seconds = time.perf_counter() - started
    calls = Calls.of(emulator.admin.requests(limit=0)["counts"])
    summary = {
        "scan": label,
        "seconds": round(seconds, 2),
        "calls": asdict(calls),
        "callsPerEndpoint": calls.per_endpoint(endpoints),
        **outcome,
    }
    print(json.dumps(summary), flush=True)
    return summary


def naive_scan(emulator: EmulatorHandle, document: dict[str, Any], load: Load) -> dict[str, Any]:
    """What a script written from the seed's SDK snippets does: everything, for every endpoint, every time. (Its SDKs
    are imported before it is timed, as in a warm worker.)"""
    from azure.ai.ml import MLClient
    from azure.keyvault.secrets import SecretClient

    credential = emulator.credential()
    secrets = SecretClient(emulator.vault_url, credential, verify_challenge_resource=False)

    def scan_workspace(number: int) -> tuple[int, int, int]:
        workspace = document["workspaces"][number]
        client = MLClient(credential, SUBSCRIPTION, workspace["resourceGroup"], workspace["name"])
        subscriptions = client.marketplace_subscriptions.list()
        subscribed = {sub.model_id.lower() for sub in subscriptions if (sub.status or "").lower() == "subscribed"}
        endpoints = unhealthy = drifted = 0
        for listed in client.serverless_endpoints.list():
            endpoint = client.serverless_endpoints.get(listed.name)
            endpoints += 1
            if (endpoint.tags or {}).get(MANAGED_BY_TAG) != MANAGED_BY_VALUE:
                continue
            model = endpoint.model_id.lower()
            unhealthy += not model.startswith(SOLD_DIRECTLY_PREFIX) and model not in subscribed
            keys = client.serverless_endpoints.get_keys(endpoint.name)
            names = key_vault_secret_names(WorkspaceId.parse(workspace_id(document, number)), endpoint.name)
            for name, key in ((names.primary, keys.primary_key), (names.secondary, keys.secondary_key)):
                value = secrets.get_secret(name).value or ""
                drifted += not hmac.compare_digest(value.encode(), key.encode())
        return endpoints, unhealthy, drifted

    with ThreadPoolExecutor(max_workers=load.workers) as pool:
        results = list(pool.map(scan_workspace, range(load.workspaces)))
    return {
        "endpoints": sum(result[0] for result in results),
        "unhealthy": sum(result[1] for result in results),
        "driftedSecrets": sum(result[2] for result in results),
    }


def broker_scan(scanner: Any) -> dict[str, Any]:
    report = scanner.scan()
    return {
        "endpoints": report["resources"]["endpoints"],
        "unhealthy": report["findings"]["open"].get("endpoint-unhealthy", 0),
        "findings": report["findings"],
        "keyDrift": report["keyDrift"],
        "errorCount": report["errorCount"],
    }


class ScanClock:
    """The scanner's clock: the scan schedule's time, moved on by hand between scans."""

    def __init__(self) -> None:
        self.now = datetime.now(UTC)

    def __call__(self) -> datetime:
        return self.now


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    defaults = FULL
    parser.add_argument("--workspaces", type=int, default=defaults.workspaces)
    parser.add_argument("--endpoints", type=int, default=defaults.endpoints, help="endpoints per workspace")
    parser.add_argument("--broken", type=int, default=defaults.broken)
    parser.add_argument("--workers", type=int, default=defaults.workers)
    args = parser.parse_args(argv)
    return run(Load(args.workspaces, args.endpoints, args.broken, args.workers))


def run(load: Load = FULL) -> dict[str, Any]:
    document = scenario(load.workspaces)
    endpoints = load.workspaces * load.endpoints
    azurite = start_azurite()
    try:
        with running_emulator(document) as emulator:
            os.environ["REQUESTS_CA_BUNDLE"] = emulator.ca_bundle
            os.environ["AZUREML_DEV_URL_MFE"] = emulator.arm_url
            setup_started = time.perf_counter()
            deploy(emulator, document, load)
            for number in range(load.broken):
                emulator.admin.subscription_action("delete", document["workspaces"][number]["name"], SUBSCRIPTION_NAME)
            setup_seconds = time.perf_counter() - setup_started
            import azure.ai.ml  # noqa: F401 - the naive scan's SDK, imported before it is timed

            clock = ScanClock()
            scanner = build_hygiene_scanner(
                _settings(emulator, azurite.connection_string),
                _hygiene_settings(document, load),
                credential=emulator.credential(),
                clock=clock,
            )
            naive = measured(emulator, "naive SDK scan", endpoints, lambda: naive_scan(emulator, document, load))
            scans = [
                measured(emulator, "first: no earlier scan, every key checked", endpoints, lambda: broker_scan(scanner))
            ]
            clock.now += SCAN_EVERY
            scans.append(measured(emulator, "ordinary: nothing changed", endpoints, lambda: broker_scan(scanner)))
            _resubscribe(emulator, document, load.broken)
            clock.now += SCAN_EVERY
            scans.append(measured(emulator, "subscriptions restored", endpoints, lambda: broker_scan(scanner)))
    finally:
        azurite.stop()
    return {
        "load": asdict(load),
        "endpoints": endpoints,
        "setupSeconds": round(setup_seconds, 2),
        "naive": naive,
        "scans": scans,
        "figures": _figures(load, naive, scans),
        "peakRssMiB": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "note": (
            "Emulator, Azurite and both scanners share one process and machine; calls come from the emulator's "
            "request log. The broker compares each endpoint's keys with listKeys once per "
            "HYGIENE_KEY_DRIFT_INTERVAL_HOURS (24), spread over the interval's scans, so at a 15-minute schedule an "
            "ordinary scan lists keys for about 1/96 of the endpoints; the first scan, having no earlier report, "
            "compares them all."
        ),
    }


def _figures(load: Load, naive: dict[str, Any], scans: list[dict[str, Any]]) -> list[dict[str, Any]]:
    scale = f"{load.workspaces:,} workspaces x {load.endpoints} endpoints"
    ordinary, first = scans[1], scans[0]
    per = ordinary["callsPerEndpoint"]
    per_naive = naive["callsPerEndpoint"]
    return [
        figure(
            f"hygiene, {scale}: ARM calls per endpoint, ordinary scan",
            per["arm"],
            unit="calls",
            reference=per_naive["arm"],
            reference_kind="naive SDK scan",
            goal=f"≤ {GOAL_ARM:g}",
            met=per["arm"] <= GOAL_ARM,
        ),
        figure(
            f"hygiene, {scale}: Key Vault calls per endpoint, ordinary scan",
            per["key_vault"],
            unit="calls",
            reference=per_naive["key_vault"],
            reference_kind="naive SDK scan",
            goal=f"≤ {GOAL_KEY_VAULT:g}",
            met=per["key_vault"] <= GOAL_KEY_VAULT,
        ),
        figure(
            f"hygiene, {scale}: wall, ordinary scan",
            ordinary["seconds"],
            unit="s",
            reference=naive["seconds"],
            reference_kind="naive SDK scan",
            goal=f"≤ {GOAL_WALL_RATIO:g} x naive",
            met=ordinary["seconds"] <= GOAL_WALL_RATIO * naive["seconds"],
        ),
        figure(
            f"hygiene, {scale}: wall, first scan (every key checked)",
            first["seconds"],
            unit="s",
            reference=naive["seconds"],
            reference_kind="naive SDK scan",
            goal=f"≤ {GOAL_WALL_RATIO:g} x naive",
            met=first["seconds"] <= GOAL_WALL_RATIO * naive["seconds"],
        ),
    ]


def _settings(emulator: EmulatorHandle, connection_string: str) -> Settings:
    suffix = uuid.uuid4().hex[:8]
    return Settings.from_env(
        {
            "AzureWebJobsStorage": connection_string,
            "AZURE_RESOURCE_MANAGER_URL": emulator.arm_url,
            "AZURE_KEYVAULT_URL": emulator.vault_url,
            "DEPLOYMENT_RUNS_TABLE": f"runs{suffix}",
            "HYGIENE_FINDINGS_TABLE": f"findings{suffix}",
        }
    )


def _hygiene_settings(document: dict[str, Any], load: Load) -> HygieneSettings:
    suffix = uuid.uuid4().hex[:8]
    return HygieneSettings.from_env(
        {
            "HYGIENE_WORKSPACES": ",".join(workspace_id(document, n) for n in range(load.workspaces)),
            "HYGIENE_FINDINGS_TABLE": f"findings{suffix}",
            "HYGIENE_ALERTS_QUEUE": f"hygiene-alerts-{suffix}",
            "HYGIENE_MAX_WORKERS": str(load.workers),
        }
    )


def _resubscribe(emulator: EmulatorHandle, document: dict[str, Any], broken: int) -> None:
    ml = MachineLearningAdapter(ArmClient(emulator.arm_url, emulator.credential()))
    for number in range(broken):
        ml.begin_create_subscription(workspace_id(document, number), SUBSCRIPTION_NAME, model_id=LLAMA)
    emulator.admin.complete_operations()


if __name__ == "__main__":
    print(json.dumps(main(), indent=2))
