"""`python -m bench [name ...]`: run benchmarks and write bench/results/<name>.json.

Each benchmark module exposes `run() -> dict`; the runner adds when and where it ran, so results committed as
data can be compared across machines and commits.
"""

from __future__ import annotations

import importlib
import json
import os
import pkgutil
import platform
import subprocess
import sys
import time
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
RESULTS_DIR = BENCH_DIR / "results"


def benchmark_names() -> list[str]:
    return sorted(
        module.name
        for module in pkgutil.iter_modules([str(BENCH_DIR)])
        if not module.name.startswith("_") and hasattr(importlib.import_module(f"bench.{module.name}"), "run")
    )


def machine() -> dict[str, object]:
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=False)
    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "commit": commit.stdout.strip() or None,
        "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


def main(argv: list[str]) -> int:
    RESULTS_DIR.mkdir(exist_ok=True)
    for name in argv or benchmark_names():
        print(f"bench {name} ...", flush=True)
        started = time.perf_counter()
        result = importlib.import_module(f"bench.{name}").run()
        document = {
            "benchmark": name,
            "machine": machine(),
            "wallSeconds": round(time.perf_counter() - started, 2),
            **result,
        }
        (RESULTS_DIR / f"{name}.json").write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
        print(json.dumps(result, indent=2), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
