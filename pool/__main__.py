"""Command line entry point: ``python -m pool --config config.yaml``."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from pathlib import Path

from pool import __version__
from pool.config import ConfigError, PoolConfig, StoreConfig, load_config_file, parse_store_section

EXIT_OK = 0
EXIT_REFUSED = 1
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
            "'python -m pool doctor --config config.yaml' checks everything the pool needs, one line each; "
            "'python -m pool ledger --config config.yaml' prints the pool's books; 'python -m pool prune --config "
            "config.yaml' prunes partials past their retention now; 'python -m pool migrate-store "
            "--config config.yaml --to postgresql://...' moves an SQLite store to PostgreSQL (see their --help)."
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
        help=(
            "validate the configuration file and the files it names (chia root, RPC certificates), print a summary "
            "and exit without connecting to anything"
        ),
    )
    parser.add_argument(
        "--log-level",
        choices=["DEBUG", "INFO", "WARNING", "ERROR"],
        help="override logging.level from the config file",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    # Internal: worker N (from 1) of the processes the pool itself starts when server.workers > 1.
    parser.add_argument("--worker", type=int, metavar="N", help=argparse.SUPPRESS)
    return parser


def command_parser(prog: str, description: str) -> argparse.ArgumentParser:
    """A subcommand's parser, with the --config every subcommand takes."""
    parser = argparse.ArgumentParser(prog=prog, description=description)
    parser.add_argument("--config", type=Path, default=Path("config.yaml"), metavar="PATH", help="the pool's config")
    return parser


def build_ledger_parser() -> argparse.ArgumentParser:
    parser = command_parser(
        "python -m pool ledger",
        (
            "Print the pool's books: confirmed reward claims, distributions, payout rounds and payments, owed "
            "balances, the pool fee earned, and the wallet's spendable balance against what the ledger says it holds."
        ),
    )
    parser.add_argument("--json", action="store_true", help="print the books as one JSON object")
    parser.add_argument("--no-wallet", action="store_true", help="do not contact the wallet (no reconciliation)")
    parser.add_argument("--limit", type=int, default=20, help="how many recent distributions and rounds to list")
    return parser


def config_with_a_store(path: Path) -> PoolConfig | None:
    """The config of a pool whose store already exists (the ledger commands never create one); None after saying
    what is wrong."""
    try:
        config = load_config_file(path)
    except ConfigError as exc:
        print(f"error: {path}: {exc}", file=sys.stderr)
        return None
    if config.store.backend == "sqlite" and not config.store.path.exists():
        print(f"error: {path}: config key 'store.path': no pool database at {config.store.path}", file=sys.stderr)
        return None
    return config


def ledger_main(argv: list[str]) -> int:
    if argv[:1] == ["fund-fees"]:
        return fund_fees_main(argv[1:])
    args = build_ledger_parser().parse_args(argv)
    config = config_with_a_store(args.config)
    if config is None:
        return EXIT_CONFIG
    from pool.payouts.books import books_json, format_books
    from pool.server import read_books
    from pool.store.abstract import StoreError

    try:
        books = asyncio.run(read_books(config, with_wallet=not args.no_wallet, limit=args.limit))
    except StoreError as exc:
        print(f"error: store: {exc}", file=sys.stderr)
        return EXIT_REFUSED
    if args.json:
        print(json.dumps(books_json(books), indent=2))
    else:
        print(format_books(books))
    return EXIT_OK


def build_prune_parser() -> argparse.ArgumentParser:
    return command_parser(
        "python -m pool prune",
        "Prune now what the pool's leader prunes every hour: partials (settled ones, never pending) and refusals "
        "received more than partials.retention_days ago are added to hourly per-farmer counts, which the pages and "
        "charts read, and deleted, in small transactions. The pool may keep running. Prints the rows pruned.",
    )


