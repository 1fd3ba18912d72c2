"""The step to schema version 19 on both backends: the hourly counts the difficulty summaries read are made from a
pool's partials of before the step, and partials recorded after it join them, so that the summaries of a pool that
upgrades are those of its partials."""

from __future__ import annotations

from pathlib import Path

import pytest

from pool.protocol.difficulty import summarize
from pool.store import postgres, postgres_schema, sqlite, sqlite_schema
from pool.store.abstract import AbstractPoolStore
from tests.store.test_store_contract import make_farmer, make_partial

HOUR = 3600
BEFORE = [(HOUR * 10 + 5, 8), (HOUR * 11 + 7, 16), (HOUR * 12, 8), (HOUR * 12 + 10, 8), (HOUR * 12 + 10, 4)]
AFTER = [(HOUR * 12 + 20, 8), (HOUR * 13 + 1, 8)]


def store_of(backend: str, tmp_path: Path, request: pytest.FixtureRequest, *, steps: int | None) -> AbstractPoolStore:
    if backend == "sqlite":
        migrations = sqlite_schema.MIGRATIONS if steps is None else sqlite_schema.MIGRATIONS[:steps]
        return sqlite.SqlitePoolStore(tmp_path / "pool.sqlite", migrations=migrations)
    name = f"pool_v19_{abs(hash(request.node.nodeid))}"
    server = request.getfixturevalue("postgres_server")
    if steps is not None:
        dsn = server.create_database(name)
        request.addfinalizer(lambda: server.drop_database(name))
        return postgres.PostgresPoolStore(dsn, migrations=postgres_schema.MIGRATIONS[:steps])
    return postgres.PostgresPoolStore(server.dsn(name))


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
async def test_the_partials_of_before_the_step_are_counted_in_their_hours(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    steps = sqlite_schema.MIGRATIONS.index(sqlite_schema._SCHEMA_V19_DIFFICULTY_HOURS)
    assert steps == postgres_schema.MIGRATIONS.index(postgres_schema._SCHEMA_V19_DIFFICULTY_HOURS)
    farmer = make_farmer(1, difficulty=8)
    old = store_of(backend, tmp_path, request, steps=steps)
    await old.open()
    await old.add_farmer(farmer)
    for n, (at, difficulty) in enumerate(BEFORE):
        await old.add_partial(make_partial(farmer, f"before {n}", at, difficulty))
    await old.close()

    store = store_of(backend, tmp_path, request, steps=None)
    await store.open()
    try:
        for n, (at, difficulty) in enumerate(AFTER):
            await store.add_partial(make_partial(farmer, f"after {n}", at, difficulty))
        for since, window in [(0, HOUR * 11), (HOUR * 11, HOUR * 12), (HOUR * 12 + 10, HOUR * 12 + 10)]:
            partials = [(at, d) for at, d in BEFORE + AFTER if at >= since]
            summaries = await store.difficulty_summaries(since=since, window_start=window)
            assert summaries[farmer.launcher_id] == summarize(partials, 8, window)
    finally:
        await store.close()
