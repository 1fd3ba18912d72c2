"""Membership nobody can fake, and no partial or reward lost to timing: the loops against a simulated chain.

Forged and lying PlotNFTs are real singletons built with real keys (World.create_forged_plotnft, World.lying_travel);
the wallet outage is the pool's real wallet connection closed. Tests drive single loop iterations and move the pool's
clock by hand; nothing sleeps. Tests run in file order (the last one spends a PlotNFT in a way its wallet never would).
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio

from pool.chain.interface import ChainUnavailable
from pool.chain.singleton import SingletonForged, SingletonView, follow_singleton
from pool.chain.wallet_rpc import WalletRpc
from pool.chia_adapter import PoolSingletonState, bytes32
from pool.devnet.world import PlotNFTInfo, World
from pool.loops.partial_confirmation import REASON_NOT_MEMBER, RETRY_AFTER_SECONDS
from pool.store.models import FarmerRecord, PartialStatus
from tests.faults import FlakyNodeProxy
from tests.loops.loops_harness import THRESHOLD, Clock, Pool, random_puzzle_hash

RELATIVE_LOCK_HEIGHT = 10  # long enough for an absorb to land inside the LEAVING_POOL countdown
POOL_URL = "http://127.0.0.1:1"


@pytest_asyncio.fixture(scope="module")
async def plotnfts(world: World) -> list[PlotNFTInfo]:
    """Two honest PlotNFTs farming to the pool; the second one leaves in a later test."""
    first = await world.create_plotnft(pool_url=POOL_URL, relative_lock_height=RELATIVE_LOCK_HEIGHT)
    second = await world.create_plotnft(pool_url=POOL_URL, relative_lock_height=RELATIVE_LOCK_HEIGHT)
    await world.farm_blocks(THRESHOLD + 1)
    return [first, second]


@pytest_asyncio.fixture
async def pool(world: World, tmp_path: Path) -> AsyncIterator[Pool]:
    started = await Pool.start(world, tmp_path / "pool.sqlite", Clock(), relative_lock_height=RELATIVE_LOCK_HEIGHT)
    yield started
    await started.stop()


def advance_past_confirmation_delay(pool: Pool) -> None:
    pool.ctx.now.now += pool.ctx.config.partials.confirmation_delay + 1  # type: ignore[attr-defined]


async def live_view(pool: Pool, launcher_id: bytes32) -> SingletonView:
    """The singleton as it is on chain right now (nothing buried required)."""
    return await follow_singleton(
        pool.ctx.node,
        launcher_id,
        peak_height=(await pool.ctx.node.peak()).height,
        confirmation_security_threshold=0,
        genesis_challenge=pool.ctx.constants.GENESIS_CHALLENGE,
    )


async def member(pool: Pool, launcher_id: bytes32) -> bool:
    await pool.peak()
    await pool.singletons.run_once(pool.ctx)
    farmer = await pool.ctx.store.get_farmer(launcher_id)
    assert farmer is not None
    return farmer.is_pool_member


async def settled_partial(pool: Pool, world: World, launcher_id: bytes32, difficulty: int) -> PartialStatus:
    """A partial on a fresh signage point, re-checked after the confirmation delay: its final status."""
    sp = await world.new_signage_point()
    partial_id = await pool.add_partial(launcher_id, sp.sp_hash, difficulty)
    advance_past_confirmation_delay(pool)
    await pool.peak()
    await pool.partials.run_once(pool.ctx)
    partial = await pool.ctx.store.get_partial(partial_id)
    assert partial is not None
    return partial.status


async def test_a_partial_whose_recheck_raises_does_not_hold_up_the_others(
    world: World, plotnfts: list[PlotNFTInfo], pool: Pool
) -> None:
    first, second = plotnfts
    await pool.add_farmer(first, random_puzzle_hash())
    await pool.add_farmer(second, random_puzzle_hash())
    # The second farmer's row becomes unreadable (a ban time that is no number): its re-check raises.
    with sqlite3.connect(pool.ctx.config.store.path) as db:
        db.execute("UPDATE farmers SET banned_at = 'x' WHERE launcher_id = ?", (bytes(second.launcher_id),))
    sp = await world.new_signage_point()
    failing = await pool.add_partial(second.launcher_id, sp.sp_hash, 3)  # the oldest, first in every batch
    pool.ctx.now.now += 1  # type: ignore[attr-defined]
    fine = [await pool.add_partial(first.launcher_id, sp.sp_hash, 2) for _ in range(3)]
    advance_past_confirmation_delay(pool)
    await pool.peak()
    # Batches of 2: one iteration settles every due partial, batch after batch, and the failing partial, set aside
    # in the first, takes no place in the later ones (nor is it retried in them).
    pool.partials.batch_size = 2
    stats = await pool.partials.run_once(pool.ctx)
    assert (stats.confirmed, stats.failed) == (3, [failing])
    stats = await pool.partials.run_once(pool.ctx)
    assert (stats.confirmed, stats.failed) == (0, [])  # set aside: not retried yet
    statuses = [(await pool.ctx.store.get_partial(pid)).status for pid in fine]  # type: ignore[union-attr]
    assert statuses == [PartialStatus.CONFIRMED] * 3
    assert (await pool.ctx.store.get_partial(failing)).status == PartialStatus.PENDING  # type: ignore[union-attr]

    with sqlite3.connect(pool.ctx.config.store.path) as db:  # repaired: retried later, and credited
        db.execute("UPDATE farmers SET banned_at = NULL WHERE launcher_id = ?", (bytes(second.launcher_id),))
    pool.ctx.now.now += RETRY_AFTER_SECONDS  # type: ignore[attr-defined]
    assert (await pool.partials.run_once(pool.ctx)).confirmed == 1
    assert (await pool.ctx.store.get_farmer(second.launcher_id)).points == 3  # type: ignore[union-attr]


async def test_a_node_refusing_every_coin_look_up_revokes_nobody_and_rejects_nothing(
    world: World, plotnfts: list[PlotNFTInfo], tmp_path: Path
) -> None:
    """The node's database is locked for a while: every coin and puzzle look-up is refused. That says nothing about
    any singleton: the member stays a member, its partials are credited, and no claim is failed or lost."""
    first, _ = plotnfts
    endpoint = world.full_node_rpc
    async with FlakyNodeProxy(endpoint.host, endpoint.port, endpoint.root_path, error_rate=1.0) as refusing:
        pool = await Pool.start(
            world,
            tmp_path / "pool.sqlite",
            Clock(),
            node_port=refusing.port,
            relative_lock_height=RELATIVE_LOCK_HEIGHT,
        )
        try:
            refusing.error_rate = 0.0  # the farmer joins while the node answers
            await pool.add_farmer(first, random_puzzle_hash())
            refusing.error_rate = 1.0
            await world.farm_blocks(1, pool_reward_puzzle_hash=first.p2_singleton_puzzle_hash)
            await world.farm_blocks(THRESHOLD + 1)
            await pool.peak()
            stats = await pool.singletons.run_once(pool.ctx)
            assert (stats.revoked, stats.unavailable) == (0, 1)
            assert await settled_partial(pool, world, first.launcher_id, 7) is PartialStatus.CONFIRMED
            farmer = await pool.ctx.store.get_farmer(first.launcher_id)
            assert farmer is not None and farmer.is_pool_member and farmer.points == 7
            with pytest.raises(ChainUnavailable):  # the reward scan cannot be made: nothing is claimed or settled
                await pool.rewards.run_once(pool.ctx)
            assert await pool.ctx.store.reward_claims() == []
            assert refusing.refused["get_coin_records_by_names"] > 0  # the singletons' look-up
            refusing.error_rate = 0.0  # the node answers again: the reward is claimed (and leaves the chain clean)
            assert len((await pool.rewards.run_once(pool.ctx)).submitted) == 1
        finally:
            await pool.stop()


async def test_partials_and_rewards_go_on_while_the_wallet_is_away(
    world: World, plotnfts: list[PlotNFTInfo], pool: Pool
) -> None:
    first, _ = plotnfts
    await pool.add_farmer(first, random_puzzle_hash())
    assert await pool.rewards.target_proven(pool.ctx)  # the wallet proved it owns the target while it was there
    await pool.ctx.wallet.close()  # the pool's wallet is unreachable from here on
    await pool.peak_loop.run_once(pool.ctx)
    assert pool.status.node_ready and not pool.status.wallet_synced and pool.status.error is not None

    sp = await world.new_signage_point()
    partial_ids = [await pool.add_partial(first.launcher_id, sp.sp_hash, 4) for _ in range(3)]
    # Well past the confirmation delay: a pool waiting for its wallet would still have them pending.
    pool.ctx.now.now += 10 * pool.ctx.config.partials.confirmation_delay  # type: ignore[attr-defined]
    await pool.peak_loop.run_once(pool.ctx)
    stats = await pool.partials.run_once(pool.ctx)
    assert (stats.confirmed, stats.rejected, stats.stale) == (3, 0, 0)
    assert {(await pool.ctx.store.get_partial(pid)).status for pid in partial_ids} == {  # type: ignore[union-attr]
        PartialStatus.CONFIRMED
    }

    await world.farm_blocks(1, pool_reward_puzzle_hash=first.p2_singleton_puzzle_hash)
    await world.farm_blocks(THRESHOLD + 1)
    await pool.peak_loop.run_once(pool.ctx)
    assert len((await pool.rewards.run_once(pool.ctx)).submitted) == 1  # the node alone absorbs (no claim fee)
    assert not (await pool.payouts.run_once(pool.ctx)).created  # paying needs the wallet

    pool.ctx.wallet = await WalletRpc.connect(pool.ctx.config.chain)  # the wallet is back
    await pool.peak()
    assert pool.status.ready


async def test_a_backlog_of_pending_partials_is_confirmed_faster_than_it_came_in(
    world: World, plotnfts: list[PlotNFTInfo], pool: Pool, capsys: pytest.CaptureFixture[str]
) -> None:
    """10 000 pending partials over a few real signage points: the confirmation loop's batches share the farmers'
    rows and the signage point look-ups. Durations are printed for the operator, never asserted."""
    first, second = plotnfts
    await pool.add_farmer(first, random_puzzle_hash())
    await pool.add_farmer(second, random_puzzle_hash())
    signage_points = [await world.new_signage_point() for _ in range(4)]
    count = 10_000
    started = time.perf_counter()
    for index in range(count):
        farmer = (first, second)[index % 2]
        await pool.add_partial(farmer.launcher_id, signage_points[index % len(signage_points)].sp_hash, 1)
    intake = time.perf_counter() - started
    advance_past_confirmation_delay(pool)
    await pool.peak()
    requests_before = pool.signage_points.node_requests
    started = time.perf_counter()
    confirmed = iterations = 0
    while confirmed < count:
        stats = await pool.partials.run_once(pool.ctx)
        assert stats.rejected == stats.stale == 0 and stats.failed == []
        confirmed += stats.confirmed
        iterations += 1
    confirmation = time.perf_counter() - started
    with capsys.disabled():
        print(
            f"\n{count} partials: stored in {intake:.2f} s ({count / intake:.0f}/s), confirmed in {confirmation:.2f} s "
            f"({count / confirmation:.0f}/s) in {iterations} iterations"
        )
    # One node look-up per signage point per iteration at most (the cache keeps found ones a few seconds).
    assert pool.signage_points.node_requests - requests_before <= len(signage_points) * iterations
    farmers = await pool.ctx.store.list_farmers()
    assert sorted(f.points for f in farmers) == [count // 2, count // 2]


async def test_a_forged_plotnft_is_no_member(world: World, plotnfts: list[PlotNFTInfo], pool: Pool) -> None:
    """A real self-pooling singleton whose launcher data claims FARMING_TO_POOL to this pool."""
    forged = await world.create_forged_plotnft(
        claimed_target_puzzle_hash=pool.ctx.config.pool.target_puzzle_hash,
        claimed_relative_lock_height=RELATIVE_LOCK_HEIGHT,
    )
    await world.farm_blocks(THRESHOLD + 1)
    with pytest.raises(SingletonForged) as refused:
        await live_view(pool, forged.launcher_id)
    assert forged.launcher_id.hex() in str(refused.value) and "puzzle hash" in str(refused.value)

    # Registered before the pool checked puzzles (as if an older version had accepted it): revoked by the loop.
    first, _ = plotnfts
    honest = await pool.add_farmer(first, random_puzzle_hash())
    await pool.ctx.store.add_farmer(
        FarmerRecord(
            launcher_id=forged.launcher_id,
            p2_singleton_puzzle_hash=forged.p2_singleton_puzzle_hash,
            delay_time=604_800,
            delay_puzzle_hash=random_puzzle_hash(),
            authentication_public_key=forged.authentication_secret_key.get_g1(),
            singleton_tip=honest.singleton_tip,  # any recorded tip: the loop walks from the launcher anyway
            singleton_tip_state=honest.singleton_tip_state,
            difficulty=1,
            payout_instructions=random_puzzle_hash().hex(),
            payout_puzzle_hash=random_puzzle_hash(),
            is_pool_member=True,
            points=0,
            joined_at=pool.ctx.now(),
        )
    )
    await pool.peak()
    stats = await pool.singletons.run_once(pool.ctx)
    assert stats.revoked == 1
    assert not (await pool.ctx.store.get_farmer(forged.launcher_id)).is_pool_member  # type: ignore[union-attr]
    assert await settled_partial(pool, world, forged.launcher_id, 5) == PartialStatus.REJECTED
    assert (await pool.ctx.store.get_farmer(forged.launcher_id)).points == 0  # type: ignore[union-attr]
    assert (await pool.ctx.store.get_farmer(first.launcher_id)).is_pool_member  # type: ignore[union-attr]


async def test_leaving_lasts_as_long_as_the_waiting_room_holds_and_late_rewards_are_claimed(
    world: World, plotnfts: list[PlotNFTInfo], pool: Pool
) -> None:
    _, leaving = plotnfts
    await pool.add_farmer(leaving, random_puzzle_hash())
    await world.leave_pool(leaving)
    entered = await live_view(pool, leaving.launcher_id)
    assert entered.state.state == PoolSingletonState.LEAVING_POOL.value

    # A block won while leaving is absorbed; the absorb makes a new waiting-room coin, which restarts the countdown.
    await world.farm_blocks(1, pool_reward_puzzle_hash=leaving.p2_singleton_puzzle_hash)
    await world.farm_blocks(THRESHOLD + 1)
    await pool.peak()
    assert len((await pool.rewards.run_once(pool.ctx)).submitted) == 1
    await world.farm_blocks(1)
    absorbed = await live_view(pool, leaving.launcher_id)
    assert absorbed.state.state == PoolSingletonState.LEAVING_POOL.value
    assert absorbed.coin_height > entered.coin_height
    escape_height = absorbed.coin_height + RELATIVE_LOCK_HEIGHT  # the first block the escape can be in

    # Past the countdown counted from the LEAVING spend, but the chain does not allow the escape yet: still a member.
    while world.peak_height < entered.coin_height + RELATIVE_LOCK_HEIGHT:
        await world.farm_blocks(1)
    assert world.peak_height < escape_height - 3
    assert await member(pool, leaving.launcher_id)
    assert await settled_partial(pool, world, leaving.launcher_id, 6) == PartialStatus.CONFIRMED

    # A block won just before the escape becomes possible.
    while world.peak_height < escape_height - 3:
        await world.farm_blocks(1)
    await world.farm_blocks(1, pool_reward_puzzle_hash=leaving.p2_singleton_puzzle_hash)
    while world.peak_height < escape_height:
        await world.farm_blocks(1)
    assert not await member(pool, leaving.launcher_id)  # the escape can be in the next block
    assert await settled_partial(pool, world, leaving.launcher_id, 6) == PartialStatus.REJECTED

    # Its reward is buried only now that the farmer is no member; the live singleton still pays the pool: claimed.
    await world.farm_blocks(1)
    await pool.peak()
    late = (await pool.rewards.run_once(pool.ctx)).submitted
    assert len(late) == 1
    await world.farm_blocks(1)
    record = await pool.ctx.node.coin_record(late[0])
    assert record is not None and record.spent
    assert (await pool.ctx.store.get_farmer(leaving.launcher_id)).points == 6  # type: ignore[union-attr]


async def test_a_member_whose_travel_announces_a_lying_state_is_revoked(
    world: World, plotnfts: list[PlotNFTInfo], pool: Pool
) -> None:
    liar = await world.create_plotnft(pool_url=POOL_URL, relative_lock_height=RELATIVE_LOCK_HEIGHT)
    await world.farm_blocks(THRESHOLD + 1)
    await pool.add_farmer(liar, random_puzzle_hash())
    assert await member(pool, liar.launcher_id)
    assert await settled_partial(pool, world, liar.launcher_id, 2) == PartialStatus.CONFIRMED

    # The owner spends the singleton into the waiting room (where a pool member's travel must go) while announcing
    # that it still farms to this pool: the pool would keep crediting it while it prepares to leave unseen.
    view = await live_view(pool, liar.launcher_id)
    launcher = await pool.ctx.node.coin_record(liar.launcher_id)
    assert launcher is not None
    await world.lying_travel(
        liar,
        last_spend=view.tip,
        launcher=launcher.coin,
        current=view.state,
        announced=view.state,
        delay_time=view.delay_time,
        delay_puzzle_hash=view.delay_puzzle_hash,
    )
    await world.farm_blocks(THRESHOLD)
    await pool.peak()
    stats = await pool.singletons.run_once(pool.ctx)
    assert (stats.revoked, stats.failed) == (1, 1)
    farmer = await pool.ctx.store.get_farmer(liar.launcher_id)
    assert farmer is not None and not farmer.is_pool_member
    assert await settled_partial(pool, world, liar.launcher_id, 2) == PartialStatus.REJECTED
    rejected = await pool.ctx.store.recent_partials(liar.launcher_id, 0, [PartialStatus.REJECTED])
    assert [p.reject_reason for p in rejected] == [REASON_NOT_MEMBER]
    assert (await pool.ctx.store.get_farmer(liar.launcher_id)).points == 2  # type: ignore[union-attr]
