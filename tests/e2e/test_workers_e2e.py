"""Two worker processes on one port, sharing a real PostgreSQL, with chia 2.7.5's real farmer on the devnet; the
leader is killed with SIGKILL between two won blocks; forged partials for the farmer's launcher id come from other
addresses while its own partials must all be accepted. Then, on the same chain and database, two pool hosts: separate
``python -m pool`` processes on two ports behind a round-robin load balancer (tests/e2e/pool_hosts.py).

The pool runs as an operator runs it (``python -m pool --config ...`` with ``server.workers: 2`` and
``store.backend: postgresql``): a supervisor and two workers, the farmer's requests spread over them by the kernel.
What must hold: every proof credited once (the farmer's points are exactly the confirmed partials' difficulties, less
what distributions took), one payout per round, the books balanced, and after the leader's death another worker leads
and the next block is absorbed and paid. A real Prometheus server scrapes the two workers every second meanwhile: the
accepted-partials counter it sees never goes back, whichever worker answers and after the leader's death, and grows by
exactly the partials the store took. With two hosts the same, and: both hosts accept the farmer's partials, one
of them runs the chain loops, a proof sent to both is answered alike by both and credited once, and both tell the
farmer the same difficulty and points.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import signal
import sys
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import pytest
import pytest_asyncio
import yaml

from pool.bench.attacker import AttackSpec, HttpRequest
from pool.bench.attacks import AttackProcess
from pool.chain.node_rpc import RpcFullNode
from pool.chia_adapter import AugSchemeMPL, PrivateKey, bytes32, std_hash
from pool.config import PoolConfig, RpcConfig, parse_config
from pool.devnet.pool_config import devnet_pool_document
from pool.devnet.postgres import PostgresServer
from pool.devnet.session import Devnet, DevnetFarmer
from pool.protocol.auth import current_authentication_token
from pool.protocol.partials import proof_identity
from pool.store.models import BatchStatus, ClaimStatus, PartialRecord, PartialStatus, RoundStatus
from pool.store.postgres import PostgresPoolStore
from tests.chain_checks import store_agrees_with_chain
from tests.e2e.driving import drive_until
from tests.e2e.pool_hosts import PoolHost, PoolHosts, pool_hosts
from tests.e2e.prometheus_server import Prometheus, prometheus_scraping
from tests.http.farmer_requests import authenticated_params, fresh_proofs, partial_body

pytestmark = pytest.mark.asyncio(loop_scope="module")

REPO = Path(__file__).resolve().parents[2]
DEADLINE = 180.0  # a hang guard for driving the chain (tests/e2e/driving.py), longer here: two pool processes
# The attack on the farmer's launcher id: four addresses, 50 forged partials a second each (the pool's default
# requests per address), while the farmer's partials are counted.
FORGER_ADDRESSES = ("127.0.0.2", "127.0.0.3", "127.0.0.4", "127.0.0.5")
FORGED_PER_S = 200.0
FARMER_PARTIALS_BEFORE = 8  # accepted before the attack, so that both workers know the farmer
FARMER_PARTIALS = 10  # accepted under the attack


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
    # The database is new: the same PlotNFT as every run is safe, and its plots come from the cache.
    running = WorkersDevnet(work_dir, farmers_count=1, plots_per_farmer=3, fresh_launchers=False, dsn=dsn)
    async with running:
        yield running


ACCEPTED = 'sum(pool_partials_total{result="accepted"})'
AGREE_POLL = 0.25  # seconds between looks: Prometheus scrapes every second
AGREE_ATTEMPTS = 240  # a hang guard: a minute


@dataclass
class ScrapedRun:
    prometheus: Prometheus
    baseline: tuple[float, int]  # (Prometheus's time, the store's partials then), when both agreed


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def scraped(devnet: WorkersDevnet) -> AsyncIterator[ScrapedRun]:
    target = f"127.0.0.1:{devnet.config.server.port}"
    async with prometheus_scraping(target, devnet.work_dir / "prometheus") as prometheus:
        yield ScrapedRun(prometheus, await prometheus_agrees(prometheus, devnet.store))


async def partial_rows(store: PostgresPoolStore) -> int:
    """Every partial the pool accepted is one row (a resent proof is none), whatever became of it since."""
    return sum([len(await store.recent_partials(farmer.launcher_id, 0)) for farmer in await store.list_farmers()])


async def prometheus_agrees(prometheus: Prometheus, store: PostgresPoolStore) -> tuple[float, int]:
    """Once the chain stops moving, Prometheus's latest scrape counts the store's partials: (that scrape's time in
    Prometheus, the count)."""
    for _ in range(AGREE_ATTEMPTS):
        rows = await partial_rows(store)
        seen = await prometheus.sample(ACCEPTED)
        if seen is not None and seen[1] == rows:
            return seen[0], rows
        await asyncio.sleep(AGREE_POLL)
    raise AssertionError(f"Prometheus counts {seen} accepted partials, the store has {rows} rows")


async def prometheus_counted_every_accepted_partial(run: ScrapedRun, store: PostgresPoolStore) -> None:
    start, rows_before = run.baseline
    end, rows = await prometheus_agrees(run.prometheus, store)
    counted = await run.prometheus.values(ACCEPTED, start, end)
    # Each scrape answered by either worker, a worker killed and replaced meanwhile: the sum never goes back.
    assert all(earlier <= later for earlier, later in itertools.pairwise(counted)), counted
    first, last = await run.prometheus.value(ACCEPTED, at=start), await run.prometheus.value(ACCEPTED, at=end)
    assert first is not None and last is not None
    assert last - first == rows - rows_before > 0


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


async def books_agree(store: PostgresPoolStore, devnet: Devnet) -> None:
    """The books balance, every proof counted once, and the chain agrees (each confirmed batch paid by exactly one
    of its versions, charged what it paid; each credited reward paid the pool)."""
    ledger = await store.ledger()
    assert ledger.balanced, ledger
    endpoint = devnet.world.full_node_rpc
    node = await RpcFullNode.connect(RpcConfig(endpoint.host, endpoint.port, endpoint.root_path))
    try:
        target, max_cost = devnet.config.pool.target_puzzle_hash, devnet.world.constants.MAX_BLOCK_COST_CLVM
        await store_agrees_with_chain(store, node, target, max_cost)
    finally:
        await node.close()
    rounds = await store.rounds()
    assert sum(1 for r in rounds if r.status is RoundStatus.OPEN) <= 1
    (farmer,) = await store.list_farmers()
    for _ in range(READ_ATTEMPTS):
        # The leader keeps confirming the farmer's partials while this reads: the farmer's points count only when
        # nothing was confirmed or distributed between the reads before and after them.
        confirmed, distributed_points = await credited(store, farmer.launcher_id)
        record = await store.get_farmer(farmer.launcher_id)
        assert record is not None
        if await credited(store, farmer.launcher_id) == (confirmed, distributed_points):
            break
    else:
        raise AssertionError("the farmer's points kept changing while the test read them")
    assert len({p.proof_hash for p in confirmed}) == len(confirmed)
    # Every confirmed proof counted once: points now + points taken by distributions == their difficulties.
    assert record.points + distributed_points == sum(p.difficulty for p in confirmed)


READ_ATTEMPTS = 20


async def credited(store: PostgresPoolStore, launcher_id: bytes32) -> tuple[list[PartialRecord], int]:
    """The farmer's confirmed partials, and the points distributions took from it."""
    confirmed = await store.recent_partials(launcher_id, 0, [PartialStatus.CONFIRMED])
    distributed_points = 0
    for distribution in await store.distributions(limit=1_000):
        assert distribution.id is not None
        shares = await store.distribution_shares(distribution.id)
        distributed_points += sum(s.points for s in shares if s.launcher_id == launcher_id)
    return confirmed, distributed_points


