"""Blockchain fees from the real node's estimate, within the configured bounds; a node that cannot estimate gives
the least fee, never a reason to wait."""

from __future__ import annotations

import pytest

from pool.chain.node_rpc import RpcFullNode
from pool.config import FeesConfig, RpcConfig
from pool.devnet.world import World
from pool.payouts.fees import absorb_cost, bounded, estimated_fee, payment_cost
from tests.faults import FlakyNodeProxy


@pytest.mark.parametrize(
    "estimate, least, maximum, fee",
    [
        (0, 0, 100, 0),  # an empty mempool: no fee
        (0, 30, 100, 30),  # the configured least fee
        (50, 30, 100, 50),  # the estimate
        (500, 30, 100, 100),  # never beyond the maximum, however full the mempool
    ],
)
def test_the_estimate_is_bounded(estimate: int, least: int, maximum: int, fee: int) -> None:
    assert bounded(estimate, least, FeesConfig(maximum=maximum)) == fee


def test_costs_grow_with_what_the_transaction_does() -> None:
    assert absorb_cost(2) > absorb_cost(1) > payment_cost(400) / 12 > 0
    assert payment_cost(1) < payment_cost(2) < payment_cost(400) < 11_000_000_000  # within chia's block cost limit


async def test_the_nodes_estimate_is_asked_and_a_refusal_gives_the_least_fee(world: World) -> None:
    endpoint = world.full_node_rpc
    fees = FeesConfig(target_seconds=120, maximum=1_000_000)
    node = await RpcFullNode.connect(RpcConfig(endpoint.host, endpoint.port, endpoint.root_path))
    try:
        estimate = await node.fee_estimate(absorb_cost(1), fees.target_seconds)
        assert estimate >= 0
        assert await estimated_fee(node, fees, absorb_cost(1), least=7) == bounded(estimate, 7, fees)
    finally:
        await node.close()
    async with FlakyNodeProxy(
        endpoint.host, endpoint.port, endpoint.root_path, error_rate=1.0, endpoints={"get_fee_estimate"}
    ) as refusing:
        node = await RpcFullNode.connect(RpcConfig(endpoint.host, refusing.port, endpoint.root_path))
        try:
            assert await estimated_fee(node, fees, payment_cost(10), least=1_234) == 1_234
            assert refusing.refused["get_fee_estimate"] > 0
        finally:
            await node.close()
