"""What every part of the world shares: its state, its set-up helpers and accessors, and waiting.

A World is built from parts (chain, wallets, plots, farmer), each a mixin on WorldBase. The base holds the state they
share and declares the few methods one part calls on another, so that each part type-checks on its own.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from chia_rs import ConsensusConstants, PrivateKey
from chia_rs.sized_bytes import bytes32

from pool.chia_adapter.simulation import (
    BlockTools,
    FullNodeSimulator,
    ProverProtocol,
    WalletRpcClient,
    WalletService,
    lock_and_load_config,
    master_sk_to_farmer_sk,
    save_config,
)
from pool.devnet.network import NETWORK, _apply_network, constants_overrides

# Subfolder of chia's test plot cache (<chia root's parent>/test-plots). A folder of its own, because BlockTools
# insists that a plot folder holds exactly the plots it created, and other test runs share test-plots/.
PLOT_DIR_NAME = "test-plots/pool-devnet"
_WAIT_SECONDS = 60.0


@dataclass(frozen=True)
class RpcEndpoint:
    """Where an RPC service listens, and the chia root whose config.yaml and SSL certificates a client needs."""

    host: str
    port: int
    root_path: Path


async def _ready(value: bool) -> bool:
    return value


async def _wait_until(predicate: Callable[[], Awaitable[bool]], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not await predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout} s waiting for {what}")
        await asyncio.sleep(0.05)


@dataclass
class _Wallet:
    service: WalletService
    client: WalletRpcClient
    endpoint: RpcEndpoint
    fingerprint: int


class WorldBase:
    """State and accessors shared by the parts of a World (see pool.devnet.world)."""

    network: str = NETWORK
    work_dir: Path
    self_hostname: str
    constants: ConsensusConstants
    _stack: AsyncExitStack
    _bt: BlockTools | None
    _sim: FullNodeSimulator | None
    _wallets: dict[str, _Wallet]
    _provers: dict[Path, ProverProtocol]
    _sp_peak: bytes32 | None
    _next_sp_index: int
    _rng: random.Random
    full_node_rpc: RpcEndpoint
    pool_target_puzzle_hash: bytes32

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
    def farmer_secret_key(self) -> PrivateKey:
        """The farmer key the pool plots are made with and the farmer service signs with."""
        return master_sk_to_farmer_sk(self.block_tools.farmer_master_sk)

    @property
    def peak_height(self) -> int:
        height = self.simulator.full_node.blockchain.get_peak_height()
        return -1 if height is None else int(height)

    # ------------------------------------------------------------------ what one part calls on another

    async def farm_blocks(
        self,
        count: int,
        to_puzzle_hash: bytes32 | None = None,
        *,
        pool_reward_puzzle_hash: bytes32 | None = None,
        skip_slots: int = 0,
    ) -> int:
        raise NotImplementedError  # pool.devnet.chain

    async def wait_for_wallets_synced(self, timeout: float = _WAIT_SECONDS) -> None:
        raise NotImplementedError  # pool.devnet.wallets

    @property
    def farmer_wallet_rpc(self) -> RpcEndpoint:
        raise NotImplementedError  # pool.devnet.wallets
