"""Compare emulator responses with the official example payloads in ../shared/reference: same keys, same JSON types.

The reference folder sits beside the repository (CI keeps a copy of shared/ at ../shared), so it is resolved from
this file, never from the working directory. Example values are placeholders; only keys, nesting and types count.
"""

from __future__ import annotations

import json
from collections.abc import Collection
from pathlib import Path
from typing import Any

REFERENCE = Path(__file__).resolve().parents[2].parent / "shared" / "reference"


def example_response(relative_path: str, status: str = "200") -> Any:
    document = json.loads((REFERENCE / relative_path).read_text(encoding="utf-8"))
    return document["responses"][status].get("body")


def json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    return {str: "string", list: "array", dict: "object"}[type(value)]


def shape_mismatches(
    example: Any,
    actual: Any,
    *,
    extra: Collection[str] = (),
    optional: Collection[str] = (),
    path: str = "$",
) -> list[str]:
    """Where `actual` departs from `example`: a missing key (unless optional), a key the example lacks (unless
    listed as a documented extra), or a different JSON type. Every actual list item is held to the example's first."""
    if json_type(example) != json_type(actual):
        return [f"{path}: {json_type(actual)} where the example has {json_type(example)}"]
    problems: list[str] = []
    if isinstance(example, dict):
        for key, value in example.items():
            if key in actual:
                problems += shape_mismatches(value, actual[key], extra=extra, optional=optional, path=f"{path}.{key}")
            elif key not in optional:
                problems.append(f"{path}.{key}: missing")
        problems += [f"{path}.{key}: not in the example" for key in actual.keys() - example.keys() - set(extra)]
    elif isinstance(example, list) and example:
        for index, item in enumerate(actual):
            problems += shape_mismatches(example[0], item, extra=extra, optional=optional, path=f"{path}[{index}]")
    return problems
