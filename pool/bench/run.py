"""One benchmark run: floor, node, pool on an empty store, registration, then the load phases, each measured.

Per phase: the sender's answers and latencies, the CPU of the pool's processes (supervisor and workers) and of the
node's process during the intake window and until confirmation caught up (every accepted partial confirmed or
rejected in the store), and at the end each process's peak resident memory.
"""

from __future__ import annotations

import asyncio
import resource
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pool.bench.attacks import AttackOptions, AttackResult, attacks, run_attacks
from pool.bench.corpus import Corpus, CorpusPartial, Progress
from pool.bench.floor import Floor, measure_floor
from pool.bench.load import AUTHENTICATION_TOKEN_TIMEOUT, Announcer, Outcomes, Sender, freeze_client_heap
from pool.bench.processes import NodeProcess, PoolProcess, pool_document, write_pool_config
from pool.bench.procstat import TreeCpu, peak_rss_mb, process_tree, rss_mb
from pool.config import parse_config
from pool.devnet.network import devnet_constants
from pool.devnet.postgres import PostgresServer
from pool.protocol.auth import current_authentication_token
from pool.store.abstract import AbstractPoolStore
from pool.store.factory import create_store

CATCH_UP_TIMEOUT = 600.0
SOAK_SAMPLE_SECONDS = 10.0


@dataclass(frozen=True)
class BenchOptions:
    run_dir: Path
    store: str = "sqlite"  # or "postgresql"
    workers: int = 1
    # Partials/s offered; "40%" = that share of the machine's limit, "2x" = twice the closed loop's accepted/s.
    rates: tuple[str, ...] = ("100", "40%", "2x")
    connections: int = 16  # closed loop
    closed_partials: int = 1500
    duration: float = 10.0  # seconds of each open-loop phase
    soak: float = 0.0  # seconds of the memory soak (0: none)
    # The attack phase (pool.bench.attacks): honest partials at this rate for this long under each attack, the
    # attacks' rates and sockets times attack_scale.
    attacks: bool = True
    attack_honest_rate: float = 50.0
    attack_seconds: float = 8.0
    attack_scale: float = 1.0
    attack_keys: tuple[str, ...] = ()  # the attacks to run, by key (pool.bench.attacks.attacks); empty: all
    open_loops: bool = True  # False: the attack phase alone (no closed loop nor open loops), to compare attacks


@dataclass
class Meters:
    pool: TreeCpu
    node: TreeCpu
    announcer: Announcer
    store_server: TreeCpu | None

    def read(self) -> dict[str, float]:
        readings = {
            "pool": self.pool.seconds(),
            "node": self.node.seconds(),
            "node_events": self.announcer.cpu_seconds,
            "sender": _own_cpu(),
        }
        if self.store_server is not None:
            readings["store_server"] = self.store_server.seconds()
        return readings


def _own_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


@dataclass
class PhaseResult:
    name: str
    mode: str  # "closed" or "open"
    offered_rate: float | None
    connections: int | None
    planned: int
    outcomes: Outcomes
    intake_seconds: float
    cpu_intake: dict[str, float]
    cpu_total: dict[str, float]
    catch_up_seconds: float | None
    rss_samples_mb: list[float] = field(default_factory=list)
    # A phase offered a share of the machine's limit: the limit its rate was set from (the lesser floor measured so
    # far, the last time right before it), against which its sustained share is judged.
    machine_limit: float | None = None

    @property
    def accepted_per_s(self) -> float:
        return self.outcomes.accepted / self.intake_seconds if self.intake_seconds > 0 else 0.0

    @property
    def sent_per_s(self) -> float:
        return self.outcomes.send_rate


@dataclass
class BenchResult:
    floor: Floor
    options: BenchOptions
    corpus_farmers: int
    corpus_partials: int
    phases: list[PhaseResult]
    pool_peak_rss_mb: dict[int, float]
    node_peak_rss_mb: float
    confirmed: int
    rejected_later: int
    accepted: int
    startup_seconds: dict[str, float]
    notes: list[str]
    attacks: list[AttackResult] = field(default_factory=list)


