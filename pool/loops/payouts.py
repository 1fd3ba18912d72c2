"""Shares out confirmed reward money and pays farmers, from the ledger and never from the wallet's balance.

Every payout interval:

1. **distribute**: the undistributed money of confirmed claims (once at least ``payouts.min_distribution``) goes to
   the pool's fee share and to farmers' owed balances, taking their points, in ONE store transaction.
2. **record a round**: every farmer owed at least ``min_payment`` is paid its owed balance; the pool's fee share pays
   the blockchain fees and, beyond ``fee_reserve``, the fee address. The round, its payments and batches are
   recorded and the balances taken in ONE transaction. Before that, the wallet must hold what the ledger says it
   holds; if it holds less (coins spent outside the pool) the round waits and the log says so every time.
3. per PENDING batch: pick coins (largest first, never one held by a transaction in flight) -> sign (nothing sent)
   -> ``mark_batch_submitted`` with the signed spend bundle -> push. A crash after recording leaves a SUBMITTED batch
   whose very same transaction is pushed again later.
4. a SUBMITTED batch is CONFIRMED once its payment is buried ``confirmation_security_threshold`` deep, with the fee the
   landed version really paid. A new version of a batch always spends every coin of the old one that still exists,
   so two versions conflict and at most one can ever land: one whose coins were spent elsewhere is built anew around
   what is left of them (one whose coins vanished in a reorg, or are all gone, only once
   ``confirmation_security_threshold`` blocks have passed: the coins may come back); one still unconfirmed
   ``fee_bump_after_blocks`` after sending is replaced by one spending the same coins with ``fee_bump`` more fee
   (from the pool's share).

No new round starts while one is open, so the same money is never paid twice.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field

from pool.chia_adapter import Coin, CoinRecord, SpendBundle, bytes32
from pool.context import PoolContext
from pool.loops.status import ChainStatus
from pool.payouts.coins import NotEnoughCoins, select_coins
from pool.payouts.split import FarmerShare, Payable, merged_additions, plan_distribution, plan_payments
from pool.store.abstract import InsufficientFunds, RoundAlreadyOpen
from pool.store.models import (
    BatchStatus,
    ClaimStatus,
    Distribution,
    DistributionShare,
    Payment,
    PaymentBatch,
    PayoutRound,
)

log = logging.getLogger(__name__)


@dataclass
class PayoutStats:
    round_id: int | None = None  # the round worked on (new or open)
    created: bool = False
    distribution_id: int | None = None  # a distribution made this iteration
    shortfall: int = 0  # mojos the wallet lacks against the ledger (the round waited)
    signed: list[int] = field(default_factory=list)  # batch ids signed and pushed
    repushed: list[int] = field(default_factory=list)
    confirmed: list[int] = field(default_factory=list)
    reset: list[int] = field(default_factory=list)
    bumped: list[int] = field(default_factory=list)


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
            stats.distribution_id = await self.distribute(ctx)
            round_id = await self.record_round(ctx, stats)
            if round_id is None:
                return stats
            stats.created = True
            current = await ctx.store.get_round(round_id)
            assert current is not None
        await self.progress_round(ctx, current, stats)
        return stats

    async def round_due(self, ctx: PoolContext) -> bool:
        latest = [r.created_at for r in await ctx.store.rounds(limit=1)]
        latest += [d.created_at for d in await ctx.store.distributions(limit=1)]
        return not latest or ctx.now() - max(latest) >= ctx.config.payouts.interval

    # -- step 1: distribute -----------------------------------------------------------------------------------------
    async def distribute(self, ctx: PoolContext) -> int | None:
        """Share out the undistributed claim money; None when there is too little or nobody has points."""
        ledger = await ctx.store.ledger()
        if ledger.undistributed < ctx.config.payouts.min_distribution:
            return None
        plan = plan_distribution(ledger.undistributed, ctx.config.pool.fee, await farmer_shares(ctx))
        if plan is None:
            return None
        distribution = Distribution(
            created_at=ctx.now(),
            scheme=ctx.config.payouts.scheme,
            total=plan.total,
            pool_fee=plan.pool_fee,
            farmer_total=plan.farmer_total,
            remainder=plan.remainder,
        )
        shares = [DistributionShare(s.launcher_id, s.amount, s.points) for s in plan.shares]
        try:
            distribution_id = await ctx.store.distribute(distribution, shares)
        except InsufficientFunds as exc:  # a concurrent writer moved the money first: try again next time
            log.warning("distribution not made: %s", exc)
            return None
        log.info(
            "distribution %d: %d mojos, pool fee %d, %d to %d farmer(s), %d left undistributed (rounding)",
            distribution_id,
            plan.total,
            plan.pool_fee,
            plan.farmer_total,
            len(shares),
            plan.remainder,
        )
        return distribution_id

    # -- step 2: record ---------------------------------------------------------------------------------------------
    async def record_round(self, ctx: PoolContext, stats: PayoutStats) -> int | None:
        """Record a round paying the owed balances that are due; None when nobody is due or the wallet is short."""
        if await ctx.store.open_round() is not None:
            return None
        ledger = await ctx.store.ledger()
        if not ledger.balanced:  # never pay from books that do not add up; the operator must look
            log.error(
                "payout round refused: the ledger does not balance (claims %d, accounted %d): python -m pool ledger",
                ledger.confirmed_claims,
                ledger.accounted,
            )
            return None
        payouts = ctx.config.payouts
        farmers = await ctx.store.list_farmers()
        plan = plan_payments(
            [Payable(f.launcher_id, f.payout_puzzle_hash, f.owed) for f in farmers if f.owed > 0],
            min_payment=payouts.min_payment,
            pool_fee_share=ledger.pool_fee_share,
            fee_reserve=payouts.fee_reserve,
            blockchain_fee=payouts.blockchain_fee,
            max_additions=payouts.max_additions_per_transaction,
            fee_puzzle_hash=ctx.config.pool.fee_puzzle_hash,
        )
        if plan is None:
            return None
        held = await ctx.wallet.spendable_balance()
        if held < ledger.wallet_should_hold:
            stats.shortfall = ledger.wallet_should_hold - held
            log.warning(
                "payout round waits: the wallet can spend %d mojos but the ledger says it holds %d for farmers and "
                "the pool (short by %d; were coins spent outside the pool?)",
                held,
                ledger.wallet_should_hold,
                stats.shortfall,
            )
            return None
        payout_round = PayoutRound(
            created_at=ctx.now(),
            scheme=payouts.scheme,
            total=plan.total,
            pool_fee=plan.pool_fee,
            blockchain_fees=plan.blockchain_fees,
            farmer_total=plan.farmer_total,
        )
        payments = [Payment(p.puzzle_hash, p.amount, p.launcher_id, 0, p.batch_index) for p in plan.payments]
        try:
            round_id = await ctx.store.create_payout_round(payout_round, payments, plan.batch_fees)
        except (RoundAlreadyOpen, InsufficientFunds) as exc:
            log.warning("payout round not recorded: %s", exc)
            return None
        log.info(
            "payout round %d: %d mojos to %d farmer(s), pool fee %d, blockchain fees %d, %d batch(es)",
            round_id,
            plan.farmer_total,
            sum(1 for p in plan.payments if p.launcher_id is not None),
            plan.pool_fee,
            plan.blockchain_fees,
            len(plan.batch_fees),
        )
        return round_id

    # -- steps 3 and 4: send and confirm ----------------------------------------------------------------------------
    async def progress_round(self, ctx: PoolContext, payout_round: PayoutRound, stats: PayoutStats) -> None:
        assert payout_round.id is not None
        stats.round_id = payout_round.id
        for batch in await ctx.store.batches(payout_round.id):
            if batch.status == BatchStatus.SUBMITTED:
                await self.check_submitted(ctx, batch, stats)
        for batch in await ctx.store.batches(payout_round.id):
            if batch.status == BatchStatus.PENDING:
                if await self.send_batch(ctx, batch):
                    assert batch.id is not None
                    stats.signed.append(batch.id)

    async def send_batch(self, ctx: PoolContext, batch: PaymentBatch) -> bool:
        """Pick coins, sign, record, push. False when the wallet's free coins cannot cover it yet."""
        assert batch.id is not None
        additions = await batch_additions(ctx, batch)
        amount = sum(amount for _, amount in additions) + batch.fee
        try:
            coins = select_coins(await ctx.wallet.spendable_coins(), amount, held=await coins_in_flight(ctx))
        except NotEnoughCoins as exc:
            log.warning("payout batch %d (round %d) waits for coins: %s", batch.index, batch.round_id, exc)
            return False
        signed = await ctx.wallet.sign_payment(additions, batch.fee, coins=coins)
        # Recorded BEFORE the push: after a crash the same transaction is pushed again, never a second one.
        await ctx.store.mark_batch_submitted(
            batch.id, signed.tx_id, bytes(signed.spend_bundle), ctx.now(), self.status.peak_height
        )
        await self._push(ctx, batch, signed.spend_bundle, "pushed")
        return True

    async def _push(self, ctx: PoolContext, batch: PaymentBatch, bundle: SpendBundle, what: str) -> None:
        result = await ctx.node.push(bundle)
        if result.accepted:
            log.info("payout batch %d (round %d) %s as %s", batch.index, batch.round_id, what, bundle.name().hex())
        else:
            log.warning("payout batch %d (round %d) %s, refused: %s", batch.index, batch.round_id, what, result.error)

    async def check_submitted(self, ctx: PoolContext, batch: PaymentBatch, stats: PayoutStats) -> None:
        assert batch.id is not None and batch.spend_bundle is not None
        bundle = SpendBundle.from_bytes(batch.spend_bundle)
        landed = await landed_payment(ctx, batch, bundle)
        if landed is not None:
            # CONFIRMED is final (the batch is never sent again), so it waits until the payment is buried deep
            # enough that a reorg cannot take it back; until then a reorged-away payment is simply re-pushed.
            height = int(landed.confirmed_block_index)
            if self.status.peak_height - height >= ctx.config.chain.confirmation_security_threshold:
                # An older version made the payment from a coin this one does not spend: what it paid in fees is
                # not known from this version's coins, and the fee charged stays charged (a surplus, never a loss).
                made_by_this = landed.coin.parent_coin_info in {coin.name() for coin in bundle.removals()}
                fee_paid = await fee_paid_on_chain(ctx, bundle, height) if made_by_this else None
                await ctx.store.mark_batch_confirmed(batch.id, height, ctx.now(), fee_paid)
                stats.confirmed.append(batch.id)
            return
        unspent, vanished = await input_states(ctx, bundle)
        if len(unspent) < len(bundle.removals()):
            await self.replan(ctx, batch, bundle, unspent, vanished, stats)
            return
        if self._stuck(ctx, batch) and await self.bump_fee(ctx, batch, bundle):
            stats.bumped.append(batch.id)
            return
        if ctx.now() - batch.updated_at < self.repush_after or await ctx.node.in_mempool(bundle.name()):
            return
        await self._push(ctx, batch, bundle, "re-pushed")  # the SAME signed transaction: never re-signed
        stats.repushed.append(batch.id)

    def _stuck(self, ctx: PoolContext, batch: PaymentBatch) -> bool:
        if batch.submitted_height is None:
            return False
        return self.status.peak_height - batch.submitted_height >= ctx.config.payouts.fee_bump_after_blocks

    async def replan(
        self,
        ctx: PoolContext,
        batch: PaymentBatch,
        bundle: SpendBundle,
        unspent: list[Coin],
        vanished: list[Coin],
        stats: PayoutStats,
    ) -> None:
        """Some of the batch's coins were spent by something else or vanished in a reorg: its transaction cannot
        land as it is. The new one spends every old coin that still exists, so that the two conflict and at most
        one can ever land. When none is left, or a coin vanished (a reorg took away the block that made it; the
        chain that replaces it may make it again, and then the old transaction, still in other nodes' mempools, can
        land), it waits until the old coins are gone for good: a reorg deeper than
        ``confirmation_security_threshold`` is not expected."""
        assert batch.id is not None
        if await landed_payment(ctx, batch, bundle) is not None:
            return  # spent by our own transaction after all: the next iterations confirm it once buried
        waited = self.status.peak_height - (batch.submitted_height or 0)
        if (not unspent or vanished) and waited < ctx.config.chain.confirmation_security_threshold:
            log.info(
                "payout batch %d (round %d): %d of its coins vanished or were spent elsewhere; waiting %d more "
                "block(s) before building it anew",
                batch.index,
                batch.round_id,
                len(bundle.removals()) - len(unspent),
                ctx.config.chain.confirmation_security_threshold - waited,
            )
            return
        log.warning("payout batch %d (round %d) can no longer land: building it anew", batch.index, batch.round_id)
        if await self.rebuild(ctx, batch, batch.fee, required=unspent, held_by_self=bundle.removals()):
            stats.reset.append(batch.id)

    async def bump_fee(self, ctx: PoolContext, batch: PaymentBatch, bundle: SpendBundle) -> bool:
        """Replace a stuck batch's transaction by one spending the same coins (plus more if needed) with a higher fee
        from the pool's share. Both versions spend the same coins, so at most one of them can ever land."""
        fee = batch.fee + ctx.config.payouts.fee_bump
        ledger = await ctx.store.ledger()
        if ledger.pool_fee_share < fee - batch.fee:
            log.info(
                "payout batch %d (round %d) unconfirmed for %d blocks; the pool's fee share (%d) cannot pay a "
                "higher fee: still waiting",
                batch.index,
                batch.round_id,
                self.status.peak_height - (batch.submitted_height or 0),
                ledger.pool_fee_share,
            )
            return False
        return await self.rebuild(ctx, batch, fee, required=bundle.removals(), held_by_self=bundle.removals())

    async def rebuild(
        self, ctx: PoolContext, batch: PaymentBatch, fee: int, *, required: Sequence[Coin], held_by_self: list[Coin]
    ) -> bool:
        """Sign a new version of a SUBMITTED batch spending ``required`` plus whatever more it needs, record it in
        place of the old one (the fee increase charged to the pool's share), then push it."""
        assert batch.id is not None
        additions = await batch_additions(ctx, batch)
        held = await coins_in_flight(ctx) - {coin.name() for coin in held_by_self}
        try:
            coins = select_coins(
                await ctx.wallet.spendable_coins() + list(required),
                sum(amount for _, amount in additions) + fee,
                held=held,
                required=required,
            )
        except NotEnoughCoins as exc:
            log.warning("payout batch %d (round %d) waits for coins: %s", batch.index, batch.round_id, exc)
            return False
        signed = await ctx.wallet.sign_payment(additions, fee, coins=coins)
        try:
            await ctx.store.replace_batch_transaction(
                batch.id, signed.tx_id, bytes(signed.spend_bundle), fee, ctx.now(), self.status.peak_height
            )
        except InsufficientFunds as exc:
            log.warning("payout batch %d (round %d) not replaced: %s", batch.index, batch.round_id, exc)
            return False
        await self._push(ctx, batch, signed.spend_bundle, f"sent anew with fee {fee}")
        return True


