"""The node's three answers: found, its own "not found", and unavailable. Against the real simulator node, reached
directly or through a proxy that refuses look-ups the way chia's node does when its database is busy."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio

from pool.chain.interface import ChainUnavailable
from pool.chain.node_rpc import READ_ATTEMPTS, RpcFullNode
from pool.chia_adapter import CoinRecord, bytes32, uint32
from pool.config import RpcConfig
from pool.devnet.world import World
from tests.faults import FlakyNodeProxy


def random_id() -> bytes32:
    return bytes32(secrets.token_bytes(32))


@pytest_asyncio.fixture(scope="module")
async def spent_and_unspent(world: World) -> tuple[CoinRecord, CoinRecord]:
    """A coin of the chain that is spent (a PlotNFT's launcher) and one that is not (a block reward of a puzzle hash
    of our own)."""
    plotnft = await world.create_plotnft(pool_url="http://127.0.0.1:1")
    puzzle_hash = random_id()
    await world.farm_blocks(2, to_puzzle_hash=puzzle_hash)
    node = await RpcFullNode.connect(_rpc(world, world.full_node_rpc.port))
    try:
        unspent = (await node.coin_records_by_puzzle_hashes([puzzle_hash], include_spent=False))[0]
        spent = await node.coin_record(plotnft.launcher_id)
    finally:
        await node.close()
    assert spent is not None and spent.spent and not unspent.spent
    return spent, unspent


def _rpc(world: World, port: int) -> RpcConfig:
    return RpcConfig(host=world.full_node_rpc.host, port=port, chia_root=world.full_node_rpc.root_path)


@pytest_asyncio.fixture
async def refusing(world: World) -> AsyncIterator[tuple[FlakyNodeProxy, RpcFullNode]]:
    """A node whose every coin and puzzle look-up is refused (as a node with a locked database refuses them)."""
    async with FlakyNodeProxy(
        world.full_node_rpc.host, world.full_node_rpc.port, world.full_node_rpc.root_path, error_rate=1.0
    ) as proxy:
        node = await RpcFullNode.connect(_rpc(world, proxy.port))
        try:
            yield proxy, node
        finally:
            await node.close()


async def test_a_refused_look_up_is_unavailable_never_not_found(
    refusing: tuple[FlakyNodeProxy, RpcFullNode], spent_and_unspent: tuple[CoinRecord, CoinRecord]
) -> None:
    proxy, node = refusing
    _, unspent = spent_and_unspent
    with pytest.raises(ChainUnavailable, match="database is locked"):
        await node.coin_record(unspent.coin.name())
    with pytest.raises(ChainUnavailable):
        await node.coin_record(random_id())  # not "there is no such coin": the node never said so
    with pytest.raises(ChainUnavailable):
        await node.coin_records_by_puzzle_hashes([unspent.coin.puzzle_hash], include_spent=True)
    with pytest.raises(ChainUnavailable):
        await node.coin_records_by_parent_ids([unspent.coin.parent_coin_info], include_spent=True)
    with pytest.raises(ChainUnavailable):  # never an empty answer, that would say the node has none of them
        await node.coin_records_by_names([unspent.coin.name(), random_id()])
    # Each refused read was asked again before it was given up.
    assert proxy.refused["get_coin_record_by_name"] == 2 * READ_ATTEMPTS
    # What the proxy does not refuse still answers.
    assert (await node.peak()).height > 0


async def test_the_nodes_own_not_found_is_none(world: World, spent_and_unspent: tuple[CoinRecord, CoinRecord]) -> None:
    spent, unspent = spent_and_unspent
    node = await RpcFullNode.connect(_rpc(world, world.full_node_rpc.port))
    try:
        assert await node.coin_record(random_id()) is None  # COIN_RECORD_NOT_FOUND
        assert await node.signage_point(random_id()) is None  # SP_NOT_IN_CACHE
        assert await node.end_of_sub_slot(random_id()) is None  # EOS_NOT_IN_CACHE
        assert await node.in_mempool(random_id()) is False  # TX_NOT_IN_MEMPOOL
        found = await node.coin_record(unspent.coin.name())
        assert found is not None and not found.spent
        # Many coins in one call: those the node has, spent or not; one it does not have is left out.
        both = await node.coin_records_by_names([spent.coin.name(), random_id(), unspent.coin.name()])
        assert sorted(both, key=lambda r: r.spent) == [found, spent]
        assert await node.coin_records_by_names([]) == []
        spend = await node.coin_spend(spent)
        assert spend is not None and spend.coin == spent.coin
        # Asked at a height where it was not spent (the chain moved under a record read earlier): INVALID_HEIGHT.
        moved = CoinRecord(
            spent.coin,
            spent.confirmed_block_index,
            uint32(spent.spent_block_index + 1),
            spent.coinbase,
            spent.timestamp,
        )
        assert await node.coin_spend(moved) is None
    finally:
        await node.close()


async def test_a_look_up_refused_now_and_then_is_asked_again(
    world: World, spent_and_unspent: tuple[CoinRecord, CoinRecord]
) -> None:
    """With every second look-up refused, every answer still comes, and right, after a retry."""
    spent, unspent = spent_and_unspent
    async with FlakyNodeProxy(
        world.full_node_rpc.host, world.full_node_rpc.port, world.full_node_rpc.root_path, refuse_every=2
    ) as proxy:
        node = await RpcFullNode.connect(_rpc(world, proxy.port))
        try:
            for _ in range(5):
                found = await node.coin_record(unspent.coin.name())
                assert found is not None and found.coin == unspent.coin
                assert await node.coin_record(random_id()) is None
                spend = await node.coin_spend(spent)
                assert spend is not None and spend.coin == spent.coin
        finally:
            await node.close()
    assert proxy.refused["get_coin_record_by_name"] > 0 and proxy.refused["get_puzzle_and_solution"] > 0
