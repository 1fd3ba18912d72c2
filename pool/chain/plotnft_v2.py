"""Following a PlotNFT v2 on chain (Pool Protocol v2), and deciding whether it farms to this pool.

A PlotNFT v2 is a singleton (top layer v1.1): the launcher coin, its eve coin, then a chain of odd-amount coins each
spent to create the next. Its inner puzzle is a custody puzzle whose parts the spends' memos reveal; chia's driver
(``PlotNFT.get_next_from_coin_spend``) parses each spend into the state it leaves: the owner's synthetic key, the
pool config (pool puzzle hash, height lock, pool memoization) or none, and whether it is in the waiting room.

The pool believes only what the chain proves. It walks the lineage coin by coin from the launcher, by coin id: each
spend's singleton child is the one odd-amount coin the spend creates, and it must have exactly the puzzle hash the
parsed state implies. Coins that anyone else sends to that puzzle hash (an even coin minted there by another
singleton, say) are no one's child in this lineage and are never looked at, so they can neither pass for the PlotNFT
nor stop the walk. Only spends buried ``confirmation_security_threshold`` blocks deep are trusted.

Beside the v1 walk (singleton.py): the two share its exceptions and the lineage walk's base (LineageWalk), not the
way a spend's state is read and checked.
"""

from __future__ import annotations

from dataclasses import dataclass

from pool.chain.interface import FullNode
from pool.chain.singleton import LineageWalk, SingletonForged, SingletonNotFound
from pool.chia_adapter import (
    SINGLETON_LAUNCHER_HASH,
    Coin,
    CoinRecord,
    CoinSpend,
    G1Element,
    PlotNFTPuzzle,
    PoolSingletonState,
    PoolState,
    bytes32,
    next_plotnft,
    plotnft_puzzle,
    spend_conditions,
    uint8,
    uint32,
    uint64,
)
from pool.config import PoolInfoConfig

# The protocol version a v2 PlotNFT's state is recorded under (see ``recorded_state``).
V2_STATE_VERSION = 2
# A singleton spend's cost is a few hundred million at most; this bounds a malformed one without limiting real ones.
_SPEND_MAX_COST = 11_000_000_000


@dataclass(frozen=True)
class PlotNFTView:
    """What the pool knows of a v2 PlotNFT from its buried spends."""

    launcher_id: bytes32
    tip: CoinSpend  # the most recent buried spend (the eve spend for a fresh PlotNFT)
    tip_height: int
    puzzle: PlotNFTPuzzle  # the state in force after ``tip``, checked against the puzzle hash of tip's child
    # Height at which the live singleton coin was created (through spends that keep the state, buried or not): the
    # waiting room's height lock is relative to it, and every forwarded reward restarts it.
    coin_height: int
    melted: bool = False

    @property
    def synthetic_key(self) -> G1Element:
        return self.puzzle.user_config.synthetic_pubkey

    @property
    def state(self) -> PoolState:
        return recorded_state(self.puzzle)


def recorded_state(puzzle: PlotNFTPuzzle) -> PoolState:
    """A v2 state in the shape the store keeps pool states in: version 2, FARMING_TO_POOL (LEAVING_POOL while in the
    waiting room, SELF_POOLING without a pool), the pool puzzle hash and height lock, and the synthetic key as the
    owner key. The pool memoization is not kept: a member's is the pool's own (``plotnft_member``)."""
    config = puzzle.pool_config
    if config is None:
        state, target, lock = PoolSingletonState.SELF_POOLING, bytes32(b"\x00" * 32), 0
    else:
        state = PoolSingletonState.LEAVING_POOL if puzzle.exiting else PoolSingletonState.FARMING_TO_POOL
        target, lock = config.pool_puzzle_hash, int(config.heightlock)
    return PoolState(
        uint8(V2_STATE_VERSION), uint8(state.value), target, puzzle.user_config.synthetic_pubkey, None, uint32(lock)
    )


def is_v2_state(state: PoolState) -> bool:
    return int(state.version) == V2_STATE_VERSION


