"""chain.full_nodes against the real simulator node: when the node in use stops, the same call is answered by the
next node; a node's own "not found" is an answer and moves nothing; the first node is preferred again once back."""

from __future__ import annotations

import secrets

import pytest

from pool.chain.failover import FailoverFullNode
from pool.chain.interface import ChainUnavailable
from pool.chia_adapter import bytes32
from pool.config import RpcConfig
from pool.devnet.session import free_port
from pool.devnet.world import World
from tests.faults import FlakyNodeProxy


async def test_the_next_node_answers_when_the_one_in_use_stops(world: World) -> None:
    endpoint = world.full_node_rpc
    proxy = FlakyNodeProxy(endpoint.host, endpoint.port, endpoint.root_path, port=free_port())
    await proxy.start()
    first = RpcConfig(endpoint.host, proxy.port, endpoint.root_path)
    direct = RpcConfig(endpoint.host, endpoint.port, endpoint.root_path)
    node = await FailoverFullNode.connect([first, direct])
    try:
        peak = await node.peak()
        assert await node.coin_record(bytes32(secrets.token_bytes(32))) is None  # "not found" is an answer
        assert node.in_use == first and proxy.forwarded

        await proxy.stop()
        assert (await node.peak()).height >= peak.height  # the same call, answered by the next node
        assert node.in_use == direct
        assert await node.coin_record(bytes32(secrets.token_bytes(32))) is None
    finally:
        await node.close()
        await proxy.stop()

    # The first node down at start: the pool starts on the next one; back, it is used again after a while.
    node = await FailoverFullNode.connect([first, direct])
    try:
        assert node.in_use == direct
        await proxy.start()
        node._prefer_first_after = 0  # as if PREFER_FIRST_AFTER had passed
        await node.peak()
        assert node.in_use == first
    finally:
        await node.close()
        await proxy.stop()


async def test_every_node_down_is_unavailable_naming_each(world: World) -> None:
    endpoint = world.full_node_rpc
    nowhere = [RpcConfig(endpoint.host, free_port(), endpoint.root_path) for _ in range(2)]
    with pytest.raises(ChainUnavailable) as refused:
        await FailoverFullNode.connect(nowhere)
    assert all(f"{rpc.host}:{rpc.port}" in str(refused.value) for rpc in nowhere)
