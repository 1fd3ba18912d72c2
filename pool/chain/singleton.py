"""Following a farmer's PlotNFT singleton on chain, and deciding whether it farms to this pool.

A PlotNFT is a singleton: a launcher coin, then a chain of odd-amount coins, each spent to create the next. Some
spends carry a new pool state (joining, leaving, the launcher's initial state); others (absorbing block rewards)
don't, and the last state carried stays in force. Only spends buried at least ``confirmation_security_threshold``
blocks deep are trusted, so a reorg cannot make the pool act on a state that then disappears.

Used by the HTTP layer (POST/PUT /farmer) and by the singleton-following loop.
"""

from __future__ import annotations

from dataclasses import dataclass

from pool.chain.interface import FullNode
from pool.chia_adapter import (
    POOL_PROTOCOL_VERSION,
    CoinSpend,
    PoolSingletonState,
    PoolState,
    bytes32,
    get_delayed_puz_info_from_launcher_spend,
    get_most_recent_singleton_coin_from_coin_spend,
    launcher_id_to_p2_puzzle_hash,
    solution_to_pool_state,
    uint64,
)
from pool.config import PoolInfoConfig


class SingletonNotFound(Exception):
    """The launcher is unknown, unspent, not buried deep enough, or its spends cannot be decoded."""


@dataclass(frozen=True)
class SingletonView:
    """What the pool knows of a PlotNFT from its buried spends."""

    launcher_id: bytes32
    delay_time: int  # seconds the owner must wait to claim rewards from the p2_singleton alone
    delay_puzzle_hash: bytes32  # where such a delayed claim pays
    tip: CoinSpend  # the most recent buried spend (the launcher spend for a fresh singleton)
    tip_height: int  # height at which ``tip`` was spent
    state: PoolState  # the pool state in force after ``tip``
    state_height: int  # height of the spend that set ``state`` (a LEAVING_POOL countdown starts there)

    @property
    def p2_singleton_puzzle_hash(self) -> bytes32:
        """The puzzle hash the farmer's pool plots pay their 7/8 block rewards to."""
        return launcher_id_to_p2_puzzle_hash(self.launcher_id, uint64(self.delay_time), self.delay_puzzle_hash)


@dataclass(frozen=True)
class KnownTip:
    """A previously followed position, to continue from instead of walking from the launcher again."""

    tip: CoinSpend
    state: PoolState


async def follow_singleton(
    node: FullNode,
    launcher_id: bytes32,
    *,
    peak_height: int,
    confirmation_security_threshold: int,
    known: KnownTip | None = None,
) -> SingletonView:
    """Walk the singleton from its launcher (or from ``known``) to its most recent buried spend.

    Raises SingletonNotFound if the launcher is missing, unspent or not yet buried, and ChainUnavailable if the
    node cannot be asked. A LEAVING_POOL ``known`` tip is not resumed from: its countdown needs the height at which
    the state was set, which only a walk from the launcher finds.
    """
    buried_below = peak_height - confirmation_security_threshold  # spends at or below this height are trusted
    launcher_spend, launcher_height = await _buried_spend(node, launcher_id, buried_below, "launcher")
    try:
        delay_time, delay_puzzle_hash = get_delayed_puz_info_from_launcher_spend(launcher_spend)
        initial_state = solution_to_pool_state(launcher_spend)
    except Exception as exc:  # a launcher that is not a PlotNFT's does not decode
        raise SingletonNotFound(f"launcher {launcher_id.hex()} is not a pool singleton launcher: {exc}") from exc
    if initial_state is None:
        raise SingletonNotFound(f"launcher {launcher_id.hex()} carries no pool state")

    view = SingletonView(
        launcher_id=launcher_id,
        delay_time=int(delay_time),
        delay_puzzle_hash=delay_puzzle_hash,
        tip=launcher_spend,
        tip_height=launcher_height,
        state=initial_state,
        state_height=launcher_height,
    )
    resumed = await _resume_point(node, view, known, buried_below)
    return await _walk(node, resumed or view, buried_below)