def plotnft_member(puzzle: PlotNFTPuzzle, pool: PoolInfoConfig, peak_height: int, coin_height: int) -> bool:
    """Whether a v2 PlotNFT in this state, whose live coin was created at ``coin_height``, farms to this pool at
    ``peak_height``: its pool config must be exactly the pool's (puzzle hash, height lock, memoization), and it is
    out of the waiting room, or in it for fewer than the height lock's blocks (its exit spend asserts that height
    relative to the live coin, so until then its rewards still come to the pool)."""
    config = puzzle.pool_config
    if config is None:
        return False
    if config.pool_puzzle_hash != pool.target_puzzle_hash or int(config.heightlock) != pool.relative_lock_height:
        return False
    if bytes(config.pool_memoization) != pool.pool_memoization:
        return False
    if puzzle.exiting:
        return peak_height < coin_height + int(config.heightlock)
    return True


def view_is_member(view: PlotNFTView, pool: PoolInfoConfig, peak_height: int) -> bool:
    return not view.melted and plotnft_member(view.puzzle, pool, peak_height, view.coin_height)


def puzzle_from_record(
    launcher_id: bytes32, genesis_challenge: bytes32, state: PoolState, pool_memoization: bytes
) -> PlotNFTPuzzle:
    """The state ``recorded_state`` kept, rebuilt with the pool's memoization (right for every state the pool
    recorded as a member's; a resumed walk checks it against the chain and starts over from the launcher if not)."""
    pooling = int(state.state) != PoolSingletonState.SELF_POOLING.value
    pool = (state.target_puzzle_hash, int(state.relative_lock_height), pool_memoization) if pooling else None
    exiting = int(state.state) == PoolSingletonState.LEAVING_POOL.value
    return plotnft_puzzle(launcher_id, genesis_challenge, state.owner_pubkey, pool, exiting)


@dataclass(frozen=True)
class KnownV2Tip:
    tip: CoinSpend
    puzzle: PlotNFTPuzzle


async def follow_plotnft(
    node: FullNode,
    launcher_id: bytes32,
    *,
    peak_height: int,
    confirmation_security_threshold: int,
    genesis_challenge: bytes32,
    known: KnownV2Tip | None = None,
    max_spends: int | None = None,
) -> PlotNFTView:
    """Walk the v2 PlotNFT from its launcher (or from ``known``, once checked) to its most recent buried spend.

    Raises SingletonNotFound when the launcher or eve is missing, unspent or not buried yet, or its spends are not a
    PlotNFT v2's; SingletonForged when a spend's singleton child is not the coin its parsed state implies;
    SingletonWalkTooLong past ``max_spends``; ChainUnavailable when the node cannot be asked."""
    walk = _Walk(node, launcher_id, genesis_challenge, peak_height - confirmation_security_threshold, max_spends)
    start = await walk.resume_point(known) if known is not None else None
    if start is None:
        start = await walk.from_launcher()
    return await walk.run(start)


