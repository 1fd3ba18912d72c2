"""chia-blockchain imports used only to run a simulated chain (the devnet and the tests).

Everything the devnet needs from ``chia.*`` is imported here and nowhere else, so a chia upgrade that moves a
simulator helper touches this file only. ``chia.simulator`` and ``chia._tests`` ship in the chia-blockchain wheel and
import without pytest.
"""

from __future__ import annotations

from chia.cmds.init_funcs import chia_init
from chia.consensus.blockchain import BlockchainMutexPriority
from chia.consensus.constants import replace_str_to_bytes
from chia.consensus.default_constants import DEFAULT_CONSTANTS, update_testnet_overrides
from chia.consensus.pot_iterations import calculate_iterations_quality, calculate_sp_interval_iters
from chia.farmer.farmer_service import FarmerService
from chia.farmer.start_farmer import create_farmer_service
from chia.full_node.full_node_rpc_client import FullNodeRpcClient
from chia.harvester.harvester_service import HarvesterService
from chia.harvester.start_harvester import create_harvester_service
from chia.plotting.create_plots import PlotKeys, create_plots
from chia.plotting.prover import ProverProtocol, V1Prover, get_prover_from_file
from chia.plotting.util import Params, parse_plot_info
from chia.pools.pool_config import PoolingShareState
from chia.pools.pool_wallet_info import NewPoolWalletInitialTargetState, PoolSingletonState, PoolWalletInfo
from chia.protocols.full_node_protocol import RespondEndOfSubSlot, RespondSignagePoint
from chia.protocols.outbound_message import NodeType
from chia.server.ws_connection import WSChiaConnection
from chia.simulator.block_tools import BlockTools, get_signage_point, test_constants
from chia.simulator.full_node_simulator import FullNodeSimulator
from chia.simulator.keyring import TempKeyring
from chia.simulator.setup_services import setup_full_node, setup_wallet_node
from chia.simulator.simulator_protocol import FarmNewBlockProtocol, ReorgProtocol
from chia.simulator.start_simulator import SimulatorFullNodeService
from chia.types.blockchain_format.proof_of_space import (
    calculate_pos_challenge,
    calculate_prefix_bits,
    generate_plot_public_key,
    generate_taproot_sk,
    make_pos,
    passes_plot_filter,
    verify_and_get_quality_string,
)
from chia.types.peer_info import PeerInfo, UnresolvedPeerInfo
from chia.util.bech32m import decode_puzzle_hash, encode_puzzle_hash
from chia.util.config import create_default_chia_config, load_config, lock_and_load_config, save_config
from chia.util.hash import std_hash
from chia.wallet.derive_keys import (
    find_authentication_sk,
    find_owner_sk,
    master_sk_to_farmer_sk,
    master_sk_to_local_sk,
)
from chia.wallet.util.tx_config import DEFAULT_TX_CONFIG
from chia.wallet.util.wallet_types import WalletType
from chia.wallet.wallet_request_types import (
    CreateNewWallet,
    CreateNewWalletType,
    GetNextAddress,
    GetTransaction,
    GetWalletBalance,
    GetWallets,
    PWAbsorbRewards,
    PWSelfPool,
    PWStatus,
    SendTransaction,
    WalletCreationMode,
)
from chia.wallet.wallet_rpc_client import WalletRpcClient
from chia.wallet.wallet_service import WalletService

__all__ = [
    "DEFAULT_CONSTANTS",
    "DEFAULT_TX_CONFIG",
    "BlockTools",
    "BlockchainMutexPriority",
    "CreateNewWallet",
    "CreateNewWalletType",
    "FarmNewBlockProtocol",
    "FarmerService",
    "FullNodeRpcClient",
    "FullNodeSimulator",
    "GetNextAddress",
    "GetTransaction",
    "GetWalletBalance",
    "GetWallets",
    "HarvesterService",
    "NewPoolWalletInitialTargetState",
    "NodeType",
    "PWAbsorbRewards",
    "PWSelfPool",
    "PWStatus",
    "Params",
    "PeerInfo",
    "PlotKeys",
    "PoolSingletonState",
    "PoolWalletInfo",
    "PoolingShareState",
    "ProverProtocol",
    "ReorgProtocol",
    "RespondEndOfSubSlot",
    "RespondSignagePoint",
    "SendTransaction",
    "SimulatorFullNodeService",
    "TempKeyring",
    "UnresolvedPeerInfo",
    "V1Prover",
    "WSChiaConnection",
    "WalletCreationMode",
    "WalletRpcClient",
    "WalletService",
    "WalletType",
    "calculate_iterations_quality",
    "calculate_pos_challenge",
    "calculate_prefix_bits",
    "calculate_sp_interval_iters",
    "chia_init",
    "create_default_chia_config",
    "create_farmer_service",
    "create_harvester_service",
    "create_plots",
    "decode_puzzle_hash",
    "encode_puzzle_hash",
    "find_authentication_sk",
    "find_owner_sk",
    "generate_plot_public_key",
    "generate_taproot_sk",
    "get_prover_from_file",
    "get_signage_point",
    "load_config",
    "lock_and_load_config",
    "make_pos",
    "master_sk_to_farmer_sk",
    "master_sk_to_local_sk",
    "parse_plot_info",
    "passes_plot_filter",
    "replace_str_to_bytes",
    "save_config",
    "setup_full_node",
    "setup_wallet_node",
    "std_hash",
    "test_constants",
    "update_testnet_overrides",
    "verify_and_get_quality_string",
]


# -- added for membership tests: forged PlotNFTs and lying travel spends built by hand -----------------------------
from chia.consensus.condition_tools import conditions_dict_for_solution, pkm_pairs_for_conditions_dict
from chia.pools.pool_puzzles import create_travel_spend
from chia.pools.pool_wallet_info import create_pool_state
from chia.types.blockchain_format.program import Program
from chia.types.coin_spend import make_spend
from chia.wallet.derive_keys import master_sk_to_singleton_owner_sk
from chia.wallet.puzzles.singleton_top_layer import SINGLETON_LAUNCHER

__all__ += [
    "SINGLETON_LAUNCHER",
    "Program",
    "conditions_dict_for_solution",
    "create_pool_state",
    "create_travel_spend",
    "make_spend",
    "master_sk_to_singleton_owner_sk",
    "pkm_pairs_for_conditions_dict",
]


# -- PlotNFT v2 (Pool Protocol v2): the synthetic key chia's farmer finds for a PlotNFT v2 -------------------------
from chia.wallet.derive_keys import master_sk_to_wallet_sk_unhardened  # noqa: E402
from chia.wallet.puzzles.p2_delegated_puzzle_or_hidden_puzzle import (  # noqa: E402
    DEFAULT_HIDDEN_PUZZLE_HASH,
    calculate_synthetic_secret_key,
)
from chia_rs import PrivateKey  # noqa: E402
from chia_rs.sized_ints import uint32  # noqa: E402


def plotnft_v2_synthetic_secret_key(master_sk: PrivateKey, key_derivation_index: int) -> PrivateKey:
    """The secret key of a PlotNFT v2's synthetic key, as chia's farmer derives it from the pooling share state's
    ``key_derivation_index`` (Farmer.get_authentication_sk)."""
    return calculate_synthetic_secret_key(
        master_sk_to_wallet_sk_unhardened(master_sk, uint32(key_derivation_index)), DEFAULT_HIDDEN_PUZZLE_HASH
    )


__all__ += ["plotnft_v2_synthetic_secret_key"]
