"""What only the SQLite backend has: its pragmas, its schema versions and migrations, and the factory."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from chia_rs import Program

from pool.chia_adapter import (
    AugSchemeMPL,
    Coin,
    CoinSpend,
    PoolSingletonState,
    PoolState,
    bytes32,
    std_hash,
    uint8,
    uint32,
    uint64,
)
from pool.config import StoreConfig
from pool.store.abstract import StoreError
from pool.store.factory import create_store
from pool.store.models import FarmerRecord
from pool.store.sqlite import MIGRATIONS, SchemaTooNew, SqlitePoolStore


def make_farmer() -> FarmerRecord:
    key = AugSchemeMPL.key_gen(bytes([7]) * 32).get_g1()
    return FarmerRecord(
        launcher_id=std_hash(b"launcher"),
        p2_singleton_puzzle_hash=std_hash(b"p2"),
        delay_time=604800,
        delay_puzzle_hash=std_hash(b"delay"),
        authentication_public_key=key,
        singleton_tip=CoinSpend(Coin(std_hash(b"parent"), std_hash(b"ph"), uint64(1)), Program.to(1), Program.to(0)),
        singleton_tip_state=PoolState(
            uint8(1), uint8(PoolSingletonState.FARMING_TO_POOL.value), std_hash(b"pool"), key, "https://x", uint32(10)
        ),
        difficulty=10,
        payout_instructions="ab" * 32,
        payout_puzzle_hash=bytes32(bytes.fromhex("ab" * 32)),
        is_pool_member=True,
        points=42,
        joined_at=1_000,
    )


def stored_version(path: Path) -> int:
    with sqlite3.connect(path) as raw:
        (version,) = raw.execute("SELECT version FROM schema_version").fetchone()
    raw.close()
    return int(version)


async def test_connection_is_durable_and_checks_foreign_keys(tmp_path: Path) -> None:
    store = SqlitePoolStore(tmp_path / "pool.sqlite")
    await store.open()
    try:
        db = store._connection()
        settings = {}
        for pragma in ("journal_mode", "synchronous", "foreign_keys"):
            async with db.execute(f"PRAGMA {pragma}") as cursor:
                row = await cursor.fetchone()
                assert row is not None
                settings[pragma] = row[0]
        assert settings == {"journal_mode": "wal", "synchronous": 2, "foreign_keys": 1}  # synchronous 2 = FULL
    finally:
        await store.close()


async def test_a_new_database_is_brought_to_the_latest_version(tmp_path: Path) -> None:
    path = tmp_path / "pool.sqlite"
    store = SqlitePoolStore(path)
    await store.open()
    assert await store.schema_version() == len(MIGRATIONS)
    await store.close()
    assert stored_version(path) == len(MIGRATIONS)


async def test_a_database_of_a_newer_version_is_refused_untouched(tmp_path: Path) -> None:
    path = tmp_path / "pool.sqlite"
    store = SqlitePoolStore(path)
    await store.open()
    await store.add_farmer(make_farmer())
    await store.close()
    newer = len(MIGRATIONS) + 1
    with sqlite3.connect(path) as raw:
        raw.execute("UPDATE schema_version SET version = ?", (newer,))
    raw.close()

    refused = SqlitePoolStore(path)
    with pytest.raises(SchemaTooNew, match=f"schema version {newer}, newer than this pool's {len(MIGRATIONS)}"):
        await refused.open()
    assert stored_version(path) == newer
    with pytest.raises(StoreError):  # it did not stay half-open
        await refused.get_farmer(make_farmer().launcher_id)


async def test_an_older_database_is_migrated_forward_keeping_its_data(tmp_path: Path) -> None:
    path = tmp_path / "pool.sqlite"
    old = SqlitePoolStore(path)  # the schema as released so far
    await old.open()
    farmer = make_farmer()
    await old.add_farmer(farmer)
    await old.close()

    # The next release adds a step; opening the old file with it must run that step, and only that step, once.
    next_step = (
        "ALTER TABLE farmers ADD COLUMN nickname TEXT",
        "UPDATE farmers SET nickname = 'migrated'",
    )
    upgraded = SqlitePoolStore(path, migrations=(*MIGRATIONS, next_step))
    await upgraded.open()
    try:
        assert await upgraded.schema_version() == len(MIGRATIONS) + 1
        assert await upgraded.get_farmer(farmer.launcher_id) == farmer
    finally:
        await upgraded.close()
    with sqlite3.connect(path) as raw:
        assert raw.execute("SELECT nickname FROM farmers").fetchall() == [("migrated",)]
    raw.close()

    again = SqlitePoolStore(path, migrations=(*MIGRATIONS, next_step))
    await again.open()  # would fail with "duplicate column" if the step ran twice
    await again.close()


async def test_a_failing_migration_step_changes_nothing(tmp_path: Path) -> None:
    path = tmp_path / "pool.sqlite"
    store = SqlitePoolStore(path)
    await store.open()
    await store.add_farmer(make_farmer())
    await store.close()

    broken_step = ("ALTER TABLE farmers ADD COLUMN half_done TEXT", "THIS IS NOT SQL")
    with pytest.raises(sqlite3.OperationalError):
        await SqlitePoolStore(path, migrations=(*MIGRATIONS, broken_step)).open()
    assert stored_version(path) == len(MIGRATIONS)
    with sqlite3.connect(path) as raw:
        columns = [row[1] for row in raw.execute("PRAGMA table_info(farmers)")]
    raw.close()
    assert "half_done" not in columns

    reopened = SqlitePoolStore(path)
    await reopened.open()
    assert await reopened.get_farmer(make_farmer().launcher_id) == make_farmer()
    await reopened.close()


async def test_factory_builds_an_sqlite_store_and_its_directory(tmp_path: Path) -> None:
    path = tmp_path / "deep" / "er" / "pool.sqlite"
    store = create_store(StoreConfig(backend="sqlite", path=path))
    assert isinstance(store, SqlitePoolStore)
    await store.open()
    await store.add_farmer(make_farmer())
    await store.close()
    assert path.is_file()


def test_factory_refuses_an_unknown_backend(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="unknown store backend"):
        create_store(StoreConfig(backend="mongodb", path=tmp_path / "x"))
