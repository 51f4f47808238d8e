"""`python -m bench [--quick] [name ...]`: run benchmarks, write bench/results/<name>.json and the table in
bench/README.md.

Each benchmark module exposes `run() -> dict`; one with a `QUICK` load runs it under `--quick` (or BENCH_QUICK=1),
for a faster, smaller pass. A result's `figures` rows (bench/harness/figures.py) make the README table; the runner
adds when and where it ran, so results committed as data can be compared across machines and commits.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import pkgutil
import platform
import subprocess
import sys
import time
from pathlib import Path

from bench.harness.figures import update_readme

BENCH_DIR = Path(__file__).resolve().parent
RESULTS_DIR = BENCH_DIR / "results"
README = BENCH_DIR / "README.md"


def benchmark_names() -> list[str]:
    return sorted(
        module.name
        for module in pkgutil.iter_modules([str(BENCH_DIR)])
        if not module.name.startswith("_") and hasattr(importlib.import_module(f"bench.{module.name}"), "run")
    )


def machine() -> dict[str, object]:
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=False)
    dirty = subprocess.run(["git", "status", "--porcelain"], capture_output=True, text=True, check=False)
    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "commit": commit.stdout.strip() or None,
        # Figures measured on uncommitted changes say so.
        "uncommittedChanges": bool(dirty.stdout.strip()),
        "loadAverage": [round(value, 2) for value in os.getloadavg()],
        "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", help="benchmarks to run (default: all)")
    parser.add_argument("--quick", action="store_true", default=os.environ.get("BENCH_QUICK") == "1")
    args = parser.parse_args(argv)
    RESULTS_DIR.mkdir(exist_ok=True)
    for name in args.names or benchmark_names():
        print(f"bench {name} ...", flush=True)
        module = importlib.import_module(f"bench.{name}")
        quick = args.quick and hasattr(module, "QUICK")
        started_machine = machine()
        started = time.perf_counter()
        result = module.run(module.QUICK) if quick else module.run()
        document = {
            "benchmark": name,
            "machine": started_machine,
            "scale": "quick" if quick else "full",
            "wallSeconds": round(time.perf_counter() - started, 2),
            **result,
        }
        (RESULTS_DIR / f"{name}.json").write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
        print(json.dumps(result, indent=2), flush=True)
        update_readme(README, RESULTS_DIR)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
