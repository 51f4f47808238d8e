"""A counting reverse proxy in front of Azurite, so benchmarks count the requests that really reach storage.

Each service (queue, table) gets a loopback port that forwards to Azurite's and logs every request's time, method,
path and status. Requests pass through as sent (the path still percent-encoded; no added Content-Type, User-Agent
or encoding headers), so shared-key signatures stay valid. Neither the app nor Azurite is changed: only the
endpoints in the connection string point here.
"""

from __future__ import annotations

import asyncio
import threading
import time
from dataclasses import dataclass

import aiohttp
from aiohttp import web
from yarl import URL

from devstack.azurite import ACCOUNT_KEY, ACCOUNT_NAME
from devstack.ports import LOOPBACK, free_port

START_TIMEOUT = 10.0
# Headers about one hop's connection; the proxy speaks its own connection to each side.
HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "content-length", "host", "upgrade"}


@dataclass(frozen=True)
class StorageRequest:
    time: float
    """When the request arrived (time.time())."""
    service: str
    method: str
    path: str
    query: str
    status: int


class StorageProxy:
    """`with StorageProxy(queue_port=..., table_port=...) as proxy:` then give the app `proxy.connection_string`."""

    def __init__(self, *, queue_port: int, table_port: int) -> None:
        self._targets = {"queue": queue_port, "table": table_port}
        self.ports = {service: free_port() for service in self._targets}
        self._log: list[StorageRequest] = []
        self._lock = threading.Lock()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._serve, name="storage-proxy", daemon=True)
        self._ready = threading.Event()
        self._stopping: asyncio.Event | None = None

    @property
    def connection_string(self) -> str:
        return (
            f"DefaultEndpointsProtocol=http;AccountName={ACCOUNT_NAME};AccountKey={ACCOUNT_KEY};"
            f"QueueEndpoint=http://{LOOPBACK}:{self.ports['queue']}/{ACCOUNT_NAME};"
            f"TableEndpoint=http://{LOOPBACK}:{self.ports['table']}/{ACCOUNT_NAME};"
        )

    def requests(self, since: float = 0.0, until: float = float("inf")) -> list[StorageRequest]:
        with self._lock:
            return [entry for entry in self._log if since <= entry.time <= until]

    def __enter__(self) -> StorageProxy:
        self._thread.start()
        if not self._ready.wait(START_TIMEOUT):
            raise RuntimeError("the storage proxy did not start")
        return self

    def __exit__(self, *_: object) -> None:
        if self._stopping is not None:
            self._loop.call_soon_threadsafe(self._stopping.set)
        self._thread.join(START_TIMEOUT)

    def _serve(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._loop.run_until_complete(self._main())
        self._loop.close()

    async def _main(self) -> None:
        self._stopping = asyncio.Event()
        session = aiohttp.ClientSession(auto_decompress=False)
        runners = []
        for service, target in self._targets.items():
            app = web.Application(client_max_size=64 * 1024 * 1024)
            app.router.add_route("*", "/{tail:.*}", self._forwarder(session, service, target))
            runner = web.AppRunner(app, access_log=None)
            await runner.setup()
            await web.TCPSite(runner, LOOPBACK, self.ports[service]).start()
            runners.append(runner)
        self._ready.set()
        await self._stopping.wait()
        for runner in runners:
            await runner.cleanup()
        await session.close()

    def _forwarder(self, session: aiohttp.ClientSession, service: str, target: int):
        async def forward(request: web.Request) -> web.Response:
            arrived = time.time()
            body = await request.read()
            headers = {name: value for name, value in request.headers.items() if name.lower() not in HOP_BY_HOP}
            async with session.request(
                request.method,
                # As sent, still percent-encoded: the shared-key signature covers the path Azurite sees.
                URL(f"http://{LOOPBACK}:{target}{request.raw_path}", encoded=True),
                headers=headers,
                data=body or None,
                skip_auto_headers=("Content-Type", "User-Agent", "Accept", "Accept-Encoding"),
                allow_redirects=False,
            ) as answer:
                payload = await answer.read()
                status = answer.status
                reply_headers = {
                    name: value for name, value in answer.headers.items() if name.lower() not in HOP_BY_HOP
                }
            with self._lock:
                self._log.append(
                    StorageRequest(arrived, service, request.method, request.path, request.query_string, status)
                )
            return web.Response(status=status, headers=reply_headers, body=payload)

        return forward