async def paid_batches(store: PostgresPoolStore) -> int:
    count = 0
    for payout_round in await store.rounds():
        assert payout_round.id is not None
        count += sum(1 for b in await store.batches(payout_round.id) if b.status is BatchStatus.CONFIRMED)
    return count


async def test_two_workers_serve_the_farmer_and_one_leader_pays(devnet: WorkersDevnet, scraped: ScrapedRun) -> None:
    assert devnet.process is not None
    assert len(worker_pids(devnet.process.pid)) == 2
    store = devnet.store

    async def credited() -> bool:
        farmers = await store.list_farmers()
        return bool(farmers) and farmers[0].points > 0

    await drive_until(devnet, credited, "farmer registered and points credited", deadline=DEADLINE, with_status=False)
    leader = await leader_pid(devnet.dsn)
    assert leader in worker_pids(devnet.process.pid)

    await devnet.win_block(devnet.farmers[0])

    async def paid_once() -> bool:
        return await paid_batches(store) >= 1

    await drive_until(
        devnet, paid_once, "first reward absorbed and paid", farm_every=2, deadline=DEADLINE, with_status=False
    )
    await books_agree(devnet.store, devnet)
    await prometheus_counted_every_accepted_partial(scraped, store)


async def test_the_leader_killed_mid_life_another_worker_takes_over_and_pays(
    devnet: WorkersDevnet, scraped: ScrapedRun
) -> None:
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

    await drive_until(devnet, new_leader, "another worker leads", deadline=DEADLINE, with_status=False)

    async def second_payout() -> bool:
        return (
            len(await store.reward_claims(ClaimStatus.CONFIRMED)) >= 2
            and await paid_batches(store) > batches_before
            and await store.open_round() is None
        )

    await drive_until(
        devnet,
        second_payout,
        "second reward absorbed and paid after the failover",
        farm_every=2,
        deadline=DEADLINE,
        with_status=False,
    )
    await books_agree(devnet.store, devnet)
    # The supervisor started a worker in place of the killed one.
    assert len(worker_pids(devnet.process.pid)) == 2
    assert old_leader not in worker_pids(devnet.process.pid)

    await prometheus_counted_every_accepted_partial(scraped, store)
    prometheus = scraped.prometheus
    # The dead leader leads no more; the new one does, whichever worker answers.
    assert await prometheus.value("sum(pool_is_leader)") == 1
    for loop in ("peak", "confirm-partials", "rewards", "payouts"):
        assert (await prometheus.value(f'pool_loop_last_success_timestamp_seconds{{loop="{loop}"}}') or 0) > 0
    # The alert rules load in a real Prometheus and evaluate without error on the pool's series.
    rules = [rule for group in (await prometheus.api("rules"))["groups"] for rule in group["rules"]]
    assert rules and all(rule["health"] == "ok" for rule in rules), rules


