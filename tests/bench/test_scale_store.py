"""The bench's bulk writer of partials keeps the hourly counts the PPLNS window reads (tests/store/test_bulk_build.py
checks, on both backends, that it writes what the store's own path writes), and each backend's cached store has its
own record."""

from __future__ import annotations

import json
from pathlib import Path

from pool.bench.scale_store import (
    PARTIALS_PER_DAY,
    REWARD,
    REWARDS_PER_DAY,
    ScaleSize,
    ScaleStores,
    about_path,
    begin_bulk,
    build_store,
    bulk_partials,
    cache_path,
    difficulty_of,
    end_bulk,
    row_of,
    schema_fingerprint,
    steps_behind,
)
from pool.chia_adapter import bytes32
from pool.config import DAY_SECONDS
from pool.store.sqlite import MIGRATIONS, SqlitePoolStore
from tests.store.test_store_contract import confirmed_points_row_by_row, make_farmer, make_partial

HOUR = 3600


async def test_bulk_partials_keep_the_pplns_windows_hourly_counts(tmp_path: Path) -> None:
    store = SqlitePoolStore(tmp_path / "pool.sqlite")
    await store.open()
    try:
        farmers = [make_farmer(1, difficulty=8), make_farmer(2, difficulty=3)]
        for farmer in farmers:
            await store.add_farmer(farmer)
        moments = [HOUR * 10 + 5, HOUR * 10 + 1800, HOUR * 11 - 1, HOUR * 11, HOUR * 12 + 7]
        partials = [make_partial(farmer, f"{n} {at}", at) for n, farmer in enumerate(farmers) for at in moments]
        extras = await begin_bulk(store)
        await bulk_partials(store, [row_of(p) for p in partials[:4]], [])
        await bulk_partials(store, [row_of(p) for p in partials[4:]], [])
        await end_bulk(store, extras)
        for since in (0, HOUR * 10 + 6, HOUR * 10 + 3000, HOUR * 11, HOUR * 12 + 8):
            expected = await confirmed_points_row_by_row(store, farmers, since)
            assert await store.confirmed_points_since(since) == expected, since
        assert await store.confirmed_points_since(0) == {farmers[0].launcher_id: 40, farmers[1].launcher_id: 15}
    finally:
        await store.close()


def test_each_backends_cached_store_has_its_own_record() -> None:
    """An SQLite store and a PostgreSQL dump of the same size: what each was built with is kept apart (one file for
    both made each build put the other's cache out of date)."""
    size = ScaleSize(farmers=1000, days=1)
    sqlite, dump = (cache_path(Path("cache"), size, backend) for backend in ("sqlite", "postgresql"))
    assert about_path(sqlite) != about_path(dump)
    assert {about_path(sqlite).name, about_path(dump).name} == {
        "scale-f1000-d1-v4.sqlite.json",
        "scale-f1000-d1-v4.dump.json",
    }


async def test_a_cached_store_of_older_steps_is_migrated_not_built_again(tmp_path: Path) -> None:
    """A store cached before the pool's newest schema step is migrated by it in the cache (as an operator's store is
    at an upgrade), its history kept; one of steps the pool never had is not used."""
    size = ScaleSize(farmers=3, days=1)
    stores = ScaleStores(tmp_path, "sqlite")
    path = stores.cached(size)
    older = SqlitePoolStore(path, migrations=MIGRATIONS[:-1])
    await older.open()
    farmer = make_farmer(7)
    await older.add_farmer(farmer)
    await older.close()
    end = 1_800_000_000
    about_path(path).write_text(
        json.dumps({"end": end, "build_seconds": 1, "schema": schema_fingerprint("sqlite", -1)})
    )
    assert steps_behind("sqlite", schema_fingerprint("sqlite", -1)) == 1
    assert steps_behind("sqlite", "another branch's") is None
    shown: list[str] = []

    assert await stores.ensure(size, bytes32(b"\x01" * 32), rebuild=False, progress=shown.append) == end
    assert any("migrating the cached store" in line for line in shown)
    assert not any("building" in line for line in shown)
    assert json.loads(about_path(path).read_text())["schema"] == schema_fingerprint("sqlite")
    assert not path.with_name(path.name + "-wal").exists() or path.with_name(path.name + "-wal").stat().st_size == 0
    migrated = SqlitePoolStore(path)
    await migrated.open()
    try:
        assert await migrated.schema_version() == len(MIGRATIONS)
        assert await migrated.get_farmer(farmer.launcher_id) == farmer
    finally:
        await migrated.close()


async def test_a_built_stores_farmers_hold_the_points_since_its_last_distribution(tmp_path: Path) -> None:
    """The history's last rewards are shared out at its last day's middle: every farmer keeps the points of the
    partials after it, so that the measured pool's distribution of the reward left undistributed is over every
    farmer, as a running pool's is."""
    size = ScaleSize(farmers=REWARDS_PER_DAY + 1, days=2)  # a reward's claimant is a farmer of the store
    end = 1_800_000_000
    store = SqlitePoolStore(tmp_path / "pool.sqlite")
    await store.open()
    try:
        await build_store(store, size, bytes32(b"\x07" * 32), end, lambda _: None)
        (last,) = await store.distributions(limit=1)
        assert last.created_at == end - DAY_SECONDS // 2
        assert (await store.ledger()).undistributed >= REWARD  # the one left for the measured pool (and remainders)
        since_last = await store.confirmed_points_since(last.created_at)
        points = await store.farmer_points()
        assert len(points) == size.farmers and all(p > 0 for p in points.values())
        assert points == since_last
        # Half a day of each farmer's partials (the slots from the day's middle on), at its difficulty.
        assert all(p == PARTIALS_PER_DAY // 2 * difficulty_of(n) for n, p in enumerate(points.values()))
    finally:
        await store.close()
