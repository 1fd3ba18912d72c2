"""Admission control for POST /partial: a bound on the partials being handled at once, and on those of one client.

Beyond the bound a partial is refused at once, before its body is parsed, with SERVER_EXCEPTION and a message telling
the farmer to retry (chia's farmer logs the error and goes on with its next proofs). Under twice the load the pool can
check, the alternative would be a queue that grows until requests time out on the farmer's side: every partial late,
and the pool answering nothing in time. With the bound, latency stays that of ``limit`` partials' work and the excess
costs almost nothing.

One client address may hold at most ``per_address`` of the places: a client that floods the pool (with its own
partials, or with partials forged for other farmers' launcher ids) is answered busy itself, and the places left stay
for everyone else. It takes ``limit / per_address`` addresses to fill them all, so the addresses that had no partial
accepted in the last ``PROVEN_FOR`` seconds hold at most half of the places together: forged partials, which are
never accepted, cannot take the places of the farmers the pool already knows, from however many addresses.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable

from pool.chia_adapter import PoolErrorCode
from pool.protocol.errors import PoolProtocolError
from pool.protocol.rate_limits import RecentKeys

BUSY_MESSAGE = "the pool is busy: too many partials at once; this one was not checked, send it again in a few seconds"
BUSY_FROM_ADDRESS = (
    "the pool is busy: too many partials at once from your address; this one was not checked, send it again in a few "
    "seconds"
)


PROVEN_FOR = 3600.0  # seconds an address counts as a farmer's after one of its partials was accepted
PROVEN_KEPT = 100_000  # addresses remembered at most (the least recently proven forgotten first)


class Admission:
    def __init__(
        self, limit: int, per_address: int | None = None, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.limit = limit
        self.per_address = limit if per_address is None else per_address
        self.unproven_limit = max(1, limit - limit // 2)  # places for addresses without an accepted partial lately
        self.in_flight = 0
        self.unproven_in_flight = 0
        self.refused = 0  # since start, for operators
        self._by_address: Counter[str] = Counter()
        self._unproven_by_address: Counter[str] = Counter()
        self._proven: RecentKeys[str] = RecentKeys(PROVEN_FOR, PROVEN_KEPT, clock)  # addresses with a partial accepted

    def enter(self, address: str) -> None:
        """Take a place, or raise the protocol's busy error when all ``limit`` places, or all ``per_address`` of
        the places ``address`` may hold, are taken."""
        if self.in_flight >= self.limit:
            self.refused += 1
            raise PoolProtocolError(PoolErrorCode.SERVER_EXCEPTION, BUSY_MESSAGE)
        if self._by_address[address] >= min(self.per_address, self.limit):
            self.refused += 1
            raise PoolProtocolError(PoolErrorCode.SERVER_EXCEPTION, BUSY_FROM_ADDRESS)
        proven = self.is_proven(address)
        if not proven and self.unproven_in_flight >= self.unproven_limit:
            self.refused += 1
            raise PoolProtocolError(PoolErrorCode.SERVER_EXCEPTION, BUSY_MESSAGE)
        self.in_flight += 1
        self._by_address[address] += 1
        if not proven:
            self.unproven_in_flight += 1
            self._unproven_by_address[address] += 1

    def leave(self, address: str) -> None:
        self.in_flight -= 1
        self._by_address[address] -= 1
        if self._by_address[address] <= 0:
            del self._by_address[address]
        if self._unproven_by_address[address] > 0:  # the address's unproven places go first
            self.unproven_in_flight -= 1
            self._unproven_by_address[address] -= 1
        if self._unproven_by_address[address] <= 0:
            del self._unproven_by_address[address]

    def prove(self, address: str) -> None:
        """A partial of ``address`` was accepted: it counts as a farmer's for ``PROVEN_FOR`` seconds."""
        self._proven.note(address)

    def is_proven(self, address: str) -> bool:
        return address in self._proven

    def held_by(self, address: str) -> int:
        return self._by_address[address]
