"""Build the store the configuration names."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from pathlib import Path

from pool.config import StoreConfig
from pool.store.abstract import AbstractPoolStore, StoreError
from pool.store.sqlite import SqlitePoolStore


def create_store(config: StoreConfig) -> AbstractPoolStore:
    """The configured store, not yet opened (the caller awaits ``open()``). Creates an SQLite database's directory;
    reads a PostgreSQL password from its environment variable or file (ConfigError naming the key if it cannot)."""
    if config.backend == "sqlite":
        config.path.parent.mkdir(parents=True, exist_ok=True)
        return SqlitePoolStore(config.path)
    if config.backend == "postgresql":
        if config.dsn is None:
            raise StoreError("config key 'store.dsn': missing")
        # Imported here: a pool on SQLite never needs asyncpg.
        from pool.store.postgres import PostgresPoolStore

        return PostgresPoolStore(
            config.dsn,
            password=config.password(),
            min_connections=config.min_connections,
            max_connections=config.max_connections,
        )
    raise StoreError(f"unknown store backend {config.backend!r}")


async def peek_schema_version(config: StoreConfig) -> int | None:
    """The schema version of the configured store's database, read without changing anything (opening a store
    migrates it); None when there is no database yet (the pool creates it on start). Raises StoreError when it cannot
    be read."""
    if config.backend == "sqlite":
        return await asyncio.to_thread(_sqlite_schema_version, config.path)
    if config.dsn is None:
        raise StoreError("config key 'store.dsn': missing")
    import asyncpg

    try:
        connection = await asyncpg.connect(config.dsn, password=config.password(), timeout=10)
    except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError) as exc:
        raise StoreError(f"cannot connect to the PostgreSQL store {config.dsn}: {exc}") from exc
    try:
        if not await connection.fetchval("SELECT to_regclass('schema_version') IS NOT NULL"):
            return None
        version = await connection.fetchval("SELECT version FROM schema_version")
        return None if version is None else int(version)
    finally:
        await connection.close()


def _sqlite_schema_version(path: Path) -> int | None:
    if not path.exists():
        return None
    try:
        with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as connection:
            table = connection.execute("SELECT 1 FROM sqlite_master WHERE name = 'schema_version'").fetchone()
            row = connection.execute("SELECT version FROM schema_version").fetchone() if table else None
    except sqlite3.Error as exc:
        raise StoreError(f"cannot read the SQLite store {path}: {exc}") from exc
    return None if row is None else int(row[0])


def schema_version_of_this_code(config: StoreConfig) -> int:
    """The schema version this code writes to the configured backend."""
    if config.backend == "postgresql":
        from pool.store.postgres_schema import MIGRATIONS as POSTGRES

        return len(POSTGRES)
    from pool.store.sqlite_schema import MIGRATIONS as SQLITE

    return len(SQLITE)
