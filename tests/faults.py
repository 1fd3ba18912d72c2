"""Faults between the pool and the real parts it talks to, for the tests: a chia full node whose RPC refuses some of
its look-ups, and a network path that silently drops everything.

* ``FlakyNodeProxy`` listens for RPC calls as the node does (HTTPS with a certificate of the node's chia root, so the
  pool's chia RPC client connects to it unchanged) and forwards each to the real node, except that it answers a share
  of the chosen endpoints itself with the refusal chia's node gives when its database is busy or a bug fires
  (``success: false``, structured code ``UNKNOWN``). The pool must never read such an answer as "not found". It can
  also swallow pushed transactions (answer "accepted" and keep them), as a node that lost them would.
* ``SilentProxy`` forwards TCP both ways (to PostgreSQL, say) until ``go_silent()``: from then on it keeps every
  connection open but passes nothing and answers nothing, as a network that drops every packet without a reset does.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import ssl
from collections import Counter
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web
from chia.server.server import ssl_context_for_client, ssl_context_for_server
from chia.server.ssl_context import private_ssl_ca_paths

from pool.chia_adapter import chia_config

# The node's look-ups of coins and puzzles: the calls refused by default (the end-to-end test refuses a fifth of them).
COIN_AND_PUZZLE_LOOKUPS = frozenset(
    {
        "get_coin_record_by_name",
        "get_coin_records_by_names",
        "get_coin_records_by_puzzle_hash",
        "get_coin_records_by_puzzle_hashes",
        "get_coin_records_by_parent_ids",
        "get_puzzle_and_solution",
    }
)


def _ssl_contexts(root: Path) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    """(server context presented to the pool, client context used towards the node), from the node's chia root."""
    config = chia_config(root)
    ca_crt, ca_key = private_ssl_ca_paths(root, config)
    crt = root / config["daemon_ssl"]["private_crt"]
    key = root / config["daemon_ssl"]["private_key"]
    return ssl_context_for_server(ca_crt, ca_key, crt, key), ssl_context_for_client(ca_crt, ca_key, crt, key)


class FlakyNodeProxy:
    """An RPC proxy in front of a full node that refuses the calls to ``endpoints``: at random, ``error_rate`` of
    them, or with ``refuse_every`` N, exactly every N-th one (a pattern no retry can be unlucky with)."""

    def __init__(
        self,
        node_host: str,
        node_port: int,
        root: Path,
        *,
        error_rate: float = 0.0,
        refuse_every: int | None = None,
        endpoints: Iterable[str] = COIN_AND_PUZZLE_LOOKUPS,
        seed: int = 5,
        swallow_pushes: bool = False,
        port: int = 0,
    ) -> None:
        self.node_url = f"https://{node_host}:{node_port}/"
        self.root = root
        self.error_rate = error_rate
        self.refuse_every = refuse_every
        self.calls = 0  # to the chosen endpoints
        self.endpoints = frozenset(endpoints)
        self.random = random.Random(seed)
        self.swallow_pushes = swallow_pushes
        self.swallowed: list[dict[str, Any]] = []  # push_tx requests answered "accepted" and never forwarded
        self.refused: Counter[str] = Counter()  # endpoint -> calls answered with an injected error
        self.forwarded: Counter[str] = Counter()
        self.port = port  # 0: any free port, chosen when it starts
        self._runner: web.AppRunner | None = None
        self._session: aiohttp.ClientSession | None = None
        self._client_ssl: ssl.SSLContext | None = None

    async def start(self) -> int:
        server_ssl, self._client_ssl = _ssl_contexts(self.root)
        self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60))
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_post("/{endpoint}", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", self.port, ssl_context=server_ssl)
        await site.start()
        self.port = int(self._runner.addresses[0][1])
        return self.port

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
        if self._session is not None:
            await self._session.close()

    async def __aenter__(self) -> FlakyNodeProxy:
        await self.start()
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.stop()

    @property
    def running(self) -> bool:
        return self._runner is not None

    def _refuse_this_one(self) -> bool:
        self.calls += 1
        if self.refuse_every is not None:
            return self.calls % self.refuse_every == 0
        return self.random.random() < self.error_rate

    async def _handle(self, request: web.Request) -> web.Response:
        endpoint = request.match_info["endpoint"]
        body = await request.read()
        if endpoint == "push_tx" and self.swallow_pushes:
            self.swallowed.append(json.loads(body))
            return web.json_response({"success": True, "status": "SUCCESS"})
        if endpoint in self.endpoints and self._refuse_this_one():
            self.refused[endpoint] += 1
            return web.json_response(_busy_refusal(endpoint))
        assert self._session is not None and self._client_ssl is not None
        self.forwarded[endpoint] += 1
        async with self._session.post(
            self.node_url + endpoint,
            data=body,
            headers={"Content-Type": "application/json"},
            ssl=self._client_ssl,
        ) as response:
            return web.Response(body=await response.read(), status=response.status, content_type="application/json")


def _busy_refusal(endpoint: str) -> dict[str, Any]:
    """What chia's node answers when an endpoint raised an unexpected error (chia/rpc/util.py)."""
    message = f"injected by the test: {endpoint} failed (database is locked)"
    return {
        "success": False,
        "error": message,
        "traceback": "",
        "structuredError": {"code": "UNKNOWN", "message": message, "data": {}},
    }


class SilentProxy:
    """A TCP proxy that can go silent: connections stay open, nothing passes either way, nothing is answered."""

    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self.port = 0
        self.silent = asyncio.Event()
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._writers: list[asyncio.StreamWriter] = []

    async def start(self, port: int = 0) -> int:
        """Listen on ``port`` (any free one if 0); a service that comes back where it was is started again so."""
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", port)
        self.port = int(self._server.sockets[0].getsockname()[1])
        return self.port

    def go_silent(self) -> None:
        self.silent.set()

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
        for task in list(self._tasks):
            task.cancel()
        for writer in self._writers:
            writer.close()
        if self._server is not None:
            with contextlib.suppress(Exception):
                await self._server.wait_closed()

    async def _accept(self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        if self.silent.is_set():
            self._writers.append(client_writer)  # accepted (the kernel did that) but never answered
            return
        server_reader, server_writer = await asyncio.open_connection(*self.target)
        self._writers += [client_writer, server_writer]
        for reader, writer in ((client_reader, server_writer), (server_reader, client_writer)):
            task = asyncio.create_task(self._pipe(reader, writer))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError, asyncio.CancelledError):
            while True:
                data = await reader.read(65536)
                if not data:
                    break
                if self.silent.is_set():
                    continue  # swallowed: the other side never hears of it
                writer.write(data)
                await writer.drain()
        if not self.silent.is_set():
            writer.close()


def describe(counter: Counter[str]) -> str:
    return json.dumps(dict(sorted(counter.items())))
