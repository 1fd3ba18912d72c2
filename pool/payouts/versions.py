"""Which coins a new version of a payout batch must spend so that, of all its versions, at most one can ever land.

A batch's transaction is replaced when it cannot land as it is (a coin it spends was spent by something else) or
when it is stuck (a higher fee). Every version ever recorded may still land: a node that saw an old one may keep it in
its mempool for days, and a reorg can bring back a coin that seemed gone. Two versions that spend one common coin
conflict: once one lands the other never can. So a new version must share a coin that still exists unspent with every
older version that could still land, and when some older version has no such coin left (its coins were spent
elsewhere or vanished only recently, and a reorg may yet undo that) the batch waits instead.

A version can no longer land once one of its coins was spent by a transaction that is not one of the batch's own
(none of them landed: the caller checked) and that spend is buried at least ``confirmation_security_threshold`` blocks
deep: such a version is dead and asks nothing of the new one. Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from pool.chia_adapter import Coin, bytes32


@dataclass(frozen=True)
class CoinState:
    """A coin as the node sees it now: unspent, spent at ``spent_height``, or unknown (``exists`` False: never
    created on this chain, or taken away by a reorg)."""

    exists: bool
    spent_height: int | None = None

    @property
    def unspent(self) -> bool:
        return self.exists and self.spent_height is None


UNSPENT = CoinState(exists=True)
GONE = CoinState(exists=False)


def spent_at(height: int) -> CoinState:
    return CoinState(exists=True, spent_height=height)


@dataclass(frozen=True)
class MustSpend:
    """The coins a new version must spend (it may add more to cover the amount)."""

    coins: tuple[Coin, ...]


@dataclass(frozen=True)
class Wait:
    """No new version may be built yet; ``why`` says which older version could still land."""

    why: str


def coins_for_new_version(
    versions: Sequence[Sequence[Coin]],
    states: Mapping[bytes32, CoinState],
    peak_height: int,
    threshold: int,
) -> MustSpend | Wait:
    """``versions``: the coins of every version recorded, oldest first; ``states``: every one of those coins.

    Every coin of a version that could still land and that is unspent now is kept, so the new version conflicts
    with each such version (and, built from the latest version's coins, a fee bump spends everything its predecessor
    did)."""
    kept: dict[bytes32, Coin] = {}
    for number, coins in enumerate(versions, start=1):
        if _dead(coins, states, peak_height, threshold):
            continue
        unspent = [coin for coin in coins if states[coin.name()].unspent]
        if not unspent:
            return Wait(
                f"version {number} may still land: its coins are spent elsewhere or gone, but not for "
                f"{threshold} block(s) yet"
            )
        for coin in unspent:
            kept.setdefault(coin.name(), coin)
    return MustSpend(tuple(kept.values()))


def _dead(coins: Sequence[Coin], states: Mapping[bytes32, CoinState], peak_height: int, threshold: int) -> bool:
    for coin in coins:
        spent_height = states[coin.name()].spent_height
        if spent_height is not None and peak_height - spent_height >= threshold:
            return True
    return False


def can_land_as_is(coins: Sequence[Coin], states: Mapping[bytes32, CoinState]) -> bool:
    """Whether every coin the version spends still exists unspent."""
    return all(states[coin.name()].unspent for coin in coins)
