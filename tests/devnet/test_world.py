"""The devnet world: a simulated chain the pool tests run against (the session's shared one, tests/conftest.py)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest_asyncio
from chia_rs import AugSchemeMPL
from chia_rs.sized_bytes import bytes32
from chia_rs.sized_ints import uint16, uint32, uint64

from pool.chia_adapter import chia_config, consensus_constants_for
from pool.chia_adapter.simulation import (
    FullNodeRpcClient,
    PoolSingletonState,
    calculate_iterations_quality,
    calculate_sp_interval_iters,
    load_config,
    verify_and_get_quality_string,
)
from pool.devnet.network import DISCRIMINANT_BITS
from pool.devnet.world import FarmerHandle, PlotNFTInfo, PoolPlot, RpcEndpoint, World


@pytest_asyncio.fixture(scope="module")
async def plotnft(world: World) -> PlotNFTInfo:
    # fresh_launcher=False: no pool store outlives this chain, so the PlotNFT may be the one the same tests made on
    # the same chain last time, and its plots come from chia's test plot cache (on a machine without them, they are
    # plotted as before). What the tests check of the plots holds either way.
    return await world.create_plotnft(
        pool_url="http://127.0.0.1:1",
        target_puzzle_hash=world.pool_target_puzzle_hash,
        relative_lock_height=5,
        fresh_launcher=False,
    )


@pytest_asyncio.fixture(scope="module")
async def plots(world: World, plotnft: PlotNFTInfo) -> list[PoolPlot]:
    return await world.create_pool_plots(plotnft.p2_singleton_puzzle_hash, 3)


async def _node_client(endpoint: RpcEndpoint) -> FullNodeRpcClient:
    config = load_config(endpoint.root_path, "config.yaml")
    return await FullNodeRpcClient.create(endpoint.host, uint16(endpoint.port), endpoint.root_path, config)


async def test_config_rebuilds_the_constants(world: World) -> None:
    config = chia_config(world.full_node_rpc.root_path)
    network = config["full_node"]["selected_network"]
    assert network == world.network
    assert consensus_constants_for(network, config) == world.constants
    assert config["full_node"]["rpc_port"] == world.full_node_rpc.port
    # The devnet's own discriminant (chia's test constants have 16 bits, its defaults 1024), read back from config.
    assert world.constants.DISCRIMINANT_SIZE_BITS == DISCRIMINANT_BITS


async def test_node_is_synced_and_farms(world: World) -> None:
    client = await _node_client(world.full_node_rpc)
    try:
        state = await client.get_blockchain_state()
        assert state["sync"]["synced"]
        before = state["peak"].height
        height = await world.farm_blocks(2)
        assert height == before + 2
        assert (await client.get_blockchain_state())["peak"].height == height
    finally:
        client.close()
        await client.await_closed()


async def test_pool_wallet_rpc(world: World) -> None:
    assert world.pool_wallet_rpc.root_path != world.farmer_wallet_rpc.root_path
    fingerprint = await world.pool_wallet_client.get_logged_in_fingerprint()
    assert fingerprint.fingerprint == world.pool_wallet_fingerprint


async def test_plotnft_targets_the_pool(world: World, plotnft: PlotNFTInfo) -> None:
    state = await world.plotnft_status(plotnft.wallet_id)
    assert state.launcher_id == plotnft.launcher_id
    assert state.current.state == PoolSingletonState.FARMING_TO_POOL.value
    assert state.current.target_puzzle_hash == world.pool_target_puzzle_hash
    assert state.current.relative_lock_height == 5
    assert plotnft.owner_secret_key.get_g1() == plotnft.owner_public_key
    client = await _node_client(world.full_node_rpc)
    try:
        launcher = await client.get_coin_record_by_name(plotnft.launcher_id)
        assert launcher is not None and launcher.spent
    finally:
        client.close()
        await client.await_closed()


async def test_pool_plots(world: World, plotnft: PlotNFTInfo, plots: list[PoolPlot]) -> None:
    assert len({plot.plot_id for plot in plots}) == 3
    for plot in plots:
        assert plot.path.exists()
        assert plot.p2_singleton_puzzle_hash == plotnft.p2_singleton_puzzle_hash
        message = bytes32(b"\x01" * 32)
        assert AugSchemeMPL.verify(plot.plot_public_key, message, plot.sign(message))


async def test_signage_point_is_visible_and_gives_valid_proofs(world: World, plots: list[PoolPlot]) -> None:
    client = await _node_client(world.full_node_rpc)
    try:
        found = []
        for _ in range(12):
            sp = await world.new_signage_point()
            recent = await client.get_recent_signage_point_or_eos(sp.sp_hash, None)
            assert not recent["reverted"]
            assert recent["signage_point"].cc_vdf.challenge == sp.challenge_hash
            found = world.proofs_for_signage_point(plots, sp)
            if found:
                break
        assert found, "no proofs in 12 signage points"
        peak = (await client.get_blockchain_state())["peak"]
        for proof in found:
            quality = verify_and_get_quality_string(
                proof.proof_of_space,
                world.constants,
                sp.challenge_hash,
                sp.sp_hash,
                height=peak.height,
                prev_transaction_block_height=uint32(peak.height),
            )
            assert quality == proof.quality_string
            iters = calculate_iterations_quality(
                world.constants,
                quality,
                proof.proof_of_space.param(),
                uint64(1),
                sp.sp_hash,
                height=uint32(peak.height),
            )
            limit = calculate_sp_interval_iters(world.constants, world.constants.POOL_SUB_SLOT_ITERS)
            assert iters < limit
    finally:
        client.close()
        await client.await_closed()


async def test_signage_points_are_distinct(world: World) -> None:
    seen = {(await world.new_signage_point()).sp_hash for _ in range(20)}
    assert len(seen) == 20


async def test_end_of_sub_slot_is_visible(world: World) -> None:
    eos = await world.end_of_sub_slot()
    client = await _node_client(world.full_node_rpc)
    try:
        recent = await client.get_recent_signage_point_or_eos(None, eos.challenge_hash)
        assert recent["eos"].challenge_chain.get_hash() == eos.challenge_hash
    finally:
        client.close()
        await client.await_closed()


@pytest_asyncio.fixture(scope="module")
async def farmer(world: World, plots: list[PoolPlot]) -> AsyncIterator[FarmerHandle]:
    handle = await world.start_farmer(plots)
    yield handle
    # The chain is shared: a farmer left running would look up proofs for every later test's signage points.
    await handle.stop()


async def test_farmer_receives_signage_points(world: World, plotnft: PlotNFTInfo, farmer: FarmerHandle) -> None:
    sp = await world.new_signage_point()
    await farmer.wait_for_signage_point(sp.sp_hash)
    # The farmer learnt the PlotNFT's pool from the copied pooling share state.
    for _ in range(100):
        if farmer.pool_state(plotnft.p2_singleton_puzzle_hash) is not None:
            break
        await asyncio.sleep(0.1)
    state = farmer.pool_state(plotnft.p2_singleton_puzzle_hash)
    assert state is not None
    assert state["pool_config"].pool_url == plotnft.pool_url


async def test_farmer_finds_partials_for_its_pool_plots(
    world: World, plotnft: PlotNFTInfo, farmer: FarmerHandle
) -> None:
    # No pool listens at the PlotNFT's URL: give the farmer what GET /pool_info and GET /farmer would have told it.
    # The farmer counts a partial as found only once the harvester found the proof *and* signed it (a failed signature
    # request stops it before); only the POST to the missing pool then fails.
    state = farmer.pool_state(plotnft.p2_singleton_puzzle_hash)
    assert state is not None
    state["authentication_token_timeout"] = 5
    state["current_difficulty"] = 1
    for _ in range(24):
        await world.new_signage_point()
        await asyncio.sleep(0.3)
        if state["points_found_since_start"] > 0:
            break
    assert state["points_found_since_start"] > 0, "the farmer found no partial in 24 signage points"


async def test_leave_pool(world: World, plotnft: PlotNFTInfo) -> None:
    await world.leave_pool(plotnft)
    state = await world.plotnft_status(plotnft.wallet_id)
    assert state.current.state == PoolSingletonState.LEAVING_POOL.value
