"""BLS signature checks off the event loop.

``chia_rs.AugSchemeMPL.aggregate_verify`` releases the GIL, so a few threads let one pool process check partials on
every core while the event loop goes on parsing and answering other requests. The proof-of-space check (chiapos) holds
the GIL and is short (~0.1 ms): it stays on the event loop, where a thread hand-off would cost more.

The threads are our own rather than a ``ThreadPoolExecutor``: ``run_in_executor`` wraps every call in two futures
chained by callbacks, a work item and a condition variable, about 30 microseconds of the event loop's time per
partial (2% of a signature check). Here a check is one queue entry, and its answer one call back into the loop.
"""

from __future__ import annotations

import asyncio
import queue
import threading
from collections.abc import Sequence
from dataclasses import dataclass

from pool.chia_adapter import AugSchemeMPL, G1Element, G2Element


@dataclass(frozen=True)
class _Check:
    public_keys: list[G1Element]
    messages: list[bytes]
    signature: G2Element
    answer: asyncio.Future[bool]
    loop: asyncio.AbstractEventLoop


class SignatureVerifier:
    """``threads`` verifying threads; 0 verifies on the calling (event loop) thread."""

    def __init__(self, threads: int) -> None:
        self._checks: queue.SimpleQueue[_Check | None] = queue.SimpleQueue()
        self._threads = [
            threading.Thread(target=self._serve, name=f"verify-{number}", daemon=True) for number in range(threads)
        ]
        for thread in self._threads:
            thread.start()

    async def aggregate_verify(
        self, public_keys: Sequence[G1Element], messages: Sequence[bytes], signature: G2Element
    ) -> bool:
        keys, payloads = list(public_keys), list(messages)
        if not self._threads:
            return bool(AugSchemeMPL.aggregate_verify(keys, payloads, signature))
        loop = asyncio.get_running_loop()
        answer: asyncio.Future[bool] = loop.create_future()
        self._checks.put(_Check(keys, payloads, signature, answer, loop))
        return await answer

    def close(self) -> None:
        """The threads stop after the checks already queued (their requests are gone with the event loop)."""
        for _ in self._threads:
            self._checks.put(None)  # one stop sign per thread
        self._threads = []

    def _serve(self) -> None:
        while (check := self._checks.get()) is not None:
            outcome: bool | Exception
            try:
                outcome = bool(AugSchemeMPL.aggregate_verify(check.public_keys, check.messages, check.signature))
            except Exception as exc:  # raised in the request, as a direct call would
                outcome = exc
            try:
                check.loop.call_soon_threadsafe(_answer, check.answer, outcome)
            except RuntimeError:  # the event loop is closed: nobody waits for this answer any more
                pass


def _answer(answer: asyncio.Future[bool], outcome: bool | Exception) -> None:
    if answer.done():  # the request was cancelled (its client went away)
        return
    if isinstance(outcome, Exception):
        answer.set_exception(outcome)
    else:
        answer.set_result(outcome)
