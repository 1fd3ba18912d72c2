"""A real local HTTP server standing for the webhooks' receivers: it records every POST and, as a careful receiver
does, accepts each idempotency key once per path (a repeat is answered 200 and counted as a duplicate)."""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from pool.devnet.session import free_port


@dataclass
class Received:
    path: str
    key: str  # the Idempotency-Key header
    body: dict[str, Any]


@dataclass
class WebhookReceiver:
    port: int = field(default_factory=free_port)
    received: list[Received] = field(default_factory=list)
    accepted: dict[str, list[Received]] = field(default_factory=lambda: defaultdict(list))  # by path, once per key
    failures: Counter[str] = field(default_factory=Counter)  # path -> how many more POSTs to answer 503
    _runner: web.AppRunner | None = None

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}/{path}"

    async def __aenter__(self) -> WebhookReceiver:
        app = web.Application()
        app.router.add_post("/{path}", self._receive)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()
        return self

    async def __aexit__(self, *_: object) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _receive(self, request: web.Request) -> web.Response:
        path = request.match_info["path"]
        received = Received(path, request.headers.get("Idempotency-Key", ""), json.loads(await request.read()))
        self.received.append(received)
        if self.failures[path] > 0:
            self.failures[path] -= 1
            return web.Response(status=503, text="try again")
        if received.key not in {earlier.key for earlier in self.accepted[path]}:
            self.accepted[path].append(received)
        return web.json_response({"ok": True})

    def keys(self, path: str) -> list[str]:
        """The keys accepted at ``path``, in order."""
        return [received.key for received in self.accepted[path]]

    def duplicates(self, path: str) -> int:
        posts = Counter(received.key for received in self.received if received.path == path)
        return sum(count - 1 for count in posts.values())
