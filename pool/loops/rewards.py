"""Absorbs block rewards won by members' pool plots into the pool's target puzzle hash, and credits them only once the
chain shows the pool was paid.

A pool plot's 7/8 block reward is a coinbase coin at the farmer's p2_singleton puzzle hash; only the farmer's
singleton can move it to a pool, and while the singleton farms to this pool that move ("absorb") pays the pool's target
puzzle hash. Every claim is recorded in the store *before* it is pushed, so a crash never loses track of a claim, and a
coin is never claimed twice while an earlier claim of it is still in flight.

A claim is credited (CONFIRMED) only when the reward coin's spend is buried and its children show the payment at the
pool's target, tied to this very coin (pool/chain/reward_spends.py): a farmer can also spend the coin itself (its
delayed path) or absorb it into another pool after leaving, and such a claim is LOST, never credited. A claim the
network drops is marked FAILED and the coin is claimed again while it is unspent; a FAILED claim whose spend lands
after all is settled by the same check. A node that cannot answer (as opposed to one that says "not found") settles
nothing.

A claim's fee is paid by a separate wallet spend tied to the absorb's singleton spend; its coins stay reserved, and the
fee charged, until the chain shows it landed or can no longer land.

An absorb still in the mempool ``rewards.fee_bump_after_blocks`` after it was sent gets a new version: the same absorb
spends (rebuilt from the live singleton, checked to be the very ones sent) with a new fee spend that pays more, from the
pool's fee share, and spends every coin of the previous one (chia's mempool replaces a bundle only by one spending all
its coins, for at least 10 000 000 mojos more fee), so that of all the versions at most one lands. The new version is
recorded (compare-and-set on the one it replaces, its fee charged) before it is pushed; every earlier fee spend is kept,
and whichever lands is the fee charged. An absorb missing from the mempool (a crash between recording and pushing, a
node that dropped it) is pushed again, the very same bundle, until ``drop_after_blocks`` fails it.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field

from pool.chain.interface import AddressNotOwned, ChainUnavailable, SignedPayment
from pool.chain.ownership import ownership_message, signature_proves, signed_for_target
from pool.chain.reward_spends import RewardPaid, reward_fate
from pool.chain.singleton import KnownTip, SingletonNotFound, SingletonView, follow_singleton
from pool.chain.status import ChainStatus
from pool.chia_adapter import (
    Coin,
    CoinRecord,
    CoinSpend,
    G2Element,
    SpendBundle,
    asserted_concurrent_spends,
    bytes32,
    calculate_pool_reward,
    create_absorb_spend,
    forward_reward_spends,
    get_most_recent_singleton_coin_from_coin_spend,
    pool_parent_id,
    stored_pool_state,
    uint32,
    uint64,
)
from pool.context import PoolContext
from pool.kill_points import kill_point
from pool.payouts.coins import NotEnoughCoins, buried_coins, select_coins
from pool.payouts.fees import absorb_cost, estimated_fee
from pool.payouts.on_chain import coin_states, version_on_chain
from pool.payouts.versions import CoinState, Wait, coins_for_new_version
from pool.protocol.v2 import follow_v2
from pool.store.abstract import CoinReserved, InsufficientFunds, StaleTransaction
from pool.store.models import ClaimFeeVersion, ClaimStatus, FarmerRecord, RewardClaim, TargetProof, claim_holder

log = logging.getLogger(__name__)

FARMERS_PER_READ = 500  # farmers' singleton positions read at once (none decoded unless no longer a member)


@dataclass
class RewardStats:
    submitted: list[bytes32] = field(default_factory=list)  # reward coin ids pushed this iteration
    confirmed: int = 0
    lost: int = 0  # spent without paying the pool: never credited
    failed: int = 0
    skipped: int = 0
    fees_settled: int = 0
    bumped: list[bytes32] = field(default_factory=list)  # absorbs sent anew with a higher fee (their new names)
    repushed: list[bytes32] = field(default_factory=list)  # absorbs missing from the mempool, pushed again
    unavailable: int = 0  # claims or farmers left for the next iteration because the node could not answer
    waiting_for_proof: bool = False  # no absorb: the wallet has not proved it owns the target address


class RewardLoop:
    name = "rewards"

    def __init__(self, status: ChainStatus, drop_after_blocks: int = 6, max_coins_per_claim: int = 20) -> None:
        self.status = status
        # A SUBMITTED claim that is neither on chain nor in the mempool this many blocks after it was pushed was
        # dropped (or never pushed because of a crash): it is marked FAILED so the coin is claimed again.
        self.drop_after_blocks = drop_after_blocks
        self.max_coins_per_claim = max_coins_per_claim  # absorbs of one singleton chained in one spend bundle

    def interval(self, ctx: PoolContext) -> float:
        return self.status.after_node(ctx.config.rewards.collect_interval)

    async def run_once(self, ctx: PoolContext) -> RewardStats:
        stats = RewardStats()
        # Only the node is needed: a claim goes without its fee when the wallet is away.
        peak_height = self.status.need_node().height
        await self.settle_claims(ctx, peak_height, stats)
        await self.absorbs_in_flight(ctx, peak_height, stats)
        if await self.target_proven(ctx):
            await self.collect(ctx, peak_height, stats)
        else:
            stats.waiting_for_proof = True
        return stats

    async def target_proven(self, ctx: PoolContext) -> bool:
        """Whether the store holds a proof that the pool's wallet owns the target address; when it does not and the
        wallet answers, the proof is made now. Nothing is absorbed into an address the pool cannot spend from."""
        target = ctx.config.pool.target_puzzle_hash
        recorded = await ctx.store.target_proof(target)
        if recorded is not None and proof_holds(recorded):
            return True
        if not self.status.wallet_synced:
            return False
        try:
            proof = await prove_target_ownership(ctx, ctx.now())
        except AddressNotOwned as exc:
            log.error("no reward is absorbed: pool.target_address is not the pool wallet's: %s", exc)
            return False
        except ChainUnavailable as exc:
            log.info("absorbs wait for the wallet to prove it owns the target address: %s", exc)
            return False
        await ctx.store.record_target_proof(proof)
        log.info("the wallet (key %s) proved it owns the target address %s", proof.fingerprint, proof.address)
        return True

    # -- claims in flight ----------------------------------------------------------------------------------------
    async def settle_claims(self, ctx: PoolContext, peak_height: int, stats: RewardStats) -> None:
        """Every claim not yet settled moves on as far as the chain shows: SUBMITTED and FAILED claims whose coin's
        spend is buried become CONFIRMED (it paid the pool) or LOST (it did not); SUBMITTED claims clearly dropped
        become FAILED. Fees whose fate the chain shows are settled. A claim the node cannot answer for waits; the
        others go on."""
        unsettled = await ctx.store.reward_claims(ClaimStatus.SUBMITTED) + await ctx.store.reward_claims(
            ClaimStatus.FAILED
        )
        for claim in unsettled:
            try:
                await self._settle(ctx, claim, peak_height, stats)
            except ChainUnavailable as exc:
                log.info("reward claim of coin %s waits for the node: %s", claim.coin_id.hex(), exc)
                stats.unavailable += 1
        for claim in await ctx.store.reward_claims():
            if claim.fee_settled:
                continue
            try:
                await self._settle_fee(ctx, claim, peak_height, stats)
            except ChainUnavailable as exc:
                log.info("fee of the claim of coin %s waits for the node: %s", claim.coin_id.hex(), exc)
                stats.unavailable += 1

    async def _settle(self, ctx: PoolContext, claim: RewardClaim, peak_height: int, stats: RewardStats) -> None:
        threshold = ctx.config.chain.confirmation_security_threshold
        record = await ctx.node.coin_record(claim.coin_id)
        waited = peak_height - claim.submitted_height
        if record is None:
            # The node says there is no such coin: a reorg took away the block that made it. It may come back with
            # the chain that replaces it, so the claim gives up only after the threshold.
            if claim.status is ClaimStatus.SUBMITTED and waited >= max(threshold, self.drop_after_blocks):
                await self._fail(ctx, claim, "reward coin no longer on chain (reorg)", stats)
            return
        if not record.spent:
            if claim.status is ClaimStatus.SUBMITTED and waited >= self.drop_after_blocks:
                if claim.spend_bundle_name is None or not await ctx.node.in_mempool(claim.spend_bundle_name):
                    await self._fail(ctx, claim, "absorb neither on chain nor in the mempool", stats)
            return
        if peak_height - int(record.spent_block_index) < threshold:
            return  # spent, but not yet deep enough to be safe from a reorg
        fate = await reward_fate(
            ctx.node, record, ctx.config.pool.target_puzzle_hash, ctx.constants.MAX_BLOCK_COST_CLVM
        )
        if fate is None:
            return  # the chain moved under the look-ups: read again next time
        if isinstance(fate, RewardPaid):
            await ctx.store.update_reward_claim(
                claim.coin_id, ClaimStatus.CONFIRMED, confirmed_height=fate.spent_height
            )
            stats.confirmed += 1
            if claim.status is ClaimStatus.FAILED:
                log.info("reward claim of coin %s, marked failed, landed after all: credited", claim.coin_id.hex())
            return
        log.warning(
            "reward coin %s of %s did not pay the pool: %s; never credited",
            claim.coin_id.hex(),
            claim.launcher_id.hex(),
            fate.why,
        )
        await ctx.store.update_reward_claim(
            claim.coin_id, ClaimStatus.LOST, confirmed_height=fate.spent_height, error=fate.why
        )
        stats.lost += 1

    async def _fail(self, ctx: PoolContext, claim: RewardClaim, error: str, stats: RewardStats) -> None:
        log.warning("reward claim of coin %s failed: %s", claim.coin_id.hex(), error)
        await ctx.store.update_reward_claim(claim.coin_id, ClaimStatus.FAILED, error=error)
        stats.failed += 1

    async def _settle_fee(self, ctx: PoolContext, claim: RewardClaim, peak_height: int, stats: RewardStats) -> None:
        """The claim's fee spends (one per version of its absorb; at most one can land) as the chain shows them. One
        landed once the coins it creates are buried: its fee is the one charged, the rest given back. None can land
        any more once each has a coin it spends, or the singleton coin it must be mined with, spent without it and
        buried: the whole fee is given back. Until one of those, the fee stays charged and the coins reserved: a fee
        spend may still be mined (with our absorb, or with any other spend of that singleton coin, as anyone holding
        it may include it)."""
        threshold = ctx.config.chain.confirmation_security_threshold
        versions = [version for version in await ctx.store.claim_fee_versions(claim.coin_id) if not version.settled]
        if not versions:
            log.error("the fee of the claim of coin %s has no fee spend recorded: not settled", claim.coin_id.hex())
            return
        bundles = [SpendBundle.from_bytes(version.spend_bundle) for version in versions]
        states = await coin_states(ctx.node, [coin for bundle in bundles for coin in bundle.removals()])
        landed = await version_on_chain(ctx.node, bundles, states)
        if landed is not None:
            if peak_height - landed.height >= threshold:
                await ctx.store.settle_claim_fee(claim.coin_id, landed=True, fee_paid=versions[landed.index].fee)
                stats.fees_settled += 1
            return
        for bundle in bundles:
            if not await _can_no_longer_land(ctx, bundle, states, peak_height):
                return
        log.info("the fee spend of the claim of coin %s can no longer land: fee given back", claim.coin_id.hex())
        await ctx.store.settle_claim_fee(claim.coin_id, landed=False)
        stats.fees_settled += 1

    # -- absorbs in flight ---------------------------------------------------------------------------------------
    async def absorbs_in_flight(self, ctx: PoolContext, peak_height: int, stats: RewardStats) -> None:
        """Each absorb in flight (the SUBMITTED claims of one spend bundle): one still in the mempool
        ``fee_bump_after_blocks`` after it was sent gets a new version with a higher fee; one missing from the
        mempool is pushed again, the very same bundle, until ``drop_after_blocks`` (then ``settle_claims`` fails it).
        An absorb the node cannot answer for waits; the others go on."""
        absorbs: dict[bytes32, list[RewardClaim]] = defaultdict(list)
        for claim in await ctx.store.reward_claims(ClaimStatus.SUBMITTED):
            if claim.spend_bundle_name is not None:
                absorbs[claim.spend_bundle_name].append(claim)
        for name, claims in absorbs.items():
            try:
                waited = peak_height - max(claim.submitted_height for claim in claims)
                if await ctx.node.in_mempool(name):
                    if waited >= ctx.config.rewards.fee_bump_after_blocks:
                        await self.bump_fee(ctx, name, claims, peak_height, waited, stats)
                elif waited < self.drop_after_blocks:
                    await self._push_again(ctx, name, claims, peak_height, stats)
            except ChainUnavailable as exc:
                log.info("absorb %s waits for the node or the wallet: %s", name.hex(), exc)
                stats.unavailable += 1
            except Exception:  # an odd absorb must not keep the others, or new claims, from going on
                log.exception("absorb %s: not sent anew", name.hex())

    async def _push_again(
        self, ctx: PoolContext, name: bytes32, claims: Sequence[RewardClaim], peak_height: int, stats: RewardStats
    ) -> None:
        """The absorb as recorded, pushed again: after a crash between recording a version and pushing it, or when
        the node dropped it. Only the very bundle recorded (rebuilt, and checked by its name)."""
        pending = await self.pending_absorb(ctx, name, claims, peak_height)
        if pending is None:
            return
        result = await ctx.node.push(pending.bundle)
        if result.accepted:
            log.info("absorb %s was not in the mempool: pushed again", name.hex())
            stats.repushed.append(name)
        else:
            log.info("absorb %s was not in the mempool; pushed again, refused: %s", name.hex(), result.error)

    async def pending_absorb(
        self, ctx: PoolContext, name: bytes32, claims: Sequence[RewardClaim], peak_height: int
    ) -> PendingAbsorb | None:
        """The absorb ``name`` as it was sent, rebuilt: its absorb spends from the live singleton (unchanged while
        the absorb waits), with the fee spend it was sent with, if any. None (and why, in the log) when the chain
        moved (a reward coin spent: ``settle_claims`` follows it) or the rebuilt bundle is not the one recorded."""
        carriers = [claim for claim in claims if not claim.fee_settled]
        if len(carriers) > 1:
            log.warning(
                "absorb %s: %d of its claims carry a fee that may still land: not sent anew", name.hex(), len(carriers)
            )
            return None
        carrier = carriers[0] if carriers else None
        versions: list[ClaimFeeVersion] = []
        if carrier is not None:
            versions = [v for v in await ctx.store.claim_fee_versions(carrier.coin_id) if not v.settled]
            if not versions:
                log.error("absorb %s: its fee has no fee spend recorded: not sent anew", name.hex())
                return None
        records = []
        for claim in claims:
            record = await ctx.node.coin_record(claim.coin_id)
            if record is None or record.spent:
                return None
            records.append(record)
        farmer = await ctx.store.get_farmer(claims[0].launcher_id)
        if farmer is None:
            return None
        try:
            absorb, singleton_coin_id = await claim_spends(ctx, farmer, sorted(records, key=absorb_order), peak_height)
        except (ValueError, SingletonNotFound) as exc:
            log.info("absorb %s cannot be built again (%s): not sent anew", name.hex(), exc)
            return None
        sent = [absorb]
        if versions:
            sent.append(SpendBundle.aggregate([absorb, SpendBundle.from_bytes(versions[-1].spend_bundle)]))
        bundle = next((candidate for candidate in sent if candidate.name() == name), None)
        if bundle is None:
            log.warning(
                "absorb %s: the absorb built from the live singleton is not the one sent: not sent anew", name.hex()
            )
            return None
        return PendingAbsorb(carrier, versions, absorb, bundle, singleton_coin_id)

    async def bump_fee(
        self,
        ctx: PoolContext,
        name: bytes32,
        claims: Sequence[RewardClaim],
        peak_height: int,
        waited: int,
        stats: RewardStats,
    ) -> None:
        """A new version of the stuck absorb ``name``: its very absorb spends and a fee spend paying at least
        ``payouts.fee_bump`` more (chia's least replacement increase), or the node's estimate of the moment if that is
        higher, never beyond ``fees.maximum``, the increase from the pool's fee share; it spends every coin of the
        fee spends that may still land (chia replaces a bundle only by one spending all its coins), and more if
        needed. Recorded before it is pushed; waits (and logs) when the share, the coins or the wallet fall short."""
        if not self.status.wallet_synced:
            log.info("absorb %s unconfirmed for %d blocks: a higher fee waits for the wallet", name.hex(), waited)
            return
        pending = await self.pending_absorb(ctx, name, claims, peak_height)
        if pending is None:
            return
        carrier = pending.carrier or next((claim for claim in claims if claim.fee_spend_bundle is None), None)
        if carrier is None:
            log.warning("absorb %s: none of its claims can carry a new fee spend: not sent anew", name.hex())
            return
        fees = ctx.config.fees
        estimate = await estimated_fee(ctx.node, fees, absorb_cost(len(claims)), least=0)
        fee = max(carrier.fee + ctx.config.payouts.fee_bump, estimate)
        if fee > fees.maximum:
            log.warning(
                "absorb %s unconfirmed for %d blocks; a higher fee (%d) would pass fees.maximum (%d): still waiting",
                name.hex(),
                waited,
                fee,
                fees.maximum,
            )
            return
        share = (await ctx.store.ledger()).pool_fee_share
        if share < fee - carrier.fee:
            log.warning(
                "absorb %s unconfirmed for %d blocks; the pool's fee share (%d) cannot pay a fee of %d (%d more): "
                "still waiting (python -m pool ledger fund-fees)",
                name.hex(),
                waited,
                share,
                fee,
                fee - carrier.fee,
            )
            return
        threshold = ctx.config.chain.confirmation_security_threshold
        earlier = [SpendBundle.from_bytes(version.spend_bundle).removals() for version in pending.versions]
        states = await coin_states(ctx.node, [coin for coins in earlier for coin in coins])
        plan = coins_for_new_version(earlier, states, peak_height, threshold)
        if isinstance(plan, Wait):
            log.info("absorb %s unconfirmed for %d blocks; not sent anew yet: %s", name.hex(), waited, plan.why)
            return
        own = claim_holder(carrier.coin_id)
        held = {coin_id for coin_id, holder in (await ctx.store.reserved_coins()).items() if holder != own}
        try:
            spendable = buried_coins(await ctx.wallet.spendable_coins(), peak_height, threshold)
            coins = select_coins(spendable + list(plan.coins), fee, held=held, required=plan.coins)
        except NotEnoughCoins as exc:
            log.warning(
                "absorb %s unconfirmed for %d blocks; a higher fee waits for coins: %s", name.hex(), waited, exc
            )
            return
        fee_spend = await ctx.wallet.sign_payment(
            [(ctx.config.pool.target_puzzle_hash, 0)],
            fee,
            coins=coins,
            assert_concurrent_spend=pending.singleton_coin_id,
        )
        bundle = SpendBundle.aggregate([pending.absorb, fee_spend.spend_bundle])
        try:
            await ctx.store.replace_claim_fee(
                carrier.coin_id,
                bytes(fee_spend.spend_bundle),
                fee,
                bundle.name(),
                ctx.now(),
                peak_height,
                replaces=name,
                coins=fee_spend.removals,
            )
        except (InsufficientFunds, CoinReserved, StaleTransaction) as exc:
            log.warning("absorb %s not sent anew: %s", name.hex(), exc)
            return
        result = await ctx.node.push(bundle)
        if not result.accepted:
            log.warning(
                "absorb %s sent anew as %s with fee %d, refused: %s", name.hex(), bundle.name().hex(), fee, result.error
            )
            return
        log.warning(
            "absorb %s unconfirmed for %d blocks: sent anew as %s with fee %d (was %d)",
            name.hex(),
            waited,
            bundle.name().hex(),
            fee,
            carrier.fee,
        )
        stats.bumped.append(bundle.name())

    # -- new claims ----------------------------------------------------------------------------------------------
    async def collect(self, ctx: PoolContext, peak_height: int, stats: RewardStats) -> None:
        # The farmers' singleton positions, not their records: decoding every farmer's keys held the event loop for
        # seconds in a pool of thousands. A farmer is read whole only when its p2_singleton holds rewards due.
        farmers = await claimable_farmers(ctx)
        if not farmers:
            return
        in_flight = {claim.launcher_id for claim in await ctx.store.reward_claims(ClaimStatus.SUBMITTED)}
        records = await ctx.node.coin_records_by_puzzle_hashes(list(farmers), include_spent=False)
        due: dict[bytes32, list[CoinRecord]] = defaultdict(list)
        for record in records:
            if await self._claimable(ctx, record, peak_height):
                due[farmers[record.coin.puzzle_hash]].append(record)
            else:
                stats.skipped += 1
        for launcher_id, coins in due.items():
            if launcher_id in in_flight:
                continue  # its singleton is being spent by a claim in flight: wait for that one to settle
            farmer = await ctx.store.get_farmer(launcher_id)
            if farmer is None:
                continue
            # A PlotNFT v2's forward spends its singleton once per reward: one reward a bundle.
            most = self.max_coins_per_claim if farmer.protocol_version == 1 else 1
            coins = sorted(coins, key=absorb_order)[:most]
            try:
                stats.submitted += await self.claim(ctx, farmer, coins, peak_height)
            except ChainUnavailable as exc:  # this farmer's look-ups failed: the others go on, it is tried again
                log.info("absorb of rewards of %s waits for the node: %s", launcher_id.hex(), exc)
                stats.unavailable += 1
            except Exception as exc:
                # A spent or changed singleton, an odd coin: skip this farmer, the other claims go on.
                log.warning("cannot absorb rewards of %s: %s", launcher_id.hex(), exc)
                stats.skipped += len(coins)

    async def _claimable(self, ctx: PoolContext, record: CoinRecord, peak_height: int) -> bool:
        coin_id = record.coin.name()
        if not record.coinbase:
            log.info("coin %s at a p2_singleton puzzle hash is not a block reward: not claimed", coin_id.hex())
            return False
        if peak_height - record.confirmed_block_index < ctx.config.chain.confirmation_security_threshold:
            return False  # not buried deep enough yet; found again by a later scan
        if not is_pool_reward(ctx, record):
            log.debug("coinbase coin %s is a farmer reward, not a pool reward: not claimed", coin_id.hex())
            return False
        claim = await ctx.store.get_reward_claim(coin_id)
        return claim is None or claim.status == ClaimStatus.FAILED

    async def claim(
        self, ctx: PoolContext, farmer: FarmerRecord, coins: Sequence[CoinRecord], peak_height: int
    ) -> list[bytes32]:
        """Absorb ``coins`` (all of one singleton) in one spend bundle (forward them, for a PlotNFT v2); returns the
        ids of the coins pushed. The claims are recorded before the bundle is pushed."""
        bundle, singleton_coin_id = await claim_spends(ctx, farmer, coins, peak_height)
        fee, fee_spend = 0, None
        if not await self._carries_unsettled_fee(ctx, coins):
            fee = await estimated_fee(
                ctx.node, ctx.config.fees, absorb_cost(len(coins)), least=ctx.config.rewards.claim_fee
            )
            fee_spend = await self._fee_spend(ctx, singleton_coin_id, fee, peak_height)
        if fee_spend is None:
            fee = 0
        else:
            bundle = SpendBundle.aggregate([bundle, fee_spend.spend_bundle])
        recorded = await self._record_claims(ctx, farmer, coins, bundle.name(), peak_height, fee, fee_spend)
        if not recorded:
            return []
        kill_point("claim-recorded")
        result = await ctx.node.push(bundle)
        kill_point("claim-pushed")
        if not result.accepted:
            for coin_id in recorded:
                await ctx.store.update_reward_claim(coin_id, ClaimStatus.FAILED, error=result.error)
            raise ValueError(f"absorb refused by the node: {result.error}")
        what = "forwarding" if farmer.protocol_version == 2 else "absorbing"
        log.info("%s %d reward coin(s) of %s in %s", what, len(recorded), farmer.launcher_id.hex(), bundle.name())
        return recorded

    @staticmethod
    async def _carries_unsettled_fee(ctx: PoolContext, coins: Sequence[CoinRecord]) -> bool:
        """Whether one of the coins was claimed before with a fee spend that may still land: the new claim takes
        that fee over instead of paying a second one (the old fee spend is mined with any spend of the singleton
        coin it names, ours included)."""
        for record in coins:
            earlier = await ctx.store.get_reward_claim(record.coin.name())
            if earlier is not None and not earlier.fee_settled:
                return True
        return False

    async def _fee_spend(
        self, ctx: PoolContext, singleton_coin_id: bytes32, claim_fee: int, peak_height: int
    ) -> SignedPayment | None:
        """The absorb's fee (``claim_fee``: the node's estimate, pool/payouts/fees.py), paid by the pool's fee share
        from the pool wallet, or None to claim without a fee.

        The absorb's own coins cannot pay fees (the reward goes whole to the target). The fee spend asserts the
        singleton spend of the absorb (ASSERT_CONCURRENT_SPEND), so it can never be mined without it, and it spends
        only buried coins that no transaction in flight holds (the store refuses to record it otherwise). A claim
        never waits for a fee: with too small a fee share, no coin or no wallet, it goes without one."""
        if claim_fee <= 0 or not self.status.wallet_synced or (await ctx.store.ledger()).pool_fee_share < claim_fee:
            return None
        try:
            spendable = buried_coins(
                await ctx.wallet.spendable_coins(), peak_height, ctx.config.chain.confirmation_security_threshold
            )
            coins = select_coins(spendable, claim_fee, held=await ctx.store.reserved_coins())
            return await ctx.wallet.sign_payment(
                [(ctx.config.pool.target_puzzle_hash, 0)],
                claim_fee,
                coins=coins,
                assert_concurrent_spend=singleton_coin_id,
            )
        except (NotEnoughCoins, ChainUnavailable) as exc:
            log.warning("absorb goes without a fee: %s", exc)
            return None

    async def _record_claims(
        self,
        ctx: PoolContext,
        farmer: FarmerRecord,
        coins: Sequence[CoinRecord],
        bundle_name: bytes32,
        peak_height: int,
        fee: int,
        fee_spend: SignedPayment | None,
    ) -> list[bytes32]:
        """Record the bundle's claims in one transaction; the first carries the fee. [] if a coin is taken. Each
        keeps the network's difficulty and sub-slot iterations at the peak, which the round's effort is measured by
        (they change once an epoch, so the peak's are the block's to within the claim's delay)."""
        peak = self.status.peak
        difficulty = peak.difficulty if peak is not None and peak.difficulty > 0 else None
        sub_slot_iters = peak.sub_slot_iters if peak is not None and peak.sub_slot_iters > 0 else None
        claims = [
            RewardClaim(
                coin_id=record.coin.name(),
                launcher_id=farmer.launcher_id,
                amount=int(record.coin.amount),
                coin_height=int(record.confirmed_block_index),
                spend_bundle_name=bundle_name,
                status=ClaimStatus.SUBMITTED,
                submitted_at=ctx.now(),
                submitted_height=peak_height,
                fee=fee if index == 0 else 0,
                fee_spend_bundle=bytes(fee_spend.spend_bundle) if index == 0 and fee_spend is not None else None,
                network_difficulty=difficulty,
                network_sub_slot_iters=sub_slot_iters,
                coin_timestamp=int(record.timestamp) or None,
            )
            for index, record in enumerate(coins)
        ]
        fee_coins = () if fee_spend is None else fee_spend.removals
        try:
            if await ctx.store.add_reward_claims(claims, fee_coins):
                return [claim.coin_id for claim in claims]
        except (InsufficientFunds, CoinReserved) as exc:
            # The fee share was spent, or a payout took the fee's coin, meanwhile: the next scan claims again.
            log.warning("absorb of %s not recorded: %s", farmer.launcher_id.hex(), exc)
            return []
        log.warning("a coin of %s already has an active claim: absorb not pushed", farmer.launcher_id.hex())
        return []


@dataclass(frozen=True)
class PendingAbsorb:
    """An absorb in flight, rebuilt as it was sent."""

    carrier: RewardClaim | None  # the claim that carries its fee spends that may still land
    versions: list[ClaimFeeVersion]  # those fee spends, oldest first (the newest is in ``bundle``, or taken over)
    absorb: SpendBundle  # the absorb spends alone
    bundle: SpendBundle  # as it was sent (its name is the one recorded)
    singleton_coin_id: bytes32  # the singleton coin the absorb spends, which its fee spends assert


async def _can_no_longer_land(
    ctx: PoolContext, bundle: SpendBundle, states: dict[bytes32, CoinState], peak_height: int
) -> bool:
    """Whether a fee spend none of whose versions landed has a coin it spends, or the singleton coin it must be mined
    with, spent (without it) and buried."""
    threshold = ctx.config.chain.confirmation_security_threshold
    for coin in bundle.removals():
        spent_height = states[coin.name()].spent_height
        if spent_height is not None and peak_height - spent_height >= threshold:
            return True
    for coin_id in asserted_concurrent_spends(bundle):
        record = await ctx.node.coin_record(coin_id)
        if record is not None and record.spent and peak_height - int(record.spent_block_index) >= threshold:
            return True
    return False


def absorb_order(record: CoinRecord) -> tuple[int, bytes]:
    """The order of an absorb's reward coins: by height, then id, so that the same coins always make the same
    bundle (an absorb in flight is built again to be sent anew)."""
    return int(record.confirmed_block_index), bytes(record.coin.name())


async def claimable_farmers(ctx: PoolContext) -> dict[bytes32, bytes32]:
    """The p2_singleton puzzle hashes (and whose) that may hold rewards this pool can still absorb: the members', and
    those of farmers no longer members whose recorded state still pays this pool (LEAVING_POOL past the countdown but
    not escaped yet, or revoked just now): blocks they won just before leaving are still the pool's while the live
    singleton pays it. ``claim`` checks the live, chain-checked singleton before spending anything."""
    target = ctx.config.pool.target_puzzle_hash
    claimable: dict[bytes32, bytes32] = {}
    after = None
    while page := await ctx.store.singleton_positions(after, FARMERS_PER_READ):
        after = page[-1].launcher_id
        for farmer in page:
            if farmer.is_pool_member or _pays_target(farmer.singleton_tip_state, target):
                claimable[farmer.p2_singleton_puzzle_hash] = farmer.launcher_id
    return claimable


def _pays_target(state: bytes, target: bytes32) -> bool:
    try:
        return stored_pool_state(state).target_puzzle_hash == target  # recorded: its key was checked then
    except Exception:  # a state that does not decode pays nobody the pool knows
        return False


# A block's rewards are created in a later transaction block; the blocks in between are few (no transaction block
# for a while is rare), and chia's own wallet looks back the same 100 heights.
_FARMED_HEIGHT_LOOKBACK = 128


def height_farmed(ctx: PoolContext, record: CoinRecord) -> int | None:
    """The height of the block that won this pool reward coin, or None if the coin is not a pool reward.

    A pool reward coin's parent id encodes the height it was farmed at (not the height it was created at, which is
    the next transaction block); the absorb spend must name that height."""
    genesis = ctx.constants.GENESIS_CHALLENGE
    created = int(record.confirmed_block_index)
    for height in range(created, max(created - _FARMED_HEIGHT_LOOKBACK, -1), -1):
        if record.coin.parent_coin_info == pool_parent_id(uint32(height), genesis):
            return height if record.coin.amount == calculate_pool_reward(uint32(height)) else None
    return None


def is_pool_reward(ctx: PoolContext, record: CoinRecord) -> bool:
    """The pool's 7/8 share of a block: the only coinbase coin an absorb spend can claim."""
    return height_farmed(ctx, record) is not None


async def live_singleton(ctx: PoolContext, farmer: FarmerRecord, peak_height: int) -> SingletonView:
    """The singleton's newest spend (not only the buried one: an absorb must spend the current singleton coin)."""
    view = await follow_singleton(
        ctx.node,
        farmer.launcher_id,
        peak_height=peak_height,
        confirmation_security_threshold=0,
        genesis_challenge=ctx.constants.GENESIS_CHALLENGE,
        known=KnownTip(farmer.singleton_tip, farmer.singleton_tip_state, farmer.delay_time, farmer.delay_puzzle_hash),
    )
    current = get_most_recent_singleton_coin_from_coin_spend(view.tip)
    if current is None:
        raise ValueError("the singleton was melted")
    record = await ctx.node.coin_record(current.name())
    if record is None or record.spent:
        raise ValueError("the singleton's tip is spent or unknown (a spend in flight?)")
    return view


async def claim_spends(
    ctx: PoolContext, farmer: FarmerRecord, coins: Sequence[CoinRecord], peak_height: int
) -> tuple[SpendBundle, bytes32]:
    """The spends that claim ``coins`` for the pool, built from the live singleton, and the singleton coin they
    spend (which a fee spend asserts): a v1 singleton's absorb, or a PlotNFT v2's forward. Raises ValueError (or
    SingletonNotFound) when the singleton no longer pays this pool or cannot be spent now."""
    if farmer.protocol_version == 2:
        return await forward_spends(ctx, farmer, coins, peak_height)
    view = await live_singleton(ctx, farmer, peak_height)
    if view.state.target_puzzle_hash != ctx.config.pool.target_puzzle_hash:
        raise ValueError("the singleton no longer pays this pool's target puzzle hash")
    launcher = await ctx.node.coin_record(farmer.launcher_id)
    if launcher is None:
        raise ValueError("launcher coin not found")
    bundle = SpendBundle(absorb_spends(ctx, view, launcher.coin, coins), G2Element())
    singleton_coin = get_most_recent_singleton_coin_from_coin_spend(view.tip)
    assert singleton_coin is not None  # live_singleton checked it
    return bundle, singleton_coin.name()


async def forward_spends(
    ctx: PoolContext, farmer: FarmerRecord, coins: Sequence[CoinRecord], peak_height: int
) -> tuple[SpendBundle, bytes32]:
    """A PlotNFT v2's reward forwarded to the pool: its pool path (no signature), from the live singleton, which
    must still farm to this pool's target puzzle hash."""
    if len(coins) != 1:
        raise ValueError("a PlotNFT v2's rewards are forwarded one a spend")
    genesis = ctx.constants.GENESIS_CHALLENGE
    view = await follow_v2(ctx, farmer.launcher_id, peak_height, farmer=farmer, live=True)
    config = view.puzzle.pool_config
    if view.melted or config is None or config.pool_puzzle_hash != ctx.config.pool.target_puzzle_hash:
        raise ValueError("the PlotNFT v2 no longer pays this pool's target puzzle hash")
    singleton, spends = forward_reward_spends(view.tip, genesis, view.puzzle, coins[0].coin)
    record = await ctx.node.coin_record(singleton.name())
    if record is None or record.spent:
        raise ValueError("the PlotNFT v2's live coin is spent or unknown (a spend in flight?)")
    return SpendBundle(spends, G2Element()), singleton.name()


def absorb_spends(
    ctx: PoolContext, view: SingletonView, launcher: Coin, coins: Sequence[CoinRecord]
) -> list[CoinSpend]:
    """Absorb spends of ``coins``, chained: each absorb spends the singleton coin the previous one created."""
    spends: list[CoinSpend] = []
    last_singleton_spend = view.tip
    for record in coins:
        farmed = height_farmed(ctx, record)
        if farmed is None:
            raise ValueError(f"coin {record.coin.name().hex()} is not a pool reward")
        absorb = create_absorb_spend(
            last_singleton_spend,
            view.state,
            launcher,
            uint32(farmed),
            ctx.constants.GENESIS_CHALLENGE,
            uint64(view.delay_time),
            view.delay_puzzle_hash,
        )
        spends.extend(absorb)
        singleton_coin = get_most_recent_singleton_coin_from_coin_spend(last_singleton_spend)
        last_singleton_spend = next(spend for spend in absorb if spend.coin == singleton_coin)
    return spends


async def prove_target_ownership(ctx: PoolContext, now: int) -> TargetProof:
    """The wallet's signature for the pool's target address, checked, as the store keeps it (see
    pool/chain/ownership.py). Raises AddressNotOwned or ChainUnavailable."""
    pool = ctx.config.pool
    message = ownership_message(pool.name, pool.target_address, now)
    signed = await signed_for_target(ctx.wallet, pool.target_puzzle_hash, pool.target_address, message)
    return TargetProof(
        target_puzzle_hash=pool.target_puzzle_hash,
        address=pool.target_address,
        fingerprint=signed.fingerprint,
        public_key=bytes(signed.public_key),
        signature=bytes(signed.signature),
        signing_mode=signed.signing_mode,
        message=message,
        proven_at=now,
    )


def proof_holds(proof: TargetProof) -> bool:
    """Whether a recorded proof still checks out."""
    return signature_proves(proof.signing_mode, proof.public_key, proof.signature, proof.message, proof.address)
