"""The one place that imports chia-blockchain (pinned to 2.7.5).

chia renames and moves modules between minor versions; keeping every import here means an upgrade touches one file.
Simulation-only helpers (simulator, BlockTools, test services) live in ``pool.chia_adapter.simulation``.
"""

from __future__ import annotations

from importlib import import_module
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml
from chia.consensus.constants import replace_str_to_bytes
from chia.consensus.default_constants import DEFAULT_CONSTANTS, update_testnet_overrides
from chia.consensus.pot_iterations import calculate_iterations_quality
from chia.consensus.signage_point import SignagePoint
from chia.pools.pool_puzzles import (
    create_absorb_spend,
    get_delayed_puz_info_from_launcher_spend,
    get_most_recent_singleton_coin_from_coin_spend,
    launcher_id_to_p2_puzzle_hash,
    pool_state_to_inner_puzzle,
    solution_to_pool_state,
)
from chia.pools.pool_wallet_info import PoolSingletonState, PoolState
from chia.protocols.pool_protocol import (
    POOL_PROTOCOL_VERSION,
    AuthenticationPayloadV1,
    ErrorResponse,
    GetFarmerRequestV1,
    GetFarmerResponse,
    GetPoolInfoResponse,
    PoolErrorCode,
    PostFarmerPayload,
    PostFarmerRequest,
    PostFarmerResponse,
    PostPartialPayload,
    PostPartialRequest,
    PostPartialResponse,
    PutFarmerPayload,
    PutFarmerRequest,
    PutFarmerResponse,
)
from chia.types.blockchain_format.proof_of_space import verify_and_get_quality_string
from chia.util.bech32m import decode_puzzle_hash, encode_puzzle_hash
from chia.util.hash import std_hash
from chia.util.streamable import Streamable, streamable
from chia.wallet.puzzles.singleton_top_layer import SINGLETON_LAUNCHER_HASH
from chia_rs import (
    AugSchemeMPL,
    Coin,
    CoinRecord,
    CoinSpend,
    ConsensusConstants,
    EndOfSubSlotBundle,
    G1Element,
    G2Element,
    PrivateKey,
    ProofOfSpace,
    SpendBundle,
)
from chia_rs.sized_bytes import bytes32
from chia_rs.sized_ints import uint8, uint16, uint32, uint64

if TYPE_CHECKING:
    from chia.full_node.full_node_rpc_client import FullNodeRpcClient
    from chia.rpc.rpc_client import ResponseFailureError
    from chia.wallet.wallet_request_types import (
        Addition,
        CreateSignedTransaction,
        GetSpendableCoins,
        GetWalletBalance,
        LogIn,
        PushTX,
    )
    from chia.wallet.wallet_rpc_client import WalletRpcClient

# chia's RPC clients and wallet request types, imported on first use: they bring in most of chia's wallet (most of
# the import's time), which only a pool that talks to the chain needs; `python -m pool --help`, a config check or a
# command refused for its config starts without them.
_ON_FIRST_USE = {
    "FullNodeRpcClient": "chia.full_node.full_node_rpc_client",
    "ResponseFailureError": "chia.rpc.rpc_client",
    "WalletRpcClient": "chia.wallet.wallet_rpc_client",
    **dict.fromkeys(
        ["Addition", "CreateSignedTransaction", "GetSpendableCoins", "GetWalletBalance", "LogIn", "PushTX"],
        "chia.wallet.wallet_request_types",
    ),
}


def __getattr__(name: str) -> Any:
    module = _ON_FIRST_USE.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(import_module(module), name)
    globals()[name] = value  # later lookups find it here
    return value


