"""Exports the broker's telemetry to Azure Monitor when the Functions worker does not.

With PYTHON_APPLICATIONINSIGHTS_ENABLE_TELEMETRY on, the Python worker calls configure_azure_monitor() itself, and a
second call would install a second set of providers; so this only steps in when that setting is off and a
connection string is present.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Mapping

CONNECTION_STRING_SETTING = "APPLICATIONINSIGHTS_CONNECTION_STRING"
WORKER_TELEMETRY_SETTING = "PYTHON_APPLICATIONINSIGHTS_ENABLE_TELEMETRY"
# The spellings the Python worker reads as "on".
_TRUE_LIKE = frozenset({"1", "true", "t", "yes", "y"})

_lock = threading.Lock()
_configured = False


def configure_telemetry(environ: Mapping[str, str] = os.environ) -> bool:
    """Install the Azure Monitor exporters once per process; True when the broker (now or earlier) did."""
    global _configured  # noqa: PLW0603 - once per process, like the providers it installs
    if environ.get(WORKER_TELEMETRY_SETTING, "").strip().lower() in _TRUE_LIKE:
        return False
    connection_string = environ.get(CONNECTION_STRING_SETTING, "").strip()
    if not connection_string:
        return False
    with _lock:
        if not _configured:
            # Imported here: the distro pulls in the SDK and its instrumentations, too heavy for a cold start.
            from azure.monitor.opentelemetry import configure_azure_monitor

            configure_azure_monitor(connection_string=connection_string)
            _configured = True
    return True
