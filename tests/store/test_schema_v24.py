"""The step to schema version 24 on both backends: each payout round keeps how many farmers it pays (the pages list
rounds with it, where they counted each round's payments), seeded from the payments recorded before the step and
written with the payments of each round after it; on SQLite the farmers' pool-wide figures come from an index."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

import pytest

from pool.store import postgres_schema, sql, sqlite_schema
from pool.store.abstract import AbstractPoolStore
from pool.store.sql import SqlPoolStore
from pool.store.sqlite import SqlitePoolStore
from tests.store.test_schema_v19 import store_of
from tests.store.test_store_contract import add_farmers, farmer_payment, fee_payment, fund, make_round


@contextlib.contextmanager
def rounds_as_before_step_24(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Payout rounds recorded as the code of before step 24 did, on a schema of before it: without the count of their
    farmers, which such a schema has no column for."""
    with monkeypatch.context() as before_the_step:
        before_the_step.setattr(
            sql, "_COUNT_FARMERS_PAID", "UPDATE payout_rounds SET status = status WHERE id = :round_id"
        )
        yield


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
async def test_the_rounds_of_before_the_step_count_their_farmers(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> None:
    steps = sqlite_schema.MIGRATIONS.index(sqlite_schema._SCHEMA_V24_ROUND_FARMERS)
    assert steps == postgres_schema.MIGRATIONS.index(postgres_schema._SCHEMA_V24_ROUND_FARMERS)
    old = store_of(backend, tmp_path, request, steps=steps)
    await old.open()
    with rounds_as_before_step_24(monkeypatch):
        first = await _round_before_the_step(old)
    await old.close()

    store = store_of(backend, tmp_path, request, steps=None)
    await store.open()
    try:
        assert [(s.round.id, s.farmers_paid) for s in await store.round_summaries(limit=10)] == [(first, 2)]
        # A round after the step counts its own (the first round must be closed before another opens).
        assert isinstance(store, SqlPoolStore)
        async with store._write() as tx:
            await tx.execute("UPDATE payout_rounds SET status = 'done'")
        one, two, three = await store.list_farmers()
        await fund(store, [(one, 70), (two, 20), (three, 10)], pool_fee=5)
        more = [farmer_payment(one, 70), farmer_payment(two, 20), farmer_payment(three, 10), fee_payment(4)]
        second = await store.create_payout_round(make_round(farmer_total=100, pool_fee=4, batch_fees=[1]), more, [1])
        summaries = await store.round_summaries(limit=10)
        assert [(s.round.id, s.farmers_paid) for s in summaries] == [(second, 3), (first, 2)]
        assert (await store.ledger()).balanced
    finally:
        await store.close()


async def _round_before_the_step(store: AbstractPoolStore) -> int:
    """Three farmers, a round that pays two of them (one in two batches) and the fee address."""
    one, two, _ = await add_farmers(store, 100, 50, 25)
    await fund(store, [(one, 600), (two, 300)], pool_fee=12)
    payments = [farmer_payment(one, 400, 0), farmer_payment(one, 200, 1), farmer_payment(two, 300, 1), fee_payment(10)]
    return await store.create_payout_round(
        make_round(farmer_total=900, pool_fee=10, batch_fees=[1, 1]), payments, [1, 1]
    )


async def test_sqlite_sums_the_farmers_figures_from_their_index(tmp_path: Path) -> None:
    """The farmer page's pool points, /metrics' members and points, the public page's and the books' owed: each read
    from the index that holds them, never from every farmer's whole row."""
    store = SqlitePoolStore(tmp_path / "pool.sqlite")
    await store.open()
    try:
        await add_farmers(store, 100, 50)
        sums = (
            "SELECT COALESCE(SUM(points), 0) FROM farmers",
            "SELECT is_pool_member, COUNT(*), COALESCE(SUM(points), 0) FROM farmers GROUP BY is_pool_member",
            "SELECT COUNT(*) FROM farmers WHERE is_pool_member",
            "SELECT COALESCE(SUM(owed), 0) FROM farmers",
        )
        for sql in sums:
            plan = await store._reads().fetchall(f"EXPLAIN QUERY PLAN {sql}")
            assert [row["detail"] for row in plan] == ["SCAN farmers USING COVERING INDEX farmers_figures"], sql
        assert await store.total_points() == 150
    finally:
        await store.close()
