"""Following a farmer's PlotNFT singleton on chain, and deciding whether it farms to this pool.

A PlotNFT is a singleton: a launcher coin, then a chain of odd-amount coins, each spent to create the next. Some
spends carry a new pool state (joining, leaving, the launcher's initial state); others (absorbing block rewards)
don't, and the last state carried stays in force. Only spends buried at least ``confirmation_security_threshold``
blocks deep are trusted, so a reorg cannot make the pool act on a state that then disappears.

A pool state is data the farmer writes (the launcher's key-value list, a travel spend's extra data); what binds the
singleton is its puzzle. So every state is checked against the chain: the launcher coin must be the singleton
launcher's, and each spend's singleton child must have exactly the full singleton puzzle that the state in force
describes (built from the state, the launcher id, the delay time and delay puzzle hash, and the network's genesis
challenge). A PlotNFT whose puzzle says otherwise is refused with SingletonForged.

Used by the HTTP layer (POST/PUT /farmer), the singleton-following loop and the reward loop.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

from pool.chain.interface import FullNode
from pool.chia_adapter import (
    POOL_PROTOCOL_VERSION,
    SINGLETON_LAUNCHER_HASH,
    Coin,
    CoinRecord,
    CoinSpend,
    G1Element,
    PoolSingletonState,
    PoolState,
    bytes32,
    get_delayed_puz_info_from_launcher_spend,
    get_most_recent_singleton_coin_from_coin_spend,
    launcher_id_to_p2_puzzle_hash,
    plotnft_puzzle_hash,
    solution_to_pool_state,
    stored_pool_state,
    uint64,
)
from pool.config import PoolInfoConfig


class SingletonNotFound(Exception):
    """The launcher is unknown, unspent, not buried deep enough, or its spends cannot be decoded."""


class SingletonForged(SingletonNotFound):
    """The chain contradicts the pool state the PlotNFT announces (its puzzle is not the one that state implies)."""


class SingletonWalkTooLong(SingletonNotFound):
    """The walk from the known position to the buried tip needs more spends than the caller allows."""


@dataclass(frozen=True)
class SingletonView:
    """What the pool knows of a PlotNFT from its buried spends."""

    launcher_id: bytes32
    delay_time: int  # seconds the owner must wait to claim rewards from the p2_singleton alone
    delay_puzzle_hash: bytes32  # where such a delayed claim pays
    tip: CoinSpend  # the most recent buried spend (the launcher spend for a fresh singleton)
    tip_height: int  # height at which ``tip`` was spent
    state: PoolState  # the pool state in force after ``tip`` (checked against the puzzle of tip's child)
    state_height: int  # height of the spend that set ``state``, or of the known tip the walk resumed from
    # Height at which the live singleton coin was created: the newest coin reached from ``tip`` through spends that
    # keep the state (absorbs, buried or not). The waiting room's escape is relative to this coin, so a LEAVING_POOL
    # countdown runs from here; every absorb restarts it.
    coin_height: int
    melted: bool = False  # the tip created no singleton coin: the PlotNFT is gone for good

    @property
    def p2_singleton_puzzle_hash(self) -> bytes32:
        """The puzzle hash the farmer's pool plots pay their 7/8 block rewards to."""
        return launcher_id_to_p2_puzzle_hash(self.launcher_id, uint64(self.delay_time), self.delay_puzzle_hash)


@dataclass(frozen=True)
class KnownTip:
    """A previously followed (and checked) position, to continue from instead of walking from the launcher again.

    With the delay time and puzzle hash its launcher was read with (kept by the store), the launcher is not read
    again while the tip stays buried: a farmer whose singleton has not moved costs two coin look-ups (the tip, its
    child) and no spend, whose puzzle and solution the node would have to dig out of a block generator."""

    tip: CoinSpend
    state: PoolState
    delay_time: int | None = None
    delay_puzzle_hash: bytes32 | None = None