__all__ = [
    "DEFAULT_CONSTANTS",
    "POOL_PROTOCOL_VERSION",
    "SINGLETON_LAUNCHER_HASH",
    "AugSchemeMPL",
    "AuthenticationPayloadV1",
    "Coin",
    "CoinRecord",
    "CoinSpend",
    "ConsensusConstants",
    "EndOfSubSlotBundle",
    "ErrorResponse",
    "FullNodeRpcClient",
    "G1Element",
    "G2Element",
    "GetFarmerRequestV1",
    "GetFarmerResponse",
    "GetPoolInfoResponse",
    "PoolErrorCode",
    "PoolSingletonState",
    "PoolState",
    "PostFarmerPayload",
    "PostFarmerRequest",
    "PostFarmerResponse",
    "PostPartialPayload",
    "PostPartialRequest",
    "PostPartialResponse",
    "PrivateKey",
    "ProofOfSpace",
    "PutFarmerPayload",
    "PutFarmerRequest",
    "PutFarmerResponse",
    "ResponseFailureError",
    "SignagePoint",
    "SpendBundle",
    "Streamable",
    "WalletRpcClient",
    "bytes32",
    "calculate_iterations_quality",
    "chia_config",
    "consensus_constants_for",
    "create_absorb_spend",
    "decode_puzzle_hash",
    "encode_puzzle_hash",
    "get_delayed_puz_info_from_launcher_spend",
    "get_most_recent_singleton_coin_from_coin_spend",
    "launcher_id_to_p2_puzzle_hash",
    "pool_state_to_inner_puzzle",
    "solution_to_pool_state",
    "std_hash",
    "streamable",
    "uint8",
    "uint16",
    "uint32",
    "uint64",
    "verify_and_get_quality_string",
]


def chia_config(root_path: Path) -> dict[str, Any]:
    """The chia root's config.yaml (chia's RPC clients take their certificate paths from it, and the consensus
    constants its network overrides).

    Read without chia's lock: chia's own loader creates ``config/config.yaml.lock``, which fails where a pool host
    sees the chia root read-only (a read-only volume in a container, another user's files). The pool only reads, and
    chia saves the file by replacing it (os.replace), so a read sees the old or the new file whole.
    """
    path = root_path / "config" / "config.yaml"
    try:
        text = path.read_text()
    except OSError as exc:
        raise ValueError(f"cannot read {path}: {exc.strerror or exc}") from None
    loaded = yaml.safe_load(text)
    if not isinstance(loaded, dict):
        raise ValueError(f"{path} is not a chia config: no mapping at the top")
    return loaded


def consensus_constants_for(network: str, chia_root_config: dict[str, Any] | None) -> ConsensusConstants:
    """Build the consensus constants of ``network`` the way chia's own services do.

    DEFAULT_CONSTANTS (mainnet) plus the chia root config's ``network_overrides.constants.<network>``; using mainnet
    constants on another network makes every proof fail (plot filter, difficulty constant factor).
    """
    overrides: dict[str, Any] = {}
    if chia_root_config is not None:
        all_overrides = chia_root_config.get("network_overrides", {}).get("constants", {})
        overrides = dict(all_overrides.get(network) or {})
    update_testnet_overrides(network, overrides)
    return replace_str_to_bytes(DEFAULT_CONSTANTS, **overrides)


# -- added for the background loops: wallet requests, reward coin identity -------------------------------------------
from chia.consensus.block_rewards import calculate_pool_reward  # noqa: E402
from chia.consensus.coinbase import pool_parent_id  # noqa: E402
from chia.wallet.util.tx_config import DEFAULT_TX_CONFIG, TXConfig  # noqa: E402
from chia.wallet.wallet_spend_bundle import WalletSpendBundle  # noqa: E402

__all__ += [
    "DEFAULT_TX_CONFIG",
    "Addition",
    "CreateSignedTransaction",
    "GetWalletBalance",
    "LogIn",
    "PushTX",
    "TXConfig",
    "WalletSpendBundle",
    "calculate_pool_reward",
    "pool_parent_id",
]


# -- added for the farmer-facing protocol: the farmer's own "good enough for the pool" threshold --------------------
from chia.consensus.pot_iterations import calculate_sp_interval_iters  # noqa: E402

__all__ += ["calculate_sp_interval_iters"]


# -- added for the ledger: the pool picks the coins it spends; a claim's fee spend asserts its absorb ---------------
from chia.wallet.conditions import AssertConcurrentSpend, Condition  # noqa: E402

__all__ += ["AssertConcurrentSpend", "Condition", "GetSpendableCoins"]


# -- added for membership checks: the full singleton puzzle a pool state implies -----------------------------------
from chia.pools.pool_puzzles import create_full_puzzle  # noqa: E402

__all__ += ["create_full_puzzle"]


# -- added for the pages: the plot filter, for the plot space estimate ------------------------------------------
from chia.types.blockchain_format.proof_of_space import calculate_prefix_bits  # noqa: E402
from chia_rs import PlotParam  # noqa: E402

