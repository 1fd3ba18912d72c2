"""The behaviour every AbstractPoolStore implementation must have (run per backend by the ``store`` fixture)."""

from __future__ import annotations

import asyncio
import dataclasses
import random
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path

import pytest
from chia_rs import Program

from pool.chia_adapter import (
    AugSchemeMPL,
    Coin,
    CoinSpend,
    G1Element,
    PoolSingletonState,
    PoolState,
    bytes32,
    std_hash,
    uint8,
    uint32,
    uint64,
)
from pool.payouts.split import Payable, plan_payments
from pool.protocol.difficulty import summarize
from pool.protocol.partials import proof_key
from pool.store import sql
from pool.store.abstract import (
    DIFFICULTY_HISTORY_SECONDS,
    AbstractPoolStore,
    CoinReserved,
    FarmerAlreadyExists,
    FarmerNotFound,
    InsufficientFunds,
    NotLeader,
    RoundAlreadyOpen,
    SchemaChanged,
    StaleTransaction,
    StoreError,
)
from pool.store.models import (
    BatchStatus,
    ClaimFeeVersion,
    ClaimStatus,
    DifficultyAdjustment,
    Distribution,
    DistributionShare,
    FarmerChangeKind,
    FarmerEarning,
    FarmerPayout,
    FarmerRecord,
    FarmerSettings,
    FarmerStanding,
    HarvesterFigures,
    LedgerEntry,
    LedgerKind,
    LedgerSummary,
    MemberDifficulty,
    NotAdded,
    OwedBalance,
    PartialCount,
    PartialRecord,
    PartialRefusal,
    PartialsSummary,
    PartialStatus,
    Payment,
    PayoutRound,
    PendingDifficulty,
    PoolFigures,
    RewardClaim,
    RoundStatus,
    SingletonPosition,
    TargetProof,
    WebSession,
    batch_holder,
    claim_holder,
)
from pool.store.sql import SqlPoolStore
from tests.store.conftest import StoreFactory

POOL_PUZZLE_HASH = std_hash(b"pool target")
DAY = 86_400


# -- builders: real chia types, deterministic from a small seed ---------------------------------------------------
def h(label: str | int) -> bytes32:
    return std_hash(str(label).encode())


def public_key(seed: int) -> G1Element:
    return AugSchemeMPL.key_gen(bytes([seed]) * 32).get_g1()


def singleton_spend(seed: int, amount: int = 1) -> CoinSpend:
    coin = Coin(h(f"parent {seed}"), h(f"singleton puzzle {seed}"), uint64(amount))
    return CoinSpend(coin, Program.to([1, seed]), Program.to([[seed, amount], 0]))


def pool_state(seed: int, state: PoolSingletonState = PoolSingletonState.FARMING_TO_POOL) -> PoolState:
    return PoolState(
        version=uint8(1),
        state=uint8(state.value),
        target_puzzle_hash=POOL_PUZZLE_HASH,
        owner_pubkey=public_key(seed + 100),
        pool_url="https://pool.example",
        relative_lock_height=uint32(100),
    )


def make_farmer(seed: int, *, points: int = 0, difficulty: int = 10, member: bool = True) -> FarmerRecord:
    return FarmerRecord(
        launcher_id=h(f"launcher {seed}"),
        p2_singleton_puzzle_hash=h(f"p2 {seed}"),
        delay_time=604800,
        delay_puzzle_hash=h(f"delay {seed}"),
        authentication_public_key=public_key(seed),
        singleton_tip=singleton_spend(seed),
        singleton_tip_state=pool_state(seed),
        difficulty=difficulty,
        payout_instructions=h(f"payout {seed}").hex(),
        payout_puzzle_hash=h(f"payout {seed}"),
        is_pool_member=member,
        points=points,
        joined_at=1_000 + seed,
    )


def make_partial(
    farmer: FarmerRecord, proof: str | int, received_at: int, difficulty: int | None = None
) -> PartialRecord:
    return PartialRecord(
        launcher_id=farmer.launcher_id,
        # The same proof always names the same signage point, so it has the same key whenever it comes.
        proof_hash=proof_key(h(f"sp of {proof}"), h(f"proof {proof}")),
        sp_hash=h(f"sp of {proof}"),
        end_of_sub_slot=False,
        harvester_id=h("harvester"),
        received_at=received_at,
        difficulty=farmer.difficulty if difficulty is None else difficulty,
    )


def make_claim(
    coin: str,
    farmer: FarmerRecord,
    status: ClaimStatus = ClaimStatus.SUBMITTED,
    amount: int = 1750,
    fee: int = 0,
) -> RewardClaim:
    return RewardClaim(
        coin_id=h(coin),
        launcher_id=farmer.launcher_id,
        amount=amount,
        coin_height=50,
        spend_bundle_name=h(f"bundle {coin} {status.value}"),
        status=status,
        submitted_at=2_000,
        submitted_height=60,
        fee=fee,
        fee_spend_bundle=None if fee == 0 else f"fee spend {coin}".encode(),
        fee_settled=fee == 0,  # a fee spend settles once the chain shows where it went
    )


def make_round(
    farmer_total: int, pool_fee: int = 0, batch_fees: Sequence[int] = (0,), created_at: int = 5_000
) -> PayoutRound:
    """A round whose figures match its payments (farmer_total, pool_fee) and its batch fees."""
    blockchain_fees = sum(batch_fees)
    return PayoutRound(
        created_at=created_at,
        scheme="proportional",
        total=farmer_total + pool_fee + blockchain_fees,
        pool_fee=pool_fee,
        blockchain_fees=blockchain_fees,
        farmer_total=farmer_total,
    )


def farmer_payment(farmer: FarmerRecord, amount: int, batch_index: int = 0) -> Payment:
    return Payment(
        puzzle_hash=farmer.payout_puzzle_hash,
        amount=amount,
        launcher_id=farmer.launcher_id,
        points=0,
        batch_index=batch_index,
    )


def fee_payment(amount: int, batch_index: int = 0) -> Payment:
    return Payment(puzzle_hash=h("fee"), amount=amount, launcher_id=None, points=0, batch_index=batch_index)


async def record_of(store: AbstractPoolStore, farmer: FarmerRecord) -> FarmerRecord:
    record = await store.get_farmer(farmer.launcher_id)
    assert record is not None
    return record


async def points_of(store: AbstractPoolStore, farmer: FarmerRecord) -> int:
    return (await record_of(store, farmer)).points


async def owed_of(store: AbstractPoolStore, farmer: FarmerRecord) -> int:
    return (await record_of(store, farmer)).owed


async def add_farmers(store: AbstractPoolStore, *points: int) -> list[FarmerRecord]:
    farmers = [make_farmer(seed, points=p) for seed, p in enumerate(points, start=1)]
    for farmer in farmers:
        await store.add_farmer(farmer)
    return farmers


async def credit(store: AbstractPoolStore, farmer: FarmerRecord, coin: str, amount: int) -> None:
    """A confirmed reward claim: ``amount`` mojos of undistributed ledger money."""
    assert await store.add_reward_claim(make_claim(coin, farmer, amount=amount))
    await store.update_reward_claim(h(coin), ClaimStatus.CONFIRMED, confirmed_height=70)


def distribution(farmer_total: int, pool_fee: int = 0, remainder: int = 0) -> Distribution:
    return Distribution(
        created_at=4_000,
        scheme="proportional",
        total=farmer_total + pool_fee,
        pool_fee=pool_fee,
        farmer_total=farmer_total,
        remainder=remainder,
    )


async def fund(
    store: AbstractPoolStore,
    shares: Sequence[tuple[FarmerRecord, int]],
    pool_fee: int = 0,
    claimant: FarmerRecord | None = None,
) -> int:
    """Owed balances and a pool fee share, made the only way they can be: a confirmed claim of exactly their sum,
    then a distribution of it (taking no points). Returns the distribution id."""
    claimant = claimant if claimant is not None else shares[0][0]
    farmer_total = sum(amount for _, amount in shares)
    coin = f"funding claim {len(await store.reward_claims())}"
    await credit(store, claimant, coin, farmer_total + pool_fee)
    return await store.distribute(
        distribution(farmer_total, pool_fee),
        [DistributionShare(farmer.launcher_id, amount, points=0) for farmer, amount in shares],
    )


def totals_by_kind(entries: Sequence[LedgerEntry]) -> dict[LedgerKind, int]:
    totals: dict[LedgerKind, int] = defaultdict(int)
    for entry in entries:
        totals[entry.kind] += entry.amount
    return dict(totals)


# -- lifecycle ----------------------------------------------------------------------------------------------------
async def test_new_store_is_at_a_schema_version(store_factory: StoreFactory, tmp_path: Path) -> None:
    store = store_factory(tmp_path, empty=True)  # its migrations run from nothing, not copied
    await store.open()
    try:
        assert await store.schema_version() >= 1
    finally:
        await store.close()


async def test_a_store_that_is_not_open_refuses_work(store_factory: StoreFactory, tmp_path: Path) -> None:
    closed = store_factory(tmp_path / "elsewhere")
    with pytest.raises(StoreError):
        await closed.get_farmer(h("anything"))


# -- farmers ------------------------------------------------------------------------------------------------------
async def test_farmer_round_trips_with_its_chia_types(store: AbstractPoolStore) -> None:
    farmer = dataclasses.replace(make_farmer(1, points=7), pending_difficulty=20, pending_difficulty_at=3_000)
    await store.add_farmer(farmer)
    assert await store.get_farmer(farmer.launcher_id) == farmer
    assert await store.get_farmer(h("unknown launcher")) is None


async def test_duplicate_farmer_is_refused_and_the_original_kept(store: AbstractPoolStore) -> None:
    farmer = make_farmer(1)
    await store.add_farmer(farmer)
    with pytest.raises(FarmerAlreadyExists):
        await store.add_farmer(dataclasses.replace(farmer, difficulty=999, payout_instructions="other"))
    assert await store.get_farmer(farmer.launcher_id) == farmer


async def test_singleton_positions_are_a_page_of_tips_as_stored(store: AbstractPoolStore) -> None:
    """What the singleton loop reads of every farmer every pass: the tip and state as stored (nothing decoded), a page
    at a time by launcher id, and what a later update_singleton recorded."""
    farmers = sorted(await add_farmers(store, 1, 2, 3), key=lambda f: f.launcher_id)
    v2_state = dataclasses.replace(pool_state(9), version=uint8(2))
    await store.update_singleton(farmers[1].launcher_id, singleton_spend(9), v2_state, False)
    farmers[1] = dataclasses.replace(
        farmers[1], singleton_tip=singleton_spend(9), singleton_tip_state=v2_state, is_pool_member=False
    )
    expected = [
        SingletonPosition(
            launcher_id=f.launcher_id,
            p2_singleton_puzzle_hash=f.p2_singleton_puzzle_hash,
            delay_time=f.delay_time,
            delay_puzzle_hash=f.delay_puzzle_hash,
            singleton_tip=bytes(f.singleton_tip),
            singleton_tip_state=bytes(f.singleton_tip_state),
            is_pool_member=f.is_pool_member,
        )
        for f in farmers
    ]
    first = await store.singleton_positions(None, 2)
    assert first == expected[:2]
    assert await store.singleton_positions(first[-1].launcher_id, 2) == expected[2:]
    assert await store.singleton_positions(farmers[2].launcher_id, 2) == []
    assert [p.protocol_version for p in expected] == [f.protocol_version for f in farmers] == [1, 2, 1]


async def test_farmer_standings_are_read_together(store: AbstractPoolStore, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sql, "ROWS_PER_STATEMENT", 2)  # more farmers than one statement reads
    member, former, banned = make_farmer(1), make_farmer(2, member=False), make_farmer(3)
    for farmer in (member, former, banned):
        await store.add_farmer(farmer)
    await store.ban_farmer(banned.launcher_id, "cheating", now=7_000)
    ids = [f.launcher_id for f in (member, former, banned)]
    assert await store.farmer_standings([*ids, h("unknown"), member.launcher_id]) == {
        member.launcher_id: FarmerStanding(True, None),
        former.launcher_id: FarmerStanding(False, None),
        banned.launcher_id: FarmerStanding(True, 7_000),
    }
    assert await store.farmer_standings([]) == {}


async def test_list_farmers_can_keep_only_members(store: AbstractPoolStore) -> None:
    member, former = make_farmer(1), make_farmer(2, member=False)
    await store.add_farmer(member)
    await store.add_farmer(former)
    assert {f.launcher_id for f in await store.list_farmers()} == {member.launcher_id, former.launcher_id}
    assert [f.launcher_id for f in await store.list_farmers(members_only=True)] == [member.launcher_id]


async def test_update_farmer_settings_changes_only_what_is_given(store: AbstractPoolStore) -> None:
    farmer = make_farmer(1)
    await store.add_farmer(farmer)
    new_key = public_key(55)
    await store.update_farmer_settings(farmer.launcher_id, authentication_public_key=new_key)
    await store.update_farmer_settings(farmer.launcher_id, payout_instructions=("XCH1ABC", h("new payout")))
    await store.update_farmer_settings(farmer.launcher_id)  # nothing given: nothing changes
    expected = dataclasses.replace(
        farmer, authentication_public_key=new_key, payout_instructions="XCH1ABC", payout_puzzle_hash=h("new payout")
    )
    assert await store.get_farmer(farmer.launcher_id) == expected


async def test_farmer_updates_of_an_unknown_farmer_raise(store: AbstractPoolStore) -> None:
    unknown = h("unknown launcher")
    with pytest.raises(FarmerNotFound):
        await store.update_farmer_settings(unknown, pending_difficulty=PendingDifficulty(5, 10, 5))
    with pytest.raises(FarmerNotFound):
        await store.update_farmer_settings(unknown)
    with pytest.raises(FarmerNotFound):
        await store.set_difficulty(unknown, 5, 10)
    with pytest.raises(FarmerNotFound):
        await store.apply_due_difficulty(unknown, 10)
    with pytest.raises(FarmerNotFound):
        await store.difficulty_at(unknown, 10)
    with pytest.raises(FarmerNotFound):
        await store.update_singleton(unknown, singleton_spend(1), pool_state(1), True)


async def test_pending_difficulty_takes_effect_only_when_due(store: AbstractPoolStore) -> None:
    farmer = make_farmer(1, difficulty=10)
    await store.add_farmer(farmer)
    await store.update_farmer_settings(farmer.launcher_id, pending_difficulty=PendingDifficulty(50, 2_000, 1_700))

    recorded = await store.get_farmer(farmer.launcher_id)
    assert recorded is not None
    assert (recorded.difficulty, recorded.pending_difficulty, recorded.pending_difficulty_at) == (10, 50, 2_000)
    assert recorded.difficulty_at(1_999) == 10
    assert recorded.difficulty_at(2_000) == 50

    assert await store.apply_due_difficulty(farmer.launcher_id, 1_999) == 10
    still_pending = await store.get_farmer(farmer.launcher_id)
    assert still_pending is not None and still_pending.pending_difficulty == 50

    assert await store.apply_due_difficulty(farmer.launcher_id, 2_000) == 50
    applied = await store.get_farmer(farmer.launcher_id)
    assert applied is not None
    assert (applied.difficulty, applied.pending_difficulty, applied.pending_difficulty_at) == (50, None, None)
    assert applied.difficulty_since == 2_000
    assert await store.apply_due_difficulty(farmer.launcher_id, 9_999) == 50


async def test_set_difficulty_replaces_a_pending_one(store: AbstractPoolStore) -> None:
    farmer = make_farmer(1, difficulty=10)
    await store.add_farmer(farmer)
    await store.update_farmer_settings(farmer.launcher_id, pending_difficulty=PendingDifficulty(50, 2_000, 1_700))
    await store.set_difficulty(farmer.launcher_id, 30, 1_800)
    recorded = await store.get_farmer(farmer.launcher_id)
    assert recorded is not None
    assert (recorded.difficulty, recorded.pending_difficulty, recorded.pending_difficulty_at) == (30, None, None)
    assert await store.apply_due_difficulty(farmer.launcher_id, 9_999) == 30


async def test_adjust_difficulty_is_compare_and_set(store: AbstractPoolStore) -> None:
    farmer = make_farmer(1, difficulty=10)
    await store.add_farmer(farmer)
    assert await store.adjust_difficulty(farmer.launcher_id, 10, 20, 1_500)
    assert await store.adjust_difficulty(farmer.launcher_id, 10, 40, 1_600) is False  # someone changed it meanwhile
    await store.update_farmer_settings(farmer.launcher_id, pending_difficulty=PendingDifficulty(50, 2_000, 1_700))
    assert await store.adjust_difficulty(farmer.launcher_id, 20, 5, 1_800) is False  # the farmer's PUT is pending
    recorded = await store.get_farmer(farmer.launcher_id)
    assert recorded is not None
    assert (recorded.difficulty, recorded.pending_difficulty, recorded.pending_difficulty_at) == (20, 50, 2_000)
    with pytest.raises(FarmerNotFound):
        await store.adjust_difficulty(h("unknown"), 10, 20, 1_500)


async def test_a_difficulty_pass_applies_due_ones_and_its_changes_together(store: AbstractPoolStore) -> None:
    steady, moved, asked, preset, gone = (make_farmer(seed, difficulty=10) for seed in range(1, 6))
    for farmer in (steady, moved, asked, preset, dataclasses.replace(gone, is_pool_member=False)):
        await store.add_farmer(farmer)
    await store.update_farmer_settings(asked.launcher_id, pending_difficulty=PendingDifficulty(50, 2_000, 1_700))
    await store.change_farmer_settings(FarmerSettings(preset.launcher_id, difficulty_preset=70), now=1_700)
    members = await store.member_difficulties()
    assert sorted(members, key=lambda m: m.launcher_id) == members  # in the order of their launcher ids
    assert {m.launcher_id: m for m in members} == {
        steady.launcher_id: MemberDifficulty(steady.launcher_id, 10, None, steady.joined_at, None),
        moved.launcher_id: MemberDifficulty(moved.launcher_id, 10, None, moved.joined_at, None),
        asked.launcher_id: MemberDifficulty(asked.launcher_id, 10, 50, asked.joined_at, None),
        preset.launcher_id: MemberDifficulty(preset.launcher_id, 10, None, preset.joined_at, 70),
    }  # a farmer that left is no member
    ids = [m.launcher_id for m in members]
    assert await store.member_difficulties(first=ids[1], end=ids[3]) == members[1:3]  # a slice of the launcher ids
    assert await store.member_difficulties(first=ids[2]) == members[2:]
    assert await store.adjust_difficulties([], 2_001) == []
    adjustments = [
        DifficultyAdjustment(moved.launcher_id, 10, 20),
        DifficultyAdjustment(steady.launcher_id, 15, 30),  # changed meanwhile: left as it is
        DifficultyAdjustment(h("unknown"), 10, 30),
    ]
    changed = await store.adjust_difficulties(adjustments, 2_001, due=[asked.launcher_id], now=2_000)
    assert changed == [moved.launcher_id]
    difficulties = {m.launcher_id: (m.difficulty, m.pending_difficulty) for m in await store.member_difficulties()}
    assert difficulties[moved.launcher_id] == (20, None) and difficulties[steady.launcher_id] == (10, None)
    assert difficulties[asked.launcher_id] == (50, None)  # its pending difficulty became current
    assert await store.difficulty_at(moved.launcher_id, 2_000) == 10
    assert await store.difficulty_at(moved.launcher_id, 2_001) == 20


async def test_many_difficulties_change_in_one_pass_a_few_statements_each_checked(
    store: AbstractPoolStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sql, "ROWS_PER_STATEMENT", 2)  # the compare-and-set read over several statements
    farmers = [make_farmer(n, difficulty=10) for n in range(1, 8)]
    for farmer in farmers:
        await store.add_farmer(farmer)
    stale = farmers[5]  # its difficulty changed since the pass read it: the expected 10 is no longer current
    await store.set_difficulty(stale.launcher_id, 12, now=1_000)
    adjustments = [DifficultyAdjustment(f.launcher_id, 10, 10 + n) for n, f in enumerate(farmers, start=1)]
    changed = await store.adjust_difficulties(adjustments, 2_001, now=2_000)
    assert set(changed) == {f.launcher_id for f in farmers} - {stale.launcher_id}
    difficulties = {m.launcher_id: m.difficulty for m in await store.member_difficulties()}
    for n, farmer in enumerate(farmers, start=1):
        assert difficulties[farmer.launcher_id] == (12 if farmer is stale else 10 + n)
        if farmer is not stale:
            assert await store.difficulty_at(farmer.launcher_id, 2_000) == 10
            assert await store.difficulty_at(farmer.launcher_id, 2_001) == 10 + n


