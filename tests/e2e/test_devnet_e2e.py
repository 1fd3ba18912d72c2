"""End to end on the devnet: chia 2.7.5's real farmer and harvester talk to the pool over HTTP, the pool talks to the
simulator's node and the pool wallet over RPC, and rewards and payouts move real coins.

The tests share one devnet and run in order, each building on the state the previous one left (as a pool's life
does): join, earn points, win a block and get paid, change payout instructions, survive a restart, leave the pool.

All of it against a node that refuses a fifth of its coin and puzzle look-ups, as chia's node does when its database
is busy (tests/faults.py): the pool reaches its node through a proxy that answers those itself with an error. Nothing
may be refused to the farmer, rejected, or paid more than claimed because of that.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import pytest_asyncio

from pool.chain.failover import FailoverFullNode
from pool.chain.node_rpc import RpcFullNode
from pool.chain.wallet_rpc import WalletRpc
from pool.chia_adapter import PoolErrorCode, bytes32, std_hash
from pool.config import PoolConfig, RpcConfig
from pool.devnet.session import Devnet, free_port
from pool.loops.rewards import is_pool_reward
from pool.store.models import ClaimStatus, FarmerRecord, PartialRecord, PartialStatus
from tests.chain_checks import store_agrees_with_chain
from tests.e2e.driving import drive_until, wait_until
from tests.faults import FlakyNodeProxy, describe

pytestmark = pytest.mark.asyncio(loop_scope="module")


NODE_ERROR_RATE = 0.2


@dataclass
class FlakyNodeDevnet(Devnet):
    """The devnet, with the pool's first node behind a proxy that refuses a share of its coin and puzzle look-ups,
    and the node itself, straight, as the next one (chain.full_nodes)."""

    proxy: FlakyNodeProxy | None = None

    def _pool_config(self) -> PoolConfig:
        config = super()._pool_config()
        node = config.chain.full_node
        self.proxy = FlakyNodeProxy(node.host, node.port, node.chia_root, error_rate=NODE_ERROR_RATE, port=free_port())
        flaky = dataclasses.replace(node, port=self.proxy.port)
        chain = dataclasses.replace(config.chain, full_node=flaky, more_full_nodes=(node,))
        return dataclasses.replace(config, chain=chain)

    async def start_pool(self) -> None:
        assert self.proxy is not None
        if self.proxy.calls == 0 and not self.proxy.forwarded:
            await self._stack.enter_async_context(self.proxy)
        await super().start_pool()


# A chain of its own (these tests are marked e2e and slow by tests/conftest.py): the Devnet runs a real chia farmer,
# which answers every signage point, and the pool's payout loop, which spends everything in the pool wallet.
@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def devnet(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[FlakyNodeDevnet]:
    work_dir: Path = tmp_path_factory.mktemp("devnet")
    async with FlakyNodeDevnet(work_dir, farmers_count=1, plots_per_farmer=3) as running:
        assert isinstance(running, FlakyNodeDevnet)
        yield running


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def node(devnet: FlakyNodeDevnet) -> AsyncIterator[RpcFullNode]:
    """The test's own way to the node, straight (what it checks on chain must not depend on the flaky proxy)."""
    endpoint = devnet.world.full_node_rpc
    direct = await RpcFullNode.connect(RpcConfig(endpoint.host, endpoint.port, endpoint.root_path))
    yield direct
    await direct.close()


async def farmer_record(devnet: Devnet) -> FarmerRecord:
    record = await devnet.ctx.store.get_farmer(devnet.farmers[0].plotnft.launcher_id)
    assert record is not None
    return record


async def points_and_confirmed_partials(devnet: Devnet) -> tuple[FarmerRecord, list[PartialRecord]]:
    """The farmer's record and its confirmed partials as of one moment: the confirmation loop keeps crediting while
    the test reads, so the two reads count only when the points did not move between them."""
    while True:
        record = await farmer_record(devnet)
        confirmed = await devnet.ctx.store.recent_partials(record.launcher_id, 0, [PartialStatus.CONFIRMED])
        if (await farmer_record(devnet)).points == record.points:
            return record, confirmed


