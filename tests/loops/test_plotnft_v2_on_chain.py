"""A PlotNFT v2 on chain: its membership proved by the chain alone (coins minted at its puzzle hash neither pass for a
member nor stop the following of anyone; leaving counts from the waiting room's height lock), and its rewards forwarded,
claimed in the ledger and paid by points together with a v1 farmer's.

A real PlotNFT v2 made by chia's wallet on the shared chain; the forged one is a real singleton launcher built with
World.mint_even_plotnft_v2. Tests run in file order (the last one makes the PlotNFT leave).
"""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio

from pool.chia_adapter import AugSchemeMPL, PoolErrorCode, std_hash
from pool.devnet.plots import PoolPlot
from pool.devnet.wallets import PlotNFTV2Info
from pool.devnet.world import World
from pool.http.app import V2
from pool.loops.singletons import refresh_farmer
from pool.protocol.v2 import current_plotnft
from pool.store.models import ClaimStatus
from tests.http.farmer_requests import THRESHOLD, PoolUnderTest, SharedFarmer, fresh_proofs, shared_farmer
from tests.http.v2_requests import farmer_params, post_body, token_for, v2_partial_body
from tests.loops.loops_harness import Clock, Pool, bury_claims, check_chain, random_puzzle_hash, settle_round

RELATIVE_LOCK_HEIGHT = 5
POOL_URL = "http://127.0.0.1:1"


