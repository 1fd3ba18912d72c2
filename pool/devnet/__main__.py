"""The demo: ``python -m pool.devnet`` runs a pool on an embedded simulated chain with a real chia farmer.

It prints a live status line (farmers, partials, points, difficulty, blocks won, rewards absorbed, payouts) until
Ctrl-C; ``--until-payout`` exits 0 as soon as a payout to a farmer is confirmed on chain.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import TextIO

from pool.devnet.pool_config import DEVNET_OPERATOR_TOKEN
from pool.devnet.session import Devnet, DevnetStatus
from pool.devnet.wallets import MAX_PLOTNFT_V2_PER_KEY

EXIT_TIMEOUT = 1


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m pool.devnet",
        description=(
            "Run the pool on an embedded devnet: chia's simulator full node, a pool wallet, a farmer wallet with "
            "PlotNFTs joined to the pool, and a real chia farmer and harvester with plots for them. The chain moves "
            "on its own (signage points and blocks); some blocks are won by the pool's plots."
        ),
    )
    parser.add_argument("--farmers", type=int, default=1, help="PlotNFTs joined to the pool (default 1)")
    parser.add_argument(
        "--v2-farmers",
        type=int,
        default=0,
        help="PlotNFT v2 (Pool Protocol v2) joined beside the --farmers ones, at most 5 (default 0)",
    )
    parser.add_argument("--plots", type=int, default=3, help="k20 plots per PlotNFT (default 3)")
    parser.add_argument(
        "--pace", type=float, default=0.5, help="seconds between signage points (default 0.5; the chain's clock)"
    )
    parser.add_argument(
        "--until-payout",
        action="store_true",
        help="exit 0 once a payout to a farmer is confirmed on chain (for scripts and CI)",
    )
    parser.add_argument(
        "--timeout", type=float, default=900, help="with --until-payout: give up (exit 1) after this many seconds"
    )
    parser.add_argument(
        "--work-dir",
        type=Path,
        default=None,
        help="where the devnet keeps its chain roots and the pool database (default: a new temporary folder)",
    )
    parser.add_argument("--verbose", action="store_true", help="show the pool's and chia's log lines")
    return parser


class StatusPrinter:
    """A status line rewritten in place on a terminal; one line every few seconds otherwise (logs, CI)."""

    def __init__(self, out: TextIO) -> None:
        self.out = out
        self.interactive = out.isatty()
        self.last_printed = 0.0

    def show(self, status: DevnetStatus, force: bool = False) -> None:
        now = time.monotonic()
        if self.interactive:
            print("\r\033[K" + status.line(), end="", flush=True, file=self.out)
        elif force or now - self.last_printed >= 5:
            print(status.line(), flush=True, file=self.out)
            self.last_printed = now

    def message(self, text: str) -> None:
        if self.interactive:
            print("\r\033[K", end="", file=self.out)
        print(text, flush=True, file=self.out)


async def drive_chain(devnet: Devnet, pace: float, signage_points: int) -> None:
    """One step of the chain: a signage point; every 8th a block; every 24th a block won by a pool plot."""
    await devnet.signage_point(pause=pace)
    if signage_points % 24 == 0:
        winners = devnet.all_farmers
        await devnet.win_block(winners[(signage_points // 24) % len(winners)])
    elif signage_points % 8 == 0:
        await devnet.farm(1)


async def run_demo(args: argparse.Namespace, work_dir: Path, out: TextIO) -> int:
    printer = StatusPrinter(out)
    started = time.monotonic()
    async with Devnet(
        work_dir, args.farmers, args.plots, progress=printer.message, v2_farmers_count=args.v2_farmers
    ) as devnet:
        printer.message(f"pool running at {devnet.pool_url} (database {devnet.config.store.path}); Ctrl-C stops")
        printer.message(f"pool page: {devnet.pool_url}/")
        printer.message(
            f"operator: {devnet.pool_url}/status and /metrics with 'Authorization: Bearer {DEVNET_OPERATOR_TOKEN}'"
        )
        signage_points = 0
        links_shown = False
        while True:
            signage_points += 1
            await drive_chain(devnet, args.pace, signage_points)
            status = await devnet.status()
            if not links_shown and status.members == len(devnet.all_farmers):
                links_shown = await show_farmer_links(devnet, printer)
            printer.show(status)
            if args.until_payout and status.paid_to_farmers > 0:
                printer.show(status, force=True)
                printer.message(f"payout to the farmer confirmed after {time.monotonic() - started:.0f} s")
                return 0
            if args.until_payout and time.monotonic() - started > args.timeout:
                printer.show(status, force=True)
                printer.message(f"no confirmed payout within {args.timeout:.0f} s")
                return EXIT_TIMEOUT


async def show_farmer_links(devnet: Devnet, printer: StatusPrinter) -> bool:
    """Print each farmer's page link, signed by the real farmer as its GUI's "login to pool" link would be."""
    links = [await devnet.login_link(farmer) for farmer in devnet.all_farmers]
    if any(link is None for link in links):
        return False
    timeout = devnet.config.pool.authentication_token_timeout
    for number, link in enumerate(links, start=1):
        printer.message(f"farmer {number} page (signed link, opens a session; valid {timeout} min): {link}")
    return True


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.farmers < 1 or args.plots < 1:
        print("error: --farmers and --plots must be at least 1", file=sys.stderr)
        return 2
    if not 0 <= args.v2_farmers <= MAX_PLOTNFT_V2_PER_KEY:
        print(f"error: --v2-farmers must be between 0 and {MAX_PLOTNFT_V2_PER_KEY}", file=sys.stderr)
        return 2
    # A work dir of its own by default, kept after the demo stops: it holds the chia log a user may want to read.
    work_dir: Path = args.work_dir or Path(tempfile.mkdtemp(prefix="pool-devnet-"))
    work_dir.mkdir(parents=True, exist_ok=True)
    chia_log = route_logs(work_dir / CHIA_LOG_NAME, args.verbose)
    out = sys.stdout if args.verbose else quiet_stdout()
    print(f"work dir {work_dir}; chia's own logs (node, wallets, farmer, harvester) go to {chia_log}", file=out)
    try:
        return asyncio.run(run_demo(args, work_dir, out))
    except KeyboardInterrupt:
        print("\nstopped", flush=True, file=out)
        return 0


CHIA_LOG_NAME = "chia.log"
LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def route_logs(chia_log: Path, verbose: bool) -> Path:
    """Every log line goes to ``chia_log``; the console shows only the pool's own warnings and errors.

    chia's services run in this process and log what is routine for them at WARNING and ERROR (a farmer that cannot
    reach a peer yet, a pool answer it logs as "Error in pooling"); mixed into the demo's output a newcomer reads them
    as a broken pool. The file keeps them for whoever wants to look. ``--verbose`` shows everything on the console.
    """
    to_file = logging.FileHandler(chia_log)
    to_file.setFormatter(logging.Formatter(LOG_FORMAT))
    root = logging.getLogger()
    root.handlers[:] = [to_file]
    root.setLevel(logging.INFO)
    logging.captureWarnings(True)
    to_console = logging.StreamHandler(sys.stderr)
    to_console.setFormatter(logging.Formatter(LOG_FORMAT))
    if verbose:
        root.addHandler(to_console)
    else:
        to_console.setLevel(logging.WARNING)
        logging.getLogger("pool").addHandler(to_console)
    return chia_log


def quiet_stdout() -> TextIO:
    """Send file descriptor 1 to /dev/null and return a stream on the real standard output.

    chia's services and its plotter (native code) print set-up chatter straight to standard output, which would
    bury the status line; the demo's own output goes to the returned stream instead.
    """
    sys.stdout.flush()
    real = os.fdopen(os.dup(sys.stdout.fileno()), "w", buffering=1)
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)
    return real


if __name__ == "__main__":
    sys.exit(main())
