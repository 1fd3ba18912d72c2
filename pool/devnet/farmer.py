"""The farmer and the harvester: chia's real services, in this process, farming only the pool plots given to them.

They run on chia roots of their own (certificates signed by the node's CA), on the devnet network, and stop with the
world. The farmer learns the PlotNFTs' pools from the farmer wallet's pooling share state.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from chia_rs.sized_bytes import bytes32
from chia_rs.sized_ints import uint16

from pool.chia_adapter.simulation import (
    FarmerService,
    HarvesterService,
    NodeType,
    PoolingShareState,
    UnresolvedPeerInfo,
    create_default_chia_config,
    create_farmer_service,
    create_harvester_service,
    encode_puzzle_hash,
    lock_and_load_config,
    save_config,
)
from pool.devnet.base import RpcEndpoint, WorldBase, _ready, _wait_until
from pool.devnet.network import _apply_network, constants_overrides
from pool.devnet.plots import PoolPlot


@dataclass
class FarmerHandle:
    """A real chia farmer and harvester (in this process) farming only the given pool plots."""

    farmer_service: FarmerService
    harvester_service: HarvesterService
    farmer_root: Path
    harvester_root: Path
    farmer_rpc: RpcEndpoint
    plots: list[PoolPlot] = field(default_factory=list)
    # The two services' contexts; closed by stop(), or by the world when it stops.
    _services: contextlib.AsyncExitStack = field(default_factory=contextlib.AsyncExitStack, repr=False)

    async def stop(self) -> None:
        """Stop the farmer and the harvester before the world stops (on a shared chain, once their tests are done)."""
        await self._services.aclose()

    @property
    def received_sp_hashes(self) -> set[bytes32]:
        """Signage point hashes (challenge chain) the farmer has received from the node."""
        return set(self.farmer_service._node.sps.keys())

    async def wait_for_signage_point(self, sp_hash: bytes32, timeout: float = 10.0) -> None:
        await _wait_until(lambda: _ready(sp_hash in self.received_sp_hashes), timeout, "farmer signage point")

    def pool_state(self, p2_singleton_puzzle_hash: bytes32) -> dict[str, Any] | None:
        """The farmer's in-memory pool state for a PlotNFT (difficulty, points, partial counters ...)."""
        return self.farmer_service._node.pool_state.get(p2_singleton_puzzle_hash)


class FarmerMixin(WorldBase):
    """The farmer and harvester services of a World."""

    # ------------------------------------------------------------------ farmer and harvester

    async def start_farmer(self, plots: list[PoolPlot], *, timeout: float = 30.0) -> FarmerHandle:
        """Start chia's farmer and a harvester holding only ``plots``; both stop with the world (or ``stop()``).

        The farmer uses BlockTools' keychain (the PlotNFT owner key) and the farmer wallet's pooling share state, so it
        knows every PlotNFT's pool URL. Create the PlotNFTs first, or call ``sync_farmer_pool_state`` afterwards.
        """
        # The farmer's HTTP session honours proxy variables; the pool runs on this machine.
        os.environ["NO_PROXY"] = os.environ["no_proxy"] = "127.0.0.1,localhost"
        farmer_root = self.work_dir / "farmer"
        harvester_root = self.work_dir / "harvester"
        services = contextlib.AsyncExitStack()
        self._stack.push_async_callback(services.aclose)
        farmer = await self._start_farmer_service(farmer_root, services)
        self.sync_farmer_pool_state(farmer_root)
        farmer_port = farmer._server.get_port()
        assert farmer_port is not None and farmer.rpc_server is not None
        harvester = await self._start_harvester_service(harvester_root, plots, farmer_port, services)
        handle = FarmerHandle(
            farmer,
            harvester,
            farmer_root,
            harvester_root,
            RpcEndpoint(self.self_hostname, farmer.rpc_server.listen_port, farmer_root),
            list(plots),
            services,
        )
        await self._wait_for_farmer(handle, timeout)
        return handle

    def _service_root_config(self, root_path: Path) -> contextlib.AbstractContextManager[dict[str, Any]]:
        """A fresh chia root holding the node root's TLS certificates, all signed by the node's CA, so that the services
        can talk to each other; made as BlockTools makes the node's root.

        Each service uses only its own certificate of the set. chia's create_lock_and_load_config would instead make
        a root's dozen key pairs, twice over, which is slow; BlockTools takes the node's from chia's pre-made
        test certificates.
        """
        create_default_chia_config(root_path)
        node_ssl = self.block_tools.root_path / "config" / "ssl"
        shutil.copytree(node_ssl, root_path / "config" / "ssl", dirs_exist_ok=True)  # keeps the key files' modes
        config_file = root_path / "config" / "config.yaml"
        # As chia's test services do (chia: "using localhost leads to flakiness on CI").
        config_file.write_text(config_file.read_text().replace("localhost", "127.0.0.1"))
        return lock_and_load_config(root_path, "config.yaml")

    async def _start_farmer_service(self, root_path: Path, services: contextlib.AsyncExitStack) -> FarmerService:
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
        await services.enter_async_context(service.manage())
        assert service.rpc_server is not None
        self._record_ports(
            root_path, "farmer", rpc_port=service.rpc_server.listen_port, port=service._server.get_port()
        )
        return service

    async def _start_harvester_service(
        self, root_path: Path, plots: list[PoolPlot], farmer_port: int, services: contextlib.AsyncExitStack
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
        await services.enter_async_context(service.manage())
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


def _link_plot(source: Path, target: Path) -> None:
    """Hard-link a cached plot into a harvester's plot folder, or copy it when the two are on different devices."""
    try:
        os.link(source, target)
    except OSError:
        shutil.copyfile(source, target)
