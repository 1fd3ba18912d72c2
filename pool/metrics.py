"""Prometheus metrics of the pool (served at GET /metrics by pool/http/operator_endpoints.py).

Every name starts with ``pool_`` (plus prometheus-client's ``process_*``): the prefix is fixed, since dashboards and
alerts (deploy/prometheus, deploy/grafana) are written against it.

Counters and histograms of what happens in this process (partials answered, request and RPC latency, loop runs) live
in a registry of their own, so that two pools in one process (tests) never share them. With ``server.workers`` > 1
the supervisor gives every worker one directory, ``PROMETHEUS_MULTIPROC_DIR`` (prometheus-client's multiprocess
mode): each worker writes its counts there, and whichever worker answers a scrape sums those of all of them, dead
ones included, so counters never go back when the kernel hands the scrape to another worker or a worker restarts.

Figures that are state, not events (pending partials, points, farmers, claims, payouts, ledger, wallet, chain), are
read from SQL aggregates and the chain by pool/http/operator_endpoints.py (``show_state``), once for the scrapes of
``server.metrics_cache_seconds``: the store is the truth, every worker reports the same, and a restarted pool reports
them at once.
"""

from __future__ import annotations

import math
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, ProcessCollector, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.metrics_core import GaugeMetricFamily, InfoMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead
from prometheus_client.registry import Collector

from pool.store.abstract import AbstractPoolStore
from pool.store.models import BatchStatus, ClaimStatus, RoundStatus

__all__ = [
    "CONTENT_TYPE_LATEST",
    "MULTIPROCESS_DIR",
    "SUPERVISOR_PID",
    "ChainFigures",
    "Metric",
    "PoolMetrics",
    "mark_process_dead",
]

MULTIPROCESS_DIR = "PROMETHEUS_MULTIPROC_DIR"
"""prometheus-client reads it when it is first imported: set, every metric of the process is written to that
directory (one file per process and kind), and a scrape must read them all."""
SUPERVISOR_PID = "POOL_SUPERVISOR_PID"
"""Set by the supervisor for its workers: whose processes the ``process_*`` metrics add up."""

# Seconds. Partials must be answered well within the farmer's time limit; RPCs to a local node take milliseconds.
_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
_LOOP_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0)


def multiprocess_dir() -> str | None:
    return os.environ.get(MULTIPROCESS_DIR) or None


@contextmanager
def multiprocess_directory() -> Iterator[str]:
    """The directory the workers of one supervisor share for their metrics, empty at the start: the operator's
    ``PROMETHEUS_MULTIPROC_DIR`` (emptied of a previous run's files), or a temporary one removed at the end."""
    given = multiprocess_dir()
    if given is None:
        created = tempfile.mkdtemp(prefix="pool-metrics-")
        try:
            yield created
        finally:
            shutil.rmtree(created, ignore_errors=True)
        return
    clear_multiprocess_dir(given)
    yield given


def forget_earlier_run() -> None:
    """A pool of one process given ``PROMETHEUS_MULTIPROC_DIR`` by its operator: it alone writes there, and the counts
    of its earlier runs go."""
    given = multiprocess_dir()
    if given is not None:
        clear_multiprocess_dir(given)


def clear_multiprocess_dir(path: str) -> None:
    """Files of processes of an earlier run would add their counts to this run's."""
    Path(path).mkdir(parents=True, exist_ok=True)
    for stale in Path(path).glob("*.db"):
        stale.unlink(missing_ok=True)


@dataclass(frozen=True)
class ChainFigures:
    """What the node and the wallet answered at this scrape (None: they did not)."""

    node_up: bool
    peak_height: int | None
    node_synced: bool
    wallet_synced: bool
    wallet_spendable: int | None
    wallet_unavailable_since: float | None


class _Snapshot(Collector):
    """Families computed at the last refresh, given as they are to every collection."""

    def __init__(self) -> None:
        self.families: list[Metric] = []

    def collect(self) -> Iterable[Metric]:
        return list(self.families)

    def describe(self) -> Iterable[Metric]:
        return []


class _BuildInfo(Collector):
    def __init__(self) -> None:
        self.versions = {"version": _version("chia-pool-server"), "chia_version": _version("chia-blockchain")}

    def collect(self) -> Iterable[Metric]:
        info = InfoMetricFamily("pool_build", "Versions of the pool server and of chia-blockchain it runs with")
        info.add_metric([], self.versions)
        return [info]


def _version(distribution: str) -> str:
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return "unknown"


