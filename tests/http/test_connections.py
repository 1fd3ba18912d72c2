"""Connections held without a request: the header timeout and the cap on open connections per client address.

The pool's real serve path (pool.server.serve) on a real port, with short limits; clients are raw sockets that send
half a request head, or nothing, from 127.0.0.1, and honest requests from 127.0.0.2 (another loopback address, so
another client to the pool). GET /pool_info needs no chain: the pool runs without node or wallet.
"""

from __future__ import annotations

import asyncio
import dataclasses
import ipaddress
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, cast

import uvloop
import yaml

from pool.config import PoolConfig, parse_config
from pool.context import PoolContext
from pool.devnet.session import free_port
from pool.server import serve
from pool.store.sqlite import SqlitePoolStore

REPO = Path(__file__).resolve().parents[2]
HOST = "127.0.0.1"
ATTACKER = "127.0.0.1"
HONEST = "127.0.0.2"
HALF_A_HEAD = b"POST /partial HTTP/1.1\r\nHost: pool\r\nContent-Type: application/js"
POOL_INFO = b"GET /pool_info HTTP/1.1\r\nHost: pool\r\n\r\n"
SLACK = 3.0  # seconds a closing may take beyond its time on a busy machine


@dataclasses.dataclass
class Served:
    config: PoolConfig
    port: int

    async def connect(self, source: str = ATTACKER) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        return await asyncio.open_connection(HOST, self.port, local_addr=(source, 0))

    async def pool_info(self, source: str = HONEST) -> bytes:
        """The whole answer to GET /pool_info on a new connection from ``source`` (the pool closes it after)."""
        reader, writer = await self.connect(source)
        try:
            writer.write(POOL_INFO.replace(b"\r\n\r\n", b"\r\nConnection: close\r\n\r\n"))
            return await asyncio.wait_for(reader.read(), SLACK)
        finally:
            writer.close()


@asynccontextmanager
async def serving(tmp_path: Path, *, access_log: bool = False, **limits: Any) -> AsyncIterator[Served]:
    document = yaml.safe_load((REPO / "config.yaml").read_text())
    port = free_port()
    document["server"].update(host=HOST, port=port)
    document["limits"].update(limits)
    document["logging"]["access_log"] = access_log
    document["store"]["path"] = str(tmp_path / "pool.sqlite")
    config = parse_config(document, REPO)
    store = SqlitePoolStore(config.store.path)
    await store.open()
    no_chain = cast(Any, None)  # GET /pool_info and idle connections need neither node nor wallet
    ctx = PoolContext(config=config, store=store, node=no_chain, wallet=no_chain, constants=no_chain)
    stop = asyncio.Event()
    task = asyncio.create_task(serve(ctx, stop, with_loops=False))
    try:
        await _listening(port)
        yield Served(config, port)
    finally:
        stop.set()
        await task
        await store.close()


async def _listening(port: int) -> None:
    for _ in range(200):
        try:
            _, writer = await asyncio.open_connection(HOST, port)
        except OSError:
            await asyncio.sleep(0.02)
            continue
        writer.close()
        await asyncio.sleep(0.1)  # the pool has seen this probe go before a test counts connections
        return
    raise AssertionError(f"the pool does not listen on {port}")


async def closed_after(reader: asyncio.StreamReader, started: float) -> float:
    """Seconds from ``started`` until the pool closed the connection (what was sent back is not looked at)."""
    while await asyncio.wait_for(reader.read(65536), 30):
        pass
    return time.monotonic() - started


