"""Two worker processes on one port, sharing a real PostgreSQL, with chia 2.7.5's real farmer on the devnet; the
leader is killed with SIGKILL between two won blocks.

The pool runs as an operator runs it (``python -m pool --config ...`` with ``server.workers: 2`` and
``store.backend: postgresql``): a supervisor and two workers, the farmer's requests spread over them by the kernel.
What must hold: every proof credited once (the farmer's points are exactly the confirmed partials' difficulties, less
what distributions took), one payout per round, the books balanced, and after the leader's death another worker leads
and the next block is absorbed and paid.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg
import pytest
import pytest_asyncio
import yaml

from pool.config import PoolConfig, parse_config
from pool.devnet.pool_config import devnet_pool_document
from pool.devnet.postgres import PostgresServer
from pool.devnet.session import Devnet
from pool.store.models import BatchStatus, ClaimStatus, PartialStatus, RoundStatus
from pool.store.postgres import PostgresPoolStore

pytestmark = pytest.mark.asyncio(loop_scope="module")

REPO = Path(__file__).resolve().parents[2]
DEADLINE = 180.0  # a hang guard for driving the chain, as in test_devnet_e2e.py


@dataclass
class WorkersDevnet(Devnet):
    """The devnet with the pool in its own processes: a supervisor of ``workers`` workers on PostgreSQL."""

    dsn: str = ""
    workers: int = 2
    store: PostgresPoolStore = field(init=False)
    process: asyncio.subprocess.Process | None = field(init=False, default=None)

    def _pool_config(self) -> PoolConfig:
        world = self.world
        document = devnet_pool_document(
            network=world.network,
            target_puzzle_hash=world.pool_target_puzzle_hash,
            node_host=world.full_node_rpc.host,
            node_port=world.full_node_rpc.port,
            node_root=world.full_node_rpc.root_path,
            wallet_host=world.pool_wallet_rpc.host,
            wallet_port=world.pool_wallet_rpc.port,
            wallet_root=world.pool_wallet_rpc.root_path,
            wallet_fingerprint=world.pool_wallet_fingerprint,
            store_path=self.work_dir / "pool" / "unused.sqlite",
            server_port=self._free_port(),
        )
        document["store"] = {"backend": "postgresql", "dsn": self.dsn}
        document["server"]["workers"] = self.workers
        path = self.work_dir / "pool" / "config.yaml"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(yaml.safe_dump(document))
        return parse_config(document, path.parent, source=path)

    @staticmethod
    def _free_port() -> int:
        from pool.devnet.session import free_port

        return free_port()

    async def start_pool(self) -> None:
        assert self.config.source is not None
        env = {**os.environ, "NO_PROXY": "127.0.0.1,localhost", "no_proxy": "127.0.0.1,localhost"}
        self.process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "pool", "--config", str(self.config.source), cwd=REPO, env=env
        )
        self.store = PostgresPoolStore(self.dsn, max_connections=2)
        await self.store.open()
        await self._wait_listening(timeout=DEADLINE)

    async def stop_pool(self) -> None:
        if self.process is not None:
            self.process.send_signal(signal.SIGTERM)
            await self.process.wait()
            self.process = None
            await self.store.close()


@pytest.fixture(scope="module")
def postgres() -> Iterator[PostgresServer]:
    server = PostgresServer.start()
    try:
        yield server
    finally:
        server.stop()


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def devnet(tmp_path_factory: pytest.TempPathFactory, postgres: PostgresServer) -> AsyncIterator[WorkersDevnet]:
    work_dir: Path = tmp_path_factory.mktemp("workers-devnet")
    dsn = postgres.create_database("pool_workers")
    running = WorkersDevnet(work_dir, farmers_count=1, plots_per_farmer=3, dsn=dsn)
    async with running:
        yield running


async def drive_until(devnet: Devnet, condition: Callable[[], Awaitable[bool]], what: str, farm_every: int = 6) -> None:
    deadline = time.monotonic() + DEADLINE
    step = 0
    while not await condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for: {what}")
        step += 1
        await devnet.signage_point(pause=0.2)
        if step % farm_every == 0:
            await devnet.farm(1)


async def leader_pid(dsn: str) -> int | None:
    """The OS process id of the worker holding the leader lock (its connection names it)."""
    connection = await asyncpg.connect(dsn)
    try:
        name = await connection.fetchval(
            "SELECT a.application_name FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid "
            "WHERE l.locktype = 'advisory' AND l.granted AND a.application_name LIKE 'pool-leader-%'"
        )
    finally:
        await connection.close()
    return None if name is None else int(str(name).removeprefix("pool-leader-"))


def worker_pids(supervisor: int) -> set[int]:
    children = Path(f"/proc/{supervisor}/task/{supervisor}/children").read_text().split()
    return {int(pid) for pid in children}


async def books_agree(devnet: WorkersDevnet) -> None:
    store = devnet.store
    ledger = await store.ledger()
    assert ledger.balanced, ledger
    rounds = await store.rounds()
    assert sum(1 for r in rounds if r.status is RoundStatus.OPEN) <= 1
    (farmer,) = await store.list_farmers()
    confirmed = await store.recent_partials(farmer.launcher_id, 0, [PartialStatus.CONFIRMED])
    assert len({p.proof_hash for p in confirmed}) == len(confirmed)
    distributed_points = 0
    for distribution in await store.distributions(limit=1_000):
        assert distribution.id is not None
        distributed_points += sum(s.points for s in await store.distribution_shares(distribution.id))
    # Every confirmed proof counted once: points now + points taken by distributions == their difficulties.
    assert farmer.points + distributed_points == sum(p.difficulty for p in confirmed)


async def paid_batches(store: PostgresPoolStore) -> int:
    count = 0
    for payout_round in await store.rounds():
        assert payout_round.id is not None
        count += sum(1 for b in await store.batches(payout_round.id) if b.status is BatchStatus.CONFIRMED)
    return count


async def test_two_workers_serve_the_farmer_and_one_leader_pays(devnet: WorkersDevnet) -> None:
    assert devnet.process is not None
    assert len(worker_pids(devnet.process.pid)) == 2
    store = devnet.store

    async def credited() -> bool:
        farmers = await store.list_farmers()
        return bool(farmers) and farmers[0].points > 0

    await drive_until(devnet, credited, "farmer registered and points credited")
    leader = await leader_pid(devnet.dsn)
    assert leader in worker_pids(devnet.process.pid)

    await devnet.win_block(devnet.farmers[0])

    async def paid_once() -> bool:
        return await paid_batches(store) >= 1

    await drive_until(devnet, paid_once, "first reward absorbed and paid", farm_every=2)
    await books_agree(devnet)


async def test_the_leader_killed_mid_life_another_worker_takes_over_and_pays(devnet: WorkersDevnet) -> None:
    assert devnet.process is not None
    store = devnet.store
    old_leader = await leader_pid(devnet.dsn)
    assert old_leader is not None
    batches_before = await paid_batches(store)
    await devnet.win_block(devnet.farmers[0])
    os.kill(old_leader, signal.SIGKILL)

    async def new_leader() -> bool:
        leader = await leader_pid(devnet.dsn)
        return leader is not None and leader != old_leader

    await drive_until(devnet, new_leader, "another worker leads")

    async def second_payout() -> bool:
        return (
            len(await store.reward_claims(ClaimStatus.CONFIRMED)) >= 2
            and await paid_batches(store) > batches_before
            and await store.open_round() is None
        )

    await drive_until(devnet, second_payout, "second reward absorbed and paid after the failover", farm_every=2)
    await books_agree(devnet)
    # The supervisor started a worker in place of the killed one.
    assert len(worker_pids(devnet.process.pid)) == 2
    assert old_leader not in worker_pids(devnet.process.pid)