__all__ += ["PlotParam", "plot_filter_bits"]


def plot_filter_bits(constants: ConsensusConstants, height: int) -> int:
    """Zero bits the plot filter asks of a (v1) plot's filter hash at ``height``: 1 plot in 2**bits passes."""
    return calculate_prefix_bits(constants, uint32(height), PlotParam.make_v1(32))


# -- where a spend sent its money: the conditions a coin spend outputs ---------------------------------------------
from dataclasses import dataclass  # noqa: E402

from chia.consensus.condition_tools import conditions_for_solution  # noqa: E402
from chia.types.condition_opcodes import ConditionOpcode  # noqa: E402


@dataclass(frozen=True)
class SpendConditions:
    """What a coin spend's puzzle output, reduced to what the pool reads: the coins it creates and the puzzle
    announcements it makes and asserts (how a p2_singleton reward coin is tied to the singleton spend that absorbs
    it)."""

    created_coins: tuple[tuple[bytes32, int], ...]  # (puzzle hash, amount)
    puzzle_announcements: tuple[bytes, ...]  # messages of CREATE_PUZZLE_ANNOUNCEMENT
    asserted_puzzle_announcements: tuple[bytes32, ...]  # ids asserted by ASSERT_PUZZLE_ANNOUNCEMENT
    concurrent_spends: tuple[bytes32, ...]  # coins that must be spent in the same block (ASSERT_CONCURRENT_SPEND)


def spend_conditions(spend: CoinSpend, max_cost: int) -> SpendConditions:
    """Run the spend's puzzle on its solution (as the node did when it was included). Raises ValueError when the
    puzzle fails, which a spend on chain never does."""
    try:
        conditions = conditions_for_solution(spend.puzzle_reveal, spend.solution, max_cost)
    except Exception as exc:
        raise ValueError(f"the spend of coin {spend.coin.name().hex()} does not run: {exc}") from exc
    created: list[tuple[bytes32, int]] = []
    announced: list[bytes] = []
    asserted: list[bytes32] = []
    concurrent: list[bytes32] = []
    for condition in conditions:
        if condition.opcode == ConditionOpcode.CREATE_COIN and len(condition.vars) >= 2:
            created.append((bytes32(condition.vars[0]), int.from_bytes(condition.vars[1], "big", signed=True)))
        elif condition.opcode == ConditionOpcode.CREATE_PUZZLE_ANNOUNCEMENT and condition.vars:
            announced.append(bytes(condition.vars[0]))
        elif condition.opcode == ConditionOpcode.ASSERT_PUZZLE_ANNOUNCEMENT and condition.vars:
            asserted.append(bytes32(condition.vars[0]))
        elif condition.opcode == ConditionOpcode.ASSERT_CONCURRENT_SPEND and condition.vars:
            concurrent.append(bytes32(condition.vars[0]))
    return SpendConditions(tuple(created), tuple(announced), tuple(asserted), tuple(concurrent))


# A standard wallet spend costs a few million; this bounds a malformed one without limiting real ones.
_WALLET_SPEND_MAX_COST = 11_000_000_000


def asserted_concurrent_spends(bundle: SpendBundle) -> list[bytes32]:
    """The coins a (wallet's own, signed) spend bundle can only be mined together with."""
    found: list[bytes32] = []
    for spend in bundle.coin_spends:
        found.extend(spend_conditions(spend, _WALLET_SPEND_MAX_COST).concurrent_spends)
    return found


__all__ += ["SpendConditions", "asserted_concurrent_spends", "spend_conditions"]


# -- proving the pool's wallet owns its target address: CHIP-0002 message signing ---------------------------------
from chia.types.signing_mode import SigningMode  # noqa: E402

if TYPE_CHECKING:
    from chia.wallet.wallet_request_types import SignMessageByAddress
_ON_FIRST_USE["SignMessageByAddress"] = "chia.wallet.wallet_request_types"


