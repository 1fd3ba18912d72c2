"""``python -m pool migrate-store``: move a pool's SQLite store into an empty PostgreSQL database.

Every table is copied row for row (ids kept) in one PostgreSQL transaction, which commits only if each table then
holds as many rows as the source and the ledger reads exactly as the source's and balances. The source is brought to
the current schema version first (as starting the pool would), then read under SQLite's write lock, so the copy is
one consistent snapshot; the pool should be stopped while it runs (anything it wrote afterwards would not be copied).

Once the copy is committed, the source is marked as moved (still under its write lock): it refuses to open from then
on, so that a restart with the old configuration cannot run a second pool, with the same wallet, beside the new one.
A crash between the two commits leaves the source unmarked beside a full target (running the command again refuses
the target): the operator then retires the source file by hand.
"""

from __future__ import annotations

import asyncio
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pool.store.abstract import StoreError
from pool.store.models import LedgerSummary
from pool.store.postgres import PostgresPoolStore
from pool.store.postgres_schema import TABLES
from pool.store.sqlite import SqlitePoolStore


@dataclass(frozen=True)
class MigrationResult:
    rows: dict[str, int]  # per table, as copied (equal to the source's)
    ledger: LedgerSummary


class MigrationRefused(StoreError):
    """The source or the target is not fit for a migration; nothing was written."""


def read_tables(connection: sqlite3.Connection) -> dict[str, tuple[list[str], list[tuple[Any, ...]]]]:
    """Every table of TABLES as (columns, rows), ordered by its key so that ids come in order."""
    tables: dict[str, tuple[list[str], list[tuple[Any, ...]]]] = {}
    for table in TABLES:
        cursor = connection.execute(f"SELECT * FROM {table} ORDER BY {_key_of(connection, table)}")
        columns = [description[0] for description in cursor.description]
        tables[table] = (columns, [tuple(row) for row in cursor.fetchall()])
    return tables


def _key_of(connection: sqlite3.Connection, table: str) -> str:
    """The table's primary key columns in key order, or rowid for a table without one (a WITHOUT ROWID table has no
    rowid to order by)."""
    columns = connection.execute("SELECT name FROM pragma_table_info(?) WHERE pk > 0 ORDER BY pk", (table,)).fetchall()
    return ", ".join(str(column[0]) for column in columns) or "rowid"


async def migrate_sqlite_to_postgres(source: Path, target: PostgresPoolStore) -> MigrationResult:
    """Copy the SQLite store at ``source`` into ``target`` (opened here, closed after)."""
    if not await asyncio.to_thread(source.is_file):
        raise MigrationRefused(f"no pool database at {source}")
    sqlite_store = SqlitePoolStore(source)
    await sqlite_store.open()  # forward migrations: both stores are then at the same schema version
    try:
        expected = await sqlite_store.ledger()
        if not expected.balanced:
            raise MigrationRefused(
                f"the books of {source} do not balance ({expected}); see `python -m pool ledger` before moving them"
            )
        raw = sqlite3.connect(source, timeout=30)
        try:
            # The write lock: no pool process can change the source while it is read and copied.
            raw.execute("BEGIN IMMEDIATE")
            tables = read_tables(raw)
            if await sqlite_store.ledger() != expected:
                raise MigrationRefused(f"{source} changed while it was read: stop the pool and run this again")
            await target.open()
            try:
                if await target.schema_version() != await sqlite_store.schema_version():
                    raise MigrationRefused("the two stores are at different schema versions")
                rows = await target.import_tables(tables, expected)
            finally:
                await target.close()
            raw.execute(
                "INSERT INTO store_meta (key, value) VALUES ('migrated_to', ?) "
                "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                (target.dsn,),
            )
            raw.commit()
        finally:
            raw.close()
    finally:
        await sqlite_store.close()
    source_rows = {table: len(rows) for table, (_, rows) in tables.items()}
    if rows != source_rows:  # pragma: no cover - import_tables already refuses to commit a short copy
        raise StoreError(f"row counts differ: source {source_rows}, target {rows}")
    return MigrationResult(rows=rows, ledger=expected)
