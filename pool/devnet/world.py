"""A simulated Chia chain in one process: the world the pool's tests and its demo run against.

Built on chia's own simulator helpers (BlockTools, the simulator full node, wallet services, the real farmer and
harvester). The node has no timelord, so the world itself farms blocks and injects signage points and end of sub-slot
bundles, exactly as a timelord would announce them.

World composes its parts, one module each: pool.devnet.network (network name and constants), base (shared state),
chain (blocks, reorgs, signage points), wallets (wallets and PlotNFTs), plots (pool plots and their proofs), farmer
(chia's farmer and harvester), forgeries (spends a dishonest farmer could make, for the membership tests). Everything
the tests and the demo import stays importable from here.
"""

from __future__ import annotations

import logging
import random
import shutil
import time
from contextlib import AsyncExitStack
from pathlib import Path
from types import TracebackType

from chia_rs import ConsensusConstants
from chia_rs.sized_bytes import bytes32

from pool.chia_adapter.simulation import (
    BlockTools,
    FullNodeSimulator,
    ProverProtocol,
    TempKeyring,
    setup_full_node,
)
from pool.devnet.base import PLOT_DIR_NAME, RpcEndpoint, _Wallet
from pool.devnet.chain import ChainMixin, SignagePointInfo
from pool.devnet.farmer import FarmerHandle, FarmerMixin
from pool.devnet.forgeries import ForgeriesMixin
from pool.devnet.network import (
    BURN_PUZZLE_HASH,
    DEVNET_GENESIS_CHALLENGE,
    DISCRIMINANT_BITS,
    NETWORK,
    constants_overrides,
    devnet_constants,
)
from pool.devnet.plots import POOL_PLOT_SIZE, FoundProof, PlotsMixin, PoolPlot
from pool.devnet.wallets import _FARMER_KEY_ENTROPY, _POOL_WALLET_KEY_ENTROPY, PlotNFTInfo, WalletsMixin

# What the demo, the tests and the benchmarks import from here (the parts live in their own modules).
__all__ = [
    "BURN_PUZZLE_HASH",
    "DEVNET_GENESIS_CHALLENGE",
    "NETWORK",
    "PLOT_DIR_NAME",
    "POOL_PLOT_SIZE",
    "FarmerHandle",
    "FoundProof",
    "PlotNFTInfo",
    "PoolPlot",
    "RpcEndpoint",
    "SignagePointInfo",
    "World",
    "constants_overrides",
    "devnet_constants",
]

log = logging.getLogger(__name__)


class World(ForgeriesMixin, ChainMixin, WalletsMixin, PlotsMixin, FarmerMixin):
    """A simulator full node with a pool wallet and a farmer wallet; optionally a real farmer and harvester.

    Use as ``async with World.create(work_dir=...) as world:``. Everything it writes lives under ``work_dir`` except
    plots, which are cached in chia's test plot folder.
    """

    network: str = NETWORK

    def __init__(
        self,
        *,
        work_dir: Path,
        discriminant_bits: int = DISCRIMINANT_BITS,
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
        cls,
        *,
        work_dir: Path,
        discriminant_bits: int = DISCRIMINANT_BITS,
        farming_plots: int = 8,
        self_hostname: str = "127.0.0.1",
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
        # The pool's target is the pool wallet's first address, asked for before the wallet has seen any block: the
        # wallet answers with the last address it used, and on a chain where it was paid (a benchmark node replaying
        # a recorded chain) that would depend on what the chain held, not on the wallet's key alone.
        self.pool_target_puzzle_hash = await self._wallet_address("pool")
        await self._first_blocks()
        await self.wait_for_wallets_synced()
        log.info("devnet world started in %.1f s", time.monotonic() - started)

    async def _first_blocks(self) -> None:
        """The chain the world starts on: a genesis block (the benchmark's node replays a recorded chain instead)."""
        await self._farm_block(BURN_PUZZLE_HASH, BURN_PUZZLE_HASH)
