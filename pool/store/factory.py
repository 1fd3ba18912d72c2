"""Build the store the configuration names."""

from __future__ import annotations

from pool.config import StoreConfig
from pool.store.abstract import AbstractPoolStore, StoreError
from pool.store.sqlite import SqlitePoolStore


def create_store(config: StoreConfig) -> AbstractPoolStore:
    """The configured store, not yet opened (the caller awaits ``open()``). Creates the database's directory."""
    if config.backend == "sqlite":
        config.path.parent.mkdir(parents=True, exist_ok=True)
        return SqlitePoolStore(config.path)
    raise StoreError(f"unknown store backend {config.backend!r}")
