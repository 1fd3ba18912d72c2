"""The ledger's acceptance tests on chia's simulator with the real wallet: the pool pays exactly what it claimed.

Money reaches a pool only through blocks won by members' pool plots, absorbed by the reward loop and buried; each test
has its own pool database on this module's own World (the operator's coins, dust and earlier tests' leftovers in the
pool wallet are never paid to farmers). Tests drive single loop iterations and move the pool's clock by hand.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from chia.consensus.condition_tools import conditions_dict_for_solution
from chia.full_node.mempool import MempoolRemoveReason
from chia.types.condition_opcodes import ConditionOpcode

from pool.chain.interface import PushResult
from pool.chia_adapter import (
    DEFAULT_TX_CONFIG,
    Addition,
    CreateSignedTransaction,
    SpendBundle,
    bytes32,
    calculate_pool_reward,
    uint32,
    uint64,
)
from pool.devnet.world import PlotNFTInfo, World
from pool.loops.payouts import PayoutStats, batch_additions
from pool.payouts.books import build_books, format_books
from pool.payouts.coins import select_coins
from pool.payouts.fees import absorb_cost, bounded
from pool.payouts.funding import FundingRefused, fund_fees
from pool.store.models import BatchStatus, ClaimStatus, LedgerKind, LedgerSummary
from tests.loops.loops_harness import (
    THRESHOLD,
    Clock,
    Pool,
    absorb,
    bury_claims,
    check_chain,
    random_puzzle_hash,
    settle_round,
    win,
    win_and_claim,
)

# A chain of its own (not the session's shared one): these tests check the pool wallet's balance to the mojo, which
# the other modules' pools and payments on a shared chain would change.
pytestmark = [pytest.mark.asyncio(loop_scope="module"), pytest.mark.slow]

XCH = 1_000_000_000_000
POOL_REWARD = 1_750_000_000_000  # the pool's 7/8 of a block on the simulator's early heights
MIN_DISTRIBUTION = 1_000_000_000  # payouts.min_distribution default
DUST = 1_000_000  # chia's wallet keeps track of every coin from this amount up (xch_spam_amount)


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def world(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[World]:
    async with World.create(work_dir=tmp_path_factory.mktemp("ledger-world")) as started:
        yield started


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def plotnfts(world: World) -> list[PlotNFTInfo]:
    first = await world.create_plotnft(pool_url="http://127.0.0.1:1", relative_lock_height=5)
    second = await world.create_plotnft(pool_url="http://127.0.0.1:1", relative_lock_height=5)
    await world.farm_blocks(THRESHOLD + 1)  # bury both launchers
    assert calculate_pool_reward(uint32(world.peak_height)) == POOL_REWARD
    return [first, second]


@pytest_asyncio.fixture(loop_scope="module")
async def pool_path(tmp_path: Path) -> Path:
    return tmp_path / "pool.sqlite"


async def start_pool(world: World, path: Path, **overrides: Any) -> Pool:
    return await Pool.start(world, path, Clock(), **overrides)


async def balanced(pool: Pool) -> LedgerSummary:
    ledger = await pool.ctx.store.ledger()
    assert ledger.balanced, ledger
    return ledger


async def paid_to(pool: Pool, puzzle_hash: bytes32) -> list[int]:
    return sorted(int(c.coin.amount) for c in await pool.coins_at(puzzle_hash))


def mempool_fee(world: World, bundle_name: bytes32) -> int:
    item = world.simulator.full_node.mempool_manager.mempool.get_item_by_id(bundle_name)
    assert item is not None, "not in the mempool"
    return int(item.fee)


async def test_operator_funds_untouched_and_farmers_paid_exactly_what_was_won(
    world: World, plotnfts: list[PlotNFTInfo], pool_path: Path
) -> None:
    """(a) 10 XCH of the operator's own in the pool wallet; two blocks won: farmers get 2 x 1.75 XCH x 0.99."""
    first, second = plotnfts
    pool = await start_pool(world, pool_path)
    try:
        pay_first, pay_second = random_puzzle_hash(), random_puzzle_hash()
        await pool.add_farmer(first, pay_first)
        await pool.add_farmer(second, pay_second)
        before = await pool.ctx.wallet.spendable_balance()
        await world.farm_blocks(5, world.pool_target_puzzle_hash)  # 5 x 2 XCH (pool and farmer reward)
        await world.farm_blocks(1)  # the last block's rewards are paid in the next block
        own = await pool.ctx.wallet.spendable_balance()
        assert own - before == 10 * XCH
        await balanced(pool)

        # Nothing won yet: however long it waits, the pool pays nothing, though the wallet is full.
        await pool.confirm_partials(world, (first, 3), (second, 1))
        pool.advance(pool.ctx.config.payouts.interval)
        idle = await pool.run_payouts()
        assert (idle.created, idle.distribution_id, idle.round_id) == (False, None, None)
        assert await pool.ctx.store.rounds() == [] and await pool.ctx.store.distributions() == []
        assert await pool.points() == {first.launcher_id: 3, second.launcher_id: 1}

        # Two blocks won by the members' pool plots, claimed and buried one after the other.
        assert await win_and_claim(pool, world, first) == POOL_REWARD
        assert (await balanced(pool)).undistributed == POOL_REWARD
        assert await win_and_claim(pool, world, second) == POOL_REWARD
        ledger = await balanced(pool)
        assert ledger.confirmed_claims == ledger.undistributed == 2 * POOL_REWARD

        payout = await pool.run_payouts()
        assert payout.created and payout.distribution_id is not None and len(payout.signed) == 1
        assert payout.round_id is not None
        ledger = await balanced(pool)
        assert ledger.undistributed == ledger.owed == 0 and ledger.farmer_payments_in_flight > 0
        done = await settle_round(pool, world, payout.round_id)

        farmers_share = 2 * POOL_REWARD * 99 // 100  # pool.fee 0.01; blockchain_fee 0
        assert farmers_share == 3_465_000_000_000
        assert await paid_to(pool, pay_first) == [farmers_share * 3 // 4]
        assert await paid_to(pool, pay_second) == [farmers_share // 4]
        assert done.farmer_total == farmers_share and done.blockchain_fees == 0
        assert done.pool_fee == 2 * POOL_REWARD // 100  # the pool's fee share, paid to the fee address
        fee_payments = [p for p in await pool.ctx.store.payments(round_id=payout.round_id) if p.launcher_id is None]
        assert [p.amount for p in fee_payments] == [done.pool_fee]
        assert await pool.points() == {first.launcher_id: 0, second.launcher_id: 0}

        ledger = await balanced(pool)
        assert ledger.farmer_payments == farmers_share and ledger.wallet_should_hold == 0
        held = await pool.ctx.wallet.spendable_balance()
        assert held >= 10 * XCH + ledger.wallet_should_hold
        assert held == own + ledger.wallet_should_hold  # the operator's coins, to the mojo
    finally:
        await pool.stop()


async def test_dust_sent_to_the_target_address_does_not_stop_payouts(
    world: World, plotnfts: list[PlotNFTInfo], pool_path: Path
) -> None:
    """(b) 1 000 dust coins at the target address (more than a transaction may spend), then a won block.

    Each just above chia's wallet spam threshold (``xch_spam_amount``, 1 000 000 mojos): the wallet ignores smaller
    coins beyond the first 200 at a puzzle hash, so these are the ones it really offers to spend."""
    first, _ = plotnfts
    pool = await start_pool(world, pool_path)
    try:
        pay_to = random_puzzle_hash()
        await pool.add_farmer(first, pay_to)
        # Distinct amounts: equal outputs of one spend would be one coin.
        dust_amounts = [DUST + index for index in range(1000)]
        response = await world.farmer_wallet_client.create_signed_transactions(
            CreateSignedTransaction(
                additions=[Addition(puzzle_hash=world.pool_target_puzzle_hash, amount=uint64(a)) for a in dust_amounts],
                wallet_id=uint32(1),
                fee=uint64(0),
                push=False,
            ),
            DEFAULT_TX_CONFIG,
        )
        assert response.signed_tx.spend_bundle is not None
        dust = response.signed_tx.spend_bundle
        assert (await pool.ctx.node.push(SpendBundle(dust.coin_spends, dust.aggregated_signature))).accepted
        await world.farm_blocks(1)
        dust_ids = {coin.name() for coin in dust.additions() if coin.puzzle_hash == world.pool_target_puzzle_hash}
        spendable = {coin.coin.name() for coin in await pool.ctx.wallet.spendable_coins()}
        assert len(dust_ids) == 1000 and dust_ids <= spendable  # the pool wallet holds every dust coin

        await pool.confirm_partials(world, (first, 1))
        claimed = await win_and_claim(pool, world, first)
        payout = await pool.run_payouts()
        assert payout.created and len(payout.signed) == 1 and payout.round_id is not None
        (batch,) = await pool.ctx.store.batches(payout.round_id)
        spent = SpendBundle.from_bytes(batch.spend_bundle or b"").removals()
        assert not {coin.name() for coin in spent} & dust_ids  # the pool picks big coins, never the dust
        await settle_round(pool, world, payout.round_id)
        assert await paid_to(pool, pay_to) == [claimed - claimed // 100]  # the dust is nobody's earnings
        assert dust_ids <= {coin.coin.name() for coin in await pool.ctx.wallet.spendable_coins()}
        await balanced(pool)
    finally:
        await pool.stop()


async def test_no_round_and_no_points_taken_without_new_rewards(
    world: World, plotnfts: list[PlotNFTInfo], pool_path: Path
) -> None:
    """(c) After a payout, with only rounding left over and farmers holding new points, nothing happens. The payout
    is made of one transaction per addition (max_additions_per_transaction 1), each spending coins of its own and
    paying blockchain_fee from the pool's share: the farmers still get their exact shares."""
    first, second = plotnfts
    blockchain_fee = 1_000_000
    pool = await start_pool(
        world, pool_path, payouts={"max_additions_per_transaction": 1, "blockchain_fee": blockchain_fee}
    )
    try:
        pay_first, pay_second = random_puzzle_hash(), random_puzzle_hash()
        await pool.add_farmer(first, pay_first)
        await pool.add_farmer(second, pay_second)
        await pool.confirm_partials(world, (first, 12), (second, 1))  # 13 does not divide the share: a remainder
        await win_and_claim(pool, world, first)
        payout = await pool.run_payouts()
        assert payout.created and payout.round_id is not None
        assert len(payout.signed) == 3  # two farmers and the fee address
        spent = [
            {coin.name() for coin in SpendBundle.from_bytes(batch.spend_bundle or b"").removals()}
            for batch in await pool.ctx.store.batches(payout.round_id)
        ]
        assert all(spent) and len(set.union(*spent)) == sum(len(coins) for coins in spent)  # no coin twice
        done = await settle_round(pool, world, payout.round_id)
        farmers_share = POOL_REWARD - POOL_REWARD // 100
        assert await paid_to(pool, pay_first) == [farmers_share * 12 // 13]
        assert await paid_to(pool, pay_second) == [farmers_share // 13]
        assert done.blockchain_fees == 3 * blockchain_fee  # paid on chain, batch by batch
        assert [b.fee for b in await pool.ctx.store.batches(payout.round_id)] == [blockchain_fee] * 3
        assert done.pool_fee == POOL_REWARD // 100 - 3 * blockchain_fee
        ledger = await balanced(pool)
        assert 0 < ledger.undistributed < MIN_DISTRIBUTION and ledger.owed == 0

        await pool.confirm_partials(world, (first, 5), (second, 7))
        points = await pool.points()
        assert points == {first.launcher_id: 5, second.launcher_id: 7}
        for _ in range(2):
            pool.advance(pool.ctx.config.payouts.interval)
            again = await pool.run_payouts()
            assert (again.created, again.distribution_id, again.round_id) == (False, None, None)
        assert len(await pool.ctx.store.rounds()) == 1 and len(await pool.ctx.store.distributions()) == 1
        assert await pool.points() == points
        assert await pool.ctx.store.ledger() == ledger
    finally:
        await pool.stop()


@pytest.mark.parametrize("scheme", ["proportional", "pplns"])
async def test_small_farmer_is_paid_once_its_owed_balance_reaches_min_payment(
    world: World, plotnfts: list[PlotNFTInfo], pool_path: Path, scheme: str
) -> None:
    """(d) A 1 % farmer's share of one block is below min_payment: it is owed, never re-split, and paid with the
    second block's share. Under PPLNS its weight does not grow (no new partials), its owed balance does."""
    big, small = plotnfts
    farmers_share = POOL_REWARD * 99 // 100
    small_share = farmers_share // 100
    min_payment = 2 * small_share - 1  # reached by two shares, not by one
    # No blockchain fee (the node's estimate follows the fees earlier tests paid): the pool fee is paid out whole.
    pool = await start_pool(
        world, pool_path, payouts={"scheme": scheme, "min_payment": min_payment}, fees={"maximum": 0}
    )
    try:
        pay_big, pay_small = random_puzzle_hash(), random_puzzle_hash()
        await pool.add_farmer(big, pay_big)
        await pool.add_farmer(small, pay_small)
        await pool.confirm_partials(world, (big, 99), (small, 1))

        await win_and_claim(pool, world, big)
        first = await pool.run_payouts()
        assert first.created and first.round_id is not None
        await settle_round(pool, world, first.round_id)
        assert await paid_to(pool, pay_big) == [farmers_share - small_share]  # 99 %, not a mojo more
        assert await paid_to(pool, pay_small) == []
        owed = {f.launcher_id: f.owed for f in await pool.ctx.store.list_farmers()}
        assert owed == {big.launcher_id: 0, small.launcher_id: small_share}
        await balanced(pool)

        if scheme == "proportional":  # points were used up by the first distribution
            await pool.confirm_partials(world, (big, 99), (small, 1))
        pool.advance(pool.ctx.config.payouts.interval)
        await win_and_claim(pool, world, small)
        second = await pool.run_payouts()
        assert second.created and second.round_id is not None
        await settle_round(pool, world, second.round_id)
        assert await paid_to(pool, pay_big) == [farmers_share - small_share] * 2
        assert await paid_to(pool, pay_small) == [2 * small_share]  # its two shares, in one payment
        ledger = await balanced(pool)
        assert ledger.owed == 0 and ledger.farmer_payments == 2 * farmers_share
        fee_paid = sum(p.amount for p in await pool.ctx.store.payments() if p.launcher_id is None)
        assert fee_paid == 2 * POOL_REWARD // 100  # the pool fee, charged once per block won
    finally:
        await pool.stop()


async def test_claim_fee_comes_from_the_pool_share_and_never_stops_a_claim(
    world: World, plotnfts: list[PlotNFTInfo], pool_path: Path
) -> None:
    """(e) claim_fee > 0: with an empty pool share the absorb goes without a fee and lands; with a share it carries
    the fee, in a spend that asserts the absorb's singleton spend, and the ledger charges it to the share."""
    first, _ = plotnfts
    claim_fee = 1_000
    # The fee is claim_fee whatever the node estimates (it follows the fees earlier tests paid).
    pool = await start_pool(world, pool_path, rewards={"claim_fee": claim_fee}, fees={"maximum": claim_fee})
    try:
        await pool.add_farmer(first, random_puzzle_hash())
        await pool.confirm_partials(world, (first, 1))
        await win(world, pool, first)
        await absorb(pool, 1)
        (claim,) = await pool.ctx.store.reward_claims(ClaimStatus.SUBMITTED)
        assert claim.fee == 0 and claim.fee_spend_bundle is None and claim.spend_bundle_name is not None
        assert mempool_fee(world, claim.spend_bundle_name) == 0
        await bury_claims(world, pool, 1)
        assert (await balanced(pool)).blockchain_fees == 0

        assert await pool.payouts.distribute(pool.ctx) is not None  # the pool's fee share: 1 % of the reward
        share = (await balanced(pool)).pool_fee_share
        assert share == POOL_REWARD // 100
        held = await pool.ctx.wallet.spendable_balance()
        await win(world, pool, first)
        await absorb(pool, 1)
        (claim,) = await pool.ctx.store.reward_claims(ClaimStatus.SUBMITTED)
        assert claim.fee == claim_fee and claim.fee_spend_bundle is not None and claim.spend_bundle_name is not None
        assert mempool_fee(world, claim.spend_bundle_name) == claim_fee
        ledger = await balanced(pool)
        assert (ledger.pool_fee_share, ledger.blockchain_fees) == (share - claim_fee, claim_fee)
        # The fee spend cannot be mined without the absorb: it asserts the spend of the singleton coin.
        fee_spend = SpendBundle.from_bytes(claim.fee_spend_bundle)
        asserted = {
            bytes32(condition.vars[0])
            for spend in fee_spend.coin_spends
            for condition in conditions_dict_for_solution(spend.puzzle_reveal, spend.solution, 11_000_000_000).get(
                ConditionOpcode.ASSERT_CONCURRENT_SPEND, []
            )
        }
        mempool = world.simulator.full_node.mempool_manager.mempool
        absorb_item = mempool.get_item_by_id(claim.spend_bundle_name)
        assert absorb_item is not None
        absorb_removals = {coin.name() for coin in absorb_item.to_spend_bundle().removals()}
        fee_removals = {coin.name() for coin in fee_spend.removals()}
        assert len(asserted) == 1 and asserted <= absorb_removals - fee_removals
        await bury_claims(world, pool, 1)
        ledger = await balanced(pool)
        # One farmer: the first distribution left no rounding behind; the second reward waits to be shared out.
        assert ledger.blockchain_fees == claim_fee and ledger.undistributed == POOL_REWARD
        assert await pool.ctx.wallet.spendable_balance() == held + POOL_REWARD - claim_fee
    finally:
        await pool.stop()


async def test_operator_funds_the_fee_share_so_the_first_claim_carries_its_fee(
    world: World, plotnfts: list[PlotNFTInfo], pool_path: Path
) -> None:
    """Before any distribution the pool fee share is empty: the operator funds it from its own coins in the wallet
    (python -m pool ledger fund-fees), the first absorb pays the node's fee estimate from it, and the books say where
    the funding went. Only the wallet's coins beyond the ledger's money, and beyond rewards of unsettled claims, can
    be given."""
    first, _ = plotnfts
    claim_fee, maximum, funded = 2_000, 10**6, 10**7
    pool = await start_pool(
        world, pool_path, rewards={"claim_fee": claim_fee}, fees={"from_node": True, "maximum": maximum}
    )
    try:
        await pool.add_farmer(first, random_puzzle_hash())
        await pool.confirm_partials(world, (first, 1))
        await world.farm_blocks(1, world.pool_target_puzzle_hash)  # 2 XCH of the operator's own
        await world.farm_blocks(1)
        await pool.peak()
        spendable = await pool.ctx.wallet.spendable_balance()
        ledger = await balanced(pool)
        surplus = spendable - ledger.wallet_should_hold
        assert surplus >= funded

        # A reward absorbed into the wallet but not yet credited is not the operator's to give.
        await win(world, pool, first)
        await absorb(pool, 1)
        await world.farm_blocks(1)
        await pool.peak()
        in_wallet = await pool.ctx.wallet.spendable_balance()
        assert in_wallet == spendable + POOL_REWARD
        with pytest.raises(FundingRefused, match="claims not settled yet"):
            await fund_fees(pool.ctx.store, in_wallet, surplus + 1, "operator")
        await bury_claims(world, pool, 1)
        assert (await balanced(pool)).undistributed == POOL_REWARD

        funding = await fund_fees(pool.ctx.store, await pool.ctx.wallet.spendable_balance(), funded, "operator")
        assert funding.pool_fee_share == funded and funding.surplus_before == surplus
        ledger = await balanced(pool)
        assert (ledger.operator_funding, ledger.pool_fee_share, ledger.undistributed) == (funded, funded, POOL_REWARD)
        (entry,) = [e for e in await pool.ctx.store.ledger_entries() if e.kind is LedgerKind.FEE_FUNDING]
        assert entry.amount == funded and entry.reference == "operator"

        # No distribution yet, and the next absorb pays the node's estimate (at least claim_fee) from the share.
        held = await pool.ctx.wallet.spendable_balance()
        await win(world, pool, first)
        fees = pool.ctx.config.fees
        estimate = await pool.ctx.node.fee_estimate(absorb_cost(1), fees.target_seconds)
        fee = bounded(estimate, claim_fee, fees)
        await absorb(pool, 1)
        (claim,) = await pool.ctx.store.reward_claims(ClaimStatus.SUBMITTED)
        assert claim.fee == fee and claim.spend_bundle_name is not None
        assert mempool_fee(world, claim.spend_bundle_name) == fee
        await bury_claims(world, pool, 1)
        ledger = await balanced(pool)
        assert (ledger.pool_fee_share, ledger.blockchain_fees) == (funded - fee, fee)
        assert await pool.ctx.store.distributions() == []
        assert await pool.ctx.wallet.spendable_balance() == held + POOL_REWARD - fee
        books = format_books(await build_books(pool.ctx.store, held + POOL_REWARD - fee))
        assert "operator's fee funding" in books and "balanced" in books
    finally:
        await pool.stop()


async def test_stuck_batch_is_replaced_with_a_higher_fee_from_the_pool_share(
    world: World, plotnfts: list[PlotNFTInfo], pool_path: Path
) -> None:
    """A payment kept out of blocks for fee_bump_after_blocks is replaced (same coins, fee_bump more fee, from the
    pool's share); the replacement displaces it in the mempool, lands, and the farmer is paid once."""
    first, _ = plotnfts
    fee_reserve, bump_after = 100_000_000, 2
    pool = await start_pool(world, pool_path, payouts={"fee_reserve": fee_reserve, "fee_bump_after_blocks": bump_after})
    try:
        pay_to = random_puzzle_hash()
        await pool.add_farmer(first, pay_to)
        await pool.confirm_partials(world, (first, 1))
        await win_and_claim(pool, world, first)
        payout = await pool.run_payouts()
        assert payout.created and payout.round_id is not None
        (batch,) = await pool.ctx.store.batches(payout.round_id)
        assert batch.id is not None and batch.spend_bundle is not None
        original = SpendBundle.from_bytes(batch.spend_bundle)
        assert (await balanced(pool)).pool_fee_share == fee_reserve
        # The node's estimate (what earlier tests' fees taught it), far below one fee_bump.
        first_fee = batch.fee

        # Kept out of the blocks (as by a full mempool) for fee_bump_after_blocks blocks, then back in the mempool.
        manager = world.simulator.full_node.mempool_manager
        manager.mempool.remove_from_pool([original.name()], MempoolRemoveReason.EXPIRED)
        manager.remove_seen(original.name())
        await world.farm_blocks(bump_after)
        assert (await pool.ctx.node.push(original)).accepted
        assert await pool.ctx.node.in_mempool(original.name())

        bumped = await pool.run_payouts()
        assert bumped.bumped == [batch.id] and bumped.rebuilt == [] and bumped.repushed == []
        replaced = (await pool.ctx.store.batches(payout.round_id))[0]
        fee_bump = pool.ctx.config.payouts.fee_bump
        fee = first_fee + fee_bump
        assert replaced.status == BatchStatus.SUBMITTED and replaced.fee == fee
        replacement = SpendBundle.from_bytes(replaced.spend_bundle or b"")
        assert {c.name() for c in original.removals()} <= {c.name() for c in replacement.removals()}
        assert not await pool.ctx.node.in_mempool(original.name())  # displaced: only one can land
        assert mempool_fee(world, replacement.name()) == fee
        ledger = await balanced(pool)
        assert ledger.pool_fee_share == fee_reserve - fee_bump

        done = await settle_round(pool, world, payout.round_id)
        assert done.blockchain_fees == fee
        (confirmed,) = await pool.ctx.store.batches(payout.round_id)
        assert confirmed.fee == fee  # what the landed transaction paid
        assert len(await paid_to(pool, pay_to)) == 1
        ledger = await balanced(pool)
        assert (ledger.pool_fee_share, ledger.blockchain_fees) == (fee_reserve - fee_bump, fee)
    finally:
        await pool.stop()


async def test_a_replacement_that_lands_is_charged_even_when_the_first_version_had_no_change(
    world: World, plotnfts: list[PlotNFTInfo], pool_path: Path
) -> None:
    """The first version spends one coin of exactly what the batch pays (no change); its replacement, with a higher
    fee, spends one more coin and makes change, its payments made by the same first coin. When the replacement
    lands, every coin the first version would have made exists too: the batch is charged the replacement's fee,
    which is what left the wallet, to the mojo."""
    first, _ = plotnfts
    pool = await start_pool(world, pool_path, payouts={"fee_reserve": 100_000_000})
    try:
        await pool.add_farmer(first, random_puzzle_hash())
        await pool.confirm_partials(world, (first, 1))
        await win_and_claim(pool, world, first)
        await pool.peak()
        assert await pool.payouts.distribute(pool.ctx) is not None
        round_id = await pool.payouts.record_round(pool.ctx, PayoutStats())
        assert round_id is not None
        (batch,) = await pool.ctx.store.batches(round_id)
        assert batch.id is not None
        additions = await batch_additions(pool.ctx, batch)
        exact_amount = sum(amount for _, amount in additions) + batch.fee
        largest = max((c.coin for c in await pool.ctx.wallet.spendable_coins()), key=lambda c: c.amount)
        split = await pool.ctx.wallet.sign_payment([(world.pool_target_puzzle_hash, exact_amount)], 0, coins=[largest])
        assert (await pool.ctx.node.push(split.spend_bundle)).accepted
        await world.farm_blocks(THRESHOLD + 1)
        await pool.peak()
        (exact,) = [c for c in split.spend_bundle.additions() if c.amount == exact_amount]
        older = await pool.ctx.wallet.sign_payment(additions, batch.fee, coins=[exact])
        assert len(older.spend_bundle.additions()) == len(additions)  # no change
        await pool.ctx.store.mark_batch_submitted(
            batch.id, older.tx_id, bytes(older.spend_bundle), pool.ctx.now(), pool.status.peak_height
        )  # kept out of the blocks: never pushed
        # The replacement, from one more coin, its outputs made by the exact coin as the pool's replacements are.
        fee_bump = pool.ctx.config.payouts.fee_bump
        others = sorted((c.coin for c in await pool.ctx.wallet.spendable_coins()), key=lambda c: -c.amount)
        other = next(c for c in others if c.name() != exact.name() and c.amount > fee_bump)
        newer = await pool.ctx.wallet.sign_payment(additions, batch.fee + fee_bump, coins=[exact, other])
        older_coins = {c.name() for c in older.spend_bundle.additions()}
        assert older_coins < {c.name() for c in newer.spend_bundle.additions()}
        await pool.ctx.store.replace_batch_transaction(
            batch.id,
            newer.tx_id,
            bytes(newer.spend_bundle),
            batch.fee + fee_bump,
            pool.ctx.now(),
            pool.status.peak_height,
            replaces=older.tx_id,
        )
        held_before = await pool.ctx.wallet.spendable_balance()
        assert (await pool.ctx.node.push(newer.spend_bundle)).accepted
        await settle_round(pool, world, round_id)
        (confirmed,) = await pool.ctx.store.batches(round_id)
        assert confirmed.fee == batch.fee + fee_bump
        # What left the wallet is exactly the payments and the fee the books charged.
        left = held_before - await pool.ctx.wallet.spendable_balance()
        assert left == sum(amount for _, amount in additions) + confirmed.fee
    finally:
        await pool.stop()


async def claim_with_a_funded_fee(
    world: World, pool: Pool, plotnft: PlotNFTInfo, funding: int
) -> tuple[int, SpendBundle, int]:
    """The operator funds the pool fee share (no distribution yet), a block is won and absorbed with its fee (the
    node's estimate, at least rewards.claim_fee): the wallet's spendable balance before the reward, the absorb as the
    mempool holds it, and its fee."""
    await pool.add_farmer(plotnft, random_puzzle_hash())
    await pool.confirm_partials(world, (plotnft, 1))
    await world.farm_blocks(1, world.pool_target_puzzle_hash)  # the operator's own coins (paid in the next block)
    await world.farm_blocks(1)
    await fund_fees(pool.ctx.store, await pool.ctx.wallet.spendable_balance(), funding, "operator")
    held = await pool.ctx.wallet.spendable_balance()
    await win(world, pool, plotnft)
    await absorb(pool, 1)
    (claim,) = await pool.ctx.store.reward_claims(ClaimStatus.SUBMITTED)
    assert claim.spend_bundle_name is not None and claim.fee >= pool.ctx.config.rewards.claim_fee
    assert mempool_fee(world, claim.spend_bundle_name) == claim.fee
    item = world.simulator.full_node.mempool_manager.mempool.get_item_by_id(claim.spend_bundle_name)
    assert item is not None
    return held, item.to_spend_bundle(), claim.fee


async def keep_out_of_blocks(world: World, pool: Pool, bundle: SpendBundle, blocks: int) -> None:
    """Out of the blocks (as by a full mempool) for ``blocks`` blocks, then back in the mempool."""
    manager = world.simulator.full_node.mempool_manager
    manager.mempool.remove_from_pool([bundle.name()], MempoolRemoveReason.EXPIRED)
    manager.remove_seen(bundle.name())
    await world.farm_blocks(blocks)
    assert (await pool.ctx.node.push(bundle)).accepted
    await pool.peak()


def removals(bundle: SpendBundle) -> set[bytes32]:
    return {coin.name() for coin in bundle.removals()}


async def test_stuck_absorb_is_replaced_with_a_higher_fee_from_the_pool_share(
    world: World, plotnfts: list[PlotNFTInfo], pool_path: Path
) -> None:
    """An absorb kept out of blocks for rewards.fee_bump_after_blocks is sent anew: the same absorb spends, with a fee
    spend paying payouts.fee_bump more from the pool's share and spending every coin of the first one. The pool
    dies once the new version is recorded, before it is pushed: started again, it pushes that very version, which
    displaces the first in the mempool and lands. The reward is credited once, the claim charged the fee that landed,
    and the wallet holds what the books say, to the mojo."""
    first, _ = plotnfts
    claim_fee, bump_after, funding = 1_000, 2, 100_000_000
    pool = await start_pool(world, pool_path, rewards={"claim_fee": claim_fee, "fee_bump_after_blocks": bump_after})
    try:
        held, original, first_fee = await claim_with_a_funded_fee(world, pool, first, funding)
        await keep_out_of_blocks(world, pool, original, bump_after)

        async def lost_on_the_way(spend_bundle: SpendBundle) -> PushResult:  # the process dies before its push
            return PushResult(accepted=True, error=None)

        pool.ctx.node.push = lost_on_the_way  # type: ignore[method-assign]
        stats = await pool.rewards.run_once(pool.ctx)
        (name,) = stats.bumped
        fee = first_fee + pool.ctx.config.payouts.fee_bump  # the node's estimate is far below that
        (claim,) = await pool.ctx.store.reward_claims(ClaimStatus.SUBMITTED)
        assert (claim.spend_bundle_name, claim.fee, claim.fee_settled) == (name, fee, False)
        assert (await balanced(pool)).pool_fee_share == funding - fee  # charged when recorded
        assert mempool_fee(world, original.name()) == first_fee  # only the first version is out there

        pool = await pool.restart(world)
        again = await pool.rewards.run_once(pool.ctx)
        assert (again.repushed, again.bumped) == ([name], [])
        assert not await pool.ctx.node.in_mempool(original.name())  # displaced: only one can land
        assert mempool_fee(world, name) == fee
        replacement = world.simulator.full_node.mempool_manager.mempool.get_item_by_id(name)
        assert replacement is not None and removals(original) <= removals(replacement.to_spend_bundle())

        await bury_claims(world, pool, 1)
        (confirmed,) = await pool.ctx.store.reward_claims(ClaimStatus.CONFIRMED)
        assert (confirmed.fee, confirmed.fee_settled) == (fee, True)
        versions = await pool.ctx.store.claim_fee_versions(confirmed.coin_id)
        assert [(v.version, v.fee, v.settled) for v in versions] == [(1, first_fee, True), (2, fee, True)]
        ledger = await balanced(pool)
        assert (ledger.confirmed_claims, ledger.blockchain_fees, ledger.pool_fee_share) == (
            POOL_REWARD,
            fee,
            funding - fee,
        )
        assert await pool.ctx.wallet.spendable_balance() == held + POOL_REWARD - fee
        await check_chain(pool)
    finally:
        await pool.stop()


async def test_an_older_absorb_version_that_lands_is_charged_its_own_fee(
    world: World, plotnfts: list[PlotNFTInfo], pool_path: Path
) -> None:
    """A stuck absorb sent anew with a higher fee, but the first version is the one that lands (another node's
    mempool kept it): the claim is credited once and charged the first version's fee, the increase given back to the
    pool's share; the wallet holds what the books say, to the mojo."""
    first, _ = plotnfts
    claim_fee, bump_after, funding = 1_000, 2, 100_000_000
    pool = await start_pool(world, pool_path, rewards={"claim_fee": claim_fee, "fee_bump_after_blocks": bump_after})
    try:
        held, original, first_fee = await claim_with_a_funded_fee(world, pool, first, funding)
        await keep_out_of_blocks(world, pool, original, bump_after)
        (name,) = (await pool.rewards.run_once(pool.ctx)).bumped
        assert not await pool.ctx.node.in_mempool(original.name())
        fee = first_fee + pool.ctx.config.payouts.fee_bump  # the node's estimate is far below that
        assert (await balanced(pool)).pool_fee_share == funding - fee

        manager = world.simulator.full_node.mempool_manager
        manager.mempool.remove_from_pool([name], MempoolRemoveReason.EXPIRED)
        manager.remove_seen(original.name())
        assert (await pool.ctx.node.push(original)).accepted  # the first version, from elsewhere
        await bury_claims(world, pool, 1)
        (confirmed,) = await pool.ctx.store.reward_claims(ClaimStatus.CONFIRMED)
        assert (confirmed.fee, confirmed.fee_settled) == (first_fee, True)
        ledger = await balanced(pool)
        assert (ledger.confirmed_claims, ledger.blockchain_fees, ledger.pool_fee_share) == (
            POOL_REWARD,
            first_fee,
            funding - first_fee,
        )
        refund = [e for e in await pool.ctx.store.ledger_entries() if e.kind is LedgerKind.CLAIM_FEE_REFUND]
        assert [(e.amount, e.reference) for e in refund] == [(fee - first_fee, confirmed.coin_id.hex())]
        assert await pool.ctx.wallet.spendable_balance() == held + POOL_REWARD - first_fee
        assert await pool.ctx.store.reserved_coins() == {}
        await check_chain(pool)
    finally:
        await pool.stop()


async def test_round_waits_while_the_wallet_holds_less_than_the_ledger(
    world: World,
    plotnfts: list[PlotNFTInfo],
    pool_path: Path,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Coins spent outside the pool leave the wallet short of what the ledger says it holds: the round waits (and
    says so every time) without taking anyone's money, and without planning one (the owed balances are not read:
    at ten thousand farmers that is a tenth of a second every pass); once the wallet is refilled, the farmer is paid
    exactly."""
    first, _ = plotnfts
    pool = await start_pool(world, pool_path)
    try:
        pay_to = random_puzzle_hash()
        await pool.add_farmer(first, pay_to)
        await pool.confirm_partials(world, (first, 1))
        claimed = await win_and_claim(pool, world, first)
        should_hold = (await balanced(pool)).wallet_should_hold
        short = 1_000_000_000
        away = await pool.ctx.wallet.spendable_balance() - should_hold + short
        coins = select_coins([c.coin for c in await pool.ctx.wallet.spendable_coins()], away)
        spent = await pool.ctx.wallet.sign_payment([(random_puzzle_hash(), away)], 0, coins=coins)
        assert (await pool.ctx.node.push(spent.spend_bundle)).accepted
        await world.farm_blocks(1)
        assert await pool.ctx.wallet.spendable_balance() == should_hold - short

        owed_reads: list[int] = []
        read_owed = pool.ctx.store.owed_balances

        async def counted_owed_balances() -> Any:
            owed_reads.append(1)
            return await read_owed()

        monkeypatch.setattr(pool.ctx.store, "owed_balances", counted_owed_balances)
        pool.advance(pool.ctx.config.payouts.interval)
        for attempt in range(2):
            caplog.clear()
            with caplog.at_level(logging.WARNING, logger="pool.loops.payouts"):
                waiting = await pool.run_payouts()
            assert not waiting.created and waiting.round_id is None and waiting.shortfall == short
            assert any("payout round waits" in record.getMessage() for record in caplog.records)
            assert (waiting.distribution_id is not None) == (attempt == 0)  # the ledger's own step goes on
            pool.advance(pool.ctx.config.payouts.interval)
        assert await pool.ctx.store.rounds() == [] and await paid_to(pool, pay_to) == [] and owed_reads == []
        ledger = await balanced(pool)
        assert ledger.owed == claimed - claimed // 100 and ledger.farmer_payments == 0

        # The operator refills the wallet; the refill is paid in the next block, and payments spend only coins buried
        # deep enough that a reorg cannot take them back.
        await world.farm_blocks(1, world.pool_target_puzzle_hash)
        await world.farm_blocks(THRESHOLD + 1)
        paying = await pool.run_payouts()
        assert paying.created and paying.shortfall == 0 and paying.round_id is not None
        await settle_round(pool, world, paying.round_id)
        assert await paid_to(pool, pay_to) == [claimed - claimed // 100]
    finally:
        await pool.stop()
