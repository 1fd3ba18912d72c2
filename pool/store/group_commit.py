"""Group commit for POST /partial: the partials (and refusal records) of concurrent requests share one transaction.

Every request still replies only after the transaction holding its partial committed, so an acknowledged partial
survives a kill -9; what is shared is the commit (one fsync on SQLite, one round trip on PostgreSQL) instead of one
per partial. There is no timer: the first request commits at once, alone, and requests arriving while a commit runs
form the next batch. At low load nothing waits; under load batches grow by themselves.
"""

from __future__ import annotations

import asyncio
from typing import TypeAlias

from pool.store.abstract import AbstractPoolStore
from pool.store.models import NotAdded, PartialRecord, PartialRefusal

DEFAULT_MAX_BATCH = 256

_Item: TypeAlias = PartialRecord | PartialRefusal
_Pending: TypeAlias = tuple[_Item, "asyncio.Future[int | NotAdded | None]"]


class PartialWriter:
    def __init__(self, store: AbstractPoolStore, max_batch: int = DEFAULT_MAX_BATCH) -> None:
        self._store = store
        self._max_batch = max_batch
        self._queue: list[_Pending] = []
        self._writer: asyncio.Task[None] | None = None
        self.batches = 0  # transactions committed (observable: tests, profiling)

    async def add_partial(self, partial: PartialRecord) -> int | NotAdded:
        """The partial's id once committed, or why it was not added (a duplicate proof, an unknown farmer)."""
        added = await self._submit(partial)
        assert added is not None
        return added

    async def add_refusal(self, refusal: PartialRefusal) -> None:
        """Returns once the refusal is committed (skipped if its farmer is unknown)."""
        await self._submit(refusal)

    async def _submit(self, item: _Item) -> int | NotAdded | None:
        done: asyncio.Future[int | NotAdded | None] = asyncio.get_running_loop().create_future()
        # A request whose client went away no longer awaits its outcome: a failed batch's error must not then be
        # logged by asyncio as "never retrieved" (it is the awaiting requests' to report).
        done.add_done_callback(_mark_retrieved)
        self._queue.append((item, done))
        if self._writer is None or self._writer.done():
            self._writer = asyncio.ensure_future(self._write_queued())
        # shield: a request given up by its client must not cancel the outcome the others' batch sets.
        return await asyncio.shield(done)

    async def _write_queued(self) -> None:
        while self._queue:
            batch, self._queue = self._queue[: self._max_batch], self._queue[self._max_batch :]
            await self._write(batch)

    async def _write(self, batch: list[_Pending]) -> None:
        partials = [(item, done) for item, done in batch if isinstance(item, PartialRecord)]
        refusals = [item for item, _ in batch if isinstance(item, PartialRefusal)]
        try:
            added = await self._store.record_partials([partial for partial, _ in partials], refusals)
        except Exception as exc:  # the whole batch failed: every request in it answers with the error
            for _, done in batch:
                if not done.done():
                    done.set_exception(exc)
            return
        except BaseException:  # the writer itself was cancelled (shutdown): its requests must not wait forever
            waiting, self._queue = batch + self._queue, []
            for _, done in waiting:
                done.cancel()
            raise
        self.batches += 1
        for (_, done), outcome in zip(partials, added, strict=True):
            if not done.done():
                done.set_result(outcome)
        for item, done in batch:
            if isinstance(item, PartialRefusal) and not done.done():
                done.set_result(None)


def _mark_retrieved(done: asyncio.Future[int | NotAdded | None]) -> None:
    if not done.cancelled():
        done.exception()
