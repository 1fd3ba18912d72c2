"""The step to schema version 5 on both backends: a pool running before it, with transactions in flight, moves on.

The database is written as the code before the step left it (raw rows, the old rules: a FAILED claim's fee was given
back when it failed); the step must keep the books as they read, give FAILED claims no fee, record each batch's
transaction as its first version, and reserve the coins of what may still land.
"""

from __future__ import annotations

import re
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from chia_rs import G2Element, Program

from pool.chia_adapter import Coin, CoinSpend, SpendBundle, bytes32, uint64
from pool.devnet.postgres import PostgresServer
from pool.store import postgres, sqlite
from pool.store.abstract import AbstractPoolStore
from pool.store.models import ClaimStatus, batch_holder, claim_holder
from tests.store.test_store_contract import h, make_farmer

V4 = 4


def bundle(label: str, coins: int) -> tuple[bytes, list[bytes32]]:
    """A signed transaction's bytes as the pool stores them, and the coins it spends."""
    spent = [Coin(h(f"{label} parent {n}"), h(f"{label} puzzle"), uint64(1_000 + n)) for n in range(coins)]
    spends = [CoinSpend(coin, Program.to(1), Program.to([])) for coin in spent]
    return bytes(SpendBundle(spends, G2Element())), [coin.name() for coin in spent]


@dataclass
class V4Pool:
    """A v4 pool's rows: one confirmed reward of 100 shared out (40 to the pool, 60 to the farmer) and paid in a
    round whose batch is in flight; a claim in flight with a fee of 3 (its fee spend's coins still out there); a
    claim that failed with a fee of 5 (given back then)."""

    fee_spend: tuple[bytes, list[bytes32]]
    failed_fee_spend: tuple[bytes, list[bytes32]]
    payout: tuple[bytes, list[bytes32]]

    def statements(self) -> list[tuple[str, tuple[Any, ...]]]:
        farmer = make_farmer(1)
        launcher = bytes(farmer.launcher_id)
        claim = (
            "INSERT INTO reward_claims (coin_id, launcher_id, amount, coin_height, spend_bundle_name, status, "
            "submitted_at, submitted_height, fee, fee_spend_bundle) VALUES (?, ?, ?, 10, ?, ?, 100, 20, ?, ?)"
        )
        return [
            (claim, (bytes(h("confirmed")), launcher, 100, bytes(h("b1")), "confirmed", 0, None)),
            (claim, (bytes(h("in flight")), launcher, 1_750, bytes(h("b2")), "submitted", 3, self.fee_spend[0])),
            (claim, (bytes(h("failed")), launcher, 1_750, bytes(h("b3")), "failed", 5, self.failed_fee_spend[0])),
            ("UPDATE ledger_accounts SET balance = ? WHERE name = 'pool_fee_share'", (40 - 3,)),
            (
                "INSERT INTO payout_rounds (id, created_at, scheme, total, pool_fee, blockchain_fees, farmer_total, "
                "remainder, status) VALUES (1, 500, 'pplns', 60, 0, 0, 60, 0, 'open')",
                (),
            ),
            (
                "INSERT INTO payment_batches (id, round_id, batch_index, fee, status, tx_id, spend_bundle, updated_at, "
                "submitted_height) VALUES (1, 1, 0, 0, 'submitted', ?, ?, 600, 30)",
                (bytes(h("tx")), self.payout[0]),
            ),
            (
                "INSERT INTO payments (round_id, batch_index, puzzle_hash, amount, launcher_id, points) "
                "VALUES (1, 0, ?, 60, ?, 0)",
                (bytes(farmer.payout_puzzle_hash), launcher),
            ),
        ]


@pytest.fixture
def v4_pool() -> V4Pool:
    return V4Pool(bundle("fee", 1), bundle("failed fee", 1), bundle("payout", 2))


