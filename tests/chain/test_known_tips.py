"""The singleton puzzle a pool state implies, from tree hashes alone, and the singleton loop's memo of checked tips:
a PlotNFT's recorded tip is checked against its state once, and again only when the recorded bytes change."""

from __future__ import annotations

import hashlib

import pytest

from pool.chain.singleton import KnownTips
from pool.chia_adapter import (
    SINGLETON_LAUNCHER_HASH,
    AugSchemeMPL,
    Coin,
    CoinSpend,
    PoolState,
    bytes32,
    create_full_puzzle,
    plotnft_puzzle_hash,
    pool_state_to_inner_puzzle,
    stored_pool_state,
    uint32,
    uint64,
)
from pool.chia_adapter.simulation import SINGLETON_LAUNCHER, PoolSingletonState, Program, create_pool_state, make_spend

GENESIS = bytes32(hashlib.sha256(b"genesis").digest())
DELAY_TIME = 604_800
DELAY_PUZZLE_HASH = bytes32(hashlib.sha256(b"delay").digest())


def h(text: str) -> bytes32:
    return bytes32(hashlib.sha256(text.encode()).digest())


def state_of(kind: PoolSingletonState, lock: int, seed: int = 1) -> PoolState:
    owner = AugSchemeMPL.key_gen(h(f"owner {seed}")).get_g1()
    url = None if kind == PoolSingletonState.SELF_POOLING else "https://pool.example"
    return create_pool_state(kind, h("target"), owner, url, uint32(lock))


def built_puzzle_hash(state: PoolState, launcher_id: bytes32) -> bytes32:
    inner = pool_state_to_inner_puzzle(state, launcher_id, GENESIS, uint64(DELAY_TIME), DELAY_PUZZLE_HASH)
    return bytes32(create_full_puzzle(inner, launcher_id).get_tree_hash())


def launcher_spend(launcher_id: bytes32, state: PoolState, puzzle_hash: bytes32) -> CoinSpend:
    """A PlotNFT's launcher spend (its first recorded tip) creating a singleton coin at ``puzzle_hash``."""
    launcher = Coin(h(f"parent of {launcher_id.hex()}"), SINGLETON_LAUNCHER_HASH, uint64(1))
    key_values = Program.to([("p", bytes(state)), ("t", DELAY_TIME), ("h", DELAY_PUZZLE_HASH)])
    return make_spend(launcher, SINGLETON_LAUNCHER, Program.to([puzzle_hash, 1, key_values]))


@pytest.mark.parametrize("kind", list(PoolSingletonState))
@pytest.mark.parametrize("lock", [0, 1, 100, 2**31 + 7])
def test_the_puzzle_hash_from_tree_hashes_is_the_built_puzzles(kind: PoolSingletonState, lock: int) -> None:
    state, launcher_id = state_of(kind, lock), h(f"launcher {kind} {lock}")
    assert plotnft_puzzle_hash(state, launcher_id, GENESIS, DELAY_TIME, DELAY_PUZZLE_HASH) == built_puzzle_hash(
        state, launcher_id
    )


@pytest.mark.parametrize("kind", list(PoolSingletonState))
@pytest.mark.parametrize("url", [None, "", "https://pool.example/é"])
def test_a_stored_state_decodes_as_chias_decoding_does(kind: PoolSingletonState, url: str | None) -> None:
    owner = AugSchemeMPL.key_gen(h(f"owner {url}")).get_g1()
    state = create_pool_state(kind, h("target"), owner, url, uint32(2**32 - 1))
    assert stored_pool_state(bytes(state)) == PoolState.from_bytes(bytes(state)) == state


@pytest.mark.parametrize(
    "data",
    [
        b"",
        bytes(state_of(PoolSingletonState.FARMING_TO_POOL, 5))[:-1],  # cut short
        bytes(state_of(PoolSingletonState.FARMING_TO_POOL, 5)) + b"\0",  # a byte too many
        bytes(state_of(PoolSingletonState.SELF_POOLING, 5))[:82] + b"\2" + bytes(4),  # no optional's flag
        bytes(state_of(PoolSingletonState.FARMING_TO_POOL, 5))[:34] + bytes(48) + b"\0" + bytes(4),  # not a point
    ],
)
def test_what_is_not_a_stored_state_fails_as_chias_decoding_fails(data: bytes) -> None:
    with pytest.raises(Exception) as chias:
        PoolState.from_bytes(data)
    with pytest.raises(type(chias.value)):
        stored_pool_state(data)


def check(tips: KnownTips, launcher_id: bytes32, spend: CoinSpend, state: PoolState) -> Coin | None:
    checked = tips.check(launcher_id, bytes(spend), bytes(state), DELAY_TIME, DELAY_PUZZLE_HASH)
    assert (checked.tip, checked.state) == (spend, state)
    assert (checked.delay_time, checked.delay_puzzle_hash) == (DELAY_TIME, DELAY_PUZZLE_HASH)
    return checked.child


def test_a_tip_is_checked_against_its_state_and_checked_again_only_when_it_changes() -> None:
    tips = KnownTips(GENESIS)
    launcher_id = h("launcher")
    farming = state_of(PoolSingletonState.FARMING_TO_POOL, 100)
    honest = launcher_spend(launcher_id, farming, built_puzzle_hash(farming, launcher_id))
    child = check(tips, launcher_id, honest, farming)
    assert child is not None and child.puzzle_hash == built_puzzle_hash(farming, launcher_id)
    assert child.parent_coin_info == honest.coin.name()
    assert check(tips, launcher_id, honest, farming) == child
    assert len(tips) == 1

    # The same tip recorded with another state (a self-pooling puzzle announced as farming to the pool): its child
    # does not have the puzzle that state implies, so it is left for the walk to refuse (no child here).
    leaving = state_of(PoolSingletonState.LEAVING_POOL, 100)
    assert check(tips, launcher_id, honest, leaving) is None
    # Back to the honest record: checked again, the entry replaced (never one entry per record seen).
    assert check(tips, launcher_id, honest, farming) == child
    assert len(tips) == 1

    other = h("another launcher")
    assert check(tips, other, launcher_spend(other, leaving, built_puzzle_hash(leaving, other)), leaving) is not None
    assert len(tips) == 2


def test_a_tip_that_does_not_decode_raises() -> None:
    farming = state_of(PoolSingletonState.FARMING_TO_POOL, 100)
    with pytest.raises(Exception):  # noqa: B017 - whatever the decoder raises: the loop counts the farmer failed
        KnownTips(GENESIS).check(h("launcher"), b"\x00", bytes(farming), DELAY_TIME, DELAY_PUZZLE_HASH)
