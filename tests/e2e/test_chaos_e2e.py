"""Kill -9 chaos: the pool, run as an operator runs it (``python -m pool --config ...``, SQLite, one process), is killed
with SIGKILL again and again while chia 2.7.5's real farmer sends partials, partials wait for confirmation, won blocks'
rewards are claimed and payout rounds are recorded, sent and confirmed; after each kill it is started again.

Two kinds of kill: at random moments (aimed at each phase, and not aimed), and at each named step where a crash is
most dangerous (pool/kill_points.py: an absorb recorded but not pushed, pushed but not seen; a payment signed but not
recorded, recorded but not pushed, pushed, and a new version recorded but not pushed). For the last, the pool's pushes
are swallowed for a while (its node is reached through tests/faults.py's proxy) so that a payment gets stuck and is
sent anew with a higher fee. Each named step is hit, by the process itself, at least once.

At the end, with the pool settled: every partial the farmer was told was accepted is in the store, once; the farmer's
points are its confirmed partials' difficulties less what distributions used; every reward won is claimed once; on
chain the farmer received exactly what the ledger says it was paid, and what it is owed is still owed; every batch
made its payments with exactly one of all the versions it ever recorded; the books balance and the wallet holds what
they say.

The farmer reaches the pool through a small recording proxy (as it would through a load balancer): the proxy sees
exactly the answers the farmer gets, so "accepted" means what the farmer was told, including answers given a moment
before a kill.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import time
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import pytest
import pytest_asyncio
import yaml
from aiohttp import web

from pool.chain.node_rpc import RpcFullNode
from pool.chain.wallet_rpc import WalletRpc
from pool.chia_adapter import CoinRecord, PostPartialRequest, bytes32
from pool.config import PoolConfig, parse_config
from pool.devnet.base import _wait_until
from pool.devnet.process import ProcessDevnet
from pool.devnet.session import free_port
from pool.kill_points import STEPS
from pool.payouts.books import build_books
from pool.protocol.partials import proof_identity
from pool.store.models import BatchStatus, ClaimStatus, LedgerKind, PartialStatus
from tests.chain_checks import store_agrees_with_chain
from tests.faults import FlakyNodeProxy

pytestmark = pytest.mark.asyncio(loop_scope="module")
log = logging.getLogger(__name__)

SEED = 20261201
INTAKE, CONFIRMATION, CLAIMS, PAYOUTS = "intake", "confirmation", "claims", "payouts"
PHASES = (INTAKE, CONFIRMATION, CLAIMS, PAYOUTS)
# Kills aimed at a phase (the pool is killed at a random moment once the phase is under way), and kills at a random
# moment whatever is going on.
AIMED_PER_PHASE = 2
UNAIMED = 4
PHASE_WAIT = 90.0  # a hang guard: seconds for an aimed phase to come
STEP_WAIT = 120.0  # a hang guard: seconds for the pool to reach a named kill step
SETTLE_DEADLINE = 120.0
# Payments that get stuck are sent anew after a few blocks, with a fee bump the pool's fee share keeps back; a payment
# missing from the node's mempool (a kill between recording and pushing it) is pushed again after a few seconds.
CHAOS_PAYOUTS = {"fee_bump_after_blocks": 3, "fee_reserve": 10_000_000, "repush_after": 2}


@dataclass
class RecordingProxy:
    """Forwards the farmer's requests to the pool and records the proofs whose POST /partial was answered accepted."""

    upstream_port: int = 0
    port: int = field(default_factory=free_port)
    acknowledged: set[bytes32] = field(default_factory=set)
    partials_in_flight: int = 0
    last_partial_at: float = 0.0  # time.monotonic() of the last POST /partial received
    _runner: web.AppRunner | None = None
    _session: aiohttp.ClientSession | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> None:
        app = web.Application(client_max_size=1024**2)
        app.router.add_route("*", "/{path:.*}", self._forward)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()
        self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30))

    async def stop(self) -> None:
        if self._session is not None:
            await self._session.close()
        if self._runner is not None:
            await self._runner.cleanup()

    async def _forward(self, request: web.Request) -> web.Response:
        assert self._session is not None
        is_partial = request.method == "POST" and request.path == "/partial"
        body = await request.read()
        if is_partial:
            self.partials_in_flight += 1
            self.last_partial_at = time.monotonic()
        try:
            async with self._session.request(
                request.method,
                f"http://127.0.0.1:{self.upstream_port}{request.path_qs}",
                data=body,
                headers={k: v for k, v in request.headers.items() if k.lower() not in ("host", "content-length")},
                allow_redirects=False,
            ) as answer:
                answer_body = await answer.read()
                status, content_type = answer.status, answer.content_type
        except aiohttp.ClientError:
            return web.Response(status=502, text="the pool is down")
        finally:
            if is_partial:
                self.partials_in_flight -= 1
        if is_partial and status == 200 and "new_difficulty" in json.loads(answer_body):
            partial = PostPartialRequest.from_json_dict(json.loads(body))
            self.acknowledged.add(proof_identity(partial.payload.sp_hash, partial.payload.proof_of_space))
        return web.Response(status=status, body=answer_body, content_type=content_type)


