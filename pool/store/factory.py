"""Build the store the configuration names."""

from __future__ import annotations

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
