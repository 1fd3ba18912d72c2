"""``python -m pool.bench`` (``make bench``): build or reuse the cached corpus, then measure the pool.

Progress goes to stderr; the table to stdout; ``--json PATH`` writes the same figures as JSON.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import resource
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import uvloop

from pool.bench.attacks import ATTACK_KEYS
from pool.bench.corpus import FORMAT_VERSION, Corpus, CorpusSize, build_corpus
from pool.bench.node import BenchWorld
from pool.bench.report import render
from pool.bench.run import BenchOptions, run_bench
from pool.devnet.network import devnet_constants

DEFAULT_CACHE = Path.home() / ".chia" / "pool-bench"
FULL = {
    "farmers": 32,
    "plots": 4,
    "partials": 16000,
    "bystanders": 8,
    "closed_partials": 2000,
    "duration": 10.0,
    "rates": "100,40%,2x",
    "attack_seconds": 8.0,
    "attack_rate": 50.0,
}
# The attacks at their full rates for a second each, the honest partials few: what the corpus has left.
QUICK = {
    "farmers": 4,
    "plots": 1,
    "partials": 400,
    "bystanders": 2,
    "closed_partials": 150,
    "duration": 3.0,
    "rates": "50",
    "attack_seconds": 1.0,
    "attack_rate": 15.0,
}


def _rates(text: str) -> str:
    """``--rates``: comma-separated partials/s, each a positive number, ``N%`` (of the machine's limit) or ``2x``."""
    for part in (item.strip() for item in text.split(",")):
        if part == "2x":
            continue
        try:
            share_of_limit = part.endswith("%")
            value = float(part[:-1] if share_of_limit else part)
            if value > 0 and (value <= 100 or not share_of_limit):
                continue
        except ValueError:
            pass
        raise argparse.ArgumentTypeError(f"{part!r} is neither a positive rate, a share of the limit (40%) nor 2x")
    return text


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m pool.bench",
        description="Benchmark the pool on a cached corpus of real partials replayed against a simulated chain.",
    )
    parser.add_argument("--store", choices=("sqlite", "postgresql"), default="sqlite", help="the pool's store")
    parser.add_argument("--workers", type=int, default=1, help="the pool's server.workers (default 1)")
    parser.add_argument(
        "--rates",
        type=_rates,
        help="open-loop offered rates in partials/s, comma separated; '40%%' is that share of the machine's limit "
        "(the sustained-rate target is judged on it), '2x' twice the closed loop's accepted/s "
        f"(default {str(FULL['rates']).replace('%', '%%')})",
    )
    # 16: as in the side-by-side measurement with chia's reference pool (pool-reference) that set the targets.
    parser.add_argument("--connections", type=int, default=16, help="closed-loop connections (default 16)")
    parser.add_argument("--closed-partials", type=int, help=f"partials of the closed loop ({FULL['closed_partials']})")
    parser.add_argument("--duration", type=float, help=f"seconds of each open-loop rate ({FULL['duration']})")
    parser.add_argument(
        "--soak",
        type=float,
        default=0.0,
        help="seconds of a memory soak at half the sustainable rate (slower if the corpus left would not last)",
    )
    parser.add_argument(
        "--attacks",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="after the open loops, the attack phase: honest partials while each attack of issue 24 runs in turn "
        "(default on)",
    )
    parser.add_argument(
        "--attack",
        action="append",
        choices=ATTACK_KEYS,
        dest="attack_keys",
        help="run only this attack of the attack phase (repeatable; default: every one)",
    )
    parser.add_argument(
        "--only-attacks",
        action="store_true",
        help="skip the closed and open loops: the attack phase alone, to compare the pool's answers to attacks",
    )
    parser.add_argument(
        "--attack-seconds", type=float, help=f"seconds of honest partials under each attack ({FULL['attack_seconds']})"
    )
    parser.add_argument(
        "--attack-rate", type=float, help=f"honest partials/s during the attack phase ({FULL['attack_rate']})"
    )
    parser.add_argument(
        "--attack-scale", type=float, default=1.0, help="multiplies the attacks' rates and sockets (default 1)"
    )
    parser.add_argument("--json", type=Path, help="also write the figures as JSON to this file")
    parser.add_argument("--quick", action="store_true", help="a small corpus and short phases (a smoke run)")
    parser.add_argument("--farmers", type=int, help=f"PlotNFTs in the corpus ({FULL['farmers']})")
    parser.add_argument("--plots", type=int, help=f"k20 plots per PlotNFT ({FULL['plots']})")
    parser.add_argument("--partials", type=int, help=f"partials in the corpus ({FULL['partials']})")
    parser.add_argument(
        "--bystanders",
        type=int,
        help=f"PlotNFTs in the corpus that never join, for the attack phase ({FULL['bystanders']})",
    )
    parser.add_argument("--cache-dir", type=Path, default=DEFAULT_CACHE, help=f"corpus cache (default {DEFAULT_CACHE})")
    parser.add_argument("--rebuild", action="store_true", help="build the corpus again even if it is cached")
    parser.add_argument("--run-dir", type=Path, help="where the node, pool and logs of this run live (default: temp)")
    return parser


