"""The load sender: corpus partials signed at send time and posted to the pool, open-loop at a fixed rate or
closed-loop as fast as N connections allow, with each partial's event announced to the node right before.

Every partial is sent once (the pool credits a proof once), so each phase takes the next partials of the corpus.
"""

from __future__ import annotations

import asyncio
import gc
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

import aiohttp

from pool.bench.corpus import Corpus, CorpusPartial
from pool.bench.processes import NodeProcess
from pool.bench.signing import Signer
from pool.chia_adapter import PoolErrorCode
from pool.protocol.auth import current_authentication_token


def freeze_client_heap() -> None:
    """The bench process's long-lived objects (the corpus and its partials, the results so far) frozen, as the pool
    freezes its own: a full garbage collection of this process walked them for 85-95 ms at a time, and every request
    in flight then measured that pause of the client as the pool's latency."""
    gc.collect()
    gc.freeze()


AUTHENTICATION_TOKEN_TIMEOUT = 5  # minutes: the devnet pool's pool.authentication_token_timeout
# As chia's farmer sends them (aiohttp adds the rest).
HEADERS = {"Content-Type": "application/json", "User-Agent": "chia-pool-bench", "chia-farmer-version": "2.7.5"}
ACCEPTED = "accepted"
LOOKAHEAD = 3  # events announced ahead of the one whose partials are being sent
# An open loop announces an event ahead only if its partials will go out within this many seconds: at a slow rate
# (a soak), an event announced three events early would see its partials reach the pool after its 25 s time limit.
LOOKAHEAD_SECONDS = 5
KEEPALIVE_SECONDS = 5.0