async def test_forged_partials_from_several_addresses_leave_the_real_farmers_partials_accepted(
    devnet: WorkersDevnet, tmp_path: Path
) -> None:
    """While an attacker (the benchmark's, a process of its own) sends partials for the farmer's real launcher id,
    with real proofs but not signed by the farmer's key, from four other addresses, chia's farmer goes on: every
    partial it sends is accepted, and no forged one is."""
    config = devnet.config
    farmer = devnet.farmers[0]
    launcher = farmer.plotnft.launcher_id

    def farmer_state() -> dict[str, Any]:
        state = devnet.farmer.pool_state(farmer.plotnft.p2_singleton_puzzle_hash)
        assert state is not None
        return state

    async def farmer_sends_accepted(count: int, what: str) -> None:
        """Move the chain until chia's farmer counts ``count`` more of its partials accepted by the pool."""
        before = farmer_state()["valid_partials_since_start"]

        async def accepted() -> bool:
            return bool(farmer_state()["valid_partials_since_start"] >= before + count)

        await drive_until(devnet, accepted, what, deadline=DEADLINE, with_status=False)

    # First partials accepted by both workers (each keeps its own memory of the farmers it knows; the farmer's
    # connections are spread over both): its checks then go ahead of the forged ones in each.
    await farmer_sends_accepted(FARMER_PARTIALS_BEFORE, "the farmer's partials accepted before the attack")
    sp, found = await fresh_proofs(devnet.world, farmer.plots, wanted=2)
    token = current_authentication_token(int(time.time()), config.pool.authentication_token_timeout)
    forger = AugSchemeMPL.key_gen(std_hash(b"e2e forger"))
    forged = tuple(
        HttpRequest("POST", "/partial", json.dumps(partial_body(launcher, token, proof, sp, forger))) for proof in found
    )
    spec = AttackSpec(
        kind="http",
        host="127.0.0.1",
        port=config.server.port,
        addresses=FORGER_ADDRESSES,
        rate=FORGED_PER_S,
        requests=forged,
    )
    errors_before = len(farmer_state()["pool_errors_24h"])
    attacker = await AttackProcess.start(spec, tmp_path / "attack.json", tmp_path / "attack.log")
    try:
        await farmer_sends_accepted(FARMER_PARTIALS, "the farmer's partials accepted under attack")
    finally:
        report = await attacker.stop()
    assert farmer_state()["pool_errors_24h"][errors_before:] == []
    # Every forged partial the pool answered, answered with a protocol error: its signature checked and refused, or
    # refused unchecked (a failed-signature budget spent, or the pool busy); none accepted. (On a loaded machine
    # some of the attacker's own connections fail or are still waiting when it stops: that is the attacker's lot.)
    assert report.sent > 0 and report.answers["INVALID_SIGNATURE"] > 0, report
    answered = {name for name in report.answers if not name.startswith(("transport error", "unanswered"))}
    assert answered <= {"INVALID_SIGNATURE", "INVALID_SIGNATURE, rate limit", "SERVER_EXCEPTION, busy"}, report