async def batch_additions(ctx: PoolContext, batch: PaymentBatch) -> list[tuple[bytes32, int]]:
    payments = await ctx.store.payments(round_id=batch.round_id, batch_index=batch.index)
    return merged_additions([(p.puzzle_hash, p.amount) for p in payments])


async def coins_in_flight(ctx: PoolContext) -> set[bytes32]:
    """Coins spent by the pool's own transactions that may still land: the open round's submitted batches and the
    fee spends of claims in flight. No other transaction may pick them."""
    held: set[bytes32] = set()
    current = await ctx.store.open_round()
    if current is not None and current.id is not None:
        for batch in await ctx.store.batches(current.id):
            if batch.status == BatchStatus.SUBMITTED and batch.spend_bundle is not None:
                held.update(coin.name() for coin in SpendBundle.from_bytes(batch.spend_bundle).removals())
    for claim in await ctx.store.reward_claims(ClaimStatus.SUBMITTED):
        if claim.fee_spend_bundle is not None:
            held.update(coin.name() for coin in SpendBundle.from_bytes(claim.fee_spend_bundle).removals())
    return held


async def landed_payment(ctx: PoolContext, batch: PaymentBatch, bundle: SpendBundle) -> CoinRecord | None:
    """The on-chain coin of the batch's first payment, made by any version of its transaction, or None.

    A fee bump spends the same coins, so its payment is a child of one of the latest version's inputs: one look-up
    by parent ids finds it whichever version landed. A version rebuilt around what was left of an older one's coins
    no longer spends the older one's coins that were spent elsewhere or vanished; if a reorg brings those back and
    the older version lands, its payment's parent is not among the latest inputs, but it spent the inputs the two
    share in the very block that made the payment: found by the payment's puzzle hash, amount and that height."""
    additions = await batch_additions(ctx, batch)
    if not additions:
        raise ValueError("a payout transaction without outputs cannot be confirmed")
    puzzle_hash, amount = additions[0]
    removals = bundle.removals()
    children = await ctx.node.coin_records_by_parent_ids([c.name() for c in removals], include_spent=True)
    for record in children:
        if record.coin.puzzle_hash == puzzle_hash and record.coin.amount == amount:
            return record
    spent_at: set[int] = set()
    for coin in removals:
        input_record = await ctx.node.coin_record(coin.name())
        if input_record is not None and input_record.spent:
            spent_at.add(int(input_record.spent_block_index))
    if not spent_at:
        return None
    candidates = await ctx.node.coin_records_by_puzzle_hashes([puzzle_hash], True, start_height=min(spent_at))
    for record in candidates:
        if record.coin.amount != amount or int(record.confirmed_block_index) not in spent_at:
            continue
        parent = await ctx.node.coin_record(record.coin.parent_coin_info)
        if parent is not None and parent.spent and parent.spent_block_index == record.confirmed_block_index:
            return record
    return None