class Announcer:
    """Announces corpus events to the node in order, ``lookahead`` events ahead of the partials being sent (so that
    a block's validation does not stall the sender), never further: the node sees each signage point a second or a
    few (at most LOOKAHEAD_SECONDS in an open loop) before its partials, as on a real network, where a farmer's
    partials follow the signage point by the time its plots take to answer."""

    def __init__(self, node: NodeProcess, events: int, lookahead: int = LOOKAHEAD) -> None:
        self._node = node
        self.cpu_seconds = 0.0  # the node's CPU spent announcing events
        self._last = events - 1
        self.lookahead = lookahead
        self.done = -1
        self._wanted = -1
        self._wake = asyncio.Event()
        self._progress = asyncio.Condition()
        self._failure: BaseException | None = None
        self._task = asyncio.create_task(self._run())

    async def ready(self, event: int) -> None:
        # The look-ahead is kept on every call, not only when the sender has caught up with the node: otherwise the
        # sender would stall every few events and send their partials the instant the node saw them, while the node
        # was still busy announcing the next events (a bench artefact: the slowest answers at 100/s were those).
        wanted = min(event + self.lookahead, self._last)
        if wanted > self._wanted:
            self._wanted = wanted
            self._wake.set()
        if event <= self.done:
            return
        async with self._progress:
            await self._progress.wait_for(lambda: self.done >= event or self._failure is not None)
        if self._failure is not None:
            raise RuntimeError("announcing an event to the node failed") from self._failure

    async def _run(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self.done < self._wanted:
                try:
                    self.cpu_seconds += await self._node.announce(self.done + 1)
                except BaseException as exc:
                    self._failure = exc
                    async with self._progress:
                        self._progress.notify_all()
                    raise
                self.done += 1
                async with self._progress:
                    self._progress.notify_all()

    async def close(self) -> None:
        self._task.cancel()
        try:
            await self._task
        except BaseException:  # cancelled, or the failure already reported to a waiter
            pass


@dataclass
class Outcomes:
    """What the pool answered, and how long each answer took from the sender's side."""

    latencies_ms: list[float] = field(default_factory=list)
    refused_latencies_ms: list[float] = field(default_factory=list)
    counts: Counter[str] = field(default_factory=Counter)
    # Open loop: how late each partial left against its schedule (waiting for its event, signing, the event loop).
    lateness_ms: list[float] = field(default_factory=list)
    sent_at: list[float] = field(default_factory=list)  # perf_counter of each request

    @property
    def send_rate(self) -> float:
        """Requests a second the sender achieved: the slope of the sends over time (least squares), so that a few
        late sends at either end, which move a first-to-last rate by a percent or two, barely move it."""
        times = sorted(self.sent_at)
        count = len(times)
        if count < 2:
            return 0.0
        mean_rank, mean_time = (count - 1) / 2, sum(times) / count
        covariance = sum((rank - mean_rank) * (at - mean_time) for rank, at in enumerate(times))
        if covariance <= 0:
            return 0.0
        variance = sum((rank - mean_rank) ** 2 for rank in range(count))
        return variance / covariance  # ranks per second

    @property
    def accepted(self) -> int:
        return self.counts[ACCEPTED]

    @property
    def sent(self) -> int:
        return sum(self.counts.values())


class Sender:
    def __init__(self, corpus: Corpus, node: NodeProcess, pool_url: str, connections: int) -> None:
        self._corpus = corpus
        self.signer = Signer(corpus)
        self._url = f"{pool_url}/partial"
        self.announcer = Announcer(node, len(corpus.events))
        self._session = aiohttp.ClientSession(
            # Idle connections kept less long than the pool's header timeout (10 s), after which the pool closes
            # them: a request sent on one the pool is closing would fail (aiohttp keeps them 15 s by default).
            connector=aiohttp.TCPConnector(limit=connections, force_close=False, keepalive_timeout=KEEPALIVE_SECONDS),
            headers=HEADERS,
        )

    def point_at(self, pool_url: str) -> None:
        """Send the next partials to another pool (make bench-scale measures several, one after the other)."""
        self._url = f"{pool_url}/partial"

    async def close(self) -> None:
        await self.announcer.close()
        await self._session.close()

    async def _send(self, partial: CorpusPartial, outcomes: Outcomes, due: float | None = None) -> None:
        await self.announcer.ready(partial.event)
        token = current_authentication_token(int(time.time()), AUTHENTICATION_TOKEN_TIMEOUT)
        body = self.signer.partial(partial, token).body
        started = time.perf_counter()
        outcomes.sent_at.append(started)
        if due is not None:
            outcomes.lateness_ms.append(max(0.0, (started - due) * 1000))
        try:
            async with self._session.post(self._url, data=body) as response:
                answer = await response.json(content_type=None) if response.status == 200 else None
                outcome = _outcome(response.status, answer)
        except (aiohttp.ClientError, OSError, ValueError) as exc:
            outcome = f"transport error ({type(exc).__name__})"
        elapsed = (time.perf_counter() - started) * 1000
        outcomes.counts[outcome] += 1
        (outcomes.latencies_ms if outcome == ACCEPTED else outcomes.refused_latencies_ms).append(elapsed)

    async def closed_loop(self, partials: Sequence[CorpusPartial], connections: int) -> Outcomes:
        """``connections`` senders, each posting its next partial as soon as the last one was answered."""
        outcomes = Outcomes()
        queue = iter(partials)

        async def one_connection() -> None:
            for partial in queue:
                await self._send(partial, outcomes)

        await asyncio.gather(*(one_connection() for _ in range(connections)))
        return outcomes

    async def open_loop(self, partials: Sequence[CorpusPartial], rate: float) -> Outcomes:
        """One partial every 1/rate seconds, whatever the pool answers (its answers do not slow the sender)."""
        outcomes = Outcomes()
        tasks: list[asyncio.Task[None]] = []
        partials_per_event = self._corpus.partial_count / max(1, len(self._corpus.events))
        self.announcer.lookahead = min(LOOKAHEAD, int(rate * LOOKAHEAD_SECONDS / partials_per_event))
        start = time.perf_counter() + 0.05
        for number, partial in enumerate(partials):
            due = start + number / rate
            delay = due - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(self._send(partial, outcomes, due)))
        await asyncio.gather(*tasks)
        self.announcer.lookahead = LOOKAHEAD
        return outcomes

    async def register(self, pool_url: str) -> None:
        """POST /farmer for every PlotNFT of the corpus, as its farmer would on joining."""
        token = current_authentication_token(int(time.time()), AUTHENTICATION_TOKEN_TIMEOUT)
        for number in range(len(self._corpus.farmers)):
            body = self.signer.post_farmer(number, token)
            async with self._session.post(f"{pool_url}/farmer", data=body) as response:
                answer = await response.json(content_type=None)
            if response.status != 200 or "error_code" in answer:
                raise RuntimeError(f"POST /farmer of PlotNFT {number} failed: {response.status} {answer}")


def _outcome(status: int, answer: object) -> str:
    if status != 200 or not isinstance(answer, dict):
        return f"HTTP {status}"
    if "error_code" in answer:
        return _error_name(answer["error_code"])
    return ACCEPTED


def _error_name(code: object) -> str:
    """A protocol error by its name (TOO_LATE, ...), or its number if the protocol has no such code."""
    try:
        return f"error {PoolErrorCode(int(str(code))).name}"
    except ValueError:
        return f"error {code}"
