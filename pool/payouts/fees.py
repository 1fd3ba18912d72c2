"""What an absorb or a payment pays in blockchain fees: the node's estimate, within the configured bounds.

The fee is part of what is signed, so it is asked for before the transaction exists, for the CLVM cost such a
transaction has. The costs below are chia's own figures for its fee estimate RPC (spend types
``pw_absorb_rewards`` and ``send_xch_transaction``) plus what each further payment adds; they are estimates, and
the estimate's fee rate (mojos per cost) is what follows the mempool.
"""

from __future__ import annotations

import logging

from pool.chain.interface import ChainUnavailable, FullNode
from pool.config import FeesConfig

log = logging.getLogger(__name__)

ABSORB_COST = 82_668_466  # one absorb of one reward coin (a singleton spend and a p2_singleton spend)
STANDARD_TRANSACTION_COST = 9_401_710  # one standard coin spent, two coins created
# A further coin created: CREATE_COIN's 1 800 000, its bytes in the solution at 12 000 each, and its share of the
# spend's running cost; tests/payouts/test_large_round.py checks this bound against what the mempool measures.
ADDITION_COST = 2_450_000  # with a margin for transactions that spend several coins


def absorb_cost(reward_coins: int) -> int:
    """An absorb bundle of ``reward_coins`` chained absorbs and the standard spend paying its fee."""
    return ABSORB_COST * reward_coins + STANDARD_TRANSACTION_COST


def payment_cost(additions: int) -> int:
    """A payment transaction creating ``additions`` coins (and its change) from standard coins."""
    return STANDARD_TRANSACTION_COST + ADDITION_COST * max(additions - 1, 0)


def additions_within(cost_limit: int) -> int:
    """The most payments one transaction can make within ``cost_limit`` (by payment_cost; at least 1)."""
    return max(1, (cost_limit - STANDARD_TRANSACTION_COST) // ADDITION_COST + 1)


def bounded(estimate: int, least: int, fees: FeesConfig) -> int:
    return min(max(estimate, least), fees.maximum)


async def estimated_fee(node: FullNode, fees: FeesConfig, cost: int, least: int) -> int:
    """The node's estimate for ``cost`` within [least, fees.maximum]; ``least`` when the node cannot say (a fee is
    never a reason to wait: a later bump follows the mempool). With ``fees.from_node`` off: ``least``."""
    if not fees.from_node:
        return bounded(0, least, fees)
    try:
        estimate = await node.fee_estimate(cost, fees.target_seconds)
    except ChainUnavailable as exc:
        log.info("no fee estimate from the node (%s): the least fee, %d mojos", exc, least)
        return bounded(0, least, fees)
    return bounded(estimate, least, fees)
