"""GET /healthz and GET /readyz of a running pool on the shared chain, its store on a real PostgreSQL server that is
stopped and started again under it: not ready within seconds, with the reason, and ready again once the database and
a leader are back; alive throughout. A partial sent meanwhile is not acknowledged (the farmer keeps it), and every
partial acknowledged is in the store."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import pytest_asyncio

from pool import logs
from pool.chia_adapter import AugSchemeMPL, bytes32, encode_puzzle_hash, std_hash
from pool.config import parse_config
from pool.devnet.pool_config import world_pool_document
from pool.devnet.postgres import PostgresServer, PostgresUnavailable
from pool.devnet.session import free_port
from pool.devnet.world import World
from pool.protocol.auth import current_authentication_token
from pool.server import pool_context, serve
from tests.http.farmer_requests import fresh_proofs, partial_body, post_farmer_body, shared_plotnft


@pytest_asyncio.fixture(scope="module")
async def database() -> AsyncIterator[PostgresServer]:
    try:
        # Durable: stopped as by a crash, a throwaway server without fsync would lose what it had committed.
        server = await asyncio.to_thread(PostgresServer.start, durable=True)
    except PostgresUnavailable as exc:
        pytest.fail(f"PostgreSQL is needed here: {exc}")
    yield server
    await asyncio.to_thread(server.stop)


async def probe(session: aiohttp.ClientSession, url: str) -> tuple[int, dict[str, Any]]:
    async with session.get(url) as response:
        return response.status, await response.json()


async def until(condition: Callable[[], Awaitable[bool]], what: str, within: float = 30.0) -> float:
    """Seconds it took ``condition`` to hold (polled every 0.2 s); fails after ``within``."""
    started = time.monotonic()
    while not await condition():
        if time.monotonic() - started > within:
            raise AssertionError(f"not within {within} s: {what}")
        await asyncio.sleep(0.2)
    return time.monotonic() - started


async def test_ready_only_with_its_database_and_a_leader(
    world: World, database: PostgresServer, tmp_path: Path
) -> None:
    document = world_pool_document(world, store_path=tmp_path / "unused.sqlite", server_port=free_port())
    document["store"] = {"backend": "postgresql", "dsn": await asyncio.to_thread(database.create_database, "ready")}
    config = parse_config(document, tmp_path)
    base = f"http://127.0.0.1:{config.server.port}"
    stop = asyncio.Event()
    async with pool_context(config) as ctx, aiohttp.ClientSession() as session:
        serving = asyncio.create_task(serve(ctx, stop))
        last: dict[str, Any] = {}

        async def ready(expected: bool) -> bool:
            try:
                status, last["body"] = await probe(session, f"{base}/readyz")
            except aiohttp.ClientConnectionError:
                return False
            return (status == 200) == expected and last["body"]["ready"] == expected

        plotnft, plots = await shared_plotnft(world, "health")
        auth_sk = AugSchemeMPL.key_gen(std_hash(b"health"))

        def token() -> int:
            return current_authentication_token(ctx.now(), config.pool.authentication_token_timeout)

        async def post(path: str, body: dict[str, Any]) -> dict[str, Any]:
            async with session.post(f"{base}{path}", json=body) as response:
                assert response.status == 200, await response.text()
                reply: dict[str, Any] = await response.json()
                return reply

        async def send_partial() -> dict[str, Any]:
            sp, found = await fresh_proofs(world, plots)
            return await post("/partial", partial_body(plotnft.launcher_id, token(), found[0], sp, auth_sk))

        try:
            await until(lambda: ready(True), "ready once the leader said it leads")
            assert last["body"] == {"ready": True, "reasons": []}
            assert logs.current_role() == "leader"  # what this process's log lines say meanwhile
            payout = encode_puzzle_hash(bytes32(std_hash(b"health payout")), "txch")
            joined = await post("/farmer", post_farmer_body(plotnft, auth_sk, token(), payout))
            assert "welcome_message" in joined, joined
            acknowledged = [await send_partial()]

            await asyncio.to_thread(database.halt)
            took = await until(lambda: ready(False), "not ready with the database stopped")
            assert any(reason.startswith("store: ") for reason in last["body"]["reasons"]), last
            print(f"not ready {took:.1f} s after the database stopped: {last['body']['reasons']}")
            assert await probe(session, f"{base}/healthz") == (200, {"alive": True})
            refused = await send_partial()
            assert "new_difficulty" not in refused and "error_code" in refused, refused  # the farmer keeps it

            await asyncio.to_thread(database.resume)
            took = await until(lambda: ready(True), "ready again with the database back", within=60.0)
            print(f"ready {took:.1f} s after the database came back")
            acknowledged.append(await send_partial())
            assert all("new_difficulty" in reply for reply in acknowledged), acknowledged
            stored = await ctx.store.recent_partials(plotnft.launcher_id, since=0)
            assert len(stored) == len(acknowledged)  # every partial acknowledged, and no other
        finally:
            stop.set()
            await serving
    assert logs.current_role() != "leader"  # its term ended with the pool
