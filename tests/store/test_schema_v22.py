"""The step to schema version 22 on both backends: the ledger's sums of the payments become running totals, seeded
from the payments recorded before the step and added to by each round after it, so that the books of a pool that
upgrades read what its payments table sums to."""

from __future__ import annotations

from pathlib import Path

import pytest

from pool.store import postgres_schema, sqlite_schema
from pool.store.abstract import AbstractPoolStore
from pool.store.sql import SqlPoolStore
from tests.store.test_schema_v19 import store_of
from tests.store.test_schema_v24 import rounds_as_before_step_24
from tests.store.test_store_contract import add_farmers, farmer_payment, fee_payment, fund, make_round


async def payment_sums(store: AbstractPoolStore) -> tuple[int, int]:
    """The payments table's own sums (farmers', the fee address's), read row by row."""
    assert isinstance(store, SqlPoolStore)
    row = await store._reads().fetchone(
        "SELECT (SELECT COALESCE(SUM(amount), 0) FROM payments WHERE launcher_id IS NOT NULL) AS farmers, "
        "(SELECT COALESCE(SUM(amount), 0) FROM payments WHERE launcher_id IS NULL) AS fee_address"
    )
    assert row is not None
    return int(row["farmers"]), int(row["fee_address"])


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
async def test_the_payments_of_before_the_step_are_in_the_books(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> None:
    steps = sqlite_schema.MIGRATIONS.index(sqlite_schema._SCHEMA_V22_PAYMENT_TOTALS)
    assert steps == postgres_schema.MIGRATIONS.index(postgres_schema._SCHEMA_V22_PAYMENT_TOTALS)
    old = store_of(backend, tmp_path, request, steps=steps)
    await old.open()
    one, two = await add_farmers(old, 100, 50)
    await fund(old, [(one, 600), (two, 300)], pool_fee=12)
    payments = [farmer_payment(one, 600, 0), farmer_payment(two, 300, 1), fee_payment(10, 1)]
    with rounds_as_before_step_24(monkeypatch):
        await old.create_payout_round(make_round(farmer_total=900, pool_fee=10, batch_fees=[1, 1]), payments, [1, 1])
    await old.close()

    store = store_of(backend, tmp_path, request, steps=None)
    await store.open()
    try:
        books = await store.ledger()
        assert (books.farmer_payments, books.pool_fee_payments) == await payment_sums(store) == (900, 10)
        assert books.balanced
        # A round after the step adds to the totals (the first round must be closed before another opens).
        assert isinstance(store, SqlPoolStore)
        async with store._write() as tx:
            await tx.execute("UPDATE payout_rounds SET status = 'done'")
        await fund(store, [(one, 70), (two, 30)], pool_fee=5)
        more = [farmer_payment(one, 70, 0), farmer_payment(two, 30, 0), fee_payment(4, 0)]
        await store.create_payout_round(make_round(farmer_total=100, pool_fee=4, batch_fees=[1]), more, [1])
        books = await store.ledger()
        assert (books.farmer_payments, books.pool_fee_payments) == await payment_sums(store) == (1000, 14)
        assert books.balanced
    finally:
        await store.close()
