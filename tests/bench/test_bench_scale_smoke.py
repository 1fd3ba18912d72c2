"""make bench-scale's machinery at a tiny size: a store of 20 farmers over a day built through the store's API, cached
and copied, then the real pool (``python -m pool``) measured against the empty store and against it, on a tiny corpus
built on the session's shared chain; and a simulated week.

Checks that it runs end to end and that the table and the JSON have every figure, never timings. Slow: it starts a
node process and two pool processes of its own.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import pytest

from pool.bench.corpus import CorpusSize, build_corpus
from pool.bench.scale import TARGET_LOOPS, render_table, report, simulate_week
from pool.bench.scale_run import PAGES, ScaleOptions, run_stores
from pool.bench.scale_store import PARTIALS_PER_DAY, ScaleSize, ScaleStores, about_path
from pool.devnet.world import World

pytestmark = pytest.mark.slow

SIZE = ScaleSize(farmers=20, days=1)


def progress(message: str) -> None:
    print(f"{time.monotonic():.1f} {message}")


def _files(folder: Path, pattern: str) -> list[Path]:
    return list(folder.glob(pattern))


async def test_bench_scale_runs_end_to_end_and_reports_every_figure(world: World, tmp_path: Path) -> None:
    progress("building the corpus")
    # Five phases of 8 partials; those of the events announced before a phase starts are skipped.
    corpus = await build_corpus(world, CorpusSize(1, 4, 120), fresh_launchers=False, progress=lambda _: None)
    corpus_path = tmp_path / "corpus.json"
    corpus.save(corpus_path)
    stores = ScaleStores(tmp_path / "cache", "sqlite")
    end = await stores.ensure(SIZE, corpus.target_puzzle_hash, False, lambda _: None)
    assert stores.cached(SIZE).exists()
    # Cached: asked again, it is not built again (the same end).
    assert await stores.ensure(SIZE, corpus.target_puzzle_hash, False, lambda _: None) == end
    # A store built by other migration steps (another branch's) is built again, not migrated by these.
    about = about_path(stores.cached(SIZE))
    about.write_text(json.dumps({**json.loads(about.read_text()), "schema": "another"}))
    said: list[str] = []
    end = await stores.ensure(SIZE, corpus.target_puzzle_hash, False, said.append)
    assert any("another schema" in line for line in said) and any("building" in line for line in said)
    assert json.loads(about.read_text())["schema"] != "another"

    options = ScaleOptions(
        run_dir=tmp_path / "run",
        rate=4,
        duration=2,
        page_samples=2,
        loop_seconds=3,
        loop_interval=1,
        loops_in_own_pool=False,
    )
    results = await run_stores(corpus, corpus_path, stores, [(SIZE, end)], options, progress)
    week = await simulate_week(stores, SIZE, end, tmp_path, lambda _: None)
    # Each store's copy is removed once measured (at 10 000 farmers over 30 days it is as large as the cached store);
    # the run keeps its configurations and logs.
    assert not _files(tmp_path / "run", "store-*") and not _files(tmp_path, "store-week*")
    assert _files(tmp_path / "run", "*.log")
    args = argparse.Namespace(store="sqlite", rate=4, duration=2, loop_seconds=3, loop_interval=1)
    document = report(args, results, week)

    empty, built = document["stores"]
    assert (empty["partials_built"], built["partials_built"]) == (0, SIZE.farmers * PARTIALS_PER_DAY)
    assert built["store_bytes_before"] > 0 and empty["store_bytes_after"] > 0
    assert empty["intake_while_pruning"] is None
    for phase in (empty["intake"], built["intake"], built["intake_while_pruning"], empty["pages"], built["pages"]):
        # Every partial sent once, in time, to a pool on a copy of the store: all accepted and confirmed.
        assert phase["accepted"] == phase["sent"] == 8, phase["refused"]
        assert phase["pool_cpu_ms_per_accepted"] > 0 and phase["latency_ms"]["p99"] > 0
        assert phase["confirmation_catch_up_seconds"] is not None
        assert not phase["page_errors"]
    # The partials' figures come from phases without pages; the pages', from a phase of their own.
    assert not empty["intake"]["pages_ms"] and not built["intake_while_pruning"]["pages_ms"]
    assert all(store["pages"]["pages_ms"][page]["count"] > 0 for store in (empty, built) for page in PAGES)
    # The prune ran beside the intake: the oldest half day of the store, in the retention's batches.
    assert built["intake_while_pruning"]["pruned"] > 0 and built["intake_while_pruning"]["prune_batches"] > 0
    for store in (empty, built):
        ran = set(store["loops"]["runs"]) | set(store["loops_during_intake"]["runs"])
        # The retention runs once an hour: its first iteration, at the pool's start, precedes both windows here
        # (loops_in_own_pool=False); make bench-scale counts the loops' own pool from its start.
        assert set(TARGET_LOOPS) - {"retention"} <= ran, ran
        assert store["loops"]["node_calls_total"] > 0 and store["loops"]["node_calls_per_loop_pass"] > 0
    assert len(week["bytes_per_day"]) == 8 and all(size > 0 for size in week["bytes_per_day"])
    names = [target["target"] for target in document["targets"]]
    assert len(names) == 6, names

    table = render_table(document)
    print(table)
    for row in ("pool CPU per accepted partial", "partials p50 / p99", "while pruning", "node calls per loop pass"):
        assert row in table
    assert all(f"pages phase: {page} p50 / p99" in table for page in PAGES)
    assert all(f"loop {loop}:" in table for loop in TARGET_LOOPS)
    assert all(name in table for name in names)