async def farmer_partials(devnet: Devnet, status: PartialStatus | None = None) -> int:
    launcher_id = devnet.farmers[0].plotnft.launcher_id
    statuses = None if status is None else [status]
    return len(await devnet.ctx.store.recent_partials(launcher_id, since=0, statuses=statuses))


async def coins_at(devnet: Devnet, puzzle_hash: bytes32) -> int:
    endpoint = devnet.world.full_node_rpc
    node = await RpcFullNode.connect(RpcConfig(endpoint.host, endpoint.port, endpoint.root_path))
    try:
        records = await node.coin_records_by_puzzle_hashes([puzzle_hash], include_spent=True)
    finally:
        await node.close()
    return sum(record.coin.amount for record in records)


async def test_real_farmer_joins_and_its_partials_are_accepted(devnet: Devnet) -> None:
    launcher_id = devnet.farmers[0].plotnft.launcher_id

    async def registered_with_partials() -> bool:
        return await devnet.ctx.store.get_farmer(launcher_id) is not None and await farmer_partials(devnet) >= 3

    await drive_until(devnet, registered_with_partials, "farmer registered and 3 partials accepted")
    record = await farmer_record(devnet)
    assert record.is_pool_member
    assert record.p2_singleton_puzzle_hash == devnet.farmers[0].plotnft.p2_singleton_puzzle_hash
    # The farmer registered with the payout instructions its wallet gave it, and reads them back unchanged.
    state = devnet.farmer.pool_state(record.p2_singleton_puzzle_hash)
    assert state is not None
    assert state["pool_config"].payout_instructions.lower() == record.payout_instructions.lower()


async def test_points_are_credited_after_the_confirmation_delay(devnet: Devnet) -> None:
    async def credited() -> bool:
        return (await farmer_record(devnet)).points > 0

    await drive_until(devnet, credited, "points credited")
    record, confirmed = await points_and_confirmed_partials(devnet)
    assert record.points == sum(partial.difficulty for partial in confirmed)

    # The farmer sees its points through GET /farmer.
    async def farmer_sees_points() -> bool:
        state = devnet.farmer.pool_state(record.p2_singleton_puzzle_hash)
        return state is not None and (state.get("current_points") or 0) > 0

    # chia's farmer asks GET /farmer once its next update is due, looking every 60 s: make it due, and look now.
    devnet.farmer.pool_state(record.p2_singleton_puzzle_hash)["next_farmer_update"] = 0  # type: ignore[index]
    await devnet.farmer.farmer_service._node.update_pool_state()
    await drive_until(devnet, farmer_sees_points, "farmer sees its points in GET /farmer")


async def test_won_block_is_absorbed_and_paid_to_the_farmer(devnet: Devnet) -> None:
    farmer = devnet.farmers[0]
    record = await farmer_record(devnet)
    payout_puzzle_hash = record.payout_puzzle_hash
    before = await coins_at(devnet, payout_puzzle_hash)
    await devnet.win_block(farmer)

    async def absorbed() -> bool:
        return len(await devnet.ctx.store.reward_claims(ClaimStatus.CONFIRMED)) >= 1

    await drive_until(devnet, absorbed, "reward absorbed", farm_every=2)

    async def paid() -> bool:
        return (await devnet.confirmed_payouts())[1] > 0

    await drive_until(devnet, paid, "payout confirmed", farm_every=2)
    _, paid_mojos = await devnet.confirmed_payouts()
    received = await coins_at(devnet, payout_puzzle_hash) - before
    assert received == paid_mojos
    # One farmer with all the points: it gets the reward less the pool fee (1%), up to rounding carried over.
    reward = sum(claim.amount for claim in await devnet.ctx.store.reward_claims(ClaimStatus.CONFIRMED))
    assert reward * 98 // 100 <= paid_mojos <= reward
    # The farmer's wallet sees the payment when the payout instructions are one of its addresses.
    assert (await farmer_record(devnet)).points >= 0


