"""The background loops against a simulated chain: real PlotNFTs, real absorbs, real payments, real restarts.

The session's shared World (tests/conftest.py); every test has its own pool database. Tests drive single loop
iterations (``run_once``) and move the pool's clock by hand, so nothing sleeps.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator
from pathlib import Path

import pytest_asyncio

from pool.chia_adapter import SpendBundle, calculate_pool_reward, uint32
from pool.devnet.world import PlotNFTInfo, World
from pool.loops.partials import REASON_NOT_MEMBER, REASON_REVERTED_SP, REASON_UNKNOWN_SP
from pool.loops.runner import LoopRunner
from pool.store.models import BatchStatus, ClaimStatus, PartialStatus, RoundStatus
from tests.loops.loops_harness import THRESHOLD, Clock, Pool, random_puzzle_hash


@pytest_asyncio.fixture(scope="module")
async def plotnfts(world: World) -> list[PlotNFTInfo]:
    """Two PlotNFTs farming to the pool (the second one leaves the pool in the last test)."""
    first = await world.create_plotnft(pool_url="http://127.0.0.1:1", relative_lock_height=5)
    second = await world.create_plotnft(pool_url="http://127.0.0.1:1", relative_lock_height=5)
    await world.farm_blocks(THRESHOLD + 1)  # bury both launchers
    return [first, second]


@pytest_asyncio.fixture
async def pool(world: World, tmp_path: Path) -> AsyncIterator[Pool]:
    started = await Pool.start(world, tmp_path / "pool.sqlite", Clock())
    yield started
    await started.stop()  # a no-op if a test restarted it (the test stops the pool it ends with)


async def _confirm_partials(pool: Pool, *points: tuple[PlotNFTInfo, int], world: World) -> None:
    sp = await world.new_signage_point()
    for plotnft, difficulty in points:
        await pool.add_partial(plotnft.launcher_id, sp.sp_hash, difficulty)
    pool.ctx.now.now += pool.ctx.config.partials.confirmation_delay + 1  # type: ignore[attr-defined]
    await pool.peak()
    stats = await pool.partials.run_once(pool.ctx)
    assert (stats.confirmed, stats.rejected) == (len(points), 0)


async def test_rewards_absorbed_and_farmers_paid_in_proportion(
    world: World, plotnfts: list[PlotNFTInfo], pool: Pool
) -> None:
    first, second = plotnfts
    pay_first, pay_second = random_puzzle_hash(), random_puzzle_hash()
    await pool.add_farmer(first, pay_first)
    await pool.add_farmer(second, pay_second)
    await _confirm_partials(pool, (first, 2), (first, 1), (second, 1), world=world)
    points = {f.launcher_id: f.points for f in await pool.ctx.store.list_farmers()}
    assert points == {first.launcher_id: 3, second.launcher_id: 1}

    # One block with both rewards at the p2_singleton (the farmer's 1/8 is not claimable), one with the pool's only.
    await world.farm_blocks(1, first.p2_singleton_puzzle_hash)
    await world.farm_blocks(1, pool_reward_puzzle_hash=first.p2_singleton_puzzle_hash)
    await world.farm_blocks(1)  # the last block's rewards are paid in the next transaction block
    await pool.peak()
    assert (await pool.rewards.run_once(pool.ctx)).submitted == []  # not buried deep enough yet
    await world.farm_blocks(THRESHOLD)
    await pool.peak()
    stats = await pool.rewards.run_once(pool.ctx)
    assert len(stats.submitted) == 2  # chained in one spend bundle
    again = await pool.rewards.run_once(pool.ctx)
    assert again.submitted == []  # never claimed twice while in flight
    await world.farm_blocks(1)
    await pool.peak()
    assert (await pool.rewards.run_once(pool.ctx)).confirmed == 0  # on chain, not yet buried
    await world.farm_blocks(THRESHOLD)
    await pool.peak()
    assert (await pool.rewards.run_once(pool.ctx)).confirmed == 2
    claims = await pool.ctx.store.reward_claims()
    assert {c.status for c in claims} == {ClaimStatus.CONFIRMED} and len(claims) == 2
    absorbed = sum(c.amount for c in claims)
    assert all(c.amount == calculate_pool_reward(uint32(c.coin_height - 1)) for c in claims)  # farmed one block earlier
    unclaimed = await pool.ctx.node.coin_records_by_puzzle_hashes([first.p2_singleton_puzzle_hash], False)
    assert len(unclaimed) == 1 and not unclaimed[0].spent  # the farmer's 1/8 reward stays

    balance = await pool.ctx.wallet.spendable_balance()
    assert balance >= absorbed
    payout = await pool.payouts.run_once(pool.ctx)
    assert payout.created and len(payout.signed) == 1
    assert (await pool.payouts.run_once(pool.ctx)).created is False  # no new round while one is open
    await world.farm_blocks(1)
    await pool.peak()
    assert (await pool.payouts.run_once(pool.ctx)).confirmed == []  # on chain, not yet buried
    await world.farm_blocks(THRESHOLD)
    await pool.peak()
    assert len((await pool.payouts.run_once(pool.ctx)).confirmed) == 1
    (done,) = await pool.ctx.store.rounds()
    assert done.status == RoundStatus.DONE and done.total == balance

    fee = balance // 100  # pool.fee 0.01, exact; blockchain_fee 0
    share = balance - fee
    expected_first, expected_second = share * 3 // 4, share * 1 // 4
    assert [c.coin.amount for c in await pool.coins_at(pay_first)] == [expected_first]
    assert [c.coin.amount for c in await pool.coins_at(pay_second)] == [expected_second]
    assert done.farmer_total == expected_first + expected_second and done.pool_fee == fee
    assert done.remainder == balance - fee - expected_first - expected_second
    assert [f.points for f in await pool.ctx.store.list_farmers()] == [0, 0]


async def test_payouts_survive_crashes_and_pay_exactly_once(
    world: World, plotnfts: list[PlotNFTInfo], pool: Pool
) -> None:
    first, second = plotnfts
    pay_first, pay_second = random_puzzle_hash(), random_puzzle_hash()
    await pool.add_farmer(first, pay_first)
    await pool.add_farmer(second, pay_second)

    # Round 1: crash right after the round is recorded (nothing signed), then right after it was sent.
    await _confirm_partials(pool, (first, 1), (second, 1), world=world)
    await world.farm_blocks(2, world.pool_target_puzzle_hash)
    await world.farm_blocks(1)
    await pool.peak()
    round_id = await pool.payouts.record_round(pool.ctx)
    assert round_id is not None
    pool = await pool.restart(world)
    first_run = await pool.payouts.run_once(pool.ctx)
    assert first_run.round_id == round_id and not first_run.created and len(first_run.signed) == 1
    (batch,) = await pool.ctx.store.batches(round_id)
    assert batch.status == BatchStatus.SUBMITTED
    pool = await pool.restart(world)
    await pool.payouts.run_once(pool.ctx)  # in the mempool: nothing to do, certainly not a new signature
    assert (await pool.ctx.store.batches(round_id))[0].tx_id == batch.tx_id
    await world.farm_blocks(1)
    await pool.peak()
    assert (await pool.payouts.run_once(pool.ctx)).confirmed == []  # on chain, not yet buried
    await world.farm_blocks(THRESHOLD)
    await pool.peak()
    assert len((await pool.payouts.run_once(pool.ctx)).confirmed) == 1
    assert (await pool.ctx.store.get_round(round_id)).status == RoundStatus.DONE  # type: ignore[union-attr]

    # Round 2: crash between recording the signed transaction and pushing it: the SAME transaction is pushed later.
    pool.ctx.now.now += pool.ctx.config.payouts.interval  # type: ignore[attr-defined]
    await _confirm_partials(pool, (first, 1), (second, 1), world=world)
    await world.farm_blocks(1, world.pool_target_puzzle_hash)
    await world.farm_blocks(1)
    await pool.peak()
    second_round = await pool.payouts.record_round(pool.ctx)
    assert second_round is not None
    (pending,) = await pool.ctx.store.batches(second_round)
    payments = await pool.ctx.store.payments(round_id=second_round)
    signed = await pool.ctx.wallet.sign_payment([(p.puzzle_hash, p.amount) for p in payments], pending.fee)
    assert pending.id is not None
    await pool.ctx.store.mark_batch_submitted(pending.id, signed.tx_id, bytes(signed.spend_bundle), pool.ctx.now())
    pool = await pool.restart(world)  # ... and the push never happened
    assert not await pool.ctx.node.in_mempool(signed.spend_bundle.name())
    progress = await pool.payouts.run_once(pool.ctx)
    assert progress.repushed == [pending.id] and progress.signed == []
    assert await pool.ctx.node.in_mempool(signed.spend_bundle.name())
    await world.farm_blocks(1)
    await pool.peak()
    assert (await pool.payouts.run_once(pool.ctx)).confirmed == []  # on chain, not yet buried
    await world.farm_blocks(THRESHOLD)
    await pool.peak()
    assert (await pool.payouts.run_once(pool.ctx)).confirmed == [pending.id]
    stored = (await pool.ctx.store.batches(second_round))[0]
    assert SpendBundle.from_bytes(stored.spend_bundle or b"").name() == signed.spend_bundle.name()

    # Each farmer: exactly one coin per round, of the recorded amount.
    for launcher_id, puzzle_hash in ((first.launcher_id, pay_first), (second.launcher_id, pay_second)):
        paid = sorted(p.amount for p in await pool.ctx.store.payments(launcher_id=launcher_id))
        assert len(paid) == 2
        assert sorted(c.coin.amount for c in await pool.coins_at(puzzle_hash)) == paid
    # Nothing left to pay: no third round even when one is due.
    pool.ctx.now.now += pool.ctx.config.payouts.interval  # type: ignore[attr-defined]
    assert not (await pool.payouts.run_once(pool.ctx)).created
    await pool.stop()


async def test_partials_with_unknown_or_reorged_signage_points_are_rejected(
    world: World, plotnfts: list[PlotNFTInfo], pool: Pool
) -> None:
    first, _ = plotnfts
    await pool.add_farmer(first, random_puzzle_hash())
    unknown = await pool.add_partial(first.launcher_id, random_puzzle_hash(), 5)
    unknown_eos = await pool.add_partial(first.launcher_id, random_puzzle_hash(), 5, end_of_sub_slot=True)
    sp = await world.new_signage_point()
    reorged = await pool.add_partial(first.launcher_id, sp.sp_hash, 7)
    await world.reorg(fork_height=world.peak_height - 2, new_peak_height=world.peak_height + 1)
    pool.ctx.now.now += pool.ctx.config.partials.confirmation_delay + 1  # type: ignore[attr-defined]
    await pool.peak()
    stats = await pool.partials.run_once(pool.ctx)
    assert (stats.confirmed, stats.rejected) == (0, 3)
    for partial_id, reasons in (
        (unknown, {REASON_UNKNOWN_SP}),
        (unknown_eos, {REASON_UNKNOWN_SP}),
        (reorged, {REASON_UNKNOWN_SP, REASON_REVERTED_SP}),
    ):
        partial = await pool.ctx.store.get_partial(partial_id)
        assert partial is not None and partial.status == PartialStatus.REJECTED and partial.reject_reason in reasons
    assert (await pool.ctx.store.get_farmer(first.launcher_id)).points == 0  # type: ignore[union-attr]


async def test_runner_starts_and_stops_cleanly(world: World, plotnfts: list[PlotNFTInfo], pool: Pool) -> None:
    first, _ = plotnfts
    await pool.add_farmer(first, random_puzzle_hash())
    sp = await world.new_signage_point()
    partial_id = await pool.add_partial(first.launcher_id, sp.sp_hash, 4)
    pool.ctx.now.now += pool.ctx.config.partials.confirmation_delay + 1  # type: ignore[attr-defined]
    runner = LoopRunner()
    runner.start(pool.ctx)
    try:
        for _ in range(100):
            partial = await pool.ctx.store.get_partial(partial_id)
            if partial is not None and partial.status != PartialStatus.PENDING:
                break
            await asyncio.sleep(0.1)
    finally:
        await runner.stop()
    assert (await pool.ctx.store.get_partial(partial_id)).status == PartialStatus.CONFIRMED  # type: ignore[union-attr]


async def test_claim_fee_is_paid_from_the_pool_wallet(world: World, plotnfts: list[PlotNFTInfo], pool: Pool) -> None:
    _, second = plotnfts
    config = pool.ctx.config
    pool.ctx.config = dataclasses.replace(config, rewards=dataclasses.replace(config.rewards, claim_fee=1_000))
    await pool.add_farmer(second, random_puzzle_hash())
    await world.farm_blocks(1, world.pool_target_puzzle_hash)  # the pool wallet needs coins to pay the fee
    await world.farm_blocks(1, pool_reward_puzzle_hash=second.p2_singleton_puzzle_hash)
    await world.farm_blocks(THRESHOLD + 1)
    await pool.peak()
    stats = await pool.rewards.run_once(pool.ctx)
    assert len(stats.submitted) == 1
    (claim,) = await pool.ctx.store.reward_claims()
    assert claim.spend_bundle_name is not None
    mempool = world.simulator.full_node.mempool_manager.mempool
    item = mempool.get_item_by_id(claim.spend_bundle_name)
    assert item is not None and item.fee == 1_000
    await world.farm_blocks(1)
    await pool.peak()
    assert (await pool.rewards.run_once(pool.ctx)).confirmed == 0  # on chain, not yet buried
    await world.farm_blocks(THRESHOLD)
    await pool.peak()
    assert (await pool.rewards.run_once(pool.ctx)).confirmed == 1


async def test_batch_whose_coins_were_spent_elsewhere_is_signed_anew(
    world: World, plotnfts: list[PlotNFTInfo], pool: Pool
) -> None:
    _, second = plotnfts
    pay_to = random_puzzle_hash()
    await pool.add_farmer(second, pay_to)
    await _confirm_partials(pool, (second, 1), world=world)
    await world.farm_blocks(1, world.pool_target_puzzle_hash)
    await world.farm_blocks(1)
    await pool.peak()
    round_id = await pool.payouts.record_round(pool.ctx)
    assert round_id is not None
    (batch,) = await pool.ctx.store.batches(round_id)
    payments = await pool.ctx.store.payments(round_id=round_id)
    signed = await pool.ctx.wallet.sign_payment([(p.puzzle_hash, p.amount) for p in payments], batch.fee)
    assert batch.id is not None
    await pool.ctx.store.mark_batch_submitted(batch.id, signed.tx_id, bytes(signed.spend_bundle), pool.ctx.now())
    # Crash before the push; meanwhile the wallet spends the same coins (back to itself, so the balance stays).
    conflicting = await pool.ctx.wallet.sign_payment([(world.pool_target_puzzle_hash, 1)], 0)
    assert set(conflicting.removals) & set(signed.removals)
    assert (await pool.ctx.node.push(conflicting.spend_bundle)).accepted
    await world.farm_blocks(1)
    pool = await pool.restart(world)
    progress = await pool.payouts.run_once(pool.ctx)
    assert progress.reset == [batch.id] and progress.signed == [batch.id]
    resigned = (await pool.ctx.store.batches(round_id))[0]
    assert resigned.status == BatchStatus.SUBMITTED and resigned.tx_id != signed.tx_id
    await world.farm_blocks(1)
    await pool.peak()
    assert (await pool.payouts.run_once(pool.ctx)).confirmed == []  # on chain, not yet buried
    await world.farm_blocks(THRESHOLD)
    await pool.peak()
    assert (await pool.payouts.run_once(pool.ctx)).confirmed == [batch.id]
    assert [c.coin.amount for c in await pool.coins_at(pay_to)] == [p.amount for p in payments if p.launcher_id]
    await pool.stop()


async def test_farmer_leaving_the_pool_stops_being_credited(
    world: World, plotnfts: list[PlotNFTInfo], pool: Pool
) -> None:
    _, leaving = plotnfts
    await pool.add_farmer(leaving, random_puzzle_hash())
    await world.leave_pool(leaving)
    await world.farm_blocks(THRESHOLD)
    await pool.peak()
    await pool.singletons.run_once(pool.ctx)
    farmer = await pool.ctx.store.get_farmer(leaving.launcher_id)
    assert farmer is not None and farmer.is_pool_member  # leaving, but still under the relative lock height
    assert farmer.singleton_tip_state.state == 2  # LEAVING_POOL

    await world.farm_blocks(pool.ctx.config.pool.relative_lock_height)
    await pool.peak()
    assert (await pool.singletons.run_once(pool.ctx)).updated == 1
    farmer = await pool.ctx.store.get_farmer(leaving.launcher_id)
    assert farmer is not None and not farmer.is_pool_member

    sp = await world.new_signage_point()
    partial_id = await pool.add_partial(leaving.launcher_id, sp.sp_hash, 9)
    pool.ctx.now.now += pool.ctx.config.partials.confirmation_delay + 1  # type: ignore[attr-defined]
    await pool.peak()
    await pool.partials.run_once(pool.ctx)
    partial = await pool.ctx.store.get_partial(partial_id)
    assert partial is not None and partial.status == PartialStatus.REJECTED
    assert partial.reject_reason == REASON_NOT_MEMBER
    assert (await pool.ctx.store.get_farmer(leaving.launcher_id)).points == 0  # type: ignore[union-attr]
