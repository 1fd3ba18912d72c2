"""Command line entry point: ``python -m pool --config config.yaml`` (or ``chia-pool``) runs the pool; its commands
(``python -m pool COMMAND --help``) are the operator's tools. ``--config`` may come before or after the command."""

from __future__ import annotations

import asyncio
import json
import sys
import time
from collections.abc import Awaitable, Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, NoReturn, TypeVar

import click

from pool import __version__
from pool.config import MAX_DIFFICULTY, ConfigError, PoolConfig, StoreConfig, load_config_file, parse_store_section

EXIT_OK = 0
EXIT_REFUSED = 1
EXIT_CONFIG = 2
EXIT_UNAVAILABLE = 3

DEFAULT_CONFIG = Path("config.yaml")
T = TypeVar("T")

CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 118}
# Counts, offsets and ids the store is asked with are its signed 64-bit integers: a larger one is the command line's
# mistake (a usage error), not the store's overflow (a traceback).
STORE_INTEGER = 2**63 - 1
STORE_COUNT = click.IntRange(1, STORE_INTEGER)


def config_option(function: Callable[..., Any]) -> Callable[..., Any]:
    """--config on the group and on every command, so that it may come before or after the command's name."""
    return click.option(
        "--config",
        "config_path",
        type=click.Path(path_type=Path, dir_okay=False),
        default=None,
        metavar="PATH",
        help="the pool's YAML configuration file (default: ./config.yaml)",
    )(function)


def chosen_config(ctx: click.Context) -> Path:
    """The --config given closest to the command (after its name, else before it), or ./config.yaml."""
    current: click.Context | None = ctx
    while current is not None:
        given = current.params.get("config_path")
        if given is not None:
            return Path(given)
        current = current.parent
    return DEFAULT_CONFIG


def finish(code: int) -> NoReturn:
    """End the command with the pool's exit code (EXIT_CONFIG, EXIT_REFUSED ...)."""
    raise click.exceptions.Exit(code)


def fail(message: str, code: int = EXIT_REFUSED) -> NoReturn:
    click.echo(f"error: {message}", err=True)
    finish(code)


@click.group(
    invoke_without_command=True,
    context_settings=CONTEXT,
    help=(
        "Chia pool server (Pool Protocol 1.0). Without a command it runs the pool: it serves the farmer-facing HTTP "
        "API and runs the background loops that confirm partials, follow farmers' PlotNFTs, absorb block rewards and "
        "pay farmers. It needs a synced chia full node and a chia wallet holding the pool's target address, both "
        "reachable over RPC. The commands below are the operator's tools (COMMAND --help for each)."
    ),
    epilog="Every key of the config file is documented in the example config.yaml shipped with the server.",
)
@config_option
@click.option(
    "--check-config",
    is_flag=True,
    help=(
        "validate the configuration file and the files it names (chia root, RPC certificates), print a summary "
        "and exit without connecting to anything"
    ),
)
@click.option(
    "--log-level", type=click.Choice(["DEBUG", "INFO", "WARNING", "ERROR"]), help="override logging.level of the config"
)
@click.version_option(__version__, "--version", prog_name="python -m pool", message="%(prog)s %(version)s")
# Internal: worker N (from 1) of the processes the pool itself starts when server.workers > 1.
@click.option("--worker", type=int, metavar="N", hidden=True)
@click.pass_context
def cli(
    ctx: click.Context, config_path: Path | None, check_config: bool, log_level: str | None, worker: int | None
) -> None:
    if ctx.invoked_subcommand is None:
        finish(run_pool(config_path or DEFAULT_CONFIG, check_config, log_level, worker))


def run_pool(path: Path, check_config: bool, log_level: str | None, worker: int | None) -> int:
    try:
        config = load_config_file(path)
    except ConfigError as exc:
        click.echo(f"error: {path}: {exc}", err=True)
        return EXIT_CONFIG
    if preflight_refused(path, config):
        return EXIT_CONFIG
    if check_config:
        click.echo(f"{path}: OK (network {config.chain.network}, pool '{config.pool.name}')")
        return EXIT_OK

    # Imported here so that --help and --check-config stay fast and work even if chia's RPC stack fails to import.
    import uvloop

    from pool.server import StartupError, run_server

    try:
        # libuv's event loop: the same asyncio API, with the loop, its transports and its callbacks in C (the pool
        # spends a good part of each partial's CPU in the event loop's own work; docs/performance.md).
        uvloop.run(run_server(config, log_level=log_level, worker=worker))
    except StartupError as exc:
        click.echo(f"error: {exc}", err=True)
        return EXIT_UNAVAILABLE
    except KeyboardInterrupt:
        pass
    return EXIT_OK