@dataclass
class ChaosDevnet(ProcessDevnet):
    """The devnet with the pool as a child process, reached by the farmer through the recording proxy; the pool
    reaches its node through a proxy that can swallow what it pushes."""

    proxy: RecordingProxy = field(default_factory=RecordingProxy)
    node_proxy: FlakyNodeProxy | None = None

    def _pool_config(self) -> PoolConfig:
        self.config_options = {**self.config_options, "payouts": CHAOS_PAYOUTS}
        config = super()._pool_config()
        self.proxy.upstream_port = config.server.port
        node = config.chain.full_node
        self.node_proxy = FlakyNodeProxy(node.host, node.port, node.chia_root, port=free_port())
        assert config.source is not None
        document = yaml.safe_load(config.source.read_text())
        document["chain"]["full_node"]["rpc_port"] = self.node_proxy.port
        config.source.write_text(yaml.safe_dump(document))
        return parse_config(document, config.source.parent, source=config.source)

    async def start_pool(self, env: dict[str, str] | None = None) -> None:
        assert self.node_proxy is not None
        if not self.node_proxy.running:
            await self.node_proxy.start()
            self._stack.push_async_callback(self.node_proxy.stop)
        await super().start_pool(env)

    @property
    def pool_url(self) -> str:
        return self.proxy.url


