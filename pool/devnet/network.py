"""The devnet network: its name, its consensus constants, and how a chia config.yaml is switched over to it.

chia's test constants on a genesis of their own, written into `network_overrides` the way chia's own networks are, so
that every service (and the pool) rebuilds the same constants from config.yaml.
"""

from __future__ import annotations

from typing import Any

from chia_rs import ConsensusConstants
from chia_rs.sized_ints import uint16, uint32

from pool.chia_adapter.simulation import (
    DEFAULT_CONSTANTS,
    replace_str_to_bytes,
    std_hash,
    test_constants,
)

# "simulator" in the network name makes chia's full node report itself synced without peers (chia dev sim uses it).
NETWORK = "simulator0"
# Section of chia's default config whose address prefix and port the devnet network reuses.
_TEMPLATE_NETWORK = "testnet0"
# A genesis of its own: signatures made on the devnet (AGG_SIG_ME) are worthless on any other chain.
DEVNET_GENESIS_CHALLENGE = std_hash(b"chia pool devnet genesis")
# Rewards of blocks nobody should own (plain farm_blocks calls) go here.
BURN_PUZZLE_HASH = std_hash(b"chia pool devnet burn")
# The devnet's VDF discriminant. BlockTools proves every VDF of every block and signage point, and that work is most
# of what a devnet block costs, and it grows with the discriminant's size (docs/performance.md). The pool never
# checks a VDF, and 256 bits is plenty for distinct signage points (see devnet_constants); the benchmark's own corpus
# keeps 1024 bits, for the node's share of its CPU figures.
DISCRIMINANT_BITS = 256


def devnet_constants(discriminant_bits: int) -> ConsensusConstants:
    """chia's test constants on a genesis of their own, with a discriminant large enough for distinct VDF outputs.

    chia's 16-bit test discriminant makes signage point hashes repeat within a sub-slot (its class group has a few
    hundred elements); from 256 bits on (a group of some 2**128 elements) they never do.
    """
    # HARD_FORK_HEIGHT 0: chia's test constants keep mainnet's hard fork height (5 496 000), which a devnet never
    # reaches. Below it the full node still builds a block from its mempool when chia's farmer finds a winning proof,
    # but in the post-fork generator format, and then checks it by the pre-fork rules, whose cost exceeds the block
    # maximum ("Cannot farm blocks pre-hard fork", "Error farming block ... BLOCK_COST_EXCEEDS_MAX"). From genesis on,
    # the devnet follows today's mainnet rules.
    base = test_constants.replace(DISCRIMINANT_SIZE_BITS=uint16(discriminant_bits), HARD_FORK_HEIGHT=uint32(0))
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