def preflight_refused(config_path: Path, config: PoolConfig) -> bool:
    """Print what refuses this configuration before anything is contacted (pool/preflight.py); True if anything."""
    from pool.preflight import problems

    found = problems(config)
    for problem in found:
        click.echo(f"error: {config_path}: {problem}", err=True)
    return bool(found)


def config_with_a_store(path: Path) -> PoolConfig | None:
    """The config of a pool whose store already exists (the operator's commands never create one); None after saying
    what is wrong."""
    try:
        config = load_config_file(path)
    except ConfigError as exc:
        click.echo(f"error: {path}: {exc}", err=True)
        return None
    if config.store.backend == "sqlite" and not config.store.path.exists():
        click.echo(f"error: {path}: config key 'store.path': no pool database at {config.store.path}", err=True)
        return None
    return config


def existing_store_config(ctx: click.Context) -> PoolConfig:
    config = config_with_a_store(chosen_config(ctx))
    if config is None:
        finish(EXIT_CONFIG)
    return config


def with_store(ctx: click.Context, work: Callable[[Any], Awaitable[T]]) -> T:
    """Run ``work`` on the pool's store (opened here, closed after); a store's refusal ends the command."""
    from pool.store.abstract import StoreError
    from pool.store.factory import create_store

    config = existing_store_config(ctx)

    async def run() -> T:
        store = create_store(config.store)
        await store.open()
        try:
            return await work(store)
        finally:
            await store.close()

    try:
        return asyncio.run(run())
    except ConfigError as exc:
        fail(f"{chosen_config(ctx)}: {exc}", EXIT_CONFIG)
    except StoreError as exc:
        fail(str(exc) if type(exc).__name__ == "AdminRefused" else f"store: {exc}")


# -- ledger ------------------------------------------------------------------------------------------------------
@cli.group(
    invoke_without_command=True,
    context_settings=CONTEXT,
    short_help="The pool's books (and fund-fees).",
    help=(
        "Print the pool's books: confirmed reward claims, distributions, payout rounds and payments, owed balances, "
        "the pool fee earned, and the wallet's spendable balance against what the ledger says it holds."
    ),
)
@config_option
@click.option("--json", "as_json", is_flag=True, help="print the books as one JSON object")
@click.option("--no-wallet", is_flag=True, help="do not contact the wallet (no reconciliation)")
@click.option(
    "--limit",
    type=click.IntRange(0, STORE_INTEGER),
    default=20,
    show_default=True,
    help="how many recent distributions and rounds",
)
@click.pass_context
def ledger(ctx: click.Context, config_path: Path | None, as_json: bool, no_wallet: bool, limit: int) -> None:
    if ctx.invoked_subcommand is not None:
        return
    config = existing_store_config(ctx)
    from pool.payouts.books import books_json, format_books
    from pool.server import read_books
    from pool.store.abstract import StoreError

    try:
        books = asyncio.run(read_books(config, with_wallet=not no_wallet, limit=limit))
    except StoreError as exc:
        fail(f"store: {exc}")
    click.echo(json.dumps(books_json(books), indent=2) if as_json else format_books(books))


@ledger.command(
    "fund-fees",
    context_settings=CONTEXT,
    help=(
        "Give coins of the operator's own, already in the pool wallet, to the pool fee share, which pays the "
        "blockchain fees of absorbs and payments: so that claims are mined before the first distribution, or after a "
        "fee storm used the share up. Only the wallet's coins beyond what the ledger holds (and beyond rewards of "
        "claims not settled yet) are accepted. Recorded as a fee_funding entry of the ledger; what the fees do not "
        "use is paid to the fee address with the pool fee. The pool may keep running. AMOUNT: mojos (1000000000) or "
        "XCH with its unit (0.25xch)."
    ),
)
@click.argument("amount")
@config_option
@click.pass_context
def fund_fees(ctx: click.Context, amount: str, config_path: Path | None) -> None:
    from pool.chain.interface import ChainUnavailable
    from pool.payouts.books import xch
    from pool.payouts.funding import FundingRefused, parse_amount
    from pool.server import fund_fees_from_wallet
    from pool.store.abstract import StoreError

    try:
        mojos = parse_amount(amount)
    except FundingRefused as exc:
        fail(str(exc), EXIT_CONFIG)
    config = existing_store_config(ctx)
    try:
        funding = asyncio.run(fund_fees_from_wallet(config, mojos))
    except ChainUnavailable as exc:
        fail(f"the wallet must show the coins: {exc}", EXIT_UNAVAILABLE)
    except (FundingRefused, StoreError) as exc:
        fail(str(exc))
    share = xch(funding.pool_fee_share)
    click.echo(f"funded {xch(funding.amount)} ({funding.amount} mojos) to the pool fee share, now {share}")


