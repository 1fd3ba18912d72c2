"""Where the money of a spent pool reward coin went: to this pool's target puzzle hash, or elsewhere.

A pool reward coin sits at a PlotNFT's p2_singleton puzzle hash. It can be spent two ways:

* an **absorb**: the reward coin asserts a puzzle announcement of the singleton (its own coin id, announced by a
  coin with the singleton's puzzle hash), and that singleton spend creates a coin of the reward's amount at the target
  puzzle hash of the pool state in force. Anyone can make it, and it pays whichever pool the singleton farms to
  *then*: a farmer who left the pool can absorb a reward won while it was a member into its new pool (or itself);
* the owner's **delayed path**, after the PlotNFT's delay time: the reward coin pays the delay puzzle hash itself.

A PlotNFT v2's reward coin (at RewardPuzzle(launcher)) is forwarded instead: its own spend pays its whole amount to
the pool puzzle hash of the state in force (or, once the PlotNFT left, wherever its owner sends it).

So "the reward coin is spent" is not "the pool was paid". Only the coins the spends created say where the money went;
the pool credits a reward only when they show the payment at its target, tied by the announcement to this very reward
coin (two rewards of the same amount absorbed in one block each have their own singleton spend and payment).
"""

from __future__ import annotations

from dataclasses import dataclass

from pool.chain.interface import FullNode
from pool.chia_adapter import Coin, CoinRecord, bytes32, spend_conditions, std_hash


@dataclass(frozen=True)
class RewardPaid:
    """The reward's spend paid this pool: ``payment`` is the coin it created at the target puzzle hash."""

    payment: CoinRecord
    spent_height: int


@dataclass(frozen=True)
class RewardDiverted:
    """The reward coin was spent without paying this pool's target."""

    spent_height: int
    why: str


RewardFate = RewardPaid | RewardDiverted


async def reward_fate(
    node: FullNode, reward: CoinRecord, target_puzzle_hash: bytes32, max_cost: int
) -> RewardFate | None:
    """Where a spent reward coin's money went, read from the chain; None while that cannot be said (the coin is
    unspent, or the chain moved since ``reward`` was read). Raises ChainUnavailable when the node cannot answer:
    an outage is never read as "not paid"."""
    if not reward.spent:
        return None
    height = int(reward.spent_block_index)
    spend = await node.coin_spend(reward)
    if spend is None:
        return None
    own = spend_conditions(spend, max_cost)
    if (target_puzzle_hash, int(reward.coin.amount)) in own.created_coins:
        # The reward coin paid its whole amount to the target itself: a PlotNFT v2's reward forwarded to its pool.
        paid = await node.coin_record(Coin(reward.coin.name(), target_puzzle_hash, reward.coin.amount).name())
        return None if paid is None else RewardPaid(paid, height)
    if own.created_coins:
        paid_to = ", ".join(puzzle_hash.hex() for puzzle_hash, _ in own.created_coins)
        return RewardDiverted(height, f"spent at height {height} by its owner's delayed path, paying {paid_to}")
    if not own.asserted_puzzle_announcements:
        return RewardDiverted(height, f"spent at height {height} without an absorb")
    payment = await _absorb_payment(node, reward, own.asserted_puzzle_announcements, target_puzzle_hash, max_cost)
    if payment is None:
        return RewardDiverted(
            height, f"absorbed at height {height} by a singleton spend that did not pay this pool's target"
        )
    return RewardPaid(payment, height)


async def _absorb_payment(
    node: FullNode,
    reward: CoinRecord,
    asserted: tuple[bytes32, ...],
    target_puzzle_hash: bytes32,
    max_cost: int,
) -> CoinRecord | None:
    """The coin at the target, created in the reward's block by the singleton spend whose announcement the reward
    coin asserted, of the reward's amount; None if there is none."""
    height = int(reward.spent_block_index)
    reward_id = reward.coin.name()
    candidates = await node.coin_records_by_puzzle_hashes(
        [target_puzzle_hash], include_spent=True, start_height=height, end_height=height + 1
    )
    for candidate in candidates:
        if candidate.coin.amount != reward.coin.amount or int(candidate.confirmed_block_index) != height:
            continue
        parent = await node.coin_record(candidate.coin.parent_coin_info)
        if parent is None or not parent.spent or int(parent.spent_block_index) != height:
            continue
        # The reward coin asserted sha256(announcer's puzzle hash + message): this parent is the announcer the reward
        # coin depended on only if its puzzle hash makes that id with the reward's coin id as the message.
        if bytes32(std_hash(bytes(parent.coin.puzzle_hash) + bytes(reward_id))) not in asserted:
            continue
        parent_spend = await node.coin_spend(parent)
        if parent_spend is None:
            continue
        made = spend_conditions(parent_spend, max_cost)
        if bytes(reward_id) in made.puzzle_announcements and (
            (target_puzzle_hash, int(reward.coin.amount)) in made.created_coins
        ):
            return candidate
    return None
