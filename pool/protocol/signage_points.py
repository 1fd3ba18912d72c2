"""Shared, cached views of the node's signage points and peak for the partial checks.

Every farmer answers the same signage points, so each one is looked up from the node once and shared: concurrent
requests for the same hash await one lookup, and a hash the node has not seen yet (a farmer can be a little ahead of
the pool's node) is polled until ``wait`` seconds have passed. Nothing here holds a lock: a request waiting for one
signage point never delays requests for another.

A cached view is re-read from the node once it is half its time to live old, in the background: requests keep the
cached view meanwhile, so the partials of a busy signage point, and every partial at each peak refresh, never wait
for a re-read while the pool is healthy. Past its time to live, a view is not used: callers wait for a fresh one, so
no check ever relies on a view older than the time to live.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from pool.chain.interface import ChallengeInfo, FullNode, PeakInfo
from pool.chain.shared_reads import RefreshedReads
from pool.chia_adapter import bytes32
from pool.protocol.errors import PoolProtocolError

DEFAULT_POLL_INTERVAL = 0.25  # seconds between two asks for a signage point the node does not know yet
# A found signage point is re-read after this long, so a reorg that reverts it is noticed by later partials.
DEFAULT_FOUND_TTL = 5.0
DEFAULT_MAX_ENTRIES = 4096  # well above the signage points of the time a partial may take (~64 per 10 min)
DEFAULT_PEAK_TTL = 2.0

_Key = tuple[bytes32, bool]  # (sp_hash, end_of_sub_slot)


class SignagePointCache:
    def __init__(
        self,
        node: FullNode,
        *,
        wait: float,
        poll_interval: float = DEFAULT_POLL_INTERVAL,
        found_ttl: float = DEFAULT_FOUND_TTL,
        refresh_after: float | None = None,
        max_entries: int = DEFAULT_MAX_ENTRIES,
        clock: Callable[[], float] = time.monotonic,
        on_lookup: Callable[[bool], None] | None = None,
    ) -> None:
        self._node = node
        self._on_lookup = on_lookup  # called with True on a cache hit, False when the node is asked (metrics)
        self._wait = wait
        self._poll_interval = poll_interval
        self._clock = clock
        self._found: RefreshedReads[_Key, ChallengeInfo | None] = RefreshedReads(
            found_ttl, refresh_after=refresh_after, max_entries=max_entries, clock=clock
        )
        self.node_requests = 0  # asks sent to the node (observable, e.g. to test the sharing)

    async def lookup(
        self,
        sp_hash: bytes32,
        end_of_sub_slot: bool,
        wait: float | None = None,
        admit: Callable[[], None] | None = None,
    ) -> ChallengeInfo | None:
        """The signage point (or end of sub-slot) as the node saw it, or None if still unknown after the wait
        (``wait`` seconds, the cache's own by default; 0 asks the node once).

        ``admit`` is called only when this call would start a look-up at the node (not cached, nobody asking for it
        already), or a background re-read; it may refuse by raising (a refused re-read is skipped, the cached view
        answers). Raises ChainUnavailable if the node cannot be asked.
        """
        key = (sp_hash, end_of_sub_slot)
        kept = self._found.kept(key)
        if self._on_lookup is not None:
            self._on_lookup(kept is not None)
        if kept is not None:
            if kept.reread_due:
                self._reread_in_background(key, admit)
            return kept.value
        if admit is not None and not self._found.reading(key):
            admit()
        return await self._found.read(key, lambda: self._poll(key, self._wait if wait is None else wait))

    def _reread_in_background(self, key: _Key, admit: Callable[[], None] | None) -> None:
        if admit is not None:
            try:
                admit()  # a re-read asks the node as a first look-up does, and counts the same
            except PoolProtocolError:
                return  # refused: the cached view is still within its time to live
        # One ask: a signage point the node no longer finds keeps its cached view until that expires (then a
        # caller's own look-up polls for it and reports it not found).
        self._found.reread_in_background(key, lambda: self._ask_node(key))

    async def _poll(self, key: _Key, wait: float) -> ChallengeInfo | None:
        deadline = self._clock() + wait
        while True:
            info = await self._ask_node(key)
            if info is not None or self._clock() + self._poll_interval > deadline:
                return info
            await asyncio.sleep(self._poll_interval)

    async def _ask_node(self, key: _Key) -> ChallengeInfo | None:
        self.node_requests += 1
        sp_hash, end_of_sub_slot = key
        if end_of_sub_slot:
            return await self._node.end_of_sub_slot(sp_hash)
        return await self._node.signage_point(sp_hash)


class PeakCache:
    """The node's peak, never older than ``ttl`` seconds (proof checks need its heights): re-read in the background
    after ``ttl / 2``, waited for only when older than ``ttl``."""

    def __init__(self, node: FullNode, ttl: float = DEFAULT_PEAK_TTL, clock: Callable[[], float] = time.monotonic):
        self._node = node
        self._peak: RefreshedReads[str, PeakInfo] = RefreshedReads(ttl, clock=clock)

    async def get(self) -> PeakInfo:
        """Raises ChainUnavailable if the node cannot be asked."""
        return await self._peak.get("peak", self._node.peak)