class Progress:
    def __init__(self) -> None:
        self._started = time.monotonic()

    def __call__(self, message: str) -> None:
        print(f"[{time.monotonic() - self._started:6.1f} s] {message}", file=sys.stderr, flush=True)


def _choose(args: argparse.Namespace, name: str) -> object:
    given = getattr(args, name)
    return given if given is not None else (QUICK if args.quick else FULL)[name]


def load_cached(path: Path, rebuild: bool, progress: Progress) -> Corpus | None:
    if path.exists() and not rebuild:
        corpus = Corpus.load(path)
        if corpus.constants_hash != devnet_constants(corpus.discriminant_bits).get_hash():
            # The devnet's consensus constants changed since (a newer pool): its blocks would no longer validate.
            progress(f"the cached corpus {path} was recorded under other consensus constants: building it anew")
            return None
        progress(f"using the cached corpus {path}")
        return corpus
    return None


async def build_and_cache(path: Path, size: CorpusSize, progress: Progress) -> Corpus:
    progress(f"building the corpus ({size.farmers} PlotNFTs, {size.partials} partials): minutes the first time")
    with tempfile.TemporaryDirectory(prefix="pool-bench-build-") as work, _stdout_to_stderr():
        # A fresh deterministic chain: the same PlotNFTs every build, so their plots come back from the cache.
        async with BenchWorld(work_dir=Path(work), discriminant_bits=1024) as world:
            corpus = await build_corpus(world, size, fresh_launchers=False, progress=progress)
    corpus.save(path)
    progress(f"corpus saved to {path} ({corpus.partial_count} partials, {len(corpus.events)} events)")
    return corpus


@contextlib.contextmanager
def _stdout_to_stderr() -> Iterator[None]:
    """chia's plotter (native code) prints its progress on file descriptor 1: keep stdout for the table."""
    sys.stdout.flush()
    saved = os.dup(1)
    os.dup2(2, 1)
    try:
        yield
    finally:
        sys.stdout.flush()
        os.dup2(saved, 1)
        os.close(saved)


def _raise_open_files_limit() -> None:
    # An overloaded pool leaves many requests in flight, each on its own connection.
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


async def corpus_for(args: argparse.Namespace, progress: Progress) -> tuple[Corpus, Path]:
    size = CorpusSize(
        int(str(_choose(args, "farmers"))),
        int(str(_choose(args, "plots"))),
        int(str(_choose(args, "partials"))),
        int(str(_choose(args, "bystanders"))),
    )
    corpus_path = (
        args.cache_dir / f"corpus-f{size.farmers}-p{size.plots_per_farmer}-n{size.partials}-b{size.bystanders}"
        f"-v{FORMAT_VERSION}.json"
    )
    corpus = load_cached(corpus_path, args.rebuild, progress) or await build_and_cache(corpus_path, size, progress)
    return corpus, corpus_path


async def run(args: argparse.Namespace, corpus: Corpus, corpus_path: Path, progress: Progress) -> int:
    run_dir = args.run_dir or Path(tempfile.mkdtemp(prefix="pool-bench-run-"))
    progress(f"run directory (logs, config, store): {run_dir}")
    options = BenchOptions(
        run_dir=run_dir,
        store=args.store,
        workers=args.workers,
        rates=tuple(part.strip() for part in str(_choose(args, "rates")).split(",") if part.strip()),
        connections=args.connections,
        closed_partials=int(str(_choose(args, "closed_partials"))),
        duration=float(str(_choose(args, "duration"))),
        soak=args.soak,
        attacks=args.attacks,
        attack_honest_rate=float(str(_choose(args, "attack_rate"))),
        attack_seconds=float(str(_choose(args, "attack_seconds"))),
        attack_scale=args.attack_scale,
        attack_keys=tuple(args.attack_keys or ()),
        open_loops=not args.only_attacks,
    )
    result = await run_bench(corpus, corpus_path, options, progress)
    rendered = render(result)
    print(rendered.table)
    if args.json is not None:
        args.json.write_text(json.dumps(rendered.document, indent=2))
        progress(f"figures written to {args.json}")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    _raise_open_files_limit()
    progress = Progress()
    # The corpus is built (chia's simulator, in this process) on asyncio's own loop, as chia runs; the sender then
    # runs on uvloop, as the pool does: the less CPU the sender takes from the two cores, the more the pool has.
    corpus, corpus_path = asyncio.run(corpus_for(args, progress))
    return uvloop.run(run(args, corpus, corpus_path, progress))


if __name__ == "__main__":
    sys.exit(main())
