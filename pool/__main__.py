"""Command line entry point: ``python -m pool --config config.yaml``."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path

from pool import __version__
from pool.config import ConfigError, load_config_file

EXIT_OK = 0
EXIT_CONFIG = 2
EXIT_UNAVAILABLE = 3


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m pool",
        description=(
            "Chia pool server (Pool Protocol 1.0). Serves the farmer-facing HTTP API and runs the background loops "
            "that confirm partials, follow farmers' PlotNFTs, absorb block rewards and pay farmers. It needs a synced "
            "chia full node and a chia wallet holding the pool's target address, both reachable over RPC."
        ),
        epilog=(
            "Every key of the config file is documented in the example config.yaml shipped with the server. "
            "'python -m pool ledger --config config.yaml' prints the pool's books (see its --help)."
        ),
    )
    parser.add_argument(
        "--config",
        type=Path,
        default=Path("config.yaml"),
        metavar="PATH",
        help="YAML configuration file (default: ./config.yaml)",
    )
    parser.add_argument(
        "--check-config",
        action="store_true",
        help="validate the configuration file, print a summary and exit without connecting to anything",
    )
    parser.add_argument(
        "--log-level",
        choices=["DEBUG", "INFO", "WARNING", "ERROR"],
        help="override logging.level from the config file",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    return parser


def build_ledger_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m pool ledger",
        description=(
            "Print the pool's books: confirmed reward claims, distributions, payout rounds and payments, owed "
            "balances, the pool fee earned, and the wallet's spendable balance against what the ledger says it holds."
        ),
    )
    parser.add_argument("--config", type=Path, default=Path("config.yaml"), metavar="PATH", help="the pool's config")
    parser.add_argument("--json", action="store_true", help="print the books as one JSON object")
    parser.add_argument("--no-wallet", action="store_true", help="do not contact the wallet (no reconciliation)")
    parser.add_argument("--limit", type=int, default=20, help="how many recent distributions and rounds to list")
    return parser


def ledger_main(argv: list[str]) -> int:
    args = build_ledger_parser().parse_args(argv)
    try:
        config = load_config_file(args.config)
    except ConfigError as exc:
        print(f"error: {args.config}: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    if config.store.backend == "sqlite" and not config.store.path.exists():
        print(
            f"error: {args.config}: config key 'store.path': no pool database at {config.store.path}", file=sys.stderr
        )
        return EXIT_CONFIG
    from pool.payouts.books import books_json, format_books
    from pool.server import read_books

    books = asyncio.run(read_books(config, with_wallet=not args.no_wallet, limit=args.limit))
    if args.json:
        print(json.dumps(books_json(books), indent=2))
    else:
        print(format_books(books))
    return EXIT_OK


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["ledger"]:
        return ledger_main(argv[1:])
    args = build_parser().parse_args(argv)
    try:
        config = load_config_file(args.config)
    except ConfigError as exc:
        print(f"error: {args.config}: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    if args.check_config:
        print(f"{args.config}: OK (network {config.chain.network}, pool '{config.pool.name}')")
        return EXIT_OK

    # Imported here so that --help and --check-config stay fast and work even if chia's RPC stack fails to import.
    from pool.server import StartupError, run_server

    try:
        asyncio.run(run_server(config, log_level=args.log_level))
    except StartupError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_UNAVAILABLE
    except KeyboardInterrupt:
        pass
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
