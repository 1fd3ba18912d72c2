"""One ``make bench-scale`` measurement of the real pool (``python -m pool``) against a store of a given size.

For each store (the empty one first, then the built ones, each a fresh copy of its cache), on the same node process
and the same corpus as ``make bench``:

1. **intake**: the corpus's farmers join (POST /farmer), each page and the API's blocks and rounds are asked once
   (unmeasured: each waits for the figures the pool makes as it starts), every loop's first pass is waited for (the
   start-up's extra work, shown by the loops' window), then partials are sent open-loop at a fixed rate, and only
   partials (the pool's loops running at their default intervals, as in production, but for payouts, which the
   history's last distribution, taken as recent, does not make due: ``_start_pool``): the pool's CPU per accepted
   partial (until confirmation caught up) and the partials' latency, compared like for like between the stores;
2. **intake while pruning**: the same, while the retention's prune runs beside it (``pool.loops.retention``'s
   batches and pauses, the store's ``prune_partials``), from the bench process as ``python -m pool prune`` would,
   over the store's oldest half day (at most a day): more than the phase can prune, so that it prunes throughout;
3. **pages while partials flow**: the same intake, while ``GET /metrics``, ``GET /``, the farmer page (``GET /login``
   with a session cookie of one of the store's farmers) and ``GET /status`` are each asked every ``page_interval``
   seconds (one prober a page, one request at a time each), at least ``page_samples`` times each if they answer in
   time (the phase lasts long enough for that); every request's latency counts, failed ones too (and are counted);
4. **the loops**: the pool is started again with every loop due every ``loop_interval`` seconds (payouts due at
   once: a distribution over every farmer; the round then waits, the bench's wallet holding none of the built
   history's claims) and left without partials for ``loop_seconds``;
   each loop's iterations (``pool_loop_duration_seconds`` of GET /metrics) and the node calls the loops made
   (``pool_node_rpc_duration_seconds``), per loop pass;
5. the store's bytes on disk before and after.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import math
import secrets
import time
from collections import Counter
from collections.abc import Sequence
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
from prometheus_client.parser import text_string_to_metric_families

from pool.bench.attacks import NodeCallMeter
from pool.bench.corpus import DIFFICULTY, Corpus, CorpusPartial
from pool.bench.load import Outcomes, Sender, freeze_client_heap
from pool.bench.processes import NodeProcess, PoolProcess, pool_document, write_pool_config
from pool.bench.procstat import TreeCpu
from pool.bench.report import percentile, percentile_interval
from pool.bench.scale_store import (
    PARTIALS_PER_DAY,
    Progress,
    ScaleSize,
    ScaleStores,
    farmer_launcher_id,
    store_bytes,
)
from pool.chia_adapter import bytes32
from pool.config import DAY_SECONDS, NotificationsConfig, ServerConfig, StoreConfig, parse_config
from pool.devnet.pool_config import OPERATOR_HEADERS
from pool.loops.difficulty_adjustment import DifficultyLoop
from pool.loops.notifications import NotificationLoop, check_silent_farmers
from pool.loops.partial_confirmation import PartialConfirmLoop
from pool.loops.payouts import PayoutLoop
from pool.loops.peak import PeakLoop
from pool.loops.retention import PRUNE_BATCH, RetentionLoop, pause_after
from pool.loops.rewards import RewardLoop
from pool.loops.singletons import SingletonLoop
from pool.store.abstract import AbstractPoolStore
from pool.store.factory import create_store
from pool.store.models import FarmerSettings, WebSession

PAGES = ("/metrics", "/", "farmer page", "/status")
SESSION_COOKIE = "pool_session"  # pool.http.pages.SESSION_COOKIE
CATCH_UP_TIMEOUT = 300.0
# The corpus's partials whose events go by unused in one store's measurement (those of the events the node was shown
# ahead when a phase starts): in the defaults' run of 2026-12-07 13:37 UTC 148 on the empty store and 445-542 on each
# built one (16 187 used of 19 037); a margin the run's corpus is sized with.
SKIPPED_PER_STORE = 1000
FIRST_PASSES_TIMEOUT = 300.0  # seconds for every loop's first pass after the pool's start
# The loops a leading pool runs (pool.server.background_loops), by their metrics' label. A loop shows in GET /metrics
# only once it has ended a pass: waiting for those shown missed the ones still in their first pass (the rewards'
# first at 10 000 farmers, 3-4 s, then fell in the first phase).
LEADER_LOOPS = frozenset(
    loop.name
    for loop in (
        PeakLoop,
        PartialConfirmLoop,
        SingletonLoop,
        RewardLoop,
        PayoutLoop,
        DifficultyLoop,
        RetentionLoop,
        NotificationLoop,
    )
)
LOOP_METRIC = "pool_loop_duration_seconds"


@dataclass(frozen=True)
class ScaleOptions:
    run_dir: Path
    rate: float = 50.0  # partials/s offered in each intake phase
    duration: float = 20.0  # seconds of each intake phase
    page_interval: float = 0.25  # seconds between two requests of a page (each page its own prober)
    page_samples: int = 50  # requests of each page the pages phase lasts long enough for
    loop_seconds: float = 40.0  # the loops' window
    loop_interval: float = 10.0  # every loop due this often in that window
    # The loops watched in a pool of their own, started again on the store after the intake phases (so that loops
    # due every few seconds never weigh on the intake's figures); False (the smoke test, which saves a pool's start):
    # in the intake's pool, due that often from its start, after the intake phases.
    loops_in_own_pool: bool = True

    def phase_partials(self, pages: bool = False) -> int:
        """The corpus partials one intake phase sends (the pages' phase lasts long enough for its samples)."""
        duration = max(self.duration, self.page_samples * self.page_interval * 1.5) if pages else self.duration
        return round(self.rate * duration)

    def partials_needed(self, built_stores: int) -> int:
        """The corpus partials a run over the empty store and ``built_stores`` built ones takes: each store's phases
        (the empty store has no pruning phase), and SKIPPED_PER_STORE for the events that go by unused."""
        empty = self.phase_partials() + self.phase_partials(pages=True)
        built = empty + self.phase_partials()
        return empty + built_stores * built + (1 + built_stores) * SKIPPED_PER_STORE


@dataclass
class PhaseFigures:
    outcomes: Outcomes
    intake_seconds: float
    pool_cpu_seconds: float  # until confirmation caught up
    catch_up_seconds: float | None
    pages_ms: dict[str, list[float]] = field(default_factory=dict)
    page_errors: Counter[str] = field(default_factory=Counter)
    pruned: int = 0
    prune_batches_ms: list[float] = field(default_factory=list)

    @property
    def cpu_ms_per_accepted(self) -> float | None:
        accepted = self.outcomes.accepted
        return self.pool_cpu_seconds * 1000 / accepted if accepted else None


@dataclass
class LoopFigures:
    seconds: float
    runs: dict[str, int]
    mean_seconds: dict[str, float]
    max_seconds_at_most: dict[str, float]  # the histogram's bucket bound the slowest iteration fell within
    node_calls: dict[str, int]


@dataclass
class StoreFigures:
    label: str
    size: ScaleSize | None  # None: the empty store
    bytes_before: int
    bytes_after: int
    intake: PhaseFigures  # partials only
    pruning: PhaseFigures | None
    pages: PhaseFigures  # partials while the pages are asked
    loops: LoopFigures
    intake_loops: LoopFigures  # the loops' iterations during the intake phases (default intervals)


@dataclass
class Shared:
    """What every store's measurement shares: the corpus, its partials (each sent once), the node and the sender."""

    corpus: Corpus
    node: NodeProcess
    sender: Sender
    partials: list[CorpusPartial]
    cursor: int = 0

    def take(self, count: int) -> list[CorpusPartial]:
        # Partials of events the node already saw (the announcer's look-ahead) would arrive after their time limit,
        # the pool having been started and its store copied since: the next phase starts after them.
        seen = self.sender.announcer.done
        while self.cursor < len(self.partials) and self.partials[self.cursor].event <= seen:
            self.cursor += 1
        chunk = self.partials[self.cursor : self.cursor + count]
        self.cursor += len(chunk)
        if len(chunk) < count:
            raise CorpusExhausted(
                f"the corpus ran out of partials ({len(self.partials)}): build a larger one "
                "(make bench --partials N, make bench-scale --corpus-partials N)"
            )
        return chunk


class CorpusExhausted(RuntimeError):
    """The corpus has no partials left for the next phase: the stores measured so far keep their figures."""


async def measure_store(
    shared: Shared,
    stores: ScaleStores,
    size: ScaleSize | None,
    built_end: int | None,
    options: ScaleOptions,
    progress: Progress,
) -> StoreFigures:
    label = "empty" if size is None else size.label
    slug = "empty" if size is None else f"f{size.farmers}_d{size.days}"
    progress(f"[{label}] copying the store")
    config = await asyncio.to_thread(stores.copy, size, f"scale_{slug}", options.run_dir / f"store-{slug}.sqlite")
    try:
        figures = await _measure_copy(shared, config, size, built_end, options, progress, label, slug)
    finally:
        # Measured or not (a failed run leaves no 27 GB copy behind).
        await asyncio.to_thread(stores.discard, f"scale_{slug}", config)
    progress(f"[{label}] corpus: {shared.cursor} of {len(shared.partials)} partials used")
    return figures


async def _measure_copy(
    shared: Shared,
    config: StoreConfig,
    size: ScaleSize | None,
    built_end: int | None,
    options: ScaleOptions,
    progress: Progress,
    label: str,
    slug: str,
) -> StoreFigures:
    freeze_client_heap()  # the corpus and the stores measured before
    bytes_before = await store_bytes(config)
    async with AsyncExitStack() as stack:
        store = create_store(config)
        await store.open()
        stack.push_async_callback(store.close)
        await _history_notified(store)
        own_pool = options.loops_in_own_pool
        pool = await _start_pool(shared, config, size, options, slug, loops_due=not own_pool, progress=progress)
        stack.push_async_callback(pool.stop)
        shared.sender.point_at(pool.url)
        progress(f"[{label}] registering {len(shared.corpus.farmers)} PlotNFTs")
        await shared.sender.register(pool.url)
        await _hold_corpus_difficulty(store, shared.corpus)
        cookie = await _session(store, size, shared)
        async with aiohttp.ClientSession(headers=OPERATOR_HEADERS) as session:  # /metrics, /status want it
            await _warmed(session, pool.url, cookie)
            await _first_passes_done(session, pool.url, progress, label)
            loops_before = await _loop_metrics(session, pool.url)
            intake = await _intake(shared, store, pool, session, cookie, options, None, progress, label)
            pruning = None
            if size is not None and built_end is not None:
                # The store's oldest half day (at most a day's worth is older than the newest day's start).
                cutoff = built_end - size.days * DAY_SECONDS + DAY_SECONDS // 2
                pruning = await _intake(shared, store, pool, session, cookie, options, cutoff, progress, label)
            pages = await _intake(shared, store, pool, session, cookie, options, None, progress, label, pages=True)
            loops_after = await _loop_metrics(session, pool.url)
            intake_loops = _loop_figures(loops_before, loops_after, {}, 0.0)
            if not own_pool:
                loops = await _watch_loops(pool, options, progress, label, since_start=False)
        await pool.stop()
        if own_pool:
            loops = await _loops_window(shared, config, size, options, slug, progress, label)
    bytes_after = await store_bytes(config)
    return StoreFigures(label, size, bytes_before, bytes_after, intake, pruning, pages, loops, intake_loops)


async def _hold_corpus_difficulty(store: AbstractPoolStore, corpus: Corpus) -> None:
    """The corpus's farmers keep the corpus's difficulty by a preset, as a farmer fixes it on its page: they send far
    more than PARTIALS_PER_DAY, and a raised difficulty would refuse the corpus's proofs."""
    now = int(time.time())
    for farmer in corpus.farmers:
        await store.change_farmer_settings(FarmerSettings(farmer.launcher_id, difficulty_preset=DIFFICULTY), now)


async def _start_pool(
    shared: Shared,
    config: StoreConfig,
    size: ScaleSize | None,
    options: ScaleOptions,
    slug: str,
    *,
    loops_due: bool,
    progress: Progress,
) -> PoolProcess:
    store: dict[str, Any] = (
        {"backend": "sqlite", "path": str(config.path)}
        if config.backend == "sqlite"
        else {"backend": "postgresql", "dsn": config.dsn}
    )
    document = pool_document(
        shared.node.endpoints, options.run_dir, shared.corpus.target_puzzle_hash, workers=1, store=store
    )
    # The pool's own retention finds nothing to prune (the pruning phase prunes, when the bench says): a store
    # built some days ago would otherwise be pruned at start, during the first phase.
    days = 0 if size is None else size.days
    document["partials"]["retention_days"] = days + 30
    # Nor are its payouts due: the history's last distribution, half a day before its end or more, is taken as recent,
    # as a running pool's is at most two hours old. Made here, the history's distribution fell inside the first phase
    # every time (a write holding SQLite's writer 0.18 s at 10 000 farmers); the loops' window makes it.
    document["payouts"]["interval"] = (days + 30) * DAY_SECONDS
    # The built farmers send PARTIALS_PER_DAY a day at their difficulty, so the adjustment keeps it, as a settled
    # pool's does (a target they missed changed every member's difficulty every pass, a write for each); the
    # corpus's farmers hold theirs by a preset (_hold_corpus_difficulty).
    document["difficulty"]["number_of_partials_target"] = PARTIALS_PER_DAY
    # What an operator runs with (the devnet reads /status and /metrics afresh at each request, for its tests).
    document["server"]["metrics_cache_seconds"] = ServerConfig.metrics_cache_seconds
    if loops_due:
        interval = options.loop_interval
        document["loops"] = {"singleton_interval": interval, "difficulty_interval": interval}
        document["rewards"]["collect_interval"] = math.ceil(interval)
        document["payouts"]["interval"] = math.ceil(interval)
    name = f"pool-{slug}{'-loops' if loops_due else ''}"
    config_path = options.run_dir / f"{name}.yaml"
    write_pool_config(document, config_path)
    parsed = parse_config(document, options.run_dir, source=config_path)
    progress(f"starting the pool: python -m pool --config {config_path}")
    return await PoolProcess.start(config_path, parsed.server.port, options.run_dir / f"{name}.log")


async def _session(store: AbstractPoolStore, size: ScaleSize | None, shared: Shared) -> str:
    """A browser session of one of the store's farmers (a built one, with its whole history; or a corpus farmer on
    the empty store), opened through the store as GET /login does; the cookie's value."""
    launcher_id = farmer_launcher_id(0) if size is not None else shared.corpus.farmers[0].launcher_id
    farmer = await store.get_farmer(launcher_id)
    assert farmer is not None
    token = secrets.token_urlsafe(32)
    now = int(time.time())
    token_hash = bytes32(hashlib.sha256(token.encode()).digest())
    await store.add_session(
        WebSession(token_hash, launcher_id, now, now + 86400),
        authentication_public_key=farmer.authentication_public_key,
        max_per_launcher=10,
    )
    return token


async def _intake(
    shared: Shared,
    store: AbstractPoolStore,
    pool: PoolProcess,
    session: aiohttp.ClientSession,
    cookie: str,
    options: ScaleOptions,
    prune_before: int | None,
    progress: Progress,
    label: str,
    *,
    pages: bool = False,
) -> PhaseFigures:
    """Partials sent open-loop for the phase; with ``pages``, each page asked meanwhile by its own prober, the phase
    long enough for ``page_samples`` requests of each."""
    chunk = shared.take(options.phase_partials(pages))
    name = "intake while pruning" if prune_before is not None else "pages" if pages else "intake"
    asked = ", the pages asked meanwhile" if pages else ", partials only"
    progress(f"[{label}] {name}: {len(chunk)} partials at {options.rate:g}/s{asked}")
    cpu = TreeCpu.of(pool.pid)
    before = cpu.seconds()
    latencies: dict[str, list[float]] = {page: [] for page in PAGES} if pages else {}
    errors: Counter[str] = Counter()
    stop = asyncio.Event()
    background: list[asyncio.Task[Any]] = [
        asyncio.create_task(
            _probe_page(session, pool.url, cookie, options.page_interval, page, latencies, errors, stop)
        )
        for page in latencies
    ]
    pruned: list[int] = [0]
    batches_ms: list[float] = []
    if prune_before is not None:
        background.append(asyncio.create_task(_prune(store, prune_before, pruned, batches_ms, stop)))
    started = time.perf_counter()
    try:
        outcomes = await shared.sender.open_loop(chunk, options.rate)
    finally:
        intake_seconds = time.perf_counter() - started
        stop.set()
        await asyncio.gather(*background)
    catch_up = await _wait_confirmed(store)
    figures = PhaseFigures(outcomes, intake_seconds, cpu.seconds() - before, catch_up, latencies, errors)
    figures.pruned, figures.prune_batches_ms = pruned[0], batches_ms
    answered = ", ".join(f"{outcome} {count}" for outcome, count in sorted(outcomes.counts.items()))
    progress(f"[{label}] {name}: {answered}; confirmation caught up after {catch_up} s; pruned {pruned[0]}")
    return figures


# The API's figures the pool makes as it starts too (pool.http.api: the newest blocks with their rounds' points, the
# payout rounds), which no measured page asks for.
API_WARMED = ("/api/v1/blocks", "/api/v1/rounds")


async def _warmed(session: aiohttp.ClientSession, url: str, cookie: str) -> None:
    """Each page asked once, not measured, and the API's figures made at the start (API_WARMED): each answers once
    the figures the pool makes as it starts are made (on a large store the day's partials counted once, the 50
    newest blocks' rounds summed once), so that this start-up work is not in the intake's CPU per partial, measured
    in the steady state like the empty store's."""
    for page in (*PAGES, *API_WARMED):
        cookies = {SESSION_COOKIE: cookie} if page == "farmer page" else None
        async with session.get(url + ("/login" if page == "farmer page" else page), cookies=cookies) as response:
            await response.read()


async def _history_notified(store: AbstractPoolStore) -> int:
    """The built history's notifications (its payout round's and its blocks') closed as delivered, as a pool that ran
    delivered them when they were made: left pending, the pool measured here drained them (20 052 at 10 000 farmers,
    100 a pass every half second), some 0.6 ms of CPU per partial of the first phase that the empty store does not
    pay. So are the silences the pool would find as it starts (every built farmer's last partial is where the history
    ends, hours before: 10 000 events told through the first two phases, 100 a pass), recorded by the check the
    pool's loop runs, as a pool that ran would have told them when each farmer fell silent. How many were closed."""
    await check_silent_farmers(store, NotificationsConfig(), int(time.time()))  # the pool's own (its defaults)
    closed = 0
    while due := await store.notifications_due(int(time.time()), limit=1000):
        await store.close_notifications([n.id for n in due], int(time.time()))
        closed += len(due)
    return closed


async def _first_passes_done(session: aiohttp.ClientSession, url: str, progress: Progress, label: str) -> None:
    """Every loop's first pass over: the intake's figures are the steady state's, as on the empty store. The passes
    right after a start do more (the singletons' first checks every farmer's recorded tip: seconds at ten thousand
    farmers); the loops' window, in a pool started for it, shows them."""
    deadline = time.monotonic() + FIRST_PASSES_TIMEOUT
    while True:
        passed = {loop for loop, (count, _, _) in (await _loop_metrics(session, url)).items() if count > 0}
        waiting = sorted(LEADER_LOOPS - passed)
        if not waiting:
            return
        if time.monotonic() > deadline:
            raise RuntimeError(f"the first passes of {', '.join(waiting)} did not end in {FIRST_PASSES_TIMEOUT} s")
        progress(f"[{label}] waiting for the first passes of {', '.join(waiting)}")
        await asyncio.sleep(1.0)


async def _probe_page(
    session: aiohttp.ClientSession,
    url: str,
    cookie: str,
    interval: float,
    page: str,
    latencies: dict[str, list[float]],
    errors: Counter[str],
    stop: asyncio.Event,
) -> None:
    """``page``, one request at a time, every ``interval`` seconds, until ``stop`` (and once at least, however short
    the phase). Every request's latency is kept, a failed one's too (and the failure counted): none is left out."""
    asked = False
    while not stop.is_set() or not asked:
        asked = True
        path = "/login" if page == "farmer page" else page
        cookies = {SESSION_COOKIE: cookie} if page == "farmer page" else None
        started = time.perf_counter()
        try:
            async with session.get(url + path, cookies=cookies) as response:
                await response.read()
                if response.status != 200:
                    errors[f"{page}: HTTP {response.status}"] += 1
        except aiohttp.ClientError as exc:
            errors[f"{page}: {type(exc).__name__}"] += 1
        latencies[page].append((time.perf_counter() - started) * 1000)
        try:
            await asyncio.wait_for(stop.wait(), interval)
        except TimeoutError:
            pass


async def _prune(
    store: AbstractPoolStore, before: int, pruned: list[int], batches_ms: list[float], stop: asyncio.Event
) -> None:
    """The retention loop's pass (its batch and pause), until nothing is left or ``stop``."""
    while not stop.is_set():
        started = time.perf_counter()
        count = await store.prune_partials(before, PRUNE_BATCH)
        seconds = time.perf_counter() - started
        batches_ms.append(seconds * 1000)
        pruned[0] += count
        if count == 0:
            return
        with contextlib.suppress(asyncio.TimeoutError):  # the pause, cut short at the phase's end
            await asyncio.wait_for(stop.wait(), pause_after(seconds))


async def _wait_confirmed(store: AbstractPoolStore) -> float | None:
    """Seconds until no partial is pending (an indexed read, cheap on a large store)."""
    started = time.perf_counter()
    while await store.pending_partials(int(time.time()) + 60, limit=1):
        if time.perf_counter() - started > CATCH_UP_TIMEOUT:
            return None
        await asyncio.sleep(0.2)
    return round(time.perf_counter() - started, 1)


async def _loops_window(
    shared: Shared,
    config: StoreConfig,
    size: ScaleSize | None,
    options: ScaleOptions,
    slug: str,
    progress: Progress,
    label: str,
) -> LoopFigures:
    """A pool of its own, every loop due every ``loop_interval`` seconds, without partials: counted from its start,
    since every loop's first iteration runs as the pool starts."""
    pool = await _start_pool(shared, config, size, options, slug, loops_due=True, progress=progress)
    try:
        return await _watch_loops(pool, options, progress, label, since_start=True)
    finally:
        await pool.stop()


async def _watch_loops(
    pool: PoolProcess, options: ScaleOptions, progress: Progress, label: str, *, since_start: bool
) -> LoopFigures:
    async with aiohttp.ClientSession(headers=OPERATOR_HEADERS) as session:  # /metrics, /status want it
        meter = NodeCallMeter(session, pool.url)
        await meter.calibrate()
        calls_before: Counter[str] = Counter() if since_start else await meter.read()
        loops_before: LoopReading = {} if since_start else await _loop_metrics(session, pool.url)
        progress(f"[{label}] the loops, every {options.loop_interval:g} s, for {options.loop_seconds:g} s")
        started = time.monotonic()
        await asyncio.sleep(options.loop_seconds)
        calls_after = await meter.read()
        loops = await _loop_metrics(session, pool.url)
        return _loop_figures(loops_before, loops, meter.spent(calls_before, calls_after), time.monotonic() - started)


LoopReading = dict[str, tuple[int, float, list[tuple[float, int]]]]  # loop -> (count, sum, buckets)


async def _loop_metrics(session: aiohttp.ClientSession, url: str) -> LoopReading:
    async with session.get(f"{url}/metrics") as response:
        text = await response.text()
    reading: dict[str, tuple[int, float, list[tuple[float, int]]]] = {}
    for family in text_string_to_metric_families(text):
        if family.name != LOOP_METRIC:
            continue
        for sample in family.samples:
            loop = sample.labels["loop"]
            count, total, buckets = reading.get(loop, (0, 0.0, []))
            if sample.name == LOOP_METRIC + "_count":
                count = int(sample.value)
            elif sample.name == LOOP_METRIC + "_sum":
                total = sample.value
            elif sample.name == LOOP_METRIC + "_bucket":
                buckets.append((float(sample.labels["le"]), int(sample.value)))
            reading[loop] = (count, total, buckets)
    return reading


def _loop_figures(before: LoopReading, after: LoopReading, calls: dict[str, int], seconds: float) -> LoopFigures:
    runs: dict[str, int] = {}
    means: dict[str, float] = {}
    maxima: dict[str, float] = {}
    for loop, (count, total, buckets) in sorted(after.items()):
        count_before, total_before, buckets_before = before.get(loop, (0, 0.0, []))
        ran = count - count_before
        if ran <= 0:
            continue
        runs[loop] = ran
        means[loop] = (total - total_before) / ran
        earlier = dict(buckets_before)
        # The least bound under which every iteration of the window fell.
        maxima[loop] = min(
            (bound for bound, cumulative in buckets if cumulative - earlier.get(bound, 0) >= ran), default=math.inf
        )
    return LoopFigures(seconds, runs, means, maxima, calls)


def figures_json(figures: StoreFigures) -> dict[str, Any]:
    def phase(p: PhaseFigures | None) -> dict[str, Any] | None:
        if p is None:
            return None
        return {
            "sent": p.outcomes.sent,
            "accepted": p.outcomes.accepted,
            "refused": {k: v for k, v in p.outcomes.counts.items() if k != "accepted"},
            "intake_seconds": p.intake_seconds,
            "pool_cpu_ms_per_accepted": p.cpu_ms_per_accepted,
            "latency_ms": {
                "p50": percentile(p.outcomes.latencies_ms, 0.5),
                "p99": percentile(p.outcomes.latencies_ms, 0.99),
                "p99_interval": percentile_interval(p.outcomes.latencies_ms, 0.99),
                "max": max(p.outcomes.latencies_ms, default=None),
            },
            "confirmation_catch_up_seconds": p.catch_up_seconds,
            "pages_ms": {
                page: {"count": len(values), "p50": percentile(values, 0.5), "p99": percentile(values, 0.99)}
                for page, values in p.pages_ms.items()
            },
            "page_errors": dict(p.page_errors),
            "pruned": p.pruned,
            "prune_batches": len(p.prune_batches_ms),
            "prune_batch_ms": {
                "p50": percentile(p.prune_batches_ms, 0.5),
                "max": max(p.prune_batches_ms, default=None),
            },
        }

    def loops(f: LoopFigures) -> dict[str, Any]:
        passes = sum(f.runs.values())
        return {
            "seconds": f.seconds,
            "runs": f.runs,
            "mean_seconds": f.mean_seconds,
            "max_seconds_at_most": {k: (None if math.isinf(v) else v) for k, v in f.max_seconds_at_most.items()},
            "node_calls": f.node_calls,
            "node_calls_total": sum(f.node_calls.values()),
            "node_calls_per_loop_pass": sum(f.node_calls.values()) / passes if passes else None,
        }

    return {
        "store": figures.label,
        "farmers": None if figures.size is None else figures.size.farmers,
        "days": None if figures.size is None else figures.size.days,
        "partials_built": 0 if figures.size is None else figures.size.partials,
        "store_bytes_before": figures.bytes_before,
        "store_bytes_after": figures.bytes_after,
        "intake": phase(figures.intake),
        "intake_while_pruning": phase(figures.pruning),
        "pages": phase(figures.pages),
        "loops_during_intake": loops(figures.intake_loops),
        "loops": loops(figures.loops),
    }


def dumps(document: dict[str, Any]) -> str:
    return json.dumps(document, indent=2, default=str)


async def run_stores(
    corpus: Corpus,
    corpus_path: Path,
    stores: ScaleStores,
    sizes: Sequence[tuple[ScaleSize, int]],
    options: ScaleOptions,
    progress: Progress,
) -> list[StoreFigures]:
    """The empty store, then each built one (with the moment its history ends), on one node and one sender; the
    stores measured before the corpus ran out (CorpusExhausted, shown), the others left out."""
    options.run_dir.mkdir(parents=True, exist_ok=True)
    async with AsyncExitStack() as stack:
        progress("starting the full node on the corpus's chain (its own process)")
        node = await NodeProcess.start(corpus_path, options.run_dir / "node", options.run_dir / "node.log")
        stack.push_async_callback(node.stop)
        sender = Sender(corpus, node, "http://127.0.0.1:1", connections=512)
        stack.push_async_callback(sender.close)
        shared = Shared(corpus, node, sender, list(corpus.partials()))
        results: list[StoreFigures] = []
        try:
            results.append(await measure_store(shared, stores, None, None, options, progress))
            for size, end in sizes:
                results.append(await measure_store(shared, stores, size, end, options, progress))
        except CorpusExhausted as exhausted:
            progress(f"{exhausted}; the stores measured so far are reported")
        return results