async def follow_singleton(
    node: FullNode,
    launcher_id: bytes32,
    *,
    peak_height: int,
    confirmation_security_threshold: int,
    genesis_challenge: bytes32,
    known: KnownTip | None = None,
    max_spends: int | None = None,
    launcher: SingletonView | None = None,
) -> SingletonView:
    """Walk the singleton from its launcher (or from ``known``) to its most recent buried spend, checking each state.
    ``launcher``: what read_launcher answered for it (then the launcher is not read again).

    Raises SingletonNotFound if the launcher is missing, unspent, not yet buried or not a PlotNFT's; SingletonForged
    if a state does not match the singleton's puzzle; SingletonWalkTooLong if more than ``max_spends`` spends would
    be read; ChainUnavailable if the node cannot be asked.
    """
    buried_below = peak_height - confirmation_security_threshold  # spends at or below this height are trusted
    if launcher is None and known is not None and known.delay_time is not None and known.delay_puzzle_hash is not None:
        walk = _Walk(
            node, launcher_id, known.delay_time, known.delay_puzzle_hash, genesis_challenge, buried_below, max_spends
        )
        resumed = await walk.resume_point(known)
        if resumed is not None:
            return await walk.run(resumed)
        known = None  # reorged away or no longer buried: walk from the launcher
    start = launcher if launcher is not None else await read_launcher(node, launcher_id, buried_below)
    walk = _Walk(
        node, launcher_id, start.delay_time, start.delay_puzzle_hash, genesis_challenge, buried_below, max_spends
    )
    resumed = None
    if known is not None and known.tip.coin.name() != start.tip.coin.name():
        resumed = await walk.resume_point(known)
    return await walk.run(resumed or start)


@dataclass
class Unmoved:
    """What one look-up of many singletons' coins told (``unmoved_singletons``)."""

    views: dict[bytes32, SingletonView]  # the singletons that have not moved since their known tip
    not_found: set[bytes32]  # neither the known tip nor the launcher is on chain: the node said so


@dataclass(frozen=True)
class CheckedTip:
    """A PlotNFT's known tip and the singleton coin that tip created, checked against the tip's state."""

    launcher_id: bytes32
    tip: CoinSpend
    state: PoolState
    delay_time: int
    delay_puzzle_hash: bytes32
    child: Coin | None  # None: melted or forged: unmoved_singletons leaves it to follow_singleton
    tip_name: bytes32  # the tip's coin id
    child_name: bytes32 | None

    @property
    def known(self) -> KnownTip:
        return KnownTip(self.tip, self.state, self.delay_time, self.delay_puzzle_hash)


class KnownTips:
    """The recorded tips of a pool's PlotNFTs decoded and their children checked, each kept while its recorded tip
    and state stay the same bytes.

    Checking a tip's child (decoding the state, running the spend's puzzle, the puzzle hash the state implies) costs
    a fraction of a millisecond (docs/performance.md), the same answer every pass for a singleton that has not moved:
    at ten thousand farmers, seconds of the event loop a pass. An entry per launcher (replaced when its tip moves)
    rather than an LRU: a pass over more farmers than an LRU holds would miss every time."""

    def __init__(self, genesis_challenge: bytes32) -> None:
        self.genesis_challenge = genesis_challenge
        self._checked: dict[bytes32, tuple[bytes, PoolState, Coin | None, bytes32, bytes32 | None]] = {}

    def check(
        self, launcher_id: bytes32, tip: bytes, state: bytes, delay_time: int, delay_puzzle_hash: bytes32
    ) -> CheckedTip:
        """The tip and state (serialized, as stored) decoded, with the tip's checked child. Raises if they do not
        decode."""
        key = hashlib.sha256(b"".join((tip, state, delay_puzzle_hash, delay_time.to_bytes(8, "big")))).digest()
        spend = CoinSpend.from_bytes(tip)  # cheaper than keeping every tip: the state's key is the costly part
        kept = self._checked.get(launcher_id)
        if kept is None or kept[0] != key:
            pool_state = stored_pool_state(state)
            try:
                child = _checked_child(
                    spend, pool_state, 0, launcher_id, self.genesis_challenge, delay_time, delay_puzzle_hash
                )
            except Exception:  # forged, or no singleton spend at all: follow_singleton says what, with the height
                child = None
            kept = (key, pool_state, child, spend.coin.name(), None if child is None else child.name())
            self._checked[launcher_id] = kept
        _, pool_state, child, tip_name, child_name = kept
        return CheckedTip(launcher_id, spend, pool_state, delay_time, delay_puzzle_hash, child, tip_name, child_name)

    def __len__(self) -> int:
        return len(self._checked)


