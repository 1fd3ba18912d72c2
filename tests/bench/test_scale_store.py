"""The bench's bulk writer of partials writes what the store's own path would: the partials confirmed, the farmers'
points, the hourly counts the PPLNS window and the difficulty loop read, and the indexes and triggers it set aside."""

from __future__ import annotations

from pathlib import Path

from pool.bench.scale_store import (
    ScaleSize,
    about_path,
    begin_bulk,
    bulk_partials,
    cache_path,
    end_bulk,
    row_of,
)
from pool.store.models import PartialRefusal
from pool.store.sqlite import SqlitePoolStore
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


async def _tables(store: SqlitePoolStore) -> dict[str, list[tuple[object, ...]]]:
    """Everything the partials' writes touch, row by row (ids aside: SQLite numbers them as they come)."""
    queries = {
        "partials": "SELECT launcher_id, proof_hash, sp_hash, end_of_sub_slot, harvester_id, received_at, difficulty, "
        "status, reject_reason FROM partials ORDER BY proof_hash",
        "partial_refusals": "SELECT launcher_id, received_at, reason FROM partial_refusals ORDER BY 1, 2",
        "farmers": "SELECT launcher_id, points FROM farmers ORDER BY launcher_id",
        "confirmed_hours": "SELECT * FROM confirmed_hours ORDER BY launcher_id, hour",
        "difficulty_hours": "SELECT * FROM difficulty_hours ORDER BY launcher_id, hour, difficulty",
        "schema": "SELECT type, name, sql FROM sqlite_master WHERE tbl_name = 'partials' ORDER BY name",
    }
    db = store._connection()
    return {name: [tuple(row) for row in await db.execute_fetchall(sql)] for name, sql in queries.items()}


async def test_a_bulk_build_writes_what_the_stores_own_path_writes(tmp_path: Path) -> None:
    """Partials of two farmers over three hours, a farmer's difficulty changing within an hour, and refusals: written
    in bulk groups (their triggers and indexes set aside, then made again) and through record_partials and
    confirm_partials, the two stores hold the same rows, points and hourly counts, and the same schema after."""
    farmers = [make_farmer(1, difficulty=8), make_farmer(2, difficulty=3)]
    moments = [HOUR * 10 + 5, HOUR * 10 + 1800, HOUR * 11 - 1, HOUR * 11, HOUR * 11 + 20, HOUR * 12 + 7]
    partials = [
        make_partial(farmer, f"{n} {at}", at, difficulty=farmer.difficulty + (at > HOUR * 11 + 10))
        for n, farmer in enumerate(farmers)
        for at in moments
    ]
    partials.sort(key=lambda p: p.received_at)
    refusals = [PartialRefusal(farmers[0].launcher_id, HOUR * 10 + 6, "TOO_LATE")]
    stores = [SqlitePoolStore(tmp_path / f"{name}.sqlite") for name in ("bulk", "own")]
    bulk, own = stores
    for store in stores:
        await store.open()
    try:
        for store in stores:
            for farmer in farmers:
                await store.add_farmer(farmer)
        extras = await begin_bulk(bulk)
        assert {name for name, _ in extras} >= {"partials_difficulty_hours", "partials_received"}
        await bulk_partials(bulk, [row_of(p) for p in partials[:5]], [{**vars(r)} for r in refusals])
        await bulk_partials(bulk, [row_of(p) for p in partials[5:]], [])
        await end_bulk(bulk, extras)
        added = await own.record_partials(partials, refusals)
        await own.confirm_partials([i for i in added if isinstance(i, int)])
        bulk_tables, own_tables = await _tables(bulk), await _tables(own)
        assert bulk_tables == own_tables
        assert len(own_tables["difficulty_hours"]) == 8  # the hour of the change counted at both difficulties
    finally:
        for store in stores:
            await store.close()


def test_each_backends_cached_store_has_its_own_record() -> None:
    """An SQLite store and a PostgreSQL dump of the same size: what each was built with is kept apart (one file for
    both made each build put the other's cache out of date)."""
    size = ScaleSize(farmers=1000, days=1)
    sqlite, dump = (cache_path(Path("cache"), size, backend) for backend in ("sqlite", "postgresql"))
    assert about_path(sqlite) != about_path(dump)
    assert {about_path(sqlite).name, about_path(dump).name} == {
        "scale-f1000-d1-v2.sqlite.json",
        "scale-f1000-d1-v2.dump.json",
    }