async def test_payout_instruction_change_reaches_the_next_payment(devnet: Devnet) -> None:
    farmer = devnet.farmers[0]
    new_puzzle_hash = bytes32(std_hash(b"e2e new payout address"))
    # The farmer's own RPC-facing method: it stores the instructions and sends PUT /farmer to the pool.
    await devnet.farmer.farmer_service._node.set_payout_instructions(farmer.plotnft.launcher_id, new_puzzle_hash.hex())

    async def updated() -> bool:
        return (await farmer_record(devnet)).payout_puzzle_hash == new_puzzle_hash

    await drive_until(devnet, updated, "PUT /farmer changed the payout instructions")

    async def has_points() -> bool:
        return (await farmer_record(devnet)).points > 0

    await drive_until(devnet, has_points, "new points after the last payout")
    await devnet.win_block(farmer)

    async def paid_to_new_address() -> bool:
        return await coins_at(devnet, new_puzzle_hash) > 0

    await drive_until(devnet, paid_to_new_address, "payment to the new payout address", farm_every=2)


async def test_partials_are_confirmed_while_the_pool_wallet_is_away(devnet: Devnet) -> None:
    """The pool's wallet becomes unreachable for several confirmation delays while the real farmer keeps sending
    partials: none is rejected, they are credited meanwhile (only the node is needed), and payouts resume after."""
    rejected_before = await farmer_partials(devnet, PartialStatus.REJECTED)
    confirmed_before = await farmer_partials(devnet, PartialStatus.CONFIRMED)
    await devnet.ctx.wallet.close()
    away_since = time.monotonic()

    async def confirmed_while_away() -> bool:
        away_long_enough = time.monotonic() - away_since > 3 * devnet.config.partials.confirmation_delay
        return away_long_enough and await farmer_partials(devnet, PartialStatus.CONFIRMED) >= confirmed_before + 3

    try:
        await drive_until(devnet, confirmed_while_away, "partials confirmed with the wallet away")
    finally:
        devnet.ctx.wallet = await WalletRpc.connect(devnet.ctx.config.chain)
    assert await farmer_partials(devnet, PartialStatus.REJECTED) == rejected_before


async def test_the_first_node_stops_and_the_next_one_takes_every_partial(devnet: FlakyNodeDevnet) -> None:
    """The pool's first node stops for several confirmation delays while the real farmer keeps sending partials: the
    pool asks the next node (chain.full_nodes), refuses none and loses none; the first node comes back."""
    assert devnet.proxy is not None and isinstance(devnet.ctx.node, FailoverFullNode)
    rejected_before = await farmer_partials(devnet, PartialStatus.REJECTED)
    confirmed_before = await farmer_partials(devnet, PartialStatus.CONFIRMED)
    await devnet.proxy.stop()
    stopped_at = time.monotonic()

    async def confirmed_while_stopped() -> bool:
        long_enough = time.monotonic() - stopped_at > 3 * devnet.config.partials.confirmation_delay
        return long_enough and await farmer_partials(devnet, PartialStatus.CONFIRMED) >= confirmed_before + 3

    try:
        await drive_until(devnet, confirmed_while_stopped, "partials confirmed with the first node stopped")
        assert devnet.ctx.node.in_use.port == devnet.world.full_node_rpc.port
    finally:
        await devnet.proxy.start()  # on the same port: the first node is back
    assert await farmer_partials(devnet, PartialStatus.REJECTED) == rejected_before
    # Refused at intake: none beyond the protocol's own answers (the last test checks the farmer's view of it).


