"""In-process counters for operators (status line, GET /status, GET /metrics). Not durable on purpose: nothing here
is money; partials, points and payments live in the store."""

from __future__ import annotations

import asyncio
from collections import Counter
from dataclasses import dataclass, field

from pool.metrics import PoolMetrics


@dataclass
class LoopHealth:
    """What GET /status tells about one background loop."""

    runs: int = 0
    last_success: int | None = None  # unix time
    last_error: str | None = None
    last_error_at: int | None = None
    last_duration: float | None = None  # seconds


@dataclass
class PoolStats:
    partials_accepted: int = 0
    partials_resent: int = 0  # proofs received again: answered as accepted, not credited again
    partials_rejected: Counter[str] = field(default_factory=Counter)  # by error code name
    stale_partials: int = 0  # settled without their signage point since start (see partials.stale_partials)
    loops: dict[str, LoopHealth] = field(default_factory=dict)
    metrics: PoolMetrics = field(default_factory=PoolMetrics)
    # Set once every loop of the process's LoopRunner ran its first pass: what lives as long as the process (the
    # singletons' checked tips, the figures kept between makings) is built by then (pool.server freezes it).
    first_passes: asyncio.Event = field(default_factory=asyncio.Event)

    def accepted(self) -> None:
        self.partials_accepted += 1
        self.metrics.partial_answered("accepted")

    def resent(self) -> None:
        """A proof received before, answered as accepted and credited only once (SPECIFICATION.md, POST /partial)."""
        self.partials_resent += 1
        self.metrics.partial_answered("resent")

    def rejected(self, reason: str) -> None:
        self.partials_rejected[reason] += 1
        self.metrics.partial_answered(reason)

    def loop_ran(self, name: str, seconds: float, now: int, error: str | None = None) -> None:
        health = self.loops.setdefault(name, LoopHealth())
        health.runs += 1
        health.last_duration = seconds
        if error is None:
            health.last_success = now
        else:
            health.last_error, health.last_error_at = error, now
        self.metrics.loop_ran(name, seconds, error is None, now)
