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

Two lanes. A check whose sender signed for the same launcher id from the same address before (``trusted``, told by
the caller) goes in the first lane; any other check in the second. The first lane is always served first, in
batches as above. The second is verified one check at a time, by at most all the threads but one, and only while the
first is empty: its checks are the ones that may be forged (a client naming somebody else's launcher id), which would
make a batch fail and be verified twice, and which must not make the farmers the pool knows wait. A check of the
second lane is answered ``VerifierBusy`` unchecked when ``UNTRUSTED_QUEUED`` checks wait there already, or once it
waited ``UNTRUSTED_WAIT`` seconds: the pool answers "busy, send it again" rather than holding it without end.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field

from pool.chia_adapter import AugSchemeMPL, G1Element, G2Element

# Checks verified in one sum at most: beyond it the saving per check is small (the hashing and the pairings of each
# key stay), and a failed batch costs at most this many extra checks.
MAX_BATCH = 16
# How long a check waits for others to share its batch, at most (from when it was queued), when checks arrive more
# often than that (the mean gap over about the last eight): under sustained load a batch gathers a few, each costing
# less CPU. Slower, checks wait only within a burst (the partials right after a signage point).
BATCH_WAIT = 0.004
# The second lane (checks of senders not trusted yet): checks waiting there at most, and how long one may wait. About
# half a second of one thread's work, and a few seconds: a farmer that the pool does not know from that address yet
# (its first partial after the pool started, or from a new address) is answered busy rather than late.
UNTRUSTED_QUEUED = 256
UNTRUSTED_WAIT = 2.0


class VerifierBusy(Exception):
    """A check of the second lane answered unchecked: too many such checks wait, or this one waited too long."""


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


@dataclass
class _Work:
    """What a thread took: checks to verify (a batch of the first lane, or one of the second), and checks of the
    second lane to answer busy."""

    checks: list[_Check] = field(default_factory=list)
    trusted: bool = True
    shed: list[_Check] = field(default_factory=list)


class SignatureVerifier:
    """``threads`` verifying threads; 0 verifies on the calling (event loop) thread."""

    def __init__(self, threads: int) -> None:
        self._arrived = threading.Condition()  # guards the lanes and the counts below
        self._trusted: deque[_Check] = deque()
        self._untrusted: deque[_Check] = deque()
        self._untrusted_running = 0
        self._untrusted_threads = max(1, threads - 1)
        self._closing = False
        self._gathering = threading.Lock()
        self._last_arrival = time.monotonic()
        self._mean_gap = 1.0  # seconds between checks of the first lane: none is waited for until they come often
        self.shed = 0  # checks of the second lane answered busy, since start
        self._threads = [
            threading.Thread(target=self._serve, name=f"verify-{number}", daemon=True) for number in range(threads)
        ]
        for thread in self._threads:
            thread.start()

    async def aggregate_verify(
        self, public_keys: Sequence[G1Element], messages: Sequence[bytes], signature: G2Element, trusted: bool = True
    ) -> bool:
        """Whether the signature verifies; raises VerifierBusy for an untrusted check the verifier will not make."""
        keys, payloads = list(public_keys), list(messages)
        if not self._threads:
            return bool(AugSchemeMPL.aggregate_verify(keys, payloads, signature))
        loop = asyncio.get_running_loop()
        answer: asyncio.Future[bool] = loop.create_future()
        check = _Check(SignedMessages(keys, payloads, signature), answer, loop, time.monotonic())
        with self._arrived:
            if trusted:
                self._note_arrival(check)
                self._trusted.append(check)
            elif len(self._untrusted) >= UNTRUSTED_QUEUED:
                self.shed += 1
                raise VerifierBusy(f"{UNTRUSTED_QUEUED} signature checks of unknown senders wait already")
            else:
                self._untrusted.append(check)
            self._arrived.notify()
        return await answer

    def _note_arrival(self, check: _Check) -> None:
        """The mean time between checks of the first lane, over about the last eight (under the lanes' lock)."""
        gap = min(1.0, max(0.0, check.queued_at - self._last_arrival))
        self._last_arrival = check.queued_at
        self._mean_gap += (gap - self._mean_gap) / 8

    def _next(self) -> _Work | None:
        """The next work: a batch of the first lane, else a check of the second if a thread may take one; None once
        the verifier is closed and both lanes are empty."""
        with self._arrived:
            while True:
                if self._trusted:
                    return _Work(self._gather())
                work = self._untrusted_work()
                if work is not None:
                    return work
                if self._closing and not self._untrusted:
                    return None
                self._arrived.wait()

    def _gather(self) -> list[_Check]:
        """A batch of the first lane: the checks waiting, and those arriving until the first has waited
        ``BATCH_WAIT`` seconds (at most MAX_BATCH); under the lanes' lock."""
        first = self._trusted.popleft()
        batch = [first]
        # Waiting pays only if another check is likely within the wait: at a few partials a second it would only
        # make every answer later.
        deadline = first.queued_at + (BATCH_WAIT if self._mean_gap < BATCH_WAIT else 0.0)
        while len(batch) < MAX_BATCH:
            if self._trusted:
                batch.append(self._trusted.popleft())
                continue
            left = deadline - time.monotonic()
            if left <= 0 or self._closing:
                break
            self._arrived.wait(left)
        return batch

    def _untrusted_work(self) -> _Work | None:
        """A check of the second lane, with those that waited too long before it to answer busy; None when there is
        none, or when all the threads it may use are busy with it (under the lanes' lock)."""
        if self._untrusted_running >= self._untrusted_threads:
            return None
        work = _Work(trusted=False)
        now = time.monotonic()
        while self._untrusted:
            check = self._untrusted.popleft()
            if now - check.queued_at > UNTRUSTED_WAIT:
                work.shed.append(check)
                continue
            work.checks.append(check)
            self._untrusted_running += 1
            break
        self.shed += len(work.shed)
        return work if work.checks or work.shed else None

    def close(self) -> None:
        """The threads stop after the checks already queued (their requests are gone with the event loop)."""
        with self._arrived:
            self._closing = True
            self._arrived.notify_all()
        self._threads = []

    def _serve(self) -> None:
        while True:
            # One thread gathers a batch at a time (the others verify theirs meanwhile): two threads gathering at
            # once would split the checks arriving between them into smaller batches.
            with self._gathering:
                work = self._next()
            if work is None:
                return
            outcomes: list[bool | Exception] = (
                verify_together([check.signed for check in work.checks])
                if work.trusted
                else [verify_alone(check.signed) for check in work.checks]
            )
            if not work.trusted and work.checks:
                with self._arrived:
                    self._untrusted_running -= 1
                    self._arrived.notify()
            busy = VerifierBusy(f"waited more than {UNTRUSTED_WAIT:g} s among signature checks of unknown senders")
            _answer(list(zip(work.checks, outcomes, strict=True)) + [(check, busy) for check in work.shed])


def _answer(outcomes: list[tuple[_Check, bool | Exception]]) -> None:
    answers: dict[asyncio.AbstractEventLoop, list[tuple[asyncio.Future[bool], bool | Exception]]] = {}
    for check, outcome in outcomes:
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