# ---------------------------------------------------------------------------------------------------- several hosts


def real_farmer_auth_key(devnet: WorkersDevnet, farmer: DevnetFarmer) -> PrivateKey:
    """The authentication key chia's farmer signs this PlotNFT's partials and GET /farmer with."""
    state = devnet.farmer.pool_state(farmer.plotnft.p2_singleton_puzzle_hash)
    assert state is not None
    key = devnet.farmer.farmer_service._node.get_authentication_sk(state["pool_config"])
    assert key is not None
    return key


async def exactly_one_leads(pool: PoolHosts, dsn: str) -> None:
    """One host holds the leader lock, and only that one has run chain loops (its own Prometheus counters)."""
    leader = await leader_pid(dsn)
    assert leader in {host.pid for host in pool.hosts}
    for host in pool.hosts:
        loop_iterations = await host.metric("pool_loop_duration_seconds_count")
        assert (loop_iterations > 0) == (host.pid == leader), (host.pid, leader, loop_iterations)


async def one_payment_per_round(store: PostgresPoolStore, launcher_id: bytes32, round_ids: set[int]) -> None:
    for round_id in round_ids:
        assert len(await store.payments(round_id=round_id, launcher_id=launcher_id)) == 1
        batches = await store.batches(round_id)
        assert batches and all(batch.status is BatchStatus.CONFIRMED for batch in batches)


async def hosts_agree_with_store(pool: PoolHosts, launcher_id: bytes32, get_farmer: dict[str, str]) -> None:
    """GET /farmer of every host answers the store's difficulty and points (read again if the leader's difficulty
    loop changed them meanwhile)."""
    for _ in range(READ_ATTEMPTS):
        before = await pool.store.get_farmer(launcher_id)
        replies = [await host.get("/farmer", get_farmer) for host in pool.hosts]
        if before is not None and before == await pool.store.get_farmer(launcher_id):
            break
    else:
        raise AssertionError("the farmer's record kept changing while the test read it")
    for reply in replies:
        assert (reply["current_difficulty"], reply["current_points"]) == (before.difficulty, before.points)


async def accepted_by(host: PoolHost) -> int:
    return int(await host.metric("pool_partials_total", result="accepted"))