async def test_connections_that_send_half_a_request_head_or_nothing_are_closed_after_the_header_timeout(
    tmp_path: Path,
) -> None:
    timeout = 0.5
    async with serving(tmp_path, header_timeout=timeout) as pool:
        started = time.monotonic()
        silent = [await pool.connect() for _ in range(3)]
        halves = [await pool.connect() for _ in range(3)]
        for _, writer in halves:
            writer.write(HALF_A_HEAD)
        trickling = await pool.connect()

        async def trickle() -> None:  # a byte every 0.1 s: bytes of an incomplete head do not extend its time
            for byte in HALF_A_HEAD:
                if trickling[1].is_closing():
                    return
                trickling[1].write(bytes([byte]))
                await asyncio.sleep(0.1)

        trickler = asyncio.create_task(trickle())
        waited = await asyncio.gather(*(closed_after(reader, started) for reader, _ in [*silent, *halves, trickling]))
        trickler.cancel()
        assert all(timeout <= seconds <= timeout + SLACK for seconds in waited), waited

        # A head that arrives in pieces within the time is served; the keep-alive connection is then closed once
        # it has been idle for the timeout.
        honest = await pool.connect(HONEST)
        for piece in (POOL_INFO[:10], POOL_INFO[10:30]):
            honest[1].write(piece)
            await asyncio.sleep(0.1)
        completed = time.monotonic()  # the answer, and the idle time after it, come later
        honest[1].write(POOL_INFO[30:])
        head = await asyncio.wait_for(honest[0].readuntil(b"\r\n\r\n"), SLACK)
        assert head.startswith(b"HTTP/1.1 200")
        assert timeout <= await closed_after(honest[0], completed) <= timeout + SLACK
        for _, writer in [*silent, *halves, trickling, honest]:
            writer.close()


async def test_connections_beyond_the_cap_of_an_address_are_refused_while_others_are_served(tmp_path: Path) -> None:
    cap = 5
    async with serving(tmp_path, header_timeout=30, connections_per_address=cap) as pool:
        held = [await pool.connect() for _ in range(cap)]
        for _, writer in held[:2]:
            writer.write(HALF_A_HEAD)
        await asyncio.sleep(0.1)  # every one is open at the pool

        # One more from that address: answered 503 and closed, before anything of it is read.
        reader, writer = await pool.connect()
        refused = await asyncio.wait_for(reader.read(), SLACK)
        assert refused.startswith(b"HTTP/1.1 503") and b"too many open connections" in refused
        writer.close()
        assert (await pool.pool_info(ATTACKER)).startswith(b"HTTP/1.1 503")

        # Another client is served meanwhile.
        assert (await pool.pool_info(HONEST)).startswith(b"HTTP/1.1 200")

        # Once the address closes one, it is served again.
        held.pop()[1].close()
        await asyncio.sleep(0.1)
        assert (await pool.pool_info(ATTACKER)).startswith(b"HTTP/1.1 200")
        for _, writer in held:
            writer.close()


async def test_a_trusted_proxys_connections_are_not_counted(tmp_path: Path) -> None:
    # A reverse proxy carries many clients over its connections; X-Forwarded-For names a client per request, so
    # connections are counted by their TCP peer, and a trusted proxy's not at all.
    async with serving(tmp_path, connections_per_address=2, trusted_proxies=[ATTACKER]) as pool:
        assert pool.config.limits.trusted_proxies == (ipaddress.ip_network(ATTACKER),)
        held = [await pool.connect(ATTACKER) for _ in range(4)]
        assert (await pool.pool_info(ATTACKER)).startswith(b"HTTP/1.1 200")
        for _, writer in held:
            writer.close()


async def test_both_limits_hold_on_uvloop(tmp_path: Path) -> None:
    """`python -m pool` serves on uvloop, whose transports are not asyncio's classes: the same checks there (in a
    thread with a loop of its own)."""

    async def on_uvloop() -> tuple[bytes, bytes, float]:
        async with serving(tmp_path, header_timeout=0.5, connections_per_address=1) as pool:
            started = time.monotonic()
            reader, writer = await pool.connect()
            writer.write(HALF_A_HEAD)
            await asyncio.sleep(0.1)  # open at the pool
            refused = await pool.pool_info(ATTACKER)
            served = await pool.pool_info(HONEST)
            waited = await closed_after(reader, started)
            writer.close()
            return refused, served, waited

    refused, served, waited = await asyncio.to_thread(uvloop.run, on_uvloop())
    assert refused.startswith(b"HTTP/1.1 503") and served.startswith(b"HTTP/1.1 200")
    assert 0.5 <= waited <= 0.5 + SLACK
