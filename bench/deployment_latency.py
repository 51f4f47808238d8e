"""End to end: how long deployments take from POST to Succeeded through the local stack, and how long any one
function invocation holds a worker while the emulator's long-running operations take their time.

Azure's own provisioning time is the emulator's `lroSeconds`; what is measured is the broker's overhead on top
(queue hops, polling cadence, Key Vault writes) and that no invocation waits on an operation.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from devstack.azurite import start_azurite
from devstack.emulator.testing import running_emulator
from tests.integration.conftest import Broker, start_broker_host

LRO_SECONDS = 2.0
MODELS = (
    "azureml://registries/azureml/models/Phi-4",
    "azureml://registries/azureml/models/Phi-4-mini-instruct",
    "azureml://registries/azureml/models/Phi-4-reasoning",
    "azureml://registries/azureml-deepseek/models/DeepSeek-R1",
    "azureml://registries/azureml-deepseek/models/DeepSeek-V3-0324",
    "azureml://registries/azureml-cohere/models/Cohere-command-r-08-2024",
    "azureml://registries/azureml-cohere/models/Cohere-embed-v3-english",
    "azureml://registries/azureml-mistral/models/Ministral-3B",
    "azureml://registries/azureml-mistral/models/Codestral-2501",
    "azureml://registries/azureml-meta/models/Meta-Llama-3.1-8B-Instruct",
)


def _deploy(broker: Broker, model: str) -> tuple[float, str]:
    started = time.perf_counter()
    response = broker.call(
        "POST",
        "/api/deployments",
        caller=broker.requester,
        json={"workspaceId": broker.workspace_id(), "modelId": model},
    )
    run = broker.wait_for_run(response.json()["id"], timeout=180)
    return time.perf_counter() - started, run["status"]


def run() -> dict[str, object]:
    azurite = start_azurite()
    try:
        with running_emulator(timings={"lroSeconds": LRO_SECONDS, "retryAfterMs": 500}) as emulator:
            host = start_broker_host(emulator, azurite.connection_string, Path(tempfile.mkdtemp()) / "host.log")
            try:
                broker = Broker(host, emulator, azurite.connection_string)
                with ThreadPoolExecutor(max_workers=len(MODELS)) as pool:
                    outcomes = list(pool.map(lambda model: _deploy(broker, model), MODELS))
                invocations = host.invocations()
            finally:
                host.stop()
    finally:
        azurite.stop()
    seconds = sorted(elapsed for elapsed, _ in outcomes)
    durations = [record["durationMs"] for record in invocations]
    return {
        "deployments": len(MODELS),
        "concurrent": True,
        "emulatorLroSeconds": LRO_SECONDS,
        "succeeded": sum(status == "Succeeded" for _, status in outcomes),
        "postToSucceededSeconds": {
            "median": round(statistics.median(seconds), 2),
            "p90": round(seconds[int(0.9 * (len(seconds) - 1))], 2),
            "max": round(seconds[-1], 2),
        },
        "invocations": {
            "count": len(durations),
            "medianMs": round(statistics.median(durations), 1),
            "maxMs": round(max(durations), 1),
        },
    }