async def test_with_a_fifth_of_the_nodes_look_ups_refused_every_partial_is_accepted_credited_and_paid(
    devnet: FlakyNodeDevnet, node: RpcFullNode
) -> None:
    """Everything so far ran against a node refusing a fifth of its coin and puzzle look-ups: the real farmer was
    refused no partial, every partial it sent is credited, every reward won was claimed, and the chain shows exactly
    the payments of the ledger, no more than was claimed."""
    assert devnet.proxy is not None
    refused = sum(devnet.proxy.refused.values())
    assert refused > 0 and refused <= devnet.proxy.calls, describe(devnet.proxy.refused)
    record = await farmer_record(devnet)
    state = devnet.farmer.pool_state(record.p2_singleton_puzzle_hash)
    assert state is not None
    # The farmer learns it must register from GET /farmer's FARMER_NOT_KNOWN, before the pool knew it, and a proof
    # sent at the difficulty it knew just before the pool raised it is PROOF_NOT_GOOD_ENOUGH (it then reads its new
    # difficulty): the protocol's own answers. Nothing else was refused.
    expected = {PoolErrorCode.FARMER_NOT_KNOWN.value, PoolErrorCode.PROOF_NOT_GOOD_ENOUGH.value}
    errors = state["pool_errors_24h"]
    assert all(response["error_code"] in expected for _, response in errors), errors
    assert state["invalid_partials_since_start"] == 0
    sent = state["valid_partials_since_start"]

    async def settled() -> bool:
        return await farmer_partials(devnet, PartialStatus.PENDING) == 0

    await wait_until(settled, "every partial the farmer sent settled")
    assert await farmer_partials(devnet, PartialStatus.CONFIRMED) == await farmer_partials(devnet) >= sent > 0

    store = devnet.ctx.store
    rewards = [
        r
        for r in await node.coin_records_by_puzzle_hashes([record.p2_singleton_puzzle_hash], include_spent=True)
        if r.coinbase and is_pool_reward(devnet.ctx, r)
    ]
    claims = await store.reward_claims(ClaimStatus.CONFIRMED)
    assert len(rewards) == devnet.blocks_won and {c.coin_id for c in claims} == {r.coin.name() for r in rewards}
    ledger = await store.ledger()
    assert ledger.balanced and ledger.confirmed_claims == sum(c.amount for c in claims)
    assert ledger.farmer_payments + ledger.pool_fee_payments + ledger.blockchain_fees <= ledger.confirmed_claims
    # The chain: each confirmed batch made its payments with exactly one version; each claim's reward reached us.
    config = devnet.ctx.config
    await store_agrees_with_chain(store, node, config.pool.target_puzzle_hash, devnet.ctx.constants.MAX_BLOCK_COST_CLVM)


async def test_restart_loses_nothing(devnet: Devnet) -> None:
    store_before = devnet.ctx.store
    launcher_id = devnet.farmers[0].plotnft.launcher_id
    partials_before = await store_before.recent_partials(launcher_id, since=0)
    points_before = (await farmer_record(devnet)).points
    rounds_before = await store_before.rounds()

    await devnet.restart_pool()

    store_after = devnet.ctx.store
    assert store_after is not store_before
    partials_after = await store_after.recent_partials(launcher_id, since=0)
    assert {p.proof_hash for p in partials_before} <= {p.proof_hash for p in partials_after}
    assert (await farmer_record(devnet)).points >= points_before
    assert [r.id for r in await store_after.rounds()][: len(rounds_before)] == [r.id for r in rounds_before]
    count = len(partials_after)

    async def new_partials() -> bool:
        return await farmer_partials(devnet) > count

    await drive_until(devnet, new_partials, "partials accepted after the restart")


async def test_farmer_that_leaves_stops_earning(devnet: Devnet) -> None:
    farmer = devnet.farmers[0]
    await devnet.world.leave_pool(farmer.plotnft, complete=True)

    async def no_longer_member() -> bool:
        return not (await farmer_record(devnet)).is_pool_member

    await drive_until(devnet, no_longer_member, "pool sees the farmer left", farm_every=2)
    # Partials still pending when it left are not credited; from now on nothing is. The chain holds still until
    # they are settled, so that the figures below are taken after them.

    async def none_pending() -> bool:
        return await farmer_partials(devnet, PartialStatus.PENDING) == 0

    await wait_until(none_pending, "partials pending when the farmer left settled")
    points = (await farmer_record(devnet)).points
    confirmed = await farmer_partials(devnet, PartialStatus.CONFIRMED)
    for _ in range(12):
        await devnet.signage_point(pause=0.2)
    await asyncio.sleep(devnet.config.partials.confirmation_delay + 2)
    assert (await farmer_record(devnet)).points <= points  # a payout round may consume points; nothing adds any
    assert await farmer_partials(devnet, PartialStatus.CONFIRMED) == confirmed
