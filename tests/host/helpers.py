"""Helpers for host tests: HTTP calls, marker files written by the sample apps, and queues on Azurite."""

from __future__ import annotations

import base64
import json
import shutil
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from email.message import Message
from pathlib import Path
from typing import Any

from azure.core.exceptions import ResourceExistsError
from azure.storage.queue import QueueClient

from devstack.host.process import HostProcess, start_host

APPS = Path(__file__).parent / "apps"


@dataclass(frozen=True)
class Reply:
    status: int
    headers: Message
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


def call(
    url: str,
    method: str = "GET",
    *,
    headers: Mapping[str, str] | None = None,
    body: bytes | None = None,
    timeout: float = 10.0,
) -> Reply:
    request = urllib.request.Request(url, method=method, headers=dict(headers or {}), data=body)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return Reply(response.status, response.headers, response.read())
    except urllib.error.HTTPError as error:
        return Reply(error.code, error.headers, error.read())


@contextmanager
def running_host(app_dir: Path, *, env: Mapping[str, str], log_dir: Path, **options: Any) -> Iterator[HostProcess]:
    """The host for a sample app; without Easy Auth unless `easy_auth=True` (test_easy_auth.py tests it, the other
    host rules are tested without it, as `--no-easy-auth` is for)."""
    options.setdefault("easy_auth", False)
    log_dir.mkdir(parents=True, exist_ok=True)
    host = start_host(app_dir, env=env, log_path=log_dir / "host.log", **options)
    try:
        yield host
    finally:
        host.stop()


def copy_app(app: str, destination: Path, *, host_json: dict[str, Any] | None = None) -> Path:
    """A copy of a sample app, optionally with another host.json, for rules that host.json switches."""
    target = destination / app
    shutil.copytree(APPS / app, target, ignore=shutil.ignore_patterns("__pycache__"))
    if host_json is not None:
        (target / "host.json").write_text(json.dumps(host_json), encoding="utf-8")
    return target


def read_markers(marker_dir: Path, function: str) -> list[dict[str, Any]]:
    path = marker_dir / f"{function}.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]


def wait_for_markers(
    marker_dir: Path,
    function: str,
    count: int,
    *,
    where: Callable[[dict[str, Any]], bool] = lambda _: True,
    timeout: float = 10.0,
) -> list[dict[str, Any]]:
    deadline = time.monotonic() + timeout
    while True:
        markers = [marker for marker in read_markers(marker_dir, function) if where(marker)]
        if len(markers) >= count or time.monotonic() > deadline:
            return markers
        time.sleep(0.05)


def open_queue(connection_string: str, name: str) -> QueueClient:
    client = QueueClient.from_connection_string(connection_string, name)
    with suppress(ResourceExistsError):
        client.create_queue()
    return client


def b64(text: str) -> str:
    return base64.b64encode(text.encode("utf-8")).decode("ascii")


def receive_all(client: QueueClient, count: int, *, timeout: float = 10.0) -> list[str]:
    """Receive and delete messages until `count` arrived or `timeout` passed; returns their raw contents."""
    contents: list[str] = []
    deadline = time.monotonic() + timeout
    while len(contents) < count and time.monotonic() < deadline:
        for message in client.receive_messages(max_messages=32, visibility_timeout=30):
            contents.append(message.content)
            client.delete_message(message)
        time.sleep(0.05)
    return contents


def message_count(client: QueueClient) -> int:
    """Visible and invisible messages alike."""
    return client.get_queue_properties().approximate_message_count