class _PoolProcesses(Collector):
    """``process_*`` of the whole pool in multiprocess mode: the supervisor and its workers, summed (a process without
    a supervisor: itself); the start time is the supervisor's. A restarted worker's CPU time leaves the sum, so
    process_cpu_seconds_total may go back then (rate() takes it as a counter reset)."""

    _EARLIEST = {"process_start_time_seconds"}
    _SAME = {"process_max_fds"}

    def collect(self) -> Iterable[Metric]:
        supervisor = os.environ.get(SUPERVISOR_PID)
        pids = [os.getpid()] if supervisor is None else [int(supervisor), *_children(int(supervisor))]
        merged: dict[str, Metric] = {}
        for pid in pids:
            for family in ProcessCollector(pid=_fixed(pid), registry=None).collect():
                known = merged.get(family.name)
                if not family.samples:
                    continue
                if known is None:
                    family.documentation += " (the pool's supervisor and workers together)"
                    merged[family.name] = family
                    continue
                sample, value = known.samples[0], family.samples[0].value
                if family.name in self._EARLIEST:
                    combined = min(sample.value, value)
                elif family.name in self._SAME:
                    combined = sample.value
                else:
                    combined = sample.value + value
                known.samples[0] = sample._replace(value=combined)
        return list(merged.values())


def _fixed(pid: int) -> Callable[[], int]:
    return lambda: pid


