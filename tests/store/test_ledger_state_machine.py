"""The ledger invariant under random sequences of everything that moves money, through the real SqlitePoolStore.

Each run of the machine gets a fresh database file and its own event loop. Rules drive what the pool's loops do, with
the store's production transitions only: points from partials, absorb claims (with fee spends whose coins are reserved,
sometimes more than the pool's share, sometimes on a coin another transaction holds), claims confirmed, lost or failed
as the chain shows (a failed one landing after all, or claimed again taking its unsettled fee over), an absorb stuck in
the mempool given a new fee version (a higher fee, or one refused: built from a stale version, lower, beyond the share,
a second fee spend for one absorb, on a held coin), claim fees settling (the latest version landed, an older, cheaper
one, or none can land), distributions planned by ``plan_distribution`` (points balance or a PPLNS-like window weight),
payment rounds planned by ``plan_payments``, batches submitted, confirmed (sometimes an older, cheaper version landing),
given a new version (a fee bump, or rebuilt because a coin was spent elsewhere; one built from a version that is no
longer current is refused), another process taking leadership (the fenced store writes nothing until it leads again),
and restarts — and after every step the books must balance, to the mojo:

- ``store.ledger().balanced`` and no figure below zero;
- every figure equals an independent model of the balances kept by the machine;
- the journal, summed per kind, gives every figure of the summary; per farmer, owed == shares - payments;
- no farmer is ever paid more than distributions credited it; points never go below zero;
- rounds' totals match their batches' fees; a round is done exactly when its batches are confirmed;
- every version of every batch and every fee version of every claim is kept; per claim, the journal's fees less its
  refunds are the fee it is charged (with the landed fees of its earlier claims); coins are held by exactly the
  transactions that may still land.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import tempfile
from collections import defaultdict
from collections.abc import Coroutine
from dataclasses import astuple, dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any, TypeVar

import pytest
from chia_rs import Program
from hypothesis import HealthCheck, event, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from pool.chia_adapter import (
    AugSchemeMPL,
    Coin,
    CoinSpend,
    PoolSingletonState,
    PoolState,
    bytes32,
    std_hash,
    uint8,
    uint32,
    uint64,
)
from pool.payouts.split import FarmerShare, Payable, plan_distribution, plan_payments
from pool.protocol.partials import proof_key
from pool.store.abstract import (
    AbstractPoolStore,
    CoinReserved,
    InsufficientFunds,
    NotLeader,
    RoundAlreadyOpen,
    StaleTransaction,
    StoreError,
)
from pool.store.models import (
    BatchStatus,
    ClaimStatus,
    Distribution,
    DistributionShare,
    FarmerRecord,
    LedgerKind,
    PartialRecord,
    Payment,
    PayoutRound,
    RewardClaim,
    RoundStatus,
    batch_holder,
    claim_holder,
)
from pool.store.sqlite import SqlitePoolStore
from tests.store.conftest import migrated_sqlite_file

T = TypeVar("T")
# The store syncs every commit to disk (synchronous=FULL): on a RAM-backed directory, where there is one, thousands of
# steps take seconds, not minutes on a busy disk. Restarts still close and reopen the same file.
MEMORY_DIRECTORY = "/dev/shm" if os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK) else None
FARMER_SEEDS = (1, 2, 3)
FEE_PUZZLE_HASH = std_hash(b"fee address")
XCH_REWARD = 1_750_000_000_000


def h(label: str) -> bytes32:
    return std_hash(label.encode())


def make_farmer(seed: int) -> FarmerRecord:
    key = AugSchemeMPL.key_gen(bytes([seed]) * 32).get_g1()
    tip = CoinSpend(Coin(h(f"parent {seed}"), h(f"singleton {seed}"), uint64(1)), Program.to(1), Program.to(0))
    state = PoolState(
        uint8(1), uint8(PoolSingletonState.FARMING_TO_POOL.value), h("pool target"), key, "https://x", uint32(10)
    )
    return FarmerRecord(
        launcher_id=h(f"launcher {seed}"),
        p2_singleton_puzzle_hash=h(f"p2 {seed}"),
        delay_time=604800,
        delay_puzzle_hash=h(f"delay {seed}"),
        authentication_public_key=key,
        singleton_tip=tip,
        singleton_tip_state=state,
        difficulty=1,
        payout_instructions=h(f"payout {seed}").hex(),
        # Two farmers share one payout address: payments are still booked per farmer.
        payout_puzzle_hash=h(f"payout {min(seed, 2)}"),
        is_pool_member=True,
        points=0,
        joined_at=1_000 + seed,
    )


@dataclass
class ModelClaim:
    launcher_id: bytes32
    amount: int
    fee: int  # charged, not given back
    status: ClaimStatus
    bundle: bytes32  # the absorb it is in (the claims of one absorb share it)
    fee_settled: bool = True
    earlier_fees: int = 0  # landed fees of the coin's earlier, failed claims
    fee_spend: bool = False  # it carries a fee spend (its own, taken over, or from a new version)
    unsettled_fees: list[int] = field(default_factory=list)  # the fees of its fee versions that may still land
    versions: int = 0  # fee versions ever recorded for the coin


@dataclass
class ModelBatch:
    round_id: int
    fee: int
    status: BatchStatus
    versions: int = 0
    tx_id: bytes32 | None = None


# Claim amounts: whole block rewards and odd small ones (so that rounding remainders appear).
amounts = st.one_of(st.just(XCH_REWARD), st.integers(min_value=1, max_value=10**6))
fees_fraction = st.fractions(min_value=0, max_value=1, max_denominator=1_000)
min_payments = st.one_of(st.just(0), st.integers(min_value=0, max_value=10**6), st.just(XCH_REWARD))
blockchain_fees = st.one_of(st.just(0), st.integers(min_value=0, max_value=1_000), st.just(10**9))
# A new fee version of a stuck absorb, or one the store must refuse; how the chain settles a claim's fee versions.
claim_fee_versions = st.sampled_from(["bump", "bump", "bump", "stale", "lower", "second fee spend"])
claim_fee_outcomes = st.sampled_from(["none can land", "landed as charged", "a version landed"])


class LedgerMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.loop = asyncio.new_event_loop()
        self.directory = Path(tempfile.mkdtemp(prefix="ledger-machine-", dir=MEMORY_DIRECTORY))
        self.path = self.directory / "pool.sqlite"
        self.create_database()
        self.store = self.new_store()
        self.run(self.store.open())
        self.run(self.store.take_leadership("the machine"))
        self.farmers = [make_farmer(seed) for seed in FARMER_SEEDS]
        for farmer in self.farmers:
            self.run(self.store.add_farmer(farmer))
        self.counter = 0
        # The model: every balance, kept from what the rules did, independently of the store.
        self.points: dict[bytes32, int] = {f.launcher_id: 0 for f in self.farmers}
        self.owed: dict[bytes32, int] = {f.launcher_id: 0 for f in self.farmers}
        self.credited: dict[bytes32, int] = {f.launcher_id: 0 for f in self.farmers}  # by distributions
        self.paid: dict[bytes32, int] = {f.launcher_id: 0 for f in self.farmers}
        self.undistributed = 0
        self.pool_fee_share = 0
        self.pool_fee_payments = 0
        self.blockchain_fees = 0
        self.operator_funding = 0
        self.claims: dict[bytes32, ModelClaim] = {}
        self.batches: dict[int, ModelBatch] = {}
        self.open_round: int | None = None
        self.reserved: dict[bytes32, str] = {}  # coin -> the transaction holding it

    def create_database(self) -> None:
        """The machine's database, its schema in place: a copy of a migrated store file."""
        shutil.copyfile(migrated_sqlite_file(), self.path)

    def new_store(self) -> AbstractPoolStore:
        """Another store object on the machine's database, not opened (as another process, or after a restart)."""
        return SqlitePoolStore(self.path)

    def run(self, coroutine: Coroutine[Any, Any, T]) -> T:
        return self.loop.run_until_complete(coroutine)

    def teardown(self) -> None:
        try:
            self.run(self.store.close())
        finally:
            self.loop.close()
            shutil.rmtree(self.directory, ignore_errors=True)

    def next_label(self, what: str) -> str:
        self.counter += 1
        return f"{what} {self.counter}"

    def claims_in(self, status: ClaimStatus) -> list[bytes32]:
        return sorted((c for c, m in self.claims.items() if m.status is status), key=bytes)

    def batches_in(self, status: BatchStatus) -> list[int]:
        return sorted(b for b, m in self.batches.items() if m.status is status)

    def fee_for(self, data: st.DataObject) -> int:
        """No fee, one the pool's share can pay, or more than it has."""
        kind = data.draw(st.sampled_from(["none", "affordable", "beyond the share"]))
        if kind == "none":
            return 0
        if kind == "affordable":
            return data.draw(st.integers(min_value=0, max_value=self.pool_fee_share))
        return data.draw(st.integers(min_value=self.pool_fee_share + 1, max_value=self.pool_fee_share + 1_000))

    @initialize(
        points=st.lists(st.integers(min_value=0, max_value=1_000), min_size=len(FARMER_SEEDS), max_size=3),
        rewards=st.lists(amounts, min_size=1, max_size=2),
        funding=st.one_of(st.just(0), st.integers(min_value=1, max_value=10**6)),
    )
    def some_points_and_rewards(self, points: list[int], rewards: list[int], funding: int) -> None:
        """Most runs start with points and confirmed rewards, so that the money reaches rounds and batches, and many
        with the operator's fee funding, so that absorbs carry fees (and their new versions higher ones)."""
        for seed, difficulty in zip(FARMER_SEEDS, points, strict=True):
            if difficulty:
                self.partial_confirmed(seed, difficulty)
        for amount in rewards:
            self.add_claims([self.new_claim(h(self.next_label("coin")), self.farmers[0].launcher_id, amount, 0)], False)
            self.settle(self.claims_in(ClaimStatus.SUBMITTED)[0], ClaimStatus.CONFIRMED)
        if funding:
            self.fees_funded(funding)

    # -- points ----------------------------------------------------------------------------------------------------
    @rule(farmer=st.sampled_from(FARMER_SEEDS), difficulty=st.integers(min_value=1, max_value=1_000))
    def partial_confirmed(self, farmer: int, difficulty: int) -> None:
        record = self.farmers[farmer - 1]
        label = self.next_label("proof")
        partial = PartialRecord(
            record.launcher_id, proof_key(h("sp"), h(label)), h("sp"), False, h("harvester"), self.counter, difficulty
        )
        partial_id = self.run(self.store.add_partial(partial))
        assert partial_id is not None
        assert self.run(self.store.confirm_partial(partial_id))
        self.points[record.launcher_id] += difficulty

    # -- claims ----------------------------------------------------------------------------------------------------
    def new_claim(
        self, coin_id: bytes32, launcher_id: bytes32, amount: int, fee: int, bundle: bytes32 | None = None
    ) -> RewardClaim:
        return RewardClaim(
            coin_id=coin_id,
            launcher_id=launcher_id,
            amount=amount,
            coin_height=self.counter,
            spend_bundle_name=h(self.next_label("bundle")) if bundle is None else bundle,
            status=ClaimStatus.SUBMITTED,
            submitted_at=self.counter,
            submitted_height=self.counter,
            fee=fee,
            fee_spend_bundle=None if fee == 0 else self.next_label("fee spend").encode(),
            fee_settled=fee == 0,
        )

    def coins_for(self, data: st.DataObject) -> list[bytes32]:
        """Wallet coins for a transaction: fresh ones, sometimes with one another transaction holds."""
        coins = [h(self.next_label("wallet coin")) for _ in range(data.draw(st.integers(1, 2)))]
        shared = bool(self.reserved) and data.draw(st.booleans())
        if shared:
            coins.append(data.draw(st.sampled_from(sorted(self.reserved, key=bytes))))
        return coins

    def add_claims(
        self, claims: list[RewardClaim], live_coin_included: bool, fee_coins: list[bytes32] | None = None
    ) -> None:
        fees = sum(c.fee for c in claims)
        fee_coins = fee_coins or []
        payer = next((c for c in claims if c.fee_spend_bundle is not None), None)
        held_elsewhere = payer is not None and any(
            self.reserved.get(coin, claim_holder(payer.coin_id)) != claim_holder(payer.coin_id) for coin in fee_coins
        )
        before = {c.coin_id: self.run(self.store.get_reward_claim(c.coin_id)) for c in claims}
        ledger_before = self.run(self.store.ledger())
        try:
            added = self.run(self.store.add_reward_claims(claims, fee_coins if payer is not None else ()))
        except InsufficientFunds:
            assert fees > self.pool_fee_share
            event("claims refused: fee beyond the pool fee share")
            added = False
        except CoinReserved:
            assert held_elsewhere and not live_coin_included
            event("claims refused: a fee coin held by another transaction")
            added = False
        else:
            assert added is not live_coin_included
            if added:
                assert fees <= self.pool_fee_share and not held_elsewhere
            else:
                event("claims refused: a live claim of a coin")
        if not added:  # all or nothing: every claim as it was before
            assert {c.coin_id: self.run(self.store.get_reward_claim(c.coin_id)) for c in claims} == before
            assert self.run(self.store.ledger()) == ledger_before
            return
        event("claims recorded with a fee" if fees else "claims recorded without a fee")
        for claim in claims:
            earlier = self.claims.get(claim.coin_id)
            assert claim.spend_bundle_name is not None
            model = ModelClaim(
                claim.launcher_id,
                claim.amount,
                claim.fee,
                ClaimStatus.SUBMITTED,
                claim.spend_bundle_name,
                claim.fee == 0,
            )
            if claim.fee_spend_bundle is not None:
                model.fee_spend, model.unsettled_fees = True, [claim.fee]
            if earlier is not None:
                model.versions = earlier.versions
                model.earlier_fees = earlier.earlier_fees + (earlier.fee if earlier.fee_settled else 0)
                if model.earlier_fees:
                    event("a claimed-again coin keeps the landed fees of its failed claims")
            if earlier is not None and not earlier.fee_settled:  # the new claim takes the unsettled fee over
                model.fee, model.fee_settled = earlier.fee, False
                model.fee_spend, model.unsettled_fees = True, earlier.unsettled_fees
                event("a claimed-again coin takes its failed claim's fee over")
            model.versions += claim.fee_spend_bundle is not None
            self.claims[claim.coin_id] = model
        if payer is not None:
            for coin in fee_coins:
                self.reserved[coin] = claim_holder(payer.coin_id)
        self.pool_fee_share -= fees
        self.blockchain_fees += fees

    @rule(
        data=st.data(),
        farmer=st.sampled_from(FARMER_SEEDS),
        claim_amounts=st.lists(amounts, min_size=1, max_size=3),
        with_live_coin=st.booleans(),
    )
    def claims_submitted(
        self, data: st.DataObject, farmer: int, claim_amounts: list[int], with_live_coin: bool
    ) -> None:
        launcher_id = self.farmers[farmer - 1].launcher_id
        fee = self.fee_for(data)
        bundle = h(self.next_label("absorb"))  # one absorb: its claims share its name
        claims = [
            self.new_claim(h(self.next_label("coin")), launcher_id, amount, fee if index == 0 else 0, bundle)
            for index, amount in enumerate(claim_amounts)
        ]
        live = [c for c, m in self.claims.items() if m.status is not ClaimStatus.FAILED]
        include_live = with_live_coin and bool(live)
        if include_live:
            coin_id = data.draw(st.sampled_from(sorted(live, key=bytes)))
            claims.append(self.new_claim(coin_id, launcher_id, self.claims[coin_id].amount, 0, bundle))
        self.add_claims(claims, include_live, self.coins_for(data) if fee else None)

    def settle(self, coin_id: bytes32, status: ClaimStatus) -> None:
        self.run(self.store.update_reward_claim(coin_id, status, confirmed_height=self.counter, error="dropped"))
        claim = self.claims[coin_id]
        claim.status = status
        if status is ClaimStatus.CONFIRMED:
            self.undistributed += claim.amount

    @precondition(lambda self: bool(self.claims))
    @rule(data=st.data())
    def claim_moved(self, data: st.DataObject) -> None:
        """As the chain shows: a claim in flight confirmed, lost or failed; a failed one landing after all, lost, or
        claimed again; a confirmed or lost one moved again (refused)."""
        coin_id = data.draw(st.sampled_from(sorted(self.claims, key=bytes)))
        claim = self.claims[coin_id]
        if claim.status is ClaimStatus.SUBMITTED:
            status = data.draw(st.sampled_from([ClaimStatus.CONFIRMED, ClaimStatus.LOST, ClaimStatus.FAILED]))
            self.settle(coin_id, status)
            event(f"claim {status.value}")
        elif claim.status is ClaimStatus.FAILED and data.draw(st.booleans()):
            status = data.draw(st.sampled_from([ClaimStatus.CONFIRMED, ClaimStatus.LOST]))
            self.settle(coin_id, status)
            event(f"failed claim {status.value} after all")
        elif claim.status is ClaimStatus.FAILED:
            fee = 0 if not claim.fee_settled else self.fee_for(data)
            if not claim.fee_settled and data.draw(st.booleans()):
                # A second fee while the first may still land: refused, nothing written.
                with pytest.raises(StoreError):
                    self.run(
                        self.store.add_reward_claims([self.new_claim(coin_id, claim.launcher_id, claim.amount, 1)])
                    )
                event("a second fee for a coin whose fee is unsettled: refused")
                return
            retry = self.new_claim(coin_id, claim.launcher_id, claim.amount, fee)
            self.add_claims([retry], live_coin_included=False, fee_coins=self.coins_for(data) if fee else None)
        else:
            status = data.draw(st.sampled_from(ClaimStatus))
            with pytest.raises(StoreError):  # credited (or lost) once, for good
                self.run(self.store.update_reward_claim(coin_id, status, confirmed_height=1))

    @precondition(lambda self: any(m.status is ClaimStatus.SUBMITTED for m in self.claims.values()))
    @rule(data=st.data(), what=claim_fee_versions)
    def claim_fee_bumped(self, data: st.DataObject, what: str) -> None:
        self.bump_claim_fee(data, data.draw(st.sampled_from(self.claims_in(ClaimStatus.SUBMITTED))), what)

    @rule(data=st.data())
    def reward_loop_iteration(self, data: st.DataObject) -> None:
        """What the reward loop does with claims in flight in one pass: every fee that the chain settled is settled,
        every absorb stuck long enough gets a new fee version."""
        for coin_id in sorted((c for c, m in self.claims.items() if not m.fee_settled), key=bytes):
            if data.draw(st.booleans()):
                self.settle_claim_fee(data, coin_id, data.draw(claim_fee_outcomes))
        absorbs = {self.claims[c].bundle: c for c in self.claims_in(ClaimStatus.SUBMITTED)}
        for coin_id in absorbs.values():
            if data.draw(st.booleans()):
                self.bump_claim_fee(data, coin_id, data.draw(claim_fee_versions))

    @precondition(lambda self: any(m.status is ClaimStatus.SUBMITTED for m in self.claims.values()))
    @rule(data=st.data(), bumps=st.integers(min_value=1, max_value=3), outcome=claim_fee_outcomes)
    def absorb_stuck_for_long(self, data: st.DataObject, bumps: int, outcome: str) -> None:
        """An absorb stays stuck while the reward loop gives it new fee versions, one after another, until the chain
        shows which one landed (perhaps an older, cheaper one) or that none can."""
        coin_id = data.draw(st.sampled_from(self.claims_in(ClaimStatus.SUBMITTED)))
        for _ in range(bumps):
            bundle = self.claims[coin_id].bundle
            group = [c for c in self.claims_in(ClaimStatus.SUBMITTED) if self.claims[c].bundle == bundle]
            carrier = next((c for c in group if not self.claims[c].fee_settled), coin_id)
            self.bump_claim_fee(data, carrier, "affordable bump")
        carriers = [c for c, m in self.claims.items() if not m.fee_settled and m.bundle == self.claims[coin_id].bundle]
        for carrier in carriers:
            self.settle_claim_fee(data, carrier, outcome)

    def bump_claim_fee(self, data: st.DataObject, coin_id: bytes32, what: str) -> None:
        """An absorb stuck in the mempool gets a new version: the same absorb spends with a new fee spend, carried by
        the claim that carries its fee (or one of its claims when it had none), the increase from the pool fee
        share; or a new version the store must refuse, writing nothing."""
        claim = self.claims[coin_id]
        group = [c for c in self.claims_in(ClaimStatus.SUBMITTED) if self.claims[c].bundle == claim.bundle]
        carriers = [c for c in group if not self.claims[c].fee_settled]
        if what == "second fee spend":  # another claim of the absorb than the one carrying its fee
            others = [c for c in group if c not in carriers]
            if not carriers or not others:
                return
            coin_id = data.draw(st.sampled_from(others))
            claim = self.claims[coin_id]
        label = self.next_label("fee version")
        holder = claim_holder(coin_id)
        replaces = h("an older absorb") if what == "stale" else claim.bundle
        lower = what == "lower" and claim.fee > 0
        affordable = st.integers(min_value=0, max_value=self.pool_fee_share)
        beyond = st.integers(min_value=self.pool_fee_share + 1, max_value=self.pool_fee_share + 100)
        if what == "affordable bump":  # one the pool fee share pays, with coins no other transaction holds
            coins, increase = [h(self.next_label("wallet coin"))], data.draw(affordable)
        else:
            coins, increase = self.coins_for(data), -1 if lower else data.draw(st.one_of(affordable, beyond))
        before, journal = self.run(self.store.ledger()), self.run(self.store.ledger_entries())
        replace = self.store.replace_claim_fee(
            coin_id,
            label.encode(),
            claim.fee + increase,
            h(label),
            self.counter,
            self.counter,
            replaces=replaces,
            coins=coins,
        )
        refused: type[StoreError] | None = None
        if what == "stale":
            refused = StaleTransaction
        elif (claim.fee_settled and claim.fee_spend) or any(c != coin_id for c in carriers) or increase < 0:
            refused = StoreError  # a settled fee, a second fee spend for one absorb, a lower fee
        elif increase > self.pool_fee_share:
            refused = InsufficientFunds
        elif self.held_elsewhere(coins, holder):
            refused = CoinReserved
        if refused is not None:
            with pytest.raises(refused):
                self.run(replace)
            assert (self.run(self.store.ledger()), self.run(self.store.ledger_entries())) == (before, journal)
            event(f"claim fee version refused ({refused.__name__})")
            return
        self.run(replace)
        event("claim fee version recorded" + (" with a higher fee" if increase else ""))
        for member in group:
            self.claims[member].bundle = h(label)
        claim.fee += increase
        claim.fee_settled, claim.fee_spend = False, True
        claim.unsettled_fees = [*claim.unsettled_fees, claim.fee]
        claim.versions += 1
        self.pool_fee_share -= increase
        self.blockchain_fees += increase
        for coin in coins:
            self.reserved[coin] = holder

    @precondition(lambda self: any(not c.fee_settled for c in self.claims.values()))
    @rule(data=st.data(), outcome=claim_fee_outcomes)
    def claim_fee_settled(self, data: st.DataObject, outcome: str) -> None:
        unsettled = sorted((c for c, m in self.claims.items() if not m.fee_settled), key=bytes)
        self.settle_claim_fee(data, data.draw(st.sampled_from(unsettled)), outcome)

    def settle_claim_fee(self, data: st.DataObject, coin_id: bytes32, outcome: str) -> None:
        """The chain shows one of a claim's fee versions landed (the latest, or an older, cheaper one), or that none
        can land any more."""
        claim = self.claims[coin_id]
        landed = outcome != "none can land"
        # "a version landed": an older one when there are several (the latest is "landed as charged").
        older = claim.unsettled_fees[:-1] or claim.unsettled_fees
        fee_paid = data.draw(st.sampled_from(older)) if outcome == "a version landed" else None
        self.run(self.store.settle_claim_fee(coin_id, landed, fee_paid))
        charged = (claim.fee if fee_paid is None else fee_paid) if landed else 0
        self.pool_fee_share += claim.fee - charged
        self.blockchain_fees -= claim.fee - charged
        if fee_paid is not None and fee_paid < claim.fee:
            event("claim fee: an older, cheaper version landed")
        claim.fee, claim.fee_settled, claim.unsettled_fees = charged, True, []
        self.reserved = {coin: holder for coin, holder in self.reserved.items() if holder != claim_holder(coin_id)}
        with pytest.raises(StoreError):  # once
            self.run(self.store.settle_claim_fee(coin_id, landed))
        event(f"claim fee {'landed' if landed else 'given back'}")

    # -- distributions ---------------------------------------------------------------------------------------------
    @precondition(lambda self: self.undistributed > 0)
    @rule(data=st.data(), fee=fees_fraction, pplns=st.booleans())
    def distributed(self, data: st.DataObject, fee: Fraction, pplns: bool) -> None:
        self.distribute(data, fee, pplns)

    def distribute(self, data: st.DataObject, fee: Fraction, pplns: bool) -> None:
        self.distribution_beyond_the_money(data.draw(st.integers(min_value=1, max_value=10)))
        undistributed = self.run(self.store.ledger()).undistributed
        farmers = self.run(self.store.list_farmers())
        if pplns:  # the window's points: any weight, while the whole balance of points is taken
            weights = data.draw(st.lists(st.integers(0, 10**6), min_size=len(farmers), max_size=len(farmers)))
            shares = [FarmerShare(f.launcher_id, w, f.points) for f, w in zip(farmers, weights, strict=True)]
        else:
            shares = [FarmerShare(f.launcher_id, f.points, f.points) for f in farmers]
        plan = plan_distribution(undistributed, fee, shares)
        if plan is None:  # nothing to share, nobody to share it with, or all of it rounds to nothing
            no_pool_fee = undistributed * fee.numerator // fee.denominator == 0
            assert undistributed == 0 or all(s.weight == 0 for s in shares) or no_pool_fee
            return
        scheme = "pplns" if pplns else "proportional"
        distribution = Distribution(self.counter, scheme, plan.total, plan.pool_fee, plan.farmer_total, plan.remainder)
        planned = [DistributionShare(s.launcher_id, s.amount, s.points) for s in plan.shares]
        distribution_id = self.run(self.store.distribute(distribution, planned))
        event(f"distribution made ({scheme}{', with remainder' if plan.remainder else ''})")
        assert self.run(self.store.distribution_shares(distribution_id)) == sorted(
            (DistributionShare(s.launcher_id, s.amount, s.points, distribution_id) for s in planned),
            key=lambda s: bytes(s.launcher_id),
        )
        self.undistributed -= plan.total
        self.pool_fee_share += plan.pool_fee
        for share in plan.shares:
            self.owed[share.launcher_id] += share.amount
            self.credited[share.launcher_id] += share.amount
            self.points[share.launcher_id] -= share.points

    def distribution_beyond_the_money(self, excess: int) -> None:
        launcher_id = self.farmers[0].launcher_id
        total = self.undistributed + excess
        distribution = Distribution(self.counter, "proportional", total, 0, total, 0)
        with pytest.raises(InsufficientFunds):
            self.run(self.store.distribute(distribution, [DistributionShare(launcher_id, total, 0)]))

    @rule(amount=st.integers(min_value=1, max_value=10**6))
    def fees_funded(self, amount: int) -> None:
        """The operator gives coins of its own to the pool fee share (python -m pool ledger fund-fees)."""
        self.run(self.store.fund_fees(amount, self.next_label("funding")))
        self.pool_fee_share += amount
        self.operator_funding += amount

    # -- payment rounds --------------------------------------------------------------------------------------------
    @precondition(lambda self: any(self.owed.values()))
    @rule(data=st.data())
    def round_recorded(self, data: st.DataObject) -> None:
        self.record_round(data)

    def record_round(self, data: st.DataObject) -> None:
        min_payment = data.draw(min_payments)
        blockchain_fee = data.draw(blockchain_fees)
        fee_reserve = data.draw(st.one_of(st.just(0), st.integers(min_value=0, max_value=10**6)))
        max_additions = data.draw(st.integers(min_value=1, max_value=4))
        ledger = self.run(self.store.ledger())
        farmers = self.run(self.store.list_farmers())
        payable = [Payable(f.launcher_id, f.payout_puzzle_hash, f.owed) for f in farmers if f.owed > 0]
        plan = plan_payments(
            payable,
            min_payment=min_payment,
            pool_fee_share=ledger.pool_fee_share,
            fee_reserve=fee_reserve,
            blockchain_fee=blockchain_fee,
            max_additions=max_additions,
            fee_puzzle_hash=FEE_PUZZLE_HASH,
        )
        if plan is None:
            assert all(p.owed < max(min_payment, 1) for p in payable)
            return
        payout_round = PayoutRound(
            self.counter, "proportional", plan.total, plan.pool_fee, plan.blockchain_fees, plan.farmer_total
        )
        payments = [Payment(p.puzzle_hash, p.amount, p.launcher_id, 0, p.batch_index) for p in plan.payments]
        if self.open_round is not None:
            with pytest.raises(RoundAlreadyOpen):
                self.run(self.store.create_payout_round(payout_round, payments, plan.batch_fees))
            event("round refused: one is open")
            return
        round_id = self.run(self.store.create_payout_round(payout_round, payments, plan.batch_fees))
        event(f"round recorded ({len(plan.batch_fees)} batch(es){', fee-address payment' if plan.pool_fee else ''})")
        self.open_round = round_id
        for batch in self.run(self.store.batches(round_id)):
            assert batch.id is not None and batch.status is BatchStatus.PENDING
            self.batches[batch.id] = ModelBatch(round_id, batch.fee, BatchStatus.PENDING)
        for payment in plan.payments:
            if payment.launcher_id is None:
                self.pool_fee_payments += payment.amount
            else:
                self.owed[payment.launcher_id] -= payment.amount
                self.paid[payment.launcher_id] += payment.amount
        self.pool_fee_share -= plan.pool_fee + plan.blockchain_fees
        self.blockchain_fees += plan.blockchain_fees

    @precondition(lambda self: self.open_round is not None)
    @rule(data=st.data())
    def batch_moved(self, data: st.DataObject) -> None:
        batch_id = data.draw(
            st.sampled_from(self.batches_in(BatchStatus.PENDING) + self.batches_in(BatchStatus.SUBMITTED))
        )
        self.move_batch(data, batch_id)

    @rule(data=st.data())
    def payout_loop_iteration(self, data: st.DataObject) -> None:
        """What the payout loop does in one pass: distribute, record a round when none is open, move every batch."""
        if self.undistributed > 0 and data.draw(st.booleans()):
            self.distribute(data, data.draw(fees_fraction), pplns=data.draw(st.booleans()))
        if self.open_round is None and any(self.owed.values()):
            self.record_round(data)
        for batch_id in self.batches_in(BatchStatus.PENDING) + self.batches_in(BatchStatus.SUBMITTED):
            self.move_batch(data, batch_id)

    def move_batch(self, data: st.DataObject, batch_id: int) -> None:
        """A batch of the open round sent; or, once sent, confirmed (perhaps an older, cheaper version), given a new
        version (its fee bumped, or rebuilt because a coin was spent elsewhere), or one built from a stale version."""
        if self.batches[batch_id].status is BatchStatus.PENDING:
            self.batch_submitted(data, batch_id)
            return
        what = data.draw(
            st.sampled_from(["confirmed", "cheaper version confirmed", "rebuilt", "bump", "lower bump", "stale"])
        )
        if what in ("rebuilt", "bump", "lower bump", "stale"):
            self.batch_replaced(data, batch_id, what)
        else:
            self.batch_confirmed(data, batch_id, cheaper_version_landed=what != "confirmed")

    def held_elsewhere(self, coins: list[bytes32], holder: str) -> bool:
        return any(self.reserved.get(coin, holder) != holder for coin in coins)

    def batch_submitted(self, data: st.DataObject, batch_id: int) -> None:
        label = self.next_label("tx")
        coins = self.coins_for(data)
        holder = batch_holder(batch_id)
        submit = self.store.mark_batch_submitted(
            batch_id, h(label), label.encode(), self.counter, self.counter, coins=coins
        )
        if self.held_elsewhere(coins, holder):
            with pytest.raises(CoinReserved):
                self.run(submit)
            event("batch not recorded: a coin held by another transaction")
            return
        self.run(submit)
        batch = self.batches[batch_id]
        batch.status, batch.versions, batch.tx_id = BatchStatus.SUBMITTED, 1, h(label)
        for coin in coins:
            self.reserved[coin] = holder

    def batch_confirmed(self, data: st.DataObject, batch_id: int, cheaper_version_landed: bool) -> None:
        batch = self.batches[batch_id]
        fee_paid = data.draw(st.integers(0, batch.fee)) if cheaper_version_landed else None
        self.run(self.store.mark_batch_confirmed(batch_id, self.counter, self.counter, fee_paid))
        refund = 0 if fee_paid is None else batch.fee - fee_paid
        batch.fee -= refund
        batch.status = BatchStatus.CONFIRMED
        self.reserved = {coin: holder for coin, holder in self.reserved.items() if holder != batch_holder(batch_id)}
        self.pool_fee_share += refund
        self.blockchain_fees -= refund
        if refund:
            event("batch confirmed with a fee refund")
        if all(b.status is BatchStatus.CONFIRMED for b in self.batches.values() if b.round_id == batch.round_id):
            event("round done")
            self.open_round = None

    def batch_replaced(self, data: st.DataObject, batch_id: int, what: str) -> None:
        batch = self.batches[batch_id]
        assert batch.tx_id is not None
        label = self.next_label("replacement")
        coins = self.coins_for(data)
        holder = batch_holder(batch_id)
        before, journal = self.run(self.store.ledger()), self.run(self.store.ledger_entries())
        if what == "lower bump" and batch.fee > 0:
            with pytest.raises(StoreError):
                self.run(
                    self.store.replace_batch_transaction(
                        batch_id, h(label), b"r", batch.fee - 1, 0, 0, replaces=batch.tx_id, coins=coins
                    )
                )
            return
        if what == "stale":
            # Built from a version that is no longer the batch's (another leader replaced it meanwhile).
            with pytest.raises(StaleTransaction):
                self.run(
                    self.store.replace_batch_transaction(
                        batch_id, h(label), b"r", batch.fee, 0, 0, replaces=h("an older version"), coins=coins
                    )
                )
            assert (self.run(self.store.ledger()), self.run(self.store.ledger_entries())) == (before, journal)
            event("replacement refused: built from a stale version")
            return
        increase = 0 if what == "rebuilt" else data.draw(st.integers(min_value=0, max_value=self.pool_fee_share + 100))
        replace = self.store.replace_batch_transaction(
            batch_id,
            h(label),
            label.encode(),
            batch.fee + increase,
            self.counter,
            self.counter,
            replaces=batch.tx_id,
            coins=coins,
        )
        if increase > self.pool_fee_share:
            with pytest.raises(InsufficientFunds):
                self.run(replace)
            event("fee bump refused: beyond the pool fee share")
            return
        if self.held_elsewhere(coins, holder):
            with pytest.raises(CoinReserved):
                self.run(replace)
            event("replacement refused: a coin held by another transaction")
            return
        self.run(replace)
        event(f"batch {what}" + (" with a higher fee" if increase else ""))
        batch.fee += increase
        batch.versions += 1
        batch.tx_id = h(label)
        self.pool_fee_share -= increase
        self.blockchain_fees += increase
        for coin in coins:
            self.reserved[coin] = holder

    # -- leadership ------------------------------------------------------------------------------------------------
    @rule(data=st.data())
    def another_process_led_for_a_while(self, data: st.DataObject) -> None:
        """Another process took leadership (this one has not noticed yet): none of this one's money writes lands
        until it leads again with a newer epoch."""
        other = self.new_store()
        self.run(other.open())
        try:
            self.run(other.take_leadership("the other process"))
        finally:
            self.run(other.close())
        before, journal = self.run(self.store.ledger()), self.run(self.store.ledger_entries())
        launcher_id = self.farmers[0].launcher_id
        with pytest.raises(NotLeader):
            self.run(self.store.add_reward_claims([self.new_claim(h(self.next_label("coin")), launcher_id, 5, 0)]))
        if self.undistributed > 0:
            total = self.undistributed
            with pytest.raises(NotLeader):
                self.run(self.store.distribute(Distribution(self.counter, "proportional", total, total, 0, 0), []))
        assert (self.run(self.store.ledger()), self.run(self.store.ledger_entries())) == (before, journal)
        self.run(self.store.take_leadership("the machine again"))
        event("another process led for a while")

    # -- crashes ---------------------------------------------------------------------------------------------------
    @rule(open_twice=st.booleans())
    def restarted(self, open_twice: bool) -> None:
        self.run(self.store.close())
        self.store = self.new_store()
        self.run(self.store.open())
        if open_twice:  # opening an open store changes nothing
            self.run(self.store.open())
        self.run(self.store.take_leadership("the machine, restarted"))

    # -- the books -------------------------------------------------------------------------------------------------
    @invariant()
    def books_balance(self) -> None:
        s = self.run(self.store.ledger())
        assert s.balanced, s
        assert all(figure >= 0 for figure in astuple(s)), s
        confirmed = sum(c.amount for c in self.claims.values() if c.status is ClaimStatus.CONFIRMED)
        lost = sum(c.amount for c in self.claims.values() if c.status is ClaimStatus.LOST)
        assert s.lost_rewards == lost
        assert (
            s.confirmed_claims,
            s.undistributed,
            s.pool_fee_share,
            s.owed,
            s.farmer_payments,
            s.pool_fee_payments,
            s.blockchain_fees,
            s.pre_ledger_excess,
            s.operator_funding,
        ) == (
            confirmed,
            self.undistributed,
            self.pool_fee_share,
            sum(self.owed.values()),
            sum(self.paid.values()),
            self.pool_fee_payments,
            self.blockchain_fees,
            0,
            self.operator_funding,
        )

        # The journal, per kind, reconciles with the summary.
        entries = self.run(self.store.ledger_entries(limit=1_000_000))
        kind: dict[LedgerKind, int] = defaultdict(int)
        shares: dict[bytes32 | None, int] = defaultdict(int)
        payments: dict[bytes32 | None, int] = defaultdict(int)
        for entry in entries:
            assert entry.amount > 0
            kind[entry.kind] += entry.amount
            if entry.kind is LedgerKind.DISTRIBUTION_SHARE:
                shares[entry.launcher_id] += entry.amount
            elif entry.kind is LedgerKind.PAYMENT:
                payments[entry.launcher_id] += entry.amount
        K = LedgerKind
        assert kind[K.CLAIM] == s.confirmed_claims
        assert kind[K.CLAIM] - kind[K.DISTRIBUTION_POOL_FEE] - kind[K.DISTRIBUTION_SHARE] == s.undistributed
        assert kind[K.DISTRIBUTION_SHARE] - kind[K.PAYMENT] == s.owed
        assert kind[K.PAYMENT] == s.farmer_payments
        assert kind[K.POOL_FEE_PAYMENT] == s.pool_fee_payments
        chain_fees = kind[K.BATCH_FEE] - kind[K.BATCH_FEE_REFUND] + kind[K.CLAIM_FEE] - kind[K.CLAIM_FEE_REFUND]
        assert chain_fees == s.blockchain_fees
        assert kind[K.FEE_FUNDING] == s.operator_funding
        pool_fee_in = kind[K.DISTRIBUTION_POOL_FEE] + kind[K.FEE_FUNDING]
        assert pool_fee_in - kind[K.POOL_FEE_PAYMENT] - chain_fees == s.pool_fee_share

        # Per farmer: points and owed balances never negative; owed == credited - paid; never paid beyond credit.
        for farmer in self.run(self.store.list_farmers()):
            launcher_id = farmer.launcher_id
            assert farmer.points >= 0 and farmer.owed >= 0
            assert (farmer.points, farmer.owed) == (self.points[launcher_id], self.owed[launcher_id])
            assert farmer.owed == shares[launcher_id] - payments[launcher_id]
            paid = sum(p.amount for p in self.run(self.store.payments(launcher_id=launcher_id)))
            assert paid == payments[launcher_id] == self.paid[launcher_id] <= self.credited[launcher_id]

        # Distributions and rounds agree with their parts.
        distributions = self.run(self.store.distributions(limit=1_000_000))
        assert sum(d.total for d in distributions) == kind[K.DISTRIBUTION_POOL_FEE] + kind[K.DISTRIBUTION_SHARE]
        in_flight = 0
        open_rounds = []
        for payout_round in self.run(self.store.rounds(limit=1_000_000)):
            assert payout_round.id is not None
            batches = self.run(self.store.batches(payout_round.id))
            round_payments = self.run(self.store.payments(round_id=payout_round.id))
            assert payout_round.blockchain_fees == sum(b.fee for b in batches)
            assert (
                payout_round.total == payout_round.farmer_total + payout_round.pool_fee + payout_round.blockchain_fees
            )
            assert payout_round.farmer_total == sum(p.amount for p in round_payments if p.launcher_id is not None)
            assert payout_round.pool_fee == sum(p.amount for p in round_payments if p.launcher_id is None)
            done = all(b.status is BatchStatus.CONFIRMED for b in batches)
            assert (payout_round.status is RoundStatus.DONE) == done
            if not done:
                open_rounds.append(payout_round.id)
            unconfirmed = {b.index for b in batches if b.status is not BatchStatus.CONFIRMED}
            in_flight += sum(p.amount for p in round_payments if p.launcher_id and p.batch_index in unconfirmed)
            for batch in batches:
                assert batch.id is not None
                model = self.batches[batch.id]
                assert (batch.status, batch.fee, batch.tx_id) == (model.status, model.fee, model.tx_id)
                versions = self.run(self.store.batch_versions(batch.id))
                assert [v.version for v in versions] == list(range(1, model.versions + 1))
                assert versions == [] or versions[-1].tx_id == batch.tx_id
        assert s.farmer_payments_in_flight == in_flight
        assert open_rounds == ([] if self.open_round is None else [self.open_round])

        # Coins are held by exactly the transactions that may still land.
        assert self.run(self.store.reserved_coins()) == self.reserved
        claim_fees: dict[str, int] = defaultdict(int)  # per claim's coin: fees charged less fees given back
        for entry in entries:
            if entry.kind is LedgerKind.CLAIM_FEE:
                claim_fees[entry.reference] += entry.amount
            elif entry.kind is LedgerKind.CLAIM_FEE_REFUND:
                claim_fees[entry.reference] -= entry.amount
        for coin_id, model_claim in self.claims.items():
            recorded = self.run(self.store.get_reward_claim(coin_id))
            assert recorded is not None
            assert (
                recorded.status,
                recorded.fee,
                recorded.fee_settled,
                recorded.earlier_fees,
                recorded.spend_bundle_name,
            ) == (
                model_claim.status,
                model_claim.fee,
                model_claim.fee_settled,
                model_claim.earlier_fees,
                model_claim.bundle,
            )
            assert claim_fees[coin_id.hex()] == recorded.fee + recorded.earlier_fees
            # Every fee version is kept; those that may still land are the claim's, the newest its fee spend.
            fee_versions = self.run(self.store.claim_fee_versions(coin_id))
            assert [v.version for v in fee_versions] == list(range(1, model_claim.versions + 1))
            unsettled = [v for v in fee_versions if not v.settled]
            assert [v.fee for v in unsettled] == model_claim.unsettled_fees
            assert fee_versions[len(fee_versions) - len(unsettled) :] == unsettled  # the settled ones are the older
            if unsettled:
                assert (unsettled[-1].fee, unsettled[-1].spend_bundle) == (recorded.fee, recorded.fee_spend_bundle)


LedgerMachine.TestCase.settings = settings(
    max_examples=80,
    stateful_step_count=30,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
test_ledger_state_machine = LedgerMachine.TestCase
