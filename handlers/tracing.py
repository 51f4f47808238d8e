"""The trace context the Functions host gives each invocation (the HTTP request's, or a new one per queue message),
for the broker's spans to continue: the POST's becomes the whole deployment's trace (shared/telemetry.py)."""

from __future__ import annotations

import azure.functions as func

from shared.telemetry import TraceContext


def invocation_trace(context: func.Context | None) -> TraceContext | None:
    """The invocation's context; None without one (tests that call a function with its trigger alone)."""
    if context is None:
        return None
    trace_context = context.trace_context
    return TraceContext.of(trace_context.trace_parent, trace_context.trace_state)