# -- prune, migrate-store, doctor --------------------------------------------------------------------------------
@cli.command(
    context_settings=CONTEXT,
    short_help="Prune partials past their retention now.",
    help=(
        "Prune now what the pool's leader prunes every hour: partials (settled ones, never pending) and refusals "
        "received more than partials.retention_days ago are added to hourly per-farmer counts, which the pages and "
        "charts read, and deleted, in small transactions; and hourly counts older than partials.hourly_days folded "
        "into daily ones. The pool may keep running: the batches pause between them for its writes (about 100 rows "
        "a second at 10 000 farmers). Prints the rows pruned."
    ),
)
@config_option
@click.option(
    "--no-pause",
    is_flag=True,
    help="The pool is stopped: batch after batch without pausing for its writes (a large backlog at once).",
)
@click.pass_context
def prune(ctx: click.Context, config_path: Path | None, no_pause: bool) -> None:
    config = existing_store_config(ctx)
    from pool.store.abstract import StoreError

    try:
        before, pruned = asyncio.run(prune_now(config, pause=not no_pause))
    except ConfigError as exc:
        fail(f"{chosen_config(ctx)}: {exc}", EXIT_CONFIG)
    except StoreError as exc:
        fail(f"store: {exc}")
    moment = time.strftime("%Y-%m-%d %H:00 UTC", time.gmtime(before))
    click.echo(
        f"pruned {pruned} partials and refusals received before {moment} "
        f"(partials.retention_days: {config.partials.retention_days})"
    )


async def prune_now(config: PoolConfig, *, pause: bool = True) -> tuple[int, int]:
    """Prune the store of ``config`` up to its retention; the hour pruned up to and the rows pruned. ``pause``
    False: no pause between the batches (the pool is stopped)."""
    from pool.loops.retention import fold_old_hours, hours_cutoff, prune_old_partials, retention_cutoff
    from pool.store.factory import create_store

    now = int(time.time())
    before = retention_cutoff(config, now)
    pauses: dict[str, Any] = {} if pause else {"pause": 0.0, "busy_share": 1.0}
    store = create_store(config.store)
    await store.open()
    try:
        pruned = await prune_old_partials(store, before, **pauses)
        await fold_old_hours(store, 0, hours_cutoff(config, now), **pauses)  # every day, however long ago
        return before - before % 3600, pruned
    finally:
        await store.close()