async def unmoved_singletons(
    node: FullNode, tips: Sequence[CheckedTip], *, peak_height: int, confirmation_security_threshold: int
) -> Unmoved:
    """From one node call for all (each known tip, the tip's child and the launcher coin): the views of those of
    these singletons that have not moved since their known tip (the tip still spent and buried, its checked child on
    chain and unspent), and those the node has neither the tip nor the launcher of (follow_singleton would find
    nothing either). The others (moved, reorged, melted, forged, a tip without its launcher's delay) are in neither,
    for follow_singleton to walk one by one. Raises ChainUnavailable if the node cannot answer (which says nothing
    about any of them)."""
    buried_below = peak_height - confirmation_security_threshold
    names: list[bytes32] = []
    for tip in tips:
        names += [tip.launcher_id, tip.tip_name]
        if tip.child_name is not None:
            names.append(tip.child_name)
    records = {record.coin.name(): record for record in await node.coin_records_by_names(names)}
    answer = Unmoved({}, set())
    for tip in tips:
        tip_record = records.get(tip.tip_name)
        if tip_record is None and tip.launcher_id not in records:
            answer.not_found.add(tip.launcher_id)
        if tip.child_name is None or tip_record is None or not tip_record.spent:
            continue
        child_record = records.get(tip.child_name)
        if tip_record.spent_block_index > buried_below or child_record is None or child_record.spent:
            continue
        resumed = _view_at(tip.launcher_id, tip.known, int(tip_record.spent_block_index))
        answer.views[tip.launcher_id] = _replace(resumed, coin_height=int(child_record.confirmed_block_index))
    return answer


def _view_at(launcher_id: bytes32, known: KnownTip, height: int) -> SingletonView:
    """The view at a known tip (with its launcher's delay) spent, and buried, at ``height``."""
    assert known.delay_time is not None and known.delay_puzzle_hash is not None
    return SingletonView(
        launcher_id=launcher_id,
        delay_time=known.delay_time,
        delay_puzzle_hash=known.delay_puzzle_hash,
        tip=known.tip,
        tip_height=height,
        state=known.state,
        state_height=height,
        coin_height=height,
    )


async def read_launcher(node: FullNode, launcher_id: bytes32, buried_below: int) -> SingletonView:
    """The PlotNFT as its launcher spend made it (buried at or below ``buried_below``): the first pool state, which
    names the owner key, and the delay time and puzzle hash. One coin look-up and one spend look-up. Not yet checked
    against the chain (the walk checks the launcher's child first). Raises SingletonNotFound, SingletonForged."""
    launcher_spend, launcher_height = await LineageWalk(node, launcher_id, buried_below, None).buried_spend(
        launcher_id, "launcher"
    )
    if launcher_spend.coin.puzzle_hash != SINGLETON_LAUNCHER_HASH:
        raise SingletonForged(
            f"PlotNFT {launcher_id.hex()}: the launcher coin's puzzle hash {launcher_spend.coin.puzzle_hash.hex()} "
            f"is not the singleton launcher's {SINGLETON_LAUNCHER_HASH.hex()}"
        )
    try:
        delay_time, delay_puzzle_hash = get_delayed_puz_info_from_launcher_spend(launcher_spend)
        initial_state = solution_to_pool_state(launcher_spend)
    except Exception as exc:  # a launcher that is not a PlotNFT's does not decode
        raise SingletonNotFound(f"launcher {launcher_id.hex()} is not a pool singleton launcher: {exc}") from exc
    if initial_state is None:
        raise SingletonNotFound(f"launcher {launcher_id.hex()} carries no pool state")
    return SingletonView(
        launcher_id=launcher_id,
        delay_time=int(delay_time),
        delay_puzzle_hash=delay_puzzle_hash,
        tip=launcher_spend,
        tip_height=launcher_height,
        state=initial_state,
        state_height=launcher_height,
        coin_height=launcher_height,
    )


