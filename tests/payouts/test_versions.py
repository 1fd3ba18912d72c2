"""Which coins a new version of a payout batch must spend (pool/payouts/versions.py): every older version that may
still land must conflict with it, or the batch waits. Pure; the chain scenarios are in tests/loops."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from hypothesis import given
from hypothesis import strategies as st

from pool.chia_adapter import Coin, bytes32, std_hash, uint64
from pool.payouts.versions import (
    GONE,
    UNSPENT,
    CoinState,
    MustSpend,
    Wait,
    can_land_as_is,
    coins_for_new_version,
    spent_at,
)

PEAK, THRESHOLD = 100, 3


def coin(label: str) -> Coin:
    return Coin(std_hash(label.encode()), std_hash(b"wallet"), uint64(1_000))


A, B, C, D = coin("a"), coin("b"), coin("c"), coin("d")


def plan(versions: Sequence[Sequence[Coin]], states: Mapping[Coin, CoinState]) -> MustSpend | Wait:
    return coins_for_new_version(versions, {c.name(): s for c, s in states.items()}, PEAK, THRESHOLD)


def test_a_fee_bump_spends_everything_its_version_did() -> None:
    assert plan([[A, B]], {A: UNSPENT, B: UNSPENT}) == MustSpend((A, B))


def test_a_version_with_a_coin_spent_elsewhere_lately_is_kept_in_conflict() -> None:
    # B was spent by something else one block ago: a reorg may undo that, so the old version may still land.
    assert plan([[A, B]], {A: UNSPENT, B: spent_at(PEAK - 1)}) == MustSpend((A,))


def test_a_version_whose_coins_are_all_gone_or_spent_lately_makes_the_batch_wait() -> None:
    assert isinstance(plan([[A]], {A: GONE}), Wait)
    assert isinstance(plan([[A, B]], {A: GONE, B: spent_at(PEAK - 1)}), Wait)
    # However long: a vanished coin may come back with any later chain.
    assert isinstance(coins_for_new_version([[A]], {A.name(): GONE}, PEAK + 10_000, THRESHOLD), Wait)


def test_a_version_that_can_never_land_asks_nothing() -> None:
    # B was spent elsewhere THRESHOLD blocks ago: the first version is dead, the new one need not share with it.
    assert plan([[A, B], [C]], {A: UNSPENT, B: spent_at(PEAK - THRESHOLD), C: UNSPENT}) == MustSpend((C,))
    assert plan([[A, B]], {A: UNSPENT, B: spent_at(PEAK - THRESHOLD)}) == MustSpend(())


def test_every_older_version_is_conflicted_with() -> None:
    versions = [[A, B], [B, C], [C, D]]
    states = {A: UNSPENT, B: spent_at(PEAK - 1), C: UNSPENT, D: UNSPENT}
    result = plan(versions, states)
    assert isinstance(result, MustSpend) and set(result.coins) == {A, C, D}


def test_a_version_lands_as_is_only_with_every_coin_unspent() -> None:
    states = {A.name(): UNSPENT, B.name(): spent_at(PEAK), C.name(): GONE}
    assert can_land_as_is([A], states)
    assert not can_land_as_is([A, B], states) and not can_land_as_is([A, C], states)


COINS = [coin(f"coin {n}") for n in range(6)]
coin_states = st.one_of(st.just(UNSPENT), st.just(GONE), st.integers(PEAK - 2 * THRESHOLD, PEAK).map(spent_at))


@given(
    versions=st.lists(st.lists(st.sampled_from(COINS), min_size=1, max_size=3, unique=True), min_size=1, max_size=4),
    states=st.lists(coin_states, min_size=len(COINS), max_size=len(COINS)),
)
def test_a_new_version_conflicts_with_every_version_that_may_still_land(
    versions: list[list[Coin]], states: list[CoinState]
) -> None:
    by_id: dict[bytes32, CoinState] = {c.name(): s for c, s in zip(COINS, states, strict=True)}
    result = coins_for_new_version(versions, by_id, PEAK, THRESHOLD)
    for old in versions:
        dead = any(
            by_id[c.name()].spent_height is not None and PEAK - (by_id[c.name()].spent_height or 0) >= THRESHOLD
            for c in old
        )
        if dead:
            continue
        if isinstance(result, Wait):
            continue
        # It shares a coin that still exists unspent with every version that is not dead.
        assert any(c in result.coins and by_id[c.name()].unspent for c in old)
    if isinstance(result, MustSpend):
        assert all(by_id[c.name()].unspent for c in result.coins)
    else:  # it waits only for a version that may land and has no unspent coin left
        assert any(
            not any(by_id[c.name()].unspent for c in old)
            and not any(
                by_id[c.name()].spent_height is not None and PEAK - (by_id[c.name()].spent_height or 0) >= THRESHOLD
                for c in old
            )
            for old in versions
        )