def prune_main(argv: list[str]) -> int:
    args = build_prune_parser().parse_args(argv)
    config = config_with_a_store(args.config)
    if config is None:
        return EXIT_CONFIG
    from pool.store.abstract import StoreError

    try:
        before, pruned = asyncio.run(prune_now(config))
    except ConfigError as exc:
        print(f"error: {args.config}: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    except StoreError as exc:
        print(f"error: store: {exc}", file=sys.stderr)
        return EXIT_REFUSED
    moment = time.strftime("%Y-%m-%d %H:00 UTC", time.gmtime(before))
    print(
        f"pruned {pruned} partials and refusals received before {moment} "
        f"(partials.retention_days: {config.partials.retention_days})"
    )
    return EXIT_OK


async def prune_now(config: PoolConfig) -> tuple[int, int]:
    """Prune the store of ``config`` up to its retention; the hour pruned up to and the rows pruned."""
    from pool.loops.retention import prune_old_partials, retention_cutoff
    from pool.store.factory import create_store

    before = retention_cutoff(config, int(time.time()))
    store = create_store(config.store)
    await store.open()
    try:
        return before - before % 3600, await prune_old_partials(store, before)
    finally:
        await store.close()


def build_fund_fees_parser() -> argparse.ArgumentParser:
    parser = command_parser(
        "python -m pool ledger fund-fees",
        (
            "Give coins of the operator's own, already in the pool wallet, to the pool fee share, which pays the "
            "blockchain fees of absorbs and payments: so that claims are mined before the first distribution, or "
            "after a fee storm used the share up. Only the wallet's coins beyond what the ledger holds (and beyond "
            "rewards of claims not settled yet) are accepted. Recorded as a fee_funding entry of the ledger; what the "
            "fees do not use is paid to the fee address with the pool fee. The pool may keep running."
        ),
    )
    parser.add_argument("amount", help="mojos (1000000000) or XCH with its unit (0.25xch)")
    return parser


def fund_fees_main(argv: list[str]) -> int:
    args = build_fund_fees_parser().parse_args(argv)
    from pool.chain.interface import ChainUnavailable
    from pool.payouts.books import xch
    from pool.payouts.funding import FundingRefused, parse_amount
    from pool.server import fund_fees_from_wallet
    from pool.store.abstract import StoreError

    try:
        amount = parse_amount(args.amount)
    except FundingRefused as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    config = config_with_a_store(args.config)
    if config is None:
        return EXIT_CONFIG
    try:
        funding = asyncio.run(fund_fees_from_wallet(config, amount))
    except ChainUnavailable as exc:
        print(f"error: the wallet must show the coins: {exc}", file=sys.stderr)
        return EXIT_UNAVAILABLE
    except (FundingRefused, StoreError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_REFUSED
    share = xch(funding.pool_fee_share)
    print(f"funded {xch(funding.amount)} ({funding.amount} mojos) to the pool fee share, now {share}")
    return EXIT_OK


def build_migrate_store_parser() -> argparse.ArgumentParser:
    parser = command_parser(
        "python -m pool migrate-store",
        (
            "Move the pool's SQLite store (store.path of --config) into an empty PostgreSQL database: every table is "
            "copied in one transaction, which commits only if the row counts match and the ledger reads as before and "
            "balances. Stop the pool first. Afterwards set store.backend: postgresql and store.dsn in the config."
        ),
    )
    parser.add_argument(
        "--to", required=True, metavar="DSN", help="the target database: postgresql://user@host:port/database"
    )
    password = parser.add_mutually_exclusive_group()
    password.add_argument("--password-env", metavar="NAME", help="read the database password from this variable")
    password.add_argument("--password-file", type=Path, metavar="PATH", help="read it from this file's first line")
    return parser


def migrate_store_main(argv: list[str]) -> int:
    args = build_migrate_store_parser().parse_args(argv)
    try:
        config = load_config_file(args.config)
        if config.store.backend != "sqlite":
            raise ConfigError("store.backend", "the store to move must be sqlite")
    except ConfigError as exc:
        print(f"error: {args.config}: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    try:
        # The rules of the config's store section: no password in the DSN (it would show in `ps` and shell history).
        target = parse_config_store_target(args.to, args.password_env, args.password_file)
    except ConfigError as exc:
        option = {"store.dsn": "--to", "store.password_env": "--password-env"}.get(exc.key, "--password-file")
        print(f"error: {option}: {exc.problem}", file=sys.stderr)
        return EXIT_CONFIG
    from pool.store.abstract import StoreError
    from pool.store.factory import create_store
    from pool.store.migrate import migrate_sqlite_to_postgres
    from pool.store.postgres import PostgresPoolStore

    try:
        store = create_store(target)
        assert isinstance(store, PostgresPoolStore)
        result = asyncio.run(migrate_sqlite_to_postgres(config.store.path, store))
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    except StoreError as exc:
        print(f"error: nothing was migrated: {exc}", file=sys.stderr)
        return EXIT_REFUSED
    width = max(len(table) for table in result.rows)
    for table, count in result.rows.items():
        print(f"{table:<{width}}  {count:>10} rows copied, as many as in the source")
    print(
        f"ledger balanced: {result.ledger.confirmed_claims} mojos of confirmed claims, all accounted for, the same "
        "as in the source"
    )
    print(f"now set store.backend: postgresql and store.dsn: {args.to} in {args.config}")
    return EXIT_OK


def parse_config_store_target(dsn: str, password_env: str | None, password_file: Path | None) -> StoreConfig:
    section: dict[str, object] = {"backend": "postgresql", "dsn": dsn}
    if password_env is not None:
        section["password_env"] = password_env
    if password_file is not None:
        section["password_file"] = str(password_file)
    return parse_store_section(section, Path.cwd())


def build_doctor_parser() -> argparse.ArgumentParser:
    parser = command_parser(
        "python -m pool doctor",
        (
            "Check everything the pool needs and print one line per check: the configuration, the chia root and its "
            "RPC certificates, the full node (reachable, synced, on chain.network), the wallet (reachable, synced, "
            "owning pool.target_address: it signs a message with that address's key), the store (reachable, its "
            "schema), the port, and the TLS certificate chain when one is set. Changes nothing. Exit 0 only if "
            "every check passes."
        ),
    )
    parser.add_argument(
        "--trust",
        type=Path,
        metavar="PATH",
        help="check the TLS chain against these CA certificates instead of Mozilla's bundle (a private test CA)",
    )
    return parser


def doctor_main(argv: list[str]) -> int:
    args = build_doctor_parser().parse_args(argv)
    try:
        config = load_config_file(args.config)
    except ConfigError as exc:
        print(f"FAIL config          {args.config}: {exc}")
        return EXIT_REFUSED
    from pool.doctor import print_checks, run_checks

    return EXIT_OK if print_checks(asyncio.run(run_checks(config, args.trust))) else EXIT_REFUSED


def preflight_refused(config_path: Path, config: PoolConfig) -> bool:
    """Print what refuses this configuration before anything is contacted (pool/preflight.py); True if anything."""
    from pool.preflight import problems

    found = problems(config)
    for problem in found:
        print(f"error: {config_path}: {problem}", file=sys.stderr)
    return bool(found)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["ledger"]:
        return ledger_main(argv[1:])
    if argv[:1] == ["prune"]:
        return prune_main(argv[1:])
    if argv[:1] == ["migrate-store"]:
        return migrate_store_main(argv[1:])
    if argv[:1] == ["doctor"]:
        return doctor_main(argv[1:])
    args = build_parser().parse_args(argv)
    try:
        config = load_config_file(args.config)
    except ConfigError as exc:
        print(f"error: {args.config}: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    if preflight_refused(args.config, config):
        return EXIT_CONFIG
    if args.check_config:
        print(f"{args.config}: OK (network {config.chain.network}, pool '{config.pool.name}')")
        return EXIT_OK

    # Imported here so that --help and --check-config stay fast and work even if chia's RPC stack fails to import.
    import uvloop

    from pool.server import StartupError, run_server

    try:
        # libuv's event loop: the same asyncio API, with the loop, its transports and its callbacks in C (the pool
        # spends a good part of each partial's CPU in the event loop's own work; docs/performance.md).
        uvloop.run(run_server(config, log_level=args.log_level, worker=args.worker))
    except StartupError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_UNAVAILABLE
    except KeyboardInterrupt:
        pass
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
