"""Exactly one leader among the pool's processes, and a new one when it dies: real processes killed with SIGKILL, a
real PostgreSQL server (advisory lock) and real file locks (SQLite). No timings are asserted: the tests wait for
events, with a generous limit only so that a broken lock fails the test instead of hanging it."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path

import asyncpg
import pytest

from pool.devnet.postgres import PostgresServer
from pool.leader import LEADER_POLL_SECONDS, LOCK_IDLE_TIMEOUT, FileLeadership, Leadership, PostgresLeadership, lead
from tests.faults import SilentProxy

REPO = Path(__file__).resolve().parents[2]
HANG_GUARD = 120.0  # seconds; far beyond the poll interval, only so that a failure does not hang the suite

HOLDER = """
import asyncio, sys
from pathlib import Path
from pool.leader import FileLeadership, PostgresLeadership

async def main(kind, where):
    leadership = PostgresLeadership(where) if kind == "postgresql" else FileLeadership(Path(where))
    if not await leadership.try_acquire():
        print("follower", flush=True)
        return
    print("leader", flush=True)
    await asyncio.Event().wait()

asyncio.run(main(sys.argv[1], sys.argv[2]))
"""


def start_holder(kind: str, where: str) -> subprocess.Popen[str]:
    """Another pool process that takes the leader lock and keeps it until it is killed."""
    process = subprocess.Popen([sys.executable, "-c", HOLDER, kind, where], cwd=REPO, stdout=subprocess.PIPE, text=True)
    assert process.stdout is not None
    assert process.stdout.readline().strip() == "leader"
    return process


@pytest.fixture
def dsn(postgres_server: PostgresServer, request: pytest.FixtureRequest) -> Iterator[str]:
    name = f"pool_leader_{abs(hash(request.node.nodeid))}"
    yield postgres_server.create_database(name)
    postgres_server.drop_database(name)


def leaderships(kind: str, where: str, count: int) -> list[Leadership]:
    if kind == "postgresql":
        return [PostgresLeadership(where) for _ in range(count)]
    return [FileLeadership(Path(where)) for _ in range(count)]


@pytest.fixture(params=["postgresql", "sqlite"])
def lock(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[str, str]:
    if request.param == "postgresql":
        return "postgresql", request.getfixturevalue("dsn")
    return "sqlite", str(tmp_path / "pool.sqlite.leader")


async def test_of_many_contenders_exactly_one_leads(lock: tuple[str, str]) -> None:
    contenders = leaderships(*lock, count=5)
    try:
        won = await asyncio.gather(*(contender.try_acquire() for contender in contenders))
        assert won.count(True) == 1
        leader = contenders[won.index(True)]
        assert await leader.held()
        assert [await c.try_acquire() for c in contenders if c is not leader] == [False] * 4
        await leader.release()
        assert [await c.try_acquire() for c in contenders].count(True) == 1
    finally:
        for contender in contenders:
            await contender.release()


async def test_when_the_leader_is_killed_another_process_takes_over(lock: tuple[str, str]) -> None:
    holder = start_holder(*lock)
    (follower,) = leaderships(*lock, count=1)
    started = asyncio.Event()
    try:
        assert not await follower.try_acquire()  # the other process leads
        leading = asyncio.create_task(lead(follower, set_event(started), nothing, poll=0.2))
        await asyncio.sleep(0)
        assert not started.is_set()
        holder.send_signal(signal.SIGKILL)
        holder.wait()
        await asyncio.wait_for(started.wait(), HANG_GUARD)  # the follower became the leader and began its loops
        second = start_holder_expecting_follower(*lock)
        assert second == "follower"
        leading.cancel()
        with pytest.raises(asyncio.CancelledError):
            await leading
    finally:
        if holder.poll() is None:
            holder.kill()
            holder.wait()
        await follower.release()


async def nothing() -> None:
    pass


def set_event(event: asyncio.Event) -> Callable[[], Awaitable[None]]:
    async def begin() -> None:
        event.set()

    return begin


def tell(queue: asyncio.Queue[str], what: str) -> Callable[[], Awaitable[None]]:
    async def told() -> None:
        await queue.put(what)

    return told


def start_holder_expecting_follower(kind: str, where: str) -> str:
    result = subprocess.run(
        [sys.executable, "-c", HOLDER, kind, where], cwd=REPO, capture_output=True, text=True, timeout=HANG_GUARD
    )
    return result.stdout.strip()


async def test_a_leader_whose_database_session_dies_stops_its_loops_and_leads_again(dsn: str) -> None:
    leadership = PostgresLeadership(dsn)
    began: asyncio.Queue[str] = asyncio.Queue()
    leading = asyncio.create_task(lead(leadership, tell(began, "begin"), tell(began, "end"), poll=0.2))
    try:
        assert await asyncio.wait_for(began.get(), HANG_GUARD) == "begin"
        # The database ends the leader's session (a failover, a network cut): the lock is gone with it.
        admin = await asyncpg.connect(dsn)
        try:
            terminated = await admin.fetchval(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_locks WHERE locktype = 'advisory' AND granted"
            )
        finally:
            await admin.close()
        assert terminated == 1
        assert await asyncio.wait_for(began.get(), HANG_GUARD) == "end"  # it stopped leading at once
        assert await asyncio.wait_for(began.get(), HANG_GUARD) == "begin"  # and, the lock free, leads again
    finally:
        leading.cancel()
        with pytest.raises(asyncio.CancelledError):
            await leading


async def test_a_leader_cut_off_in_silence_stops_and_another_takes_over_within_the_bound(dsn: str) -> None:
    """The network between the leader and PostgreSQL starts dropping everything without a word (no reset, no error):
    the leader stops its loops once its lock connection goes unanswered, PostgreSQL ends the silent session by itself
    and frees the lock, and another process leads, all within the documented bound."""
    server_host, server_port = dsn.split("@", 1)[1].split("/", 1)[0].split(":")
    proxy = SilentProxy(server_host, int(server_port))
    await proxy.start()
    cut_off = PostgresLeadership(dsn.replace(f":{server_port}/", f":{proxy.port}/"))
    other = PostgresLeadership(dsn)
    events: asyncio.Queue[str] = asyncio.Queue()
    first = asyncio.create_task(lead(cut_off, tell(events, "first begins"), tell(events, "first ends")))
    try:
        assert await asyncio.wait_for(events.get(), HANG_GUARD) == "first begins"
        second = asyncio.create_task(lead(other, tell(events, "second begins"), tell(events, "second ends")))
        try:
            await asyncio.sleep(LEADER_POLL_SECONDS * 2)
            assert events.empty()  # the first leads, the second waits
            proxy.go_silent()
            silenced = time.monotonic()
            seen = [await asyncio.wait_for(events.get(), HANG_GUARD) for _ in range(2)]
            took = time.monotonic() - silenced
            # The old leader stops before the new one begins, and the new one begins within the bound (a slow
            # machine gets one more poll of slack).
            assert seen == ["first ends", "second begins"], seen
            assert took <= LOCK_IDLE_TIMEOUT + 2 * LEADER_POLL_SECONDS + 1, took
        finally:
            second.cancel()
            with pytest.raises(asyncio.CancelledError):
                await second
    finally:
        first.cancel()
        with pytest.raises(asyncio.CancelledError):
            await first
        await proxy.stop()