async def run_bench(corpus: Corpus, corpus_path: Path, options: BenchOptions, progress: Progress) -> BenchResult:
    options.run_dir.mkdir(parents=True, exist_ok=True)
    constants = devnet_constants(corpus.discriminant_bits)
    progress("measuring the cryptography floor (aggregate_verify of 2 keys + proof of space, one thread)")
    floor = measure_floor(corpus, constants, _token())
    progress(f"floor {floor.ms:.3f} ms per partial; machine limit {floor.machine_limit:.0f} partials/s")
    floors = Floors(floor, lambda: measure_floor(corpus, constants, _token()), progress)
    async with AsyncExitStack() as stack:
        startup: dict[str, float] = {}
        store_config, store_server = _store(options, stack)
        started = time.monotonic()
        progress("starting the full node on the corpus's chain (its own process)")
        node = await NodeProcess.start(corpus_path, options.run_dir / "node", options.run_dir / "node.log")
        stack.push_async_callback(node.stop)
        startup["node"] = time.monotonic() - started
        document = pool_document(
            node.endpoints, options.run_dir, corpus.target_puzzle_hash, workers=options.workers, store=store_config
        )
        config_path = options.run_dir / "pool-config.yaml"
        write_pool_config(document, config_path)
        config = parse_config(document, options.run_dir, source=config_path)
        started = time.monotonic()
        progress(f"starting the pool: python -m pool --config {config_path} ({options.workers} worker(s))")
        pool = await PoolProcess.start(config_path, config.server.port, options.run_dir / "pool.log")
        stack.push_async_callback(pool.stop)
        startup["pool"] = time.monotonic() - started
        store = create_store(config.store)
        await store.open()
        stack.push_async_callback(store.close)
        sender = Sender(corpus, node, pool.url, connections=max(options.connections, 512))
        stack.push_async_callback(sender.close)
        progress(f"registering {len(corpus.farmers)} PlotNFTs with POST /farmer")
        await sender.register(pool.url)
        meters = Meters(TreeCpu.of(pool.pid), TreeCpu.of(node.pid), sender.announcer, store_server)
        phases, attack_results, notes = await _run_phases(
            corpus, options, sender, store, meters, pool.pid, pool.url, floors, progress
        )
        counts = await _outcome_counts(store)
        # Measured again with the load gone: on a shared machine (a virtual one), any measurement may be slowed by
        # others; the least is the floor, so the ratios to it are never flattered by a slow moment.
        floors.measure_again("after the load")
        return BenchResult(
            floor=floors.least,
            options=options,
            corpus_farmers=len(corpus.farmers),
            corpus_partials=corpus.partial_count,
            phases=phases,
            pool_peak_rss_mb=pool_rss(pool.pid),
            node_peak_rss_mb=peak_rss_mb(node.pid),
            confirmed=counts["confirmed"],
            rejected_later=sum(count for outcome, count in counts.items() if outcome not in ("confirmed", "pending")),
            accepted=sum(phase.outcomes.accepted for phase in phases)
            + sum(attack.honest.accepted for attack in attack_results),
            startup_seconds=startup,
            notes=notes,
            attacks=attack_results,
        )


class Floors:
    """The floor as measured so far in this run: the least of its measurements."""

    def __init__(self, first: Floor, measure: Callable[[], Floor], progress: Progress) -> None:
        self.least = first
        self._measure = measure
        self._progress = progress

    def measure_again(self, when: str) -> None:
        again = self._measure()
        if again.ms < self.least.ms:
            self._progress(f"floor measured again {when}: {again.ms:.3f} ms per partial (was {self.least.ms:.3f})")
            self.least = again
        else:
            self._progress(f"floor measured again {when}: {again.ms:.3f} ms per partial, kept {self.least.ms:.3f}")


def pool_rss(pid: int) -> dict[int, float]:
    return {member: peak_rss_mb(member) for member in process_tree(pid)}


def _token() -> int:
    return current_authentication_token(int(time.time()), AUTHENTICATION_TOKEN_TIMEOUT)


