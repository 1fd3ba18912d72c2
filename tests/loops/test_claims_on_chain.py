"""A reward is credited only when the chain shows the pool was paid: the reward loop against a simulated chain, with
chia's real farmer wallet doing what a farmer may do with its own PlotNFT.

The pool reaches the node through a proxy (tests/faults.py) that can swallow the absorbs it pushes, as a network that
lost them would: the reward then waits unmined while the farmer acts. Every test checks the chain, not only the store.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest_asyncio

from pool.chain.node_rpc import RpcFullNode
from pool.chia_adapter import SpendBundle, bytes32
from pool.config import RpcConfig
from pool.devnet.world import World
from pool.loops.rewards import RewardStats
from pool.store.models import ClaimStatus, RewardClaim
from tests.faults import FlakyNodeProxy
from tests.loops.loops_harness import THRESHOLD, Clock, Pool, check_chain, random_puzzle_hash, win

RELATIVE_LOCK_HEIGHT = 5
POOL_URL = "http://127.0.0.1:1"


@pytest_asyncio.fixture
async def lossy(world: World) -> AsyncIterator[FlakyNodeProxy]:
    """The node, but every transaction the pool pushes is answered "accepted" and kept by the proxy instead."""
    endpoint = world.full_node_rpc
    async with FlakyNodeProxy(endpoint.host, endpoint.port, endpoint.root_path, swallow_pushes=True) as proxy:
        yield proxy


@pytest_asyncio.fixture
async def pool(world: World, lossy: FlakyNodeProxy, tmp_path: Path) -> AsyncIterator[Pool]:
    started = await Pool.start(
        world, tmp_path / "pool.sqlite", Clock(), node_port=lossy.port, relative_lock_height=RELATIVE_LOCK_HEIGHT
    )
    yield started
    await started.stop()


async def the_claim(pool: Pool) -> RewardClaim:
    (claim,) = await pool.ctx.store.reward_claims()
    return claim


async def paid_to(pool: Pool, puzzle_hash: bytes32, since: int) -> list[int]:
    """Amounts of the coins created at ``puzzle_hash`` from height ``since`` on, read from the chain."""
    records = await pool.ctx.node.coin_records_by_puzzle_hashes([puzzle_hash], include_spent=True, start_height=since)
    return sorted(int(record.coin.amount) for record in records)


async def test_a_reward_its_farmer_sweeps_is_lost_never_credited(world: World, pool: Pool) -> None:
    """The pool's absorb waits unmined; the farmer leaves the pool and absorbs the reward into its own address. The
    reward coin is spent and buried, but the pool was not paid: LOST, never credited, nothing paid out for it."""
    plotnft = await world.create_plotnft(pool_url=POOL_URL, relative_lock_height=RELATIVE_LOCK_HEIGHT)
    await world.farm_blocks(THRESHOLD + 1)
    payout_address = random_puzzle_hash()
    await pool.add_farmer(plotnft, payout_address)
    await pool.confirm_partials(world, (plotnft, 100))
    start = world.peak_height
    await win(world, pool, plotnft)
    assert len((await pool.rewards.run_once(pool.ctx)).submitted) == 1  # pushed, and lost on the way
    claim = await the_claim(pool)
    assert claim.status is ClaimStatus.SUBMITTED

    await world.leave_pool(plotnft, complete=True)
    farmer_address = (await world.plotnft_status(plotnft.wallet_id)).current.target_puzzle_hash
    await world.sweep_pool_rewards(plotnft)
    await world.farm_blocks(THRESHOLD)
    await pool.peak()

    stats = await pool.rewards.run_once(pool.ctx)
    assert (stats.confirmed, stats.lost) == (0, 1)
    claim = await the_claim(pool)
    assert claim.status is ClaimStatus.LOST and claim.error is not None
    ledger = await pool.ctx.store.ledger()
    assert (ledger.confirmed_claims, ledger.lost_rewards, ledger.undistributed) == (0, claim.amount, 0)
    assert ledger.balanced
    # The chain: the reward went to the farmer, nothing of that amount to the pool's target.
    assert claim.amount in await paid_to(pool, farmer_address, start)
    assert claim.amount not in await paid_to(pool, pool.ctx.config.pool.target_puzzle_hash, start)
    # Nothing is distributed or paid for it, however often the payout loop runs.
    pool.advance(pool.ctx.config.payouts.interval + 1)
    payout = await pool.run_payouts()
    assert not payout.created and payout.distribution_id is None
    assert await paid_to(pool, payout_address, start) == []
    await check_chain(pool)


async def test_a_failed_claim_whose_absorb_lands_later_is_credited_once(
    world: World, pool: Pool, lossy: FlakyNodeProxy
) -> None:
    """The absorb is marked FAILED (neither on chain nor in the mempool), then lands after all (it reached another
    node): the same chain check credits it, once."""
    plotnft = await world.create_plotnft(pool_url=POOL_URL, relative_lock_height=RELATIVE_LOCK_HEIGHT)
    await world.farm_blocks(THRESHOLD + 1)
    await pool.add_farmer(plotnft, random_puzzle_hash())
    start = world.peak_height
    await win(world, pool, plotnft)
    assert len((await pool.rewards.run_once(pool.ctx)).submitted) == 1
    (pushed,) = lossy.swallowed
    await world.farm_blocks(pool.rewards.drop_after_blocks)
    await pool.peak()
    stats = RewardStats()
    await pool.rewards.settle_claims(pool.ctx, pool.status.peak_height, stats)
    assert stats.failed == 1 and (await the_claim(pool)).status is ClaimStatus.FAILED

    # The absorb reaches the chain after all, from elsewhere.
    direct = await RpcFullNode.connect(world_node_rpc(world))
    try:
        assert (await direct.push(SpendBundle.from_json_dict(pushed["spend_bundle"]))).accepted
    finally:
        await direct.close()
    await world.farm_blocks(1 + THRESHOLD)
    await pool.peak()
    stats = await pool.rewards.run_once(pool.ctx)
    assert (stats.confirmed, stats.submitted) == (1, [])
    claim = await the_claim(pool)
    assert claim.status is ClaimStatus.CONFIRMED
    for _ in range(2):
        again = await pool.rewards.run_once(pool.ctx)
        assert again.confirmed == 0 and again.submitted == []
    ledger = await pool.ctx.store.ledger()
    assert ledger.confirmed_claims == ledger.undistributed == claim.amount and ledger.balanced
    # The chain: exactly one payment of the reward reached the pool's target.
    assert (await paid_to(pool, pool.ctx.config.pool.target_puzzle_hash, start)).count(claim.amount) == 1
    await check_chain(pool)


def world_node_rpc(world: World) -> RpcConfig:
    endpoint = world.full_node_rpc
    return RpcConfig(host=endpoint.host, port=endpoint.port, chia_root=endpoint.root_path)
