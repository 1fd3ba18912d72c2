"""The scale bench's bulk builder (``pool.bench.scale_store``) writes what the store's own path writes, on both
backends: the partials confirmed, the refusals, the farmers' points, the hourly counts the PPLNS window and the
difficulty loop read, and the indexes and triggers it set aside while building."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from pool.bench.scale_store import begin_bulk, bulk_partials, end_bulk, row_of
from pool.store.abstract import AbstractPoolStore
from pool.store.models import PartialRefusal
from pool.store.sql import SqlPoolStore
from pool.store.sqlite import SqlitePoolStore
from tests.store.conftest import StoreFactory
from tests.store.test_store_contract import make_farmer, make_partial

HOUR = 3600

_COLUMNS = {
    "partials": "launcher_id, proof_hash, sp_hash, end_of_sub_slot, harvester_id, received_at, difficulty, status, "
    "reject_reason",
    "partial_refusals": "launcher_id, received_at, reason",
    "farmers": "launcher_id, points",
    "confirmed_hours": "launcher_id, hour, n, points",
    "difficulty_hours": "launcher_id, hour, difficulty, n, first_at, last_at",
}
_SQLITE_SCHEMA = "SELECT type AS kind, name, sql FROM sqlite_master WHERE tbl_name = 'partials' ORDER BY name"
_POSTGRES_SCHEMA = (
    "SELECT 'index' AS kind, indexname AS name, indexdef AS sql FROM pg_indexes WHERE tablename = 'partials' "
    "UNION ALL SELECT 'trigger', tgname, pg_get_triggerdef(oid) FROM pg_trigger "
    "WHERE tgrelid = 'partials'::regclass AND NOT tgisinternal ORDER BY 2"
)


async def _tables(store: AbstractPoolStore) -> dict[str, list[tuple[object, ...]]]:
    """Everything the partials' writes touch, row by row in key order (ids aside: they are numbered as the rows come),
    and the partials' indexes and triggers."""
    assert isinstance(store, SqlPoolStore)
    queries = {
        table: (f"SELECT {columns} FROM {table} ORDER BY {columns}", columns) for table, columns in _COLUMNS.items()
    }
    queries["schema"] = (_SQLITE_SCHEMA if isinstance(store, SqlitePoolStore) else _POSTGRES_SCHEMA, "kind, name, sql")
    found: dict[str, list[tuple[object, ...]]] = {}
    for table, (sql, columns) in queries.items():
        names = [name.strip() for name in columns.split(",")]
        found[table] = [_plain(row[name] for name in names) for row in await store._reads().fetchall(sql)]
    return found


def _plain(values: Iterable[object]) -> tuple[object, ...]:
    return tuple(bytes(value) if isinstance(value, (memoryview, bytearray)) else value for value in values)


async def test_a_bulk_build_writes_what_the_stores_own_path_writes(store_factory: StoreFactory, tmp_path: Path) -> None:
    """Partials of two farmers over three hours, a farmer's difficulty changing within an hour, and refusals: written
    in bulk groups (indexes and SQLite's row-by-row trigger set aside, then made again) and through record_partials
    and confirm_partials, the two stores hold the same rows, points and hourly counts, and the same schema after."""
    farmers = [make_farmer(1, difficulty=8), make_farmer(2, difficulty=3)]
    moments = [HOUR * 10 + 5, HOUR * 10 + 1800, HOUR * 11 - 1, HOUR * 11, HOUR * 11 + 20, HOUR * 12 + 7]
    partials = [
        make_partial(farmer, f"{n} {at}", at, difficulty=farmer.difficulty + (at > HOUR * 11 + 10))
        for n, farmer in enumerate(farmers)
        for at in moments
    ]
    partials.sort(key=lambda p: p.received_at)
    refusals = [PartialRefusal(farmers[0].launcher_id, HOUR * 10 + 6, "TOO_LATE")]
    bulk, own = store_factory(tmp_path / "bulk"), store_factory(tmp_path / "own")
    for store in (bulk, own):
        await store.open()
    try:
        for store in (bulk, own):
            for farmer in farmers:
                await store.add_farmer(farmer)
        extras = await begin_bulk(bulk)
        assert {"partials_received", "partials_launcher_received_difficulty"} <= {name for name, _ in extras}
        if isinstance(bulk, SqlitePoolStore):
            assert "partials_difficulty_hours" in {name for name, _ in extras}
        refused = [{"launcher_id": r.launcher_id, "received_at": r.received_at, "reason": r.reason} for r in refusals]
        await bulk_partials(bulk, [row_of(p) for p in partials[:5]], refused)
        await bulk_partials(bulk, [row_of(p) for p in partials[5:]], [])
        await end_bulk(bulk, extras)
        added = await own.record_partials(partials, refusals)
        await own.confirm_partials([i for i in added if isinstance(i, int)])
        bulk_tables, own_tables = await _tables(bulk), await _tables(own)
        assert bulk_tables == own_tables
        assert len(own_tables["difficulty_hours"]) == 8  # the hour of the change counted at both difficulties
        assert len(own_tables["partials"]) == len(partials)
    finally:
        for store in (bulk, own):
            await store.close()