@cli.command(
    "migrate-store",
    context_settings=CONTEXT,
    short_help="Move an SQLite store into PostgreSQL.",
    help=(
        "Move the pool's SQLite store (store.path of --config) into an empty PostgreSQL database: every table is "
        "copied in one transaction, which commits only if the row counts match and the ledger reads as before and "
        "balances. Stop the pool first. Afterwards set store.backend: postgresql and store.dsn in the config."
    ),
)
@config_option
@click.option("--to", "dsn", required=True, metavar="DSN", help="the target: postgresql://user@host:port/database")
@click.option("--password-env", metavar="NAME", help="read the database password from this variable")
@click.option(
    "--password-file", type=click.Path(path_type=Path), metavar="PATH", help="read it from this file's first line"
)
@click.pass_context
def migrate_store(
    ctx: click.Context, config_path: Path | None, dsn: str, password_env: str | None, password_file: Path | None
) -> None:
    path = chosen_config(ctx)
    if password_env is not None and password_file is not None:
        raise click.UsageError("--password-env and --password-file exclude each other")
    try:
        config = load_config_file(path)
        if config.store.backend != "sqlite":
            raise ConfigError("store.backend", "the store to move must be sqlite")
    except ConfigError as exc:
        fail(f"{path}: {exc}", EXIT_CONFIG)
    try:
        # The rules of the config's store section: no password in the DSN (it would show in `ps` and shell history).
        target = parse_config_store_target(dsn, password_env, password_file)
    except ConfigError as exc:
        option = {"store.dsn": "--to", "store.password_env": "--password-env"}.get(exc.key, "--password-file")
        fail(f"{option}: {exc.problem}", EXIT_CONFIG)
    from pool.store.abstract import StoreError
    from pool.store.factory import create_store
    from pool.store.migrate import migrate_sqlite_to_postgres
    from pool.store.postgres import PostgresPoolStore

    try:
        store = create_store(target)
        assert isinstance(store, PostgresPoolStore)
        result = asyncio.run(migrate_sqlite_to_postgres(config.store.path, store))
    except ConfigError as exc:
        fail(str(exc), EXIT_CONFIG)
    except StoreError as exc:
        fail(f"nothing was migrated: {exc}")
    width = max(len(table) for table in result.rows)
    for table, count in result.rows.items():
        click.echo(f"{table:<{width}}  {count:>10} rows copied, as many as in the source")
    click.echo(
        f"ledger balanced: {result.ledger.confirmed_claims} mojos of confirmed claims, all accounted for, the same "
        "as in the source"
    )
    click.echo(f"now set store.backend: postgresql and store.dsn: {dsn} in {path}")


def parse_config_store_target(dsn: str, password_env: str | None, password_file: Path | None) -> StoreConfig:
    section: dict[str, object] = {"backend": "postgresql", "dsn": dsn}
    if password_env is not None:
        section["password_env"] = password_env
    if password_file is not None:
        section["password_file"] = str(password_file)
    return parse_store_section(section, Path.cwd())


@cli.command(
    context_settings=CONTEXT,
    short_help="Check everything the pool needs, one line each.",
    help=(
        "Check everything the pool needs and print one line per check: the configuration, the chia root and its RPC "
        "certificates, the full node (reachable, synced, on chain.network), the wallet (reachable, synced, owning "
        "pool.target_address: it signs a message with that address's key), the store (reachable, its schema), the "
        "port, and the TLS certificate chain when one is set. Changes nothing. Exit 0 only if every check passes."
    ),
)
@config_option
@click.option(
    "--trust",
    type=click.Path(path_type=Path),
    metavar="PATH",
    help="check the TLS chain against these CA certificates instead of Mozilla's bundle (a private test CA)",
)
@click.pass_context
def doctor(ctx: click.Context, config_path: Path | None, trust: Path | None) -> None:
    path = chosen_config(ctx)
    try:
        config = load_config_file(path)
    except ConfigError as exc:
        click.echo(f"FAIL config          {path}: {exc}")
        finish(EXIT_REFUSED)
    from pool.doctor import print_checks, run_checks

    finish(EXIT_OK if print_checks(asyncio.run(run_checks(config, trust))) else EXIT_REFUSED)


# -- farmers, difficulty -----------------------------------------------------------------------------------------
def launcher_callback(ctx: click.Context, param: click.Parameter, value: str | None) -> Any:
    """A launcher id as the operator pastes it (64 hex digits, with or without 0x)."""
    from pool.admin import parse_launcher_id

    if value is None:
        return None
    try:
        return parse_launcher_id(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc), ctx, param) from None


LAUNCHER: dict[str, Any] = {"metavar": "LAUNCHER_ID", "callback": launcher_callback}


def echo_lines(lines: list[str]) -> None:
    click.echo("\n".join(lines))


@cli.group(context_settings=CONTEXT, help="The pool's farmers: list, show, history, ban and unban.")
@config_option
def farmers(config_path: Path | None) -> None:
    pass


@farmers.command("list", context_settings=CONTEXT, help="Every farmer: joined, difficulty, points, owed, standing.")
@config_option
@click.option("--members-only", is_flag=True, help="only the PlotNFTs farming to this pool now")
@click.option("--banned", is_flag=True, help="only the banned farmers")
@click.pass_context
def farmers_list(ctx: click.Context, config_path: Path | None, members_only: bool, banned: bool) -> None:
    from pool.admin import farmer_lines

    found = with_store(ctx, lambda store: store.list_farmers(members_only=members_only))
    echo_lines(farmer_lines([f for f in found if f.banned_at is not None or not banned]))