@dataclass
class Kill:
    number: int
    aimed_at: str | None
    phases: set[str]  # what was under way when the pool was killed, read from the store, the chain and the proxy
    detail: str


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def devnet(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[ChaosDevnet]:
    work_dir: Path = tmp_path_factory.mktemp("chaos-devnet")
    running = ChaosDevnet(work_dir, farmers_count=1, plots_per_farmer=3)
    await running.proxy.start()
    try:
        async with running:
            yield running
    finally:
        await running.proxy.stop()


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def node(devnet: ChaosDevnet) -> AsyncIterator[RpcFullNode]:
    client = await RpcFullNode.connect(devnet.config.chain.full_node)
    yield client
    await client.close()


async def drive_chain(devnet: ChaosDevnet, stop: asyncio.Event) -> None:
    """Signage points for the farmer, a block every fourth, and every 16th a block won by the farmer's plots."""
    step = 0
    while not stop.is_set():
        step += 1
        await devnet.signage_point(pause=0.25)
        if step % 16 == 0:
            await devnet.win_block(devnet.farmers[0])
        elif step % 4 == 0:
            await devnet.farm(1)


async def phases_now(devnet: ChaosDevnet, node: RpcFullNode) -> tuple[set[str], str]:
    """What the pool is in the middle of: the farmer's partials arriving (intake), partials waiting to be credited
    (confirmation), won rewards not yet claimed for good (claims), a payout round open (payouts)."""
    store, farmer = devnet.reader, devnet.farmers[0]
    phases: set[str] = set()
    proxy = devnet.proxy
    if proxy.partials_in_flight > 0 or time.monotonic() - proxy.last_partial_at < 1.0:
        phases.add(INTAKE)
    pending = await store.pending_partials(received_before=2**62, limit=100)
    if pending:
        phases.add(CONFIRMATION)
    rewards = await reward_coins(node, farmer.plotnft.p2_singleton_puzzle_hash)
    confirmed = {claim.coin_id for claim in await store.reward_claims(ClaimStatus.CONFIRMED)}
    unclaimed = [coin for coin in rewards if coin.coin.name() not in confirmed]
    if unclaimed:
        phases.add(CLAIMS)
    open_round = await store.open_round()
    batches = []
    if open_round is not None:
        assert open_round.id is not None
        phases.add(PAYOUTS)
        batches = [batch.status.value for batch in await store.batches(open_round.id)]
    detail = f"pending partials {len(pending)}, unclaimed rewards {len(unclaimed)}, open round batches {batches}"
    return phases, detail


async def reward_coins(node: RpcFullNode, p2_singleton_puzzle_hash: bytes32) -> list[CoinRecord]:
    records = await node.coin_records_by_puzzle_hashes([p2_singleton_puzzle_hash], include_spent=True)
    return [record for record in records if record.coinbase]


def kill_schedule(rng: random.Random) -> list[str | None]:
    aimed: list[str | None] = [phase for phase in PHASES for _ in range(AIMED_PER_PHASE)]
    schedule = aimed + [None] * UNAIMED
    rng.shuffle(schedule)
    return schedule


async def kill_at_random_moments(devnet: ChaosDevnet, node: RpcFullNode, rng: random.Random) -> list[Kill]:
    kills: list[Kill] = []
    started = time.monotonic()
    for number, aim in enumerate(kill_schedule(rng), start=1):
        if aim is None:
            await asyncio.sleep(rng.uniform(0.2, 3.0))
        else:

            async def under_way(phase: str = aim) -> bool:
                return phase in (await phases_now(devnet, node))[0]

            await _wait_until(under_way, PHASE_WAIT, f"kill {number}: {aim} under way")
            await asyncio.sleep(rng.uniform(0.0, 0.6))
        phases, detail = await phases_now(devnet, node)
        await devnet.kill_pool()
        kills.append(Kill(number, aim, phases, detail))
        log.warning(
            "kill %d at %.1f s (aimed at %s): hit %s; %s",
            number,
            time.monotonic() - started,
            aim or "-",
            sorted(phases) or "-",
            detail,
        )
        await asyncio.sleep(rng.uniform(0.0, 1.0))  # the farmer's requests fail while the pool is down
        await devnet.start_pool()
    return kills


async def kill_at_each_named_step(devnet: ChaosDevnet, kill_log: Path) -> list[str]:
    """Start the pool told to kill itself at one named step after the other (POOL_KILL_AT), each time until it did
    (each start takes up what the kill before left half done), then start it again as usual: the steps hit, in order,
    as the dying process wrote them down itself."""
    assert devnet.node_proxy is not None
    await devnet.kill_pool()
    for step in STEPS:
        await devnet.start_pool({"POOL_KILL_AT": step, "POOL_KILL_LOG": str(kill_log)})
        # A new version of a payment is made for one that is stuck: its pushes vanish until then.
        devnet.node_proxy.swallow_pushes = step == "batch-replaced"
        try:
            code = await devnet.wait_for_exit(STEP_WAIT)
        finally:
            devnet.node_proxy.swallow_pushes = False
        assert code == -9, f"the pool exited with {code} waiting for kill step {step}"
        log.warning("killed at step %s", step)
    await devnet.start_pool()
    return (await asyncio.to_thread(kill_log.read_text)).split()


async def settle(devnet: ChaosDevnet, node: RpcFullNode) -> None:
    """With no more signage points the farmer goes quiet; blocks come until the pool has finished what it started:
    no partial pending, every won reward claimed and buried, shared out (when anyone has points), and paid."""
    store = devnet.reader
    p2_singleton_puzzle_hash = devnet.farmers[0].plotnft.p2_singleton_puzzle_hash
    min_distribution = devnet.config.payouts.min_distribution

    async def settled() -> bool:
        if devnet.proxy.partials_in_flight or await store.pending_partials(received_before=2**62, limit=1):
            return False
        rewards = await reward_coins(node, p2_singleton_puzzle_hash)
        confirmed = {claim.coin_id for claim in await store.reward_claims(ClaimStatus.CONFIRMED)}
        if any(reward.coin.name() not in confirmed for reward in rewards):
            return False
        ledger = await store.ledger()
        return (
            ledger.confirmed_claims == sum(reward.coin.amount for reward in rewards)
            # Shared out, or waiting for points: with no points since the last distribution there is nobody to share
            # it with (the farmer is quiet once no signage points come), and it waits, as it should.
            and (
                ledger.undistributed < min_distribution
                or not any(farmer.points for farmer in await store.list_farmers())
            )
            and ledger.owed == 0
            and await store.open_round() is None
        )

    deadline = time.monotonic() + SETTLE_DEADLINE
    while not await settled():
        if time.monotonic() > deadline:
            ledger = await store.ledger()
            raise AssertionError(f"the pool did not settle within {SETTLE_DEADLINE} s: {ledger}")
        await devnet.farm(1)
        await asyncio.sleep(1.0)


async def check_partials(devnet: ChaosDevnet) -> Counter[str]:
    """Every proof the farmer was told was accepted is stored once and credited; points add up."""
    store, launcher_id = devnet.reader, devnet.farmers[0].plotnft.launcher_id
    partials = await store.recent_partials(launcher_id, since=0)
    by_proof = Counter(partial.proof_hash for partial in partials)
    assert [proof for proof, count in by_proof.items() if count > 1] == []
    acknowledged = devnet.proxy.acknowledged
    assert acknowledged, "the farmer was never told a partial was accepted"
    assert acknowledged - set(by_proof) == set(), "partials the farmer was told were accepted are not in the store"
    record_of = {partial.proof_hash: partial for partial in partials}
    uncredited = [record_of[proof] for proof in acknowledged if record_of[proof].status is not PartialStatus.CONFIRMED]
    # Nothing reverts on this chain (no reorg), so every acknowledged partial is credited, also one for an end of
    # sub-slot that chia's node no longer finds (it looks 10 sub-slots back; the pool keeps being killed and falls
    # behind while the devnet's sub-slots pass in seconds).
    assert uncredited == [], f"{len(uncredited)} of {len(acknowledged)} acknowledged partials not credited"
    farmer = await store.get_farmer(launcher_id)
    assert farmer is not None
    used_by_distributions = 0
    for distribution in await store.distributions(limit=10**6):
        assert distribution.id is not None
        shares = await store.distribution_shares(distribution.id)
        used_by_distributions += sum(share.points for share in shares if share.launcher_id == launcher_id)
    confirmed = [partial for partial in partials if partial.status is PartialStatus.CONFIRMED]
    assert farmer.points + used_by_distributions == sum(partial.difficulty for partial in confirmed)
    statuses = Counter(partial.status.value for partial in partials)
    statuses["acknowledged, not credited"] = len(uncredited)
    return statuses


async def check_claims(devnet: ChaosDevnet, node: RpcFullNode) -> int:
    """Every reward won is on chain at the farmer's p2_singleton puzzle hash, spent by the pool, claimed once."""
    store = devnet.reader
    rewards = await reward_coins(node, devnet.farmers[0].plotnft.p2_singleton_puzzle_hash)
    assert len(rewards) == devnet.blocks_won
    assert all(reward.spent_block_index > 0 for reward in rewards)
    confirmed = [claim.coin_id for claim in await store.reward_claims(ClaimStatus.CONFIRMED)]
    assert sorted(confirmed) == sorted(reward.coin.name() for reward in rewards)
    credited = Counter(entry.reference for entry in await store.ledger_entries(10**6) if entry.kind is LedgerKind.CLAIM)
    assert len(credited) == len(rewards) and set(credited.values()) == {1}
    return len(rewards)


async def check_payments(devnet: ChaosDevnet, node: RpcFullNode, coins_before: set[bytes32]) -> int:
    """On chain the farmer received exactly the confirmed payments of the ledger; shared out = paid + still owed."""
    store, launcher_id = devnet.reader, devnet.farmers[0].plotnft.launcher_id
    farmer = await store.get_farmer(launcher_id)
    assert farmer is not None
    paid: list[int] = []
    for payout_round in await store.rounds(limit=10**6):
        assert payout_round.id is not None
        for batch in await store.batches(payout_round.id):
            assert batch.status is BatchStatus.CONFIRMED
            payments = await store.payments(round_id=payout_round.id, batch_index=batch.index)
            paid += [payment.amount for payment in payments if payment.launcher_id == launcher_id]
    records = await node.coin_records_by_puzzle_hashes([farmer.payout_puzzle_hash], include_spent=True)
    received = [record.coin.amount for record in records if record.coin.name() not in coins_before]
    assert paid, "no payout was made"
    assert sorted(received) == sorted(paid)
    shared_out = 0
    for distribution in await store.distributions(limit=10**6):
        assert distribution.id is not None
        shares = await store.distribution_shares(distribution.id)
        shared_out += sum(share.amount for share in shares if share.launcher_id == launcher_id)
    assert shared_out == sum(paid) + farmer.owed
    ledger = await store.ledger()
    assert ledger.farmer_payments == sum(paid) and ledger.farmer_payments_in_flight == 0
    assert ledger.balanced, ledger
    wallet = await WalletRpc.connect(devnet.config.chain)
    try:
        books = await build_books(store, await wallet.spendable_balance())
    finally:
        await wallet.close()
    difference = books.wallet_difference
    assert difference is not None and difference >= 0, f"the wallet holds {difference} mojos less than the books say"
    return sum(paid)


async def test_pool_killed_at_random_moments_loses_nothing_and_pays_nothing_twice(
    devnet: ChaosDevnet, node: RpcFullNode
) -> None:
    started = time.monotonic()
    store, launcher_id = devnet.reader, devnet.farmers[0].plotnft.launcher_id
    farmer = await store.get_farmer(launcher_id)
    assert farmer is not None
    payout_coins = await node.coin_records_by_puzzle_hashes([farmer.payout_puzzle_hash], include_spent=True)
    coins_before = {record.coin.name() for record in payout_coins}
    stop = asyncio.Event()
    driver = asyncio.create_task(drive_chain(devnet, stop), name="chaos chain")
    try:
        kills = await kill_at_random_moments(devnet, node, random.Random(SEED))
        steps_hit = await kill_at_each_named_step(devnet, devnet.work_dir / "kill-steps.log")
    finally:
        stop.set()
        await driver
    await settle(devnet, node)

    hit = Counter(phase for kill in kills for phase in kill.phases)
    assert set(hit) == set(PHASES), f"phases hit by kills: {dict(hit)}"
    assert steps_hit == list(STEPS), f"named steps hit: {steps_hit}"
    statuses = await check_partials(devnet)
    rewards = await check_claims(devnet, node)
    paid = await check_payments(devnet, node, coins_before)
    config = devnet.config
    await store_agrees_with_chain(
        devnet.reader, node, config.pool.target_puzzle_hash, devnet.world.constants.MAX_BLOCK_COST_CLVM
    )
    versions = [
        len(await devnet.reader.batch_versions(batch.id or 0))
        for payout_round in await devnet.reader.rounds(limit=10**6)
        for batch in await devnet.reader.batches(payout_round.id or 0)
    ]
    assert max(versions) >= 2, f"no payment was sent anew: versions per batch {versions}"
    log.warning(
        "%d random kills and %d at named steps in %.0f s (phases hit: %s); partials %s, %d acknowledged; "
        "%d rewards claimed; %d mojos paid; versions per batch %s",
        len(kills),
        len(steps_hit),
        time.monotonic() - started,
        dict(hit),
        dict(statuses),
        len(devnet.proxy.acknowledged),
        rewards,
        paid,
        versions,
    )
