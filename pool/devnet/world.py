"""A simulated Chia chain in one process: the world the pool's tests and its demo run against.

Built on chia's own simulator helpers (BlockTools, the simulator full node, wallet services, the real farmer and
harvester). The node has no timelord, so the world itself farms blocks and injects signage points and end of sub-slot
bundles, exactly as a timelord would announce them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import shutil
import time
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, cast

from chia_rs import AugSchemeMPL, ConsensusConstants, FullBlock, G1Element, G2Element, PrivateKey, ProofOfSpace
from chia_rs.sized_bytes import bytes32
from chia_rs.sized_ints import uint8, uint16, uint32, uint64

from pool.chia_adapter import (
    SINGLETON_LAUNCHER_HASH,
    Addition,
    Coin,
    CoinSpend,
    CreateSignedTransaction,
    PoolState,
    PushTX,
    WalletSpendBundle,
    create_full_puzzle,
    launcher_id_to_p2_puzzle_hash,
    pool_state_to_inner_puzzle,
)
from pool.chia_adapter.simulation import (
    DEFAULT_CONSTANTS,
    DEFAULT_TX_CONFIG,
    SINGLETON_LAUNCHER,
    BlockchainMutexPriority,
    BlockTools,
    CreateNewWallet,
    CreateNewWalletType,
    FarmerService,
    FarmNewBlockProtocol,
    FullNodeSimulator,
    GetNextAddress,
    GetTransaction,
    GetWalletBalance,
    GetWallets,
    HarvesterService,
    NewPoolWalletInitialTargetState,
    NodeType,
    Params,
    PeerInfo,
    PlotKeys,
    PoolingShareState,
    PoolSingletonState,
    PoolWalletInfo,
    Program,
    ProverProtocol,
    PWSelfPool,
    PWStatus,
    ReorgProtocol,
    RespondEndOfSubSlot,
    RespondSignagePoint,
    SendTransaction,
    TempKeyring,
    UnresolvedPeerInfo,
    V1Prover,
    WalletCreationMode,
    WalletRpcClient,
    WalletService,
    WalletType,
    WSChiaConnection,
    calculate_pos_challenge,
    calculate_prefix_bits,
    calculate_sp_interval_iters,
    conditions_dict_for_solution,
    create_farmer_service,
    create_harvester_service,
    create_lock_and_load_config,
    create_plots,
    create_pool_state,
    create_travel_spend,
    decode_puzzle_hash,
    encode_puzzle_hash,
    find_authentication_sk,
    find_owner_sk,
    generate_plot_public_key,
    generate_taproot_sk,
    get_prover_from_file,
    get_signage_point,
    lock_and_load_config,
    make_pos,
    make_spend,
    master_sk_to_farmer_sk,
    master_sk_to_local_sk,
    master_sk_to_singleton_owner_sk,
    passes_plot_filter,
    pkm_pairs_for_conditions_dict,
    replace_str_to_bytes,
    save_config,
    setup_full_node,
    setup_wallet_node,
    std_hash,
    test_constants,
)

log = logging.getLogger(__name__)

# "simulator" in the network name makes chia's full node report itself synced without peers (chia dev sim uses it).
NETWORK = "simulator0"
# Section of chia's default config whose address prefix and port the devnet network reuses.
_TEMPLATE_NETWORK = "testnet0"
# A genesis of its own: signatures made on the devnet (AGG_SIG_ME) are worthless on any other chain.
DEVNET_GENESIS_CHALLENGE = std_hash(b"chia pool devnet genesis")
# Subfolder of chia's test plot cache (<chia root's parent>/test-plots). A folder of its own, because BlockTools
# insists that a plot folder holds exactly the plots it created, and other test runs share test-plots/.
PLOT_DIR_NAME = "test-plots/pool-devnet"
POOL_PLOT_SIZE = 20
# Pool plot folders kept in the cache (one per p2_singleton puzzle hash, ~80 MB for 3 plots; each fresh PlotNFT
# adds one).
_POOL_PLOT_DIRS_KEPT = 6
# The farmer wallet uses the key BlockTools plots and farms with, so the farmer service holds the PlotNFT owner key.
_FARMER_KEY_ENTROPY = std_hash(b"block_tools farmer key")
_POOL_WALLET_KEY_ENTROPY = std_hash(b"chia pool devnet pool wallet")
# Rewards of blocks nobody should own (plain farm_blocks calls) go here.
BURN_PUZZLE_HASH = std_hash(b"chia pool devnet burn")
_WAIT_SECONDS = 60.0


@dataclass(frozen=True)
class RpcEndpoint:
    """Where an RPC service listens, and the chia root whose config.yaml and SSL certificates a client needs."""

    host: str
    port: int
    root_path: Path


@dataclass(frozen=True)
class PlotNFTInfo:
    launcher_id: bytes32
    p2_singleton_puzzle_hash: bytes32
    owner_public_key: G1Element
    owner_secret_key: PrivateKey
    # The key the farmer signs GET /farmer, POST /partial etc. with (index 0, as chia's farmer uses).
    authentication_secret_key: PrivateKey
    wallet_id: int
    pool_url: str
    target_puzzle_hash: bytes32
    relative_lock_height: int


@dataclass(frozen=True)
class PoolPlot:
    """A k20 plot tied to a pool contract (p2_singleton) puzzle hash, with the keys that sign for it.

    The plot key is local_pk + farmer_pk + taproot_pk: the harvester signs with the local key, the farmer with the
    farmer key and the taproot key (chia's farmer_api does the same for partials).
    """

    path: Path
    plot_id: bytes32
    p2_singleton_puzzle_hash: bytes32
    local_secret_key: PrivateKey
    farmer_secret_key: PrivateKey
    plot_public_key: G1Element

    def harvester_signature(self, message: bytes) -> G2Element:
        return AugSchemeMPL.sign(self.local_secret_key, message, self.plot_public_key)

    def farmer_signature(self, message: bytes) -> G2Element:
        taproot_sk = generate_taproot_sk(self.local_secret_key.get_g1(), self.farmer_secret_key.get_g1())
        return AugSchemeMPL.aggregate(
            [
                AugSchemeMPL.sign(self.farmer_secret_key, message, self.plot_public_key),
                AugSchemeMPL.sign(taproot_sk, message, self.plot_public_key),
            ]
        )

    def sign(self, message: bytes) -> G2Element:
        """The full plot key signature of ``message``, as harvester and farmer build it together."""
        return AugSchemeMPL.aggregate([self.harvester_signature(message), self.farmer_signature(message)])


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


@dataclass(frozen=True)
class FoundProof:
    proof_of_space: ProofOfSpace
    plot: PoolPlot
    quality_string: bytes32


@dataclass
class FarmerHandle:
    """A real chia farmer and harvester (in this process) farming only the given pool plots."""

    farmer_service: FarmerService
    harvester_service: HarvesterService
    farmer_root: Path
    harvester_root: Path
    farmer_rpc: RpcEndpoint
    plots: list[PoolPlot] = field(default_factory=list)

    @property
    def received_sp_hashes(self) -> set[bytes32]:
        """Signage point hashes (challenge chain) the farmer has received from the node."""
        return set(self.farmer_service._node.sps.keys())

    async def wait_for_signage_point(self, sp_hash: bytes32, timeout: float = 10.0) -> None:
        await _wait_until(lambda: _ready(sp_hash in self.received_sp_hashes), timeout, "farmer signage point")

    def pool_state(self, p2_singleton_puzzle_hash: bytes32) -> dict[str, Any] | None:
        """The farmer's in-memory pool state for a PlotNFT (difficulty, points, partial counters ...)."""
        return self.farmer_service._node.pool_state.get(p2_singleton_puzzle_hash)


def devnet_constants(discriminant_bits: int) -> ConsensusConstants:
    """chia's test constants on a genesis of their own, with a real-size discriminant.

    chia's 16-bit test discriminant makes signage point hashes repeat within a sub-slot; a 1024-bit one gives distinct
    signage points at about half a second of VDF work per block.
    """
    base = test_constants.replace(DISCRIMINANT_SIZE_BITS=uint16(discriminant_bits))
    genesis = DEVNET_GENESIS_CHALLENGE.hex()
    # AGG_SIG_ME_ADDITIONAL_DATA = genesis, and the other AGG_SIG_* data derived from it, as chia's networks do.
    return replace_str_to_bytes(base, GENESIS_CHALLENGE=genesis, AGG_SIG_ME_ADDITIONAL_DATA=genesis)


def constants_overrides(constants: ConsensusConstants) -> dict[str, Any]:
    """The `network_overrides.constants.<network>` entry that rebuilds ``constants`` from chia's DEFAULT_CONSTANTS."""
    wanted = constants.to_json_dict()
    default = DEFAULT_CONSTANTS.to_json_dict()
    overrides: dict[str, Any] = {}
    for name, value in wanted.items():
        if value != default[name]:
            # chia writes hex without the 0x prefix in config.yaml; replace_str_to_bytes accepts both.
            overrides[name] = value.removeprefix("0x") if isinstance(value, str) else value
    return overrides


def _apply_network(config: dict[str, Any], overrides: dict[str, Any]) -> None:
    """Point every section of a chia config at the devnet network and describe its constants."""
    network_overrides = config["network_overrides"]
    network_overrides["constants"][NETWORK] = dict(overrides)
    network_overrides["config"][NETWORK] = dict(network_overrides["config"][_TEMPLATE_NETWORK])
    config["selected_network"] = NETWORK
    for section in config.values():
        # Every service section has its own selected_network; the farmer, for one, reads full_node's to decide
        # whether pool URLs must be https.
        if isinstance(section, dict) and "selected_network" in section:
            section["selected_network"] = NETWORK
        if isinstance(section, dict) and "network_overrides" in section:
            section["network_overrides"] = network_overrides


async def _ready(value: bool) -> bool:
    return value


async def _wait_until(predicate: Callable[[], Awaitable[bool]], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not await predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout} s waiting for {what}")
        await asyncio.sleep(0.05)


class _LocalPeer:
    """Stands in for the timelord connection that normally delivers signage points and end of sub-slots.

    The full node only uses it to exclude the sender when it relays, and to decide about banning (never localhost).
    """

    peer_node_id = bytes32(b"\x00" * 32)
    peer_info = PeerInfo("127.0.0.1", 0)

    def get_peer_logging(self) -> PeerInfo:
        return self.peer_info


_LOCAL_PEER = cast(WSChiaConnection, _LocalPeer())


@dataclass
class _Wallet:
    service: WalletService
    client: WalletRpcClient
    endpoint: RpcEndpoint
    fingerprint: int


class World:
    """A simulator full node with a pool wallet and a farmer wallet; optionally a real farmer and harvester.

    Use as ``async with World.create(work_dir=...) as world:``. Everything it writes lives under ``work_dir`` except
    plots, which are cached in chia's test plot folder.
    """

    network: str = NETWORK

    def __init__(
        self,
        *,
        work_dir: Path,
        discriminant_bits: int = 1024,
        farming_plots: int = 8,
        self_hostname: str = "127.0.0.1",
    ) -> None:
        self.work_dir = work_dir
        self.self_hostname = self_hostname
        self.constants: ConsensusConstants = devnet_constants(discriminant_bits)
        self._farming_plots = farming_plots
        self._stack = AsyncExitStack()
        self._bt: BlockTools | None = None
        self._sim: FullNodeSimulator | None = None
        self._wallets: dict[str, _Wallet] = {}
        self._provers: dict[Path, ProverProtocol] = {}
        # Signage point injection state: the peak the next index belongs to, and that index.
        self._sp_peak: bytes32 | None = None
        self._next_sp_index = 0
        self._rng = random.Random()
        self.full_node_rpc: RpcEndpoint
        self.pool_target_puzzle_hash: bytes32

    @classmethod
    def create(
        cls, *, work_dir: Path, discriminant_bits: int = 1024, farming_plots: int = 8, self_hostname: str = "127.0.0.1"
    ) -> World:
        return cls(
            work_dir=work_dir,
            discriminant_bits=discriminant_bits,
            farming_plots=farming_plots,
            self_hostname=self_hostname,
        )

    # ------------------------------------------------------------------ lifecycle

    async def __aenter__(self) -> World:
        try:
            await self._start()
        except BaseException:
            await self._stack.aclose()
            raise
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self._stack.aclose()

    async def _start(self) -> None:
        started = time.monotonic()
        self.work_dir.mkdir(parents=True, exist_ok=True)
        for name in ("node", "pool_wallet", "farmer_wallet", "farmer", "harvester"):
            # The chain lives in memory, so nothing from an earlier run is worth keeping (and stale ports would lie).
            shutil.rmtree(self.work_dir / name, ignore_errors=True)
        keychain = self._stack.enter_context(TempKeyring(populate=True))
        bt = self._block_tools(self.work_dir / "node", keychain)
        await bt.setup_keys()
        await bt.setup_plots(
            num_og_plots=self._farming_plots, num_pool_plots=0, num_non_keychain_plots=0, num_v2_plots=0
        )
        self._bt = bt
        node = await self._stack.enter_async_context(
            setup_full_node(self.constants, "blockchain.sqlite", self.self_hostname, bt, simulator=True, db_version=2)
        )
        api = node._api
        assert isinstance(api, FullNodeSimulator)
        self._sim = api
        assert node.rpc_server is not None
        self.full_node_rpc = RpcEndpoint(self.self_hostname, node.rpc_server.listen_port, bt.root_path)
        self._record_ports(bt.root_path, "full_node", rpc_port=node.rpc_server.listen_port, port=self.full_node_port)
        self._wallets["pool"] = await self._start_wallet("pool_wallet", _POOL_WALLET_KEY_ENTROPY)
        self._wallets["farmer"] = await self._start_wallet("farmer_wallet", _FARMER_KEY_ENTROPY)
        # The PlotNFT owner key must be one the farmer service (BlockTools' keychain) holds.
        assert self._wallets["farmer"].fingerprint == bt.farmer_master_sk.get_g1().get_fingerprint()
        await self._farm_block(BURN_PUZZLE_HASH, BURN_PUZZLE_HASH)
        await self.wait_for_wallets_synced()
        self.pool_target_puzzle_hash = await self._wallet_address("pool")
        log.info("devnet world started in %.1f s", time.monotonic() - started)

    def _block_tools(self, root_path: Path, keychain: Any = None) -> BlockTools:
        """A BlockTools on ``root_path`` (chia config + SSL certificates) switched to the devnet network."""
        bt = BlockTools(self.constants, root_path=root_path, keychain=keychain, plot_dir=PLOT_DIR_NAME)
        self._stack.enter_context(bt)
        config = bt.config
        _apply_network(config, constants_overrides(self.constants))
        bt.change_config(config)
        if bt.constants != self.constants:
            raise RuntimeError("the devnet config.yaml does not rebuild the devnet consensus constants")
        return bt

    async def _start_wallet(self, name: str, key_entropy: bytes32) -> _Wallet:
        wallet_bt = self._block_tools(self.work_dir / name)
        service = await self._stack.enter_async_context(
            setup_wallet_node(self.self_hostname, self.constants, wallet_bt, key_seed=key_entropy)
        )
        wallet_node = service._node
        # A trusted node lets the wallet skip proof checks: it syncs in milliseconds instead of seconds.
        node_id = self.simulator.full_node.server.node_id.hex()
        wallet_node.config["trusted_peers"] = {node_id: node_id}
        await wallet_node.server.start_client(PeerInfo(self.self_hostname, self.full_node_port), None)
        assert service.rpc_server is not None
        port = service.rpc_server.listen_port
        client = await self._stack.enter_async_context(
            WalletRpcClient.create_as_context(self.self_hostname, uint16(port), wallet_bt.root_path, service.config)
        )
        self._record_ports(wallet_bt.root_path, "wallet", rpc_port=port)
        assert wallet_node.logged_in_fingerprint is not None
        endpoint = RpcEndpoint(self.self_hostname, port, wallet_bt.root_path)
        return _Wallet(service, client, endpoint, wallet_node.logged_in_fingerprint)

    @staticmethod
    def _record_ports(root_path: Path, section: str, *, rpc_port: int, port: int | None = None) -> None:
        """Write the ports chosen at start-up into config.yaml, so a separate process reading it finds the service."""
        with lock_and_load_config(root_path, "config.yaml") as config:
            # int(): chia hands out uint16 ports, which yaml cannot write.
            config[section]["rpc_port"] = int(rpc_port)
            if port is not None:
                config[section]["port"] = int(port)
            save_config(root_path, "config.yaml", config)

    # ------------------------------------------------------------------ accessors

    @property
    def block_tools(self) -> BlockTools:
        assert self._bt is not None, "the world is not started"
        return self._bt

    @property
    def simulator(self) -> FullNodeSimulator:
        assert self._sim is not None, "the world is not started"
        return self._sim

    @property
    def full_node_port(self) -> int:
        port = self.simulator.full_node.server.get_port()
        assert port is not None
        return int(port)

    @property
    def pool_wallet_rpc(self) -> RpcEndpoint:
        return self._wallets["pool"].endpoint

    @property
    def farmer_wallet_rpc(self) -> RpcEndpoint:
        return self._wallets["farmer"].endpoint

    @property
    def pool_wallet_client(self) -> WalletRpcClient:
        return self._wallets["pool"].client

    @property
    def farmer_wallet_client(self) -> WalletRpcClient:
        return self._wallets["farmer"].client

    @property
    def pool_wallet_fingerprint(self) -> int:
        return self._wallets["pool"].fingerprint

    @property
    def farmer_wallet_fingerprint(self) -> int:
        return self._wallets["farmer"].fingerprint

    @property
    def farmer_secret_key(self) -> PrivateKey:
        """The farmer key the pool plots are made with and the farmer service signs with."""
        return master_sk_to_farmer_sk(self.block_tools.farmer_master_sk)

    @property
    def peak_height(self) -> int:
        height = self.simulator.full_node.blockchain.get_peak_height()
        return -1 if height is None else int(height)

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
            )[-1]
        if announce_end_of_sub_slots:
            # As a timelord would: the node learns each finished sub-slot before the block, and tells farmers.
            for end_of_sub_slot in block.finished_sub_slots:
                await sim.respond_end_of_sub_slot(RespondEndOfSubSlot(end_of_sub_slot), _LOCAL_PEER)
        await sim.full_node.add_block(block)
        return block

    async def wait_for_wallets_synced(self, timeout: float = _WAIT_SECONDS) -> None:
        nodes = [wallet.service._node for wallet in self._wallets.values()]
        await self.simulator.wait_for_wallets_synced(wallet_nodes=nodes, timeout=timeout)

    async def reorg(self, fork_height: int, new_peak_height: int | None = None) -> int:
        """Replace the blocks above ``fork_height`` with a heavier chain (default: one block longer).

        Signage points injected on the old chain then read ``reverted`` on the node.
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

    async def end_of_sub_slot(self) -> SignagePointInfo:
        """Finish the current sub-slot: announce its end of sub-slot bundle, then farm a block in the next one.

        The returned info is the end of sub-slot as farmers see it (index 0, sp_hash = the sub-slot challenge hash).
        """
        block = await self._farm_block(BURN_PUZZLE_HASH, BURN_PUZZLE_HASH, skip_slots=1, announce_end_of_sub_slots=True)
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

    def proofs_for_signage_point(self, plots: list[PoolPlot], sp: SignagePointInfo) -> list[FoundProof]:
        """Every proof of space the plots hold for the signage point, as a harvester would look them up.

        Applies the plot filter of the devnet constants; no difficulty check (that is the pool's job).
        """
        found: list[FoundProof] = []
        for plot in plots:
            prover = self._prover(plot.path)
            prefix_bits = calculate_prefix_bits(self.constants, uint32(sp.peak_height), prover.get_param())
            if not passes_plot_filter(prefix_bits, plot.plot_id, sp.challenge_hash, sp.sp_hash):
                continue
            pos_challenge = calculate_pos_challenge(plot.plot_id, sp.challenge_hash, sp.sp_hash)
            for index, quality in enumerate(prover.get_qualities_for_challenge(pos_challenge)):
                assert isinstance(prover, V1Prover)
                proof = prover.get_full_proof(pos_challenge, index)
                pos = make_pos(
                    pos_challenge,
                    None,
                    plot.p2_singleton_puzzle_hash,
                    plot.plot_public_key,
                    prover.get_param(),
                    proof,
                )
                found.append(FoundProof(pos, plot, quality.get_string()))
        return found

    def _prover(self, path: Path) -> ProverProtocol:
        if path not in self._provers:
            self._provers[path] = get_prover_from_file(str(path))
        return self._provers[path]

    # ------------------------------------------------------------------ wallets and PlotNFTs

    async def _wallet_address(self, wallet: str) -> bytes32:
        client = self._wallets[wallet].client
        response = await client.get_next_address(GetNextAddress(wallet_id=uint32(1), new_address=False))
        return decode_puzzle_hash(response.address)

    async def _spendable(self, wallet: str) -> int:
        response = await self._wallets[wallet].client.get_wallet_balance(GetWalletBalance(wallet_id=uint32(1)))
        return int(response.wallet_balance.spendable_balance)

    async def fund_farmer_wallet(self, blocks: int = 2) -> int:
        """Farm ``blocks`` blocks to the farmer wallet; returns its spendable balance once the coins arrived."""
        address = await self._wallet_address("farmer")
        before = await self._spendable("farmer")
        await self.farm_blocks(blocks, address)
        # The last block's rewards are paid in the next transaction block.
        await self.farm_blocks(1)

        async def arrived() -> bool:
            return await self._spendable("farmer") > before

        await _wait_until(arrived, _WAIT_SECONDS, "farmer wallet funds")
        return await self._spendable("farmer")

    async def _farm_until(self, condition: Callable[[], Awaitable[bool]], what: str, max_blocks: int = 30) -> None:
        """Farm one block at a time until ``condition`` holds (a wallet state change needs its spend confirmed)."""
        for _ in range(max_blocks):
            if await condition():
                return
            await self.farm_blocks(1)
        if not await condition():
            raise TimeoutError(f"{what} did not happen within {max_blocks} blocks")

    async def _wait_in_mempool(self, transaction_ids: list[bytes32]) -> None:
        mempool = self.simulator.full_node.mempool_manager.mempool

        async def in_mempool() -> bool:
            return all(mempool.get_item_by_id(tx_id) is not None for tx_id in transaction_ids)

        await _wait_until(in_mempool, _WAIT_SECONDS, "transactions in the mempool")

    async def _confirm(self, wallet: str, transaction_ids: list[bytes32]) -> None:
        client = self._wallets[wallet].client

        async def confirmed() -> bool:
            for tx_id in transaction_ids:
                record = (await client.get_transaction(GetTransaction(transaction_id=tx_id))).transaction
                if not record.confirmed:
                    return False
            return True

        await self._farm_until(confirmed, "transaction confirmation")

    @staticmethod
    def _spend_ids(records: list[Any]) -> list[bytes32]:
        # Only records that carry a spend reach the mempool (the wallet also records incoming coins).
        return [record.name for record in records if record.spend_bundle is not None]

    async def _self_send_random_amount(self) -> None:
        """Move a random small amount to the farmer wallet itself and confirm it.

        The simulated chain is deterministic, so the same keys would make the same launcher every run. The PlotNFT
        launcher's parent is the smallest coin able to pay 1 mojo: after this, that is the random coin.
        """
        address = encode_puzzle_hash(await self._wallet_address("farmer"), "txch")
        amount = uint64(self._rng.randrange(1_000, 1_000_000))
        response = await self.farmer_wallet_client.send_transaction(
            SendTransaction(wallet_id=uint32(1), amount=amount, address=address, push=True), DEFAULT_TX_CONFIG
        )
        ids = self._spend_ids(response.transactions)
        await self._wait_in_mempool(ids)
        await self._confirm("farmer", ids)

    async def _pool_wallet_ids(self) -> set[int]:
        response = await self.farmer_wallet_client.get_wallets(GetWallets(type=uint16(WalletType.POOLING_WALLET)))
        return {int(wallet.id) for wallet in response.wallets}

    async def plotnft_status(self, wallet_id: int) -> PoolWalletInfo:
        response = await self.farmer_wallet_client.pw_status(PWStatus(wallet_id=uint32(wallet_id)))
        return response.state

    async def create_plotnft(
        self,
        *,
        pool_url: str,
        target_puzzle_hash: bytes32 | None = None,
        relative_lock_height: int = 5,
        fresh_launcher: bool = True,
    ) -> PlotNFTInfo:
        """Create a PlotNFT farming to a pool through the farmer wallet's RPC, and farm until it is confirmed.

        ``target_puzzle_hash`` defaults to the pool wallet's address (the pool's target). ``fresh_launcher`` makes a
        random self-send first so that the launcher_id differs from earlier runs.
        """
        target = target_puzzle_hash or self.pool_target_puzzle_hash
        if await self._spendable("farmer") < 1_000_000:
            await self.fund_farmer_wallet()
        if fresh_launcher:
            await self._self_send_random_amount()
        known = await self._pool_wallet_ids()
        response = await self.farmer_wallet_client.create_new_wallet(
            CreateNewWallet(
                wallet_type=CreateNewWalletType.POOL_WALLET,
                initial_target_state=NewPoolWalletInitialTargetState(
                    state=PoolSingletonState.FARMING_TO_POOL.name,
                    target_puzzle_hash=target,
                    pool_url=pool_url,
                    relative_lock_height=uint32(relative_lock_height),
                ),
                mode=WalletCreationMode.NEW,
                fee=uint64(0),
                push=True,
            ),
            DEFAULT_TX_CONFIG,
        )
        await self._wait_in_mempool(self._spend_ids(response.transactions))
        wallet_id = await self._wait_for_new_plotnft(known)
        return await self._plotnft_info(wallet_id)

    async def _wait_for_new_plotnft(self, known: set[int]) -> int:
        new_ids: list[int] = []

        async def farming_to_pool() -> bool:
            new_ids[:] = sorted((await self._pool_wallet_ids()) - known)
            if not new_ids:
                return False
            state = await self.plotnft_status(new_ids[-1])
            return bool(state.current.state == PoolSingletonState.FARMING_TO_POOL.value)

        await self._farm_until(farming_to_pool, "PlotNFT creation")
        return new_ids[-1]

    async def _plotnft_info(self, wallet_id: int) -> PlotNFTInfo:
        state = await self.plotnft_status(wallet_id)
        owner_pk = state.current.owner_pubkey
        master_sks = [self.block_tools.farmer_master_sk]
        owner = find_owner_sk(master_sks, owner_pk)
        authentication_sk = find_authentication_sk(master_sks, owner_pk)
        assert owner is not None and authentication_sk is not None, "the farmer key does not own the PlotNFT"
        return PlotNFTInfo(
            launcher_id=state.launcher_id,
            p2_singleton_puzzle_hash=state.p2_singleton_puzzle_hash,
            owner_public_key=owner_pk,
            owner_secret_key=owner[0],
            authentication_secret_key=authentication_sk,
            wallet_id=wallet_id,
            pool_url=state.current.pool_url or "",
            target_puzzle_hash=state.current.target_puzzle_hash,
            relative_lock_height=int(state.current.relative_lock_height),
        )

    async def leave_pool(self, plotnft: PlotNFTInfo, *, complete: bool = False) -> None:
        """Switch the PlotNFT to self-pooling through the farmer wallet's RPC.

        Returns once it is LEAVING_POOL on chain; with ``complete``, farms on until the wallet finished the move to
        SELF_POOLING (after the relative lock height).
        """
        response = await self.farmer_wallet_client.pw_self_pool(
            PWSelfPool(wallet_id=uint32(plotnft.wallet_id), fee=uint64(0), push=True), DEFAULT_TX_CONFIG
        )
        await self._wait_in_mempool(self._spend_ids(response.transactions))
        wanted = PoolSingletonState.SELF_POOLING if complete else PoolSingletonState.LEAVING_POOL

        async def reached() -> bool:
            state = await self.plotnft_status(plotnft.wallet_id)
            return bool(state.current.state == wanted.value)

        await self._farm_until(reached, f"PlotNFT {wanted.name}", max_blocks=30 + plotnft.relative_lock_height)

    # ------------------------------------------------------------------ plots

    async def create_pool_plots(self, p2_singleton_puzzle_hash: bytes32, count: int) -> list[PoolPlot]:
        """``count`` k20 plots tied to the pool contract ``p2_singleton_puzzle_hash``, signed by the farmer key.

        Cached in chia's test plot folder per puzzle hash: the same PlotNFT gets the same plots back without plotting.
        """
        plot_root = self.block_tools.plot_dir / "pool"
        plot_dir = plot_root / p2_singleton_puzzle_hash.hex()
        plots = [await self._pool_plot(plot_dir, p2_singleton_puzzle_hash, index) for index in range(count)]
        _prune_plot_dirs(plot_root, keep=plot_dir)
        return plots

    async def _pool_plot(self, plot_dir: Path, p2_singleton_puzzle_hash: bytes32, index: int) -> PoolPlot:
        farmer_sk = self.farmer_secret_key
        # The plot's local key decides its plot id: derive it from the contract and index so plots are reproducible.
        local_master_sk = AugSchemeMPL.key_gen(
            std_hash(b"pool devnet plot" + p2_singleton_puzzle_hash + bytes([index]))
        )
        params = Params(
            size=POOL_PLOT_SIZE,
            num=1,
            buffer=100,
            num_threads=0,
            buckets=0,
            tmp_dir=plot_dir / "tmp",
            tmp2_dir=plot_dir / "tmp",
            final_dir=plot_dir,
            plotid=None,
            memo=None,
            nobitfield=False,
            stripe_size=2000,
        )
        keys = PlotKeys(farmer_sk.get_g1(), None, encode_puzzle_hash(p2_singleton_puzzle_hash, "xch"))
        await asyncio.to_thread(plot_dir.mkdir, parents=True, exist_ok=True)
        created, existed = await create_plots(params, keys, use_datetime=False, test_private_keys=[local_master_sk])
        ((plot_id, path),) = (created or existed).items()
        local_sk = master_sk_to_local_sk(local_master_sk)
        plot_pk = generate_plot_public_key(local_sk.get_g1(), farmer_sk.get_g1(), include_taproot=True)
        return PoolPlot(path, plot_id, p2_singleton_puzzle_hash, local_sk, farmer_sk, plot_pk)

    # ------------------------------------------------------------------ farmer and harvester

    async def start_farmer(self, plots: list[PoolPlot], *, timeout: float = 30.0) -> FarmerHandle:
        """Start chia's farmer and a harvester holding only ``plots``; both stop with the world.

        The farmer uses BlockTools' keychain (the PlotNFT owner key) and the farmer wallet's pooling share state, so it
        knows every PlotNFT's pool URL. Create the PlotNFTs first, or call ``sync_farmer_pool_state`` afterwards.
        """
        # The farmer's HTTP session honours proxy variables; the pool runs on this machine.
        os.environ["NO_PROXY"] = os.environ["no_proxy"] = "127.0.0.1,localhost"
        farmer_root = self.work_dir / "farmer"
        harvester_root = self.work_dir / "harvester"
        farmer = await self._start_farmer_service(farmer_root)
        self.sync_farmer_pool_state(farmer_root)
        farmer_port = farmer._server.get_port()
        assert farmer_port is not None and farmer.rpc_server is not None
        harvester = await self._start_harvester_service(harvester_root, plots, farmer_port)
        handle = FarmerHandle(
            farmer,
            harvester,
            farmer_root,
            harvester_root,
            RpcEndpoint(self.self_hostname, farmer.rpc_server.listen_port, farmer_root),
            list(plots),
        )
        await self._wait_for_farmer(handle, timeout)
        return handle

    def _service_root_config(self, root_path: Path) -> contextlib.AbstractContextManager[dict[str, Any]]:
        # A fresh chia root whose certificates are signed by the node's CA, so the services can talk to each other.
        return create_lock_and_load_config(self.block_tools.root_path / "config" / "ssl" / "ca", root_path)

    async def _start_farmer_service(self, root_path: Path) -> FarmerService:
        bt = self.block_tools
        with self._service_root_config(root_path) as config:
            _apply_network(config, constants_overrides(self.constants))
            section = config["farmer"]
            section["port"] = 0
            section["rpc_port"] = 0
            section["full_node_peers"] = [{"host": self.self_hostname, "port": self.full_node_port}]
            section.pop("full_node_peer", None)
            section["xch_target_address"] = encode_puzzle_hash(bt.farmer_ph, "txch")
            # chia's harvester ignores every signage point until the farmer's handshake gave it farmer *and* pool
            # public keys: an empty list leaves it idle, even for plots tied to a pool contract.
            section["pool_public_keys"] = [bytes(pk).hex() for pk in bt.pool_pubkeys]
            config["pool"]["xch_target_address"] = encode_puzzle_hash(bt.farmer_ph, "txch")
            save_config(root_path, "config.yaml", config)
        service = create_farmer_service(
            root_path, config, config["pool"], self.constants, bt.local_keychain, connect_to_daemon=False
        )
        await self._stack.enter_async_context(service.manage())
        assert service.rpc_server is not None
        self._record_ports(
            root_path, "farmer", rpc_port=service.rpc_server.listen_port, port=service._server.get_port()
        )
        return service

    async def _start_harvester_service(
        self, root_path: Path, plots: list[PoolPlot], farmer_port: int
    ) -> HarvesterService:
        # Links to just these plots: a harvester with chia's many cached test plots would flood the farmer, which
        # sends at most 5 proofs per signage point off mainnet. Hard links, not symlinks: the harvester names a proof's
        # plot by its resolved path, but keys its plots by the path it found them at, so for a symlinked plot the
        # farmer's signature request fails ("KeyError plot ... does not exist") and no partial is ever sent.
        plot_dir = root_path / "plots"
        plot_dir.mkdir(parents=True, exist_ok=True)
        for plot in plots:
            _link_plot(plot.path, plot_dir / plot.path.name)
        with self._service_root_config(root_path) as config:
            _apply_network(config, constants_overrides(self.constants))
            section = config["harvester"]
            section["port"] = 0
            section["rpc_port"] = 0
            section["plot_directories"] = [str(plot_dir)]
            section["parallel_decompressor_count"] = 0
            save_config(root_path, "config.yaml", config)
        farmer_peer = UnresolvedPeerInfo(self.self_hostname, uint16(farmer_port))
        service = create_harvester_service(
            root_path, config, self.constants, farmer_peers={farmer_peer}, connect_to_daemon=False
        )
        await self._stack.enter_async_context(service.manage())
        return service

    async def _wait_for_farmer(self, handle: FarmerHandle, timeout: float) -> None:
        farmer_server = handle.farmer_service._node.server
        harvester = handle.harvester_service._node

        async def connected() -> bool:
            return (
                len(farmer_server.get_connections(NodeType.FULL_NODE)) > 0
                and len(farmer_server.get_connections(NodeType.HARVESTER)) > 0
                and harvester.plot_manager.public_keys_available()
                and len(harvester.plot_manager.plots) == len(handle.plots)
            )

        await _wait_until(connected, timeout, "farmer connected to node, harvester handshake done and its plots loaded")

    def sync_farmer_pool_state(self, farmer_root: Path | None = None) -> None:
        """Copy the farmer wallet's pooling share state (PlotNFT pool URLs) into the farmer's root.

        The wallet writes it into its own root and the farmer reads only its own; chia's farmer notices in ~1 s.
        """
        farmer_root = farmer_root or self.work_dir / "farmer"
        wallet_root = self.farmer_wallet_rpc.root_path
        known = set(PoolingShareState.get_all_p2_singleton_puzzle_hashes(root_path=farmer_root))
        for p2_singleton_puzzle_hash in PoolingShareState.get_all_p2_singleton_puzzle_hashes(root_path=wallet_root):
            with PoolingShareState.acquire(
                root_path=wallet_root, p2_singleton_puzzle_hash=p2_singleton_puzzle_hash, read_only=True
            ) as state:
                if p2_singleton_puzzle_hash not in known:
                    state.add(root_path=farmer_root)
                    continue
            with PoolingShareState.acquire(
                root_path=farmer_root, p2_singleton_puzzle_hash=p2_singleton_puzzle_hash
            ) as farmer_state:
                farmer_state.pool_url = state.pool_url
                farmer_state.target_puzzle_hash = state.target_puzzle_hash
                farmer_state.payout_instructions = state.payout_instructions
                farmer_state.owner_public_key = state.owner_public_key

    # ------------------------------------------------------------------ forgeries (issue #9: membership checks)
    # Chain operations a dishonest farmer could make, built by hand with real keys and pushed to the simulator, so
    # that tests show the pool refuses them. Kept together so that this block moves as one piece.

    async def create_forged_plotnft(
        self, *, claimed_target_puzzle_hash: bytes32, claimed_relative_lock_height: int, delay_time: int = 604_800
    ) -> PlotNFTInfo:
        """A real singleton whose inner puzzle self-pools to the farmer's own address, while its launcher's key-value
        data claims FARMING_TO_POOL to ``claimed_target_puzzle_hash``. The launcher coin comes from the farmer
        wallet; the owner key is the farmer key's, as for a real PlotNFT."""
        if await self._spendable("farmer") < 1_000_000:
            await self.fund_farmer_wallet()
        own_address = await self._wallet_address("farmer")
        master_sks = [self.block_tools.farmer_master_sk]
        owner_sk = master_sk_to_singleton_owner_sk(self.block_tools.farmer_master_sk, uint32(0))
        owner_pk = owner_sk.get_g1()
        authentication_sk = find_authentication_sk(master_sks, owner_pk)
        assert authentication_sk is not None
        real = create_pool_state(PoolSingletonState.SELF_POOLING, own_address, owner_pk, None, uint32(0))
        claimed = create_pool_state(
            PoolSingletonState.FARMING_TO_POOL,
            claimed_target_puzzle_hash,
            owner_pk,
            "http://127.0.0.1:1",
            uint32(claimed_relative_lock_height),
        )
        signed = await self.farmer_wallet_client.create_signed_transactions(
            CreateSignedTransaction(
                additions=[Addition(puzzle_hash=SINGLETON_LAUNCHER_HASH, amount=uint64(1))],
                wallet_id=uint32(1),
                fee=uint64(0),
                push=False,
            ),
            DEFAULT_TX_CONFIG,
        )
        funding = signed.signed_tx.spend_bundle
        assert funding is not None
        launcher = next(c for c in funding.additions() if c.puzzle_hash == SINGLETON_LAUNCHER_HASH and c.amount == 1)
        launcher_id = launcher.name()
        genesis = self.constants.GENESIS_CHALLENGE
        inner = pool_state_to_inner_puzzle(real, launcher_id, genesis, uint64(delay_time), own_address)
        puzzle_hash = create_full_puzzle(inner, launcher_id).get_tree_hash()
        key_values = Program.to([("p", bytes(claimed)), ("t", delay_time), ("h", own_address)])
        launcher_spend = make_spend(launcher, SINGLETON_LAUNCHER, Program.to([puzzle_hash, 1, key_values]))
        bundle = WalletSpendBundle.aggregate([funding, WalletSpendBundle([launcher_spend], G2Element())])
        await self._push_and_confirm(bundle)
        return PlotNFTInfo(
            launcher_id=launcher_id,
            p2_singleton_puzzle_hash=launcher_id_to_p2_puzzle_hash(launcher_id, uint64(delay_time), own_address),
            owner_public_key=owner_pk,
            owner_secret_key=owner_sk,
            authentication_secret_key=authentication_sk,
            wallet_id=0,
            pool_url="http://127.0.0.1:1",
            target_puzzle_hash=claimed_target_puzzle_hash,
            relative_lock_height=claimed_relative_lock_height,
        )

    async def lying_travel(
        self,
        plotnft: PlotNFTInfo,
        *,
        last_spend: CoinSpend,
        launcher: Coin,
        current: PoolState,
        announced: PoolState,
        delay_time: int,
        delay_puzzle_hash: bytes32,
    ) -> None:
        """Spend the PlotNFT's singleton (after ``last_spend``, in ``current`` state) the way a travel does, signed by
        its owner, but announcing ``announced`` in the extra data: the coin goes where the puzzle sends it (a pool
        member's travel always enters the waiting room), whatever the announcement says."""
        spend, _ = create_travel_spend(
            last_spend,
            launcher,
            current,
            announced,
            self.constants.GENESIS_CHALLENGE,
            uint64(delay_time),
            delay_puzzle_hash,
        )
        conditions = conditions_dict_for_solution(
            spend.puzzle_reveal, spend.solution, self.constants.MAX_BLOCK_COST_CLVM
        )
        pairs = pkm_pairs_for_conditions_dict(conditions, spend.coin, self.constants.AGG_SIG_ME_ADDITIONAL_DATA)
        assert pairs and all(pk == plotnft.owner_public_key for pk, _ in pairs)
        signature = AugSchemeMPL.aggregate([AugSchemeMPL.sign(plotnft.owner_secret_key, msg) for _, msg in pairs])
        await self._push_and_confirm(WalletSpendBundle([spend], signature))

    async def _push_and_confirm(self, bundle: WalletSpendBundle) -> None:
        await self.farmer_wallet_client.push_tx(PushTX(spend_bundle=bundle))
        await self._wait_in_mempool([bundle.name()])
        await self.farm_blocks(1)
        mempool = self.simulator.full_node.mempool_manager.mempool
        assert mempool.get_item_by_id(bundle.name()) is None, "the spend bundle was not included in the block"


def _link_plot(source: Path, target: Path) -> None:
    """Hard-link a cached plot into a harvester's plot folder, or copy it when the two are on different devices."""
    try:
        os.link(source, target)
    except OSError:
        shutil.copyfile(source, target)


def _prune_plot_dirs(plot_root: Path, *, keep: Path) -> None:
    """Keep the plot cache bounded: each fresh PlotNFT adds a folder of plots that no later run will reuse."""
    folders = sorted((p for p in plot_root.iterdir() if p.is_dir()), key=lambda p: p.stat().st_mtime, reverse=True)
    for folder in folders[_POOL_PLOT_DIRS_KEPT:]:
        if folder != keep:
            shutil.rmtree(folder, ignore_errors=True)
