"""The step to schema version 20 on both backends: the hourly counts of confirmed points the PPLNS window reads are
made from the partials a pool confirmed before the step, and confirmations and prunes after it keep them, so that
the window of a pool that upgrades is that of its partials."""

from __future__ import annotations

from pathlib import Path

import pytest

from pool.store import postgres_schema, sqlite_schema
from pool.store.sql import SqlPoolStore
from tests.store.test_schema_v19 import store_of
from tests.store.test_store_contract import make_farmer, make_partial

HOUR = 3600
# (farmer, received_at, difficulty, confirmed before the step)
PARTIALS: list[tuple[int, int, int, bool | None]] = [
    (0, HOUR * 10 + 5, 8, True),
    (0, HOUR * 10 + 7, 8, True),
    (1, HOUR * 10 + 9, 3, True),
    (0, HOUR * 11 - 1, 4, True),
    (0, HOUR * 11, 16, True),
    (1, HOUR * 11 + 30, 3, False),  # rejected
    (1, HOUR * 12 + 10, 3, True),
    (0, HOUR * 12 + 20, 8, None),  # still pending at the step, confirmed after it
]


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
async def test_the_partials_confirmed_before_the_step_are_counted_in_their_hours(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    steps = sqlite_schema.MIGRATIONS.index(sqlite_schema._SCHEMA_V20_CONFIRMED_HOURS)
    assert steps == postgres_schema.MIGRATIONS.index(postgres_schema._SCHEMA_V20_CONFIRMED_HOURS)
    farmers = [make_farmer(1, difficulty=8), make_farmer(2, difficulty=3)]
    old = store_of(backend, tmp_path, request, steps=steps)
    assert isinstance(old, SqlPoolStore)
    await old.open()
    for record in farmers:
        await old.add_farmer(record)
    ids = []
    for n, (farmer, at, difficulty, _) in enumerate(PARTIALS):
        ids.append(await old.add_partial(make_partial(farmers[farmer], f"partial {n}", at, difficulty)))
    async with old._write() as tx:  # what the store confirmed and rejected before the step (no hourly counts)
        for partial_id, (_, _, _, confirmed) in zip(ids, PARTIALS, strict=True):
            if confirmed is not None:
                status = "confirmed" if confirmed else "rejected"
                await tx.execute(f"UPDATE partials SET status = '{status}' WHERE id = :id", {"id": partial_id})
    await old.close()

    store = store_of(backend, tmp_path, request, steps=None)
    await store.open()
    try:

        async def window_is_the_partials(since: int, counted: set[bool | None]) -> None:
            expected: dict[int, int] = {}
            for farmer, at, difficulty, confirmed in PARTIALS:
                if confirmed in counted and at >= since:
                    expected[farmer] = expected.get(farmer, 0) + difficulty
            points = await store.confirmed_points_since(since)
            assert points == {farmers[farmer].launcher_id: p for farmer, p in expected.items()}, since

        for since in (0, HOUR * 10, HOUR * 10 + 6, HOUR * 11 - 1, HOUR * 11, HOUR * 11 + 1, HOUR * 12 + 11):
            await window_is_the_partials(since, {True})
        # A settled round's points from those counts (by hour: step 21) are the partials', whole hours and part ones.
        for since, until in ((HOUR * 10, HOUR * 12), (HOUR * 10 + 6, HOUR * 12 + 11), (0, HOUR * 11 + 1)):
            assert await store.settled_points(since, until) == await store.accepted_points(since, until), since
            # ... and its counts per hour and outcome (from the counts' index with the count: step 23).
            assert await store.settled_counts(since, until) == await store.partial_counts(since, until=until), since
        assert await store.settled_points(HOUR * 10, HOUR * 12) == 8 + 8 + 3 + 4 + 16
        pending = ids[-1]
        assert pending is not None and await store.confirm_partials([pending]) == [pending]
        for since in (0, HOUR * 12, HOUR * 12 + 15, HOUR * 12 + 20, HOUR * 12 + 21):
            await window_is_the_partials(since, {True, None})
        # Pruning the hours of before the step takes their counts away with the partials.
        while await store.prune_partials(HOUR * 11 + 1800, batch=2):
            pass
        await window_is_the_partials(HOUR * 11, {True, None})
        assert await store.confirmed_points_since(0) == await store.confirmed_points_since(HOUR * 11)
    finally:
        await store.close()
