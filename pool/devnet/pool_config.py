"""The pool configuration used on the embedded devnet: the simulator's network, short intervals, SQLite in the work dir.

Built as the same YAML-shaped document an operator writes and validated by the same parser, so the devnet exercises
the real configuration path.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pool.chia_adapter import bytes32, encode_puzzle_hash, std_hash
from pool.config import PoolConfig, address_prefix_for, default_max_in_flight, parse_config
from pool.devnet.world import World

# The devnet's operator token (it guards nothing: the devnet pool listens on 127.0.0.1 and its chain is simulated).
# GET /status and GET /metrics are closed without a token; the demo, the tests and the benchmark send this one.
DEVNET_OPERATOR_TOKEN = "devnet-operator-token"
OPERATOR_HEADERS = {"Authorization": f"Bearer {DEVNET_OPERATOR_TOKEN}"}


def devnet_pool_document(
    *,
    network: str,
    target_puzzle_hash: bytes32,
    node_host: str,
    node_port: int,
    node_root: Path,
    wallet_host: str,
    wallet_port: int,
    wallet_root: Path,
    wallet_fingerprint: int | None,
    store_path: Path,
    server_port: int,
    relative_lock_height: int = 5,
    confirmation_threshold: int = 2,
    fee: str = "0.01",
    rewards: dict[str, Any] | None = None,
    payouts: dict[str, Any] | None = None,
    fees: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """``rewards``, ``payouts`` and ``fees``: keys that override (or add to) those sections, as an operator would
    write them (e.g. ``{"claim_fee": 1000}``, ``{"scheme": "pplns", "min_payment": 20_000_000_000}``,
    ``{"maximum": 0}``)."""
    prefix = address_prefix_for(network)
    # The fee goes to an address nobody on the devnet owns, so the farmer's and the pool's balances stay readable.
    fee_address = encode_puzzle_hash(bytes32(std_hash(b"devnet pool fee")), prefix)
    return {
        "pool": {
            "name": "Devnet Pool",
            "logo_url": "",
            "description": "A pool on an embedded simulated chain",
            "welcome_message": "Welcome to the devnet pool",
            "fee": fee,
            "fee_address": fee_address,
            "target_address": encode_puzzle_hash(target_puzzle_hash, prefix),
            "relative_lock_height": relative_lock_height,
            "authentication_token_timeout": 5,
        },
        # 300 partials in 10 minutes: the devnet's signage points come many times faster than mainnet's, and with the
        # default day the difficulty would climb past what its k20 plots can ever meet (about 2e9).
        "difficulty": {"minimum": 1, "default": 1, "number_of_partials_target": 300, "time_target": 600},
        # Every farmer of the devnet (and the benchmark's sender) connects from 127.0.0.1: one address may take every
        # place among partials in flight.
        "partials": {
            "time_limit": 25,
            "confirmation_delay": 2,
            "signage_point_wait": 3,
            "max_in_flight_per_address": default_max_in_flight(),
        },
        "chain": {
            "network": network,
            "chia_root": str(node_root),
            "full_node": {"host": node_host, "rpc_port": node_port, "chia_root": str(node_root)},
            "wallet": {"host": wallet_host, "rpc_port": wallet_port, "chia_root": str(wallet_root)},
            "wallet_fingerprint": wallet_fingerprint,
            "confirmation_security_threshold": confirmation_threshold,
        },
        "rewards": {"collect_interval": 2, "claim_fee": 0, **(rewards or {})},
        # fee_reserve 0: the whole fee share goes to the fee address each round, so tests can check it to the mojo.
        "payouts": {
            "interval": 5,
            "scheme": "proportional",
            "max_additions_per_transaction": 100,
            "fee_reserve": 0,
            **(payouts or {}),
        },
        "fees": {**(fees or {})},
        "loops": {"peak_interval": 0.5, "confirm_interval": 1, "singleton_interval": 2, "difficulty_interval": 5},
        # Farmers' webhooks on the devnet are the tests' receivers on 127.0.0.1.
        "notifications": {"allow_private_webhooks": True, "interval": 0.5, "retry_after": 1},
        # Tests (and the benchmark) read the gauges right after what changes them: no cached state.
        "server": {
            "host": "127.0.0.1",
            "port": server_port,
            "operator_token": DEVNET_OPERATOR_TOKEN,
            "metrics_cache_seconds": 0,
        },
        # The devnet's signage points come every half second or faster (mainnet: every ~9.4 s), and every farmer
        # connects from 127.0.0.1: the limits are scaled up accordingly.
        "limits": {
            "per_address": {"rate": 1000, "burst": 5000},
            "per_launcher": {"rate": 100, "burst": 1000},
            "signage_point_lookups": {"rate": 50, "burst": 500},
            "connections_per_address": 10_000,
            "failed_signatures": {"rate": 100, "burst": 1000},
            "failed_signatures_per_address": {"rate": 1000, "burst": 5000},
            "launcher_lookups": {"rate": 100, "burst": 1000},
            "singleton_walks": {"rate": 100, "burst": 1000},
            "refused_requests": {"rate": 1000, "burst": 5000},
        },
        "store": {"backend": "sqlite", "path": str(store_path)},
        "logging": {"level": "INFO"},
    }


def devnet_pool_config(**kwargs: Any) -> PoolConfig:
    document = devnet_pool_document(**kwargs)
    return parse_config(document, Path(document["store"]["path"]).parent)


def world_pool_document(world: World, *, store_path: Path, server_port: int, **options: Any) -> dict[str, Any]:
    """The devnet pool configuration document for a running World: its network, node, pool wallet and target
    address (the YAML an operator would write; ``options`` as for devnet_pool_document)."""
    return devnet_pool_document(
        network=world.network,
        target_puzzle_hash=world.pool_target_puzzle_hash,
        node_host=world.full_node_rpc.host,
        node_port=world.full_node_rpc.port,
        node_root=world.full_node_rpc.root_path,
        wallet_host=world.pool_wallet_rpc.host,
        wallet_port=world.pool_wallet_rpc.port,
        wallet_root=world.pool_wallet_rpc.root_path,
        wallet_fingerprint=world.pool_wallet_fingerprint,
        store_path=store_path,
        server_port=server_port,
        **options,
    )


def world_pool_config(world: World, *, store_path: Path, server_port: int, **options: Any) -> PoolConfig:
    """The devnet pool configuration for a running World, parsed."""
    document = world_pool_document(world, store_path=store_path, server_port=server_port, **options)
    return parse_config(document, store_path.parent)
