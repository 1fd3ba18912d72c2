"""Admission control for POST /partial: a bound on the partials being handled at once.

Beyond the bound a partial is refused at once, before its body is parsed, with SERVER_EXCEPTION and a message telling
the farmer to retry (chia's farmer logs the error and goes on with its next proofs). Under twice the load the pool can
check, the alternative would be a queue that grows until requests time out on the farmer's side: every partial late,
and the pool answering nothing in time. With the bound, latency stays that of ``limit`` partials' work and the excess
costs almost nothing.
"""

from __future__ import annotations

from pool.chia_adapter import PoolErrorCode
from pool.protocol.errors import PoolProtocolError

BUSY_MESSAGE = "the pool is busy: too many partials at once; this one was not checked, send it again in a few seconds"


class Admission:
    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.in_flight = 0
        self.refused = 0  # since start, for operators

    def enter(self) -> None:
        """Take a place, or raise the protocol's busy error when all ``limit`` places are taken."""
        if self.in_flight >= self.limit:
            self.refused += 1
            raise PoolProtocolError(PoolErrorCode.SERVER_EXCEPTION, BUSY_MESSAGE)
        self.in_flight += 1

    def leave(self) -> None:
        self.in_flight -= 1
