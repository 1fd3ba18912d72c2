"""What only the PostgreSQL store has to show: several processes on one database.

Each ``PostgresPoolStore`` below has its own connection pool, exactly as two pool processes (or two machines) sharing
one database would; their calls are run concurrently against the real server. The contract suite
(test_store_contract.py) covers everything else on both backends.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from typing import Any

import asyncpg
import pytest

from pool.devnet.postgres import PostgresServer
from pool.store import sql as sql_module
from pool.store.abstract import InsufficientFunds, RoundAlreadyOpen
from pool.store.models import BatchStatus, ClaimStatus, DistributionShare, RoundStatus
from pool.store.postgres import PostgresPoolStore
from pool.store.postgres_schema import MIGRATIONS
from tests.store.test_store_contract import (
    add_farmers,
    credit,
    distribution,
    farmer_payment,
    fund,
    h,
    make_claim,
    make_farmer,
    make_partial,
    make_round,
    owed_of,
    points_of,
)

PROCESSES = 4


@pytest.fixture
def dsn(postgres_server: PostgresServer, request: pytest.FixtureRequest) -> Iterator[str]:
    name = f"pool_pg_{abs(hash(request.node.nodeid))}"
    yield postgres_server.create_database(name)
    postgres_server.drop_database(name)


@pytest.fixture
def migrated_dsn(
    postgres_server: PostgresServer, postgres_schema: str, request: pytest.FixtureRequest
) -> Iterator[str]:
    """A database with the schema in place (a copy of the session's ``postgres_schema``)."""
    name = f"pool_pg_migrated_{abs(hash(request.node.nodeid))}"
    yield postgres_server.create_database(name, template=postgres_schema)
    postgres_server.drop_database(name)


@pytest.fixture
async def stores(migrated_dsn: str) -> AsyncIterator[list[PostgresPoolStore]]:
    """PROCESSES stores on one database, each with its own connections (like separate pool processes)."""
    opened = [PostgresPoolStore(migrated_dsn, max_connections=3) for _ in range(PROCESSES)]
    for store in opened:
        await store.open()
    try:
        yield opened
    finally:
        for store in opened:
            await store.close()


async def test_processes_opening_a_new_database_together_migrate_it_once(dsn: str) -> None:
    together = [PostgresPoolStore(dsn, max_connections=2) for _ in range(PROCESSES)]
    await asyncio.gather(*(store.open() for store in together))
    try:
        assert [await store.schema_version() for store in together] == [len(MIGRATIONS)] * PROCESSES
        assert (await together[0].ledger()).balanced
    finally:
        for store in together:
            await store.close()


async def test_a_partial_confirmed_by_every_process_is_credited_once(stores: list[PostgresPoolStore]) -> None:
    farmer = make_farmer(1, difficulty=25)
    await stores[0].add_farmer(farmer)
    for proof in range(10):
        partial_id = await stores[0].add_partial(make_partial(farmer, proof, 100 + proof))
        assert partial_id is not None
        results = await asyncio.gather(*(store.confirm_partial(partial_id) for store in stores for _ in range(3)))
        assert results.count(True) == 1
    assert await points_of(stores[0], farmer) == 10 * 25


async def test_one_proof_sent_to_every_process_gets_one_id(stores: list[PostgresPoolStore]) -> None:
    farmer = make_farmer(1)
    await stores[0].add_farmer(farmer)
    for proof in range(10):
        ids = await asyncio.gather(*(store.add_partial(make_partial(farmer, proof, 100)) for store in stores))
        assert len([i for i in ids if i is not None]) == 1


async def test_a_coin_claimed_by_every_process_is_claimed_once_and_credited_once(
    stores: list[PostgresPoolStore],
) -> None:
    (farmer,) = await add_farmers(stores[0], 0)
    await fund(stores[0], [(farmer, 10)], pool_fee=1_000)  # a pool fee share to pay claim fees from
    for coin in ("a", "b", "c"):
        added = await asyncio.gather(*(s.add_reward_claim(make_claim(coin, farmer, fee=7)) for s in stores))
        assert added.count(True) == 1
        settled = await asyncio.gather(
            *(s.update_reward_claim(h(coin), ClaimStatus.CONFIRMED, confirmed_height=9) for s in stores),
            return_exceptions=True,
        )
        assert [r for r in settled if r is None] == [None]  # one settles it, the others are refused
    ledger = await stores[1].ledger()
    assert ledger.balanced
    assert ledger.undistributed == 3 * 1_750
    assert ledger.pool_fee_share == 1_000 - 3 * 7


async def test_the_same_money_distributed_by_every_process_is_distributed_once(
    stores: list[PostgresPoolStore],
) -> None:
    farmers = await add_farmers(stores[0], 100, 100)
    await credit(stores[0], farmers[0], "coin", 1_000)
    shares = [DistributionShare(farmer.launcher_id, 450, points=100) for farmer in farmers]
    results = await asyncio.gather(
        *(store.distribute(distribution(900, pool_fee=100), shares) for store in stores), return_exceptions=True
    )
    assert len([r for r in results if isinstance(r, int)]) == 1
    assert all(isinstance(r, InsufficientFunds) for r in results if not isinstance(r, int))
    assert [await owed_of(stores[2], farmer) for farmer in farmers] == [450, 450]
    assert [await points_of(stores[2], farmer) for farmer in farmers] == [0, 0]
    assert (await stores[3].ledger()).balanced


async def test_every_process_opening_a_round_opens_one_and_pays_the_owed_balance_once(
    stores: list[PostgresPoolStore],
) -> None:
    farmers = await add_farmers(stores[0], 0, 0)
    await fund(stores[0], [(farmers[0], 600), (farmers[1], 400)], pool_fee=50)
    payments = [farmer_payment(farmers[0], 600), farmer_payment(farmers[1], 400)]
    results = await asyncio.gather(
        *(store.create_payout_round(make_round(1_000, 0, [5]), payments, [5]) for store in stores),
        return_exceptions=True,
    )
    round_ids = [r for r in results if isinstance(r, int)]
    assert len(round_ids) == 1
    assert all(isinstance(r, RoundAlreadyOpen | InsufficientFunds) for r in results if not isinstance(r, int))
    assert [await owed_of(stores[1], farmer) for farmer in farmers] == [0, 0]
    assert len(await stores[1].rounds()) == 1
    ledger = await stores[1].ledger()
    assert ledger.balanced and ledger.pool_fee_share == 45


async def test_the_last_batches_confirmed_by_two_processes_at_once_close_the_round(
    stores: list[PostgresPoolStore],
) -> None:
    farmers = await add_farmers(stores[0], 0, 0, 0, 0)
    await fund(stores[0], [(farmer, 100) for farmer in farmers])
    payments = [farmer_payment(farmer, 100, batch_index=i) for i, farmer in enumerate(farmers)]
    round_id = await stores[0].create_payout_round(make_round(400, 0, [0] * 4), payments, [0] * 4)
    batches = await stores[0].batches(round_id)
    for batch in batches:
        assert batch.id is not None
        await stores[0].mark_batch_submitted(batch.id, h(f"tx {batch.index}"), b"bundle", now=1, height=1)
    await asyncio.gather(
        *(
            store.mark_batch_confirmed(batch.id or 0, height=5, now=2)
            for store, batch in zip(stores, batches, strict=True)
        )
    )
    assert [b.status for b in await stores[0].batches(round_id)] == [BatchStatus.CONFIRMED] * 4
    payout_round = await stores[0].get_round(round_id)
    assert payout_round is not None and payout_round.status is RoundStatus.DONE
    assert await stores[0].open_round() is None


async def test_mojo_amounts_beyond_a_signed_64_bit_integer_are_exact(stores: list[PostgresPoolStore]) -> None:
    (farmer,) = await add_farmers(stores[0], 0)
    huge = 2**64 - 1  # the largest amount a coin can have
    assert await stores[0].add_reward_claim(make_claim("huge", farmer, amount=huge))
    await stores[0].update_reward_claim(h("huge"), ClaimStatus.CONFIRMED, confirmed_height=1)
    claim = await stores[1].get_reward_claim(h("huge"))
    assert claim is not None and claim.amount == huge
    ledger = await stores[1].ledger()
    assert ledger.undistributed == huge and ledger.balanced


async def test_a_v1_database_opens_its_ledger_with_what_its_claims_have_not_paid(dsn: str) -> None:
    old = PostgresPoolStore(dsn, migrations=MIGRATIONS[:1])
    await old.open()
    farmer = make_farmer(1)
    await old.add_farmer(farmer)
    await old.close()
    connection = await asyncpg.connect(dsn)
    try:
        for coin, amount, status in (("a", 1_750, "confirmed"), ("b", 1_750, "confirmed"), ("c", 900, "submitted")):
            await connection.execute(
                "INSERT INTO reward_claims (coin_id, launcher_id, amount, coin_height, status, submitted_at, "
                "submitted_height) VALUES ($1, $2, $3, 10, $4, 100, 20)",
                bytes(h(coin)),
                bytes(farmer.launcher_id),
                amount,
                status,
            )
        # One round paid before the ledger existed: 2 000 taken, 4 of it left as rounding.
        await connection.execute(
            "INSERT INTO payout_rounds (created_at, scheme, total, pool_fee, blockchain_fees, farmer_total, "
            "remainder, status) VALUES (500, 'pplns', 2000, 19, 1, 1976, 4, 'done')"
        )
    finally:
        await connection.close()

    store = PostgresPoolStore(dsn)
    await store.open()
    try:
        assert await store.schema_version() == len(MIGRATIONS)
        ledger = await store.ledger()
        assert ledger.undistributed == 3_500 - 1_996
        assert ledger.pre_ledger_excess == 0
        assert await owed_of(store, farmer) == 0
    finally:
        await store.close()


async def test_a_v6_database_starts_its_difficulty_history_with_what_is_in_force(dsn: str) -> None:
    old = PostgresPoolStore(dsn, migrations=MIGRATIONS[:6])
    await old.open()
    farmer = make_farmer(1, difficulty=10)
    await old.add_farmer(farmer)
    await old.close()
    connection = await asyncpg.connect(dsn)
    try:  # a PUT's difficulty, pending
        await connection.execute("UPDATE farmers SET pending_difficulty = 40, pending_difficulty_at = 5000")
    finally:
        await connection.close()

    store = PostgresPoolStore(dsn)
    await store.open()
    try:
        moments = (0, 4_999, 5_000)
        assert [await store.difficulty_at(farmer.launcher_id, moment) for moment in moments] == [10, 10, 40]
        record = await store.get_farmer(farmer.launcher_id)
        assert record is not None and record.difficulty_since == 0
    finally:
        await store.close()


async def test_only_the_retentions_batches_commit_without_waiting_for_the_flush(
    migrated_dsn: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A prune batch's transaction turns synchronous_commit off for itself alone (SET LOCAL): the connection it ran
    on, back in the pool, commits every other write with the flush again."""
    connection = await asyncpg.connect(migrated_dsn)
    try:  # the tests' server flushes nothing (pool.devnet.postgres); a pool's database does
        name = await connection.fetchval("SELECT current_database()")
        await connection.execute(f'ALTER DATABASE "{name}" SET synchronous_commit = on')
    finally:
        await connection.close()
    store = PostgresPoolStore(migrated_dsn, max_connections=1)  # one connection: the prune's is the next write's
    await store.open()
    try:
        farmer = make_farmer(1)
        await store.add_farmer(farmer)
        outcomes = await store.record_partials([make_partial(farmer, n, 1_000 + n) for n in range(3)])
        ids = [outcome for outcome in outcomes if isinstance(outcome, int)]
        assert len(ids) == 3 and await store.confirm_partials(ids)
        seen: list[str] = []
        add_to_hours = sql_module._add_to_hours

        async def watched(tx: sql_module.Statements, counts: Mapping[Any, Sequence[int]]) -> None:
            row = await tx.fetchone("SHOW synchronous_commit", {})
            assert row is not None
            seen.append(str(row["synchronous_commit"]))
            await add_to_hours(tx, counts)

        monkeypatch.setattr(sql_module, "_add_to_hours", watched)
        assert await store.prune_partials(2 * 3600, batch=10) == 3
        async with store._write() as tx:
            row = await tx.fetchone("SHOW synchronous_commit", {})
        assert seen == ["off"] and row is not None and row["synchronous_commit"] == "on"
    finally:
        await store.close()
