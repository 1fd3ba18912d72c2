"""What the chain shows of a transaction the pool recorded in several versions (a payout batch's transactions, the
fee spends of an absorb sent anew): each coin's state, and which version, if any, landed. Reads the node; decides
nothing (pool/payouts/versions.py decides what a new version must spend).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from pool.chain.interface import FullNode
from pool.chia_adapter import Coin, CoinRecord, SpendBundle, bytes32
from pool.payouts.versions import GONE, UNSPENT, CoinState, spent_at


async def coin_states(node: FullNode, coins: Sequence[Coin]) -> dict[bytes32, CoinState]:
    """Each coin as the node sees it now (a coin it does not know is GONE: a reorg took it away)."""
    states: dict[bytes32, CoinState] = {}
    for coin in coins:
        coin_id = coin.name()
        if coin_id in states:
            continue
        record = await node.coin_record(coin_id)
        if record is None:
            states[coin_id] = GONE
        elif record.spent:
            states[coin_id] = spent_at(int(record.spent_block_index))
        else:
            states[coin_id] = UNSPENT
    return states


@dataclass(frozen=True)
class VersionOnChain:
    index: int  # which of the versions landed
    created: dict[bytes32, CoinRecord]  # the coins it created, by id, as the chain holds them

    @property
    def height(self) -> int:
        """The height of the block it landed in."""
        return int(next(iter(self.created.values())).confirmed_block_index)


async def version_on_chain(
    node: FullNode, versions: Sequence[SpendBundle], states: Mapping[bytes32, CoinState]
) -> VersionOnChain | None:
    """The version that is on chain, or None. ``states``: every coin every version spends (``coin_states``).

    A version fits the chain when every coin it creates exists as a child of its own inputs, and every input was
    spent in the block that made them: it is found only by the children of its own coins, never by some coin of the
    right amount at the right address (anyone could make that one). Versions made from the same first coin make some
    of the same coins, so an older version can fit the chain when a newer one landed (the newer one spent the same
    coins, and one more, say, that covered its higher fee to the mojo): the one that landed is the one that spent
    the most, the others being parts of it."""
    inputs = {coin.name() for bundle in versions for coin in bundle.removals()}
    children = {
        record.coin.name(): record
        for record in await node.coin_records_by_parent_ids(sorted(inputs), include_spent=True)
    }
    fitting = [index for index, bundle in enumerate(versions) if _fits_the_chain(bundle, children, states)]
    if not fitting:
        return None
    index = max(fitting, key=lambda i: (len(versions[i].removals()), len(versions[i].additions())))
    return VersionOnChain(index, {coin.name(): children[coin.name()] for coin in versions[index].additions()})


def _fits_the_chain(
    bundle: SpendBundle, children: Mapping[bytes32, CoinRecord], states: Mapping[bytes32, CoinState]
) -> bool:
    created = bundle.additions()
    if not created or any(coin.name() not in children for coin in created):
        return False
    heights = {int(children[coin.name()].confirmed_block_index) for coin in created}
    if len(heights) != 1:
        return False
    (height,) = heights
    return all(states[coin.name()].spent_height == height for coin in bundle.removals())


def fee_of(bundle: SpendBundle) -> int:
    """What a transaction pays in fees: what it spends less what it creates."""
    return int(sum(coin.amount for coin in bundle.removals()) - sum(coin.amount for coin in bundle.additions()))
