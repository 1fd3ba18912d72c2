"""How the bench judges its targets from the figures (no chain: documents as report_json writes them)."""

from __future__ import annotations

import argparse
import asyncio
import math
import random
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from prometheus_client import CollectorRegistry, Histogram, generate_latest

from pool.bench.__main__ import FULL
from pool.bench.load import ACCEPTED, Outcomes
from pool.bench.report import percentile_interval, targets
from pool.bench.run import offered_rate
from pool.bench.scale import build_parser, corpus_partials, render_table, report
from pool.bench.scale_run import (
    LEADER_LOOPS,
    LOOP_METRIC,
    SKIPPED_PER_STORE,
    CorpusExhausted,
    ScaleOptions,
    Shared,
    _first_passes_done,
)
from pool.server import background_loops


def test_offered_rates() -> None:
    assert offered_rate("100", 350.0, 1000.0) == (100.0, "")
    assert offered_rate("2x", 350.0, 1000.0) == (700.0, " (2x sustainable)")
    assert offered_rate("40%", 350.0, 1000.0) == (400.0, " (40% of the limit)")


def phase(name: str, mode: str, share: float, **changes: Any) -> dict[str, Any]:
    figures: dict[str, Any] = {
        "name": name,
        "mode": mode,
        "offered_per_s": None if mode == "closed" else 1000 * share,
        "share_of_machine_limit": share * 0.97,  # over the intake window, which holds the last answers too
        "sent_per_s": 1000 * share,
        "sent": 1000,
        "accepted": 1000,
        "refused": {},
        "sender_kept_up": None if mode == "closed" else True,
        "latency_ms": {"p50": 10.0, "p90": 20.0, "p99": 40.0, "max": 50.0},
        "pool_cpu_x_floor_per_accepted_total": 1.3,
        "node_cpu_x_floor_per_partial": 0.05,
    }
    figures.update(changes)
    return figures


def sustained(*phases: dict[str, Any]) -> tuple[str, float | None, bool | None]:
    closed = phase("closed loop, 16 connections", "closed", 0.34, share_of_machine_limit=0.34)
    document = {"phases": [closed, *phases], "pool_peak_rss_mb": {}, "machine_limit_per_s": 1000.0}
    row = next(row for row in targets(document) if row["target"].startswith("sustained"))
    return row["target"], row["value"], row["met"]


def test_the_sustained_rate_is_the_share_offered_when_the_pool_kept_up() -> None:
    # Sent 0.2% under the schedule (the sender's jitter), every partial accepted: the pool sustained the 40% offered.
    kept_up = phase("open loop 400/s (40% of the limit)", "open", 0.4, sent_per_s=399.2)
    name, value, met = sustained(kept_up)
    assert "open loop" in name and value == 0.4 and met is True
    # Offered less than the target: kept up, not met.
    assert sustained(phase("open loop 390/s (39% of the limit)", "open", 0.39))[1:] == (0.39, False)


def test_the_share_is_judged_against_the_limit_measured_before_the_phase() -> None:
    # The floor measured right before the phase set the rate; the run's least floor (after it) is 5% lower.
    offered = phase("open loop 400/s (40% of the limit)", "open", 0.4, machine_limit_per_s_offered_against=1000.0)
    closed = phase("closed loop, 16 connections", "closed", 0.34, share_of_machine_limit=0.34)
    document = {"phases": [closed, offered], "pool_peak_rss_mb": {}, "machine_limit_per_s": 1050.0}
    row = next(row for row in targets(document) if row["target"].startswith("sustained"))
    assert (row["value"], row["met"]) == (0.4, True)


@pytest.mark.parametrize(
    "shortfall",
    [
        {"refused": {"error SERVER_EXCEPTION": 3}, "accepted": 997},  # some refused as busy: not sustained
        {"sender_kept_up": False},  # the rate was not really offered
        {"latency_ms": {"p50": 900.0, "p90": 1500.0, "p99": 2500.0, "max": 3000.0}},  # a queue, not a sustained rate
    ],
)
def test_a_rate_not_kept_up_is_not_sustained(shortfall: dict[str, Any]) -> None:
    assert sustained(phase("open loop 450/s (45% of the limit)", "open", 0.45, **shortfall))[2] is False


def test_a_rate_not_kept_up_shows_the_share_sent() -> None:
    short = phase("open loop 450/s (45% of the limit)", "open", 0.45, sent_per_s=400.0, sender_kept_up=False)
    assert sustained(short)[1:] == (0.4, False)  # what was sent (all of it accepted), not what was offered