@farmers.command(
    "show", context_settings=CONTEXT, help="One farmer: its settings, balances, standing and newest changes."
)
@click.argument("launcher_id", **LAUNCHER)
@config_option
@click.pass_context
def farmers_show(ctx: click.Context, launcher_id: Any, config_path: Path | None) -> None:
    from pool.admin import HISTORY_SHOWN, farmer_detail, farmer_of

    async def read(store: Any) -> list[str]:
        farmer = await farmer_of(store, launcher_id)
        return farmer_detail(farmer, await store.farmer_history(launcher_id, HISTORY_SHOWN))

    echo_lines(with_store(ctx, read))


@farmers.command(
    "history",
    context_settings=CONTEXT,
    help=(
        "A farmer's changes, newest first: its join, payout instructions and authentication keys it changed, "
        "the settings it chose on its page, difficulties the operator set, bans."
    ),
)
@click.argument("launcher_id", **LAUNCHER)
@config_option
@click.option("--limit", type=STORE_COUNT, default=100, show_default=True, help="how many changes")
@click.pass_context
def farmers_history(ctx: click.Context, launcher_id: Any, config_path: Path | None, limit: int) -> None:
    from pool.admin import farmer_of, history_lines

    async def read(store: Any) -> list[str]:
        await farmer_of(store, launcher_id)
        return history_lines(await store.farmer_history(launcher_id, limit))

    echo_lines(with_store(ctx, read))


@farmers.command(
    "ban",
    context_settings=CONTEXT,
    help=(
        "Ban a farmer: its partials, GET/PUT /farmer and logins are refused with 'banned by the pool operator: "
        "REASON', its pending partials are not credited; its points and owed balance stay, and what it is owed is "
        "paid as before. The pool may keep running."
    ),
)
@click.argument("launcher_id", **LAUNCHER)
@config_option
@click.option("--reason", required=True, help="why (the farmer is told, in its log)")
@click.pass_context
def farmers_ban(ctx: click.Context, launcher_id: Any, config_path: Path | None, reason: str) -> None:
    from pool.admin import farmer_of

    async def ban(store: Any) -> bool:
        await farmer_of(store, launcher_id)
        return bool(await store.ban_farmer(launcher_id, reason, int(time.time())))

    if with_store(ctx, ban):
        click.echo(f"banned {launcher_id.hex()}: {reason}")
    else:
        click.echo(f"{launcher_id.hex()} was banned already (unban it first to change the reason)")


@farmers.command("unban", context_settings=CONTEXT, help="Lift a farmer's ban.")
@click.argument("launcher_id", **LAUNCHER)
@config_option
@click.pass_context
def farmers_unban(ctx: click.Context, launcher_id: Any, config_path: Path | None) -> None:
    from pool.admin import farmer_of

    async def unban(store: Any) -> bool:
        await farmer_of(store, launcher_id)
        return bool(await store.unban_farmer(launcher_id, int(time.time())))

    changed = with_store(ctx, unban)
    click.echo(f"{'lifted the ban of' if changed else 'not banned:'} {launcher_id.hex()}")


@cli.group(context_settings=CONTEXT, help="A farmer's difficulty.")
@config_option
def difficulty(config_path: Path | None) -> None:
    pass


@difficulty.command(
    "set",
    context_settings=CONTEXT,
    help=(
        "Set a farmer's difficulty from now on (partials of earlier signage points keep theirs); it replaces a "
        "difficulty the farmer asked for that is not in force yet. The difficulty loop adjusts it later as usual."
    ),
)
@click.argument("launcher_id", **LAUNCHER)
@click.argument("value", type=click.IntRange(1, MAX_DIFFICULTY))
@config_option
@click.pass_context
def difficulty_set(ctx: click.Context, launcher_id: Any, value: int, config_path: Path | None) -> None:
    from pool.admin import set_difficulty

    old = with_store(ctx, lambda store: set_difficulty(store, launcher_id, value, int(time.time())))
    click.echo(f"difficulty of {launcher_id.hex()}: {value} (was {old})")


# -- payments, claims, export ------------------------------------------------------------------------------------
def page_options(function: Callable[..., Any]) -> Callable[..., Any]:
    function = click.option(
        "--offset", type=click.IntRange(0, STORE_INTEGER), default=0, help="skip this many (the newest)"
    )(function)
    return click.option("--limit", type=STORE_COUNT, default=20, show_default=True, help="how many")(function)