async def _buried_spend(node: FullNode, coin_id: bytes32, buried_below: int, what: str) -> tuple[CoinSpend, int]:
    record = await node.coin_record(coin_id)
    if record is None:
        raise SingletonNotFound(f"{what} coin {coin_id.hex()} not found on chain")
    if not record.spent:
        raise SingletonNotFound(f"{what} coin {coin_id.hex()} is not spent yet")
    if record.spent_block_index > buried_below:
        raise SingletonNotFound(f"{what} coin {coin_id.hex()} is not buried deep enough yet")
    spend = await node.coin_spend(record)
    if spend is None:
        raise SingletonNotFound(f"spend of {what} coin {coin_id.hex()} not found")
    return spend, int(record.spent_block_index)


async def _resume_point(
    node: FullNode, start: SingletonView, known: KnownTip | None, buried_below: int
) -> SingletonView | None:
    """``start`` advanced to a still-valid known tip, or None to walk from the launcher."""
    if known is None or known.state.state == PoolSingletonState.LEAVING_POOL.value:
        return None
    record = await node.coin_record(known.tip.coin.name())
    if record is None or not record.spent or record.spent_block_index > buried_below:
        return None  # reorged away or no longer buried: start over from the launcher
    return SingletonView(
        launcher_id=start.launcher_id,
        delay_time=start.delay_time,
        delay_puzzle_hash=start.delay_puzzle_hash,
        tip=known.tip,
        tip_height=int(record.spent_block_index),
        state=known.state,
        state_height=int(record.spent_block_index),  # only a LEAVING_POOL countdown reads it, see above
    )


async def _walk(node: FullNode, view: SingletonView, buried_below: int) -> SingletonView:
    while True:
        child = get_most_recent_singleton_coin_from_coin_spend(view.tip)
        if child is None:
            return view  # the singleton was melted: its last spend is final
        record = await node.coin_record(child.name())
        if record is None or not record.spent or record.spent_block_index > buried_below:
            return view  # ``child`` is the live singleton coin (or its spend is too recent to trust)
        spend = await node.coin_spend(record)
        if spend is None:
            return view
        height = int(record.spent_block_index)
        new_state = _state_of(spend)
        view = SingletonView(
            launcher_id=view.launcher_id,
            delay_time=view.delay_time,
            delay_puzzle_hash=view.delay_puzzle_hash,
            tip=spend,
            tip_height=height,
            state=new_state if new_state is not None else view.state,
            state_height=height if new_state is not None else view.state_height,
        )


def _state_of(spend: CoinSpend) -> PoolState | None:
    """The pool state a spend carries, or None for spends that keep the state (absorbing rewards)."""
    try:
        return solution_to_pool_state(spend)
    except Exception:  # chia asserts on solutions of unexpected shape; such a spend carries no state we know
        return None


def is_member_of_pool(state: PoolState, pool: PoolInfoConfig, peak_height: int, state_height: int) -> bool:
    """Whether a singleton in ``state`` (set at ``state_height``) farms to this pool at ``peak_height``.

    It must point at this pool's target puzzle hash with this pool's relative lock height and protocol version,
    and be FARMING_TO_POOL, or LEAVING_POOL for fewer than relative_lock_height blocks: until then the farmer
    cannot leave, so its rewards still come to the pool and its partials still count.
    """
    if state.version != POOL_PROTOCOL_VERSION:
        return False
    if state.target_puzzle_hash != pool.target_puzzle_hash:
        return False
    if state.relative_lock_height != pool.relative_lock_height:
        return False
    if state.state == PoolSingletonState.FARMING_TO_POOL.value:
        return True
    if state.state == PoolSingletonState.LEAVING_POOL.value:
        return peak_height - state_height < pool.relative_lock_height
    return False
