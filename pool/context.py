"""The running pool's shared parts, handed to the HTTP layer and the background loops."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from pool.chain.interface import FullNode, Wallet
from pool.chia_adapter import ConsensusConstants
from pool.config import PoolConfig
from pool.stats import PoolStats
from pool.store.abstract import AbstractPoolStore


def unix_now() -> int:
    return int(time.time())


@dataclass
class PoolContext:
    config: PoolConfig
    store: AbstractPoolStore
    node: FullNode
    wallet: Wallet
    constants: ConsensusConstants  # of the configured network (see chia_adapter.consensus_constants_for)
    now: Callable[[], int] = field(default=unix_now)  # injectable clock, integer unix seconds
    stats: PoolStats = field(default_factory=PoolStats)  # counters for operators; not durable, not money