@cli.group(context_settings=CONTEXT, help="Payments to farmers and to the fee address.")
@config_option
def payments(config_path: Path | None) -> None:
    pass


@payments.command(
    "list",
    context_settings=CONTEXT,
    help="Payments, newest first: round, batch, recipient, amount in mojos and XCH, status, transaction id.",
)
@config_option
@page_options
@click.option("--launcher", "launcher_id", **LAUNCHER, help="only this farmer's")
@click.pass_context
def payments_list(
    ctx: click.Context, config_path: Path | None, limit: int, offset: int, launcher_id: Any | None
) -> None:
    from pool.admin import payment_lines

    lines = with_store(ctx, lambda store: store.payment_lines(limit, offset, launcher_id=launcher_id))
    echo_lines(payment_lines(lines))


@payments.command(
    "show",
    context_settings=CONTEXT,
    help="A payout round: its totals, its batches with every transaction recorded, and what each pays to whom.",
)
@click.argument("round_id", type=click.IntRange(0, STORE_INTEGER))
@config_option
@click.pass_context
def payments_show(ctx: click.Context, round_id: int, config_path: Path | None) -> None:
    from pool.admin import round_detail

    echo_lines(with_store(ctx, lambda store: round_detail(store, round_id)))


@cli.group(context_settings=CONTEXT, help="Reward claims: the absorbs of the farmers' block rewards.")
@config_option
def claims(config_path: Path | None) -> None:
    pass


@claims.command(
    "list",
    context_settings=CONTEXT,
    help="Reward claims, newest reward coin first: coin id, height, farmer, amount in mojos and XCH, status, fee.",
)
@config_option
@page_options
@click.option("--status", type=click.Choice(["submitted", "confirmed", "failed", "lost"]), help="only these")
@click.pass_context
def claims_list(ctx: click.Context, config_path: Path | None, limit: int, offset: int, status: str | None) -> None:
    from pool.admin import claim_lines, claim_status

    found = with_store(ctx, lambda store: store.reward_claims_page(limit, offset, status=claim_status(status)))
    echo_lines(claim_lines(found))


def day_start(text: str | None, default: int) -> int:
    if text is None:
        return default
    try:
        return int(datetime.strptime(text, "%Y-%m-%d").replace(tzinfo=timezone.utc).timestamp())
    except ValueError:
        raise click.BadParameter(f"{text!r} is not a date like 2024-05-31") from None


@cli.command(
    context_settings=CONTEXT,
    short_help="Partials per farmer per day, or payments, as CSV.",
    help=(
        "Export as CSV: 'partials' (per UTC day, farmer and outcome: how many partials and their points, pruned ones "
        "included) or 'payments' (every payment, its round's time, amount in mojos, transaction). From --since to "
        "before --until (UTC days); to standard output or --output."
    ),
)
@click.argument("what", type=click.Choice(["partials", "payments"]))
@config_option
@click.option("--csv", "as_csv", is_flag=True, default=True, help="comma-separated values (the only format)")
@click.option("--since", metavar="YYYY-MM-DD", help="from this day on (default: everything)")
@click.option("--until", metavar="YYYY-MM-DD", help="before this day (default: everything)")
@click.option("--output", type=click.Path(path_type=Path, dir_okay=False), metavar="PATH", help="write to this file")
@click.pass_context
def export(
    ctx: click.Context,
    what: str,
    config_path: Path | None,
    as_csv: bool,
    since: str | None,
    until: str | None,
    output: Path | None,
) -> None:
    from pool.admin import partials_csv, payments_csv

    start, end = day_start(since, 0), day_start(until, 2**62)
    export_csv = partials_csv if what == "partials" else payments_csv
    text = with_store(ctx, lambda store: export_csv(store, start, end))
    if output is None:
        click.echo(text, nl=False)
    else:
        output.write_text(text)
        click.echo(f"wrote {text.count(chr(10)) - 1} rows to {output}", err=True)


def main(argv: list[str] | None = None) -> int:
    """Run the command line; returns the exit code (EXIT_OK, EXIT_CONFIG ...)."""
    prog_name = "chia-pool" if Path(sys.argv[0]).name == "chia-pool" else "python -m pool"
    try:
        cli.main(args=argv, prog_name=prog_name, standalone_mode=True)
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else EXIT_OK if exc.code is None else EXIT_REFUSED
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
