"""Long-running operations as the Machine Learning resource provider runs them.

A create answers 201 with Azure-AsyncOperation (an mfeOperationsStatus resource); a delete answers 202 with that
and a Location (mfeOperationResults). Each operation completes by itself `timings.lroSeconds` after it started
(checked lazily whenever state is read), or when the admin API completes or fails it.
"""

from __future__ import annotations

import math
import uuid
from datetime import UTC, datetime
from typing import Any

from devstack.emulator.resources import ML_PROVIDER, Operation
from devstack.emulator.state import EmulatorState

# The service's async-operation timeout as ARM advertises it (ISO 8601).
OPERATION_TIMEOUT = "PT1H"


def iso_time(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def start_operation(state: EmulatorState, *, action: str, resource_type: str, target: Any, location: str) -> Operation:
    now = state.clock()
    seconds = state.scenario.timings.lro_seconds
    operation = Operation(
        id=str(uuid.uuid4()),
        action=action,
        resource_type=resource_type,
        subscription_id=target.subscription_id,
        resource_group=target.resource_group,
        workspace=target.workspace,
        resource_name=target.name,
        location=location,
        start_time=now,
        due_at=None if seconds is None else now + float(seconds),
    )
    state.operations[operation.id] = operation
    return operation


def _operation_path(operation: Operation, kind: str) -> str:
    return (
        f"/subscriptions/{operation.subscription_id}/resourceGroups/{operation.resource_group}/providers/"
        f"{ML_PROVIDER}/locations/{operation.location}/{kind}/{operation.id}"
    )


def status_path(operation: Operation) -> str:
    return _operation_path(operation, "mfeOperationsStatus")


def result_path(operation: Operation) -> str:
    return _operation_path(operation, "mfeOperationResults")


def retry_headers(state: EmulatorState) -> dict[str, str]:
    """Poll-delay headers, as ARM sends them: Retry-After in whole seconds (the spec: int32, 10..600; the default
    timing is 10 s). A sub-second delay, which only tests ask for, cannot be whole seconds and is sent as
    retry-after-ms alone: azure-core reads Retry-After first and would round it up to a second."""
    milliseconds = max(1, state.scenario.timings.retry_after_ms)
    if milliseconds < 1000:
        return {"retry-after-ms": str(milliseconds)}
    return {"Retry-After": str(math.ceil(milliseconds / 1000))}


def operation_headers(
    state: EmulatorState, operation: Operation, base_url: str, api_version: str, *, with_location: bool
) -> dict[str, str]:
    query = f"?api-version={api_version}"
    headers = {
        "Azure-AsyncOperation": f"{base_url}{status_path(operation)}{query}",
        "x-ms-async-operation-timeout": OPERATION_TIMEOUT,
        **retry_headers(state),
    }
    if with_location:
        headers["Location"] = f"{base_url}{result_path(operation)}{query}"
    return headers


def status_body(operation: Operation) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": status_path(operation),
        "name": operation.id,
        "status": operation.status,
        "startTime": iso_time(operation.start_time),
    }
    if operation.end_time is not None:
        body["endTime"] = iso_time(operation.end_time)
    if operation.error is not None:
        body["error"] = operation.error
    return body


def due_operations(state: EmulatorState) -> list[Operation]:
    now = state.clock()
    return [
        operation
        for operation in state.operations.values()
        if not operation.done and operation.due_at is not None and operation.due_at <= now
    ]
