"""Pays farmers: records a payout round, then signs, records and pushes each batch, then confirms it on chain.

The order of effects is what makes a crash harmless:

1. ``record_round``: the round, its payments and its batches are recorded and the points consumed in ONE store
   transaction. Nothing has been signed yet: a crash here leaves a round whose batches are all PENDING.
2. per PENDING batch: sign (nothing sent) -> ``mark_batch_submitted`` with the signed spend bundle -> push. A crash
   after signing but before recording loses only an unsent signature; a crash after recording leaves a SUBMITTED
   batch whose very same spend bundle is pushed again later. A batch is never signed twice while its first
   transaction can still land.
3. a SUBMITTED batch is CONFIRMED once one of its additions is on chain. One that is neither on chain nor in the
   mempool after ``repush_after`` seconds is pushed again, unchanged; only when one of its coins was spent by
   something else (so it can never land) is it reset to PENDING and signed anew.

No new round starts while one is open, so the same funds are never split twice.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from pool.chia_adapter import SpendBundle, bytes32
from pool.context import PoolContext
from pool.loops.status import ChainStatus
from pool.payouts.split import FarmerShare, PayoutPlan, merged_additions, plan_payout
from pool.store.abstract import RoundAlreadyOpen
from pool.store.models import BatchStatus, Payment, PaymentBatch, PayoutRound

log = logging.getLogger(__name__)


@dataclass
class PayoutStats:
    round_id: int | None = None  # the round worked on (new or open)
    created: bool = False
    signed: list[int] = field(default_factory=list)  # batch ids signed and pushed
    repushed: list[int] = field(default_factory=list)
    confirmed: list[int] = field(default_factory=list)
    reset: list[int] = field(default_factory=list)


class PayoutLoop:
    name = "payouts"

    def __init__(self, status: ChainStatus, repush_after: int = 120) -> None:
        self.status = status
        self.repush_after = repush_after  # seconds a SUBMITTED batch may be missing from the mempool before a re-push

    def interval(self, ctx: PoolContext) -> float:
        # Runs as often as the confirmation loops so open rounds settle promptly; a new round starts only every
        # payouts.interval seconds (see round_due).
        return ctx.config.loops.confirm_interval

    async def run_once(self, ctx: PoolContext) -> PayoutStats:
        stats = PayoutStats()
        if not self.status.ready:
            return stats
        current = await ctx.store.open_round()
        if current is None:
            if not await self.round_due(ctx):
                return stats
            round_id = await self.record_round(ctx)
            if round_id is None:
                return stats
            stats.created = True
            current = await ctx.store.get_round(round_id)
            assert current is not None
        await self.progress_round(ctx, current, stats)
        return stats

    async def round_due(self, ctx: PoolContext) -> bool:
        latest = await ctx.store.rounds(limit=1)
        return not latest or ctx.now() - latest[0].created_at >= ctx.config.payouts.interval

    # -- step 1: record -------------------------------------------------------------------------------------------
    async def record_round(self, ctx: PoolContext) -> int | None:
        """Record a new round from the wallet's spendable balance; None when there is nothing to pay."""
        if await ctx.store.open_round() is not None:
            return None
        total = await ctx.wallet.spendable_balance()
        if total <= 0:
            return None
        payouts = ctx.config.payouts
        plan = plan_payout(
            total=total,
            fee=ctx.config.pool.fee,
            fee_puzzle_hash=ctx.config.pool.fee_puzzle_hash,
            farmers=await farmer_shares(ctx),
            blockchain_fee=payouts.blockchain_fee,
            max_additions=payouts.max_additions_per_transaction,
            min_payment=payouts.min_payment,
        )
        if plan is None:
            return None
        try:
            round_id = await ctx.store.create_payout_round(_round_of(ctx, plan), _payments_of(plan), plan.batch_fees)
        except RoundAlreadyOpen:
            return None
        log.info(
            "payout round %d: %d mojos, %d to farmers, pool fee %d, blockchain fees %d, remainder %d, %d batch(es)",
            round_id,
            plan.total,
            plan.farmer_total,
            plan.pool_fee,
            plan.blockchain_fees,
            plan.remainder,
            len(plan.batch_fees),
        )
        return round_id

    # -- steps 2 and 3: send and confirm ----------------------------------------------------------------------------
    async def progress_round(self, ctx: PoolContext, payout_round: PayoutRound, stats: PayoutStats) -> None:
        assert payout_round.id is not None
        stats.round_id = payout_round.id
        batches = await ctx.store.batches(payout_round.id)
        for batch in batches:
            if batch.status == BatchStatus.SUBMITTED:
                await self.check_submitted(ctx, batch, stats)
        # Coins held by transactions that may still land: the wallet must not spend them again.
        held: set[bytes32] = set()
        for batch in await ctx.store.batches(payout_round.id):
            if batch.status == BatchStatus.SUBMITTED and batch.spend_bundle is not None:
                held.update(coin.name() for coin in SpendBundle.from_bytes(batch.spend_bundle).removals())
        for batch in await ctx.store.batches(payout_round.id):
            if batch.status == BatchStatus.PENDING:
                held.update(await self.send_batch(ctx, batch, held))
                assert batch.id is not None
                stats.signed.append(batch.id)

    async def send_batch(self, ctx: PoolContext, batch: PaymentBatch, held: set[bytes32]) -> tuple[bytes32, ...]:
        """Sign, record, push. Returns the coins the new transaction spends."""
        assert batch.id is not None
        payments = await ctx.store.payments(round_id=batch.round_id, batch_index=batch.index)
        additions = merged_additions([(p.puzzle_hash, p.amount) for p in payments])
        signed = await ctx.wallet.sign_payment(additions, batch.fee, exclude_coin_ids=sorted(held))
        # Recorded BEFORE the push: after a crash the same transaction is pushed again, never a second one.
        await ctx.store.mark_batch_submitted(batch.id, signed.tx_id, bytes(signed.spend_bundle), ctx.now())
        result = await ctx.node.push(signed.spend_bundle)
        if result.accepted:
            log.info("payout batch %d (round %d) pushed as %s", batch.index, batch.round_id, signed.tx_id.hex())
        else:
            log.warning("payout batch %d (round %d) refused: %s", batch.index, batch.round_id, result.error)
        return signed.removals

    async def check_submitted(self, ctx: PoolContext, batch: PaymentBatch, stats: PayoutStats) -> None:
        assert batch.id is not None and batch.spend_bundle is not None
        bundle = SpendBundle.from_bytes(batch.spend_bundle)
        height = await confirmed_height(ctx, bundle)
        if height is not None:
            # CONFIRMED is final (the batch is never sent again), so it waits until the payment is buried deep
            # enough that a reorg cannot take it back; until then a reorged-away payment is simply re-pushed.
            if self.status.peak_height - height >= ctx.config.chain.confirmation_security_threshold:
                await ctx.store.mark_batch_confirmed(batch.id, height, ctx.now())
                stats.confirmed.append(batch.id)
            return
        if ctx.now() - batch.updated_at < self.repush_after or await ctx.node.in_mempool(bundle.name()):
            return
        if await removals_spent_elsewhere(ctx, bundle):
            # Re-check after seeing the spent coin: if it was our own transaction its additions exist by now.
            if await confirmed_height(ctx, bundle) is not None:
                return  # it was our own transaction after all: the next iteration confirms it once buried
            log.warning("payout batch %d (round %d) can never land: signing it anew", batch.index, batch.round_id)
            await ctx.store.reset_batch(batch.id, ctx.now())
            stats.reset.append(batch.id)
            return
        result = await ctx.node.push(bundle)  # the SAME signed transaction: never re-signed while it can land
        log.info("payout batch %d (round %d) re-pushed: %s", batch.index, batch.round_id, result.error or "accepted")
        stats.repushed.append(batch.id)


