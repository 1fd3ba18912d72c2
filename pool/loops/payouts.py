"""Shares out confirmed reward money and pays farmers, from the ledger and never from the wallet's balance.

Every payout interval:

1. **distribute**: the undistributed money of confirmed claims (once at least ``payouts.min_distribution``) goes to
   the pool's fee share and to farmers' owed balances, taking their points, in ONE store transaction.
2. **record a round**: every farmer owed at least ``min_payment`` is paid its owed balance; the pool's fee share pays
   the blockchain fees and, beyond ``fee_reserve``, the fee address. The round, its payments and batches are
   recorded and the balances taken in ONE transaction. Before that, the wallet must hold what the ledger says it
   holds; if it holds less (coins spent outside the pool) the round waits and the log says so every time.
3. per PENDING batch: pick coins (largest first, buried at least ``confirmation_security_threshold`` deep, never
   one the store reserves for another transaction in flight) -> sign (nothing sent) -> ``mark_batch_submitted`` with
   the signed spend bundle, reserving its coins -> push. A crash after recording leaves a SUBMITTED batch whose very
   same transaction is pushed again later.
4. a SUBMITTED batch is CONFIRMED once one of its versions is on chain, its payment buried
   ``confirmation_security_threshold`` deep, with the fee that version paid. A batch whose latest version can no
   longer land (a coin spent elsewhere or gone), or which is still unconfirmed ``fee_bump_after_blocks`` after sending
   (a higher fee, ``fee_bump``, from the pool's share), gets a new version that conflicts with every older version
   that may still land, or waits (pool/payouts/versions.py); the store records it only in place of the version it
   was built from, and keeps every version, so that whichever lands is found.

No new round starts while one is open, so the same money is never paid twice. Distributions (step 1) run every
``payouts.interval`` whether a round is open or not: they move money within the books only.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field

from pool.chain.status import ChainStatus
from pool.chia_adapter import Coin, CoinRecord, SpendBundle, bytes32
from pool.context import PoolContext
from pool.kill_points import kill_point
from pool.payouts.coins import NotEnoughCoins, buried_coins, select_coins
from pool.payouts.fees import additions_within, estimated_fee, payment_cost
from pool.payouts.on_chain import coin_states, fee_of, version_on_chain
from pool.payouts.split import FarmerShare, Payable, merged_additions, plan_distribution, plan_payments
from pool.payouts.versions import CoinState, Wait, can_land_as_is, coins_for_new_version
from pool.store.abstract import CoinReserved, InsufficientFunds, RoundAlreadyOpen, StaleTransaction
from pool.store.models import (
    BatchStatus,
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
    rebuilt: list[int] = field(default_factory=list)  # a new version, because the latest one could no longer land
    bumped: list[int] = field(default_factory=list)


class PayoutLoop:
    name = "payouts"

    def __init__(self, status: ChainStatus, repush_after: int | None = None) -> None:
        self.status = status
        # Seconds a SUBMITTED batch may be missing from the mempool before a re-push (None: payouts.repush_after).
        self.repush_after = repush_after

    def interval(self, ctx: PoolContext) -> float:
        # Runs as often as the confirmation loops so open rounds settle promptly; a new round starts only every
        # payouts.interval seconds (see round_due).
        return ctx.config.loops.confirm_interval

    async def run_once(self, ctx: PoolContext) -> PayoutStats:
        stats = PayoutStats()
        if not self.status.ready:
            return stats
        # Distributions go on while a round is open (a batch may wait for days in a fee storm): farmers' money
        # keeps moving to their owed balances and the pool fee share keeps growing, so it can pay the next bump.
        if await self.distribution_due(ctx):
            stats.distribution_id = await self.distribute(ctx)
        current = await ctx.store.open_round()
        if current is None:
            if not await self.round_due(ctx):
                return stats
            round_id = await self.record_round(ctx, stats)
            if round_id is None:
                return stats
            stats.created = True
            current = await ctx.store.get_round(round_id)
            assert current is not None
        await self.progress_round(ctx, current, stats)
        return stats

    async def round_due(self, ctx: PoolContext) -> bool:
        return self._interval_passed(ctx, [r.created_at for r in await ctx.store.rounds(limit=1)])

    async def distribution_due(self, ctx: PoolContext) -> bool:
        return self._interval_passed(ctx, [d.created_at for d in await ctx.store.distributions(limit=1)])

    @staticmethod
    def _interval_passed(ctx: PoolContext, latest: list[int]) -> bool:
        return not latest or ctx.now() - latest[0] >= ctx.config.payouts.interval

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
        # The wallet first: while it is short a round waits, and planning one (every owed balance read, at ten
        # thousand farmers a tenth of a second of the event loop) on every pass of the loop was wasted.
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
        payouts = ctx.config.payouts
        # While a round is due and nobody is owed enough yet, this runs every pass (5 s): reading every owed balance
        # and setting to find nobody took a tenth of a second at ten thousand farmers, the fee estimate a node call.
        if not await ctx.store.anyone_due(payouts.min_payment):
            return None
        # A farmer's own minimum payout (its page) holds its payment back until it is owed that much.
        minimums = {i: s.min_payout or 0 for i, s in (await ctx.store.all_farmer_settings()).items()}
        # The owed balances alone, from the index of those owed (no farmer record decoded: thousands of them would
        # hold the event loop for seconds).
        payable = [
            Payable(owed.launcher_id, owed.payout_puzzle_hash, owed.owed, minimums.get(owed.launcher_id, 0))
            for owed in await ctx.store.owed_balances()
        ]
        # A transaction the mempool takes: chia's mempool refuses one costing more than half a block.
        max_additions = min(
            payouts.max_additions_per_transaction, additions_within(ctx.constants.MAX_BLOCK_COST_CLVM // 2)
        )
        # One fee for every batch of the round: the estimate for a full one (a smaller batch pays a little more).
        largest_batch = min(max_additions, len(payable) + 1)  # + the fee address
        blockchain_fee = await estimated_fee(
            ctx.node, ctx.config.fees, payment_cost(largest_batch), least=payouts.blockchain_fee
        )
        plan = plan_payments(
            payable,
            min_payment=payouts.min_payment,
            pool_fee_share=ledger.pool_fee_share,
            fee_reserve=payouts.fee_reserve,
            blockchain_fee=blockchain_fee,
            max_additions=max_additions,
            fee_puzzle_hash=ctx.config.pool.fee_puzzle_hash,
        )
        if plan is None:
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
        held = await ctx.store.reserved_coins()
        try:
            coins = select_coins(await self._buried_wallet_coins(ctx), amount, held=held)
        except NotEnoughCoins as exc:
            log.warning("payout batch %d (round %d) waits for coins: %s", batch.index, batch.round_id, exc)
            return False
        signed = await ctx.wallet.sign_payment(additions, batch.fee, coins=coins)
        kill_point("batch-signed")
        # Recorded BEFORE the push: after a crash the same transaction is pushed again, never a second one.
        try:
            await ctx.store.mark_batch_submitted(
                batch.id,
                signed.tx_id,
                bytes(signed.spend_bundle),
                ctx.now(),
                self.status.peak_height,
                coins=signed.removals,
            )
        except CoinReserved as exc:  # a claim's fee took one of the coins meanwhile: pick again next time
            log.info("payout batch %d (round %d) not recorded: %s", batch.index, batch.round_id, exc)
            return False
        kill_point("batch-recorded")
        await self._push(ctx, batch, signed.spend_bundle, "pushed")
        return True

    async def _buried_wallet_coins(self, ctx: PoolContext) -> list[Coin]:
        """The wallet's coins old enough that no reorg the pool allows for can take them away: a transaction spending
        a coin that vanished could come back to life with it, after a replacement was built."""
        return buried_coins(
            await ctx.wallet.spendable_coins(),
            self.status.peak_height,
            ctx.config.chain.confirmation_security_threshold,
        )

    async def _push(self, ctx: PoolContext, batch: PaymentBatch, bundle: SpendBundle, what: str) -> None:
        result = await ctx.node.push(bundle)
        kill_point("batch-pushed")
        if result.accepted:
            log.info("payout batch %d (round %d) %s as %s", batch.index, batch.round_id, what, bundle.name().hex())
        else:
            log.warning("payout batch %d (round %d) %s, refused: %s", batch.index, batch.round_id, what, result.error)

    async def check_submitted(self, ctx: PoolContext, batch: PaymentBatch, stats: PayoutStats) -> None:
        assert batch.id is not None
        versions = [SpendBundle.from_bytes(v.spend_bundle) for v in await ctx.store.batch_versions(batch.id)]
        if not versions:
            raise ValueError(f"payout batch {batch.id} is submitted but has no transaction recorded")
        states = await coin_states(ctx.node, [coin for bundle in versions for coin in bundle.removals()])
        landed = await landed_version(ctx, batch, versions, states)
        if landed is not None:
            # CONFIRMED is final (the batch is never sent again), so it waits until the payment is buried deep
            # enough that a reorg cannot take it back; until then a reorged-away payment is simply re-pushed.
            height = int(landed.payment.confirmed_block_index)
            if self.status.peak_height - height >= ctx.config.chain.confirmation_security_threshold:
                await ctx.store.mark_batch_confirmed(batch.id, height, ctx.now(), fee_of(landed.bundle))
                stats.confirmed.append(batch.id)
            return
        latest = versions[-1]
        if not can_land_as_is(latest.removals(), states):
            if await self.rebuild(ctx, batch, versions, states, batch.fee, "can no longer land as it is"):
                stats.rebuilt.append(batch.id)
            return
        if self._stuck(ctx, batch) and await self.bump_fee(ctx, batch, versions, states):
            stats.bumped.append(batch.id)
            return
        repush_after = ctx.config.payouts.repush_after if self.repush_after is None else self.repush_after
        if ctx.now() - batch.updated_at < repush_after or await ctx.node.in_mempool(latest.name()):
            return
        await self._push(ctx, batch, latest, "re-pushed")  # the SAME signed transaction: never re-signed
        stats.repushed.append(batch.id)

    def _stuck(self, ctx: PoolContext, batch: PaymentBatch) -> bool:
        if batch.submitted_height is None:
            return False
        return self.status.peak_height - batch.submitted_height >= ctx.config.payouts.fee_bump_after_blocks

    async def bump_fee(
        self, ctx: PoolContext, batch: PaymentBatch, versions: list[SpendBundle], states: dict[bytes32, CoinState]
    ) -> bool:
        """Replace a stuck batch's transaction by one spending the same coins (plus more if needed) with a higher fee
        from the pool's share. Both versions spend the same coins, so at most one of them can ever land."""
        # At least chia's replacement increase (fee_bump), more if the mempool's estimate asks for more now.
        estimate = await estimated_fee(
            ctx.node, ctx.config.fees, payment_cost(len(await batch_additions(ctx, batch))), least=0
        )
        fee = max(batch.fee + ctx.config.payouts.fee_bump, estimate)
        if fee > ctx.config.fees.maximum:
            log.warning(
                "payout batch %d (round %d) unconfirmed; a higher fee (%d) would pass fees.maximum (%d): still waiting",
                batch.index,
                batch.round_id,
                fee,
                ctx.config.fees.maximum,
            )
            return False
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
        return await self.rebuild(ctx, batch, versions, states, fee, f"unconfirmed, sent anew with fee {fee}")

    async def rebuild(
        self,
        ctx: PoolContext,
        batch: PaymentBatch,
        versions: list[SpendBundle],
        states: dict[bytes32, CoinState],
        fee: int,
        why: str,
    ) -> bool:
        """Sign a new version of a SUBMITTED batch that conflicts with every older version that may still land (or
        wait, see pool/payouts/versions.py), record it in place of the latest one (compare-and-set: only if nobody
        replaced it meanwhile; a higher fee charged to the pool's share), then push it."""
        assert batch.id is not None
        plan = coins_for_new_version(
            [bundle.removals() for bundle in versions],
            states,
            self.status.peak_height,
            ctx.config.chain.confirmation_security_threshold,
        )
        if isinstance(plan, Wait):
            log.info("payout batch %d (round %d) %s; waiting: %s", batch.index, batch.round_id, why, plan.why)
            return False
        additions = await batch_additions(ctx, batch)
        own = batch_holder(batch.id)
        held = {coin_id for coin_id, holder in (await ctx.store.reserved_coins()).items() if holder != own}
        try:
            coins = select_coins(
                await self._buried_wallet_coins(ctx) + list(plan.coins),
                sum(amount for _, amount in additions) + fee,
                held=held,
                required=plan.coins,
            )
        except NotEnoughCoins as exc:
            log.warning("payout batch %d (round %d) waits for coins: %s", batch.index, batch.round_id, exc)
            return False
        signed = await ctx.wallet.sign_payment(additions, fee, coins=coins)
        kill_point("batch-signed")
        try:
            await ctx.store.replace_batch_transaction(
                batch.id,
                signed.tx_id,
                bytes(signed.spend_bundle),
                fee,
                ctx.now(),
                self.status.peak_height,
                replaces=versions[-1].name(),
                coins=signed.removals,
            )
        except (InsufficientFunds, CoinReserved, StaleTransaction) as exc:
            log.warning("payout batch %d (round %d) not replaced: %s", batch.index, batch.round_id, exc)
            return False
        kill_point("batch-replaced")
        log.warning("payout batch %d (round %d) %s: version %d", batch.index, batch.round_id, why, len(versions) + 1)
        await self._push(ctx, batch, signed.spend_bundle, f"sent anew with fee {fee}")
        return True