def address_signature_valid(
    signing_mode: str, public_key: G1Element, message: str, signature: G2Element, address: str
) -> bool:
    """Whether ``signature`` signs ``message`` (as chia's wallet signs messages, CHIP-0002) with the key of the
    standard address ``address``: the public key must be that address's own, and the signature valid."""
    # Imported here: it brings in chia's wallet request types (see _ON_FIRST_USE).
    from chia.wallet.util.signing import verify_signature

    try:
        mode = SigningMode(signing_mode)
        return bool(
            verify_signature(
                signing_mode=mode, public_key=public_key, message=message, signature=signature, address=address
            ).isValid
        )
    except ValueError:
        return False


__all__ += ["SignMessageByAddress", "address_signature_valid"]


# -- what an RPC client of a chia root needs on disk (chia's RpcClient.create reads exactly these) ----------------
from chia.server.ssl_context import private_ssl_ca_paths  # noqa: E402


def rpc_certificate_files(root_path: Path, root_config: dict[str, Any]) -> list[Path]:
    """The files chia's RPC clients load to call a service of ``root_path``: its private CA and the daemon's private
    certificate and key. Raises KeyError when the config names none of them."""
    ca_crt, ca_key = private_ssl_ca_paths(root_path, root_config)
    daemon = root_config["daemon_ssl"]
    return [ca_crt, ca_key, root_path / daemon["private_crt"], root_path / daemon["private_key"]]


__all__ += ["rpc_certificate_files"]


def mozilla_ca_bundle() -> Path:
    """The public CAs chia's farmer trusts for a pool's https (Mozilla's bundle, shipped with chia)."""
    from chia.ssl.create_ssl import get_mozilla_ca_crt

    return Path(get_mozilla_ca_crt())


__all__ += ["mozilla_ca_bundle"]


# -- Pool Protocol v2 (PlotNFT v2: a singleton v1.1 around a custody inner puzzle) ---------------------------------
from chia.pools.plotnft_drivers import (  # noqa: E402
    GetNextPlotNFTError,
    PlotNFT,
    PlotNFTPuzzle,
    PoolReward,
    RewardPuzzle,
)
from chia.pools.plotnft_drivers import PoolConfig as PlotNFTPoolConfig  # noqa: E402
from chia.pools.plotnft_drivers import UserConfig as PlotNFTUserConfig  # noqa: E402
from chia.protocols.pool_protocol import GetAuthRequest, GetAuthResponse, GetFarmerRequestV2  # noqa: E402
from chia.types.blockchain_format.program import Program  # noqa: E402
from chia_rs import Program as ChiaRsProgram  # noqa: E402

# The unhardened child of a v2 PlotNFT's synthetic key that signs GET /v2/auth, POST /v2/farmer and /v2/login
# (chia's farmer derives it with singleton_owner_sk_to_authv2_key).
AUTH_V2_CHILD_INDEX = 12381


def auth_v2_public_key(synthetic_key: G1Element) -> G1Element:
    """The key a v2 farmer signs its GET /v2/auth, POST /v2/farmer and /v2/login with, from its PlotNFT's synthetic
    key (the public half of chia's ``singleton_owner_sk_to_authv2_key``)."""
    return AugSchemeMPL.derive_child_pk_unhardened(synthetic_key, AUTH_V2_CHILD_INDEX)


def auth_v2_secret_key(synthetic_secret_key: PrivateKey) -> PrivateKey:
    """The secret half of ``auth_v2_public_key`` (tests, the devnet and the benchmark sign with it)."""
    return AugSchemeMPL.derive_child_sk_unhardened(synthetic_secret_key, AUTH_V2_CHILD_INDEX)


def reward_puzzle_hash_v2(launcher_id: bytes32) -> bytes32:
    """Where a v2 PlotNFT's plots send the pool's share of a block reward (its pool contract puzzle hash)."""
    return RewardPuzzle(singleton_id=launcher_id).puzzle_hash()


def program_from_hex(text: str) -> Program:
    """A serialized CLVM program (the pool's ``pool_memoization``); raises ValueError when it is not one."""
    try:
        serialized = bytes.fromhex(text.removeprefix("0x"))
        program = Program.from_bytes(serialized)
    except Exception as exc:
        raise ValueError(f"not a serialized CLVM program: {exc}") from None
    # The parser stops after the first program: bytes after it would be silently dropped from what the pool means.
    if len(bytes(program)) != len(serialized):
        raise ValueError(f"not one serialized CLVM program: bytes follow the program {bytes(program).hex()}")
    return program