async def test_two_pool_hosts_on_two_ports_sharing_postgresql_act_as_one_pool(devnet: WorkersDevnet) -> None:
    """In place of the supervisor above: two ``python -m pool`` processes with one worker each, on their own ports,
    on the same PostgreSQL, and a round-robin balancer on the farmer's pool URL (as nginx or HAProxy would be)."""
    config = devnet.config
    assert config.source is not None
    farmer = devnet.farmers[0]
    launcher = farmer.plotnft.launcher_id
    async with pool_hosts(config.source, 2, devnet.dsn) as pool:
        # As an operator moves a pool: the new hosts are up before the old process stops, and the balancer takes
        # its place on the farmer's pool URL; the leader lock passes to one of the hosts.
        await devnet.stop_pool()
        balancer = await pool.balance(config.server.port)
        first, second = pool.hosts
        store = pool.store
        partials_before = len(await store.recent_partials(launcher, 0))
        claims_before = len(await store.reward_claims(ClaimStatus.CONFIRMED))
        rounds_before = {r.id for r in await store.rounds()}

        async def both_accept_and_one_leads() -> bool:
            leader = await leader_pid(devnet.dsn)
            leading = [host for host in pool.hosts if host.pid == leader]
            return (
                min([await accepted_by(host) for host in pool.hosts]) >= 2
                and bool(leading)
                and await leading[0].metric("pool_loop_duration_seconds_count") > 0
            )

        await drive_until(
            devnet,
            both_accept_and_one_leads,
            "the farmer's partials accepted by both hosts, one leads",
            deadline=DEADLINE,
            with_status=False,
        )
        await exactly_one_leads(pool, devnet.dsn)
        assert all(count > 0 for count in balancer.connections.values())

        await devnet.win_block(farmer)

        async def new_rounds() -> dict[int, RoundStatus]:
            return {r.id: r.status for r in await store.rounds() if r.id is not None and r.id not in rounds_before}

        async def paid() -> bool:
            rounds = await new_rounds()
            claimed = len(await store.reward_claims(ClaimStatus.CONFIRMED)) > claims_before
            return claimed and bool(rounds) and all(status is RoundStatus.DONE for status in rounds.values())

        await drive_until(
            devnet, paid, "the won block absorbed and paid", farm_every=2, deadline=DEADLINE, with_status=False
        )
        await one_payment_per_round(store, launcher, set(await new_rounds()))

        # The same real partial sent to each host directly; the farmer is stopped, so it cannot send it first.
        auth_sk = real_farmer_auth_key(devnet, farmer)
        await devnet.farmer.stop()
        sp, found = await fresh_proofs(devnet.world, farmer.plots)
        token = current_authentication_token(int(time.time()), config.pool.authentication_token_timeout)
        body = partial_body(launcher, token, found[0], sp, auth_sk)
        resent_before = int(await second.metric("pool_partials_total", result="resent"))
        answer = await first.post("/partial", body)
        assert "new_difficulty" in answer, answer
        # The second host sees the row the first committed: an acceptance (a resend is not the farmer's fault),
        # counted as resent, and no second row below. Its difficulty is the first answer's, or the store's now if the
        # leader's difficulty loop changed it between the two posts (a pass fell there in one run of five).
        again = await second.post("/partial", body)
        farmer_now = await store.get_farmer(launcher)
        assert farmer_now is not None
        assert set(again) == {"new_difficulty"}, again
        assert again["new_difficulty"] in {answer["new_difficulty"], farmer_now.difficulty}, (again, answer)
        assert int(await second.metric("pool_partials_total", result="resent")) == resent_before + 1

        async def settled() -> bool:
            return not await store.recent_partials(launcher, 0, [PartialStatus.PENDING])

        await drive_until(devnet, settled, "every partial confirmed or rejected", deadline=DEADLINE, with_status=False)
        partials = await store.recent_partials(launcher, 0)
        proof = proof_identity(sp.sp_hash, found[0].proof_of_space)
        assert [p.status for p in partials if p.proof_hash == proof] == [PartialStatus.CONFIRMED]
        # Each partial a host accepted is one row, whichever host took it; no row without an acceptance.
        assert len(partials) - partials_before == sum([await accepted_by(host) for host in pool.hosts])
        await books_agree(store, devnet)
        await exactly_one_leads(pool, devnet.dsn)

        # Both hosts tell the farmer the same difficulty and points: the store's.
        params = authenticated_params("get_farmer", launcher, config.pool.target_puzzle_hash, auth_sk, token)
        await hosts_agree_with_store(pool, launcher, {name: str(value) for name, value in params.items()})
