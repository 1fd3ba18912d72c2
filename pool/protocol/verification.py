"""BLS signature checks off the event loop.

``chia_rs.AugSchemeMPL.aggregate_verify`` releases the GIL, so a few threads let one pool process check partials on
every core while the event loop goes on parsing and answering other requests. The proof-of-space check (chiapos) is
short: it stays on the event loop, where a thread hand-off would cost more.

The threads are our own rather than a ``ThreadPoolExecutor``: ``run_in_executor`` wraps every call in two futures
chained by callbacks, a work item and a condition variable, all of it on the event loop's time. Here a check is one
queue entry, and its answer one call back into the loop.

Checks waiting together are verified together. One thread at a time gathers a batch: the checks queued, and when
checks arrive more often than every ``BATCH_WAIT`` seconds those arriving until its first check has waited that long
(up to ``MAX_BATCH``). It adds their signatures up and verifies the sum against all their keys and messages in one
``aggregate_verify``: one final exponentiation for the batch instead of one per check, the costliest single step of
a pairing check (docs/performance.md has the cost per batch size). While it verifies, the next thread gathers. At a
few partials a second nothing waits: a check arriving alone is verified alone.

Why a sum that verifies proves every check: the sum equals the aggregate signature of every (key, message) pair of the
batch. Signatures of honest clients contribute exactly their own pairs. For the rest to balance, whoever sent the
other checks must produce the aggregate signature of their pairs, which needs the secret key of every key in them
(forging it would break the aggregate signature scheme itself). So a check whose signature is wrong can pass in a
batch only if its sender holds all of its keys and another check of its own carries the difference: it could as well
have signed correctly, and gains nothing. A batch whose sum fails is verified check by check, so one bad signature
costs its batch one extra verification and never fails another client's partial. Only checks with as many messages as
keys are batched (the pairs of different checks must not shift against each other); any other goes alone.
"""

from __future__ import annotations

import asyncio
import queue
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass

from pool.chia_adapter import AugSchemeMPL, G1Element, G2Element

# Checks verified in one sum at most: beyond it the saving per check is small (the hashing and the pairings of each
# key stay), and a failed batch costs at most this many extra checks.
MAX_BATCH = 16
# How long a check waits for others to share its batch, at most (from when it was queued), when checks arrive more
# often than that (the mean gap over about the last eight): under sustained load a batch gathers a few, each costing
# less CPU. Slower, checks wait only within a burst (the partials right after a signage point).
BATCH_WAIT = 0.004


@dataclass(frozen=True, eq=False)
class SignedMessages:
    """An AugSchemeMPL aggregate signature over messages[i] by public_keys[i], for every i."""

    public_keys: list[G1Element]
    messages: list[bytes]
    signature: G2Element


@dataclass(frozen=True, eq=False)
class _Check:
    signed: SignedMessages
    answer: asyncio.Future[bool]
    loop: asyncio.AbstractEventLoop
    queued_at: float  # time.monotonic()


class SignatureVerifier:
    """``threads`` verifying threads; 0 verifies on the calling (event loop) thread."""

    def __init__(self, threads: int) -> None:
        self._checks: queue.SimpleQueue[_Check | None] = queue.SimpleQueue()
        self._gathering = threading.Lock()
        self._last_arrival = time.monotonic()
        self._mean_gap = 1.0  # seconds between checks: nothing is waited for until checks come often
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
        self._checks.put(_Check(SignedMessages(keys, payloads, signature), answer, loop, time.monotonic()))
        return await answer

    def _gather(self) -> tuple[list[_Check], bool]:
        """The next batch: the checks waiting, and those arriving until the first has waited ``BATCH_WAIT`` seconds
        (at most MAX_BATCH); False once this thread's stop sign was taken."""
        first = self._checks.get()
        if first is None:
            return [], False
        batch = [first]
        self._note_arrival(first)
        # Waiting pays only if another check is likely within the wait: at a few partials a second it would only
        # make every answer later.
        deadline = first.queued_at + (BATCH_WAIT if self._mean_gap < BATCH_WAIT else 0.0)
        while len(batch) < MAX_BATCH:
            try:
                check = self._checks.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                break
            if check is None:  # the batch taken is still answered
                return batch, False
            batch.append(check)
            self._note_arrival(check)
        return batch, True

    def _note_arrival(self, check: _Check) -> None:
        """The mean time between checks, over about the last eight (only the gathering thread calls this)."""
        gap = min(1.0, max(0.0, check.queued_at - self._last_arrival))
        self._last_arrival = check.queued_at
        self._mean_gap += (gap - self._mean_gap) / 8

    def close(self) -> None:
        """The threads stop after the checks already queued (their requests are gone with the event loop)."""
        for _ in self._threads:
            self._checks.put(None)  # one stop sign per thread
        self._threads = []

    def _serve(self) -> None:
        running = True
        while running:
            # One thread gathers a batch at a time (the others verify theirs meanwhile): two threads gathering at
            # once would split the checks arriving between them into smaller batches.
            with self._gathering:
                batch, running = self._gather()
            if not batch:
                return
            outcomes = verify_together([check.signed for check in batch])
            answers: dict[asyncio.AbstractEventLoop, list[tuple[asyncio.Future[bool], bool | Exception]]] = {}
            for check, outcome in zip(batch, outcomes, strict=True):
                answers.setdefault(check.loop, []).append((check.answer, outcome))
            for loop, loop_answers in answers.items():  # one wake-up of each event loop per batch
                try:
                    loop.call_soon_threadsafe(_answer_all, loop_answers)
                except RuntimeError:  # the event loop is closed: nobody waits for these answers any more
                    pass


def verify_together(checks: Sequence[SignedMessages]) -> list[bool | Exception]:
    """Each check's outcome: all True if the batch's sum verifies, else each check verified on its own."""
    together = [len(check.public_keys) == len(check.messages) > 0 for check in checks]
    batchable = [check for check, joins in zip(checks, together, strict=True) if joins]
    if len(batchable) > 1:
        try:
            signature = AugSchemeMPL.aggregate([check.signature for check in batchable])
            keys = [key for check in batchable for key in check.public_keys]
            messages = [message for check in batchable for message in check.messages]
            if AugSchemeMPL.aggregate_verify(keys, messages, signature):
                return [True if joins else verify_alone(check) for check, joins in zip(checks, together, strict=True)]
        except Exception:  # a check that raises is found, and its exception raised, one by one below
            pass
    return [verify_alone(check) for check in checks]


def verify_alone(check: SignedMessages) -> bool | Exception:
    try:
        return bool(AugSchemeMPL.aggregate_verify(check.public_keys, check.messages, check.signature))
    except Exception as exc:  # raised in the request, as a direct call would
        return exc


def _answer_all(answers: list[tuple[asyncio.Future[bool], bool | Exception]]) -> None:
    for answer, outcome in answers:
        if answer.done():  # the request was cancelled (its client went away)
            continue
        if isinstance(outcome, Exception):
            answer.set_exception(outcome)
        else:
            answer.set_result(outcome)
