"""A loopback HTTP server standing in for an alert webhook: it records JSON posts and answers scripted statuses."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Webhook:
    url: str = ""
    # Statuses to answer in order (with optional Retry-After); once used up, 200.
    script: list[tuple[int, str | None]] = field(default_factory=list)
    received: list[dict[str, Any]] = field(default_factory=list)
    attempts: int = 0


@contextmanager
def running_webhook() -> Iterator[Webhook]:
    webhook = Webhook()
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            with lock:
                webhook.attempts += 1
                status, retry_after = webhook.script.pop(0) if webhook.script else (200, None)
                if status < 300:
                    webhook.received.append(body)
            self.send_response(status)
            if retry_after is not None:
                self.send_header("Retry-After", retry_after)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    webhook.url = f"http://127.0.0.1:{server.server_address[1]}/alerts?sig=not-a-secret"
    try:
        yield webhook
    finally:
        server.shutdown()
        server.server_close()
