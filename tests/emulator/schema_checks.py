"""Every Machine Learning answer the emulator gives, checked against the schema of its api-version.

`ContractRecorder` is registered on an emulator's `state.response_checks`, so it sees every ARM answer (raw calls,
azure-ai-ml, the broker's adapters): bodies against `devstack/emulator/schemas/` by role (`api_schemas.answer_role`),
and poll-delay headers against ARM's rules (Retry-After in whole seconds, within the spec's range at default timings).
"""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

from devstack.emulator.api_schemas import answer_role, catalog
from devstack.emulator.middleware import RESET_KEY

# Any api-version's file will do for the ARM error envelope: they all point at the common ErrorResponse.
ERROR_VERSION = "2026-07-01"


class ContractRecorder:
    def __init__(self, state: Any) -> None:
        self._state = state
        self.violations: list[str] = []
        self.checked: Counter[tuple[str, str]] = Counter()

    def __call__(self, request: Any, response: Any) -> None:
        if request.get(RESET_KEY):
            return  # an injected connection reset: no answer reached the client
        where = f"{request.method} {request.path_qs} -> {response.status}"
        self._check_headers(where, request, response)
        role = answer_role(request.method, request.path, response.status)
        if role is None:
            return
        version = request.query.get("api-version")
        schemas = catalog()
        if role == "error" and not schemas.has(version, role):
            version = ERROR_VERSION
        if not schemas.has(version, role):
            self.violations.append(f"{where}: api-version {version} has no schema for {role}")
            return
        raw = getattr(response, "body", None) or b""
        if response.status in {202, 204} and not raw:
            return
        try:
            body = json.loads(raw)
        except ValueError:
            self.violations.append(f"{where}: the {role} answer is not JSON")
            return
        self.checked[(version, role)] += 1
        self.violations += [f"{where}: {problem}" for problem in schemas.response_errors(version, role, body)]

    def _check_headers(self, where: str, request: Any, response: Any) -> None:
        retry_after = response.headers.get("Retry-After")
        if retry_after is None:
            return
        if not retry_after.isdigit() or int(retry_after) < 1:
            self.violations.append(f"{where}: Retry-After {retry_after!r} is not a positive whole number of seconds")
            return
        version = request.query.get("api-version")
        schema = catalog().header_schema(version, "Retry-After") if response.status == 202 else None
        # Only a scenario timing inside the spec's range must give a Retry-After inside it; tests compress time.
        timing = self._state.scenario.timings.retry_after_ms / 1000
        if (
            schema
            and schema["minimum"] <= timing <= schema["maximum"]
            and not (schema["minimum"] <= int(retry_after) <= schema["maximum"])
        ):
            self.violations.append(f"{where}: Retry-After {retry_after} is outside the spec's range")


def record_contract(emulator: Any) -> ContractRecorder:
    recorder = ContractRecorder(emulator.state)
    emulator.state.response_checks.append(recorder)
    return recorder
