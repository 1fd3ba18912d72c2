"""PostgreSQL dialect of the store (``store.backend: postgresql``), for pools that run several processes; the store
itself, every method and money rule, is sql.py.

Several pool processes, on one machine or several, may share one database. Every public method is one transaction
on a connection of an asyncpg pool, so the guarantees of the SQLite store hold across processes too:

* Status changes are conditional updates (``UPDATE ... WHERE status = 'pending' RETURNING ...``). Under PostgreSQL's
  READ COMMITTED a second transaction that updates the same row waits for the first and then re-checks the condition
  against the committed row, so a partial is credited once, a claim settled once, a batch moved once.
* Every method that moves money (claims, distributions, payout rounds, batches) first takes one transaction-scoped
  advisory lock, ``_LEDGER_LOCK``: money moves one transaction at a time across all processes. That makes the
  "is a round open?" check and the "was this the round's last batch?" check race-free, and keeps the row locks those
  transactions take (ledger accounts, owed balances, points) from ever deadlocking each other. Balances are also
  debited only by conditional updates (``balance >= amount``) and the schema's CHECK constraints refuse an overdraft,
  as in SQLite; the partial unique index still refuses a second open round.
* Migrations run under their own advisory lock, so processes starting together upgrade the schema once.

Mojo amounts are ``NUMERIC(20, 0)`` (every uint64 fits, never a float); points, heights and times are ``BIGINT``.
The schema versions are those of the SQLite store: MIGRATIONS[i] takes version i to i + 1 on both backends.

What is PostgreSQL's own: the schema, numbering sql.py's ``:name`` parameters for asyncpg, the pool of connections and
the advisory locks, the multi-row insert of POST /partial (one statement over arrays), and migrate-store's import.
"""

from __future__ import annotations

import functools
import re
from collections.abc import AsyncIterator, Collection, Mapping, Sequence
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

import asyncpg

from pool.chia_adapter import bytes32
from pool.store.abstract import StoreError
from pool.store.models import LedgerSummary, PartialRecord
from pool.store.postgres_schema import MIGRATIONS, TABLES
from pool.store.rows import Row
from pool.store.sql import Migration, Params, SqlPoolStore, Statements, read_ledger

if TYPE_CHECKING:
    from asyncpg.pool import PoolConnectionProxy

    Connection = PoolConnectionProxy[asyncpg.Record]


# Advisory lock keys (64-bit, fixed): one per purpose, shared by every process on the database.
_MIGRATION_LOCK = 0x706F6F6C_6D696772  # "poolmigr"
_LEDGER_LOCK = 0x706F6F6C_6C656467  # "poolledg"
LEADER_LOCK = 0x706F6F6C_6C656164  # "poollead": held (session scope) by the process that runs the chain loops


class TargetNotEmpty(StoreError):
    """migrate-store: the PostgreSQL database already holds pool data."""


# A quoted literal (left as it is) or a :name parameter; "::type" casts are neither.
_LITERAL_OR_PARAMETER = re.compile(r"'(?:[^']|'')*'|(?<!:):([A-Za-z_]\w*)")


@functools.lru_cache(maxsize=1024)
def numbered(sql: str) -> tuple[str, tuple[str, ...]]:
    """sql.py's statement for asyncpg: its ``:name`` parameters as ``$1``, ``$2`` (one number per name, in the order
    they first appear), and the names in that order. Cached: the shared statements are few and fixed."""
    names: dict[str, int] = {}

    def number(match: re.Match[str]) -> str:
        name = match.group(1)
        if name is None:
            return match.group(0)
        return f"${names.setdefault(name, len(names) + 1)}"

    return _LITERAL_OR_PARAMETER.sub(number, sql), tuple(names)


def _bound(sql: str, params: Params | None) -> tuple[str, list[Any]]:
    """The statement and its arguments in asyncpg's order; one without parameters is sent as written."""
    if params is None:
        return sql, []
    text, names = numbered(sql)
    return text, [params[name] for name in names]


