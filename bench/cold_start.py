"""Cold start: how long a fresh interpreter takes to import the function app, against the same app with every SDK
imported eagerly (the runtime SDKs and the seed's azure-ai-ml, as an app written from the seed's script with
module-level imports would load them), and the worker's Azure path.

The entry point must stay light (no azure-ai-ml, SDKs imported where first used) because a Consumption-plan
instance pays it on every cold start; the worker path's cost is paid once per instance, on the first deployment step.
Each probe is a new interpreter; the figure is the ratio of medians.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from bench.harness.figures import figure

REPO_ROOT = Path(__file__).resolve().parents[1]
GOAL_RATIO = 0.25
# Every composition root, the runtime SDKs of requirements.txt and the seed's SDK.
EAGER = (
    "import function_app, shared.deployments.composition, shared.lifecycle.composition, "
    "shared.hygiene.composition, azure.identity, azure.keyvault.secrets, azure.data.tables, azure.storage.queue, "
    "azure.mgmt.authorization, azure.monitor.opentelemetry, azure.ai.ml"
)
PROBES = {
    "function_app": "import function_app",
    "all_sdks_eager": EAGER,
    "worker_composition": "import shared.deployments.composition",
    "azure_ai_ml": "import azure.ai.ml",
}


@dataclass(frozen=True)
class Load:
    runs: int = 7


FULL = Load()
QUICK = Load(runs=3)


def _seconds(statement: str) -> float:
    script = f"import time; t = time.perf_counter(); {statement}; print(time.perf_counter() - t)"
    result = subprocess.run([sys.executable, "-c", script], cwd=REPO_ROOT, capture_output=True, text=True, check=True)
    return float(result.stdout.strip().splitlines()[-1])


def run(load: Load = FULL) -> dict[str, Any]:
    samples = {name: [] for name in PROBES}
    # Interleaved, so a noisy moment on the machine hits every probe alike.
    for _ in range(load.runs):
        for name, statement in PROBES.items():
            samples[name].append(_seconds(statement))
    medians = {name: statistics.median(values) for name, values in samples.items()}
    results = {
        name: {"medianMs": round(medians[name] * 1000, 1), "maxMs": round(max(values) * 1000, 1), "runs": load.runs}
        for name, values in samples.items()
    }
    ratio = medians["function_app"] / medians["all_sdks_eager"]
    return {
        "load": asdict(load),
        "importTimes": results,
        "figures": [
            figure(
                "cold import of function_app vs all SDKs eager",
                medians["function_app"] * 1000,
                unit="ms",
                reference=medians["all_sdks_eager"] * 1000,
                reference_kind="all SDKs eager",
                goal=f"≤ {GOAL_RATIO:g} x eager",
                met=ratio <= GOAL_RATIO,
            )
        ],
    }