async def confirmed_height(ctx: PoolContext, bundle: SpendBundle) -> int | None:
    """Height at which the bundle's outputs were created, or None if they are not on chain.

    All outputs of a transaction appear together, so looking up one of them is enough."""
    additions = bundle.additions()
    if not additions:
        raise ValueError("a payout transaction without outputs cannot be confirmed")
    record = await ctx.node.coin_record(additions[0].name())
    if record is None or record.confirmed_block_index <= 0:
        return None
    return int(record.confirmed_block_index)


async def removals_spent_elsewhere(ctx: PoolContext, bundle: SpendBundle) -> bool:
    for coin in bundle.removals():
        record = await ctx.node.coin_record(coin.name())
        if record is not None and record.spent:
            return True
    return False


async def farmer_shares(ctx: PoolContext) -> list[FarmerShare]:
    """Who takes part in the round and with what weight, by the configured scheme."""
    farmers = await ctx.store.list_farmers()
    if ctx.config.payouts.scheme == "pplns":
        window = await ctx.store.confirmed_points_since(ctx.now() - ctx.config.payouts.pplns_window)
        return [
            FarmerShare(f.launcher_id, f.payout_puzzle_hash, weight=window.get(f.launcher_id, 0), points=f.points)
            for f in farmers
            if window.get(f.launcher_id, 0) > 0
        ]
    return [FarmerShare(f.launcher_id, f.payout_puzzle_hash, weight=f.points, points=f.points) for f in farmers]


def _round_of(ctx: PoolContext, plan: PayoutPlan) -> PayoutRound:
    return PayoutRound(
        created_at=ctx.now(),
        scheme=ctx.config.payouts.scheme,
        total=plan.total,
        pool_fee=plan.pool_fee,
        blockchain_fees=plan.blockchain_fees,
        farmer_total=plan.farmer_total,
        remainder=plan.remainder,
    )


def _payments_of(plan: PayoutPlan) -> list[Payment]:
    return [
        Payment(
            puzzle_hash=p.puzzle_hash,
            amount=p.amount,
            launcher_id=p.launcher_id,
            points=p.points,
            batch_index=p.batch_index,
        )
        for p in plan.payments
    ]