async def newest_owner_key(
    node: FullNode,
    launcher_id: bytes32,
    *,
    tip: CoinSpend,
    state: PoolState,
    delay_time: int,
    delay_puzzle_hash: bytes32,
    genesis_challenge: bytes32,
    max_travels: int,
) -> G1Element:
    """The owner key of the newest state the singleton reached from ``tip`` (a spend that left it in ``state``),
    buried or not, read without walking every spend.

    A state fixes the singleton's puzzle hash (the owner key is curried into it), and absorbs keep the state: so the
    singleton's coins in one state are the odd coins at one puzzle hash, read in one look-up, each the child of the
    one before. Only the spend that left that puzzle hash (a travel) is read, and its announced state is checked
    against its child's puzzle hash as the walk does. So the cost is one look-up per state and one spend per travel,
    at most ``max_travels``, whatever the number of absorbs. When the chain says nothing clear (a coin the node does
    not know yet, a spend that does not match the state it announces) the newest key found so far is the answer:
    this only tells which key to check a signature against; the walk decides what the pool trusts."""
    walk = _Walk(node, launcher_id, delay_time, delay_puzzle_hash, genesis_challenge, buried_below=0, max_spends=None)
    owner = state.owner_pubkey
    try:
        coin = walk.checked_child(tip, state, 0)
        for _ in range(max_travels):
            if coin is None:
                break  # melted
            record = await _last_coin_at_puzzle_hash(node, coin)
            if record is None or not record.spent:
                break  # still in this state
            spend = await node.coin_spend(record)
            new_state = None if spend is None else _state_of(spend)
            if spend is None or new_state is None:
                break
            coin = walk.checked_child(spend, new_state, int(record.spent_block_index))
            owner = new_state.owner_pubkey
    except SingletonForged:
        pass
    return owner


async def _last_coin_at_puzzle_hash(node: FullNode, coin: Coin) -> CoinRecord | None:
    """The newest coin of ``coin``'s lineage that kept its puzzle hash: each one the odd child of the one before
    (coins anyone else sent to that puzzle hash are no one's child in it and are never reached)."""
    records = await node.coin_records_by_puzzle_hashes([coin.puzzle_hash], include_spent=True)
    by_name = {record.coin.name(): record for record in records}
    children = {record.coin.parent_coin_info: record for record in records if record.coin.amount % 2 == 1}
    record = by_name.get(coin.name())
    for _ in range(len(records)):
        if record is None or record.coin.name() not in children:
            break
        record = children[record.coin.name()]
    return record


def singleton_puzzle_hash(
    state: PoolState, launcher_id: bytes32, genesis_challenge: bytes32, delay_time: int, delay_puzzle_hash: bytes32
) -> bytes32:
    """The puzzle hash a singleton coin of this PlotNFT has while ``state`` is in force."""
    return plotnft_puzzle_hash(state, launcher_id, genesis_challenge, delay_time, delay_puzzle_hash)


_STATE_NAMES = {member.value: member.name for member in PoolSingletonState}


def describe_state(state: PoolState) -> str:
    return (
        f"{_STATE_NAMES.get(int(state.state), str(state.state))} to {state.target_puzzle_hash.hex()} "
        f"(relative lock height {state.relative_lock_height})"
    )


