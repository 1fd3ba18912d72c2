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
import math
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

from pool.chain.interface import ChallengeInfo, FullNode, PeakInfo
from pool.chia_adapter import bytes32
from pool.protocol.errors import PoolProtocolError

T = TypeVar("T")

DEFAULT_POLL_INTERVAL = 0.25  # seconds between two asks for a signage point the node does not know yet
# A found signage point is re-read after this long, so a reorg that reverts it is noticed by later partials.
DEFAULT_FOUND_TTL = 5.0
DEFAULT_MAX_ENTRIES = 4096  # well above the signage points of the time a partial may take (~64 per 10 min)
DEFAULT_PEAK_TTL = 2.0

_Key = tuple[bytes32, bool]  # (sp_hash, end_of_sub_slot)


class SharedLookups(Generic[T]):
    """At most one running lookup per key; every caller of the same key awaits the same task."""

    def __init__(self) -> None:
        self._running: dict[object, asyncio.Task[T]] = {}

    async def run(self, key: object, start: Callable[[], Awaitable[T]]) -> T:
        self.start(key, start)
        # shield: one caller giving up (its client disconnected) must not cancel the others' lookup.
        return await asyncio.shield(self._running[key])

    def start(self, key: object, start: Callable[[], Awaitable[T]]) -> None:
        """Start the lookup unless one for the key is running. Started alone (a background re-read), its failure
        is dropped: the next caller of ``run`` meets it again."""
        if key not in self._running:
            task = asyncio.ensure_future(start())
            self._running[key] = task
            task.add_done_callback(lambda done: self._finished(key, done))

    def is_running(self, key: object) -> bool:
        return key in self._running

    def _finished(self, key: object, task: asyncio.Task[T]) -> None:
        self._running.pop(key, None)
        if not task.cancelled():
            task.exception()  # mark it retrieved: callers that gave up must not leave "never retrieved" warnings


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
        self._found_ttl = found_ttl
        self._refresh_after = found_ttl / 2 if refresh_after is None else refresh_after
        self._max_entries = max_entries
        self._clock = clock
        self._found: OrderedDict[_Key, tuple[ChallengeInfo, float]] = OrderedDict()
        self._lookups: SharedLookups[ChallengeInfo | None] = SharedLookups()
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
        cached = self._found.get(key)
        age = math.inf if cached is None else self._clock() - cached[1]
        hit = age < self._found_ttl
        if self._on_lookup is not None:
            self._on_lookup(hit)
        if cached is not None and hit:
            if age >= self._refresh_after:
                self._refresh_in_background(key, admit)
            return cached[0]
        if admit is not None and not self._lookups.is_running(key):
            admit()
        return await self._lookups.run(key, lambda: self._poll(key, self._wait if wait is None else wait))

    def _refresh_in_background(self, key: _Key, admit: Callable[[], None] | None) -> None:
        refresh_key = ("refresh", key)
        if self._lookups.is_running(refresh_key) or self._lookups.is_running(key):
            return
        if admit is not None:
            try:
                admit()  # a re-read asks the node as a first look-up does, and counts the same
            except PoolProtocolError:
                return  # refused: the cached view is still within its time to live
        self._lookups.start(refresh_key, lambda: self._reread(key))

    async def _reread(self, key: _Key) -> ChallengeInfo | None:
        """One ask; a signage point the node no longer finds keeps its cached view until that expires (then a
        caller's own look-up polls for it and reports it not found)."""
        info = await self._ask_node(key)
        if info is not None:
            self._remember(key, info)
        return info

    async def _poll(self, key: _Key, wait: float) -> ChallengeInfo | None:
        deadline = self._clock() + wait
        while True:
            info = await self._ask_node(key)
            if info is not None:
                self._remember(key, info)
                return info
            if self._clock() + self._poll_interval > deadline:
                return None
            await asyncio.sleep(self._poll_interval)

    async def _ask_node(self, key: _Key) -> ChallengeInfo | None:
        self.node_requests += 1
        sp_hash, end_of_sub_slot = key
        if end_of_sub_slot:
            return await self._node.end_of_sub_slot(sp_hash)
        return await self._node.signage_point(sp_hash)

    def _remember(self, key: _Key, info: ChallengeInfo) -> None:
        self._found[key] = (info, self._clock())
        self._found.move_to_end(key)
        while len(self._found) > self._max_entries:
            self._found.popitem(last=False)  # the oldest: its partials are long past the time limit


class PeakCache:
    """The node's peak, never older than ``ttl`` seconds (proof checks need its heights): re-read in the background
    after ``ttl / 2``, waited for only when older than ``ttl``."""

    def __init__(self, node: FullNode, ttl: float = DEFAULT_PEAK_TTL, clock: Callable[[], float] = time.monotonic):
        self._node = node
        self._ttl = ttl
        self._refresh_after = ttl / 2
        self._clock = clock
        self._peak: tuple[PeakInfo, float] | None = None
        self._lookups: SharedLookups[PeakInfo] = SharedLookups()

    async def get(self) -> PeakInfo:
        """Raises ChainUnavailable if the node cannot be asked."""
        if self._peak is not None:
            age = self._clock() - self._peak[1]
            if age < self._ttl:
                if age >= self._refresh_after:
                    self._lookups.start("peak", self._fetch)
                return self._peak[0]
        return await self._lookups.run("peak", self._fetch)

    async def _fetch(self) -> PeakInfo:
        peak = await self._node.peak()
        self._peak = (peak, self._clock())
        return peak