def _rows_changed(status: str) -> int:
    """The row count of a command status ("UPDATE 3", "INSERT 0 1"); 0 for commands that report none."""
    count = status.rsplit(" ", 1)[-1]
    return int(count) if count.isdigit() else 0


class _Postgres(Statements):
    """The shared SQL on an asyncpg connection, or on the pool (each statement then takes a connection of its own)."""

    def __init__(self, target: asyncpg.Pool[asyncpg.Record] | Connection) -> None:
        self.target = target

    async def fetchone(self, sql: str, params: Params | None = None) -> Row | None:
        text, args = _bound(sql, params)
        return await self.target.fetchrow(text, *args)

    async def fetchall(self, sql: str, params: Params | None = None) -> list[Row]:
        text, args = _bound(sql, params)
        return list(await self.target.fetch(text, *args))

    async def execute(self, sql: str, params: Params | None = None) -> int:
        text, args = _bound(sql, params)
        return _rows_changed(await self.target.execute(text, *args))

    async def executemany(self, sql: str, rows: Sequence[Params]) -> None:
        text, names = numbered(sql)
        await self.target.executemany(text, [[row[name] for name in names] for row in rows])


class PostgresPoolStore(SqlPoolStore[_Postgres]):
    """``dsn`` names the server and database (``postgresql://user@host:port/db``); ``password`` comes from the
    configuration's environment variable or file, never from the DSN, and is never logged."""

    _LOCK_ROWS = " FOR UPDATE"
    _SHARE_ROWS = " FOR SHARE"
    # The unique index payout_rounds_one_open has the last word on a second open round: its refusal is RoundAlreadyOpen.
    _UNIQUE_VIOLATION = (asyncpg.UniqueViolationError,)
    _SKIP_LOCKED_ROWS = " FOR UPDATE SKIP LOCKED"
    _WARM_BEFORE_PRUNE = False

    def __init__(
        self,
        dsn: str,
        *,
        password: str | None = None,
        min_connections: int = 1,
        max_connections: int = 10,
        migrations: Sequence[Migration] = MIGRATIONS,
    ) -> None:
        super().__init__(migrations)
        self._dsn = dsn
        self._password = password
        self._min_connections = min_connections
        self._max_connections = max_connections
        self._pool: asyncpg.Pool[asyncpg.Record] | None = None

    def __repr__(self) -> str:
        return f"PostgresPoolStore({self._dsn!r})"

    @property
    def dsn(self) -> str:
        """Where the store is (never with a password: one in the DSN is refused by the configuration)."""
        return self._dsn

    # -- connections and transactions --------------------------------------------------------------------------
    def _connections(self) -> asyncpg.Pool[asyncpg.Record]:
        if self._pool is None:
            raise StoreError("the store is not open")
        return self._pool

    @asynccontextmanager
    async def _transaction(self, lock: int | None) -> AsyncIterator[Connection]:
        """A pooled connection in a transaction (committed when the block ends, rolled back on any exception),
        after waiting for the advisory ``lock`` if one is named (released at commit or rollback)."""
        async with self._connections().acquire() as conn, conn.transaction():
            if lock is not None:
                await conn.execute("SELECT pg_advisory_xact_lock($1)", lock)
            yield conn

    @asynccontextmanager
    async def _write(self, *, ledger: bool = False) -> AsyncIterator[_Postgres]:
        async with self._transaction(_LEDGER_LOCK if ledger else None) as conn:
            yield _Postgres(conn)

    @asynccontextmanager
    async def _upkeep_write(self) -> AsyncIterator[_Postgres]:
        # The commit returns before the server flushed it (its WAL writer does within a fraction of a second): the
        # batch's rows stay locked no longer than its statements, and its flush does not queue with the intake's.
        async with self._transaction(None) as conn:
            await conn.execute("SET LOCAL synchronous_commit = off")
            yield _Postgres(conn)

    @asynccontextmanager
    async def _write_schema(self) -> AsyncIterator[_Postgres]:
        # Processes starting together wait for each other here instead of applying a step twice.
        async with self._transaction(_MIGRATION_LOCK) as conn:
            yield _Postgres(conn)

    def _reads(self) -> _Postgres:
        return _Postgres(self._connections())

    def _one_of(self, column: str, name: str, values: Collection[Any], array_type: str) -> tuple[str, dict[str, Any]]:
        # One array parameter: the statement's text (and asyncpg's prepared statement) is the same for any count.
        return f"{column} = ANY(:{name}::{array_type}[])", {name: list(values)}

    def _name(self) -> str:
        return f"the PostgreSQL store {self._dsn}"

    # -- lifecycle ---------------------------------------------------------------------------------------------
    async def open(self) -> None:
        if self._pool is not None:
            return
        try:
            pool = await asyncpg.create_pool(
                self._dsn,
                password=self._password,
                min_size=self._min_connections,
                max_size=self._max_connections,
            )
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            raise StoreError(f"cannot connect to the PostgreSQL store {self._dsn}: {exc}") from exc
        self._pool = pool
        try:
            await self._migrate()
        except BaseException:
            self._pool = None
            await pool.close()
            raise

    async def close(self) -> None:
        if self._pool is not None:
            pool, self._pool = self._pool, None
            await pool.close()

    # -- POST /partial's multi-row insert ----------------------------------------------------------------------
    async def _insert_partials(self, tx: _Postgres, partials: Sequence[PartialRecord]) -> dict[bytes32, int]:
        """One statement for the batch. A proof inserted concurrently by another worker makes this one wait for it and
        then skip the row; a proof twice in the batch is inserted once (the first row wins). Rows go in in proof hash
        order: two workers inserting the same proofs (a farmer's resends reaching both) then wait on them in the same
        order, never on each other in a deadlock."""
        if not partials:
            return {}
        rows = await tx.fetchall(
            """
            INSERT INTO partials (
                launcher_id, proof_hash, sp_hash, end_of_sub_slot, harvester_id, received_at, difficulty, status
            )
            SELECT l, p, s, e, h, r, d, 'pending' FROM unnest(
                :launcher_ids::bytea[], :proof_hashes::bytea[], :sp_hashes::bytea[], :end_of_sub_slots::boolean[],
                :harvester_ids::bytea[], :received_ats::bigint[], :difficulties::bigint[]
            ) WITH ORDINALITY AS batch(l, p, s, e, h, r, d, position)
            ORDER BY p, position
            ON CONFLICT (proof_hash) DO NOTHING
            RETURNING id, proof_hash
            """,
            {
                "launcher_ids": [p.launcher_id for p in partials],
                "proof_hashes": [p.proof_hash for p in partials],
                "sp_hashes": [p.sp_hash for p in partials],
                "end_of_sub_slots": [p.end_of_sub_slot for p in partials],
                "harvester_ids": [p.harvester_id for p in partials],
                "received_ats": [p.received_at for p in partials],
                "difficulties": [p.difficulty for p in partials],
            },
        )
        return {bytes32(row["proof_hash"]): int(row["id"]) for row in rows}

    # -- migrate-store -----------------------------------------------------------------------------------------
    async def table_counts(self) -> dict[str, int]:
        """Rows per table (one consistent snapshot): what migrate-store compares."""
        async with self._connections().acquire() as conn, conn.transaction(isolation="repeatable_read", readonly=True):
            return {table: int(await conn.fetchval(f"SELECT count(*) FROM {table}")) for table in TABLES}

    async def import_tables(
        self, tables: Mapping[str, tuple[Sequence[str], Sequence[Sequence[Any]]]], expected_ledger: LedgerSummary
    ) -> dict[str, int]:
        """Copy another store's tables (name -> (columns, rows)) into this empty store, in one transaction: the
        rows keep their ids, the id sequences move past them, and it commits only if every table then holds exactly
        the rows given and the ledger reads ``expected_ledger`` and balances (StoreError otherwise, nothing written).
        Refuses (TargetNotEmpty) a store that already holds anything. Returns the rows per table."""
        if set(tables) != set(TABLES):
            raise StoreError(f"an import needs exactly the tables {', '.join(TABLES)}")
        async with self._transaction(_LEDGER_LOCK) as conn:
            # Nobody else may write (or read half a copy) until it is complete.
            await conn.execute(f"LOCK TABLE {', '.join(TABLES)} IN ACCESS EXCLUSIVE MODE")
            # Rows every new store has: zero balances, epoch 0, zero running totals.
            seeded = ("ledger_accounts", "leadership", "running_totals")
            holding = [
                table
                for table in TABLES
                if table not in seeded and await conn.fetchval(f"SELECT EXISTS (SELECT 1 FROM {table})")
            ]
            if await conn.fetchval("SELECT COALESCE(SUM(balance), 0) FROM ledger_accounts") != 0:
                holding.append("ledger_accounts")
            if await conn.fetchval("SELECT COALESCE(MAX(epoch), 0) FROM leadership") != 0:
                holding.append("leadership")
            if await conn.fetchval("SELECT COALESCE(SUM(total), 0) FROM running_totals") != 0:
                holding.append("running_totals")
            if holding:
                raise TargetNotEmpty(f"{self._dsn} already holds pool data (in {', '.join(holding)})")
            for table in seeded:  # their rows come from the source
                await conn.execute(f"DELETE FROM {table}")
            column_types: dict[str, dict[str, str]] = {}
            for row in await conn.fetch(
                "SELECT table_name, column_name, data_type, is_identity FROM information_schema.columns "
                "WHERE table_schema = current_schema()"
            ):
                column_types.setdefault(row["table_name"], {})[row["column_name"]] = row["data_type"]
            counts: dict[str, int] = {}
            # difficulty_hours is copied as it is: the partials' trigger would count the copied partials again. The
            # partials are copied with the keys they have: those recorded before schema step 25 keep theirs.
            await conn.execute("ALTER TABLE partials DISABLE TRIGGER partials_difficulty_hours")
            await conn.execute("ALTER TABLE partials DISABLE TRIGGER partials_proof_key")
            for table in TABLES:
                columns, rows = tables[table]
                types = column_types[table]
                if set(columns) != set(types):
                    raise StoreError(
                        f"table {table}: the source has columns {sorted(columns)}, this store {sorted(types)}"
                    )
                kinds = [types[column] for column in columns]
                records = [
                    tuple(_import_value(kind, value) for kind, value in zip(kinds, row, strict=True)) for row in rows
                ]
                await conn.copy_records_to_table(table, records=records, columns=list(columns))
                counts[table] = int(await conn.fetchval(f"SELECT count(*) FROM {table}"))
                if counts[table] != len(rows):
                    raise StoreError(f"table {table}: {len(rows)} rows copied but {counts[table]} found")
            await conn.execute("ALTER TABLE partials ENABLE TRIGGER partials_difficulty_hours")
            await conn.execute("ALTER TABLE partials ENABLE TRIGGER partials_proof_key")
            for table in TABLES:
                if column_types[table].get("id") is not None:
                    await conn.execute(
                        f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                        f"COALESCE((SELECT MAX(id) FROM {table}), 0) + 1, false)"
                    )
            ledger = await read_ledger(_Postgres(conn))
            if ledger != expected_ledger or not ledger.balanced:
                raise StoreError(
                    f"after the copy the ledger reads {ledger}, not {expected_ledger}: nothing was written"
                )
            return counts


def _import_value(data_type: str, value: Any) -> Any:
    """A value read from SQLite, as the PostgreSQL column's type wants it (SQLite keeps booleans as 0/1)."""
    if value is None:
        return None
    if data_type == "boolean":
        return bool(value)
    if data_type == "bytea":
        return bytes(value)
    return value
