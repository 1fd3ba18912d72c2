"""The background loops against a simulated chain: real PlotNFTs, real absorbs, real payments, real restarts.

The session's shared World (tests/conftest.py); every test has its own pool database. Tests drive single loop
iterations (``run_once``) and move the pool's clock by hand, so nothing sleeps. Money to pay comes only from blocks
won by members' pool plots, absorbed and buried (``win_and_claim``); the ledger's own acceptance tests (operator funds,
dust, owed balances, claim fees, fee bumps) are in tests/payouts/test_ledger_on_chain.py.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path

import pytest_asyncio

from pool.chain.status import ChainStatus
from pool.chia_adapter import SpendBundle, bytes32, calculate_pool_reward, uint32
from pool.devnet.world import PlotNFTInfo, World
from pool.loops.partial_confirmation import (
    REASON_BANNED,
    REASON_NOT_MEMBER,
    REASON_REVERTED_SP,
    REASON_STALE_DROPPED,
)
from pool.loops.payouts import PayoutStats, batch_additions
from pool.loops.runner import LoopRunner
from pool.server import background_loops
from pool.store.models import BatchStatus, ClaimStatus, FarmerSettings, PartialStatus
from tests.loops.loops_harness import (
    THRESHOLD,
    Clock,
    Pool,
    absorb,
    bury_claims,
    random_puzzle_hash,
    settle_round,
    win_and_claim,
)


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


async def test_rewards_absorbed_and_farmers_paid_in_proportion(
    world: World, plotnfts: list[PlotNFTInfo], pool: Pool
) -> None:
    first, second = plotnfts
    pay_first, pay_second = random_puzzle_hash(), random_puzzle_hash()
    await pool.add_farmer(first, pay_first)
    await pool.add_farmer(second, pay_second)
    await pool.confirm_partials(world, (first, 2), (first, 1), (second, 1))
    assert await pool.points() == {first.launcher_id: 3, second.launcher_id: 1}
    # A ban stops what a farmer earns from then on, never what it earned: its partial still pending is not credited,
    # its confirmed points are shared out and paid below as anyone's.
    sp = await world.new_signage_point()
    pending = await pool.add_partial(second.launcher_id, sp.sp_hash, 5)
    assert await pool.ctx.store.ban_farmer(second.launcher_id, "testing bans", pool.ctx.now())
    pool.advance(pool.ctx.config.partials.confirmation_delay + 1)
    await pool.peak()
    assert (await pool.partials.run_once(pool.ctx)).rejected == 1
    rejected = await pool.ctx.store.get_partial(pending)
    assert rejected is not None and rejected.reject_reason == REASON_BANNED
    assert await pool.points() == {first.launcher_id: 3, second.launcher_id: 1}

    # One block with both rewards at the p2_singleton (the farmer's 1/8 is not claimable), one with the pool's only.
    await world.farm_blocks(1, first.p2_singleton_puzzle_hash)
    await world.farm_blocks(1, pool_reward_puzzle_hash=first.p2_singleton_puzzle_hash)
    await world.farm_blocks(1)  # the last block's rewards are paid in the next transaction block
    await pool.peak()
    assert (await pool.rewards.run_once(pool.ctx)).submitted == []  # not buried deep enough yet
    await world.farm_blocks(THRESHOLD)
    await absorb(pool, 2)  # chained in one spend bundle
    assert (await pool.rewards.run_once(pool.ctx)).submitted == []  # never claimed twice while in flight
    assert (await pool.ctx.store.ledger()).undistributed == 0  # nothing is paid before the claims are buried
    await bury_claims(world, pool, 2)
    claims = await pool.ctx.store.reward_claims()
    assert {c.status for c in claims} == {ClaimStatus.CONFIRMED} and len(claims) == 2
    absorbed = sum(c.amount for c in claims)
    assert all(c.amount == calculate_pool_reward(uint32(c.coin_height - 1)) for c in claims)  # farmed one block earlier
    unclaimed = await pool.ctx.node.coin_records_by_puzzle_hashes([first.p2_singleton_puzzle_hash], False)
    assert len(unclaimed) == 1 and not unclaimed[0].spent  # the farmer's 1/8 reward stays
    ledger = await pool.ctx.store.ledger()
    assert ledger.confirmed_claims == ledger.undistributed == absorbed and ledger.balanced

    assert await pool.ctx.wallet.spendable_balance() >= absorbed
    # The second farmer chose (on its page) to be paid only from 1000 XCH on: this round pays the first alone.
    patient = FarmerSettings(second.launcher_id, min_payout=10**15)
    await pool.ctx.store.change_farmer_settings(patient, pool.ctx.now())
    payout = await pool.run_payouts()
    assert payout.created and payout.distribution_id is not None and len(payout.signed) == 1
    assert (await pool.run_payouts()).created is False  # no new round while one is open
    assert payout.round_id is not None
    done = await settle_round(pool, world, payout.round_id)

    fee = absorbed // 100  # pool.fee 0.01, exact; blockchain_fee 0, fee_reserve 0: the whole fee share is paid
    share = absorbed - fee
    expected_first, expected_second = share * 3 // 4, share * 1 // 4
    (distribution,) = await pool.ctx.store.distributions()
    assert (distribution.total, distribution.pool_fee) == (fee + expected_first + expected_second, fee)
    assert distribution.remainder == share - expected_first - expected_second
    assert [c.coin.amount for c in await pool.coins_at(pay_first)] == [expected_first]
    assert await pool.coins_at(pay_second) == [] and (await pool.ctx.store.ledger()).owed == expected_second
    assert done.farmer_total == expected_first and done.pool_fee == fee
    assert done.total == distribution.total - expected_second and done.blockchain_fees == 0
    # Back to the pool's minimum: the next round pays it.
    await pool.ctx.store.change_farmer_settings(FarmerSettings(second.launcher_id), pool.ctx.now())
    pool.advance(pool.ctx.config.payouts.interval)
    payout = await pool.run_payouts()
    assert payout.created and payout.round_id is not None
    assert (await settle_round(pool, world, payout.round_id)).farmer_total == expected_second
    assert [c.coin.amount for c in await pool.coins_at(pay_second)] == [expected_second]
    assert [f.points for f in await pool.ctx.store.list_farmers()] == [0, 0]
    ledger = await pool.ctx.store.ledger()
    assert (ledger.owed, ledger.pool_fee_share, ledger.undistributed) == (0, 0, distribution.remainder)
    assert ledger.farmer_payments == expected_first + expected_second and ledger.balanced
    # Each of these changes wrote its notification in its own transaction: per claim, and per batch for the
    # operator and for the farmer it paid.
    kinds = Counter((event.kind.value, event.launcher_id) for event in await pool.ctx.store.notifications())
    expected_events: dict[tuple[str, bytes32 | None], int] = {
        ("block-won", first.launcher_id): 2,
        ("reward-confirmed", first.launcher_id): 2,
        ("payout-sent", None): 2,
        ("payout-confirmed", None): 2,
        **{(kind, farmer.launcher_id): 1 for kind in ("payout-sent", "payout-confirmed") for farmer in plotnfts},
    }
    assert kinds == expected_events


async def test_payouts_survive_crashes_and_pay_exactly_once(
    world: World, plotnfts: list[PlotNFTInfo], pool: Pool
) -> None:
    first, second = plotnfts
    pay_first, pay_second = random_puzzle_hash(), random_puzzle_hash()
    await pool.add_farmer(first, pay_first)
    await pool.add_farmer(second, pay_second)

    # Round 1: crash right after the round is recorded (nothing signed), then right after it was sent.
    await pool.confirm_partials(world, (first, 1), (second, 1))
    await win_and_claim(pool, world, first)
    await pool.peak()
    assert await pool.payouts.distribute(pool.ctx) is not None
    round_id = await pool.payouts.record_round(pool.ctx, PayoutStats())
    assert round_id is not None
    pool = await pool.restart(world)
    first_run = await pool.run_payouts()
    assert first_run.round_id == round_id and not first_run.created and len(first_run.signed) == 1
    assert first_run.distribution_id is None  # the money was shared out once, before the crash
    (batch,) = await pool.ctx.store.batches(round_id)
    assert batch.status == BatchStatus.SUBMITTED
    pool = await pool.restart(world)
    await pool.run_payouts()  # in the mempool: nothing to do, certainly not a new signature
    assert (await pool.ctx.store.batches(round_id))[0].tx_id == batch.tx_id
    await settle_round(pool, world, round_id)

    # Round 2: crash between recording the signed transaction and pushing it: the SAME transaction is pushed later.
    pool.advance(pool.ctx.config.payouts.interval)
    await pool.confirm_partials(world, (first, 1), (second, 1))
    await win_and_claim(pool, world, second)
    await pool.peak()
    assert await pool.payouts.distribute(pool.ctx) is not None
    second_round = await pool.payouts.record_round(pool.ctx, PayoutStats())
    assert second_round is not None
    (pending,) = await pool.ctx.store.batches(second_round)
    assert pending.id is not None
    signed = await pool.ctx.wallet.sign_payment(await batch_additions(pool.ctx, pending), pending.fee)
    await pool.ctx.store.mark_batch_submitted(
        pending.id,
        signed.tx_id,
        bytes(signed.spend_bundle),
        pool.ctx.now(),
        pool.status.peak_height,
        coins=signed.removals,
    )
    pool = await pool.restart(world)  # ... and the push never happened
    assert not await pool.ctx.node.in_mempool(signed.spend_bundle.name())
    progress = await pool.run_payouts()
    assert progress.repushed == [pending.id] and progress.signed == [] and progress.rebuilt == []
    assert await pool.ctx.node.in_mempool(signed.spend_bundle.name())
    await settle_round(pool, world, second_round)
    stored = (await pool.ctx.store.batches(second_round))[0]
    assert SpendBundle.from_bytes(stored.spend_bundle or b"").name() == signed.spend_bundle.name()

    # Each farmer: exactly one coin per round, of the recorded amount.
    for launcher_id, puzzle_hash in ((first.launcher_id, pay_first), (second.launcher_id, pay_second)):
        paid = sorted(p.amount for p in await pool.ctx.store.payments(launcher_id=launcher_id))
        assert len(paid) == 2 and all(amount > 0 for amount in paid)
        assert sorted(c.coin.amount for c in await pool.coins_at(puzzle_hash)) == paid
    ledger = await pool.ctx.store.ledger()
    assert ledger.owed == 0 and ledger.balanced
    # Nothing left to pay: no third round even when one is due.
    pool.advance(pool.ctx.config.payouts.interval)
    third = await pool.run_payouts()
    assert not third.created and third.distribution_id is None
    await pool.stop()


async def test_partials_with_forgotten_or_reorged_signage_points(
    world: World, plotnfts: list[PlotNFTInfo], pool: Pool
) -> None:
    """A signage point the node no longer knows makes its partial stale (credited by default: it was checked against
    that signage point at receipt); one the node reports reverted is rejected. Whether a reorg reverts a point depends
    on the shared chain (a reorg within the point's sub-slot may keep it), so the reorged partial is checked against
    what the node says of its point after the reorg."""
    first, _ = plotnfts
    await pool.add_farmer(first, random_puzzle_hash())
    forgotten = await pool.add_partial(first.launcher_id, random_puzzle_hash(), 5)
    forgotten_eos = await pool.add_partial(first.launcher_id, random_puzzle_hash(), 5, end_of_sub_slot=True)
    sp = await world.new_signage_point()
    reorged = await pool.add_partial(first.launcher_id, sp.sp_hash, 7)
    await world.reorg(fork_height=world.peak_height - 2, new_peak_height=world.peak_height + 1)
    after_reorg = await pool.ctx.node.signage_point(sp.sp_hash)
    pool.advance(pool.ctx.config.partials.confirmation_delay + 1)
    await pool.peak()
    stats = await pool.partials.run_once(pool.ctx)
    kept = after_reorg is not None and not after_reorg.reverted
    assert stats.confirmed == int(kept) and stats.rejected + stats.stale == 3 - int(kept) and stats.failed == []
    for partial_id in (forgotten, forgotten_eos):
        partial = await pool.ctx.store.get_partial(partial_id)
        assert partial is not None and partial.stale and partial.status == PartialStatus.CONFIRMED
    partial = await pool.ctx.store.get_partial(reorged)
    assert partial is not None
    if after_reorg is None:  # forgotten by the node: stale, credited
        assert partial.stale and partial.status == PartialStatus.CONFIRMED
    elif after_reorg.reverted:
        assert (partial.status, partial.reject_reason) == (PartialStatus.REJECTED, REASON_REVERTED_SP)
    else:  # the new chain kept the point's sub-slot: a valid partial, confirmed
        assert not partial.stale and partial.status == PartialStatus.CONFIRMED
    points = 10 + (7 if partial.status == PartialStatus.CONFIRMED else 0)
    assert (await pool.ctx.store.get_farmer(first.launcher_id)).points == points  # type: ignore[union-attr]
    assert await pool.ctx.store.count_stale_partials() == stats.stale
    assert pool.ctx.stats.stale_partials == stats.stale


async def test_stale_partials_are_dropped_when_the_operator_says_so(
    world: World, plotnfts: list[PlotNFTInfo], pool: Pool
) -> None:
    first, _ = plotnfts
    config = pool.ctx.config
    pool.ctx.config = dataclasses.replace(config, partials=dataclasses.replace(config.partials, stale_partials="drop"))
    await pool.add_farmer(first, random_puzzle_hash())
    forgotten = await pool.add_partial(first.launcher_id, random_puzzle_hash(), 5)
    pool.ctx.now.now += pool.ctx.config.partials.confirmation_delay + 1  # type: ignore[attr-defined]
    await pool.peak()
    assert (await pool.partials.run_once(pool.ctx)).stale == 1
    partial = await pool.ctx.store.get_partial(forgotten)
    assert partial is not None and partial.stale
    assert (partial.status, partial.reject_reason) == (PartialStatus.REJECTED, REASON_STALE_DROPPED)
    assert (await pool.ctx.store.get_farmer(first.launcher_id)).points == 0  # type: ignore[union-attr]


async def test_runner_starts_and_stops_cleanly(world: World, plotnfts: list[PlotNFTInfo], pool: Pool) -> None:
    first, _ = plotnfts
    await pool.add_farmer(first, random_puzzle_hash())
    sp = await world.new_signage_point()
    partial_id = await pool.add_partial(first.launcher_id, sp.sp_hash, 4)
    pool.advance(pool.ctx.config.partials.confirmation_delay + 1)
    runner = LoopRunner(background_loops(ChainStatus(), pool.signage_points))
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


async def test_batch_whose_coins_were_spent_elsewhere_is_built_anew(
    world: World, plotnfts: list[PlotNFTInfo], pool: Pool
) -> None:
    _, second = plotnfts
    pay_to = random_puzzle_hash()
    await pool.add_farmer(second, pay_to)
    await pool.confirm_partials(world, (second, 1))
    await world.farm_blocks(1, world.pool_target_puzzle_hash)  # the operator's own coins, next to the reward
    await win_and_claim(pool, world, second)
    await pool.peak()
    assert await pool.payouts.distribute(pool.ctx) is not None
    round_id = await pool.payouts.record_round(pool.ctx, PayoutStats())
    assert round_id is not None
    (batch,) = await pool.ctx.store.batches(round_id)
    assert batch.id is not None
    payments = await pool.ctx.store.payments(round_id=round_id)
    # Signed from the two largest coins, recorded; then a crash before the push.
    largest, other = sorted([c.coin for c in await pool.ctx.wallet.spendable_coins()], key=lambda c: -c.amount)[:2]
    signed = await pool.ctx.wallet.sign_payment(
        await batch_additions(pool.ctx, batch), batch.fee, coins=[largest, other]
    )
    await pool.ctx.store.mark_batch_submitted(
        batch.id,
        signed.tx_id,
        bytes(signed.spend_bundle),
        pool.ctx.now(),
        pool.status.peak_height,
        coins=signed.removals,
    )
    # Meanwhile the wallet spends one of its coins (back to itself, so the balance stays).
    conflicting = await pool.ctx.wallet.sign_payment([(world.pool_target_puzzle_hash, 1)], 0, coins=[other])
    assert (await pool.ctx.node.push(conflicting.spend_bundle)).accepted
    await world.farm_blocks(1)
    pool = await pool.restart(world)
    progress = await pool.run_payouts()
    # The batch stays SUBMITTED with a new transaction around what is left of the old one's coins: the two conflict,
    # so at most one of them can ever land.
    assert progress.rebuilt == [batch.id] and progress.signed == [] and progress.repushed == []
    rebuilt = (await pool.ctx.store.batches(round_id))[0]
    assert rebuilt.status == BatchStatus.SUBMITTED and rebuilt.tx_id != signed.tx_id
    removals = {c.name() for c in SpendBundle.from_bytes(rebuilt.spend_bundle or b"").removals()}
    assert largest.name() in removals and other.name() not in removals
    assert rebuilt.tx_id is not None and await pool.ctx.node.in_mempool(rebuilt.tx_id)
    await settle_round(pool, world, round_id)
    assert [c.coin.amount for c in await pool.coins_at(pay_to)] == [p.amount for p in payments if p.launcher_id]
    await pool.stop()


async def test_a_payee_cannot_mark_its_batch_paid_by_paying_itself(
    world: World, plotnfts: list[PlotNFTInfo], pool: Pool
) -> None:
    """A batch's transaction can no longer land (a coin of it was spent elsewhere), and in that very block its payee
    sends itself a coin of exactly its payment. The batch is paid only by the children of its own versions' coins:
    it is built anew and pays, once; the payee's own coin changes nothing."""
    _, second = plotnfts
    pay_to = random_puzzle_hash()
    await pool.add_farmer(second, pay_to)
    await pool.confirm_partials(world, (second, 1))
    await world.farm_blocks(1, world.pool_target_puzzle_hash)  # the operator's own coins, next to the reward
    claimed = await win_and_claim(pool, world, second)
    await pool.peak()
    assert await pool.payouts.distribute(pool.ctx) is not None
    round_id = await pool.payouts.record_round(pool.ctx, PayoutStats())
    assert round_id is not None
    (batch,) = await pool.ctx.store.batches(round_id)
    assert batch.id is not None
    (payment,) = [p for p in await pool.ctx.store.payments(round_id=round_id) if p.launcher_id is not None]
    coins = sorted([c.coin for c in await pool.ctx.wallet.spendable_coins()], key=lambda c: -c.amount)
    largest, other = coins[0], next(c for c in coins[1:] if c.amount > 1_000_000)
    first = await pool.ctx.wallet.sign_payment(
        await batch_additions(pool.ctx, batch), batch.fee, coins=[largest, other]
    )
    await pool.ctx.store.mark_batch_submitted(
        batch.id, first.tx_id, bytes(first.spend_bundle), pool.ctx.now(), pool.status.peak_height, coins=first.removals
    )  # ... and a crash before the push
    elsewhere = await pool.ctx.wallet.sign_payment([(world.pool_target_puzzle_hash, 1)], 0, coins=[other])
    assert (await pool.ctx.node.push(elsewhere.spend_bundle)).accepted
    await world.send_from_farmer_wallet(pay_to, payment.amount)  # the payee pays itself, in the same block
    await world.farm_blocks(1 + THRESHOLD)  # both land; the spend elsewhere is buried: the version is dead
    assert [c.coin.amount for c in await pool.coins_at(pay_to)] == [payment.amount]

    progress = await pool.run_payouts()
    assert progress.confirmed == [] and progress.rebuilt == [batch.id]
    await settle_round(pool, world, round_id)
    assert sorted(c.coin.amount for c in await pool.coins_at(pay_to)) == [payment.amount] * 2  # its own, and ours
    assert payment.amount == claimed - claimed // 100
    await pool.stop()


async def test_a_batch_whose_only_coin_vanished_in_a_reorg_waits_for_it_however_long(
    world: World, plotnfts: list[PlotNFTInfo], pool: Pool
) -> None:
    """A reorg takes away the block that made the only coin a pushed batch spends, and the coin stays gone past the
    confirmation threshold. Another version built from other coins could not conflict with the first, which other
    nodes may still hold and which lands as soon as the coin comes back: the batch waits, and when the coin returns
    the one version there is lands, once."""
    _, second = plotnfts
    pay_to = random_puzzle_hash()
    await pool.add_farmer(second, pay_to)
    await pool.confirm_partials(world, (second, 1))
    await world.farm_blocks(1, world.pool_target_puzzle_hash)  # the operator's own coins, next to the reward
    claimed = await win_and_claim(pool, world, second)
    await pool.peak()
    assert await pool.payouts.distribute(pool.ctx) is not None
    round_id = await pool.payouts.record_round(pool.ctx, PayoutStats())
    assert round_id is not None
    (batch,) = await pool.ctx.store.batches(round_id)
    assert batch.id is not None
    additions = await batch_additions(pool.ctx, batch)
    needed = sum(amount for _, amount in additions) + batch.fee
    # The wallet makes itself a coin of exactly what the batch needs: it exists only from the next block on.
    largest = max((c.coin for c in await pool.ctx.wallet.spendable_coins()), key=lambda c: c.amount)
    self_send = await pool.ctx.wallet.sign_payment([(world.pool_target_puzzle_hash, needed)], 0, coins=[largest])
    assert (await pool.ctx.node.push(self_send.spend_bundle)).accepted
    made_at = await world.farm_blocks(1)
    (fresh,) = [c for c in self_send.spend_bundle.additions() if c.amount == needed]
    first = await pool.ctx.wallet.sign_payment(additions, batch.fee, coins=[fresh])
    await pool.ctx.store.mark_batch_submitted(
        batch.id, first.tx_id, bytes(first.spend_bundle), pool.ctx.now(), made_at, coins=first.removals
    )
    assert (await pool.ctx.node.push(first.spend_bundle)).accepted  # pushed: other nodes may keep it for days
    await world.reorg(fork_height=made_at - 1, new_peak_height=made_at + 1)
    assert await pool.ctx.node.coin_record(fresh.name()) is None

    await world.farm_blocks(THRESHOLD + 1)  # gone for longer than the threshold
    for _ in range(2):
        waiting = await pool.run_payouts()
        assert (waiting.rebuilt, waiting.bumped, waiting.confirmed) == ([], [], [])
    assert [v.tx_id for v in await pool.ctx.store.batch_versions(batch.id)] == [first.tx_id]  # no second version
    # The coin comes back (the transaction that made it lands anew): the batch's one version goes out and lands.
    world.simulator.full_node.mempool_manager.remove_seen(self_send.spend_bundle.name())
    assert (await pool.ctx.node.push(self_send.spend_bundle)).accepted
    await world.farm_blocks(1)
    assert await pool.ctx.node.coin_record(fresh.name()) is not None
    progress = await pool.run_payouts()
    assert progress.repushed == [batch.id] and progress.rebuilt == []
    await settle_round(pool, world, round_id)
    # The chain: one payment, made by the one version.
    assert [c.coin.amount for c in await pool.coins_at(pay_to)] == [claimed - claimed // 100]
    assert await pool.ctx.node.coin_record(first.spend_bundle.additions()[0].name()) is not None
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
    pool.advance(pool.ctx.config.partials.confirmation_delay + 1)
    await pool.peak()
    await pool.partials.run_once(pool.ctx)
    partial = await pool.ctx.store.get_partial(partial_id)
    assert partial is not None and partial.status == PartialStatus.REJECTED
    assert partial.reject_reason == REASON_NOT_MEMBER
    assert (await pool.ctx.store.get_farmer(leaving.launcher_id)).points == 0  # type: ignore[union-attr]
