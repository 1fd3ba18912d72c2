"""The devnet's round-robin load balancer: each new connection goes to the next backend, a backend that refuses the
connection is skipped, and a request and its answer pass through whole (real HTTP servers on loopback)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import pytest_asyncio
from aiohttp import web

from pool.devnet.balancer import Backend, RoundRobinBalancer
from pool.devnet.session import free_port

HOST = "127.0.0.1"
BODY = b"x" * 200_000  # larger than one read of the balancer, both ways


async def start_backend(name: str) -> tuple[web.AppRunner, Backend]:
    async def echo(request: web.Request) -> web.Response:
        return web.Response(body=name.encode() + await request.read())

    app = web.Application()
    app.router.add_post("/", echo)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, HOST, port).start()
    return runner, Backend(HOST, port)


@pytest_asyncio.fixture
async def balancer() -> AsyncIterator[RoundRobinBalancer]:
    (runner_a, a), (runner_b, b) = await start_backend("a"), await start_backend("b")
    refusing = Backend(HOST, free_port())  # nothing listens there
    started = RoundRobinBalancer(HOST, free_port(), [a, refusing, b])
    await started.start()
    yield started
    await started.stop()
    await runner_a.cleanup()
    await runner_b.cleanup()


async def ask(balancer: RoundRobinBalancer) -> bytes:
    # A new session per request, as chia's farmer does: a new connection each time.
    async with aiohttp.ClientSession() as session, session.post(f"http://{HOST}:{balancer.port}/", data=BODY) as reply:
        assert reply.status == 200
        return await reply.read()


async def test_connections_go_round_robin_skipping_a_backend_that_refuses(balancer: RoundRobinBalancer) -> None:
    answers = [await ask(balancer) for _ in range(4)]
    assert [answer[:1] for answer in answers] == [b"a", b"b", b"a", b"b"]
    assert all(answer[1:] == BODY for answer in answers)
    a, refusing, b = balancer.backends
    assert balancer.connections == {a: 2, refusing: 0, b: 2}
