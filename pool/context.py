"""The running pool's shared parts, handed to the HTTP layer, the protocol's checks and the background loops.

Plain data: the composition root (pool/server.py) builds it, and the objects built on top of it (the signage point
cache, the rate limits, the partial checks, the loops) are built there too and handed to whoever uses them. So this
module imports nothing above the chain, the store and the process's counters.
"""

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
    # The same clock with sub-second precision (time limits); by default time.time(), or ``now`` when that is injected.
    precise_clock: Callable[[], float] | None = None
    stats: PoolStats = field(default_factory=PoolStats)  # counters for operators; not durable, not money

    def precise_now(self) -> float:
        """Unix time with sub-second precision, for time limits; an injected ``now`` clock is used as it is."""
        if self.precise_clock is not None:
            return self.precise_clock()
        return time.time() if self.now is unix_now else float(self.now())