class _Walk(LineageWalk):
    def __init__(
        self,
        node: FullNode,
        launcher_id: bytes32,
        genesis_challenge: bytes32,
        buried_below: int,
        max_spends: int | None,
    ) -> None:
        super().__init__(node, launcher_id, buried_below, max_spends)
        self.genesis_challenge = genesis_challenge

    async def from_launcher(self) -> PlotNFTView:
        launcher_spend, _ = await self.buried_spend(self.launcher_id, "launcher")
        if launcher_spend.coin.puzzle_hash != SINGLETON_LAUNCHER_HASH:
            raise SingletonForged(f"{self.name()}: the launcher coin is not the singleton launcher's")
        eve = self._odd_child(launcher_spend, None)
        if eve is None:
            raise SingletonNotFound(f"{self.name()}: the launcher created no odd (singleton) coin")
        eve_spend, eve_height = await self.buried_spend(eve.name(), "eve")
        try:
            puzzle = next_plotnft(eve_spend, self.genesis_challenge, None)
        except ValueError as exc:
            raise SingletonNotFound(f"{self.name()} is not a PlotNFT v2: {exc}") from None
        return PlotNFTView(self.launcher_id, eve_spend, eve_height, _state_only(puzzle), eve_height)

    async def resume_point(self, known: KnownV2Tip) -> PlotNFTView | None:
        """``known`` if its tip is still buried and its child has the puzzle hash its state implies, else None."""
        height = await self.buried_tip_height(known.tip)
        if height is None:
            return None
        try:
            self._odd_child(known.tip, known.puzzle)
        except SingletonForged:
            return None  # the recorded state is not the whole truth (another memoization): walk from the start
        return PlotNFTView(self.launcher_id, known.tip, height, known.puzzle, height)

    def _odd_child(self, spend: CoinSpend, puzzle: PlotNFTPuzzle | None) -> Coin | None:
        """The one odd-amount coin ``spend`` creates (None: it melted the singleton), checked to have the puzzle hash
        of ``puzzle`` (the state the spend leaves; None for the launcher, whose child is the eve coin)."""
        try:
            created = spend_conditions(spend, _SPEND_MAX_COST).created_coins
        except ValueError as exc:
            raise SingletonForged(f"{self.name()}: {exc}") from None
        odd = [(puzzle_hash, amount) for puzzle_hash, amount in created if amount % 2 == 1]
        if not odd:
            return None
        if len(odd) > 1:
            raise SingletonForged(f"{self.name()}: the spend of {spend.coin.name().hex()} creates two odd coins")
        puzzle_hash, amount = odd[0]
        if puzzle is not None:
            expected = puzzle.puzzle_hash(nonce=0)
            if puzzle_hash != expected:
                raise SingletonForged(
                    f"{self.name()}: the spend of coin {spend.coin.name().hex()} leaves a state whose singleton "
                    f"puzzle hash is {expected.hex()}, but its odd child has puzzle hash {puzzle_hash.hex()}"
                )
        return Coin(spend.coin.name(), puzzle_hash, uint64(amount))

    async def run(self, view: PlotNFTView) -> PlotNFTView:
        while True:
            child = self._odd_child(view.tip, view.puzzle)
            if child is None:
                return _replace(view, melted=True)
            record = await self.node.coin_record(child.name())
            if record is None:
                return view
            if not record.spent:
                return _replace(view, coin_height=int(record.confirmed_block_index))
            if record.spent_block_index > self.buried_below:
                return _replace(view, coin_height=await self._live_coin_height(view.puzzle, record))
            spend = await self.spend(record)
            if spend is None:
                return view
            try:
                puzzle = _state_only(next_plotnft(spend, self.genesis_challenge, view.puzzle))
            except ValueError as exc:
                raise SingletonForged(f"{self.name()}: spend of {child.name().hex()}: {exc}") from None
            height = int(record.spent_block_index)
            view = PlotNFTView(self.launcher_id, spend, height, puzzle, height)

    async def _live_coin_height(self, puzzle: PlotNFTPuzzle, record: CoinRecord) -> int:
        """Creation height of the newest coin reached through spends (not yet buried) that keep the state: only a
        waiting room's countdown reads it."""
        height = int(record.confirmed_block_index)
        if not puzzle.exiting:
            return height
        while record.spent:
            spend = await self.spend(record)
            if spend is None:
                break
            try:
                child = self._odd_child(spend, puzzle)  # a spend that changes the state ends the countdown's coin
            except SingletonForged:
                break
            next_record = None if child is None else await self.node.coin_record(child.name())
            if next_record is None:
                break
            record, height = next_record, int(next_record.confirmed_block_index)
        return height


def _state_only(plotnft: PlotNFTPuzzle) -> PlotNFTPuzzle:
    """The driver's PlotNFT without its coin and lineage (what the walk compares and keeps)."""
    return plotnft_puzzle(
        plotnft.launcher_id,
        plotnft.genesis_challenge,
        plotnft.user_config.synthetic_pubkey,
        None
        if plotnft.pool_config is None
        else (
            plotnft.pool_config.pool_puzzle_hash,
            int(plotnft.pool_config.heightlock),
            bytes(plotnft.pool_config.pool_memoization),
        ),
        plotnft.exiting,
    )


def _replace(view: PlotNFTView, *, coin_height: int | None = None, melted: bool = False) -> PlotNFTView:
    return PlotNFTView(
        view.launcher_id,
        view.tip,
        view.tip_height,
        view.puzzle,
        view.coin_height if coin_height is None else coin_height,
        melted,
    )
