"""The chain: farming blocks, reorgs, and the signage points and end of sub-slots a timelord would announce.

The simulator's node has no timelord: this part builds each block with BlockTools and injects signage points and end
of sub-slot bundles into the node itself, so that farmers connected to it hear of them as on a real network.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import cast

from chia_rs import FullBlock
from chia_rs.sized_bytes import bytes32
from chia_rs.sized_ints import uint8, uint32

from pool.chia_adapter.simulation import (
    BlockchainMutexPriority,
    FarmNewBlockProtocol,
    PeerInfo,
    ReorgProtocol,
    RespondEndOfSubSlot,
    RespondSignagePoint,
    WSChiaConnection,
    calculate_sp_interval_iters,
    get_signage_point,
)
from pool.devnet.base import _WAIT_SECONDS, WorldBase
from pool.devnet.network import BURN_PUZZLE_HASH


@dataclass(frozen=True)
class SignagePointInfo:
    # The challenge chain sub-slot challenge the proofs of space are computed against.
    challenge_hash: bytes32
    # The challenge chain signage point hash (the partial's sp_hash); equals challenge_hash for an end of sub-slot.
    sp_hash: bytes32
    index: int
    end_of_sub_slot: bool
    reward_chain_hash: bytes32
    peak_height: int


class _LocalPeer:
    """Stands in for the timelord connection that normally delivers signage points and end of sub-slots.

    The full node only uses it to exclude the sender when it relays, and to decide about banning (never localhost).
    """

    peer_node_id = bytes32(b"\x00" * 32)
    peer_info = PeerInfo("127.0.0.1", 0)

    def get_peer_logging(self) -> PeerInfo:
        return self.peer_info


_LOCAL_PEER = cast(WSChiaConnection, _LocalPeer())


class ChainMixin(WorldBase):
    """Farming, reorgs and signage points of a World."""

    # ------------------------------------------------------------------ chain

    async def farm_blocks(
        self,
        count: int,
        to_puzzle_hash: bytes32 | None = None,
        *,
        pool_reward_puzzle_hash: bytes32 | None = None,
        skip_slots: int = 0,
    ) -> int:
        """Farm ``count`` transaction blocks, returning the new peak height once both wallets are synced.

        Rewards go to ``to_puzzle_hash`` (farmer and pool share), or the pool share to ``pool_reward_puzzle_hash``
        when given (e.g. a PlotNFT's p2_singleton puzzle hash, to make claimable pool rewards). A block's rewards are
        paid in the next transaction block.
        """
        farmer_ph = to_puzzle_hash or BURN_PUZZLE_HASH
        pool_ph = pool_reward_puzzle_hash or farmer_ph
        for _ in range(count):
            await self._farm_block(farmer_ph, pool_ph, skip_slots=skip_slots)
        await self.wait_for_wallets_synced()
        return self.peak_height

    async def _farm_block(
        self, farmer_ph: bytes32, pool_ph: bytes32, *, skip_slots: int = 0, announce_end_of_sub_slots: bool = False
    ) -> FullBlock:
        """Farm one transaction block with the mempool's spends (the simulator's own loop, with our knobs)."""
        sim = self.simulator
        blockchain = sim.full_node.blockchain
        if blockchain.get_peak() is None:
            # The simulator knows how to make and validate the genesis block.
            return await sim.farm_new_transaction_block(FarmNewBlockProtocol(farmer_ph))
        async with blockchain.priority_mutex.acquire(priority=BlockchainMutexPriority.high):
            curr = blockchain.get_peak()
            assert curr is not None
            while not curr.is_transaction_block:
                curr = blockchain.block_record(curr.prev_hash)
            bundle = sim.full_node.mempool_manager.create_bundle_from_mempool(curr.header_hash)
            block = self.block_tools.get_consecutive_blocks(
                1,
                block_list_input=await sim.get_all_full_blocks(),
                farmer_reward_puzzle_hash=farmer_ph,
                pool_reward_puzzle_hash=pool_ph,
                transaction_data=None if bundle is None else bundle[0],
                guarantee_transaction_block=True,
                skip_slots=skip_slots,
                min_signage_point=self._last_announced_sp_index(),
            )[-1]
        if announce_end_of_sub_slots and len(block.finished_sub_slots) == 1:
            # As a timelord would: the node learns the finished sub-slot before the block, and tells farmers. Not when
            # the block finishes several (a sub-slot went by without a block): once such a block is in, chia's node
            # finds only the last of them in the chain and reports the others "reverted" (get_recent_signage_point_or
            # _eos looks at a block's last finished sub-slot only), so the farmer's partials for them would be
            # refused. The node learns them from the block itself.
            await sim.respond_end_of_sub_slot(RespondEndOfSubSlot(block.finished_sub_slots[0]), _LOCAL_PEER)
        await sim.full_node.add_block(block)
        return block

    def _last_announced_sp_index(self) -> int:
        """The last signage point index announced in the peak's sub-slot (-1: none yet).

        A new block must be infused after it, as on a real network, where a timelord announces signage points in
        order of time: a block infused before an announced point would make the farmer see that point again with
        another reward chain hash (and send its proofs twice), and make the node report the point reverted.
        """
        peak = self.simulator.full_node.blockchain.get_peak()
        if peak is None or peak.header_hash != self._sp_peak:
            return -1
        return self._next_sp_index - 1

    async def wait_for_wallets_synced(self, timeout: float = _WAIT_SECONDS) -> None:
        nodes = [wallet.service._node for wallet in self._wallets.values()]
        await self.simulator.wait_for_wallets_synced(wallet_nodes=nodes, timeout=timeout)

    async def reorg(self, fork_height: int, new_peak_height: int | None = None) -> int:
        """Replace the blocks above ``fork_height`` with a heavier chain (default: one block longer).

        Signage points injected on the old chain read ``reverted`` on the node when the new chain no longer holds
        their sub-slot; one that stays within the point's sub-slot may keep it (chia's challenge chain is the same).
        """
        old_peak = self.peak_height
        new_peak = old_peak + 1 if new_peak_height is None else new_peak_height
        if not 0 <= fork_height < old_peak < new_peak:
            raise ValueError(f"cannot reorg from {fork_height} to {new_peak} with the peak at {old_peak}")
        # A random seed gives a different chain than the one being replaced.
        seed = bytes32(self._rng.randbytes(32))
        request = ReorgProtocol(uint32(fork_height), uint32(new_peak), BURN_PUZZLE_HASH, seed)
        await self.simulator.reorg_from_index_to_new_index(request)
        await self.wait_for_wallets_synced()
        return self.peak_height

    # ------------------------------------------------------------------ signage points

    async def new_signage_point(self) -> SignagePointInfo:
        """Inject the next signage point of the peak's sub-slot into the node, as a timelord would.

        Only indices after the peak's infusion point (earlier ones may later read `reverted`) and below the overflow
        range (13-15 are refused without a finished sub-slot). When the sub-slot is used up, a block is farmed in a new
        sub-slot: a block in the same sub-slot would give no new proofs.
        """
        peak = self.simulator.full_node.blockchain.get_peak()
        assert peak is not None
        if peak.header_hash != self._sp_peak:
            interval = calculate_sp_interval_iters(self.constants, peak.sub_slot_iters)
            self._sp_peak = peak.header_hash
            self._next_sp_index = int(peak.ip_iters(self.constants)) // int(interval) + 1
        if self._next_sp_index > self._last_injectable_index:
            await self._farm_block(BURN_PUZZLE_HASH, BURN_PUZZLE_HASH, skip_slots=1, announce_end_of_sub_slots=True)
            await self.wait_for_wallets_synced()
            return await self.new_signage_point()
        return await self._inject_signage_point(self._next_sp_index)

    @property
    def _last_injectable_index(self) -> int:
        return int(self.constants.NUM_SPS_SUB_SLOT - self.constants.NUM_SP_INTERVALS_EXTRA) - 1

    async def _inject_signage_point(self, index: int) -> SignagePointInfo:
        full_node = self.simulator.full_node
        peak = full_node.blockchain.get_peak()
        assert peak is not None
        sp = get_signage_point(
            self.constants,
            full_node.blockchain,
            peak,
            peak.ip_sub_slot_total_iters(self.constants),
            uint8(index),
            [],
            peak.sub_slot_iters,
        )
        assert sp.cc_vdf is not None and sp.cc_proof is not None
        assert sp.rc_vdf is not None and sp.rc_proof is not None
        request = RespondSignagePoint(uint8(index), sp.cc_vdf, sp.cc_proof, sp.rc_vdf, sp.rc_proof)
        await self.simulator.respond_signage_point(request, _LOCAL_PEER)
        sp_hash = sp.cc_vdf.output.get_hash()
        if full_node.full_node_store.get_signage_point(sp_hash) is None:
            raise RuntimeError(f"the node refused signage point {index} at height {peak.height}")
        self._next_sp_index = index + 1
        return SignagePointInfo(
            challenge_hash=sp.cc_vdf.challenge,
            sp_hash=sp_hash,
            index=index,
            end_of_sub_slot=False,
            reward_chain_hash=sp.rc_vdf.output.get_hash(),
            peak_height=int(peak.height),
        )

    async def replay_signage_point(self, request: RespondSignagePoint) -> None:
        """Announce a signage point recorded on an identical chain (the benchmark replays its corpus this way)."""
        await self.simulator.respond_signage_point(request, _LOCAL_PEER)
        sp_hash = request.challenge_chain_vdf.output.get_hash()
        if self.simulator.full_node.full_node_store.get_signage_point(sp_hash) is None:
            raise RuntimeError(f"the node refused the replayed signage point {request.index_from_challenge}")

    async def replay_block(self, block: FullBlock) -> None:
        """Announce a recorded block's ends of sub-slot, then add the block, as the timelord and a farmer would."""
        for end_of_sub_slot in block.finished_sub_slots:
            await self.simulator.respond_end_of_sub_slot(RespondEndOfSubSlot(end_of_sub_slot), _LOCAL_PEER)
        await self.simulator.full_node.add_block(block)
        peak = self.simulator.full_node.blockchain.get_peak()
        if peak is None or peak.header_hash != block.header_hash:
            raise RuntimeError(f"the node did not take the replayed block at height {block.height}")

    def recorded_signage_point(self, sp_hash: bytes32) -> RespondSignagePoint:
        """The announcement of a signage point the node knows, as it would travel between nodes."""
        sp = self.simulator.full_node.full_node_store.get_signage_point(sp_hash)
        assert sp is not None and sp.cc_vdf is not None and sp.cc_proof is not None
        assert sp.rc_vdf is not None and sp.rc_proof is not None
        index = self._next_sp_index - 1
        return RespondSignagePoint(uint8(index), sp.cc_vdf, sp.cc_proof, sp.rc_vdf, sp.rc_proof)

    async def end_of_sub_slot(self) -> SignagePointInfo:
        """Finish the current sub-slot: announce its end of sub-slot bundle, then farm a block in the next one.

        The returned info is the end of sub-slot as farmers see it (index 0, sp_hash = the sub-slot challenge hash).
        """
        block = await self._farm_block(BURN_PUZZLE_HASH, BURN_PUZZLE_HASH, skip_slots=1, announce_end_of_sub_slots=True)
        while len(block.finished_sub_slots) != 1:  # not announced (see _farm_block): try the next sub-slot
            block = await self._farm_block(
                BURN_PUZZLE_HASH, BURN_PUZZLE_HASH, skip_slots=1, announce_end_of_sub_slots=True
            )
        await self.wait_for_wallets_synced()
        end_of_sub_slot = block.finished_sub_slots[-1]
        challenge = end_of_sub_slot.challenge_chain.get_hash()
        return SignagePointInfo(
            challenge_hash=challenge,
            sp_hash=challenge,
            index=0,
            end_of_sub_slot=True,
            reward_chain_hash=end_of_sub_slot.reward_chain.get_hash(),
            peak_height=int(block.height),
        )