def test_the_send_rate_is_the_slope_of_the_sends() -> None:
    outcomes = Outcomes()
    outcomes.counts[ACCEPTED] = 1000
    outcomes.sent_at = [10.0 + number / 400 for number in range(1000)]
    assert outcomes.send_rate == pytest.approx(400.0)
    outcomes.sent_at[-1] += 0.1  # the last send 100 ms late: a first-to-last rate would say 396/s
    assert outcomes.send_rate == pytest.approx(400.0, rel=0.002)
    outcomes.sent_at = [10.0 + number / 200 for number in range(1000)]
    assert outcomes.send_rate == pytest.approx(200.0)


def test_without_such_a_phase_the_closed_loop_decides() -> None:
    name, value, met = sustained(phase("open loop 100/s", "open", 0.1))
    assert "closed loop" in name and value == 0.34 and met is False


def test_the_scale_benchs_corpus_is_sized_by_its_stores() -> None:
    """make bench-scale's default corpus holds what its stores' phases take (the empty store's two phases, each
    built store's three, and a margin a store), at least make bench's, so that the defaults' run never runs out."""
    options = ScaleOptions(run_dir=Path("run"))  # 50 partials/s for 20 s a phase
    assert options.phase_partials() == options.phase_partials(pages=True) == 1000
    assert options.partials_needed(4) == 2000 + 4 * 3000 + 5 * SKIPPED_PER_STORE
    args = build_parser().parse_args([])
    assert corpus_partials(args, options) == 19_000  # the defaults: 1 000 and 10 000 farmers, 1 and 30 days
    few = build_parser().parse_args(["--farmers", "1000", "--days", "1"])
    assert corpus_partials(few, options) == int(str(FULL["partials"]))  # make bench's own corpus
    asked = build_parser().parse_args(["--corpus-partials", "30000"])
    assert corpus_partials(asked, options) == 30_000


def test_a_corpus_run_out_keeps_the_stores_measured_so_far() -> None:
    shared = Shared(corpus=None, node=None, sender=SimpleNamespace(announcer=SimpleNamespace(done=-1)), partials=[])  # type: ignore[arg-type]
    shared.partials = [SimpleNamespace(event=n) for n in range(10)]  # type: ignore[misc]
    assert len(shared.take(6)) == 6
    with pytest.raises(CorpusExhausted, match="--corpus-partials"):
        shared.take(6)
    args = argparse.Namespace(store="sqlite", rate=50.0, duration=20.0, loop_seconds=40.0, loop_interval=10.0)
    document = report(args, [], None, ["10000 farmers, 30 days"])
    assert document["not_measured"] == ["10000 farmers, 30 days"] and document["targets"] == []
    assert "not measured (the corpus ran out of partials" in render_table(document)


def test_the_scale_bench_waits_for_the_loops_the_pool_runs() -> None:
    assert LEADER_LOOPS == {loop.name for loop in background_loops(cast(Any, None), cast(Any, None))}


async def test_the_intake_waits_until_every_loop_ended_its_first_pass() -> None:
    """A loop shows in GET /metrics only once it ended a pass: the bench waits for every loop the pool runs, not for
    those shown (the rewards' first pass at 10 000 farmers, seconds, fell in the first phase)."""
    registry = CollectorRegistry()
    passes = Histogram(LOOP_METRIC.removesuffix("_seconds"), "passes", ["loop"], unit="seconds", registry=registry)
    for name in sorted(LEADER_LOOPS - {"rewards"}):
        passes.labels(loop=name).observe(0.1)

    async def metrics(request: web.Request) -> web.Response:
        return web.Response(body=generate_latest(registry), content_type="text/plain")

    app = web.Application()
    app.router.add_get("/metrics", metrics)
    async with TestServer(app) as server, aiohttp.ClientSession() as session:
        url = str(server.make_url("")).rstrip("/")
        waiting = asyncio.create_task(_first_passes_done(session, url, lambda line: None, "store"))
        await asyncio.sleep(0.2)
        assert not waiting.done()
        passes.labels(loop="rewards").observe(3.5)
        await asyncio.wait_for(waiting, 5)


def test_a_p99_is_given_with_where_it_lies_from_the_samples_alone() -> None:
    # 1 000 samples: the 983rd to the 997th (the binomial's 95%); too few to bound it above: none.
    assert percentile_interval([float(n) for n in range(1, 1001)], 0.99) == (983.0, 997.0)
    assert percentile_interval([float(n) for n in range(1, 101)], 0.99) is None
    assert percentile_interval([], 0.99) is None
    with pytest.raises(ValueError):
        percentile_interval([1.0], 1.0)
    # Whatever the distribution, the interval holds the true p99 at least 95% of the time (a heavy tail here).
    rng = random.Random(26)
    true_p99 = math.exp(math.log(100) / 1.5)  # Pareto(1.5): P(X > x) = x ** -1.5
    held = 0
    for _ in range(400):
        interval = percentile_interval([rng.paretovariate(1.5) for _ in range(1000)], 0.99)
        assert interval is not None
        held += interval[0] <= true_p99 <= interval[1]
    assert held >= 0.95 * 400
