"""Reads of the node shared by every caller that needs them at the same time, and kept fresh in the background.

Many callers need the same few facts from the node (the peak, a signage point, the sub-slot iterations) within seconds
of each other. ``SharedLookups`` runs at most one read per key, every caller of the key awaiting it. ``RefreshedReads``
keeps what was read, under one policy: a value is used for ``ttl`` seconds; once ``refresh_after`` (half the time to
live by default) has passed, the next caller starts one re-read in the background and is answered with the kept value
at once; past the time to live the value is not used, callers wait for a fresh one. So nobody waits for a re-read
while the node answers in time, and nobody relies on a value older than the time to live.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Hashable
from dataclasses import dataclass
from typing import Generic, TypeVar

T = TypeVar("T")
K = TypeVar("K", bound=Hashable)
R = TypeVar("R")


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


@dataclass(frozen=True)
class KeptValue(Generic[R]):
    """A value younger than its time to live, and whether a background re-read of it should start now."""

    value: R
    reread_due: bool


class RefreshedReads(Generic[K, R]):
    """Values read from the node, per key, under the module's policy. A read that answers None (nothing found) keeps
    nothing. ``max_entries``: the oldest reads are forgotten beyond that many keys."""

    def __init__(
        self,
        ttl: float,
        *,
        refresh_after: float | None = None,
        max_entries: int | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._ttl = ttl
        self._refresh_after = ttl / 2 if refresh_after is None else refresh_after
        self._max_entries = max_entries
        self._clock = clock
        self._kept: OrderedDict[K, tuple[R, float]] = OrderedDict()  # key -> (value, when its read answered)
        self._flights: SharedLookups[R] = SharedLookups()

    async def get(self, key: K, read: Callable[[], Awaitable[R]]) -> R:
        """The whole policy, for a value re-read the way it is first read: the kept value (a re-read started in the
        background once due), or else a wait for a read. A caller that must wait joins a running re-read."""
        kept = self.kept(key)
        if kept is None:
            return await self.read(key, read)
        if kept.reread_due:
            self._flights.start(_waited_for(key), lambda: self._kept_after(key, read))
        return kept.value

    def kept(self, key: K) -> KeptValue[R] | None:
        """The value kept for ``key`` if younger than the time to live; starts nothing."""
        entry = self._kept.get(key)
        if entry is None:
            return None
        value, read_at = entry
        age = self._clock() - read_at
        if age >= self._ttl:
            return None
        due = age >= self._refresh_after and not self.reading(key) and not self._flights.is_running(_rereading(key))
        return KeptValue(value, due)

    def reading(self, key: K) -> bool:
        """Whether a read of ``key`` that callers wait for is running (a new caller would join it)."""
        return self._flights.is_running(_waited_for(key))

    async def read(self, key: K, read: Callable[[], Awaitable[R]]) -> R:
        """Wait for a read of ``key``: the running one, or else a new one. What it finds is kept."""
        return await self._flights.run(_waited_for(key), lambda: self._kept_after(key, read))

    def reread_in_background(self, key: K, reread: Callable[[], Awaitable[R]]) -> None:
        """Start a re-read of ``key`` that nobody waits for, unless one runs; what it finds replaces the kept value.
        Its failure is dropped: the kept value still answers, and past its time to live callers read again."""
        self._flights.start(_rereading(key), lambda: self._kept_after(key, reread))

    async def _kept_after(self, key: K, read: Callable[[], Awaitable[R]]) -> R:
        value = await read()
        if value is not None:
            self._kept[key] = (value, self._clock())
            self._kept.move_to_end(key)
            while self._max_entries is not None and len(self._kept) > self._max_entries:
                self._kept.popitem(last=False)  # the oldest read
        return value


def _waited_for(key: Hashable) -> tuple[str, Hashable]:
    return ("read", key)


def _rereading(key: Hashable) -> tuple[str, Hashable]:
    return ("reread", key)