async def fee_paid_on_chain(ctx: PoolContext, bundle: SpendBundle, height: int) -> int:
    """What the landed transaction paid in fees: its inputs spent at ``height`` less the coins they created."""
    inputs: list[Coin] = []
    for coin in bundle.removals():
        record = await ctx.node.coin_record(coin.name())
        if record is not None and record.spent and int(record.spent_block_index) == height:
            inputs.append(coin)
    children = await ctx.node.coin_records_by_parent_ids([c.name() for c in inputs], include_spent=True)
    created = sum(r.coin.amount for r in children if int(r.confirmed_block_index) == height)
    return sum(c.amount for c in inputs) - created


async def input_states(ctx: PoolContext, bundle: SpendBundle) -> tuple[list[Coin], list[Coin]]:
    """The transaction's coins that still exist unspent (all of them, unless it landed or cannot land), and those
    the chain does not know (any more: taken away by a reorg)."""
    unspent: list[Coin] = []
    vanished: list[Coin] = []
    for coin in bundle.removals():
        record = await ctx.node.coin_record(coin.name())
        if record is None:
            vanished.append(coin)
        elif not record.spent:
            unspent.append(coin)
    return unspent, vanished


async def farmer_shares(ctx: PoolContext) -> list[FarmerShare]:
    """Who takes part in a distribution and with what weight, by the configured scheme."""
    farmers = await ctx.store.list_farmers()
    if ctx.config.payouts.scheme == "pplns":
        window = await ctx.store.confirmed_points_since(ctx.now() - ctx.config.payouts.pplns_window)
        return [
            FarmerShare(f.launcher_id, weight=window.get(f.launcher_id, 0), points=f.points)
            for f in farmers
            if window.get(f.launcher_id, 0) > 0
        ]
    return [FarmerShare(f.launcher_id, weight=f.points, points=f.points) for f in farmers]
