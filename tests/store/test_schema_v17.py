"""The step to schema version 17 on both backends: the settings audit of a pool from before it joins the farmers'
history, its rows moved in time order among the history's own, and new changes of either kind go on after them.

The database is written as the code before the step left it: raw rows in ``farmer_settings_changes``.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import asyncpg
import pytest

from pool.store import postgres, postgres_schema, sqlite, sqlite_schema
from pool.store.abstract import AbstractPoolStore
from pool.store.models import FarmerChangeKind, FarmerSettings
from tests.store.test_schema_v5 import dollar_parameters
from tests.store.test_store_contract import make_farmer

SETTINGS_ROWS = (
    "INSERT INTO farmer_settings_changes (launcher_id, changed_at, setting, old_value, new_value) "
    "VALUES (?, ?, ?, ?, ?)"
)


async def before_the_step(store: AbstractPoolStore) -> list[tuple[str, tuple[object, ...]]]:
    """A farmer that joined at 1 001, was banned at 1 300 and unbanned at 1 500, and changed its settings at 1 200
    and 1 400
    (the old code's rows)."""
    farmer = make_farmer(1)
    await store.add_farmer(farmer)  # joins at its joined_at
    await store.ban_farmer(farmer.launcher_id, "spam", now=1_300)
    await store.unban_farmer(farmer.launcher_id, now=1_500)
    launcher = bytes(farmer.launcher_id)
    return [
        (SETTINGS_ROWS, (launcher, 1_200, "min_payout", None, "5000")),
        (SETTINGS_ROWS, (launcher, 1_400, "webhook_url", None, "https://example.com/hook")),
    ]


async def old_store(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> AbstractPoolStore:
    """The store of this code on a database one step before version 17 holding the old rows (not yet opened)."""
    if backend == "sqlite":
        steps = sqlite_schema.MIGRATIONS.index(sqlite_schema._SCHEMA_V17_ONE_FARMER_HISTORY)
        path = tmp_path / "pool.sqlite"
        old: AbstractPoolStore = sqlite.SqlitePoolStore(path, migrations=sqlite.MIGRATIONS[:steps])
        await old.open()
        rows = await before_the_step(old)
        await old.close()
        with sqlite3.connect(path) as raw:
            for sql, params in rows:
                raw.execute(sql, params)
        raw.close()
        return sqlite.SqlitePoolStore(path)
    steps = postgres_schema.MIGRATIONS.index(postgres_schema._SCHEMA_V17_ONE_FARMER_HISTORY)
    server = request.getfixturevalue("postgres_server")
    name = f"pool_v17_{abs(hash(request.node.nodeid))}"
    dsn = server.create_database(name)
    request.addfinalizer(lambda: server.drop_database(name))
    old = postgres.PostgresPoolStore(dsn, migrations=postgres.MIGRATIONS[:steps])
    await old.open()
    rows = await before_the_step(old)
    await old.close()
    connection = await asyncpg.connect(dsn)
    try:
        for sql, params in rows:
            await connection.execute(dollar_parameters(sql), *params)
    finally:
        await connection.close()
    return postgres.PostgresPoolStore(dsn)


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
async def test_settings_changes_move_into_the_farmers_history(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    store = await old_store(backend, tmp_path, request)
    await store.open()
    try:
        launcher_id = make_farmer(1).launcher_id
        history = await store.farmer_history(launcher_id)
        assert [(c.at, c.kind, c.old, c.new) for c in history] == [
            (1_500, FarmerChangeKind.UNBANNED, "spam", None),
            (1_400, FarmerChangeKind.WEBHOOK_URL, None, "https://example.com/hook"),
            (1_300, FarmerChangeKind.BANNED, None, "spam"),
            (1_200, FarmerChangeKind.MIN_PAYOUT, None, "5000"),
            (make_farmer(1).joined_at, FarmerChangeKind.JOINED, None, history[-1].new),
        ]
        assert [c.kind for c in await store.setting_changes(launcher_id)] == [
            FarmerChangeKind.WEBHOOK_URL,
            FarmerChangeKind.MIN_PAYOUT,
        ]
        # The history goes on after the moved rows, for either kind of change.
        await store.change_farmer_settings(FarmerSettings(launcher_id, difficulty_preset=7), now=1_600)
        await store.ban_farmer(launcher_id, "again", now=1_700)
        newest = await store.farmer_history(launcher_id, limit=3)
        assert [(c.at, c.kind.value) for c in newest] == [
            (1_700, "banned"),
            (1_600, "difficulty_preset"),
            (1_500, "unbanned"),
        ]
        assert len({c.id for c in await store.farmer_history(launcher_id)}) == 7
    finally:
        await store.close()
