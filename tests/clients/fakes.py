"""An in-memory broker behind azure-core's transport extension point, and a credential that hands out a fixed token.

The client runs its real pipeline (function key, bearer token, retries, user agent, polling, paging) over
`FakeBroker`, which answers each request from the answers queued for its method and path, keeps the last answer of
a route for every later call, and records what it was sent.
"""

from __future__ import annotations

import json
import time
from collections import defaultdict, deque
from collections.abc import Iterator, Mapping, MutableMapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlsplit

from azure.core.credentials import AccessToken
from azure.core.pipeline.transport import HttpTransport
from azure.core.rest import HttpRequest, HttpResponse
from azure.core.utils import CaseInsensitiveDict
from deployment_broker_client import BrokerClient

ENDPOINT = "http://127.0.0.1:7071"
API = f"{ENDPOINT}/api"
SCOPE = "api://broker-api/.default"
FUNCTION_KEY = "function-key-value"
TOKEN = "token-for-the-broker-api"


class FakeCredential:
    """A TokenCredential: one token, counted."""

    def __init__(self) -> None:
        self.scopes: list[tuple[str, ...]] = []

    def get_token(self, *scopes: str, **_: Any) -> AccessToken:
        self.scopes.append(scopes)
        return AccessToken(TOKEN, int(time.time()) + 3600)


class FakeResponse(HttpResponse):
    def __init__(self, request: HttpRequest, status: int, body: Any, headers: Mapping[str, str]) -> None:
        self._request = request
        self._status = status
        self._content = b"" if body is None else json.dumps(body).encode() if not isinstance(body, bytes) else body
        content_type = "application/problem+json" if status >= 400 else "application/json"
        self._headers: MutableMapping[str, str] = CaseInsensitiveDict({"Content-Type": content_type, **headers})
        self._closed = False

    request = property(lambda self: self._request)
    status_code = property(lambda self: self._status)
    headers = property(lambda self: self._headers)
    reason = property(lambda self: {200: "OK", 202: "Accepted"}.get(self._status, "Error"))
    content_type = property(lambda self: self._headers.get("Content-Type"))
    is_closed = property(lambda self: self._closed)
    is_stream_consumed = property(lambda self: True)
    url = property(lambda self: self._request.url)
    content = property(lambda self: self._content)

    @property
    def encoding(self) -> str:
        return "utf-8"

    @encoding.setter
    def encoding(self, value: str) -> None:
        """Fixed: the fake always answers in UTF-8."""

    def text(self, encoding: str | None = None) -> str:
        return self._content.decode(encoding or "utf-8")

    def json(self) -> Any:
        return json.loads(self._content)

    def raise_for_status(self) -> None:
        """Never raises: the client checks status codes itself."""

    def __enter__(self) -> FakeResponse:
        return self

    def __exit__(self, *args: Any) -> None:
        self.close()

    def close(self) -> None:
        self._closed = True

    def read(self) -> bytes:
        return self._content

    def iter_raw(self, **kwargs: Any) -> Iterator[bytes]:
        yield self._content

    def iter_bytes(self, **kwargs: Any) -> Iterator[bytes]:
        yield self._content


@dataclass(frozen=True)
class Sent:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: Mapping[str, str]
    body: Any


class FakeBroker(HttpTransport):
    def __init__(self) -> None:
        self._answers: dict[tuple[str, str], deque[tuple[int, Any, dict[str, str]]]] = defaultdict(deque)
        self.sent: list[Sent] = []

    def answer(
        self, method: str, path: str, status: int, body: Any = None, headers: Mapping[str, str] | None = None
    ) -> FakeBroker:
        """Queue an answer for `method path` (the path after /api); the last one queued repeats."""
        self._answers[(method, f"/api{path}")].append((status, body, dict(headers or {})))
        return self

    def send(self, request: Any, **kwargs: Any) -> FakeResponse:
        parts = urlsplit(request.url)
        body = json.loads(request.content) if request.content else None
        self.sent.append(Sent(request.method, parts.path, parse_qs(parts.query), dict(request.headers), body))
        queue = self._answers.get((request.method, parts.path))
        if not queue:
            return FakeResponse(request, 404, {"type": "about:blank", "title": "no fake answer", "status": 404}, {})
        status, answer, headers = queue.popleft() if len(queue) > 1 else queue[0]
        return FakeResponse(request, status, answer, headers)

    def calls(self, method: str, path: str) -> list[Sent]:
        return [sent for sent in self.sent if sent.method == method and sent.path == f"/api{path}"]

    def open(self) -> None:
        """Nothing to open."""

    def close(self) -> None:
        """Nothing to close."""

    def __enter__(self) -> FakeBroker:
        return self

    def __exit__(self, *args: Any) -> None:
        self.close()


def client_over(broker: FakeBroker, **kwargs: Any) -> BrokerClient:
    """A BrokerClient whose pipeline ends at `broker`, polling without delay and retrying without backoff."""
    return BrokerClient(
        ENDPOINT,
        kwargs.pop("credential", FakeCredential()),
        scope=SCOPE,
        function_key=FUNCTION_KEY,
        transport=broker,
        polling_interval=0,
        retry_backoff_factor=0,
        **kwargs,
    )