class LineageWalk:
    """What a walk along a PlotNFT's lineage needs, whatever its version (this module's, pool.chain.plotnft_v2's):
    the node, the launcher, the height at or below which a spend is trusted, and the spends read so far against the
    caller's bound."""

    def __init__(self, node: FullNode, launcher_id: bytes32, buried_below: int, max_spends: int | None) -> None:
        self.node = node
        self.launcher_id = launcher_id
        self.buried_below = buried_below
        self.max_spends = max_spends
        self.spends_read = 0

    def name(self) -> str:
        return f"PlotNFT {self.launcher_id.hex()}"

    async def buried_spend(self, coin_id: bytes32, what: str) -> tuple[CoinSpend, int]:
        """The spend of ``coin_id`` (the launcher, say) and its height; SingletonNotFound unless it is spent and
        buried."""
        record = await self.node.coin_record(coin_id)
        if record is None:
            raise SingletonNotFound(f"{self.name()}: {what} coin {coin_id.hex()} not found on chain")
        if not record.spent:
            raise SingletonNotFound(f"{self.name()}: {what} coin {coin_id.hex()} is not spent yet")
        if record.spent_block_index > self.buried_below:
            raise SingletonNotFound(f"{self.name()}: {what} coin {coin_id.hex()} is not buried deep enough yet")
        spend = await self.spend(record)
        if spend is None:
            raise SingletonNotFound(f"{self.name()}: the spend of {what} coin {coin_id.hex()} is not found")
        return spend, int(record.spent_block_index)

    async def buried_tip_height(self, tip: CoinSpend) -> int | None:
        """The height a known tip was spent at, if it still is and is buried; None: walk from the launcher (it was
        reorged away or is no longer buried)."""
        record = await self.node.coin_record(tip.coin.name())
        if record is None or not record.spent or record.spent_block_index > self.buried_below:
            return None
        return int(record.spent_block_index)

    async def spend(self, record: CoinRecord) -> CoinSpend | None:
        """The spend of a spent coin, counted against ``max_spends`` (SingletonWalkTooLong beyond)."""
        self.spends_read += 1
        if self.max_spends is not None and self.spends_read > self.max_spends:
            raise SingletonWalkTooLong(f"{self.name()}: more than {self.max_spends} spends to follow in one request")
        return await self.node.coin_spend(record)


def _checked_child(
    spend: CoinSpend,
    state: PoolState,
    height: int,
    launcher_id: bytes32,
    genesis_challenge: bytes32,
    delay_time: int,
    delay_puzzle_hash: bytes32,
) -> Coin | None:
    """The singleton coin ``spend`` creates, checked to have the puzzle ``state`` implies; None if melted. Raises
    SingletonForged if it has another."""
    child = get_most_recent_singleton_coin_from_coin_spend(spend)
    if child is None:
        return None
    expected = singleton_puzzle_hash(state, launcher_id, genesis_challenge, delay_time, delay_puzzle_hash)
    if child.puzzle_hash != expected:
        what = "launcher spend" if spend.coin.puzzle_hash == SINGLETON_LAUNCHER_HASH else "spend"
        raise SingletonForged(
            f"PlotNFT {launcher_id.hex()}: the {what} of coin {spend.coin.name().hex()} at height {height} "
            f"leaves the state {describe_state(state)}, which implies singleton puzzle hash {expected.hex()}, "
            f"but its singleton coin {child.name().hex()} has puzzle hash {child.puzzle_hash.hex()}"
        )
    return child