async def old_and_new(backend: str, tmp_path: Path, request: pytest.FixtureRequest, pool: V4Pool) -> AbstractPoolStore:
    """The v4 database with the pool's rows, and the store of this code on it (not yet opened)."""
    if backend == "sqlite":
        path = tmp_path / "pool.sqlite"
        old: AbstractPoolStore = sqlite.SqlitePoolStore(path, migrations=sqlite.MIGRATIONS[:V4])
        await old.open()
        await old.add_farmer(make_farmer(1))
        await old.close()
        with sqlite3.connect(path) as raw:
            for sql, params in pool.statements():
                raw.execute(sql, params)
        raw.close()
        return sqlite.SqlitePoolStore(path)
    server: PostgresServer = request.getfixturevalue("postgres_server")
    name = f"pool_v5_{abs(hash(request.node.nodeid))}"
    dsn = server.create_database(name)
    request.addfinalizer(lambda: server.drop_database(name))
    old = postgres.PostgresPoolStore(dsn, migrations=postgres.MIGRATIONS[:V4])
    await old.open()
    await old.add_farmer(make_farmer(1))
    await old.close()
    connection = await asyncpg.connect(dsn)
    try:
        for sql, params in pool.statements():
            await connection.execute(dollar_parameters(sql), *params)
    finally:
        await connection.close()
    return postgres.PostgresPoolStore(dsn)


def dollar_parameters(sql: str) -> str:
    """``?`` placeholders numbered as asyncpg wants them (``$1``, ``$2`` ...)."""
    numbers = iter(range(1, sql.count("?") + 1))
    return re.sub(r"\?", lambda _: f"${next(numbers)}", sql)


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
async def test_a_v4_pool_moves_on_with_its_transactions_in_flight(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest, v4_pool: V4Pool
) -> None:
    store = await old_and_new(backend, tmp_path, request, v4_pool)
    await store.open()
    try:
        assert await store.schema_version() > V4
        ledger = await store.ledger()
        # The books read as before: 100 = 60 paid (in flight) + 37 fee share + 3 claim fee.
        assert (ledger.confirmed_claims, ledger.farmer_payments_in_flight, ledger.pool_fee_share) == (100, 60, 37)
        assert (ledger.blockchain_fees, ledger.lost_rewards) == (3, 0)
        assert ledger.balanced
        claims = {claim.coin_id: claim for claim in await store.reward_claims()}
        in_flight, failed = claims[h("in flight")], claims[h("failed")]
        assert (in_flight.status, in_flight.fee, in_flight.fee_settled) == (ClaimStatus.SUBMITTED, 3, False)
        assert (failed.status, failed.fee, failed.fee_settled) == (ClaimStatus.FAILED, 0, True)
        (version,) = await store.batch_versions(1)
        assert (version.version, version.tx_id, version.spend_bundle, version.fee, version.height) == (
            1,
            h("tx"),
            v4_pool.payout[0],
            0,
            30,
        )
        # What may still land holds its coins; the failed claim's fee, given back long ago, holds none.
        expected = {coin: claim_holder(h("in flight")) for coin in v4_pool.fee_spend[1]}
        expected |= {coin: batch_holder(1) for coin in v4_pool.payout[1]}
        assert await store.reserved_coins() == expected
        assert await store.leader_epoch() == 0
        # The fee spend that may still land is its claim's first fee version (the step to version 9).
        (fee_version,) = await store.claim_fee_versions(h("in flight"))
        assert (fee_version.version, fee_version.spend_bundle, fee_version.fee, fee_version.settled) == (
            1,
            v4_pool.fee_spend[0],
            3,
            False,
        )
        assert await store.claim_fee_versions(h("failed")) == []

        # It goes on: the fee spend is seen to have landed, the batch lands.
        await store.settle_claim_fee(h("in flight"), landed=True)
        await store.mark_batch_confirmed(1, height=40, now=700, fee_paid=0)
        assert await store.reserved_coins() == {}
        assert [v.settled for v in await store.claim_fee_versions(h("in flight"))] == [True]
        assert await store.open_round() is None and (await store.ledger()).balanced
    finally:
        await store.close()