@pytest_asyncio.fixture(scope="module")
async def pool(world: World, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[PoolUnderTest]:
    started = await PoolUnderTest.start(world, tmp_path_factory.mktemp("pool") / "pool.sqlite")
    yield started
    await started.close()


@pytest_asyncio.fixture(scope="module")
async def plotnft(world: World, pool: PoolUnderTest) -> PlotNFTV2Info:
    created = await world.create_plotnft_v2(
        pool_url=POOL_URL, relative_lock_height=RELATIVE_LOCK_HEIGHT, fresh_launcher=False
    )
    await world.farm_blocks(THRESHOLD + 1)
    reply = await pool.send("POST", "/v2/farmer", post_body(created))
    assert "welcome_message" in reply, reply
    return created


@pytest_asyncio.fixture(scope="module")
async def v1_farmer(world: World, pool: PoolUnderTest) -> SharedFarmer:
    return await shared_farmer(world, pool, "farmer one")  # shared: its state is never changed here


async def follow_everyone(pool: PoolUnderTest) -> None:
    """One pass of the singleton loop over every farmer, as its iteration makes it (nothing may raise)."""
    peak = (await pool.ctx.node.peak()).height
    for farmer in await pool.ctx.store.list_farmers():
        await refresh_farmer(pool.ctx, farmer, peak)


async def test_a_coin_minted_at_the_puzzle_hash_is_never_read(
    world: World, pool: PoolUnderTest, plotnft: PlotNFTV2Info, v1_farmer: SharedFarmer
) -> None:
    view, _ = await current_plotnft(pool.ctx, plotnft.launcher_id)
    # Anyone can send a coin to the PlotNFT's own puzzle hash: an even one, and an odd one not its child.
    puzzle_hash = view.puzzle.puzzle_hash(nonce=0)
    await world.send_from_farmer_wallet(puzzle_hash, 2)
    await world.send_from_farmer_wallet(puzzle_hash, 3)
    await world.farm_blocks(THRESHOLD + 1)
    await follow_everyone(pool)
    for launcher_id in (plotnft.launcher_id, v1_farmer.launcher_id):
        farmer = await pool.ctx.store.get_farmer(launcher_id)
        assert farmer is not None and farmer.is_pool_member
    again, _ = await current_plotnft(pool.ctx, plotnft.launcher_id)
    assert again.tip == view.tip and again.puzzle == view.puzzle


async def test_the_authentication_key_follows_the_chains_synthetic_key(
    pool: PoolUnderTest, plotnft: PlotNFTV2Info
) -> None:
    """Recorded with another key (as after the PlotNFT changed its synthetic key on chain), the farmer's
    authentication key becomes the chain's at the next follow: the old key's tokens are worth nothing."""
    record = await pool.ctx.store.get_farmer(plotnft.launcher_id)
    assert record is not None
    stale = AugSchemeMPL.key_gen(std_hash(b"an older synthetic key")).get_g1()
    await pool.ctx.store.update_farmer_settings(plotnft.launcher_id, authentication_public_key=stale)
    mint = await pool.app[V2].mint()
    old_token = mint.issue(plotnft.launcher_id, stale, pool.ctx.now()).authentication_token
    assert "current_difficulty" in await pool.get("/v2/farmer", farmer_params(plotnft.launcher_id, old_token))
    await follow_everyone(pool)
    record = await pool.ctx.store.get_farmer(plotnft.launcher_id)
    assert record is not None and record.authentication_public_key == plotnft.synthetic_public_key
    reply = await pool.get("/v2/farmer", farmer_params(plotnft.launcher_id, old_token))
    assert reply.get("error_code") == PoolErrorCode.INVALID_AUTHENTICATION_TOKEN.value, reply
    assert "current_difficulty" in await pool.get(
        "/v2/farmer", farmer_params(plotnft.launcher_id, await token_for(pool, plotnft))
    )


async def test_an_even_coin_minted_by_another_singleton_is_no_plotnft(
    world: World, pool: PoolUnderTest, plotnft: PlotNFTV2Info
) -> None:
    config = pool.ctx.config.pool
    launcher_id = await world.mint_even_plotnft_v2(
        synthetic_key=plotnft.synthetic_public_key,
        target_puzzle_hash=config.target_puzzle_hash,
        relative_lock_height=config.relative_lock_height,
        memoization=config.pool_memoization,
    )
    await world.farm_blocks(THRESHOLD + 1)
    forged = post_body(plotnft, launcher_id=launcher_id)
    reply = await pool.send("POST", "/v2/farmer", forged)
    assert reply.get("error_code") == PoolErrorCode.INVALID_SINGLETON.value, reply
    assert await pool.ctx.store.get_farmer(launcher_id) is None


async def test_a_v2_reward_is_forwarded_claimed_and_shared_with_v1_by_points(
    world: World, pool: PoolUnderTest, plotnft: PlotNFTV2Info, v1_farmer: SharedFarmer, tmp_path: Path
) -> None:
    loops = await Pool.start(world, tmp_path / "loops.sqlite", Clock(), relative_lock_height=RELATIVE_LOCK_HEIGHT)
    try:
        # The v2 farmer as POST /v2/farmer recorded it, the v1 one as the harness adds it: the same table, the same
        # points, the same ledger.
        record = await pool.ctx.store.get_farmer(plotnft.launcher_id)
        assert record is not None and record.protocol_version == 2
        pay_v1, pay_v2 = random_puzzle_hash(), random_puzzle_hash()
        await loops.ctx.store.add_farmer(
            dataclasses.replace(record, payout_puzzle_hash=pay_v2, payout_instructions=pay_v2.hex())
        )
        await loops.add_farmer(v1_farmer.plotnft, pay_v1)
        sp = await world.new_signage_point()
        await loops.add_partial(v1_farmer.launcher_id, sp.sp_hash, 1)
        await loops.add_partial(plotnft.launcher_id, sp.sp_hash, 3)
        loops.advance(loops.ctx.config.partials.confirmation_delay + 1)
        await loops.peak()
        assert (await loops.partials.run_once(loops.ctx)).confirmed == 2
        assert await loops.points() == {v1_farmer.launcher_id: 1, plotnft.launcher_id: 3}

        # A block won by the v2 plot: its pool reward at RewardPuzzle(launcher), forwarded (a claim recorded first).
        start = world.peak_height
        await world.farm_blocks(1, pool_reward_puzzle_hash=plotnft.reward_puzzle_hash)
        await world.farm_blocks(THRESHOLD + 1)
        await loops.peak()
        stats = await loops.rewards.run_once(loops.ctx)
        assert len(stats.submitted) == 1, stats
        (claim,) = await loops.ctx.store.reward_claims()
        assert claim.launcher_id == plotnft.launcher_id and claim.status is ClaimStatus.SUBMITTED
        await bury_claims(world, loops, 1)
        target = loops.ctx.config.pool.target_puzzle_hash
        landed = await loops.ctx.node.coin_records_by_puzzle_hashes([target], include_spent=True, start_height=start)
        assert claim.amount in [int(r.coin.amount) for r in landed]
        # The PlotNFT v2 is followed on: the forward recreated it as it was.
        view, _ = await current_plotnft(loops.ctx, plotnft.launcher_id)
        assert not view.puzzle.exiting and view.puzzle.pool_config is not None

        loops.advance(loops.ctx.config.payouts.interval + 1)
        payout = await loops.run_payouts()
        assert payout.created and payout.round_id is not None
        await settle_round(loops, world, payout.round_id)
        share = claim.amount - claim.amount // 100  # pool.fee 0.01
        paid_v1 = [int(c.coin.amount) for c in await loops.coins_at(pay_v1)]
        paid_v2 = [int(c.coin.amount) for c in await loops.coins_at(pay_v2)]
        assert (paid_v1, paid_v2) == ([share // 4], [share * 3 // 4])
        ledger = await loops.ctx.store.ledger()
        assert ledger.balanced and ledger.confirmed_claims == claim.amount
        await check_chain(loops)
    finally:
        await loops.stop()


async def test_leaving_counts_from_the_waiting_rooms_height_lock(
    world: World, pool: PoolUnderTest, plotnft: PlotNFTV2Info
) -> None:
    plots: list[PoolPlot] = await world.create_pool_plots(plotnft.reward_puzzle_hash, 1)
    await world.leave_pool_v2(plotnft)
    await world.farm_blocks(THRESHOLD + 1)
    await follow_everyone(pool)
    farmer = await pool.ctx.store.get_farmer(plotnft.launcher_id)
    assert farmer is not None and farmer.is_pool_member  # in the waiting room: still the pool's
    view, peak = await current_plotnft(pool.ctx, plotnft.launcher_id)
    assert view.puzzle.exiting and peak < view.coin_height + RELATIVE_LOCK_HEIGHT
    await world.farm_blocks(view.coin_height + RELATIVE_LOCK_HEIGHT - peak)
    await follow_everyone(pool)
    farmer = await pool.ctx.store.get_farmer(plotnft.launcher_id)
    assert farmer is not None and not farmer.is_pool_member
    token = await token_for(pool, plotnft)
    sp, [found, *_] = await fresh_proofs(world, plots)
    reply = await pool.send("POST", "/v2/partial", v2_partial_body(plotnft, pool, token, found, sp))
    assert reply.get("error_code") == PoolErrorCode.INVALID_SINGLETON.value, reply