def batch_holder(batch_id: int) -> str:
    """How the store names a batch among the holders of reserved coins."""
    return f"batch {batch_id}"


async def batch_additions(ctx: PoolContext, batch: PaymentBatch) -> list[tuple[bytes32, int]]:
    payments = await ctx.store.payments(round_id=batch.round_id, batch_index=batch.index)
    return merged_additions([(p.puzzle_hash, p.amount) for p in payments])


@dataclass(frozen=True)
class Landed:
    bundle: SpendBundle  # the version that landed
    payment: CoinRecord  # its first payment, on chain


async def landed_version(
    ctx: PoolContext, batch: PaymentBatch, versions: Sequence[SpendBundle], states: dict[bytes32, CoinState]
) -> Landed | None:
    """The version of the batch's transaction that is on chain (pool/payouts/on_chain.py), with its first payment,
    or None: the batch is paid only by the children of its own versions' coins, never by some coin of the right
    amount at a payee's address (a payee could make that one itself). ``states``: every input of every version."""
    additions = await batch_additions(ctx, batch)
    if not additions:
        raise ValueError("a payout transaction without outputs cannot be confirmed")
    puzzle_hash, amount = additions[0]
    on_chain = await version_on_chain(ctx.node, versions, states)
    if on_chain is None:
        return None
    landed = versions[on_chain.index]
    for coin in landed.additions():
        if coin.puzzle_hash == puzzle_hash and coin.amount == amount:
            return Landed(landed, on_chain.created[coin.name()])
    raise ValueError(f"payout batch {batch.id}: the version on chain does not make its first payment")


async def farmer_shares(ctx: PoolContext) -> list[FarmerShare]:
    """Who takes part in a distribution and with what weight, by the configured scheme. The farmers' points alone
    (no record decoded: thousands of them would hold the event loop for seconds)."""
    points = await ctx.store.farmer_points()
    if ctx.config.payouts.scheme == "pplns":
        window = await ctx.store.confirmed_points_since(ctx.now() - ctx.config.payouts.pplns_window)
        return [
            FarmerShare(launcher_id, weight=window.get(launcher_id, 0), points=farmer_points)
            for launcher_id, farmer_points in points.items()
            if window.get(launcher_id, 0) > 0
        ]
    return [FarmerShare(launcher_id, weight=p, points=p) for launcher_id, p in points.items()]
