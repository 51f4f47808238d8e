"""Cold start: how long a fresh interpreter takes to import the function app, and the worker's Azure path.

The entry point must stay light (no azure-ai-ml) because a Consumption-plan instance pays it on every cold start;
the worker path's cost is paid once per instance, on the first deployment step.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
RUNS = 7
PROBES = {
    "function_app": "import function_app",
    "worker_composition": "import shared.deployments.composition",
    "azure_ai_ml": "import azure.ai.ml",
}


def _seconds(statement: str) -> float:
    script = f"import time; t = time.perf_counter(); {statement}; print(time.perf_counter() - t)"
    result = subprocess.run([sys.executable, "-c", script], cwd=REPO_ROOT, capture_output=True, text=True, check=True)
    return float(result.stdout.strip().splitlines()[-1])


def run() -> dict[str, object]:
    results = {}
    for name, statement in PROBES.items():
        samples = [_seconds(statement) for _ in range(RUNS)]
        results[name] = {
            "medianMs": round(statistics.median(samples) * 1000, 1),
            "maxMs": round(max(samples) * 1000, 1),
            "runs": RUNS,
        }
    return {"importTimes": results}
