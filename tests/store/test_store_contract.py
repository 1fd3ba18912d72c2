"""The behaviour every AbstractPoolStore implementation must have (run per backend by the ``store`` fixture)."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Callable
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
from pool.store.abstract import AbstractPoolStore, FarmerAlreadyExists, FarmerNotFound, RoundAlreadyOpen, StoreError
from pool.store.models import (
    BatchStatus,
    ClaimStatus,
    FarmerRecord,
    PartialRecord,
    PartialStatus,
    Payment,
    PayoutRound,
    RewardClaim,
    RoundStatus,
)

StoreFactory = Callable[[Path], AbstractPoolStore]  # as in conftest.py: location -> unopened store

POOL_PUZZLE_HASH = std_hash(b"pool target")


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
        proof_hash=h(f"proof {proof}"),
        sp_hash=h(f"sp {received_at}"),
        end_of_sub_slot=False,
        harvester_id=h("harvester"),
        received_at=received_at,
        difficulty=farmer.difficulty if difficulty is None else difficulty,
    )


def make_claim(
    coin: str, farmer: FarmerRecord, status: ClaimStatus = ClaimStatus.SUBMITTED, amount: int = 1750
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
    )


def make_round(total: int = 1_000, created_at: int = 5_000) -> PayoutRound:
    return PayoutRound(
        created_at=created_at,
        scheme="proportional",
        total=total,
        pool_fee=10,
        blockchain_fees=2,
        farmer_total=total - 12,
        remainder=0,
    )


def farmer_payment(farmer: FarmerRecord, amount: int, points: int, batch_index: int = 0) -> Payment:
    return Payment(
        puzzle_hash=farmer.payout_puzzle_hash,
        amount=amount,
        launcher_id=farmer.launcher_id,
        points=points,
        batch_index=batch_index,
    )


def fee_payment(amount: int, batch_index: int = 0) -> Payment:
    return Payment(puzzle_hash=h("fee"), amount=amount, launcher_id=None, points=0, batch_index=batch_index)


async def points_of(store: AbstractPoolStore, farmer: FarmerRecord) -> int:
    record = await store.get_farmer(farmer.launcher_id)
    assert record is not None
    return record.points


# -- lifecycle ----------------------------------------------------------------------------------------------------
async def test_new_store_is_at_a_schema_version(store: AbstractPoolStore) -> None:
    assert await store.schema_version() >= 1


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
        await store.update_farmer_settings(unknown, pending_difficulty=(5, 10))
    with pytest.raises(FarmerNotFound):
        await store.update_farmer_settings(unknown)
    with pytest.raises(FarmerNotFound):
        await store.set_difficulty(unknown, 5)
    with pytest.raises(FarmerNotFound):
        await store.apply_due_difficulty(unknown, 10)
    with pytest.raises(FarmerNotFound):
        await store.update_singleton(unknown, singleton_spend(1), pool_state(1), True)


async def test_pending_difficulty_takes_effect_only_when_due(store: AbstractPoolStore) -> None:
    farmer = make_farmer(1, difficulty=10)
    await store.add_farmer(farmer)
    await store.update_farmer_settings(farmer.launcher_id, pending_difficulty=(50, 2_000))

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
    assert await store.apply_due_difficulty(farmer.launcher_id, 9_999) == 50


async def test_set_difficulty_replaces_a_pending_one(store: AbstractPoolStore) -> None:
    farmer = make_farmer(1, difficulty=10)
    await store.add_farmer(farmer)
    await store.update_farmer_settings(farmer.launcher_id, pending_difficulty=(50, 2_000))
    await store.set_difficulty(farmer.launcher_id, 30)
    recorded = await store.get_farmer(farmer.launcher_id)
    assert recorded is not None
    assert (recorded.difficulty, recorded.pending_difficulty, recorded.pending_difficulty_at) == (30, None, None)
    assert await store.apply_due_difficulty(farmer.launcher_id, 9_999) == 30


async def test_adjust_difficulty_is_compare_and_set(store: AbstractPoolStore) -> None:
    farmer = make_farmer(1, difficulty=10)
    await store.add_farmer(farmer)
    assert await store.adjust_difficulty(farmer.launcher_id, 10, 20)
    assert await store.adjust_difficulty(farmer.launcher_id, 10, 40) is False  # someone changed it meanwhile
    await store.update_farmer_settings(farmer.launcher_id, pending_difficulty=(50, 2_000))
    assert await store.adjust_difficulty(farmer.launcher_id, 20, 5) is False  # the farmer's PUT change is pending
    recorded = await store.get_farmer(farmer.launcher_id)
    assert recorded is not None
    assert (recorded.difficulty, recorded.pending_difficulty, recorded.pending_difficulty_at) == (20, 50, 2_000)
    with pytest.raises(FarmerNotFound):
        await store.adjust_difficulty(h("unknown"), 10, 20)


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


async def test_points_are_the_difficulty_at_receipt(store: AbstractPoolStore) -> None:
    farmer = make_farmer(1, difficulty=10)
    await store.add_farmer(farmer)
    received_at_10 = await store.add_partial(make_partial(farmer, "a", 100))
    await store.set_difficulty(farmer.launcher_id, 1_000)  # later changes never reach partials already received
    received_at_1000 = await store.add_partial(make_partial(farmer, "b", 200, difficulty=1_000))
    assert received_at_10 is not None and received_at_1000 is not None
    assert await store.confirm_partial(received_at_10)
    assert await store.confirm_partial(received_at_1000)
    assert await points_of(store, farmer) == 1_010


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

    assert await store.confirmed_points_since(100) == {one.launcher_id: 30, two.launcher_id: 7}
    assert await store.confirmed_points_since(501) == {}


async def test_concurrent_add_partial_of_one_proof_gives_exactly_one_id(store: AbstractPoolStore) -> None:
    farmer = make_farmer(1)
    await store.add_farmer(farmer)
    results = await asyncio.gather(*(store.add_partial(make_partial(farmer, "raced", 100 + i)) for i in range(25)))
    ids = [result for result in results if result is not None]
    assert len(ids) == 1
    assert [p.id for p in await store.pending_partials(received_before=10_000)] == ids


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


# -- payouts ------------------------------------------------------------------------------------------------------
async def farmers_with_points(store: AbstractPoolStore, *points: int) -> list[FarmerRecord]:
    farmers = [make_farmer(seed, points=p) for seed, p in enumerate(points, start=1)]
    for farmer in farmers:
        await store.add_farmer(farmer)
    return farmers


async def test_payout_round_records_everything_and_consumes_points(store: AbstractPoolStore) -> None:
    one, two = await farmers_with_points(store, 100, 50)
    payments = [farmer_payment(one, 600, 100, 0), farmer_payment(two, 300, 40, 1), fee_payment(10, 1)]
    round_id = await store.create_payout_round(make_round(total=912), payments, batch_fees=[1, 1])

    expected_round = dataclasses.replace(make_round(total=912), id=round_id, status=RoundStatus.OPEN)
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

    assert await points_of(store, one) == 0
    assert await points_of(store, two) == 10


async def test_a_failing_round_leaves_balances_and_rounds_untouched(store: AbstractPoolStore) -> None:
    one, two = await farmers_with_points(store, 100, 50)
    too_many = [farmer_payment(one, 600, 100), farmer_payment(two, 300, 51)]  # two has only 50 points
    with pytest.raises(StoreError):
        await store.create_payout_round(make_round(), too_many, batch_fees=[0])

    assert await points_of(store, one) == 100
    assert await points_of(store, two) == 50
    assert await store.open_round() is None
    assert await store.rounds() == []
    assert await store.payments() == []


async def test_round_payments_must_fit_the_round(store: AbstractPoolStore) -> None:
    (one,) = await farmers_with_points(store, 100)
    bad_rounds = [
        ([farmer_payment(one, 600, 100, batch_index=1)], [0]),  # no batch 1
        ([fee_payment(10), Payment(h("fee"), 5, None, points=3, batch_index=0)], [0]),  # the fee earns no points
        ([farmer_payment(one, 600, 100)], []),  # no batch at all
        ([farmer_payment(one, 600, 100)], [-1]),
        ([farmer_payment(make_farmer(9), 600, 1)], [0]),  # unknown farmer
    ]
    for payments, fees in bad_rounds:
        with pytest.raises(StoreError):
            await store.create_payout_round(make_round(), payments, batch_fees=fees)
    assert await points_of(store, one) == 100
    assert await store.rounds() == []


async def test_only_one_round_is_open_at_a_time(store: AbstractPoolStore) -> None:
    one, two = await farmers_with_points(store, 100, 50)
    first = await store.create_payout_round(make_round(), [farmer_payment(one, 600, 60)], batch_fees=[0])
    with pytest.raises(RoundAlreadyOpen):
        await store.create_payout_round(make_round(), [farmer_payment(two, 300, 50)], batch_fees=[0])
    assert await points_of(store, two) == 50
    assert [r.id for r in await store.rounds()] == [first]


async def test_batch_lifecycle_closes_the_round_when_all_batches_confirm(store: AbstractPoolStore) -> None:
    one, two = await farmers_with_points(store, 100, 50)
    payments = [farmer_payment(one, 600, 100, 0), farmer_payment(two, 300, 50, 1)]
    round_id = await store.create_payout_round(make_round(), payments, batch_fees=[1, 2])
    first, second = await store.batches(round_id)
    assert first.id is not None and second.id is not None

    with pytest.raises(StoreError):
        await store.mark_batch_confirmed(first.id, height=10, now=6_000)  # not submitted yet
    assert await store.batch_status(first.id) is BatchStatus.PENDING

    await store.mark_batch_submitted(first.id, h("tx 1"), b"signed bundle 1", now=6_001)
    submitted = (await store.batches(round_id))[0]
    assert (submitted.status, submitted.tx_id, submitted.spend_bundle, submitted.updated_at) == (
        BatchStatus.SUBMITTED,
        h("tx 1"),
        b"signed bundle 1",
        6_001,
    )
    with pytest.raises(StoreError):
        await store.mark_batch_submitted(first.id, h("tx 2"), b"another", now=6_002)  # already submitted
    assert (await store.batches(round_id))[0].tx_id == h("tx 1")

    await store.reset_batch(first.id, now=6_003)  # its coins were spent elsewhere: build it again
    reset = (await store.batches(round_id))[0]
    assert (reset.status, reset.tx_id, reset.spend_bundle) == (BatchStatus.PENDING, None, None)
    with pytest.raises(StoreError):
        await store.reset_batch(first.id, now=6_004)  # only a submitted batch can be reset

    await store.mark_batch_submitted(first.id, h("tx 1b"), b"signed bundle 1b", now=6_005)
    await store.mark_batch_confirmed(first.id, height=120, now=6_006)
    assert await store.batch_status(first.id) is BatchStatus.CONFIRMED
    assert (await store.batches(round_id))[0].confirmed_height == 120
    open_round = await store.open_round()
    assert open_round is not None and open_round.id == round_id  # the second batch is still unpaid

    with pytest.raises(StoreError):
        await store.reset_batch(first.id, now=6_007)  # a confirmed payment is never undone

    await store.mark_batch_submitted(second.id, h("tx 2"), b"signed bundle 2", now=6_008)
    await store.mark_batch_confirmed(second.id, height=121, now=6_009)
    done = await store.get_round(round_id)
    assert done is not None and done.status is RoundStatus.DONE
    assert await store.open_round() is None

    # with the round done, the next one may start
    await store.add_farmer(make_farmer(3, points=5))
    next_round = await store.create_payout_round(make_round(), [farmer_payment(make_farmer(3), 1, 5)], [0])
    assert [r.id for r in await store.rounds()] == [next_round, round_id]
    assert [r.id for r in await store.rounds(limit=1)] == [next_round]


async def test_transitions_of_an_unknown_batch_raise(store: AbstractPoolStore) -> None:
    assert await store.batch_status(12345) is None
    with pytest.raises(StoreError):
        await store.mark_batch_submitted(12345, h("tx"), b"bundle", now=1)
    with pytest.raises(StoreError):
        await store.mark_batch_confirmed(12345, height=1, now=1)
    with pytest.raises(StoreError):
        await store.reset_batch(12345, now=1)


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
    claim = make_claim("coin", farmer)
    await first.add_reward_claim(claim)
    round_id = await first.create_payout_round(make_round(), [farmer_payment(farmer, 60, 4)], batch_fees=[1])
    (batch,) = await first.batches(round_id)
    assert batch.id is not None
    await first.mark_batch_submitted(batch.id, h("tx"), b"signed bundle", now=7_000)
    version = await first.schema_version()
    await first.close()

    reopened = store_factory(tmp_path)
    await reopened.open()
    try:
        assert await reopened.schema_version() == version
        assert await reopened.get_farmer(farmer.launcher_id) == dataclasses.replace(farmer, points=6)
        assert [p.id for p in await reopened.pending_partials(received_before=10_000)] == [pending_id]
        assert await reopened.get_reward_claim(claim.coin_id) == claim
        (batch_again,) = await reopened.batches(round_id)
        assert (batch_again.status, batch_again.spend_bundle) == (BatchStatus.SUBMITTED, b"signed bundle")
        assert await reopened.add_partial(make_partial(farmer, "confirmed", 300)) is None  # still known after restart
    finally:
        await reopened.close()