__all__ += [
    "AUTH_V2_CHILD_INDEX",
    "GetAuthRequest",
    "GetAuthResponse",
    "GetFarmerRequestV2",
    "GetNextPlotNFTError",
    "PlotNFT",
    "PlotNFTPoolConfig",
    "PlotNFTPuzzle",
    "PlotNFTUserConfig",
    "PoolReward",
    "Program",
    "RewardPuzzle",
    "auth_v2_public_key",
    "auth_v2_secret_key",
    "program_from_hex",
    "reward_puzzle_hash_v2",
]


def next_plotnft(spend: CoinSpend, genesis_challenge: bytes32, previous: PlotNFTPuzzle | None) -> PlotNFT:
    """The v2 PlotNFT a singleton spend leaves (chia's driver parses it: from its memo, or as a move the previous
    state allows). Raises ValueError when the spend is not a PlotNFT v2's or contradicts its memo."""
    try:
        return PlotNFT.get_next_from_coin_spend(
            coin_spend=spend, genesis_challenge=genesis_challenge, previous_plotnft_puzzle=previous
        )
    except Exception as exc:  # the driver asserts, raises GetNextPlotNFTError or clvm errors on foreign spends
        raise ValueError(f"not a PlotNFT v2 spend: {exc}") from None


def plotnft_puzzle(
    launcher_id: bytes32,
    genesis_challenge: bytes32,
    synthetic_key: G1Element,
    pool: tuple[bytes32, int, bytes] | None,
    exiting: bool,
) -> PlotNFTPuzzle:
    """A v2 PlotNFT's state rebuilt from its parts (``pool``: pool puzzle hash, height lock, serialized
    memoization; None when it farms to itself)."""
    pool_config = (
        None
        if pool is None
        else PlotNFTPoolConfig(
            pool_puzzle_hash=pool[0], heightlock=uint32(pool[1]), pool_memoization=Program.from_bytes(pool[2])
        )
    )
    return PlotNFTPuzzle(
        launcher_id=launcher_id,
        genesis_challenge=genesis_challenge,
        user_config=PlotNFTUserConfig(synthetic_pubkey=synthetic_key),
        exiting=exiting,
        pool_config=pool_config,
    )


def pool_info_memoization(serialized: bytes) -> ChiaRsProgram:
    """The pool memoization as GET /pool_info's Streamable carries it."""
    return ChiaRsProgram.from_bytes(serialized)


__all__ += ["next_plotnft", "plotnft_puzzle", "pool_info_memoization"]


def forward_reward_spends(
    latest_spend: CoinSpend, genesis_challenge: bytes32, state: PlotNFTPuzzle, reward: Coin
) -> tuple[Coin, list[CoinSpend]]:
    """The spends that forward a v2 PlotNFT's pool reward coin to its pool (anyone can make them, no signature): the
    singleton's pool path, recreating it as it is, and the reward coin paying its whole amount to the pool puzzle
    hash. ``latest_spend``: the singleton's newest spend, after which it is in ``state``. Returns the singleton coin
    spent too. Raises ValueError when the spend is not a pooling PlotNFT v2's."""
    plotnft = next_plotnft(latest_spend, genesis_challenge, state)
    try:
        spends = plotnft.forward_pool_reward(PoolReward(singleton_id=plotnft.launcher_id, coin=reward))
    except Exception as exc:
        raise ValueError(f"the reward cannot be forwarded: {exc}") from None
    return plotnft.coin, spends


__all__ += ["forward_reward_spends"]


# -- the singleton puzzle hash a pool state implies, from tree hashes alone ----------------------------------------
from hashlib import sha256  # noqa: E402

from chia.pools.pool_puzzles import (  # noqa: E402
    P2_SINGLETON_HASH,
    POOL_MEMBER_HASH,
    POOL_OUTER_MOD_HASH,
    POOL_WAITING_ROOM_HASH,
)
from chia.pools.pool_wallet_info import LEAVING_POOL, SELF_POOLING  # noqa: E402
from chia.util.casts import int_to_bytes  # noqa: E402

__all__ += ["plotnft_puzzle_hash"]


# CLVM tree hashes (chia.wallet.util.curry_and_treehash's, on plain bytes: its bytes32 results cost more than the
# hashing itself).
def _atom(atom: bytes) -> bytes:
    return sha256(b"\x01" + atom).digest()