async def test_singleton_update_round_trips_spend_state_and_membership(store: AbstractPoolStore) -> None:
    farmer = make_farmer(1)
    await store.add_farmer(farmer)
    new_tip = singleton_spend(77, amount=1)
    leaving = pool_state(1, PoolSingletonState.LEAVING_POOL)
    await store.update_singleton(farmer.launcher_id, new_tip, leaving, False)

    recorded = await store.get_farmer(farmer.launcher_id)
    assert recorded is not None
    assert recorded.singleton_tip == new_tip
    assert bytes(recorded.singleton_tip) == bytes(new_tip)
    assert recorded.singleton_tip.coin.name() == new_tip.coin.name()
    assert recorded.singleton_tip_state == leaving
    assert recorded.is_pool_member is False
    assert await store.list_farmers(members_only=True) == []


async def test_singleton_update_with_expected_tip_is_compare_and_set(store: AbstractPoolStore) -> None:
    farmer = make_farmer(1)
    await store.add_farmer(farmer)
    newer, older_view = singleton_spend(80), singleton_spend(81)
    leaving = pool_state(1, PoolSingletonState.LEAVING_POOL)
    # Two writers started from the recorded tip; the first one wins, the second (computed earlier) writes nothing.
    assert await store.update_singleton(farmer.launcher_id, newer, leaving, False, expected_tip=farmer.singleton_tip)
    assert not await store.update_singleton(
        farmer.launcher_id, older_view, farmer.singleton_tip_state, True, expected_tip=farmer.singleton_tip
    )
    recorded = await store.get_farmer(farmer.launcher_id)
    assert recorded is not None
    assert (recorded.singleton_tip, recorded.singleton_tip_state, recorded.is_pool_member) == (newer, leaving, False)
    assert await store.update_singleton(farmer.launcher_id, newer, leaving, True, expected_tip=newer)
    with pytest.raises(FarmerNotFound):
        await store.update_singleton(h("unknown"), newer, leaving, True, expected_tip=newer)


async def test_put_tokens_must_increase(store: AbstractPoolStore) -> None:
    farmer = make_farmer(1)
    await store.add_farmer(farmer)
    assert (await store.get_farmer(farmer.launcher_id)).last_put_token is None  # type: ignore[union-attr]
    assert await store.accept_put_token(farmer.launcher_id, 100)
    assert not await store.accept_put_token(farmer.launcher_id, 100)  # a replay of the same PUT
    assert not await store.accept_put_token(farmer.launcher_id, 99)
    assert await store.accept_put_token(farmer.launcher_id, 101)
    assert (await store.get_farmer(farmer.launcher_id)).last_put_token == 101  # type: ignore[union-attr]
    with pytest.raises(FarmerNotFound):
        await store.accept_put_token(h("unknown"), 1)


async def test_stale_partials_are_credited_or_dropped_once_and_counted(store: AbstractPoolStore) -> None:
    farmer = make_farmer(1, difficulty=10)
    await store.add_farmer(farmer)
    credited = await store.add_partial(make_partial(farmer, "a", 100, difficulty=7))
    dropped = await store.add_partial(make_partial(farmer, "b", 100, difficulty=5))
    assert credited is not None and dropped is not None
    assert await store.settle_stale_partial(credited, True, "stale")
    assert not await store.settle_stale_partial(credited, True, "stale")  # credited exactly once
    assert await store.settle_stale_partial(dropped, False, "stale: dropped")
    assert not await store.confirm_partial(dropped)
    first, second = await store.get_partial(credited), await store.get_partial(dropped)
    assert first is not None and (first.status, first.stale) == (PartialStatus.CONFIRMED, True)
    assert second is not None and (second.status, second.stale, second.reject_reason) == (
        PartialStatus.REJECTED,
        True,
        "stale: dropped",
    )
    assert await points_of(store, farmer) == 7
    assert await store.count_stale_partials() == 2


async def test_state_figures_are_the_counts_and_sums_of_the_rows(store: AbstractPoolStore) -> None:
    empty = await store.state_figures()
    assert (empty.farmers, empty.points, empty.pending_partials, empty.claims, empty.rounds) == (
        {False: 0, True: 0},
        0,
        0,
        {},
        {},
    )
    member, other = await add_farmers(store, 30, 12)
    gone = make_farmer(3, points=5, member=False)
    await store.add_farmer(gone)
    pending = await store.add_partial(make_partial(member, "a", 100))
    confirmed = await store.add_partial(make_partial(member, "b", 100, difficulty=4))
    assert pending is not None and confirmed is not None and await store.confirm_partial(confirmed)
    assert await store.add_reward_claim(make_claim("submitted", other, amount=1_000))
    await fund(store, [(member, 600)], pool_fee=100)  # a confirmed claim of 700
    await store.create_payout_round(make_round(600), [farmer_payment(member, 600)], [0])

    figures = await store.state_figures()
    farmers = await store.list_farmers()
    assert figures.farmers == {True: 2, False: 1}
    assert figures.points == sum(f.points for f in farmers) == 30 + 4 + 12 + 5
    assert figures.pending_partials == len(await store.pending_partials(received_before=10**9)) == 1
    assert figures.claims == {ClaimStatus.SUBMITTED: (1, 1_000), ClaimStatus.CONFIRMED: (1, 700)}
    assert figures.rounds == {RoundStatus.OPEN: 1}


# -- partials -----------------------------------------------------------------------------------------------------
async def test_partial_round_trips_as_pending_with_an_id(store: AbstractPoolStore) -> None:
    farmer = make_farmer(1)
    await store.add_farmer(farmer)
    partial = dataclasses.replace(make_partial(farmer, "a", 100), end_of_sub_slot=True)
    partial_id = await store.add_partial(partial)
    assert partial_id is not None
    assert await store.get_partial(partial_id) == dataclasses.replace(partial, id=partial_id)
    assert await store.get_partial(partial_id + 1000) is None


async def test_partial_of_an_unknown_farmer_is_refused(store: AbstractPoolStore) -> None:
    with pytest.raises(FarmerNotFound):
        await store.add_partial(make_partial(make_farmer(9), "a", 100))


async def test_a_partial_cannot_be_added_already_credited(store: AbstractPoolStore) -> None:
    farmer = make_farmer(1)
    await store.add_farmer(farmer)
    with pytest.raises(StoreError):
        await store.add_partial(dataclasses.replace(make_partial(farmer, "a", 100), status=PartialStatus.CONFIRMED))
    assert await points_of(store, farmer) == 0


async def test_duplicate_proof_hash_is_recorded_and_credited_once(store: AbstractPoolStore) -> None:
    farmer = make_farmer(1, difficulty=10)
    await store.add_farmer(farmer)
    first = await store.add_partial(make_partial(farmer, "same proof", 100))
    again = await store.add_partial(make_partial(farmer, "same proof", 105, difficulty=500))
    assert first is not None
    assert again is None
    assert [p.id for p in await store.pending_partials(received_before=10_000)] == [first]
    assert await store.confirm_partial(first)
    assert await points_of(store, farmer) == 10


async def test_confirming_twice_credits_once(store: AbstractPoolStore) -> None:
    farmer = make_farmer(1, difficulty=25)
    await store.add_farmer(farmer)
    partial_id = await store.add_partial(make_partial(farmer, "a", 100))
    assert partial_id is not None
    assert await store.confirm_partial(partial_id) is True
    assert await store.confirm_partial(partial_id) is False
    assert await points_of(store, farmer) == 25
    confirmed = await store.get_partial(partial_id)
    assert confirmed is not None and confirmed.status is PartialStatus.CONFIRMED
    assert await store.confirm_partial(partial_id + 1000) is False


async def test_concurrent_confirmations_credit_once(store: AbstractPoolStore) -> None:
    farmer = make_farmer(1, difficulty=25)
    await store.add_farmer(farmer)
    partial_id = await store.add_partial(make_partial(farmer, "a", 100))
    assert partial_id is not None
    results = await asyncio.gather(*(store.confirm_partial(partial_id) for _ in range(20)))
    assert sorted(results) == [False] * 19 + [True]
    assert await points_of(store, farmer) == 25


async def test_points_are_the_difficulty_recorded_with_the_partial(store: AbstractPoolStore) -> None:
    farmer = make_farmer(1, difficulty=10)
    await store.add_farmer(farmer)
    received_at_10 = await store.add_partial(make_partial(farmer, "a", 100))
    await store.set_difficulty(farmer.launcher_id, 1_000, 150)  # later changes never reach partials already received
    received_at_1000 = await store.add_partial(make_partial(farmer, "b", 200, difficulty=1_000))
    assert received_at_10 is not None and received_at_1000 is not None
    assert await store.confirm_partial(received_at_10)
    assert await store.confirm_partial(received_at_1000)
    assert await points_of(store, farmer) == 1_010


async def test_partials_are_settled_many_in_one_call_each_once(store: AbstractPoolStore) -> None:
    """The confirmation loop settles a batch's stale and rejected partials together: only those still pending are
    settled, and a stale partial's points are credited once, summed per farmer."""
    one, two = make_farmer(1), make_farmer(2)
    for farmer in (one, two):
        await store.add_farmer(farmer)
    ids = [
        await store.add_partial(make_partial(farmer, f"{farmer.launcher_id.hex()} {n}", 100, difficulty=n + 1))
        for farmer in (one, two)
        for n in range(3)
    ]
    assert None not in ids
    one_ids, two_ids = [i for i in ids[:3] if i is not None], [i for i in ids[3:] if i is not None]
    assert await store.confirm_partial(one_ids[0])  # settled before: left as it is by both calls below
    assert await store.settle_stale_partials([*one_ids, two_ids[0]], True, "stale") == [*one_ids[1:], two_ids[0]]
    assert await store.settle_stale_partials(one_ids, True, "stale") == []  # credited exactly once
    assert await store.settle_stale_partials([two_ids[1]], False, "stale: dropped") == [two_ids[1]]
    assert await store.reject_partials([*two_ids, one_ids[2]], "signage point reverted") == [two_ids[2]]
    assert await store.reject_partials([], "nothing") == await store.settle_stale_partials([], True, "") == []
    assert (await points_of(store, one), await points_of(store, two)) == (1 + 2 + 3, 1)
    settled = {i: await store.get_partial(i) for i in ids if i is not None}
    summary = {i: (p.status, p.stale, p.reject_reason) for i, p in settled.items() if p is not None}
    assert summary == {
        one_ids[0]: (PartialStatus.CONFIRMED, False, None),
        one_ids[1]: (PartialStatus.CONFIRMED, True, None),
        one_ids[2]: (PartialStatus.CONFIRMED, True, None),
        two_ids[0]: (PartialStatus.CONFIRMED, True, None),
        two_ids[1]: (PartialStatus.REJECTED, True, "stale: dropped"),
        two_ids[2]: (PartialStatus.REJECTED, False, "signage point reverted"),
    }


async def test_rejected_partial_keeps_its_reason_and_earns_nothing(store: AbstractPoolStore) -> None:
    farmer = make_farmer(1)
    await store.add_farmer(farmer)
    partial_id = await store.add_partial(make_partial(farmer, "a", 100))
    assert partial_id is not None
    assert await store.reject_partial(partial_id, "signage point reverted") is True
    assert await store.reject_partial(partial_id, "again") is False
    assert await store.confirm_partial(partial_id) is False
    rejected = await store.get_partial(partial_id)
    assert rejected is not None
    assert (rejected.status, rejected.reject_reason) == (PartialStatus.REJECTED, "signage point reverted")
    assert await points_of(store, farmer) == 0


async def test_a_confirmed_partial_cannot_be_rejected(store: AbstractPoolStore) -> None:
    farmer = make_farmer(1)
    await store.add_farmer(farmer)
    partial_id = await store.add_partial(make_partial(farmer, "a", 100))
    assert partial_id is not None
    assert await store.confirm_partial(partial_id)
    assert await store.reject_partial(partial_id, "late") is False
    confirmed = await store.get_partial(partial_id)
    assert confirmed is not None and confirmed.status is PartialStatus.CONFIRMED
    assert await points_of(store, farmer) == farmer.difficulty


async def test_pending_partials_are_the_old_pending_ones_oldest_first(store: AbstractPoolStore) -> None:
    one, two = make_farmer(1), make_farmer(2)
    await store.add_farmer(one)
    await store.add_farmer(two)
    ids = {}
    for proof, farmer, received_at in [("c", one, 300), ("a", two, 100), ("b", one, 200), ("d", two, 400)]:
        ids[proof] = await store.add_partial(make_partial(farmer, proof, received_at))
    confirmed, rejected = (
        await store.add_partial(make_partial(one, "e", 50)),
        await store.add_partial(make_partial(two, "f", 60)),
    )
    assert confirmed is not None and rejected is not None
    await store.confirm_partial(confirmed)
    await store.reject_partial(rejected, "bad")

    assert [p.id for p in await store.pending_partials(received_before=400)] == [ids["a"], ids["b"], ids["c"]]
    assert [p.id for p in await store.pending_partials(received_before=401)] == [ids[x] for x in "abcd"]
    assert [p.id for p in await store.pending_partials(received_before=10_000, limit=2)] == [ids["a"], ids["b"]]
    assert await store.pending_partials(received_before=100) == []


async def test_recent_partials_newest_first_with_status_filter(store: AbstractPoolStore) -> None:
    farmer, other = make_farmer(1), make_farmer(2)
    await store.add_farmer(farmer)
    await store.add_farmer(other)
    old = await store.add_partial(make_partial(farmer, "old", 99))
    at_since = await store.add_partial(make_partial(farmer, "at since", 100))
    later = await store.add_partial(make_partial(farmer, "later", 150))
    await store.add_partial(make_partial(other, "other farmer", 120))
    assert old is not None and at_since is not None and later is not None
    await store.confirm_partial(later)

    assert [p.id for p in await store.recent_partials(farmer.launcher_id, since=100)] == [later, at_since]
    confirmed_only = await store.recent_partials(farmer.launcher_id, since=0, statuses=[PartialStatus.CONFIRMED])
    assert [p.id for p in confirmed_only] == [later]
    pending_only = await store.recent_partials(farmer.launcher_id, since=0, statuses=[PartialStatus.PENDING])
    assert [p.id for p in pending_only] == [at_since, old]
    assert await store.recent_partials(farmer.launcher_id, since=0, statuses=[]) == []
    assert await store.recent_partials(h("nobody"), since=0) == []


async def test_confirmed_points_since_sums_confirmed_partials_per_farmer(store: AbstractPoolStore) -> None:
    one, two = make_farmer(1, difficulty=10), make_farmer(2, difficulty=7)
    await store.add_farmer(one)
    await store.add_farmer(two)

    async def confirmed(farmer: FarmerRecord, proof: str, received_at: int, difficulty: int) -> None:
        partial_id = await store.add_partial(make_partial(farmer, proof, received_at, difficulty))
        assert partial_id is not None and await store.confirm_partial(partial_id)

    await confirmed(one, "before window", 99, 1_000)
    await confirmed(one, "at window start", 100, 10)
    await confirmed(one, "inside", 500, 20)
    await confirmed(two, "inside two", 300, 7)
    await store.add_partial(make_partial(two, "still pending", 400, 50))
    zero = make_farmer(3)
    await store.add_farmer(zero)
    await confirmed(zero, "no points", 450, 0)  # in the window with its partial, if without points

    assert await store.confirmed_points_since(100) == {one.launcher_id: 30, two.launcher_id: 7, zero.launcher_id: 0}
    assert await store.confirmed_points_since(3500) == await store.confirmed_points_since(501) == {}
    assert await store.confirmed_points_since(-(10**9)) == {
        one.launcher_id: 1_030,
        two.launcher_id: 7,
        zero.launcher_id: 0,
    }


async def confirmed_points_row_by_row(
    store: AbstractPoolStore, farmers: Sequence[FarmerRecord], since: int
) -> dict[bytes32, int]:
    """What ``confirmed_points_since`` must answer, summed here from the confirmed partials the store still keeps."""
    points = {}
    for farmer in farmers:
        kept = await store.recent_partials(farmer.launcher_id, since=since, statuses=[PartialStatus.CONFIRMED])
        if kept:
            points[farmer.launcher_id] = sum(p.difficulty for p in kept)
    return points