def _store(options: BenchOptions, stack: AsyncExitStack) -> tuple[dict[str, Any], TreeCpu | None]:
    if options.store == "sqlite":
        return {"backend": "sqlite", "path": str(options.run_dir / "pool.sqlite")}, None
    # Durable, as an operator runs it (the tests' throwaway servers skip fsync).
    server = PostgresServer.start(durable=True)
    stack.callback(server.stop)
    dsn = server.create_database("pool_bench")
    postmaster = int((server.data / "postmaster.pid").read_text().split()[0])
    return {"backend": "postgresql", "dsn": dsn}, TreeCpu.of(postmaster)


async def _run_phases(
    corpus: Corpus,
    options: BenchOptions,
    sender: Sender,
    store: AbstractPoolStore,
    meters: Meters,
    pool_pid: int,
    pool_url: str,
    floors: Floors,
    progress: Progress,
) -> tuple[list[PhaseResult], list[AttackResult], list[str]]:
    partials = list(corpus.partials())
    freeze_client_heap()
    notes: list[str] = []
    phases: list[PhaseResult] = []
    cursor = 0

    # The attack phase's partials are kept aside from the phases before it, whose sizes depend on the machine's
    # speed (twice the sustainable rate for 10 s): every attack then has its honest partials.
    reserved = (1 + len(attacks(1.0, options.attack_keys))) * round(options.attack_honest_rate * options.attack_seconds)
    before_attacks = len(partials) - (reserved if options.attacks else 0)

    def take(count: int, name: str, end: int | None = None) -> list[CorpusPartial]:
        nonlocal cursor
        chunk = partials[cursor : min(cursor + count, len(partials) if end is None else max(cursor, end))]
        cursor += len(chunk)
        if len(chunk) < count:
            notes.append(f"{name}: the corpus ran out ({len(chunk)} of {count} partials sent); build a larger one")
        return chunk

    if options.open_loops:
        phases = await _run_loops(options, sender, store, meters, floors, progress, take, before_attacks)
    sustainable = next((phase.accepted_per_s for phase in phases if phase.mode == "closed"), 0.0)
    attack_results: list[AttackResult] = []
    if options.attacks:
        attack_options = AttackOptions(
            options.attack_honest_rate, options.attack_seconds, options.attack_scale, options.attack_keys
        )
        attack_results = await run_attacks(corpus, sender, pool_url, take, attack_options, options.run_dir, progress)
        catch_up = await _wait_confirmed(store)
        progress(f"attack phase: confirmation caught up after {catch_up if catch_up is None else round(catch_up, 1)} s")
    if options.soak > 0:
        # Half the sustainable rate, or slower if the corpus left would not last the soak's whole duration (memory
        # must be watched over time, and every partial is sent once): --partials builds a larger corpus.
        left = len(partials) - cursor
        rate = max(1.0, min(sustainable / 2, left / options.soak))
        if rate < sustainable / 2:
            notes.append(
                f"soak at {rate:.1f}/s, not half the sustainable rate ({sustainable / 2:.0f}/s): the corpus held "
                f"{left} partials for {options.soak:.0f} s; build a larger one with --partials"
            )
        chunk = take(round(rate * options.soak), "soak")
        if chunk:
            progress(f"soak: {len(chunk)} partials at {rate:.1f}/s over {len(chunk) / rate:.0f} s, sampling memory")
            soak = await _soaked(
                _phase(
                    f"soak {rate:.1f}/s", "open", rate, None, chunk, _open(sender, chunk, rate), store, meters, progress
                ),
                pool_pid,
            )
            phases.append(soak)
    return phases, attack_results, notes