def _children(pid: int) -> list[int]:
    try:
        return [int(child) for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


class PoolMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        # -- events in this process (reset on restart, as Prometheus counters are)
        self.partials = Counter(
            "pool_partials",
            "Partials answered by POST /partial: result is 'accepted' or the protocol error code name",
            ["result"],
            registry=r,
        )
        self.partials.labels(result="accepted")  # the series exists from the start, at 0
        self.http_request_seconds = Histogram(
            "pool_http_request_duration_seconds",
            "Time to answer an HTTP request, per route and method",
            ["endpoint", "method"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.signage_point_lookups = Counter(
            "pool_signage_point_cache_lookups",
            "Signage point lookups of partials: 'hit' answered from the cache, 'miss' asked the node",
            ["result"],
            registry=r,
        )
        self.node_rpc_seconds = Histogram(
            "pool_node_rpc_duration_seconds",
            "Full node RPC latency per call",
            ["call"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.node_rpc_errors = Counter(
            "pool_node_rpc_errors", "Full node RPCs that failed (unreachable, timeout, refused)", ["call"], registry=r
        )
        self.loop_seconds = Histogram(
            "pool_loop_duration_seconds",
            "Duration of one iteration of a background loop",
            ["loop"],
            buckets=_LOOP_BUCKETS,
            registry=r,
        )
        self.loop_errors = Counter("pool_loop_errors", "Loop iterations that raised", ["loop"], registry=r)
        # The newest of every worker's, past leaders' included: a stalled leader's figure ages in any worker's scrape.
        self.loop_last_success = Gauge(
            "pool_loop_last_success_timestamp_seconds",
            "Unix time a loop iteration last succeeded (0: not yet since the pool started)",
            ["loop"],
            registry=r,
            multiprocess_mode="max",
        )
        # Summed over the live workers: 1 in a healthy pool, 0 while none leads.
        self.is_leader = Gauge(
            "pool_is_leader",
            "1 when this process (the live workers of this supervisor, summed) runs the chain loops",
            registry=r,
            multiprocess_mode="livesum",
        )
        self.is_leader.set(0)
        self._snapshot = _Snapshot()
        self._multiprocess = multiprocess_dir()
        self._exposed = self._exposed_registry()
        # The last exposition and when it was made: a scrape within ``max_age`` of it is given the same bytes.
        self._exposed_bytes: tuple[float, bytes] | None = None

    def _exposed_registry(self) -> CollectorRegistry:
        """What a scrape renders: this process's registry, or every worker's files in multiprocess mode."""
        if self._multiprocess is None:
            exposed = self.registry
            ProcessCollector(registry=exposed)
        else:
            exposed = CollectorRegistry(auto_describe=True)
            MultiProcessCollector(exposed, path=self._multiprocess)
            exposed.register(_PoolProcesses())
        exposed.register(_BuildInfo())
        exposed.register(self._snapshot)
        return exposed

    # -- hooks called by the parts of the pool -----------------------------------------------------------------
    def partial_answered(self, result: str) -> None:
        self.partials.labels(result=result).inc()

    def signage_point_lookup(self, hit: bool) -> None:
        self.signage_point_lookups.labels(result="hit" if hit else "miss").inc()

    def node_rpc(self, call: str, seconds: float, ok: bool) -> None:
        self.node_rpc_seconds.labels(call=call).observe(seconds)
        if not ok:
            self.node_rpc_errors.labels(call=call).inc()

    def loops_known(self, names: Iterable[str]) -> None:
        """Every loop's series exists from the start (at 0), in every process that may lead: an alert on its age
        then fires when no leader runs it, instead of finding no series."""
        for name in names:
            self.loop_last_success.labels(loop=name)
            self.loop_errors.labels(loop=name)

    def loop_ran(self, loop: str, seconds: float, ok: bool, now: int) -> None:
        self.loop_seconds.labels(loop=loop).observe(seconds)
        if ok:
            self.loop_last_success.labels(loop=loop).set(now)
        else:
            self.loop_errors.labels(loop=loop).inc()

    def leading(self, leads: bool) -> None:
        self.is_leader.set(1 if leads else 0)

    # -- scrape ------------------------------------------------------------------------------------------------
    def show_state(self, families: list[Metric]) -> None:
        """The state families scrapes show from now on (read by the HTTP layer, which shares one reading between
        the scrapes of ``server.metrics_cache_seconds``); a new reading is shown at once."""
        if families is not self._snapshot.families:
            self._snapshot.families = families
            self._exposed_bytes = None

    def exposition(self, max_age: float = 0.0) -> bytes:
        """The registry's text exposition, made again unless made less than ``max_age`` seconds ago (and the state
        not read again since). Making it is milliseconds (every series of every histogram, and every process's with
        several workers), on the event loop that takes the partials: scrapes that come often share one."""
        now = time.monotonic()
        if self._exposed_bytes is not None and now - self._exposed_bytes[0] < max_age:
            return self._exposed_bytes[1]
        made = generate_latest(self._exposed)
        self._exposed_bytes = (now, made)
        return made


def _gauge(name: str, documentation: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, documentation, value=value)


def _labelled(name: str, documentation: str, label: str, values: dict[str, float]) -> GaugeMetricFamily:
    family = GaugeMetricFamily(name, documentation, labels=[label])
    for label_value, value in values.items():
        family.add_metric([label_value], value)
    return family


async def state_families(store: AbstractPoolStore, chain: ChainFigures) -> list[Metric]:
    """The pool's state as gauges: SQL aggregates and indexed look-ups of the store, and what the chain answered."""
    figures = await store.state_figures()
    claims = {status.value: figures.claims.get(status, (0, 0)) for status in ClaimStatus}
    batch_counts = dict.fromkeys(BatchStatus, 0)
    open_round = await store.open_round()  # at most one is open; its batches are a handful
    if open_round is not None and open_round.id is not None:
        for batch in await store.batches(open_round.id):
            batch_counts[batch.status] += 1
    ledger = await store.ledger()
    families = [
        _gauge("pool_partials_pending", "Partials accepted and not yet credited", figures.pending_partials),
        _gauge("pool_points", "Unpaid points of all farmers", figures.points),
        _labelled(
            "pool_farmers",
            "Farmers known to the pool, by membership",
            "membership",
            {"member": figures.farmers[True], "left": figures.farmers[False]},
        ),
        _labelled(
            "pool_reward_claims",
            "Reward claims (absorbs) by status",
            "status",
            {status: count for status, (count, _) in claims.items()},
        ),
        _labelled(
            "pool_reward_claims_mojos",
            "Mojos of reward claims by status",
            "status",
            {status: mojos for status, (_, mojos) in claims.items()},
        ),
        _labelled(
            "pool_payout_rounds",
            "Payout rounds by status (open, done)",
            "status",
            {status.value: figures.rounds.get(status, 0) for status in RoundStatus},
        ),
        _labelled(
            "pool_payment_batches_open_round",
            "Payout transactions (batches) of the open payout round by status (all 0 when no round is open)",
            "status",
            {status.value: count for status, count in batch_counts.items()},
        ),
        _gauge(
            "pool_open_round_created_timestamp_seconds",
            "Unix time the open payout round was made (0 when none is open): a round open long is stuck",
            0 if open_round is None else open_round.created_at,
        ),
        _gauge(
            "pool_paid_to_farmers_mojos",
            "Mojos paid to farmers in confirmed payout transactions",
            ledger.farmer_payments - ledger.farmer_payments_in_flight,
        ),
        _gauge("pool_owed_mojos", "Mojos shared out to farmers and not yet paid", ledger.owed),
        _gauge(
            "pool_ledger_wallet_mojos",
            "Mojos the ledger says the wallet holds (owed + fee share + undistributed)",
            ledger.wallet_should_hold,
        ),
        _gauge("pool_ledger_balanced", "1 when the ledger's invariant holds", 1 if ledger.balanced else 0),
        _gauge(
            "pool_leader_seen_timestamp_seconds",
            "Unix time the leader last said, in the store, that it leads (0: never)",
            await store.leader_seen_at(),
        ),
    ]
    return families + chain_families(chain)


def chain_families(chain: ChainFigures) -> list[Metric]:
    families: list[Metric] = [
        _gauge("pool_node_up", "1 when a full node answered this scrape", 1 if chain.node_up else 0),
        _gauge(
            "pool_wallet_spendable_mojos",
            "Spendable balance of the pool wallet (NaN when unreachable)",
            math.nan if chain.wallet_spendable is None else chain.wallet_spendable,
        ),
        _gauge(
            "pool_wallet_up",
            "1 when the pool wallet answered the last scrape",
            0 if chain.wallet_spendable is None else 1,
        ),
        _gauge(
            "pool_wallet_unavailable_since_seconds",
            "Unix time since which the pool wallet has not answered (0 while it answers): payouts wait meanwhile",
            chain.wallet_unavailable_since or 0,
        ),
        _labelled(
            "pool_synced",
            "1 when synced, per component (node, wallet)",
            "component",
            {"node": 1 if chain.node_synced else 0, "wallet": 1 if chain.wallet_synced else 0},
        ),
    ]
    if chain.peak_height is not None:
        families.append(_gauge("pool_peak_height", "Height of the full node's peak", chain.peak_height))
    return families
