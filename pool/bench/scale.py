"""``python -m pool.bench.scale`` (``make bench-scale``): the pool measured against stores of growing size.

Builds (or reuses, cached in the bench's cache folder) a store per farmer count and day count, through the store's
own API (pool.bench.scale_store), then measures the real ``python -m pool`` against the empty store and each of them
(pool.bench.scale_run) on the corpus of ``make bench``, and simulates a week at steady state on a copy of the
smallest built store. Progress on stderr; one table on stdout; ``--json PATH`` the same figures.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import json
import math
import os
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import uvloop

from pool.bench.__main__ import DEFAULT_CACHE, FULL, Progress, corpus_for
from pool.bench.corpus import Corpus
from pool.bench.report import cpu_model
from pool.bench.scale_run import ScaleOptions, StoreFigures, figures_json, run_stores
from pool.bench.scale_store import ScaleSize, ScaleStores, day_of_partials, store_bytes
from pool.config import DAY_SECONDS, DEFAULT_RETENTION_DAYS, StoreConfig
from pool.devnet.postgres import PostgresServer
from pool.loops.retention import FOLD_LOOKBACK_DAYS, PRUNE_BATCH, fold_old_hours, prune_old_partials
from pool.store.abstract import AbstractPoolStore
from pool.store.factory import create_store
from pool.store.sqlite import database_files

# Targets (judged, never asserted): within 10% of the empty store; pages under 50 ms p99 and loop iterations under a
# second at the largest farmer count; a prune moving the partials' p99 by under 10%; the store flat over a week.
SAME_AS_EMPTY = 0.10
PAGE_P99_MS = 50.0
LOOP_SECONDS = 1.0
PRUNE_P99_SHIFT = 0.10
WEEK_GROWTH = 0.10
WEEK_DAYS = 7
HOUR = 3600
TARGET_LOOPS = ("confirm-partials", "difficulty", "retention", "payouts", "rewards", "singletons", "peak")


def _counts(text: str) -> list[int]:
    return [DEFAULT_RETENTION_DAYS if part.strip() == "retention" else int(part) for part in text.split(",") if part]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m pool.bench.scale", description="Measure the pool against stores of growing size."
    )
    parser.add_argument("--store", choices=("sqlite", "postgresql"), default="sqlite", help="the stores' backend")
    parser.add_argument("--farmers", default="1000,10000", help="farmer counts, comma separated (1000,10000)")
    parser.add_argument(
        "--days",
        default="1,retention",
        help="days of history each store holds, comma separated; 'retention' is partials.retention_days' default "
        f"({DEFAULT_RETENTION_DAYS}) (default 1,retention)",
    )
    parser.add_argument("--rate", type=float, default=50.0, help="partials/s offered in each intake phase (50)")
    parser.add_argument("--duration", type=float, default=20.0, help="seconds of each intake phase (20)")
    parser.add_argument("--loop-seconds", type=float, default=40.0, help="seconds the loops are watched (40)")
    parser.add_argument("--loop-interval", type=float, default=10.0, help="every loop due this often then (10)")
    parser.add_argument(
        "--week", action=argparse.BooleanOptionalAction, default=True, help="simulate a week (default on)"
    )
    parser.add_argument("--json", type=Path, help="also write the figures as JSON to this file")
    parser.add_argument("--cache-dir", type=Path, default=DEFAULT_CACHE, help=f"cache (default {DEFAULT_CACHE})")
    parser.add_argument("--rebuild", action="store_true", help="build the stores again even if cached")
    parser.add_argument(
        "--run-dir",
        type=Path,
        help="where this run's copies (each removed once measured), configs and logs live (default: temp)",
    )
    # The corpus, as make bench's (its partials are shared out between the stores' phases).
    for name in ("farmers", "plots", "bystanders"):
        parser.add_argument(f"--corpus-{name}", type=int, default=int(str(FULL[name])), help=argparse.SUPPRESS)
    # The phases take the corpus's partials in the order of its events, each partial once: a run over more stores
    # needs a larger corpus than make bench's (a corpus of its own, cached beside it).
    parser.add_argument(
        "--corpus-partials",
        type=int,
        help=f"partials in the corpus (default: what the run's stores' phases take, at least make bench's "
        f"{FULL['partials']}, which is then the same corpus)",
    )
    return parser


def options_of(args: argparse.Namespace, run_dir: Path) -> ScaleOptions:
    return ScaleOptions(
        run_dir=run_dir,
        rate=args.rate,
        duration=args.duration,
        loop_seconds=args.loop_seconds,
        loop_interval=args.loop_interval,
    )


def corpus_partials(args: argparse.Namespace, options: ScaleOptions) -> int:
    """The corpus's partials: as asked, or what the run's phases take (in thousands), at least make bench's."""
    if args.corpus_partials is not None:
        return int(args.corpus_partials)
    needed = options.partials_needed(len(sizes_of(args)))
    return max(int(str(FULL["partials"])), -(-needed // 1000) * 1000)


def sizes_of(args: argparse.Namespace) -> list[ScaleSize]:
    return [ScaleSize(farmers, days) for farmers in _counts(args.farmers) for days in _counts(args.days)]


async def simulate_week(
    stores: ScaleStores, size: ScaleSize, end: int, run_dir: Path, progress: Callable[[str], None]
) -> dict[str, Any]:
    """On a copy of ``size``'s store: each simulated day, a day of partials arrives (through record_partials and
    confirm_partials) and, as the retention loop does every hour, what fell out of the store's span is pruned each
    simulated hour; the store's bytes each day."""
    config = await asyncio.to_thread(stores.copy, size, "scale_week", run_dir / "store-week.sqlite")
    store = create_store(config)
    await store.open()
    sizes = [await store_bytes(config)]
    files = [_sqlite_bytes(config)]
    try:
        for day in range(WEEK_DAYS):
            day_start = end + day * DAY_SECONDS
            pruned = 0
            hour = day_start // HOUR
            for partials, refusals in day_of_partials(size, day_start):
                added = await store.record_partials(partials, refusals)
                await store.confirm_partials([i for i in added if isinstance(i, int)])
                newest = partials[-1].received_at if partials else day_start
                if newest // HOUR != hour:
                    hour = newest // HOUR
                    pruned += await _retention_pass(store, newest - size.days * DAY_SECONDS)
            pruned += await _retention_pass(store, day_start + DAY_SECONDS - size.days * DAY_SECONDS)
            sizes.append(await store_bytes(config))
            files.append(_sqlite_bytes(config))
            progress(f"week: day {day + 1}: {pruned} pruned, store {sizes[-1] / 2**20:.1f} MiB")
    finally:
        await store.close()
        await asyncio.to_thread(stores.discard, "scale_week", config)
    # From the first simulated day on: the store's span is full then, and SQLite's write-ahead log has grown to
    # what it keeps between checkpoints.
    return {
        "store": size.label,
        "bytes_per_day": sizes,
        "growth_after_first_day": sizes[-1] / sizes[1] - 1 if sizes[1] else None,
        "sqlite_database_and_wal_bytes_per_day": files if config.backend == "sqlite" else None,
    }


async def _retention_pass(store: AbstractPoolStore, before: int) -> int:
    """The retention loop's pass without its pauses, the hourly counts folded at the partials' own cutoff: what a
    pool keeps in steady state once its hourly counts are ``partials.hourly_days`` old, in a week."""
    pruned = await prune_old_partials(store, before, pause=0, busy_share=1)
    await fold_old_hours(store, before - FOLD_LOOKBACK_DAYS * DAY_SECONDS, before, pause=0, busy_share=1)
    return pruned


def _sqlite_bytes(config: StoreConfig) -> tuple[int, int]:
    """The SQLite database file and its write-ahead log apart (0, 0 for PostgreSQL)."""
    if config.backend != "sqlite":
        return 0, 0
    _, wal, _ = database_files(config.path)
    return config.path.stat().st_size, wal.stat().st_size if wal.exists() else 0


def corpus_arguments(args: argparse.Namespace, partials: int) -> argparse.Namespace:
    """What make bench's corpus_for reads: make bench's corpus (and cache), of ``partials`` partials."""
    return argparse.Namespace(
        farmers=args.corpus_farmers,
        plots=args.corpus_plots,
        partials=partials,
        bystanders=args.corpus_bystanders,
        quick=False,
        cache_dir=args.cache_dir,
        rebuild=False,
    )


async def run(
    args: argparse.Namespace, options: ScaleOptions, corpus: Corpus, corpus_path: Path, progress: Progress
) -> dict[str, Any]:
    run_dir = options.run_dir
    progress(f"run directory (the stores' copies while measured, configs, logs): {run_dir}")
    async with AsyncExitStack() as stack:
        postgres = None
        if args.store == "postgresql":
            postgres = PostgresServer.start(durable=True)
            stack.callback(postgres.stop)
        stores = ScaleStores(args.cache_dir, args.store, postgres)
        built = [
            (size, await stores.ensure(size, corpus.target_puzzle_hash, args.rebuild, progress))
            for size in sizes_of(args)
        ]
        results = await run_stores(corpus, corpus_path, stores, built, options, progress)
        week = None
        if args.week and built and len(results) == 1 + len(built):
            # The fewest farmers, over the most days: the nearest to a pool at steady state that is quick to fill a
            # day of (what the retention keeps for good, the hourly counts, weighs against the days it holds).
            smallest, end = min(built, key=lambda item: (item[0].farmers, -item[0].days))
            week = await simulate_week(stores, smallest, end, run_dir, progress)
    unmeasured = [size.label for size, _ in built[max(0, len(results) - 1) :]]
    return report(args, results, week, unmeasured)


def report(
    args: argparse.Namespace,
    results: list[StoreFigures],
    week: dict[str, Any] | None,
    unmeasured: Sequence[str] = (),
) -> dict[str, Any]:
    stores = [figures_json(figures) for figures in results]
    return {
        "machine": {
            "cores": os.cpu_count(),
            "cpu_model": cpu_model(),
            "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        },
        "options": {
            "store": args.store,
            "rate": args.rate,
            "duration": args.duration,
            "loop_seconds": args.loop_seconds,
            "loop_interval": args.loop_interval,
        },
        "stores": stores,
        "not_measured": list(unmeasured),  # the corpus ran out of partials before these stores
        "week": week,
        "targets": targets(stores, week),
    }


def _p99(store: dict[str, Any], phase: str = "intake") -> float | None:
    figures = store[phase]
    return None if figures is None else figures["latency_ms"]["p99"]


def _p99_with_interval(store: dict[str, Any], phase: str = "intake") -> str:
    """The p99 and where it lies with 95% confidence (report.percentile_interval): what one run can tell apart."""
    figures = store[phase]
    if figures is None:
        return "-"
    interval = figures["latency_ms"].get("p99_interval")
    spread = "" if interval is None else f" (95%: {interval[0]:.1f}-{interval[1]:.1f})"
    return f"{_ms(figures['latency_ms']['p99'])}{spread}"


def _within(value: float | None, reference: float | None, share: float) -> bool | None:
    if value is None or reference is None:
        return None
    return value <= reference * (1 + share)


def targets(stores: list[dict[str, Any]], week: dict[str, Any] | None) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    if len(stores) < 2:  # none built, or the corpus ran out before them
        return found
    empty, built = stores[0], stores[1:]
    largest = max(built, key=lambda store: store["partials_built"])
    most_farmers = [store for store in built if store["farmers"] == max(s["farmers"] for s in built)]
    cpu, cpu_empty = largest["intake"]["pool_cpu_ms_per_accepted"], empty["intake"]["pool_cpu_ms_per_accepted"]
    found.append(
        _target(
            f"pool CPU per partial on {largest['store']} within 10% of the empty store",
            f"{_ms(cpu)} vs {_ms(cpu_empty)}",
            _within(cpu, cpu_empty, SAME_AS_EMPTY),
        )
    )
    found.append(
        _target(
            f"p99 on {largest['store']} within 10% of the empty store",
            f"{_p99_with_interval(largest)} vs {_p99_with_interval(empty)}",
            _within(_p99(largest), _p99(empty), SAME_AS_EMPTY),
        )
    )
    for store in most_farmers:
        worst = max(
            ((page, figures["p99"]) for page, figures in store["pages"]["pages_ms"].items()),
            key=lambda item: -1.0 if item[1] is None else item[1],
        )
        met = all(f["p99"] is not None and f["p99"] < PAGE_P99_MS for f in store["pages"]["pages_ms"].values())
        found.append(
            _target(f"every page under 50 ms p99 ({store['store']})", f"worst {worst[0]} {_ms(worst[1])}", met)
        )
        slowest = _slowest_loop(store)
        found.append(
            _target(
                f"each loop iteration under 1 s ({store['store']})",
                f"slowest {slowest[0]} mean {slowest[1]:.3f} s" if slowest[0] else "no iteration",
                slowest[1] < LOOP_SECONDS if slowest[0] else None,
            )
        )
    for store in built:
        if store["intake_while_pruning"] is None:
            continue
        with_prune, without = _p99(store, "intake_while_pruning"), _p99(store)
        found.append(
            _target(
                f"a prune during intake moves p99 by < 10% ({store['store']})",
                f"{_p99_with_interval(store, 'intake_while_pruning')} vs {_p99_with_interval(store)} "
                f"({store['intake_while_pruning']['pruned']} pruned)",
                _within(with_prune, without, PRUNE_P99_SHIFT),
            )
        )
    if week is not None:
        growth = week["growth_after_first_day"]
        found.append(
            _target(
                f"store size flat over a simulated week ({week['store']})",
                "n/a" if growth is None else f"{growth:+.1%} from day 1 to day {WEEK_DAYS}",
                None if growth is None else growth <= WEEK_GROWTH,
            )
        )
    return found


def _slowest_loop(store: dict[str, Any]) -> tuple[str, float]:
    means: dict[str, float] = {}
    for window in ("loops_during_intake", "loops"):
        for loop, seconds in store[window]["mean_seconds"].items():
            means[loop] = max(means.get(loop, 0.0), seconds)
    if not means:
        return "", math.nan
    return max(means.items(), key=lambda item: item[1])


def _target(name: str, value: str, met: bool | None) -> dict[str, Any]:
    return {"target": name, "value": value, "met": met}


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f} ms"


def render_table(document: dict[str, Any]) -> str:
    stores = document["stores"]
    header = ["figure"] + [store["store"] for store in stores]
    rows: list[list[str]] = [header]

    def row(name: str, cell: Any) -> None:
        rows.append([name] + [cell(store) for store in stores])

    def phase(key: str, field: Any) -> Any:
        return lambda store: "-" if store[key] is None else field(store[key])

    row("partials built (300/farmer/day)", lambda s: f"{s['partials_built']:,}")
    row(
        "store MiB before / after",
        lambda s: f"{s['store_bytes_before'] / 2**20:.1f} / {s['store_bytes_after'] / 2**20:.1f}",
    )
    row("partials only: accepted / sent", phase("intake", lambda p: f"{p['accepted']} / {p['sent']}"))
    row("partials only: pool CPU per accepted partial", phase("intake", lambda p: _ms(p["pool_cpu_ms_per_accepted"])))
    row(
        "partials only: partials p50 / p99",
        phase("intake", lambda p: f"{_ms(p['latency_ms']['p50'])} / {_ms(p['latency_ms']['p99'])}"),
    )
    for page in ("/metrics", "/", "farmer page", "/status"):
        row(f"pages phase: {page} p50 / p99 (requests)", phase("pages", lambda p, page=page: _page(p, page)))
    row(
        "pages phase: partials p99, CPU per partial",
        phase("pages", lambda p: f"{_ms(p['latency_ms']['p99'])}, {_ms(p['pool_cpu_ms_per_accepted'])}"),
    )
    row(
        "while pruning: partials p99, pruned",
        phase("intake_while_pruning", lambda p: f"{_ms(p['latency_ms']['p99'])}, {p['pruned']:,} rows"),
    )
    row(
        "while pruning: CPU per partial",
        phase("intake_while_pruning", lambda p: _ms(p["pool_cpu_ms_per_accepted"])),
    )
    row(
        f"prune call ({PRUNE_BATCH} rows, read then batch) p50 / max",
        phase(
            "intake_while_pruning",
            lambda p: f"{_ms(p['prune_batch_ms']['p50'])} / {_ms(p['prune_batch_ms']['max'])}",
        ),
    )
    for loop in TARGET_LOOPS:
        row(f"loop {loop}: mean s (runs)", lambda s, loop=loop: _loop(s, loop))
    row("node calls per loop pass (loops window)", lambda s: _per_pass(s["loops"]))
    row("node calls in the loops window", lambda s: str(s["loops"]["node_calls_total"]))
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    lines = [
        f"machine: {document['machine']['cores']} cores, {document['machine']['cpu_model']}, "
        f"{document['machine']['date']}; store {document['options']['store']}; "
        f"{document['options']['rate']:g} partials/s for {document['options']['duration']:g} s a phase",
        "",
    ]
    for number, cells in enumerate(rows):
        lines.append("  ".join(cell.ljust(width) for cell, width in zip(cells, widths, strict=True)).rstrip())
        if number == 0:
            lines.append("  ".join("-" * width for width in widths))
    if document["not_measured"]:
        left_out = ", ".join(document["not_measured"])
        lines += ["", f"not measured (the corpus ran out of partials: --corpus-partials N): {left_out}"]
    if document["week"] is not None:
        week = document["week"]
        mib = ", ".join(f"{size / 2**20:.1f}" for size in week["bytes_per_day"])
        lines += ["", f"simulated week on {week['store']}: store MiB at start and after each day: {mib}"]
        if week["sqlite_database_and_wal_bytes_per_day"]:
            split = ", ".join(
                f"{db / 2**20:.1f}+{wal / 2**20:.1f}" for db, wal in week["sqlite_database_and_wal_bytes_per_day"]
            )
            lines.append(f"  of which the database file + its write-ahead log: {split}")
    lines += ["", "targets:"]
    for target in document["targets"]:
        met = {True: "met", False: "NOT met", None: "n/a"}[target["met"]]
        lines.append(f"  [{met}] {target['target']}: {target['value']}")
    return "\n".join(lines)


def _page(phase: dict[str, Any], page: str) -> str:
    figures = phase["pages_ms"][page]
    errors = sum(count for key, count in phase["page_errors"].items() if key.startswith(page + ":"))
    text = f"{_ms(figures['p50'])} / {_ms(figures['p99'])} ({figures['count']})"
    return text + (f" ({errors} failed)" if errors else "")


def _loop(store: dict[str, Any], loop: str) -> str:
    parts = []
    for window in ("loops_during_intake", "loops"):
        figures = store[window]
        if loop in figures["mean_seconds"]:
            parts.append(f"{figures['mean_seconds'][loop]:.3f} ({figures['runs'][loop]})")
    return " | ".join(parts) if parts else "-"


def _per_pass(loops: dict[str, Any]) -> str:
    value = loops["node_calls_per_loop_pass"]
    return "-" if value is None else f"{value:.1f}"


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    progress = Progress()
    started = time.monotonic()
    # As make bench: the corpus is built (if it is not cached) on asyncio's own loop, as chia runs; the rest on uvloop.
    options = options_of(args, args.run_dir or Path(tempfile.mkdtemp(prefix="pool-bench-scale-")))
    partials = corpus_partials(args, options)
    corpus, corpus_path = asyncio.run(corpus_for(corpus_arguments(args, partials), progress))
    document = uvloop.run(run(args, options, corpus, corpus_path, progress))
    print(render_table(document))
    if args.json is not None:
        args.json.write_text(json.dumps(document, indent=2))
        progress(f"figures written to {args.json}")
    progress(f"done in {time.monotonic() - started:.0f} s")
    return 1 if document["not_measured"] or not document["stores"] else 0


if __name__ == "__main__":
    sys.exit(main())