async def _run_loops(
    options: BenchOptions,
    sender: Sender,
    store: AbstractPoolStore,
    meters: Meters,
    floors: Floors,
    progress: Progress,
    take: Callable[[int, str, int | None], list[CorpusPartial]],
    before_attacks: int,
) -> list[PhaseResult]:
    """The closed loop, then an open loop at each of the options' rates."""
    connections = options.connections
    chunk = take(options.closed_partials, "closed loop", before_attacks)
    progress(f"closed loop: {len(chunk)} partials over {connections} connections")
    closed = await _phase(
        f"closed loop, {connections} connections",
        "closed",
        None,
        connections,
        chunk,
        lambda: sender.closed_loop(chunk, connections),
        store,
        meters,
        progress,
    )
    phases = [closed]
    sustainable = closed.accepted_per_s
    for rate_text in options.rates:
        share_of_limit = rate_text.endswith("%")
        if share_of_limit:
            # Right before: the floor drifts over minutes on a shared machine (docs/performance.md), and a share of
            # the limit must be offered (and judged) against the machine's speed of the moment, never a slow reading
            # of it.
            floors.measure_again("before offering a share of the limit")
        machine_limit = floors.least.machine_limit
        rate, label = offered_rate(rate_text, sustainable, machine_limit)
        if rate <= 0:
            continue
        name = f"open loop {rate:.0f}/s" + label
        chunk = take(round(rate * options.duration), name, before_attacks)
        if not chunk:
            continue
        progress(f"{name}: {len(chunk)} partials over {len(chunk) / rate:.1f} s")
        result = await _phase(name, "open", rate, None, chunk, _open(sender, chunk, rate), store, meters, progress)
        if share_of_limit:
            result.machine_limit = machine_limit
        phases.append(result)
    return phases


def offered_rate(text: str, sustainable: float, machine_limit: float) -> tuple[float, str]:
    """An open loop's rate in partials/s, and what it stands for in the phase's name: ``2x`` is twice the closed
    loop's accepted/s, ``40%`` that share of the machine's limit, anything else partials/s."""
    if text == "2x":
        return 2 * sustainable, " (2x sustainable)"
    if text.endswith("%"):
        return float(text[:-1]) / 100 * machine_limit, f" ({text} of the limit)"
    return float(text), ""


def _open(sender: Sender, chunk: Sequence[CorpusPartial], rate: float) -> Callable[[], Awaitable[Outcomes]]:
    return lambda: sender.open_loop(chunk, rate)


async def _soaked(phase: Awaitable[PhaseResult], pool_pid: int) -> PhaseResult:
    """Run a phase while sampling the pool's resident memory (all its processes) every few seconds."""
    samples: list[float] = []

    async def sample() -> None:
        while True:
            samples.append(sum(rss_mb(pid) for pid in process_tree(pool_pid)))
            await asyncio.sleep(SOAK_SAMPLE_SECONDS)

    sampler = asyncio.create_task(sample())
    try:
        result = await phase
    finally:
        sampler.cancel()
    result.rss_samples_mb = samples
    return result


async def _phase(
    name: str,
    mode: str,
    rate: float | None,
    connections: int | None,
    chunk: Sequence[CorpusPartial],
    send: Callable[[], Awaitable[Outcomes]],
    store: AbstractPoolStore,
    meters: Meters,
    progress: Progress,
) -> PhaseResult:
    before = meters.read()
    started = time.perf_counter()
    outcomes = await send()
    intake_seconds = time.perf_counter() - started
    after_intake = meters.read()
    accepted_text = ", ".join(f"{outcome} {count}" for outcome, count in sorted(outcomes.counts.items()))
    progress(f"{name}: {accepted_text} in {intake_seconds:.1f} s; waiting for confirmation")
    catch_up = await _wait_confirmed(store)
    after_all = meters.read()
    progress(f"{name}: confirmation caught up after {catch_up if catch_up is None else round(catch_up, 1)} s")
    return PhaseResult(
        name=name,
        mode=mode,
        offered_rate=rate,
        connections=connections,
        planned=len(chunk),
        outcomes=outcomes,
        intake_seconds=intake_seconds,
        cpu_intake={key: after_intake[key] - before[key] for key in before},
        cpu_total={key: after_all[key] - before[key] for key in before},
        catch_up_seconds=catch_up,
    )


async def _outcome_counts(store: AbstractPoolStore) -> Counter[str]:
    counts: Counter[str] = Counter()
    for row in await store.partial_counts(0):
        counts[row.outcome] += row.count
    return counts


async def _wait_confirmed(store: AbstractPoolStore) -> float | None:
    """Seconds until no accepted partial is pending any more (None: not within CATCH_UP_TIMEOUT)."""
    started = time.perf_counter()
    while (await _outcome_counts(store))["pending"] > 0:
        if time.perf_counter() - started > CATCH_UP_TIMEOUT:
            return None
        await asyncio.sleep(0.2)
    return time.perf_counter() - started
