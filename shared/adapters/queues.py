"""Storage queues: JSON messages, base64-encoded as host.json's messageEncoding expects, maybe delayed.

The client comes from `shared.adapters.storage`: a connection string, or identity-based as in Azure.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Mapping
from typing import Any

from azure.core.exceptions import ResourceExistsError
from azure.storage.queue import QueueClient, TextBase64EncodePolicy

from shared.adapters.storage import queue_client
from shared.config import StorageSettings

MAX_VISIBILITY_DELAY_SECONDS = 7 * 24 * 3600


class JsonQueue:
    """Sends JSON messages that a queue-triggered function (base64 encoding) can read."""

    def __init__(self, client: QueueClient) -> None:
        self._client = client

    @classmethod
    def open(cls, settings: StorageSettings, queue_name: str) -> JsonQueue:
        client = queue_client(settings, queue_name, message_encode_policy=TextBase64EncodePolicy())
        with contextlib.suppress(ResourceExistsError):
            client.create_queue()
        return cls(client)

    def send_raw(self, text: str) -> None:
        """Forward a message body as it was received (for poison copies of messages that are not valid JSON)."""
        self._client.send_message(text)

    def send(self, message: Mapping[str, Any], *, delay_seconds: float = 0) -> None:
        # Storage takes whole seconds; rounding up never wakes a poll before ARM asked us to come back.
        delay = min(MAX_VISIBILITY_DELAY_SECONDS, max(0, int(-(-delay_seconds // 1))))
        self._client.send_message(json.dumps(message), visibility_timeout=delay or None)