class _Walk(LineageWalk):
    def __init__(
        self,
        node: FullNode,
        launcher_id: bytes32,
        delay_time: int,
        delay_puzzle_hash: bytes32,
        genesis_challenge: bytes32,
        buried_below: int,
        max_spends: int | None,
    ) -> None:
        super().__init__(node, launcher_id, buried_below, max_spends)
        self.delay_time = delay_time
        self.delay_puzzle_hash = delay_puzzle_hash
        self.genesis_challenge = genesis_challenge

    def checked_child(self, spend: CoinSpend, state: PoolState, height: int) -> Coin | None:
        """The singleton coin ``spend`` creates, checked to have the puzzle ``state`` implies; None if melted."""
        return _checked_child(
            spend, state, height, self.launcher_id, self.genesis_challenge, self.delay_time, self.delay_puzzle_hash
        )

    async def resume_point(self, known: KnownTip) -> SingletonView | None:
        """The view at a still-valid known tip (one coin look-up), or None to walk from the launcher."""
        height = await self.buried_tip_height(known.tip)
        if height is None:
            return None
        return self.view_at(known, height)

    def view_at(self, known: KnownTip, height: int) -> SingletonView:
        """The view at a known tip spent, and buried, at ``height``."""
        return _view_at(
            self.launcher_id, KnownTip(known.tip, known.state, self.delay_time, self.delay_puzzle_hash), height
        )

    async def run(self, view: SingletonView) -> SingletonView:
        while True:
            # The known or launcher tip is checked too: a tip recorded before this check existed is not trusted.
            child = self.checked_child(view.tip, view.state, view.tip_height)
            if child is None:
                return _replace(view, melted=True)  # its last spend is final
            record = await self.node.coin_record(child.name())
            if record is None:
                return view  # the child of a buried spend is on chain; a node that lost it says nothing new
            if not record.spent:
                return _replace(view, coin_height=int(record.confirmed_block_index))
            if record.spent_block_index > self.buried_below:
                # ``child`` was spent too recently to trust the spend's state; it may still be an absorb, after which
                # the live coin (and the waiting room's countdown) is newer.
                return _replace(view, coin_height=await self._live_coin_height(view, record))
            spend = await self.spend(record)
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
                coin_height=height,
            )

    async def _live_coin_height(self, view: SingletonView, record: CoinRecord) -> int:
        """Creation height of the newest coin reached through not yet buried spends that keep the state."""
        height = int(record.confirmed_block_index)
        if view.state.state != PoolSingletonState.LEAVING_POOL.value:
            return height  # only a LEAVING_POOL countdown reads it: spare the node the look-ups
        while record.spent:
            spend = await self.spend(record)
            if spend is None or _state_of(spend) is not None:
                break  # a travel not yet buried: the coin it spent is the one the countdown ran on
            child = get_most_recent_singleton_coin_from_coin_spend(spend)
            next_record = None if child is None else await self.node.coin_record(child.name())
            if next_record is None:
                break
            record, height = next_record, int(next_record.confirmed_block_index)
        return height


def _replace(view: SingletonView, *, coin_height: int | None = None, melted: bool = False) -> SingletonView:
    return SingletonView(
        launcher_id=view.launcher_id,
        delay_time=view.delay_time,
        delay_puzzle_hash=view.delay_puzzle_hash,
        tip=view.tip,
        tip_height=view.tip_height,
        state=view.state,
        state_height=view.state_height,
        coin_height=view.coin_height if coin_height is None else coin_height,
        melted=melted,
    )


def _state_of(spend: CoinSpend) -> PoolState | None:
    """The pool state a spend carries, or None for spends that keep the state (absorbing rewards)."""
    try:
        return solution_to_pool_state(spend)
    except Exception:  # chia asserts on solutions of unexpected shape; such a spend carries no state we know
        return None


def is_member_of_pool(state: PoolState, pool: PoolInfoConfig, peak_height: int, coin_height: int) -> bool:
    """Whether a singleton in ``state`` whose live coin was created at ``coin_height`` farms to this pool at
    ``peak_height``.

    It must point at this pool's target puzzle hash with this pool's relative lock height and protocol version,
    and be FARMING_TO_POOL, or LEAVING_POOL while the waiting room still holds it: its escape spend asserts a height
    relative to the live singleton coin (ASSERT_HEIGHT_RELATIVE relative_lock_height), so it cannot be in a block
    below ``coin_height + relative_lock_height``. Until then its rewards still come to the pool and its partials
    still count. (chia's pool wallet computes its leave height the same way: last spend's height plus the lock.)
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
        return peak_height < coin_height + pool.relative_lock_height
    return False


def view_is_member(view: SingletonView, pool: PoolInfoConfig, peak_height: int) -> bool:
    """Membership of a followed singleton (a melted one is no member)."""
    return not view.melted and is_member_of_pool(view.state, pool, peak_height, view.coin_height)
