"""What the worker hands a function besides its trigger: the invocation Context and Out[...] holders."""

from __future__ import annotations

import secrets
import threading
from typing import Any, TypeVar

import azure.functions as func
from azure.functions._abc import RetryContext, RpcException, TraceContext  # not exported at the top level

Value = TypeVar("Value")


class Out(func.Out[Value]):
    def __init__(self) -> None:
        self._value: Value | None = None

    def set(self, val: Value) -> None:
        self._value = val

    def get(self) -> Value:
        return self._value  # type: ignore[return-value]  # unset outputs are None, as in the worker


class _TraceContext(TraceContext):
    def __init__(self, trace_parent: str) -> None:
        self._trace_parent = trace_parent

    @property
    def trace_state(self) -> str:
        return ""

    @property
    def trace_parent(self) -> str:
        return self._trace_parent

    @property
    def attributes(self) -> dict[str, str]:
        return {}


class _FirstAttempt(RetryContext):
    """Retry policies are not applied locally, so every invocation is attempt 0 of 0."""

    @property
    def retry_count(self) -> int:
        return 0

    @property
    def max_retry_count(self) -> int:
        return 0

    @property
    def exception(self) -> RpcException:
        raise AttributeError("no retry has happened")


class InvocationContext(func.Context):
    def __init__(self, *, invocation_id: str, function_name: str, function_directory: str, trace_parent: str) -> None:
        self._invocation_id = invocation_id
        self._function_name = function_name
        self._function_directory = function_directory
        self._trace_context = _TraceContext(trace_parent)
        self._thread_local = threading.local()

    @property
    def invocation_id(self) -> str:
        return self._invocation_id

    @property
    def thread_local_storage(self) -> Any:
        return self._thread_local

    @property
    def function_name(self) -> str:
        return self._function_name

    @property
    def function_directory(self) -> str:
        return self._function_directory

    @property
    def trace_context(self) -> TraceContext:
        return self._trace_context

    @property
    def retry_context(self) -> RetryContext:
        return _FirstAttempt()


def new_trace_parent() -> str:
    """A W3C traceparent for an invocation that did not arrive with one."""
    return f"00-{secrets.token_hex(16)}-{secrets.token_hex(8)}-01"