def _pair(left: bytes, right: bytes) -> bytes:
    return sha256(b"\x02" + left + right).digest()


_Q, _A, _C, _NIL = _atom(b"\x01"), _atom(b"\x02"), _atom(b"\x04"), _atom(b"")


def _curried(mod_hash: bytes, *arguments: bytes) -> bytes:
    """The tree hash of the module curried with arguments of these tree hashes: (a (q . mod) (c (q . arg) ... 1))."""
    values = _Q  # the atom 1, the whole environment, which the curried arguments are consed onto
    for argument in reversed(arguments):
        values = _pair(_C, _pair(_pair(_Q, argument), _pair(values, _NIL)))
    return _pair(_A, _pair(_pair(_Q, mod_hash), _pair(values, _NIL)))


_LAUNCHER_HASH = _atom(SINGLETON_LAUNCHER_HASH)
_OUTER_MOD_HASH = _atom(POOL_OUTER_MOD_HASH)


def plotnft_puzzle_hash(
    state: PoolState, launcher_id: bytes32, genesis_challenge: bytes32, delay_time: int, delay_puzzle_hash: bytes32
) -> bytes32:
    """The full singleton puzzle hash of a PlotNFT while ``state`` is in force: what
    ``create_full_puzzle(pool_state_to_inner_puzzle(...), launcher_id).get_tree_hash()`` gives, computed from the
    tree hashes of the curried arguments instead of building the puzzle and serializing it (docs/performance.md: sixty
    times the cost)."""
    launcher = _atom(launcher_id)
    p2_singleton = _curried(
        P2_SINGLETON_HASH,
        _OUTER_MOD_HASH,
        launcher,
        _LAUNCHER_HASH,
        _atom(int_to_bytes(delay_time)),
        _atom(delay_puzzle_hash),
    )
    target, owner = _atom(state.target_puzzle_hash), _atom(bytes(state.owner_pubkey))
    shared = (target, _atom(p2_singleton), owner, _atom(genesis_challenge[:16] + bytes(16)))
    inner = _curried(POOL_WAITING_ROOM_HASH, *shared, _atom(int_to_bytes(int(state.relative_lock_height))))
    if state.state not in {LEAVING_POOL.value, SELF_POOLING.value}:
        inner = _curried(POOL_MEMBER_HASH, *shared, _atom(inner))
    return bytes32(_curried(POOL_OUTER_MOD_HASH, _pair(_OUTER_MOD_HASH, _pair(launcher, _LAUNCHER_HASH)), inner))


def stored_pool_state(data: bytes) -> PoolState:
    """A PoolState the pool itself serialized (a farmer's recorded state, checked when it was read from the chain):
    decoded field by field with its owner key's point taken as it is; only for reading what the state says (puzzle
    hashes, the target), never for a key that verifies a signature. ``PoolState.from_bytes`` checks the point (on
    the curve, in the subgroup), two thirds of its cost, and a pass over ten thousand recorded states decoded each
    once after a start. Anything that is not exactly such a state's bytes goes through ``from_bytes`` (and its
    errors)."""
    try:
        state = _pool_state_fields(data)
    except (IndexError, ValueError, UnicodeDecodeError):
        return PoolState.from_bytes(data)
    return state if bytes(state) == data else PoolState.from_bytes(data)


def _pool_state_fields(data: bytes) -> PoolState:
    # version u8, state u8, target_puzzle_hash bytes32, owner_pubkey G1 (48), pool_url Optional[str] (a presence byte,
    # then a u32 length and UTF-8), relative_lock_height u32: chia's Streamable layout of PoolState.
    url: str | None = None
    at = 82
    if data[at] == 1:
        length = int.from_bytes(data[at + 1 : at + 5], "big")
        url = data[at + 5 : at + 5 + length].decode()
        at += 5 + length
    elif data[at] != 0:
        raise ValueError("not an optional's presence byte")
    else:
        at += 1
    if len(data) != at + 4:
        raise ValueError("not a PoolState's length")
    return PoolState(
        uint8(data[0]),
        uint8(data[1]),
        bytes32(data[2:34]),
        G1Element.from_bytes_unchecked(data[34:82]),
        url,
        uint32(int.from_bytes(data[at:], "big")),
    )


__all__ += ["stored_pool_state"]
