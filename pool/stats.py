"""In-process counters for operators (status line, later metrics). Not durable on purpose: nothing here is money;
partials, points and payments live in the store."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field


@dataclass
class PoolStats:
    partials_accepted: int = 0
    partials_rejected: Counter[str] = field(default_factory=Counter)  # by error code name
    stale_partials: int = 0  # settled without their signage point since start (see partials.stale_partials)

    def accepted(self) -> None:
        self.partials_accepted += 1

    def rejected(self, reason: str) -> None:
        self.partials_rejected[reason] += 1