async def test_confirmed_points_since_from_hourly_counts_match_the_partials_across_hours(
    store: AbstractPoolStore,
) -> None:
    """The window reads whole hours from their counts and the hour ``since`` falls in partial by partial: random
    partials over many hours (hour edges, seconds shared), confirmed in random orders and batches (later than
    received, twice, twice at once, stale, beside a prune), rejected or left pending, pruned in part and then whole,
    against a plain sum of the confirmed partials kept, at random starts of the window."""
    rng = random.Random(20)
    base = 3600 * 1000
    farmers = [make_farmer(n) for n in range(1, 31)]
    ids: list[int] = []
    for farmer in farmers:
        await store.add_farmer(farmer)
        moments = [base + rng.randrange(0, 12 * 3600) for _ in range(rng.randrange(0, 25))]
        moments += [base + 3600 * rng.randrange(0, 13) + rng.choice((-1, 0, 1)) for _ in range(rng.randrange(0, 4))]
        moments += rng.sample(moments, min(len(moments), rng.randrange(0, 3)))
        partials = [
            make_partial(farmer, f"{farmer.launcher_id.hex()} {n}", at, rng.choice((1, 2, 8, 100)))
            for n, at in enumerate(moments)
        ]
        ids += [i for i in await store.record_partials(partials) if isinstance(i, int)]
    rng.shuffle(ids)
    edges = [base + 3600 * hour + delta for hour in range(-1, 14) for delta in (-1, 0, 1)]

    async def same_as_row_by_row(stage: str) -> None:
        for since in [base - 10**6, *rng.sample(edges, 8), *(base + rng.randrange(0, 13 * 3600) for _ in range(8))]:
            expected = await confirmed_points_row_by_row(store, farmers, since)
            assert await store.confirmed_points_since(since) == expected, (stage, since)

    await same_as_row_by_row("none confirmed")
    assert await store.confirmed_points_since(base - 10**6) == {}
    confirmed: set[int] = set()
    first, rest = ids[: len(ids) // 3], ids[len(ids) // 3 :]
    for start in range(0, len(first), 7):
        batch = first[start : start + 7]
        confirmed |= set(await store.confirm_partials(batch + batch[:2]))  # an id asked twice is confirmed once
    await same_as_row_by_row("a third confirmed")

    # The same partials confirmed twice at once, stale ones credited or not, some rejected, one asked again.
    twice, stale, lost, rejected, left = (rest[n::5] for n in range(5))
    done = await asyncio.gather(store.confirm_partials(twice), store.confirm_partials(twice[::-1]))
    assert sorted(done[0] + done[1]) == sorted(twice)
    assert await store.settle_stale_partials(stale, credit=True, reason="stale") == sorted(stale)
    assert await store.settle_stale_partials(lost, credit=False, reason="stale") == sorted(lost)
    assert await store.reject_partials(rejected, "too late") == sorted(rejected)
    assert await store.confirm_partials(first[:5] + rejected[:5]) == []
    await same_as_row_by_row("settled")

    # Pruned a batch at a time, and beside a confirmation: the counts follow the partials kept.
    cutoff = base + 3600 * 4 + 1800
    assert await store.prune_partials(cutoff, batch=3) > 0
    await same_as_row_by_row("pruned in part")
    pruning = asyncio.ensure_future(prune_all(store, cutoff, batch=4))
    await store.confirm_partials(left[: len(left) // 2])
    await pruning
    await same_as_row_by_row("pruned beside a confirmation")
    await store.confirm_partials(left)  # pending partials of pruned hours too
    await same_as_row_by_row("confirmed after a prune")
    await prune_all(store, base + 3600 * 9, batch=50)
    await same_as_row_by_row("pruned again")
    await prune_all(store, base + 3600 * 20, batch=50)
    assert await store.confirmed_points_since(base - 10**6) == {}


@pytest.mark.parametrize("per_read", [sql.SUMMARIES_PER_READ, 2, 1])
async def test_difficulty_summaries_are_the_summaries_of_each_members_recent_partials(
    store: AbstractPoolStore, per_read: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sql, "SUMMARIES_PER_READ", per_read)  # the members are summed up a page at a time
    steady, cut_low, cut_high, quiet, left = (make_farmer(n, difficulty=8) for n in range(1, 6))
    for farmer in (steady, cut_low, cut_high, quiet, left):
        await store.add_farmer(farmer)
    await store.update_singleton(left.launcher_id, left.singleton_tip, left.singleton_tip_state, is_pool_member=False)
    since, window = 1_000, 2_000
    received = {
        # the newest run at the current difficulty (8) reaches back into the window's start; one is too old
        steady: [(900, 8), (1_500, 8), (2_000, 8), (2_100, 8), (2_400, 8)],
        # another difficulty cuts the run; at a time shared with the current one, the higher difficulty comes first
        cut_low: [(2_050, 8), (2_200, 4), (2_200, 8), (2_500, 8), (2_600, 8)],
        cut_high: [(2_050, 8), (2_300, 16), (2_300, 8), (2_500, 8)],
        quiet: [(1_200, 8)],  # only before the window: a newest partial, no run
        left: [(2_500, 8)],
    }
    for farmer, partials in received.items():
        for n, (at, difficulty) in enumerate(partials):
            await store.add_partial(make_partial(farmer, f"{farmer.launcher_id.hex()} {n}", at, difficulty))
    summaries = await store.difficulty_summaries(since=since, window_start=window)
    assert set(summaries) == {steady.launcher_id, cut_low.launcher_id, cut_high.launcher_id, quiet.launcher_id}
    # A slice of the launcher ids (a large pool's pass): exactly the members from ``first`` on, before ``end``.
    ordered = sorted(summaries)
    middle = await store.difficulty_summaries(since=since, window_start=window, first=ordered[1], end=ordered[3])
    assert middle == {launcher_id: summaries[launcher_id] for launcher_id in ordered[1:3]}
    assert set(await store.difficulty_summaries(since=since, window_start=window, end=ordered[1])) == {ordered[0]}
    for farmer in (steady, cut_low, cut_high, quiet):
        in_range = [(at, difficulty) for at, difficulty in received[farmer] if at >= since]
        assert summaries[farmer.launcher_id] == summarize(in_range, farmer.difficulty, window), farmer
    assert summaries[steady.launcher_id] == PartialsSummary((2_400, 8), 3, 2_000)
    assert summaries[cut_low.launcher_id] == PartialsSummary((2_600, 8), 3, 2_200)
    assert summaries[cut_high.launcher_id] == PartialsSummary((2_500, 8), 1, 2_500)
    assert summaries[quiet.launcher_id] == PartialsSummary((1_200, 8), 0, None)


async def test_difficulty_summaries_from_hourly_counts_match_the_partials_across_hours(
    store: AbstractPoolStore,
) -> None:
    """The summaries read whole hours from their counts and the run's first hour partial by partial: random partials
    over many hours (shared seconds, hour edges, runs cut at every place) against ``summarize`` of the partials."""
    rng = random.Random(19)
    base = 3600 * 1000
    farmers = [make_farmer(n, difficulty=rng.choice((4, 8, 16))) for n in range(1, 41)]
    received: dict[bytes32, list[tuple[int, int]]] = {}
    for farmer in farmers:
        await store.add_farmer(farmer)
        moments = [base + rng.randrange(0, 12 * 3600) for _ in range(rng.randrange(0, 30))]
        moments += [base + 3600 * rng.randrange(0, 12) + rng.choice((-1, 0, 1)) for _ in range(rng.randrange(0, 4))]
        moments += rng.sample(moments, min(len(moments), rng.randrange(0, 3)))  # seconds shared by two partials
        received[farmer.launcher_id] = [
            (at, farmer.difficulty if rng.random() < 0.75 else rng.choice((2, 4, 8, 16, 32))) for at in moments
        ]
        partials = [
            make_partial(farmer, f"{farmer.launcher_id.hex()} {n}", at, difficulty)
            for n, (at, difficulty) in enumerate(received[farmer.launcher_id])
        ]
        # one insert statement for several partials of a farmer and hour, and single ones
        await store.record_partials(partials[: len(partials) // 2])
        for partial in partials[len(partials) // 2 :]:
            await store.add_partial(partial)
    for since, window in [
        (base, base + 6 * 3600),
        (base + 1800, base + 3 * 3600 + 1),
        (base + 5 * 3600 - 1, base + 11 * 3600),
        (base + 2 * 3600, base + 2 * 3600),
    ]:
        summaries = await store.difficulty_summaries(since=since, window_start=window)
        for farmer in farmers:
            in_range = [(at, d) for at, d in received[farmer.launcher_id] if at >= since]
            expected = summarize(in_range, farmer.difficulty, window) if in_range else None
            assert summaries.get(farmer.launcher_id) == expected, (since, window, received[farmer.launcher_id])


async def test_partial_counts_per_hour_and_outcome_include_refusals(store: AbstractPoolStore) -> None:
    farmer, other = make_farmer(1, difficulty=7), make_farmer(2)
    await store.add_farmer(farmer)
    await store.add_farmer(other)
    hour = 3600 * 100
    assert await store.oldest_pending_partial() is None
    ids = [await store.add_partial(make_partial(farmer, n, hour + n)) for n in range(4)]
    await store.add_partial(make_partial(farmer, "next hour", hour + 3600))
    await store.add_partial(make_partial(other, "other", hour + 5))
    await store.add_partial(make_partial(farmer, "too old", hour - 1))
    assert ids[0] is not None and ids[1] is not None
    await store.confirm_partial(ids[0])
    await store.reject_partial(ids[1], "singleton left the pool")
    await store.add_partial_refusal(farmer.launcher_id, hour + 10, "TOO_LATE")
    await store.add_partial_refusal(farmer.launcher_id, hour + 11, "TOO_LATE")
    with pytest.raises(FarmerNotFound):
        await store.add_partial_refusal(h("nobody"), hour, "TOO_LATE")

    assert await store.partial_counts(hour, farmer.launcher_id) == [
        PartialCount(hour, "TOO_LATE", 2, 0),
        PartialCount(hour, "confirmed", 1, 7),
        PartialCount(hour, "pending", 2, 14),
        PartialCount(hour, "singleton left the pool", 1, 7),
        PartialCount(hour + 3600, "pending", 1, 7),
    ]
    assert await store.partial_counts(hour, farmer.launcher_id, until=hour + 3) == [  # ids 0, 1 and 2
        PartialCount(hour, "confirmed", 1, 7),
        PartialCount(hour, "pending", 1, 7),
        PartialCount(hour, "singleton left the pool", 1, 7),
    ]
    assert await store.partial_counts(hour + 3, until=hour + 3600) == [
        PartialCount(hour, "TOO_LATE", 2, 0),
        PartialCount(hour, "pending", 2, 17),  # id 3 and the other farmer's
    ]
    everyone = await store.partial_counts(hour)
    assert sum(c.count for c in everyone if c.outcome == "pending") == 4
    assert await store.oldest_pending_partial() == hour - 1  # "too old"
    # The pool's accepted points, to the second: pending and confirmed, not rejected nor refused ones.
    assert await store.accepted_points(hour) == 7 * 4 + 10  # ids 0, 2, 3, "next hour", and the other farmer's
    assert await store.accepted_points(hour, until=hour + 3) == 7 * 2  # ids 0 and 2
    assert await store.accepted_points(hour + 3, until=hour + 3) == 0
    assert await store.accepted_points(0, until=hour) == 7  # "too old"


async def test_settled_points_and_counts_are_those_of_the_rows_for_settled_spans(store: AbstractPoolStore) -> None:
    """A settled span's points and counts from the hourly counts of confirmed partials (whole hours) and the rows
    (its part hours) are what accepted_points and partial_counts find row by row, for spans on and off the hours,
    before and after a prune."""
    farmers = [make_farmer(1, difficulty=7), make_farmer(2, difficulty=10)]
    start = 3600 * 200
    for farmer in farmers:
        await store.add_farmer(farmer)
    outcomes = ("confirmed", "confirmed", "rejected", "credited", "dropped")
    for number in range(60):
        farmer = farmers[number % 2]
        at = start + number * 397  # some seven hours, partials at every minute of the hour
        found = await store.add_partial(make_partial(farmer, f"settled {number}", at))
        assert found is not None
        outcome = outcomes[number % len(outcomes)]
        if outcome == "confirmed":
            await store.confirm_partials([found])
        elif outcome == "rejected":
            await store.reject_partial(found, "singleton left the pool")
        else:
            await store.settle_stale_partial(found, outcome == "credited", "stale")
    await store.add_partial_refusal(farmers[0].launcher_id, start + 5000, "TOO_LATE")
    bounds = [start - 3600, start, start + 1, start + 3599, start + 3600, start + 4000, start + 3 * 3600 + 17]
    bounds += [start + 5 * 3600, start + 6 * 3600 + 1234, start + 9 * 3600]
    spans = [(since, until) for since in bounds for until in bounds if since <= until]

    async def both() -> list[tuple[int, int]]:
        return [(await store.settled_points(a, b), await store.accepted_points(a, b)) for a, b in spans]

    async def counts_both() -> list[tuple[list[PartialCount], list[PartialCount]]]:
        return [(await store.settled_counts(a, b), await store.partial_counts(a, until=b)) for a, b in spans]

    figures = await both()
    assert all(settled == accepted for settled, accepted in figures)
    everything = spans.index((start - 3600, start + 9 * 3600))
    assert figures[everything][0] == 18 * 7 + 18 * 10  # 36 accepted (confirmed or credited as stale), half each
    counts = await counts_both()
    assert all(settled == rows for settled, rows in counts)
    outcomes_counted = {count.outcome: 0 for count in counts[everything][0]}
    for count in counts[everything][0]:
        outcomes_counted[count.outcome] += count.count
    assert outcomes_counted == {"confirmed": 36, "singleton left the pool": 12, "stale": 12, "TOO_LATE": 1}
    # The oldest hours pruned (into hourly counts of their own), the cut not on an hour.
    assert sum(await prune_all(store, start + 2 * 3600 + 1800, batch=7)) > 0
    after = await both()
    assert all(settled == accepted for settled, accepted in after)
    assert after[everything] == figures[everything]
    counts_after = await counts_both()
    assert all(settled == rows for settled, rows in counts_after)
    assert counts_after[everything] == counts[everything]


async def test_harvester_figures_per_harvester_newest_first_bounded(store: AbstractPoolStore) -> None:
    farmer, other = make_farmer(1, difficulty=7), make_farmer(2)
    await store.add_farmer(farmer)
    await store.add_farmer(other)
    start = 3600 * 50

    async def partial(who: FarmerRecord, harvester: str, at: int, name: str) -> int:
        found = await store.add_partial(dataclasses.replace(make_partial(who, name, at), harvester_id=h(harvester)))
        assert found is not None
        return found

    for n in range(3):
        await partial(farmer, "one", start + n, f"one {n}")
    rejected = await partial(farmer, "one", start + 10, "one rejected")
    await store.reject_partial(rejected, "INVALID_PROOF")
    await partial(farmer, "two", start + 20, "two")
    await partial(farmer, "old", start - 1, "before the span")
    await partial(other, "three", start + 30, "another farmer's")

    figures = await store.harvester_figures(farmer.launcher_id, start, limit=10)
    assert figures == [
        HarvesterFigures(h("two"), accepted=1, rejected=0, points=7, last_seen=start + 20),
        HarvesterFigures(h("one"), accepted=3, rejected=1, points=21, last_seen=start + 10),
    ]
    assert await store.harvester_figures(farmer.launcher_id, start, limit=1) == figures[:1]
    assert await store.harvester_figures(h("nobody"), 0, limit=10) == []


async def old_partials(store: AbstractPoolStore, start: int) -> tuple[list[FarmerRecord], list[int], int]:
    """Two farmers' partials of every outcome over three hours from ``start``, and refusals: the farmers, the ids of
    the pending partials, and how many rows are settled or refused (what pruning may take)."""
    farmers = [make_farmer(1, difficulty=7), make_farmer(2, difficulty=10)]
    pending, settled = [], 0
    for farmer in farmers:
        await store.add_farmer(farmer)
        for hour in range(3):
            moment = start + hour * 3600 + 60 * farmer.difficulty
            ids = [
                await store.add_partial(make_partial(farmer, f"{farmer.difficulty} {hour} {n}", moment + n))
                for n in range(6)
            ]
            assert all(partial_id is not None for partial_id in ids)
            confirmed, rejected, credited, dropped, waiting, twice = (i or 0 for i in ids)
            await store.confirm_partials([confirmed, twice])
            await store.reject_partial(rejected, "singleton left the pool")
            await store.settle_stale_partial(credited, True, "stale")
            await store.settle_stale_partial(dropped, False, "stale: dropped")
            pending.append(waiting)
            await store.add_partial_refusal(farmer.launcher_id, moment + 7, "TOO_LATE")
            await store.add_partial_refusal(farmer.launcher_id, moment + 8, "PROOF_NOT_GOOD_ENOUGH")
            settled += 5 + 2
    return farmers, pending, settled


async def counted(store: AbstractPoolStore, farmers: Sequence[FarmerRecord], start: int) -> object:
    """Every figure the pages, charts and estimates read of partials."""
    return (
        await store.partial_counts(0),
        await store.partial_counts(start + 3600),
        [await store.partial_counts(0, farmer.launcher_id) for farmer in farmers],
        [await store.accepted_points(start + hour * 3600, start + (hour + 1) * 3600) for hour in range(-1, 4)],
        await store.count_stale_partials(),
        [await points_of(store, farmer) for farmer in farmers],
    )


async def prune_all(store: AbstractPoolStore, before: int, batch: int) -> list[int]:
    pruned = [await store.prune_partials(before, batch)]
    while pruned[-1]:
        pruned.append(await store.prune_partials(before, batch))
    return pruned


async def test_pruning_keeps_every_hours_counts_and_points(store: AbstractPoolStore) -> None:
    start = 3600 * 100
    farmers, pending, settled = await old_partials(store, start)
    recent = await store.add_partial(make_partial(farmers[0], "recent", start + 3600 * 5))
    await store.add_partial_refusal(farmers[0].launcher_id, start + 3600 * 5 + 1, "TOO_LATE")
    assert recent is not None
    await store.confirm_partial(recent)
    figures = await counted(store, farmers, start)

    # In batches of at most 4 rows, up to the hour of the recent ones (before is not a whole hour: its hour is kept).
    pruned = await prune_all(store, start + 3600 * 5 + 1800, batch=4)
    assert all(0 < n <= 4 for n in pruned[:-1]) and pruned[-1] == 0
    assert sum(pruned) == settled
    assert await counted(store, farmers, start) == figures
    # Pending partials are never pruned: they still wait for their confirmation.
    kept = [p for farmer in farmers for p in await store.recent_partials(farmer.launcher_id, since=0)]
    assert sorted(p.id or 0 for p in kept) == sorted([*pending, recent])
    assert {p.id for p in await store.pending_partials(received_before=start + 3600 * 10)} == set(pending)

    # Again: nothing more to prune, nothing counted twice.
    assert await store.prune_partials(start + 3600 * 5 + 1800, batch=4) == 0
    assert await counted(store, farmers, start) == figures
    # A pending partial settled later joins its hour's counts when it is pruned in turn.
    await store.confirm_partials(pending)
    figures = await counted(store, farmers, start)
    assert sum(await prune_all(store, start + 3600 * 6, batch=100)) == len(pending) + 2
    assert await counted(store, farmers, start) == figures
    assert [p for farmer in farmers for p in await store.recent_partials(farmer.launcher_id, since=0)] == []


async def test_pruners_at_once_count_each_partial_once(store: AbstractPoolStore) -> None:
    start = 3600 * 100
    farmers, _, settled = await old_partials(store, start)
    figures = await counted(store, farmers, start)
    done = await asyncio.gather(*(prune_all(store, start + 3600 * 3, batch=3) for _ in range(3)))
    assert sum(sum(pruned) for pruned in done) == settled
    assert await counted(store, farmers, start) == figures


async def pruned_days(store: AbstractPoolStore, first_day: int) -> list[FarmerRecord]:
    """Two farmers' partials (confirmed, stale-credited, rejected) and refusals in hours 0, 5 and 23 of three days
    from ``first_day``, all pruned into hourly counts."""
    farmers = [make_farmer(1, difficulty=7), make_farmer(2, difficulty=10)]
    for farmer in farmers:
        await store.add_farmer(farmer)
        for day in range(3):
            for hour in (0, 5, 23):
                moment = first_day + day * DAY + hour * 3600 + farmer.difficulty
                ids = [await store.add_partial(make_partial(farmer, f"{moment} {n}", moment + n)) for n in range(3)]
                confirmed, credited, rejected = (i or 0 for i in ids)
                await store.confirm_partials([confirmed])
                await store.settle_stale_partial(credited, True, "stale")
                await store.reject_partial(rejected, "singleton left the pool")
                await store.add_partial_refusal(farmer.launcher_id, moment + 5, "TOO_LATE")
    await prune_all(store, first_day + 3 * DAY, batch=500)
    return farmers


async def fold_all(store: AbstractPoolStore, since: int, before: int, batch: int) -> list[int]:
    folded = [await store.fold_partial_hours(since, before, batch)]
    while folded[-1] == batch:
        folded.append(await store.fold_partial_hours(since, before, batch))
    return folded


async def by_day(store: AbstractPoolStore, farmers: Sequence[FarmerRecord], first_day: int) -> object:
    """What the charts and estimates read of whole days."""
    return (
        await store.daily_partials(0, first_day + 10 * DAY),
        [await store.accepted_points(first_day + day * DAY, first_day + (day + 1) * DAY) for day in range(-1, 4)],
        await store.count_stale_partials(),
        [await points_of(store, farmer) for farmer in farmers],
    )


async def test_hourly_counts_fold_into_days_keeping_every_days_totals(store: AbstractPoolStore) -> None:
    first_day = 100 * DAY
    farmers = await pruned_days(store, first_day)
    figures = await by_day(store, farmers, first_day)
    last_day_hours = await store.partial_counts(first_day + 2 * DAY)

    # The days from the one ``since`` falls in to the one before ``before``'s: days 0 and 1, a few counts a call.
    folded = await fold_all(store, first_day + 5 * 3600, first_day + 2 * DAY + 7 * 3600, batch=3)
    assert all(n == 3 for n in folded[:-1]) and folded[-1] < 3
    # Hours 5 and 23 of two days, two farmers, three outcomes (confirmed, rejected, TOO_LATE) each.
    assert sum(folded) == 2 * 2 * 2 * 3
    assert await by_day(store, farmers, first_day) == figures
    counts = await store.partial_counts(0)
    assert {count.hour for count in counts if count.hour < first_day + 2 * DAY} == {first_day, first_day + DAY}
    assert await store.partial_counts(first_day + 2 * DAY) == last_day_hours  # the third day keeps its hours
    assert await store.fold_partial_hours(0, first_day + 2 * DAY, batch=3) == 0  # nothing is folded twice

    # Folders at once fold each count once.
    done = await asyncio.gather(*(fold_all(store, 0, first_day + 3 * DAY, batch=2) for _ in range(3)))
    assert sum(sum(folded) for folded in done) == 2 * 2 * 3
    assert await by_day(store, farmers, first_day) == figures
    assert {count.hour % DAY for count in await store.partial_counts(0)} == {0}
    with pytest.raises(StoreError, match="at least one row"):
        await store.fold_partial_hours(0, first_day, batch=0)


async def test_pruned_difficulty_hours_leave_the_summaries_of_later_partials(store: AbstractPoolStore) -> None:
    farmer = make_farmer(1, difficulty=8)
    await store.add_farmer(farmer)
    start = 3600 * 100
    received = [(start + 3600 * hour + 60 * n, 8) for hour in range(6) for n in range(3)]
    for n, (at, difficulty) in enumerate(received):
        await store.add_partial(make_partial(farmer, n, at, difficulty))
    later = start + 3600 * 3
    before = await store.difficulty_summaries(since=later, window_start=later)

    # Hours before the one ``before`` falls in, at most ``batch`` (farmer, hour, difficulty) rows a call.
    pruned = [await store.prune_difficulty_hours(later + 1800, batch=2)]
    while pruned[-1]:
        pruned.append(await store.prune_difficulty_hours(later + 1800, batch=2))
    assert pruned == [2, 1, 0]
    assert await store.difficulty_summaries(since=later, window_start=later) == before
    with pytest.raises(StoreError, match="at least one row"):
        await store.prune_difficulty_hours(later, batch=0)


async def test_a_prune_batch_holds_at_least_one_row(store: AbstractPoolStore) -> None:
    with pytest.raises(StoreError, match="at least one row"):
        await store.prune_partials(3600, batch=0)


async def open_session(store: AbstractPoolStore, farmer: FarmerRecord, session: WebSession, cap: int = 10) -> bool:
    return await store.add_session(
        session, authentication_public_key=farmer.authentication_public_key, max_per_launcher=cap
    )


async def test_sessions_expire_and_expired_ones_are_deleted(store: AbstractPoolStore) -> None:
    farmer = make_farmer(1)
    await store.add_farmer(farmer)
    first = WebSession(h("token 1"), farmer.launcher_id, created_at=1_000, expires_at=2_000)
    assert await open_session(store, farmer, first)
    assert await store.get_session(first.token_hash, 1_999) == first
    assert await store.get_session(first.token_hash, 2_000) is None
    assert await store.get_session(h("unknown"), 1_500) is None
    second = WebSession(h("token 2"), farmer.launcher_id, created_at=2_500, expires_at=3_000)
    assert await open_session(store, farmer, second)  # deletes the expired first one
    assert await store.get_session(first.token_hash, 0) is None
    assert await store.get_session(second.token_hash, 2_600) == second


async def test_sessions_per_launcher_are_capped_the_oldest_closed_first(store: AbstractPoolStore) -> None:
    farmer, other = make_farmer(1), make_farmer(2)
    await store.add_farmer(farmer)
    await store.add_farmer(other)
    others = WebSession(h("other's"), other.launcher_id, created_at=1_000, expires_at=9_000)
    assert await open_session(store, other, others)
    sessions = [WebSession(h(f"login {i}"), farmer.launcher_id, 1_000 + i, 9_000) for i in range(7)]
    for session in sessions:
        assert await open_session(store, farmer, session, cap=3)
    alive = [s for s in sessions if await store.get_session(s.token_hash, 2_000) is not None]
    assert alive == sessions[-3:]
    assert await store.get_session(others.token_hash, 2_000) == others  # another farmer's are not counted


async def test_a_new_authentication_key_ends_the_farmers_sessions(store: AbstractPoolStore) -> None:
    farmer, other = make_farmer(1), make_farmer(2)
    await store.add_farmer(farmer)
    await store.add_farmer(other)
    mine = WebSession(h("mine"), farmer.launcher_id, created_at=1_000, expires_at=9_000)
    others = WebSession(h("other's"), other.launcher_id, created_at=1_000, expires_at=9_000)
    assert await open_session(store, farmer, mine)
    assert await open_session(store, other, others)
    await store.update_farmer_settings(farmer.launcher_id, payout_instructions=("XCH1ABC", h("new payout")))
    assert await store.get_session(mine.token_hash, 2_000) == mine  # other settings leave sessions alone

    await store.update_farmer_settings(farmer.launcher_id, authentication_public_key=public_key(77))
    assert await store.get_session(mine.token_hash, 2_000) is None
    assert await store.get_session(others.token_hash, 2_000) == others
    # A login checked against the old key that is written after the change opens nothing.
    late = WebSession(h("late"), farmer.launcher_id, created_at=1_500, expires_at=9_000)
    assert await open_session(store, farmer, late) is False
    assert await store.get_session(late.token_hash, 2_000) is None
    unknown = WebSession(h("unknown's"), h("unknown launcher"), created_at=1_500, expires_at=9_000)
    assert await open_session(store, farmer, unknown) is False


async def test_a_key_change_racing_logins_leaves_no_session_of_the_old_key(store: AbstractPoolStore) -> None:
    farmer = make_farmer(1)
    await store.add_farmer(farmer)
    logins = [WebSession(h(f"login {i}"), farmer.launcher_id, 1_000, 9_000) for i in range(8)]
    change = store.update_farmer_settings(farmer.launcher_id, authentication_public_key=public_key(77))
    await asyncio.gather(*(open_session(store, farmer, login) for login in logins[:4]), change)
    await asyncio.gather(*(open_session(store, farmer, login) for login in logins[4:]))
    assert [await store.get_session(login.token_hash, 2_000) for login in logins] == [None] * len(logins)


async def test_the_difficulty_history_tells_the_difficulty_in_force_at_a_moment(store: AbstractPoolStore) -> None:
    farmer = make_farmer(1, difficulty=10)
    await store.add_farmer(farmer)
    launcher = farmer.launcher_id

    async def history(*moments: int) -> list[int]:
        return [await store.difficulty_at(launcher, moment) for moment in moments]

    async def recorded_at(moment: int) -> int | None:
        record = await store.get_farmer(launcher)
        assert record is not None
        return record.recorded_difficulty_at(moment)

    assert await history(0, 1_000, 10**9) == [10, 10, 10]
    assert await recorded_at(0) == 10  # the first difficulty holds for every earlier moment

    assert await store.adjust_difficulty(launcher, 10, 20, 1_500)  # the loop's change
    assert await history(1_499, 1_500) == [10, 20]
    assert (await recorded_at(1_499), await recorded_at(1_500)) == (None, 20)  # None: only the history knows

    # PUT /farmer: in force after its cooldown, and the pending change is on record from its time on.
    await store.update_farmer_settings(launcher, pending_difficulty=PendingDifficulty(50, 2_000, 1_700))
    assert await history(1_999, 2_000) == [20, 50]
    assert (await recorded_at(1_600), await recorded_at(2_000)) == (20, 50)
    # A second PUT before the first is due replaces it: 50 was never in force.
    await store.update_farmer_settings(launcher, pending_difficulty=PendingDifficulty(70, 2_100, 1_800))
    assert await history(1_999, 2_050, 2_100) == [20, 20, 70]
    # One after it is due (70 since 2 100, not yet applied) keeps it in force until its own time.
    await store.update_farmer_settings(launcher, pending_difficulty=PendingDifficulty(5, 2_500, 2_200))
    record = await store.get_farmer(launcher)
    assert record is not None
    assert (record.difficulty, record.difficulty_since, record.pending_difficulty) == (70, 2_100, 5)
    assert await history(2_099, 2_100, 2_499, 2_500) == [20, 70, 70, 5]
    # set_difficulty replaces the pending change from its moment on.
    await store.set_difficulty(launcher, 8, 2_300)
    assert await history(2_299, 2_300, 2_600) == [70, 8, 8]
    assert (await recorded_at(2_299), await recorded_at(2_300)) == (None, 8)
    assert await store.apply_due_difficulty(launcher, 9_000) == 8


async def test_the_difficulty_history_keeps_a_day(store: AbstractPoolStore) -> None:
    farmer = make_farmer(1, difficulty=10)
    await store.add_farmer(farmer)
    launcher = farmer.launcher_id
    assert await store.adjust_difficulty(launcher, 10, 20, 1_000)
    assert await store.adjust_difficulty(launcher, 20, 30, 2_000)
    later = 2_500 + DIFFICULTY_HISTORY_SECONDS
    assert await store.adjust_difficulty(launcher, 30, 40, later)
    # What was in force a day before the newest change is kept; what ended before that is forgotten (the oldest
    # kept answers for older moments).
    assert [await store.difficulty_at(launcher, m) for m in (2_000, later - 1, later)] == [30, 30, 40]
    assert await store.difficulty_at(launcher, 1_500) == 30


async def test_concurrent_add_partial_of_one_proof_gives_exactly_one_id(store: AbstractPoolStore) -> None:
    farmer = make_farmer(1)
    await store.add_farmer(farmer)
    results = await asyncio.gather(*(store.add_partial(make_partial(farmer, "raced", 100 + i)) for i in range(25)))
    ids = [result for result in results if result is not None]
    assert len(ids) == 1
    assert [p.id for p in await store.pending_partials(received_before=10_000)] == ids


async def test_record_partials_commits_a_batch_with_each_partials_outcome(store: AbstractPoolStore) -> None:
    farmer, other = make_farmer(1, difficulty=3), make_farmer(2)
    await store.add_farmer(farmer)
    await store.add_farmer(other)
    earlier = await store.add_partial(make_partial(farmer, "sent before", 100))
    batch = [
        make_partial(farmer, "new", 101),
        make_partial(farmer, "sent before", 102),
        make_partial(make_farmer(9), "of nobody", 103),
        make_partial(other, "twice in the batch", 104),
        make_partial(farmer, "twice in the batch", 105),
        make_partial(farmer, "last", 106),
    ]
    refusals = [PartialRefusal(farmer.launcher_id, 107, "TOO_LATE"), PartialRefusal(h("nobody"), 107, "TOO_LATE")]
    new, again, unknown, first_copy, second_copy, last = await store.record_partials(batch, refusals)
    assert (again, unknown, second_copy) == (NotAdded.DUPLICATE, NotAdded.UNKNOWN_FARMER, NotAdded.DUPLICATE)
    assert isinstance(new, int) and isinstance(first_copy, int) and isinstance(last, int)
    assert len({earlier, new, first_copy, last}) == 4
    assert await store.get_partial(new) == dataclasses.replace(batch[0], id=new)
    assert await store.get_partial(first_copy) == dataclasses.replace(batch[3], id=first_copy)
    assert await store.get_partial(last) == dataclasses.replace(batch[5], id=last)
    pending = await store.pending_partials(received_before=10_000)
    assert {p.id for p in pending} == {earlier, new, first_copy, last}
    assert PartialCount(0, "TOO_LATE", 1, 0) in await store.partial_counts(0, farmer.launcher_id)
    assert await store.record_partials([], []) == []


@pytest.mark.parametrize("size", [6, 250])
async def test_record_partials_alone_gives_each_partials_outcome(store: AbstractPoolStore, size: int) -> None:
    """Without refusals (SQLite: one statement in autocommit mode up to 100 partials, a transaction beyond)."""
    farmer = make_farmer(1)
    await store.add_farmer(farmer)
    earlier = await store.add_partial(make_partial(farmer, "sent before", 100))
    batch = [
        make_partial(farmer, "sent before", 101),
        make_partial(make_farmer(9), "of nobody", 102),
        make_partial(farmer, "twice in the batch", 103),
        make_partial(farmer, "twice in the batch", 104),
    ] + [make_partial(farmer, f"new {n}", 105) for n in range(size - 4)]
    again, unknown, first_copy, second_copy, *new = await store.record_partials(batch)
    assert (again, unknown, second_copy) == (NotAdded.DUPLICATE, NotAdded.UNKNOWN_FARMER, NotAdded.DUPLICATE)
    assert isinstance(first_copy, int) and all(isinstance(added, int) for added in new)
    assert await store.get_partial(first_copy) == dataclasses.replace(batch[2], id=first_copy)
    assert {p.id for p in await store.pending_partials(received_before=10_000, limit=1000)} == {
        earlier,
        first_copy,
        *new,
    }
    # Committed: the next write transaction starts cleanly and sees them.
    await store.add_farmer(make_farmer(2))
    assert len(await store.pending_partials(received_before=10_000, limit=1000)) == size - 2


async def test_record_partials_is_all_or_nothing(store: AbstractPoolStore) -> None:
    farmer = make_farmer(1)
    await store.add_farmer(farmer)
    credited = dataclasses.replace(make_partial(farmer, "credited", 101), status=PartialStatus.CONFIRMED)
    with pytest.raises(StoreError):
        await store.record_partials([make_partial(farmer, "fine", 100), credited])
    assert await store.pending_partials(received_before=10_000) == []


async def test_concurrent_batches_of_one_proof_credit_it_once(store: AbstractPoolStore) -> None:
    farmer = make_farmer(1)
    await store.add_farmer(farmer)
    batches = [[make_partial(farmer, "raced", 100 + i), make_partial(farmer, f"own {i}", 100)] for i in range(10)]
    results = await asyncio.gather(*(store.record_partials(batch) for batch in batches))
    raced = [first for first, _ in results if isinstance(first, int)]
    assert len(raced) == 1
    assert all(isinstance(own, int) for _, own in results)
    assert len(await store.pending_partials(received_before=10_000)) == 11


# -- block rewards ------------------------------------------------------------------------------------------------
async def test_reward_claim_round_trips(store: AbstractPoolStore) -> None:
    farmer = make_farmer(1)
    await store.add_farmer(farmer)
    claim = make_claim("coin", farmer)
    assert await store.add_reward_claim(claim) is True
    assert await store.get_reward_claim(claim.coin_id) == claim
    assert await store.get_reward_claim(h("no such coin")) is None


async def test_a_coin_is_never_claimed_twice(store: AbstractPoolStore) -> None:
    farmer = make_farmer(1)
    await store.add_farmer(farmer)
    claim = make_claim("coin", farmer)
    assert await store.add_reward_claim(claim)
    assert await store.add_reward_claim(dataclasses.replace(claim, submitted_at=9_999)) is False
    assert await store.get_reward_claim(claim.coin_id) == claim

    await store.update_reward_claim(claim.coin_id, ClaimStatus.CONFIRMED, confirmed_height=70)
    assert await store.add_reward_claim(dataclasses.replace(claim, submitted_at=9_999)) is False
    confirmed = await store.get_reward_claim(claim.coin_id)
    assert confirmed is not None
    assert (confirmed.status, confirmed.confirmed_height, confirmed.submitted_at) == (ClaimStatus.CONFIRMED, 70, 2_000)
    assert (await store.ledger()).confirmed_claims == claim.amount


async def test_a_failed_claim_is_replaced_by_a_new_one(store: AbstractPoolStore) -> None:
    farmer = make_farmer(1)
    await store.add_farmer(farmer)
    claim = make_claim("coin", farmer)
    assert await store.add_reward_claim(claim)
    await store.update_reward_claim(claim.coin_id, ClaimStatus.FAILED, error="DOUBLE_SPEND")
    failed = await store.get_reward_claim(claim.coin_id)
    assert failed is not None and (failed.status, failed.error) == (ClaimStatus.FAILED, "DOUBLE_SPEND")

    retry = dataclasses.replace(claim, spend_bundle_name=h("retry bundle"), submitted_at=3_000, submitted_height=80)
    assert await store.add_reward_claim(retry) is True
    assert await store.get_reward_claim(claim.coin_id) == retry
    assert await store.add_reward_claim(claim) is False


async def test_reward_claims_filter_by_status(store: AbstractPoolStore) -> None:
    farmer = make_farmer(1)
    await store.add_farmer(farmer)
    for coin in ("a", "b", "c"):
        await store.add_reward_claim(make_claim(coin, farmer))
    await store.update_reward_claim(h("b"), ClaimStatus.CONFIRMED, confirmed_height=90)
    assert {c.coin_id for c in await store.reward_claims()} == {h("a"), h("b"), h("c")}
    assert {c.coin_id for c in await store.reward_claims(ClaimStatus.SUBMITTED)} == {h("a"), h("c")}
    assert [c.coin_id for c in await store.reward_claims(ClaimStatus.CONFIRMED)] == [h("b")]
    assert await store.reward_claims(ClaimStatus.FAILED) == []


async def test_updating_an_unknown_claim_raises(store: AbstractPoolStore) -> None:
    with pytest.raises(StoreError):
        await store.update_reward_claim(h("nothing"), ClaimStatus.CONFIRMED, confirmed_height=1)


async def test_a_new_claim_must_be_submitted(store: AbstractPoolStore) -> None:
    # A claim entering CONFIRMED would count as claimed money never credited to the ledger; one entering FAILED
    # would have its fee charged but never refunded.
    (farmer,) = await add_farmers(store, 0)
    await fund(store, [], pool_fee=100, claimant=farmer)
    before = await store.ledger()
    for status in (ClaimStatus.CONFIRMED, ClaimStatus.FAILED, ClaimStatus.LOST):
        with pytest.raises(StoreError):
            await store.add_reward_claim(make_claim(f"born {status.value}", farmer, status=status, fee=10))
        assert await store.get_reward_claim(h(f"born {status.value}")) is None
    with pytest.raises(StoreError):
        await store.add_reward_claim(make_claim("negative fee", farmer, fee=-1))
    assert await store.get_reward_claim(h("negative fee")) is None
    # A fee is charged only with the spend that pays it, and one absorb has one fee spend.
    with pytest.raises(StoreError):
        await store.add_reward_claim(
            dataclasses.replace(make_claim("fee, no spend", farmer, fee=10), fee_spend_bundle=None)
        )
    with pytest.raises(StoreError):
        await store.add_reward_claims(
            [make_claim("two fees a", farmer, fee=5), make_claim("two fees b", farmer, fee=5)]
        )
    with pytest.raises(StoreError):
        await store.add_reward_claim(make_claim("coins, no fee", farmer), fee_coins=[h("a coin")])
    assert await store.ledger() == before
    assert await store.reserved_coins() == {}


# -- the ledger: claims -------------------------------------------------------------------------------------------
async def test_a_confirmed_claim_is_credited_once(store: AbstractPoolStore) -> None:
    (farmer,) = await add_farmers(store, 0)
    claim = make_claim("coin", farmer, amount=1_750)
    assert await store.add_reward_claim(claim)
    assert (await store.ledger()).undistributed == 0  # submitted is not yet money
    await store.update_reward_claim(claim.coin_id, ClaimStatus.CONFIRMED, confirmed_height=70)
    for status in ClaimStatus:
        with pytest.raises(StoreError):
            await store.update_reward_claim(claim.coin_id, status, confirmed_height=71)

    ledger = await store.ledger()
    assert (ledger.confirmed_claims, ledger.undistributed) == (1_750, 1_750)
    assert ledger.balanced
    assert [(e.kind, e.amount, e.launcher_id, e.reference) for e in await store.ledger_entries()] == [
        (LedgerKind.CLAIM, 1_750, farmer.launcher_id, claim.coin_id.hex())
    ]
    recorded = await store.get_reward_claim(claim.coin_id)
    assert recorded is not None and (recorded.status, recorded.confirmed_height) == (ClaimStatus.CONFIRMED, 70)


async def test_a_claim_back_to_submitted_is_refused(store: AbstractPoolStore) -> None:
    # Moving a settled claim back to SUBMITTED would let it be settled (credited, or refunded) a second time.
    (farmer,) = await add_farmers(store, 0)
    await fund(store, [], pool_fee=100, claimant=farmer)
    settled_claims = (
        ("confirmed coin", ClaimStatus.CONFIRMED),
        ("failed coin", ClaimStatus.FAILED),
        ("lost coin", ClaimStatus.LOST),
    )
    for coin, settled in settled_claims:
        assert await store.add_reward_claim(make_claim(coin, farmer, fee=10))
        await store.update_reward_claim(h(coin), settled)
        before = await store.ledger()
        with pytest.raises(StoreError):
            await store.update_reward_claim(h(coin), ClaimStatus.SUBMITTED)
        with pytest.raises(StoreError):
            await store.update_reward_claim(h(coin), settled)
        assert await store.ledger() == before
        recorded = await store.get_reward_claim(h(coin))
        assert recorded is not None and recorded.status is settled


async def test_a_claim_fee_stays_charged_until_the_chain_settles_it(store: AbstractPoolStore) -> None:
    """A claim's fee spend may land with any spend of the singleton coin it names, also after its claim failed: its
    fee is given back only once the chain shows it can no longer land, and a new claim of the coin takes it over."""
    (farmer,) = await add_farmers(store, 0)
    await fund(store, [], pool_fee=100, claimant=farmer)
    claim = make_claim("coin", farmer, amount=1_750, fee=30)
    assert await store.add_reward_claim(claim, fee_coins=[h("wallet coin")])
    assert await store.get_reward_claim(claim.coin_id) == claim
    assert await store.reserved_coins() == {h("wallet coin"): claim_holder(claim.coin_id)}
    charged = await store.ledger()
    assert (charged.pool_fee_share, charged.blockchain_fees) == (70, 30)
    assert charged.balanced

    # The absorb failed: its fee stays charged (the fee spend may still land) ...
    await store.update_reward_claim(claim.coin_id, ClaimStatus.FAILED, error="mempool dropped it")
    assert await store.ledger() == charged
    # ... and a new claim of the coin takes the fee over instead of paying a second one.
    with pytest.raises(StoreError):
        await store.add_reward_claim(dataclasses.replace(claim, fee=40, fee_spend_bundle=b"another fee spend"))
    retry = dataclasses.replace(claim, fee=0, fee_spend_bundle=None, fee_settled=True, submitted_height=90)
    assert await store.add_reward_claim(retry)
    carried = await store.get_reward_claim(claim.coin_id)
    assert carried is not None and carried.status is ClaimStatus.SUBMITTED
    assert (carried.fee, carried.fee_spend_bundle, carried.fee_settled) == (30, claim.fee_spend_bundle, False)
    assert await store.ledger() == charged

    # The chain shows the fee spend can no longer land: the fee goes back, its coin is free again, once.
    await store.settle_claim_fee(claim.coin_id, landed=False)
    refunded = await store.ledger()
    assert (refunded.pool_fee_share, refunded.blockchain_fees) == (100, 0)
    assert refunded.balanced
    assert await store.reserved_coins() == {}
    with pytest.raises(StoreError):
        await store.settle_claim_fee(claim.coin_id, landed=False)
    assert [(e.kind, e.amount, e.reference) for e in (await store.ledger_entries())[:2]] == [
        (LedgerKind.CLAIM_FEE_REFUND, 30, claim.coin_id.hex()),
        (LedgerKind.CLAIM_FEE, 30, claim.coin_id.hex()),
    ]

    await store.update_reward_claim(claim.coin_id, ClaimStatus.CONFIRMED, confirmed_height=95)
    settled = await store.ledger()
    assert (settled.pool_fee_share, settled.blockchain_fees, settled.undistributed) == (100, 0, 1_750)
    assert settled.balanced


async def test_operator_fee_funding_joins_the_pool_fee_share_and_balances_the_books(store: AbstractPoolStore) -> None:
    """Funding is the only money in the books that no claim brought: it is counted apart (operator_funding), so the
    invariant still says where every mojo is, and it pays a claim fee before any distribution."""
    (farmer,) = await add_farmers(store, 0)
    for wrong in (0, -5):
        with pytest.raises(ValueError):
            await store.fund_fees(wrong, "operator")
    await store.fund_fees(70, "operator, wallet spendable 1000")
    await store.fund_fees(30, "operator again")
    funded = await store.ledger()
    assert (funded.operator_funding, funded.pool_fee_share, funded.confirmed_claims) == (100, 100, 0)
    assert funded.balanced and funded.wallet_should_hold == 100
    assert [(e.kind, e.amount, e.reference) for e in (await store.ledger_entries())[:2]] == [
        (LedgerKind.FEE_FUNDING, 30, "operator again"),
        (LedgerKind.FEE_FUNDING, 70, "operator, wallet spendable 1000"),
    ]
    claim = make_claim("funded coin", farmer, amount=1_750, fee=40)
    assert await store.add_reward_claim(claim, fee_coins=[h("operator coin")])
    charged = await store.ledger()
    assert (charged.pool_fee_share, charged.blockchain_fees, charged.operator_funding) == (60, 40, 100)
    assert charged.balanced


async def test_a_claim_fee_that_landed_stays_spent(store: AbstractPoolStore) -> None:
    (farmer,) = await add_farmers(store, 0)
    await fund(store, [], pool_fee=100, claimant=farmer)
    claim = make_claim("coin", farmer, amount=1_750, fee=30)
    assert await store.add_reward_claim(claim, fee_coins=[h("wallet coin")])
    await store.settle_claim_fee(claim.coin_id, landed=True)
    ledger = await store.ledger()
    assert (ledger.pool_fee_share, ledger.blockchain_fees) == (70, 30) and ledger.balanced
    assert await store.reserved_coins() == {}
    settled = await store.get_reward_claim(claim.coin_id)
    assert settled is not None and (settled.fee, settled.fee_settled) == (30, True)
    with pytest.raises(StoreError):  # settled once
        await store.settle_claim_fee(claim.coin_id, landed=False)
    with pytest.raises(StoreError):  # a claim without a fee spend has nothing to settle
        assert await store.add_reward_claim(make_claim("no fee", farmer))
        await store.settle_claim_fee(h("no fee"), landed=True)
    assert await store.ledger() == ledger


async def test_a_claim_made_again_keeps_the_landed_fee_of_the_failed_one(store: AbstractPoolStore) -> None:
    """A failed claim's fee spend landed (mined with another spend of its singleton coin): that fee was paid for
    good. Claiming the coin again, with a fee of its own, must not make it vanish from the books."""
    (farmer,) = await add_farmers(store, 0)
    await fund(store, [], pool_fee=100, claimant=farmer)
    claim = make_claim("coin", farmer, amount=1_750, fee=30)
    assert await store.add_reward_claim(claim, fee_coins=[h("fee coin 1")])
    await store.update_reward_claim(claim.coin_id, ClaimStatus.FAILED, error="dropped")
    await store.settle_claim_fee(claim.coin_id, landed=True)
    again = dataclasses.replace(make_claim("coin", farmer, amount=1_750, fee=20), submitted_height=90)
    assert await store.add_reward_claim(again, fee_coins=[h("fee coin 2")])
    recorded = await store.get_reward_claim(claim.coin_id)
    assert recorded is not None and (recorded.fee, recorded.earlier_fees, recorded.fee_settled) == (20, 30, False)
    ledger = await store.ledger()
    assert (ledger.pool_fee_share, ledger.blockchain_fees) == (50, 50) and ledger.balanced
    await store.settle_claim_fee(claim.coin_id, landed=False)  # the second one never landed: its fee goes back
    ledger = await store.ledger()
    assert (ledger.pool_fee_share, ledger.blockchain_fees) == (70, 30) and ledger.balanced


async def test_a_failed_claim_that_lands_after_all_is_credited_once_and_a_lost_one_never(
    store: AbstractPoolStore,
) -> None:
    (farmer,) = await add_farmers(store, 0)
    landed, lost = make_claim("landed", farmer, amount=1_750), make_claim("lost", farmer, amount=1_000)
    for claim in (landed, lost):
        assert await store.add_reward_claim(claim)
        await store.update_reward_claim(claim.coin_id, ClaimStatus.FAILED, error="dropped")
    await store.update_reward_claim(landed.coin_id, ClaimStatus.CONFIRMED, confirmed_height=80)
    await store.update_reward_claim(lost.coin_id, ClaimStatus.LOST, confirmed_height=81, error="swept by its owner")
    for claim in (landed, lost):
        for status in ClaimStatus:
            with pytest.raises(StoreError):
                await store.update_reward_claim(claim.coin_id, status, confirmed_height=82)
    ledger = await store.ledger()
    assert (ledger.confirmed_claims, ledger.undistributed, ledger.lost_rewards) == (1_750, 1_750, 1_000)
    assert ledger.balanced
    recorded = await store.get_reward_claim(lost.coin_id)
    assert recorded is not None
    assert (recorded.status, recorded.confirmed_height, recorded.error) == (ClaimStatus.LOST, 81, "swept by its owner")
    assert [(e.kind, e.reference) for e in await store.ledger_entries()] == [(LedgerKind.CLAIM, landed.coin_id.hex())]
    assert await store.add_reward_claim(lost) is False  # a settled coin is never claimed again


async def test_a_coin_is_held_by_one_transaction_at_a_time(store: AbstractPoolStore) -> None:
    """The reward and the payout loops never spend the same wallet coin: whichever records a transaction first holds
    its coins; the other's transaction is not recorded at all."""
    (farmer,) = await add_farmers(store, 0)
    await fund(store, [(farmer, 1_000)], pool_fee=100)
    assert await store.add_reward_claim(make_claim("a", farmer, fee=10), fee_coins=[h("coin 1"), h("coin 2")])
    before = await store.ledger()
    with pytest.raises(CoinReserved):
        await store.add_reward_claim(make_claim("b", farmer, fee=10), fee_coins=[h("coin 2")])
    assert await store.get_reward_claim(h("b")) is None and await store.ledger() == before
    round_id = await store.create_payout_round(make_round(1_000), [farmer_payment(farmer, 1_000)], [0])
    (batch,) = await store.batches(round_id)
    assert batch.id is not None
    with pytest.raises(CoinReserved):
        await store.mark_batch_submitted(batch.id, h("tx"), b"bundle", now=1, height=1, coins=[h("coin 1")])
    assert await store.batch_status(batch.id) is BatchStatus.PENDING
    assert await store.batch_versions(batch.id) == []
    await store.mark_batch_submitted(batch.id, h("tx"), b"bundle", now=1, height=1, coins=[h("coin 3")])
    assert await store.reserved_coins() == {
        h("coin 1"): claim_holder(h("a")),
        h("coin 2"): claim_holder(h("a")),
        h("coin 3"): batch_holder(batch.id),
    }
    with pytest.raises(CoinReserved):
        await store.add_reward_claim(make_claim("c", farmer, fee=10), fee_coins=[h("coin 3")])


async def test_a_distribution_and_a_round_over_more_farmers_than_a_statement_reads(
    store: AbstractPoolStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Thousands of farmers' balances are taken a few statements at a time (here two farmers a statement): each one
    checked, none below zero, and one farmer short (in a later statement than the first) writes nothing at all."""
    monkeypatch.setattr(sql, "ROWS_PER_STATEMENT", 2)
    farmers = sorted(await add_farmers(store, *[3] * 5), key=lambda f: f.launcher_id)
    await credit(store, farmers[0], "reward", 10 * len(farmers))
    before, journal = await store.ledger(), await store.ledger_entries()

    def shares(last_points: int) -> list[DistributionShare]:
        return [DistributionShare(f.launcher_id, 10, 3 if f != farmers[-1] else last_points) for f in farmers]

    with pytest.raises(StoreError, match="fewer than the 4 points"):
        await store.distribute(distribution(10 * len(farmers)), shares(4))
    assert (await store.ledger(), await store.ledger_entries()) == (before, journal)
    assert {await points_of(store, f) for f in farmers} == {3}
    await store.distribute(distribution(10 * len(farmers)), shares(3))
    assert {(await record_of(store, f)).points for f in farmers} == {0}
    assert {await owed_of(store, f) for f in farmers} == {10}

    def payments(last: int) -> list[Payment]:
        return [farmer_payment(f, 10 if f != farmers[-1] else last) for f in farmers]

    before, journal = await store.ledger(), await store.ledger_entries()
    with pytest.raises(InsufficientFunds):
        await store.create_payout_round(make_round(10 * len(farmers) + 1), payments(11), [0])
    assert (await store.ledger(), await store.ledger_entries(), await store.open_round()) == (before, journal, None)
    await store.create_payout_round(make_round(10 * len(farmers)), payments(10), [0])
    assert {await owed_of(store, f) for f in farmers} == {0}
    ledger = await store.ledger()
    assert ledger.balanced and ledger.farmer_payments_in_flight == 10 * len(farmers)
    paid = [e for e in await store.ledger_entries(limit=10_000) if e.kind is LedgerKind.PAYMENT]
    assert sorted((e.launcher_id, e.amount) for e in paid) == sorted((f.launcher_id, 10) for f in farmers)


async def test_a_claim_fee_larger_than_the_pool_fee_share_writes_nothing(store: AbstractPoolStore) -> None:
    (farmer,) = await add_farmers(store, 0)
    await fund(store, [], pool_fee=100, claimant=farmer)
    before, journal = await store.ledger(), await store.ledger_entries()
    with pytest.raises(InsufficientFunds):
        await store.add_reward_claim(make_claim("coin", farmer, fee=101))
    assert await store.get_reward_claim(h("coin")) is None
    assert await store.ledger() == before
    assert await store.ledger_entries() == journal
    assert await store.add_reward_claim(make_claim("coin", farmer, fee=100))  # exactly the share is fine
    assert (await store.ledger()).pool_fee_share == 0


async def test_add_reward_claims_is_all_or_nothing(store: AbstractPoolStore) -> None:
    (farmer,) = await add_farmers(store, 0)
    await fund(store, [], pool_fee=100, claimant=farmer)
    assert await store.add_reward_claim(make_claim("taken", farmer))
    before, journal = await store.ledger(), await store.ledger_entries()

    # One coin of the bundle already has a live claim: none of it is recorded, its fee is not charged.
    assert await store.add_reward_claims([make_claim("new", farmer, fee=20), make_claim("taken", farmer)]) is False
    # The same coin twice in one bundle.
    assert await store.add_reward_claims([make_claim("twice", farmer), make_claim("twice", farmer)]) is False
    # The bundle's fee exceeds the share.
    with pytest.raises(InsufficientFunds):
        await store.add_reward_claims([make_claim("fee b", farmer), make_claim("fee a", farmer, fee=101)])
    for coin in ("new", "twice", "fee a", "fee b"):
        assert await store.get_reward_claim(h(coin)) is None
    assert await store.ledger() == before
    assert await store.ledger_entries() == journal

    bundle = [make_claim("one", farmer, fee=25), make_claim("two", farmer), make_claim("three", farmer)]
    assert await store.add_reward_claims(bundle, fee_coins=[h("fee coin")]) is True
    assert [await store.get_reward_claim(c.coin_id) for c in bundle] == bundle
    assert (await store.ledger()).pool_fee_share == 75


# -- the ledger: claim fee versions -------------------------------------------------------------------------------
async def absorb_in_flight(store: AbstractPoolStore, fee: int, pool_fee_share: int) -> tuple[FarmerRecord, bytes32]:
    """A pool fee share, then one absorb of two coins ("one" carrying ``fee``, "two"), named "absorb 1"."""
    (farmer,) = await add_farmers(store, 0)
    await fund(store, [], pool_fee=pool_fee_share, claimant=farmer)
    claims = [
        dataclasses.replace(make_claim("one", farmer, fee=fee), spend_bundle_name=h("absorb 1")),
        dataclasses.replace(make_claim("two", farmer), spend_bundle_name=h("absorb 1")),
    ]
    assert await store.add_reward_claims(claims, fee_coins=[h("fee coin 1")] if fee else ())
    return farmer, h("absorb 1")


def fee_versions_of(versions: Sequence[ClaimFeeVersion]) -> list[tuple[int, bytes, int, int | None, bool]]:
    return [(v.version, v.spend_bundle, v.fee, v.height, v.settled) for v in versions]


async def test_a_stuck_absorb_gets_a_new_fee_version_charged_to_the_pool_fee_share(store: AbstractPoolStore) -> None:
    farmer, absorb = await absorb_in_flight(store, fee=10, pool_fee_share=100)
    one = await store.get_reward_claim(h("one"))
    assert one is not None
    assert fee_versions_of(await store.claim_fee_versions(h("one"))) == [(1, b"fee spend one", 10, 60, False)]
    assert await store.claim_fee_versions(h("two")) == []

    await store.replace_claim_fee(
        h("one"),
        b"fee spend 2",
        35,
        h("absorb 2"),
        now=3_000,
        height=70,
        replaces=absorb,
        coins=[h("fee coin 1"), h("fee coin 2")],
    )
    for coin in ("one", "two"):
        claim = await store.get_reward_claim(h(coin))
        assert claim is not None
        assert (claim.status, claim.spend_bundle_name, claim.submitted_height, claim.submitted_at) == (
            ClaimStatus.SUBMITTED,
            h("absorb 2"),
            70,
            2_000,
        )
    bumped = await store.get_reward_claim(h("one"))
    assert bumped is not None and (bumped.fee, bumped.fee_spend_bundle, bumped.fee_settled) == (
        35,
        b"fee spend 2",
        False,
    )
    ledger = await store.ledger()
    assert (ledger.pool_fee_share, ledger.blockchain_fees) == (65, 35) and ledger.balanced
    latest = (await store.ledger_entries())[0]
    assert (latest.kind, latest.amount, latest.launcher_id, latest.reference) == (
        LedgerKind.CLAIM_FEE,
        25,
        farmer.launcher_id,
        h("one").hex(),
    )
    assert await store.reserved_coins() == {
        h("fee coin 1"): claim_holder(h("one")),
        h("fee coin 2"): claim_holder(h("one")),
    }
    # Every version is kept, in order: the first may still land.
    assert fee_versions_of(await store.claim_fee_versions(h("one"))) == [
        (1, b"fee spend one", 10, 60, False),
        (2, b"fee spend 2", 35, 70, False),
    ]

    # Refused, and nothing written: ...
    before, journal, reserved = await store.ledger(), await store.ledger_entries(), await store.reserved_coins()
    with pytest.raises(StaleTransaction):  # ... built from a version that is no longer the absorb's
        await store.replace_claim_fee(h("one"), b"3", 40, h("absorb 3"), now=3_001, height=71, replaces=absorb)
    with pytest.raises(StoreError):  # ... a lower fee
        await store.replace_claim_fee(h("one"), b"3", 34, h("absorb 3"), now=3_001, height=71, replaces=h("absorb 2"))
    with pytest.raises(InsufficientFunds):  # ... more than the share can pay
        await store.replace_claim_fee(
            h("one"), b"3", 35 + 66, h("absorb 3"), now=3_001, height=71, replaces=h("absorb 2")
        )
    with pytest.raises(StoreError):  # ... a second fee spend for one absorb
        await store.replace_claim_fee(h("two"), b"3", 40, h("absorb 3"), now=3_001, height=71, replaces=h("absorb 2"))
    assert await store.add_reward_claim(
        dataclasses.replace(make_claim("other", farmer, fee=1), spend_bundle_name=h("other")), fee_coins=[h("held")]
    )
    with pytest.raises(CoinReserved):  # ... a coin another transaction holds
        await store.replace_claim_fee(
            h("one"), b"3", 40, h("absorb 3"), now=3_001, height=71, replaces=h("absorb 2"), coins=[h("held")]
        )
    await store.update_reward_claim(h("other"), ClaimStatus.CONFIRMED, confirmed_height=80)
    with pytest.raises(StoreError):  # ... a claim no longer in flight
        await store.replace_claim_fee(h("other"), b"3", 40, h("absorb 3"), now=3_001, height=71, replaces=h("other"))
    assert (await store.ledger()).pool_fee_share == before.pool_fee_share - 1
    assert len(await store.ledger_entries()) == len(journal) + 2  # the other claim's fee and its credit
    assert {c: r for c, r in (await store.reserved_coins()).items() if c != h("held")} == reserved
    assert len(await store.claim_fee_versions(h("one"))) == 2
    claim = await store.get_reward_claim(h("one"))
    assert claim is not None and (claim.spend_bundle_name, claim.fee) == (h("absorb 2"), 35)


async def test_an_absorb_without_a_fee_gets_one_in_its_new_version(store: AbstractPoolStore) -> None:
    _, absorb = await absorb_in_flight(store, fee=0, pool_fee_share=100)
    await store.replace_claim_fee(
        h("two"), b"fee spend", 20, h("absorb 2"), now=3_000, height=70, replaces=absorb, coins=[h("fee coin")]
    )
    two = await store.get_reward_claim(h("two"))
    assert two is not None and (two.fee, two.fee_spend_bundle, two.fee_settled) == (20, b"fee spend", False)
    one = await store.get_reward_claim(h("one"))
    assert one is not None and (one.fee, one.fee_settled, one.spend_bundle_name) == (0, True, h("absorb 2"))
    assert fee_versions_of(await store.claim_fee_versions(h("two"))) == [(1, b"fee spend", 20, 70, False)]
    assert await store.reserved_coins() == {h("fee coin"): claim_holder(h("two"))}
    ledger = await store.ledger()
    assert (ledger.pool_fee_share, ledger.blockchain_fees) == (80, 20) and ledger.balanced
    await store.settle_claim_fee(h("two"), landed=True, fee_paid=20)
    settled = await store.ledger()
    assert (settled.pool_fee_share, settled.blockchain_fees) == (80, 20) and settled.balanced
    assert await store.reserved_coins() == {}
    with pytest.raises(StoreError):  # a fee spend that settled is not replaced
        await store.replace_claim_fee(
            h("two"), b"again", 30, h("absorb 3"), now=3_001, height=71, replaces=h("absorb 2")
        )


@pytest.mark.parametrize(
    "landed, fee_paid, charged",
    [(True, 10, 10), (True, 35, 35), (True, None, 35), (False, None, 0)],
    ids=["the older version landed", "the newer landed", "landed, as charged", "none can land"],
)
async def test_whichever_fee_version_lands_is_the_fee_charged(
    store: AbstractPoolStore, landed: bool, fee_paid: int | None, charged: int
) -> None:
    """Of an absorb's fee versions at most one lands: its fee stays charged and the rest goes back to the pool fee
    share; when none can land any more, all of it. The coins of every version are free again."""
    farmer, absorb = await absorb_in_flight(store, fee=10, pool_fee_share=100)
    await store.replace_claim_fee(
        h("one"), b"fee spend 2", 35, h("absorb 2"), now=3_000, height=70, replaces=absorb, coins=[h("fee coin 2")]
    )
    for wrong in (-1, 36):
        with pytest.raises(StoreError):
            await store.settle_claim_fee(h("one"), landed=True, fee_paid=wrong)
    await store.settle_claim_fee(h("one"), landed=landed, fee_paid=fee_paid)
    claim = await store.get_reward_claim(h("one"))
    assert claim is not None and (claim.fee, claim.fee_settled) == (charged, True)
    ledger = await store.ledger()
    assert (ledger.pool_fee_share, ledger.blockchain_fees) == (100 - charged, charged) and ledger.balanced
    assert await store.reserved_coins() == {}
    assert [v.settled for v in await store.claim_fee_versions(h("one"))] == [True, True]
    refunds = [(e.amount, e.reference) for e in await store.ledger_entries() if e.kind is LedgerKind.CLAIM_FEE_REFUND]
    assert refunds == ([] if charged == 35 else [(35 - charged, h("one").hex())])
    with pytest.raises(StoreError):  # once
        await store.settle_claim_fee(h("one"), landed=True)

    # The absorb failed after all; the coin claimed again with a fee spend of its own: its versions go on.
    await store.update_reward_claim(h("one"), ClaimStatus.FAILED, error="dropped")
    again = dataclasses.replace(make_claim("one", farmer, fee=5), fee_spend_bundle=b"fee spend 3")
    assert await store.add_reward_claim(again, fee_coins=[h("fee coin 3")])
    assert fee_versions_of(await store.claim_fee_versions(h("one"))) == [
        (1, b"fee spend one", 10, 60, True),
        (2, b"fee spend 2", 35, 70, True),
        (3, b"fee spend 3", 5, 60, False),
    ]
    recorded = await store.get_reward_claim(h("one"))
    assert recorded is not None and (recorded.fee, recorded.earlier_fees) == (5, charged)
    assert (await store.ledger()).balanced


async def test_a_failed_claim_taken_over_keeps_its_fee_versions(store: AbstractPoolStore) -> None:
    """A bumped absorb failed while its fee spends may still land: the new claim of the coin takes them over, and an
    older one landing later is still charged as it should."""
    farmer, absorb = await absorb_in_flight(store, fee=10, pool_fee_share=100)
    await store.replace_claim_fee(
        h("one"), b"fee spend 2", 35, h("absorb 2"), now=3_000, height=70, replaces=absorb, coins=[h("fee coin 2")]
    )
    await store.update_reward_claim(h("one"), ClaimStatus.FAILED, error="dropped")
    retry = dataclasses.replace(make_claim("one", farmer), spend_bundle_name=h("absorb 3"), submitted_height=90)
    assert await store.add_reward_claim(retry)
    taken = await store.get_reward_claim(h("one"))
    assert taken is not None and (taken.fee, taken.fee_spend_bundle, taken.fee_settled) == (35, b"fee spend 2", False)
    assert [v.version for v in await store.claim_fee_versions(h("one"))] == [1, 2]
    # Its absorb gets a third version, paying what the second did and more.
    await store.replace_claim_fee(
        h("one"),
        b"fee spend 3",
        50,
        h("absorb 4"),
        now=3_100,
        height=95,
        replaces=h("absorb 3"),
        coins=[h("fee coin 2"), h("fee coin 3")],
    )
    assert (await store.ledger()).pool_fee_share == 50
    await store.settle_claim_fee(h("one"), landed=True, fee_paid=10)  # the very first one landed
    ledger = await store.ledger()
    assert (ledger.pool_fee_share, ledger.blockchain_fees) == (90, 10) and ledger.balanced
    assert await store.reserved_coins() == {}


# -- the ledger: distributions ------------------------------------------------------------------------------------
async def test_distribute_moves_undistributed_money_to_the_pool_fee_and_owed_balances(
    store: AbstractPoolStore,
) -> None:
    one, two, three = await add_farmers(store, 100, 50, 7)
    await credit(store, one, "coin", 1_000)
    shares = [DistributionShare(one.launcher_id, 600, 100), DistributionShare(two.launcher_id, 297, 50)]
    made = distribution(farmer_total=897, pool_fee=100, remainder=3)
    distribution_id = await store.distribute(made, shares)

    assert (await points_of(store, one), await points_of(store, two), await points_of(store, three)) == (0, 0, 7)
    assert (await owed_of(store, one), await owed_of(store, two), await owed_of(store, three)) == (600, 297, 0)
    ledger = await store.ledger()
    assert (ledger.undistributed, ledger.pool_fee_share, ledger.owed) == (3, 100, 897)
    assert ledger.balanced
    assert await store.distributions() == [dataclasses.replace(made, id=distribution_id)]
    assert await store.distribution_shares(distribution_id) == sorted(
        (dataclasses.replace(s, distribution_id=distribution_id) for s in shares), key=lambda s: s.launcher_id
    )
    assert await store.distribution_shares(distribution_id + 1) == []
    reference = f"distribution {distribution_id}"
    assert {(e.kind, e.amount, e.launcher_id, e.reference) for e in (await store.ledger_entries())[:3]} == {
        (LedgerKind.DISTRIBUTION_POOL_FEE, 100, None, reference),
        (LedgerKind.DISTRIBUTION_SHARE, 600, one.launcher_id, reference),
        (LedgerKind.DISTRIBUTION_SHARE, 297, two.launcher_id, reference),
    }

    # The rounding left over joins the next one; owed balances grow; most recent first.
    await credit(store, one, "coin 2", 97)
    second = await store.distribute(distribution(farmer_total=100), [DistributionShare(one.launcher_id, 100, 0)])
    assert await owed_of(store, one) == 700
    assert (await store.ledger()).undistributed == 0
    assert [d.id for d in await store.distributions()] == [second, distribution_id]
    assert [d.id for d in await store.distributions(limit=1)] == [second]


async def test_distribute_needs_the_undistributed_money(store: AbstractPoolStore) -> None:
    (one,) = await add_farmers(store, 100)
    await credit(store, one, "coin", 1_000)
    with pytest.raises(InsufficientFunds):
        await store.distribute(
            distribution(farmer_total=901, pool_fee=100), [DistributionShare(one.launcher_id, 901, 1)]
        )
    assert await record_of(store, one) == make_farmer(1, points=100)
    assert await store.distributions() == []
    ledger = await store.ledger()
    assert (ledger.undistributed, ledger.pool_fee_share, ledger.owed) == (1_000, 0, 0)
    assert [e.kind for e in await store.ledger_entries()] == [LedgerKind.CLAIM]
    # All of it is fine, pool fee only is fine.
    await store.distribute(distribution(farmer_total=0, pool_fee=1_000), [])
    assert (await store.ledger()).pool_fee_share == 1_000


async def test_bad_distributions_are_refused_and_write_nothing(store: AbstractPoolStore) -> None:
    one, two = await add_farmers(store, 100, 50)
    await credit(store, one, "coin", 10_000)
    a, b = one.launcher_id, two.launcher_id
    bad: list[tuple[Distribution, list[DistributionShare], type[StoreError]]] = [
        (distribution(farmer_total=0, pool_fee=0), [], StoreError),  # nothing
        (dataclasses.replace(distribution(500, 100), total=700), [DistributionShare(a, 500, 0)], StoreError),
        (distribution(500, 100), [DistributionShare(a, 400, 0)], StoreError),  # shares do not add up
        (distribution(500), [DistributionShare(a, 500, 0), DistributionShare(b, 0, 0)], StoreError),
        (distribution(500), [DistributionShare(a, 600, 0), DistributionShare(b, -100, 0)], StoreError),
        (distribution(500), [DistributionShare(a, 500, -1)], StoreError),
        (distribution(500), [DistributionShare(a, 250, 0), DistributionShare(a, 250, 0)], StoreError),  # twice
        (distribution(500, -1), [DistributionShare(a, 500, 0)], StoreError),
        (distribution(500, remainder=-1), [DistributionShare(a, 500, 0)], StoreError),
        # the farmer has fewer points than the share takes: refused after the money moved, all rolled back
        (distribution(500, 100), [DistributionShare(a, 300, 100), DistributionShare(b, 200, 51)], StoreError),
        (
            distribution(500, 100),
            [DistributionShare(a, 300, 0), DistributionShare(h("nobody"), 200, 0)],
            FarmerNotFound,
        ),
    ]
    for made, shares, error in bad:
        with pytest.raises(error):
            await store.distribute(made, shares)
    assert (await record_of(store, one), await record_of(store, two)) == (
        make_farmer(1, points=100),
        make_farmer(2, points=50),
    )
    assert await store.distributions() == []
    ledger = await store.ledger()
    assert (ledger.undistributed, ledger.pool_fee_share, ledger.owed) == (10_000, 0, 0)
    assert [e.kind for e in await store.ledger_entries()] == [LedgerKind.CLAIM]


# -- payouts ------------------------------------------------------------------------------------------------------
async def test_payout_round_records_everything_and_pays_owed_balances(store: AbstractPoolStore) -> None:
    one, two = await add_farmers(store, 100, 50)
    await fund(store, [(one, 600), (two, 300)], pool_fee=12)
    payments = [farmer_payment(one, 600, 0), farmer_payment(two, 300, 1), fee_payment(10, 1)]
    payout_round = make_round(farmer_total=900, pool_fee=10, batch_fees=[1, 1])
    assert payout_round.total == 912
    round_id = await store.create_payout_round(payout_round, payments, batch_fees=[1, 1])

    expected_round = dataclasses.replace(payout_round, id=round_id, status=RoundStatus.OPEN)
    assert await store.get_round(round_id) == expected_round
    assert await store.open_round() == expected_round
    assert await store.rounds() == [expected_round]
    assert await store.get_round(round_id + 1) is None

    batches = await store.batches(round_id)
    assert [(b.round_id, b.index, b.fee, b.status, b.tx_id) for b in batches] == [
        (round_id, 0, 1, BatchStatus.PENDING, None),
        (round_id, 1, 1, BatchStatus.PENDING, None),
    ]
    recorded = await store.payments(round_id=round_id)
    assert [dataclasses.replace(p, id=None) for p in recorded] == [
        dataclasses.replace(p, round_id=round_id) for p in payments
    ]
    assert [p.amount for p in await store.payments(round_id=round_id, batch_index=1)] == [300, 10]
    assert [p.amount for p in await store.payments(launcher_id=two.launcher_id)] == [300]
    assert await store.payments(round_id=round_id + 1) == []

    # Paid from the owed balances and the pool fee share; points belong to distributions and stay.
    assert (await owed_of(store, one), await owed_of(store, two)) == (0, 0)
    assert (await points_of(store, one), await points_of(store, two)) == (100, 50)
    ledger = await store.ledger()
    assert ledger == LedgerSummary(
        confirmed_claims=912,
        farmer_payments=900,
        farmer_payments_in_flight=900,
        owed=0,
        pool_fee_share=0,
        pool_fee_payments=10,
        blockchain_fees=2,
        undistributed=0,
    )
    assert ledger.balanced and ledger.wallet_should_hold == 0
    reference = f"round {round_id}"
    assert {(e.kind, e.amount, e.launcher_id, e.reference) for e in (await store.ledger_entries())[:5]} == {
        (LedgerKind.PAYMENT, 600, one.launcher_id, reference),
        (LedgerKind.PAYMENT, 300, two.launcher_id, reference),
        (LedgerKind.POOL_FEE_PAYMENT, 10, None, reference),
        (LedgerKind.BATCH_FEE, 1, None, f"{reference} batch 0"),
        (LedgerKind.BATCH_FEE, 1, None, f"{reference} batch 1"),
    }


async def test_a_round_may_pay_part_of_the_owed_balances(store: AbstractPoolStore) -> None:
    one, two = await add_farmers(store, 0, 0)
    await fund(store, [(one, 600), (two, 5)], pool_fee=50)
    # two's balance is below the minimum payment: it waits, one farmer paid in two payments of one round.
    payments = [farmer_payment(one, 400, 0), farmer_payment(one, 200, 0)]
    await store.create_payout_round(make_round(farmer_total=600, batch_fees=[7]), payments, batch_fees=[7])
    assert (await owed_of(store, one), await owed_of(store, two)) == (0, 5)
    ledger = await store.ledger()
    assert (ledger.owed, ledger.pool_fee_share, ledger.farmer_payments, ledger.blockchain_fees) == (5, 43, 600, 7)
    assert ledger.balanced and ledger.wallet_should_hold == 48


async def test_a_round_beyond_an_owed_balance_or_the_pool_fee_share_writes_nothing(store: AbstractPoolStore) -> None:
    one, two = await add_farmers(store, 100, 50)
    await fund(store, [(one, 600), (two, 300)], pool_fee=12)
    before, journal = await store.ledger(), await store.ledger_entries()
    too_much = [
        # two is owed only 300
        ([farmer_payment(one, 600), farmer_payment(two, 301)], 0, [0]),
        # the fee-address payment and the batch fees come from a share of 12
        ([farmer_payment(one, 600), fee_payment(13)], 13, [0]),
        ([farmer_payment(one, 600), fee_payment(10)], 10, [1, 2]),
        ([farmer_payment(one, 600)], 0, [13]),
    ]
    for payments, pool_fee, batch_fees in too_much:
        farmer_total = sum(p.amount for p in payments if p.launcher_id is not None)
        with pytest.raises(InsufficientFunds):
            await store.create_payout_round(make_round(farmer_total, pool_fee, batch_fees), payments, batch_fees)

    assert (await record_of(store, one)).owed == 600
    assert (await record_of(store, two)).owed == 300
    assert await store.open_round() is None
    assert await store.rounds() == []
    assert await store.payments() == []
    assert await store.ledger() == before
    assert await store.ledger_entries() == journal
    # exactly the balances is fine
    payments = [farmer_payment(one, 600), farmer_payment(two, 300), fee_payment(10)]
    await store.create_payout_round(make_round(900, 10, [2]), payments, [2])
    assert (await store.ledger()).pool_fee_share == 0


async def test_round_payments_must_fit_the_round(store: AbstractPoolStore) -> None:
    (one,) = await add_farmers(store, 100)
    await fund(store, [(one, 600)], pool_fee=100)
    before = await store.ledger()
    bad_rounds = [
        (make_round(600), [farmer_payment(one, 600, batch_index=1)], [0]),  # no batch 1
        (make_round(0, 15), [fee_payment(10), Payment(h("fee"), 5, None, points=3, batch_index=0)], [0]),
        (make_round(600), [dataclasses.replace(farmer_payment(one, 600), points=100)], [0]),  # points are not paid
        (make_round(600, batch_fees=[]), [farmer_payment(one, 600)], []),  # no batch at all
        (make_round(600, batch_fees=[-1]), [farmer_payment(one, 600)], [-1]),
        (make_round(700), [farmer_payment(one, 600), farmer_payment(one, 100)], [0]),  # more than owed, summed
        (make_round(0), [farmer_payment(one, 0)], [0]),  # nothing paid
        (make_round(-5), [farmer_payment(one, 5), farmer_payment(one, -10)], [0]),
        (make_round(600, 0, [0]), [farmer_payment(make_farmer(9), 600)], [0]),  # unknown farmer
        # totals that do not match the payments and the batch fees
        (make_round(599), [farmer_payment(one, 600)], [0]),
        (make_round(600, 10), [farmer_payment(one, 600)], [0]),
        (make_round(600, 0, [1]), [farmer_payment(one, 600)], [2]),
        (dataclasses.replace(make_round(600), total=601), [farmer_payment(one, 600)], [0]),
    ]
    for payout_round, payments, fees in bad_rounds:
        with pytest.raises(StoreError):
            await store.create_payout_round(payout_round, payments, batch_fees=fees)
    assert await owed_of(store, one) == 600
    assert await points_of(store, one) == 100
    assert await store.rounds() == []
    assert await store.payments() == []
    assert await store.ledger() == before


async def test_only_one_round_is_open_at_a_time(store: AbstractPoolStore) -> None:
    one, two = await add_farmers(store, 100, 50)
    await fund(store, [(one, 600), (two, 300)])
    first = await store.create_payout_round(make_round(600), [farmer_payment(one, 600)], batch_fees=[0])
    with pytest.raises(RoundAlreadyOpen):
        await store.create_payout_round(make_round(300), [farmer_payment(two, 300)], batch_fees=[0])
    assert await owed_of(store, two) == 300
    assert [r.id for r in await store.rounds()] == [first]
    assert len(await store.payments()) == 1


async def test_batch_lifecycle_closes_the_round_when_all_batches_confirm(store: AbstractPoolStore) -> None:
    one, two, three = await add_farmers(store, 100, 50, 5)
    await fund(store, [(one, 600), (two, 300), (three, 1)], pool_fee=3)
    payments = [farmer_payment(one, 600, 0), farmer_payment(two, 300, 1)]
    round_id = await store.create_payout_round(make_round(900, 0, [1, 2]), payments, batch_fees=[1, 2])
    first, second = await store.batches(round_id)
    assert first.id is not None and second.id is not None

    with pytest.raises(StoreError):
        await store.mark_batch_confirmed(first.id, height=10, now=6_000)  # not submitted yet
    assert await store.batch_status(first.id) is BatchStatus.PENDING

    await store.mark_batch_submitted(first.id, h("tx 1"), b"signed bundle 1", now=6_001, height=100)
    submitted = (await store.batches(round_id))[0]
    assert (submitted.status, submitted.tx_id, submitted.spend_bundle, submitted.updated_at) == (
        BatchStatus.SUBMITTED,
        h("tx 1"),
        b"signed bundle 1",
        6_001,
    )
    assert submitted.submitted_height == 100
    with pytest.raises(StoreError):
        await store.mark_batch_submitted(first.id, h("tx 2"), b"another", now=6_002)  # already submitted
    assert (await store.batches(round_id))[0].tx_id == h("tx 1")
    assert [(v.version, v.tx_id, v.spend_bundle, v.fee, v.height) for v in await store.batch_versions(first.id)] == [
        (1, h("tx 1"), b"signed bundle 1", 1, 100)
    ]
    assert (await store.ledger()).farmer_payments == 900  # paid from the owed balances, in flight

    await store.mark_batch_confirmed(first.id, height=120, now=6_006)
    assert await store.batch_status(first.id) is BatchStatus.CONFIRMED
    assert (await store.batches(round_id))[0].confirmed_height == 120
    open_round = await store.open_round()
    assert open_round is not None and open_round.id == round_id  # the second batch is still unpaid
    assert (await store.ledger()).farmer_payments_in_flight == 300

    with pytest.raises(StoreError):
        await store.mark_batch_confirmed(first.id, height=121, now=6_007)  # never confirmed twice

    await store.mark_batch_submitted(second.id, h("tx 2"), b"signed bundle 2", now=6_008)
    await store.mark_batch_confirmed(second.id, height=121, now=6_009)
    done = await store.get_round(round_id)
    assert done is not None and done.status is RoundStatus.DONE
    assert await store.open_round() is None
    ledger = await store.ledger()
    assert (ledger.farmer_payments, ledger.farmer_payments_in_flight, ledger.blockchain_fees) == (900, 0, 3)
    assert ledger.balanced

    # with the round done, the next one may start
    next_round = await store.create_payout_round(make_round(1), [farmer_payment(three, 1)], [0])
    assert [r.id for r in await store.rounds()] == [next_round, round_id]
    assert [r.id for r in await store.rounds(limit=1)] == [next_round]


async def test_transitions_of_an_unknown_batch_raise(store: AbstractPoolStore) -> None:
    assert await store.batch_status(12345) is None
    with pytest.raises(StoreError):
        await store.mark_batch_submitted(12345, h("tx"), b"bundle", now=1)
    with pytest.raises(StoreError):
        await store.mark_batch_confirmed(12345, height=1, now=1)
    with pytest.raises(StoreError):
        await store.replace_batch_transaction(12345, h("tx"), b"bundle", fee=1, now=1, height=1, replaces=h("tx 0"))
    assert await store.batch_versions(12345) == []


async def one_batch_round(store: AbstractPoolStore, fee: int, pool_fee_share: int) -> tuple[int, int]:
    """A farmer owed 1 000 and a pool fee share, then a round of one batch paying the farmer with ``fee``."""
    (farmer,) = await add_farmers(store, 0)
    await fund(store, [(farmer, 1_000)], pool_fee=pool_fee_share)
    round_id = await store.create_payout_round(make_round(1_000, 0, [fee]), [farmer_payment(farmer, 1_000)], [fee])
    (batch,) = await store.batches(round_id)
    assert batch.id is not None
    return round_id, batch.id


async def test_a_fee_bump_charges_the_increase_to_the_pool_fee_share(store: AbstractPoolStore) -> None:
    round_id, batch_id = await one_batch_round(store, fee=10, pool_fee_share=100)
    with pytest.raises(StoreError):  # only a submitted batch has a transaction to replace
        await store.replace_batch_transaction(
            batch_id, h("tx 2"), b"bundle 2", fee=20, now=6_001, height=101, replaces=h("tx 1")
        )
    await store.mark_batch_submitted(batch_id, h("tx 1"), b"bundle 1", now=6_000, height=100)

    await store.replace_batch_transaction(
        batch_id, h("tx 2"), b"bundle 2", fee=35, now=6_001, height=110, replaces=h("tx 1")
    )
    (batch,) = await store.batches(round_id)
    assert (batch.status, batch.tx_id, batch.spend_bundle, batch.fee, batch.updated_at, batch.submitted_height) == (
        BatchStatus.SUBMITTED,
        h("tx 2"),
        b"bundle 2",
        35,
        6_001,
        110,
    )
    bumped_round = await store.get_round(round_id)
    assert bumped_round is not None
    assert (bumped_round.blockchain_fees, bumped_round.total) == (35, 1_035)
    ledger = await store.ledger()
    assert (ledger.pool_fee_share, ledger.blockchain_fees) == (65, 35)
    assert ledger.balanced
    latest = (await store.ledger_entries())[0]
    assert (latest.kind, latest.amount, latest.reference) == (LedgerKind.BATCH_FEE, 25, f"round {round_id} batch 0")

    # The same fee again: a new transaction, nothing charged.
    await store.replace_batch_transaction(
        batch_id, h("tx 3"), b"bundle 3", fee=35, now=6_002, height=111, replaces=h("tx 2")
    )
    assert (await store.ledger()).pool_fee_share == 65
    assert (await store.batches(round_id))[0].tx_id == h("tx 3")
    before, journal = await store.ledger(), await store.ledger_entries()

    with pytest.raises(StoreError):  # a lower fee is refused
        await store.replace_batch_transaction(
            batch_id, h("tx 4"), b"bundle 4", fee=34, now=6_003, height=112, replaces=h("tx 3")
        )
    with pytest.raises(InsufficientFunds):  # more than the share can pay: nothing written
        await store.replace_batch_transaction(
            batch_id, h("tx 5"), b"bundle 5", fee=35 + 66, now=6_003, height=112, replaces=h("tx 3")
        )
    with pytest.raises(StaleTransaction):  # built from a version that is no longer the batch's: nothing written
        await store.replace_batch_transaction(
            batch_id, h("tx 5"), b"bundle 5", fee=40, now=6_003, height=112, replaces=h("tx 2")
        )
    (batch,) = await store.batches(round_id)
    assert (batch.tx_id, batch.fee, batch.submitted_height) == (h("tx 3"), 35, 111)
    assert await store.ledger() == before
    assert await store.ledger_entries() == journal
    # Every version is kept, in order.
    versions = await store.batch_versions(batch_id)
    assert [(v.version, v.tx_id, v.fee, v.height) for v in versions] == [
        (1, h("tx 1"), 10, 100),
        (2, h("tx 2"), 35, 110),
        (3, h("tx 3"), 35, 111),
    ]

    await store.mark_batch_confirmed(batch_id, height=130, now=6_010)
    with pytest.raises(StoreError):  # a confirmed batch is never replaced
        await store.replace_batch_transaction(
            batch_id, h("tx 6"), b"bundle 6", fee=40, now=6_011, height=131, replaces=h("tx 3")
        )
    assert (await store.batches(round_id))[0].fee == 35


async def test_a_cheaper_version_landing_refunds_the_fee_not_spent(store: AbstractPoolStore) -> None:
    round_id, batch_id = await one_batch_round(store, fee=10, pool_fee_share=100)
    await store.mark_batch_submitted(batch_id, h("tx 1"), b"bundle 1", now=6_000, height=100, coins=[h("coin 1")])
    await store.replace_batch_transaction(
        batch_id, h("tx 2"), b"bundle 2", fee=50, now=6_001, height=110, replaces=h("tx 1"), coins=[h("coin 1")]
    )
    assert (await store.ledger()).pool_fee_share == 50
    assert await store.reserved_coins() == {h("coin 1"): batch_holder(batch_id)}

    await store.mark_batch_confirmed(batch_id, height=130, now=6_010, fee_paid=10)  # the first version landed
    assert await store.reserved_coins() == {}  # the other version conflicts with it: its coins are free again
    (batch,) = await store.batches(round_id)
    assert (batch.status, batch.fee) == (BatchStatus.CONFIRMED, 10)
    done = await store.get_round(round_id)
    assert done is not None
    assert (done.status, done.blockchain_fees, done.total) == (RoundStatus.DONE, 10, 1_010)
    ledger = await store.ledger()
    assert (ledger.pool_fee_share, ledger.blockchain_fees) == (90, 10)
    assert ledger.balanced
    latest = (await store.ledger_entries())[0]
    assert (latest.kind, latest.amount, latest.reference) == (
        LedgerKind.BATCH_FEE_REFUND,
        40,
        f"round {round_id} batch 0",
    )


@pytest.mark.parametrize("fee_paid", [None, 10])
async def test_confirming_with_the_fee_charged_refunds_nothing(store: AbstractPoolStore, fee_paid: int | None) -> None:
    round_id, batch_id = await one_batch_round(store, fee=10, pool_fee_share=100)
    await store.mark_batch_submitted(batch_id, h("tx 1"), b"bundle 1", now=6_000, height=100)
    journal = await store.ledger_entries()
    await store.mark_batch_confirmed(batch_id, height=130, now=6_010, fee_paid=fee_paid)
    assert (await store.batches(round_id))[0].fee == 10
    assert (await store.ledger()).pool_fee_share == 90
    assert await store.ledger_entries() == journal


async def test_a_negative_fee_paid_is_refused(store: AbstractPoolStore) -> None:
    round_id, batch_id = await one_batch_round(store, fee=10, pool_fee_share=100)
    await store.mark_batch_submitted(batch_id, h("tx 1"), b"bundle 1", now=6_000, height=100)
    before, journal = await store.ledger(), await store.ledger_entries()
    with pytest.raises(StoreError):
        await store.mark_batch_confirmed(batch_id, height=130, now=6_010, fee_paid=-1)
    (batch,) = await store.batches(round_id)
    assert (batch.status, batch.fee) == (BatchStatus.SUBMITTED, 10)
    assert await store.ledger() == before
    assert await store.ledger_entries() == journal


# -- the ledger: the summary and the journal ----------------------------------------------------------------------
async def test_a_new_store_has_an_empty_balanced_ledger(store: AbstractPoolStore) -> None:
    ledger = await store.ledger()
    assert ledger == LedgerSummary(0, 0, 0, 0, 0, 0, 0, 0)
    assert ledger.balanced and ledger.accounted == 0 and ledger.wallet_should_hold == 0
    assert await store.ledger_entries() == []
    assert await store.distributions() == []


async def test_ledger_figures_and_journal_through_a_whole_cycle(store: AbstractPoolStore) -> None:
    one, two = await add_farmers(store, 30, 10)
    # Rewards 1 and 2 land, 3 fails (its fee given back once the chain shows it can no longer land), 4 is still in
    # flight (its fee spent unless the chain shows otherwise).
    await credit(store, one, "reward 1", 1_000)
    await store.distribute(distribution(farmer_total=0, pool_fee=20), [])  # a fee share to pay claim fees from
    assert await store.add_reward_claim(make_claim("reward 2", two, amount=2_000, fee=5))
    await store.update_reward_claim(h("reward 2"), ClaimStatus.CONFIRMED, confirmed_height=80)
    assert await store.add_reward_claim(make_claim("reward 3", one, amount=3_000, fee=4))
    await store.update_reward_claim(h("reward 3"), ClaimStatus.FAILED, error="gone")
    await store.settle_claim_fee(h("reward 3"), landed=False)
    assert await store.add_reward_claim(make_claim("reward 4", one, amount=4_000, fee=3))

    # 2 980 undistributed: 10 % pool fee, 2 682 split 3:1 (one mojo of rounding stays behind).
    distribution_id = await store.distribute(
        distribution(farmer_total=2_681, pool_fee=298, remainder=1),
        [DistributionShare(one.launcher_id, 2_011, 30), DistributionShare(two.launcher_id, 670, 10)],
    )
    # Pay one (two's 670 waits for more), 300 to the fee address, blockchain fee 6, then bumped to 8.
    round_id = await store.create_payout_round(
        make_round(2_011, 300, [6]), [farmer_payment(one, 2_011), fee_payment(300)], [6]
    )
    (batch,) = await store.batches(round_id)
    assert batch.id is not None
    await store.mark_batch_submitted(batch.id, h("tx"), b"bundle", now=6_000, height=100)
    await store.replace_batch_transaction(
        batch.id, h("tx b"), b"bundle b", fee=8, now=6_001, height=110, replaces=h("tx")
    )

    ledger = await store.ledger()
    assert ledger == LedgerSummary(
        confirmed_claims=3_000,
        farmer_payments=2_011,
        farmer_payments_in_flight=2_011,
        owed=670,
        pool_fee_share=20 - 5 - 4 + 4 - 3 + 298 - 300 - 8,
        pool_fee_payments=300,
        blockchain_fees=5 + 3 + 8,
        undistributed=1,
    )
    assert ledger.pool_fee_share == 2
    assert ledger.balanced
    assert ledger.wallet_should_hold == 670 + 2 + 1

    await store.mark_batch_confirmed(batch.id, height=130, now=6_010, fee_paid=6)
    ledger = await store.ledger()
    assert (ledger.farmer_payments_in_flight, ledger.pool_fee_share, ledger.blockchain_fees) == (0, 4, 14)
    assert ledger.balanced

    one_id, two_id = one.launcher_id, two.launcher_id
    dist, paid = f"distribution {distribution_id}", f"round {round_id}"
    journal = [(e.kind, e.amount, e.launcher_id, e.reference) for e in reversed(await store.ledger_entries())]
    first_distribution = f"distribution {distribution_id - 1}"
    assert journal == [
        (LedgerKind.CLAIM, 1_000, one_id, h("reward 1").hex()),
        (LedgerKind.DISTRIBUTION_POOL_FEE, 20, None, first_distribution),
        (LedgerKind.CLAIM_FEE, 5, two_id, h("reward 2").hex()),
        (LedgerKind.CLAIM, 2_000, two_id, h("reward 2").hex()),
        (LedgerKind.CLAIM_FEE, 4, one_id, h("reward 3").hex()),
        (LedgerKind.CLAIM_FEE_REFUND, 4, one_id, h("reward 3").hex()),
        (LedgerKind.CLAIM_FEE, 3, one_id, h("reward 4").hex()),
        (LedgerKind.DISTRIBUTION_POOL_FEE, 298, None, dist),
        (LedgerKind.DISTRIBUTION_SHARE, 2_011, one_id, dist),
        (LedgerKind.DISTRIBUTION_SHARE, 670, two_id, dist),
        (LedgerKind.PAYMENT, 2_011, one_id, paid),
        (LedgerKind.POOL_FEE_PAYMENT, 300, None, paid),
        (LedgerKind.BATCH_FEE, 6, None, f"{paid} batch 0"),
        (LedgerKind.BATCH_FEE, 2, None, f"{paid} batch 0"),
        (LedgerKind.BATCH_FEE_REFUND, 2, None, f"{paid} batch 0"),
    ]
    entries = await store.ledger_entries()
    assert [e.id for e in entries] == sorted((e.id for e in entries if e.id is not None), reverse=True)
    assert await store.ledger_entries(limit=2) == entries[:2]
    assert all(e.created_at > 0 for e in entries)


# -- durability ---------------------------------------------------------------------------------------------------
async def test_everything_survives_close_and_reopen(store_factory: StoreFactory, tmp_path: Path) -> None:
    first = store_factory(tmp_path)
    await first.open()
    farmer = make_farmer(1, difficulty=10)
    await first.add_farmer(farmer)
    confirmed_id = await first.add_partial(make_partial(farmer, "confirmed", 100))
    pending_id = await first.add_partial(make_partial(farmer, "pending", 200))
    assert confirmed_id is not None and pending_id is not None
    await first.confirm_partial(confirmed_id)
    await credit(first, farmer, "landed", 1_000)
    distribution_id = await first.distribute(
        distribution(farmer_total=880, pool_fee=100, remainder=20), [DistributionShare(farmer.launcher_id, 880, 4)]
    )
    claim = make_claim("coin", farmer, fee=3)
    await first.add_reward_claim(claim)
    round_id = await first.create_payout_round(make_round(60, 0, [1]), [farmer_payment(farmer, 60)], batch_fees=[1])
    (batch,) = await first.batches(round_id)
    assert batch.id is not None
    await first.mark_batch_submitted(batch.id, h("tx"), b"signed bundle", now=7_000, height=300)
    version = await first.schema_version()
    ledger, journal = await first.ledger(), await first.ledger_entries()
    distributions = await first.distributions()
    await first.close()

    reopened = store_factory(tmp_path)
    await reopened.open()
    try:
        assert await reopened.schema_version() == version
        assert await reopened.get_farmer(farmer.launcher_id) == dataclasses.replace(farmer, points=6, owed=820)
        assert [p.id for p in await reopened.pending_partials(received_before=10_000)] == [pending_id]
        assert await reopened.get_reward_claim(claim.coin_id) == claim
        (batch_again,) = await reopened.batches(round_id)
        assert (batch_again.status, batch_again.spend_bundle, batch_again.submitted_height) == (
            BatchStatus.SUBMITTED,
            b"signed bundle",
            300,
        )
        assert await reopened.add_partial(make_partial(farmer, "confirmed", 300)) is None  # still known after restart
        assert await reopened.ledger() == ledger
        assert ledger.balanced and (ledger.undistributed, ledger.pool_fee_share, ledger.owed) == (20, 96, 820)
        assert await reopened.ledger_entries() == journal
        assert await reopened.distributions() == distributions
        assert [s.amount for s in await reopened.distribution_shares(distribution_id)] == [880]
    finally:
        await reopened.close()


# -- concurrency --------------------------------------------------------------------------------------------------
async def test_concurrent_claim_fees_never_overdraw_the_pool_fee_share(store: AbstractPoolStore) -> None:
    (farmer,) = await add_farmers(store, 0)
    await fund(store, [], pool_fee=100, claimant=farmer)
    results = await asyncio.gather(
        *(store.add_reward_claim(make_claim(f"raced {i}", farmer, fee=30)) for i in range(5)),
        return_exceptions=True,
    )
    assert sorted(type(result).__name__ for result in results) == ["InsufficientFunds"] * 2 + ["bool"] * 3
    assert len(await store.reward_claims(ClaimStatus.SUBMITTED)) == 3
    ledger = await store.ledger()
    assert (ledger.pool_fee_share, ledger.blockchain_fees) == (10, 90)
    assert ledger.balanced


async def test_concurrent_confirmations_of_a_claim_credit_once(store: AbstractPoolStore) -> None:
    (farmer,) = await add_farmers(store, 0)
    assert await store.add_reward_claim(make_claim("coin", farmer, amount=1_750))
    results = await asyncio.gather(
        *(store.update_reward_claim(h("coin"), ClaimStatus.CONFIRMED, confirmed_height=70) for _ in range(10)),
        return_exceptions=True,
    )
    assert sum(result is None for result in results) == 1
    assert all(isinstance(result, StoreError) for result in results if result is not None)
    ledger = await store.ledger()
    assert (ledger.confirmed_claims, ledger.undistributed) == (1_750, 1_750)
    assert [e.kind for e in await store.ledger_entries()] == [LedgerKind.CLAIM]


async def test_concurrent_distributions_never_share_the_same_money_twice(store: AbstractPoolStore) -> None:
    one, two = await add_farmers(store, 0, 0)
    await credit(store, one, "coin", 1_000)
    results = await asyncio.gather(
        store.distribute(distribution(farmer_total=700), [DistributionShare(one.launcher_id, 700, 0)]),
        store.distribute(distribution(farmer_total=700), [DistributionShare(two.launcher_id, 700, 0)]),
        return_exceptions=True,
    )
    assert sum(isinstance(result, InsufficientFunds) for result in results) == 1
    ledger = await store.ledger()
    assert (ledger.undistributed, ledger.owed) == (300, 700)
    assert ledger.balanced


# -- leadership: fencing ------------------------------------------------------------------------------------------
async def test_the_leader_says_it_leads_and_a_stale_one_is_not_heard(
    store_factory: StoreFactory, tmp_path: Path
) -> None:
    """Every process's readiness asks when the leader last said it leads: only the newest epoch's word counts."""
    first, second, worker = (store_factory(tmp_path) for _ in range(3))
    for store in (first, second, worker):
        await store.open()
    try:
        assert await worker.leader_seen_at() == 0
        assert not await worker.leader_alive(50)  # never led: says nothing
        await first.take_leadership("first")
        assert await first.leader_alive(100) and await worker.leader_seen_at() == 100
        await second.take_leadership("second")
        assert not await first.leader_alive(200)  # the stale leader is not heard
        assert await worker.leader_seen_at() == 100
        assert await second.leader_alive(300) and await worker.leader_seen_at() == 300
    finally:
        for store in (first, second, worker):
            await store.close()


async def test_only_the_newest_leader_moves_money(store_factory: StoreFactory, tmp_path: Path) -> None:
    """Two processes believe they lead (the first has not yet noticed it lost its lock): once the second took a newer
    epoch, every money write of the first fails and writes nothing; a process that never led (HTTP workers, tools)
    is not fenced for what it may write."""
    first, second, worker = (store_factory(tmp_path) for _ in range(3))
    for store in (first, second, worker):
        await store.open()
    try:
        assert await first.leader_epoch() == 0
        one, two = await add_farmers(first, 10, 10)
        assert await first.take_leadership("first") == 1
        await credit(first, one, "coin 1", 1_000)
        assert await second.take_leadership("second") == 2
        assert await first.leader_epoch() == 2
        before, journal = await worker.ledger(), await worker.ledger_entries()
        partial_id = await worker.add_partial(make_partial(one, "proof", 5))  # HTTP intake: not fenced
        assert partial_id is not None

        with pytest.raises(NotLeader, match="epoch 2 leads now"):
            await first.add_reward_claim(make_claim("coin 2", one, amount=500))
        with pytest.raises(NotLeader):
            await first.update_reward_claim(h("coin 1"), ClaimStatus.LOST)
        with pytest.raises(NotLeader):
            await first.distribute(distribution(1_000), [DistributionShare(one.launcher_id, 1_000, 10)])
        with pytest.raises(NotLeader):
            await first.confirm_partials([partial_id])
        with pytest.raises(NotLeader):
            await first.reject_partial(partial_id, "no")
        assert (await worker.ledger(), await worker.ledger_entries()) == (before, journal)
        assert await worker.get_reward_claim(h("coin 2")) is None
        assert (await worker.get_partial(partial_id)).status is PartialStatus.PENDING  # type: ignore[union-attr]

        # The newest leader moves money; when the first leads again (a new epoch), the second no longer can.
        await second.distribute(distribution(1_000), [DistributionShare(two.launcher_id, 1_000, 10)])
        assert await first.take_leadership("first again") == 3
        round_id = await first.create_payout_round(make_round(1_000), [farmer_payment(two, 1_000)], [0])
        (batch,) = await first.batches(round_id)
        assert batch.id is not None
        with pytest.raises(NotLeader):
            await second.mark_batch_submitted(batch.id, h("tx"), b"bundle", now=1, height=1)
        await first.mark_batch_submitted(batch.id, h("tx"), b"bundle", now=1, height=1)
        assert (await worker.ledger()).balanced
    finally:
        for store in (first, second, worker):
            await store.close()


async def test_a_leader_older_than_the_schema_moves_no_money(store_factory: StoreFactory, tmp_path: Path) -> None:
    """A rolling upgrade: a newer version of the pool migrates the database while the older one still leads. The
    older one's money writes fail, and it cannot take leadership again."""
    older = store_factory(tmp_path, empty=True)
    await older.open()
    try:
        (farmer,) = await add_farmers(older, 0)
        await older.take_leadership("older code")
        await credit(older, farmer, "coin 1", 1_000)
        newer = store_factory(tmp_path, newer_schema=True)
        await newer.open()  # one schema step further
        await newer.close()
        with pytest.raises(SchemaChanged):
            await older.add_reward_claim(make_claim("coin 2", farmer))
        with pytest.raises(SchemaChanged):
            await older.take_leadership("older code again")
        assert [c.coin_id for c in await older.reward_claims()] == [h("coin 1")]
    finally:
        await older.close()


async def test_the_books_read_balanced_while_two_processes_move_money(
    store_factory: StoreFactory, tmp_path: Path
) -> None:
    """Two store objects move money at once, as two processes would (one credits claims and shares them out, the
    other pays owed balances in rounds), while a third reads the books: every read is one snapshot and balances."""
    sharing, paying, reader = (store_factory(tmp_path) for _ in range(3))
    for store in (sharing, paying, reader):
        await store.open()
    one, two = await add_farmers(sharing, 0, 0)
    steps = 12
    shared = asyncio.Event()
    reads, rounds_paid = 0, 0

    async def share_out() -> None:
        try:
            for step in range(steps):
                await credit(sharing, one, f"coin {step}", 1_000 + step)
                shares = [DistributionShare(one.launcher_id, 600, 0), DistributionShare(two.launcher_id, 390 + step, 0)]
                await sharing.distribute(distribution(990 + step, pool_fee=10), shares)
                await asyncio.sleep(0)
        finally:
            shared.set()

    async def pay_out() -> None:
        nonlocal rounds_paid
        while not shared.is_set() or await owed_of(paying, one) >= 600:
            owed = await owed_of(paying, one)
            if owed < 600:
                await asyncio.sleep(0)
                continue
            round_id = await paying.create_payout_round(make_round(owed, 0, [2]), [farmer_payment(one, owed)], [2])
            (batch,) = await paying.batches(round_id)
            assert batch.id is not None
            await paying.mark_batch_submitted(batch.id, h(f"tx {round_id}"), b"bundle", now=1, height=1)
            await paying.mark_batch_confirmed(batch.id, height=4, now=2)
            rounds_paid += 1

    async def read_books() -> None:
        nonlocal reads
        while not shared.is_set() or reads < 20:
            ledger = await reader.ledger()
            assert ledger.balanced, ledger
            reads += 1
            await asyncio.sleep(0)

    try:
        await asyncio.gather(share_out(), pay_out(), read_books())
        final = await reader.ledger()
    finally:
        for store in (sharing, paying, reader):
            await store.close()
    assert rounds_paid >= 1 and reads >= 20
    assert final.balanced and final.farmer_payments == 600 * steps and final.farmer_payments_in_flight == 0


# -- the target address -------------------------------------------------------------------------------------------
async def test_a_target_proof_is_kept_and_a_newer_one_replaces_it(store: AbstractPoolStore) -> None:
    assert await store.target_proof(h("target")) is None
    first = TargetProof(h("target"), "txch1target", 1, b"key 1", b"signature 1", "mode", "message 1", proven_at=10)
    await store.record_target_proof(first)
    assert await store.target_proof(h("target")) == first
    assert await store.target_proof(h("another target")) is None
    newer = dataclasses.replace(first, fingerprint=None, signature=b"signature 2", message="message 2", proven_at=20)
    await store.record_target_proof(newer)
    assert await store.target_proof(h("target")) == newer


# -- the farmers' history, bans and the operator's pages of payments, claims and daily partials -------------------
async def test_every_change_of_a_farmer_enters_its_history_in_order(store: AbstractPoolStore) -> None:
    farmer = make_farmer(1)
    await store.add_farmer(farmer)
    await store.update_farmer_settings(
        farmer.launcher_id,
        payout_instructions=("new payout", h("new payout")),
        authentication_public_key=public_key(9),
        now=2_000,
    )
    await store.set_difficulty(farmer.launcher_id, 55, 3_000)
    assert await store.ban_farmer(farmer.launcher_id, "sybil", 4_000)
    assert await store.unban_farmer(farmer.launcher_id, 5_000)
    history = await store.farmer_history(farmer.launcher_id)
    assert [(c.at, c.kind, c.old, c.new) for c in reversed(history)] == [
        (farmer.joined_at, FarmerChangeKind.JOINED, None, farmer.payout_instructions),
        (2_000, FarmerChangeKind.PAYOUT_INSTRUCTIONS, farmer.payout_instructions, "new payout"),
        (2_000, FarmerChangeKind.AUTHENTICATION_KEY, bytes(public_key(1)).hex(), bytes(public_key(9)).hex()),
        (3_000, FarmerChangeKind.DIFFICULTY_SET, "10", "55"),
        (4_000, FarmerChangeKind.BANNED, None, "sybil"),
        (5_000, FarmerChangeKind.UNBANNED, "sybil", None),
    ]
    assert [c.kind for c in await store.farmer_history(farmer.launcher_id, limit=2)] == [
        FarmerChangeKind.UNBANNED,
        FarmerChangeKind.BANNED,
    ]
    # A difficulty the farmer's PUT only asked for is no history of the operator's.
    pending = PendingDifficulty(difficulty=70, effective_at=6_100, asked_at=6_000)
    await store.update_farmer_settings(farmer.launcher_id, pending_difficulty=pending)
    assert len(await store.farmer_history(farmer.launcher_id)) == len(history)
    assert await store.farmer_history(h("nobody")) == []


async def test_a_ban_is_on_the_record_once_and_keeps_the_money(store: AbstractPoolStore) -> None:
    farmer, other = await add_farmers(store, 5, 0)
    await fund(store, [(farmer, 700)])
    assert await store.ban_farmer(farmer.launcher_id, "abuse", 4_000)
    assert not await store.ban_farmer(farmer.launcher_id, "again", 4_500)  # banned already: the first reason stays
    banned = await record_of(store, farmer)
    assert (banned.banned_at, banned.ban_reason, banned.owed, banned.points) == (4_000, "abuse", 700, 5)
    assert not await store.unban_farmer(other.launcher_id, 4_000)  # never banned: nothing happens
    assert (await record_of(store, other)).banned_at is None
    with pytest.raises(FarmerNotFound):
        await store.ban_farmer(h("nobody"), "x", 1)
    with pytest.raises(FarmerNotFound):
        await store.unban_farmer(h("nobody"), 1)
    # Its owed balance is paid as any other's.
    round_id = await store.create_payout_round(make_round(700), [farmer_payment(farmer, 700)], [0])
    assert (await record_of(store, farmer)).owed == 0
    assert [p.launcher_id for p in await store.payments(round_id=round_id)] == [farmer.launcher_id]
    assert await store.unban_farmer(farmer.launcher_id, 5_000)
    assert (await record_of(store, farmer)).banned_at is None


async def test_payment_lines_come_newest_first_a_page_at_a_time(store: AbstractPoolStore) -> None:
    first, second = await add_farmers(store, 0, 0)
    await fund(store, [(first, 300), (second, 200)], pool_fee=50)
    round_id = await store.create_payout_round(
        make_round(500, pool_fee=50, batch_fees=[0, 0], created_at=6_000),
        [farmer_payment(first, 300), farmer_payment(second, 200, batch_index=1), fee_payment(50, batch_index=1)],
        [0, 0],
    )
    (batch, _) = await store.batches(round_id)
    assert batch.id is not None
    await store.mark_batch_submitted(batch.id, h("tx 0"), b"bundle", 6_010)
    lines = await store.payment_lines(10)
    assert [(line.payment.amount, line.created_at) for line in lines] == [(50, 6_000), (200, 6_000), (300, 6_000)]
    assert [(line.batch_status, line.tx_id) for line in lines] == [
        (BatchStatus.PENDING, None),
        (BatchStatus.PENDING, None),
        (BatchStatus.SUBMITTED, h("tx 0")),
    ]
    assert [line.payment.amount for line in await store.payment_lines(1, offset=1)] == [200]
    assert [line.payment.amount for line in await store.payment_lines(10, launcher_id=first.launcher_id)] == [300]


async def test_reward_claims_page_newest_coin_first(store: AbstractPoolStore) -> None:
    (farmer,) = await add_farmers(store, 0)
    for index in range(3):
        assert await store.add_reward_claim(dataclasses.replace(make_claim(f"coin {index}", farmer), coin_height=index))
    await store.update_reward_claim(h("coin 1"), ClaimStatus.CONFIRMED, confirmed_height=70)
    assert [c.coin_height for c in await store.reward_claims_page(2)] == [2, 1]
    assert [c.coin_height for c in await store.reward_claims_page(2, offset=2)] == [0]
    assert [c.coin_id for c in await store.reward_claims_page(5, status=ClaimStatus.CONFIRMED)] == [h("coin 1")]


async def test_daily_partials_count_pruned_hours_as_they_counted_before(store: AbstractPoolStore) -> None:
    first, second = await add_farmers(store, 0, 0)
    day = 86_400
    ids = []
    for index, received_at in enumerate((day + 10, day + 7_300, 2 * day + 5)):
        added = await store.add_partial(make_partial(first, index, received_at))
        assert added is not None
        ids.append(added)
    assert await store.confirm_partials(ids[:2])
    await store.add_partial_refusal(second.launcher_id, day + 20, "TOO_LATE")
    before = await store.daily_partials(0, 3 * day)
    while await store.prune_partials(2 * day, batch=10):
        pass
    after = await store.daily_partials(0, 3 * day)
    assert after == before
    assert [(d.day, d.launcher_id, d.outcome, d.count, d.points) for d in after] == sorted(
        [
            (day, first.launcher_id, "confirmed", 2, 20),
            (day, second.launcher_id, "TOO_LATE", 1, 0),
            (2 * day, first.launcher_id, "pending", 1, 10),
        ]
    )
    assert [d.day for d in await store.daily_partials(2 * day + 100, 3 * day)] == [2 * day]  # from its day's start


# -- bounded reads: aggregates and one farmer's rows, for the pages and the operator ------------------------------
async def test_page_figures_are_aggregates_and_lists_go_back_page_by_page(store: AbstractPoolStore) -> None:
    one, two, three = await add_farmers(store, 100, 50, 7)
    await store.update_singleton(three.launcher_id, three.singleton_tip, three.singleton_tip_state, False)
    first = await fund(store, [(one, 600), (two, 300)], pool_fee=12)
    second = await fund(store, [(one, 40)], pool_fee=3)
    assert await store.add_reward_claim(make_claim("lost in the mempool", one))
    await store.update_reward_claim(h("lost in the mempool"), ClaimStatus.FAILED, error="dropped")
    assert await store.add_reward_claim(make_claim("in flight", two, amount=5))

    round_one = await store.create_payout_round(
        make_round(farmer_total=900, pool_fee=10, batch_fees=[1, 1], created_at=5_000),
        [farmer_payment(one, 600, 0), farmer_payment(two, 300, 1), fee_payment(10, 1)],
        batch_fees=[1, 1],
    )
    for batch, tx_id in zip(await store.batches(round_one), (h("tx one"), h("tx two")), strict=True):
        assert batch.id is not None
        await store.mark_batch_submitted(batch.id, tx_id, b"bundle", now=5_001, height=100)
        await store.mark_batch_confirmed(batch.id, height=110, now=5_002)
    round_two = await store.create_payout_round(
        make_round(farmer_total=40, created_at=6_000), [farmer_payment(one, 40, 0)], batch_fees=[0]
    )

    assert await store.pool_figures() == PoolFigures(
        members=2, points=157, blocks_won=3, rewards_claimed=912 + 43, paid_to_farmers=900
    )
    assert await store.total_points() == 157
    points = await store.farmer_points()
    assert sum(points.values()) == 157 and set(points) == {f.launcher_id for f in await store.list_farmers()}
    assert points == {f.launcher_id: f.points for f in await store.list_farmers()}
    assert await store.count_pending_partials() == 0
    assert await store.claim_totals() == {
        ClaimStatus.CONFIRMED: (2, 955),
        ClaimStatus.FAILED: (1, 1750),
        ClaimStatus.SUBMITTED: (1, 5),
    }
    assert await store.pool_fee_earned() == 15
    assert await store.owed_balances() == []  # all paid (confirmed or in flight)

    # One farmer's payouts, newest first, with their batch's state; pages go back by payment id.
    payouts = await store.farmer_payouts(one.launcher_id, limit=10)
    assert [(p.created_at, p.amount, p.status, p.tx_id, p.confirmed_height) for p in payouts] == [
        (6_000, 40, BatchStatus.PENDING, None, None),
        (5_000, 600, BatchStatus.CONFIRMED, h("tx one"), 110),
    ]
    assert await store.farmer_payouts(one.launcher_id, limit=1) == payouts[:1]
    assert await store.farmer_payouts(one.launcher_id, limit=1, before=payouts[0].id) == payouts[1:]
    assert await store.farmer_payouts(one.launcher_id, limit=10, before=payouts[1].id) == []
    assert [p.amount for p in await store.farmer_payouts(two.launcher_id, limit=10)] == [300]
    assert (await store.farmer_paid(one.launcher_id), await store.farmer_paid(two.launcher_id)) == (600, 300)
    assert all(isinstance(p, FarmerPayout) for p in payouts)

    earnings = await store.farmer_earnings(one.launcher_id, limit=10)
    assert earnings == [FarmerEarning(second, 4_000, 0, 40), FarmerEarning(first, 4_000, 0, 600)]
    assert await store.farmer_earnings(one.launcher_id, limit=1, before=second) == earnings[1:]
    assert await store.farmer_earnings(three.launcher_id, limit=10) == []

    summaries = await store.round_summaries(limit=10)
    assert [(s.round.id, s.farmers_paid, s.tx_ids) for s in summaries] == [
        (round_two, 1, []),
        (round_one, 2, [h("tx one"), h("tx two")]),
    ]
    assert [s.round.id for s in await store.round_summaries(limit=1, before=round_two)] == [round_one]

    # Blocks won: the claims not failed, newest coin first; one page ends amid the two rewards created at height 50.
    assert await store.add_reward_claim(dataclasses.replace(make_claim("newest", two), coin_height=60))
    won = await store.won_blocks(limit=10)
    at_50 = sorted(h(coin) for coin in ("funding claim 0", "funding claim 1", "in flight"))
    assert [(c.coin_height, c.coin_id) for c in won] == [(60, h("newest"))] + [(50, coin) for coin in at_50]
    assert await store.won_blocks(limit=2) == won[:2]
    assert await store.won_blocks(limit=2, before=(won[1].coin_height, won[1].coin_id)) == won[2:]
    assert await store.won_blocks(limit=2, before=(won[3].coin_height, won[3].coin_id)) == []
    # The network's figures recorded with a claim come back with it (claims without them: None).
    measured = dataclasses.replace(
        make_claim("measured", two), coin_height=61, network_difficulty=1_234, network_sub_slot_iters=147_849_216
    )
    assert await store.add_reward_claim(measured)
    assert (await store.won_blocks(limit=1))[0] == measured
    assert won[0].network_difficulty is None and won[0].network_sub_slot_iters is None
    assert await store.round_summaries(limit=10, before=round_one) == []


async def test_owed_balances_are_listed_largest_first(store: AbstractPoolStore) -> None:
    one, two, three = await add_farmers(store, 0, 0, 0)
    await fund(store, [(one, 5), (two, 300), (three, 40)])
    assert await store.owed_balances() == [
        OwedBalance(two.launcher_id, 300, two.payout_puzzle_hash),
        OwedBalance(three.launcher_id, 40, three.payout_puzzle_hash),
        OwedBalance(one.launcher_id, 5, one.payout_puzzle_hash),
    ]
    assert [o.launcher_id for o in await store.owed_balances(limit=2)] == [two.launcher_id, three.launcher_id]


async def test_anyone_due_is_whom_a_payout_round_would_pay(store: AbstractPoolStore) -> None:
    """The payout loop asks it before reading every owed balance: it must say yes exactly when plan_payments finds
    someone due, for the pool's minimum payment and each farmer's own."""
    one, two, three, four = await add_farmers(store, 0, 0, 0, 0)
    await fund(store, [(one, 5), (two, 300), (three, 40), (four, 41)])
    await store.change_farmer_settings(FarmerSettings(two.launcher_id, min_payout=500), now=10)
    await store.change_farmer_settings(FarmerSettings(four.launcher_id, min_payout=None, webhook_url=None), now=10)
    minimums = {i: s.min_payout or 0 for i, s in (await store.all_farmer_settings()).items()}
    payable = [
        Payable(o.launcher_id, o.payout_puzzle_hash, o.owed, minimums.get(o.launcher_id, 0))
        for o in await store.owed_balances()
    ]
    for min_payment in (0, 1, 5, 6, 40, 41, 42, 300, 301, 500, 501):
        plan = plan_payments(
            payable,
            min_payment=min_payment,
            pool_fee_share=0,
            fee_reserve=0,
            blockchain_fee=0,
            max_additions=10,
            fee_puzzle_hash=bytes32(b"\x09" * 32),
        )
        assert await store.anyone_due(min_payment) == (plan is not None), min_payment
    assert await store.anyone_due(41) and not await store.anyone_due(42)  # two's own minimum holds its 300 back
    await store.change_farmer_settings(FarmerSettings(two.launcher_id, min_payout=300), now=20)
    assert await store.anyone_due(300) and not await store.anyone_due(301)


async def test_the_books_and_figures_are_read_while_a_money_transaction_is_open(store: AbstractPoolStore) -> None:
    """They read committed state on a connection of their own: a write in progress (the partials' group commit, a
    payout round) neither waits for them nor shows in them."""
    assert isinstance(store, SqlPoolStore)
    (one,) = await add_farmers(store, 10)
    await credit(store, one, "coin", 1_000)
    with pytest.raises(RuntimeError, match="rolled back"):
        async with store._write(ledger=True) as tx:
            await tx.execute("UPDATE ledger_accounts SET balance = balance + 5 WHERE name = 'undistributed'")
            await tx.execute("UPDATE farmers SET points = points + 5")
            during = await asyncio.wait_for(store.ledger(), 30)
            figures = await asyncio.wait_for(store.pool_figures(), 30)
            points = await asyncio.wait_for(store.total_points(), 30)
            raise RuntimeError("rolled back")
    assert during.undistributed == 1_000 and during.balanced
    assert (figures.points, figures.rewards_claimed, points) == (10, 1_000, 10)


# -- the pool's shared secrets ------------------------------------------------------------------------------------
async def test_a_pool_secret_is_the_first_one_recorded_for_every_caller(store: AbstractPoolStore) -> None:
    first = await store.pool_secret("v2 tokens", b"\x01" * 32, now=10)
    assert first == b"\x01" * 32
    # A second process with its own candidate gets the recorded secret, and so do concurrent first callers.
    assert await store.pool_secret("v2 tokens", b"\x02" * 32, now=20) == first
    together = await asyncio.gather(*(store.pool_secret("other", bytes([n]) * 32, now=30) for n in range(4)))
    assert len(set(together)) == 1 and together[0] in {bytes([n]) * 32 for n in range(4)}
    assert together[0] != first
