"""The pool's partial counts kept between makings of the pages' figures (page_data.PoolPartials) are what the store
counts afresh, as time moves on and partials come in, are confirmed or rejected."""

from __future__ import annotations

from pathlib import Path

from pool.http.page_data import DAY, SETTLED_AFTER, PoolPartials
from pool.store.sqlite import SqlitePoolStore
from tests.store.test_store_contract import make_farmer, make_partial

START = 3600 * 24 * 1000 + 1234  # not a whole hour: the day's window cuts its first hour


async def test_kept_counts_are_the_stores_as_time_moves_on(tmp_path: Path) -> None:
    store = SqlitePoolStore(tmp_path / "pool.sqlite")
    await store.open()
    try:
        await kept_counts_follow_the_store(store)
    finally:
        await store.close()


async def kept_counts_follow_the_store(store: SqlitePoolStore) -> None:
    farmers = [make_farmer(1, difficulty=3), make_farmer(2, difficulty=5)]
    for farmer in farmers:
        await store.add_farmer(farmer)
    kept = PoolPartials()
    pending: list[int] = []
    number = 0
    # Two days and a half, a step at a time: partials every ten minutes, some confirmed, some rejected, a refusal.
    for step in range(0, 5 * DAY // 2, 1800):
        now = START + step
        for offset in (0, 600, 1200):
            farmer = farmers[number % 2]
            found = await store.add_partial(make_partial(farmer, number, now + offset - 1800))
            assert found is not None
            pending.append(found)
            number += 1
        await store.add_partial_refusal(farmers[0].launcher_id, now - 5, "TOO_LATE")
        if len(pending) > 4:  # the oldest are settled a while after they came, as the confirmation loop does
            await store.confirm_partial(pending.pop(0))
            await store.reject_partial(pending.pop(0), "singleton left the pool")
        since = now - DAY
        assert await kept.day_counts(store, now) == await store.partial_counts(since), step
        round_began = START + (step // (6 * 3600)) * 6 * 3600 + 17  # a round of six hours, then another
        assert await kept.accepted_points(store, round_began, now) == await store.accepted_points(round_began), step
        for began, ended in ((round_began - 6 * 3600, round_began), (now - 3600, now - 60)):
            assert await kept.round_points(store, began, ended, now) == await store.accepted_points(began, ended)
    assert number > 3 * DAY // 1800 and SETTLED_AFTER < 1800
