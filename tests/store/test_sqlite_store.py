"""What only the SQLite backend has: its pragmas, its schema versions and migrations, and the factory."""

from __future__ import annotations

import asyncio
import os
import sqlite3
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, cast

import pytest
from chia_rs import Program

from pool.chia_adapter import (
    AugSchemeMPL,
    Coin,
    CoinSpend,
    PoolSingletonState,
    PoolState,
    bytes32,
    std_hash,
    uint8,
    uint32,
    uint64,
)
from pool.config import StoreConfig
from pool.store import sql as sql_module
from pool.store import sqlite as sqlite_module
from pool.store.abstract import BACKGROUND_READS, StoreError
from pool.store.factory import create_store
from pool.store.models import ClaimStatus, FarmerRecord
from pool.store.sqlite import WRITER_CACHE_KIB, SchemaTooNew, SqlitePoolStore
from pool.store.sqlite_schema import _SCHEMA_V14_BOUNDED_READS, MIGRATIONS
from tests.store import test_store_contract as contract


def make_farmer() -> FarmerRecord:
    key = AugSchemeMPL.key_gen(bytes([7]) * 32).get_g1()
    return FarmerRecord(
        launcher_id=std_hash(b"launcher"),
        p2_singleton_puzzle_hash=std_hash(b"p2"),
        delay_time=604800,
        delay_puzzle_hash=std_hash(b"delay"),
        authentication_public_key=key,
        singleton_tip=CoinSpend(Coin(std_hash(b"parent"), std_hash(b"ph"), uint64(1)), Program.to(1), Program.to(0)),
        singleton_tip_state=PoolState(
            uint8(1), uint8(PoolSingletonState.FARMING_TO_POOL.value), std_hash(b"pool"), key, "https://x", uint32(10)
        ),
        difficulty=10,
        payout_instructions="ab" * 32,
        payout_puzzle_hash=bytes32(bytes.fromhex("ab" * 32)),
        is_pool_member=True,
        points=42,
        joined_at=1_000,
    )


def stored_version(path: Path) -> int:
    with sqlite3.connect(path) as raw:
        (version,) = raw.execute("SELECT version FROM schema_version").fetchone()
    raw.close()
    return int(version)


async def test_connection_is_durable_and_checks_foreign_keys(tmp_path: Path) -> None:
    store = SqlitePoolStore(tmp_path / "pool.sqlite")
    await store.open()
    try:
        db = store._connection()
        settings = {}
        for pragma in ("journal_mode", "synchronous", "foreign_keys", "wal_autocheckpoint", "cache_size"):
            async with db.execute(f"PRAGMA {pragma}") as cursor:
                row = await cursor.fetchone()
                assert row is not None
                settings[pragma] = row[0]
        # synchronous 2 = FULL; no checkpoint inside the writer's commits (the checkpointer's job); a page cache that
        # holds the leaves a large pool's inserts touch (negative: in KiB)
        assert settings == {
            "journal_mode": "wal",
            "synchronous": 2,
            "foreign_keys": 1,
            "wal_autocheckpoint": 0,
            "cache_size": -WRITER_CACHE_KIB,
        }
    finally:
        await store.close()


def size_of(path: Path) -> int:
    return path.stat().st_size


async def test_commits_never_checkpoint_the_checkpointer_does(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The write-ahead log grows past SQLite's 1 000-page checkpoint mark while the checkpointer is held: no commit
    copied it into the database file meanwhile; once the checkpointer runs, the file holds the pages."""
    monkeypatch.setattr(sqlite_module, "CHECKPOINT_EVERY", 0.0)
    path = tmp_path / "pool.sqlite"
    store = SqlitePoolStore(path)
    await store.open()
    release = threading.Event()
    try:
        checkpointer = store._checkpointer
        assert checkpointer is not None
        await checkpointer._connection.create_function("held", 0, lambda: release.wait(timeout=30))
        held = asyncio.create_task(checkpointer._connection.execute("SELECT held()"))  # its thread is busy
        async with store._write() as tx:
            await tx.execute("CREATE TABLE scratch (b BLOB)")
        file_before = size_of(path)
        for _ in range(10):
            async with store._write() as tx:
                await tx.execute("INSERT INTO scratch VALUES (randomblob(1000000))")  # some 250 pages
        page_size = 4096
        assert size_of(path.with_name(path.name + "-wal")) > 2_000 * page_size
        assert size_of(path) == file_before  # no commit checkpointed
        release.set()
        await held
        await checkpointer.wait()
        assert size_of(path) > file_before + 9_000_000  # the checkpointer copied the log's pages
    finally:
        release.set()
        await store.close()


class _OvertakenCheckpoints:
    """The checkpointer's connection, where each checkpoint the pool's writes were not held for stops short, as
    under steady writes: pages are written meanwhile, beyond what a read still in progress lets it copy."""

    def __init__(self, connection: Any, store: SqlitePoolStore, path: Path) -> None:
        self._connection = connection
        self._store = store
        self._reader = sqlite3.connect(path, isolation_level=None)
        self._other_writer = sqlite3.connect(path, isolation_level=None, timeout=10)
        self._other_writer.execute("PRAGMA wal_autocheckpoint = 0")  # as the pool's writer
        self.overtaken = 0

    async def execute_fetchall(self, sql: str) -> Any:
        if self._store._lock.locked():
            return await self._connection.execute_fetchall(sql)
        self._reader.execute("BEGIN")
        self._reader.execute("SELECT COUNT(*) FROM scratch").fetchall()  # its snapshot: what is written so far
        self._other_writer.execute("INSERT INTO scratch VALUES (randomblob(16000))")
        try:
            rows = await self._connection.execute_fetchall(sql)
        finally:
            self._reader.execute("COMMIT")
        self.overtaken += 1
        return rows

    async def execute(self, sql: str) -> Any:
        return await self.execute_fetchall(sql)

    async def close(self) -> None:
        self._reader.close()
        self._other_writer.close()
        await self._connection.close()


async def test_under_steady_writes_the_log_is_still_reused_from_its_start(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every checkpoint beside the writes is overtaken by writes before it ends, so none of them alone leaves the
    log copied whole; the log is started afresh all the same (its file stays far below what was written), and every
    row is in the database."""
    monkeypatch.setattr(sqlite_module, "CHECKPOINT_EVERY", 0.0)
    monkeypatch.setattr(sqlite_module, "COMPLETE_AFTER_FRAMES", 100)
    path = tmp_path / "pool.sqlite"
    store = SqlitePoolStore(path)
    await store.open()
    try:
        async with store._write() as tx:
            await tx.execute("CREATE TABLE scratch (b BLOB)")
        checkpointer = store._checkpointer
        assert checkpointer is not None
        await checkpointer.wait()
        overtaken = _OvertakenCheckpoints(checkpointer._connection, store, path)
        checkpointer._connection = cast(Any, overtaken)
        writes = 300
        for _ in range(writes):
            async with store._write() as tx:
                await tx.execute("INSERT INTO scratch VALUES (randomblob(16000))")  # some 4 pages
            await checkpointer.wait()
        assert overtaken.overtaken >= writes
        written = (writes + overtaken.overtaken) * 16000
        assert size_of(path.with_name(path.name + "-wal")) < written / 4
        row = await store._reads().fetchone("SELECT COUNT(*) AS n FROM scratch")
        assert row is not None and row["n"] == writes + overtaken.overtaken
    finally:
        await store.close()


async def test_a_new_database_is_brought_to_the_latest_version(tmp_path: Path) -> None:
    path = tmp_path / "pool.sqlite"
    store = SqlitePoolStore(path)
    await store.open()
    assert await store.schema_version() == len(MIGRATIONS)
    await store.close()
    assert stored_version(path) == len(MIGRATIONS)


async def test_a_database_of_a_newer_version_is_refused_untouched(tmp_path: Path) -> None:
    path = tmp_path / "pool.sqlite"
    store = SqlitePoolStore(path)
    await store.open()
    await store.add_farmer(make_farmer())
    await store.close()
    newer = len(MIGRATIONS) + 1
    with sqlite3.connect(path) as raw:
        raw.execute("UPDATE schema_version SET version = ?", (newer,))
    raw.close()

    refused = SqlitePoolStore(path)
    with pytest.raises(SchemaTooNew, match=f"schema version {newer}, newer than this pool's {len(MIGRATIONS)}"):
        await refused.open()
    assert stored_version(path) == newer
    with pytest.raises(StoreError):  # it did not stay half-open
        await refused.get_farmer(make_farmer().launcher_id)


async def test_an_older_database_is_migrated_forward_keeping_its_data(tmp_path: Path) -> None:
    path = tmp_path / "pool.sqlite"
    old = SqlitePoolStore(path)  # the schema as released so far
    await old.open()
    farmer = make_farmer()
    await old.add_farmer(farmer)
    await old.close()

    # The next release adds a step; opening the old file with it must run that step, and only that step, once.
    next_step = (
        "ALTER TABLE farmers ADD COLUMN nickname TEXT",
        "UPDATE farmers SET nickname = 'migrated'",
    )
    upgraded = SqlitePoolStore(path, migrations=(*MIGRATIONS, next_step))
    await upgraded.open()
    try:
        assert await upgraded.schema_version() == len(MIGRATIONS) + 1
        assert await upgraded.get_farmer(farmer.launcher_id) == farmer
    finally:
        await upgraded.close()
    with sqlite3.connect(path) as raw:
        assert raw.execute("SELECT nickname FROM farmers").fetchall() == [("migrated",)]
    raw.close()

    again = SqlitePoolStore(path, migrations=(*MIGRATIONS, next_step))
    await again.open()  # would fail with "duplicate column" if the step ran twice
    await again.close()


async def test_a_failing_migration_step_changes_nothing(tmp_path: Path) -> None:
    path = tmp_path / "pool.sqlite"
    store = SqlitePoolStore(path)
    await store.open()
    await store.add_farmer(make_farmer())
    await store.close()

    broken_step = ("ALTER TABLE farmers ADD COLUMN half_done TEXT", "THIS IS NOT SQL")
    with pytest.raises(sqlite3.OperationalError):
        await SqlitePoolStore(path, migrations=(*MIGRATIONS, broken_step)).open()
    assert stored_version(path) == len(MIGRATIONS)
    with sqlite3.connect(path) as raw:
        columns = [row[1] for row in raw.execute("PRAGMA table_info(farmers)")]
    raw.close()
    assert "half_done" not in columns

    reopened = SqlitePoolStore(path)
    await reopened.open()
    assert await reopened.get_farmer(make_farmer().launcher_id) == make_farmer()
    await reopened.close()


async def test_factory_builds_an_sqlite_store_and_its_directory(tmp_path: Path) -> None:
    path = tmp_path / "deep" / "er" / "pool.sqlite"
    store = create_store(StoreConfig(backend="sqlite", path=path))
    assert isinstance(store, SqlitePoolStore)
    await store.open()
    await store.add_farmer(make_farmer())
    await store.close()
    assert path.is_file()


def test_factory_refuses_an_unknown_backend(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="unknown store backend"):
        create_store(StoreConfig(backend="mongodb", path=tmp_path / "x"))


# -- the ledger migration (schema v1 -> v2) -----------------------------------------------------------------------
V1_MIGRATIONS = MIGRATIONS[:1]


async def v1_database(path: Path, claims: list[tuple[str, int, str]], rounds: list[tuple[int, int, str]]) -> None:
    """A database as the pool before the ledger left it: ``claims`` (coin, amount, status); ``rounds`` (total,
    remainder, status), each paid as v1 did: total - remainder - a 1 mojo batch fee, 1 % to the fee address, the
    rest to the farmer (consuming 10 points)."""
    old = SqlitePoolStore(path, migrations=V1_MIGRATIONS)
    await old.open()
    assert await old.schema_version() == 1
    await old.add_farmer(make_farmer())  # the v1 columns only
    await old.close()
    farmer = make_farmer()
    with sqlite3.connect(path) as raw:
        for coin, amount, status in claims:
            raw.execute(
                "INSERT INTO reward_claims (coin_id, launcher_id, amount, coin_height, spend_bundle_name, status, "
                "submitted_at, submitted_height) VALUES (?, ?, ?, 10, NULL, ?, 100, 20)",
                (std_hash(coin.encode()), farmer.launcher_id, amount, status),
            )
        for round_id, (total, remainder, status) in enumerate(rounds, start=1):
            paid = total - remainder - 1
            pool_fee = paid // 100
            raw.execute(
                "INSERT INTO payout_rounds (id, created_at, scheme, total, pool_fee, blockchain_fees, farmer_total, "
                "remainder, status) VALUES (?, 500, 'pplns', ?, ?, 1, ?, ?, ?)",
                (round_id, total, pool_fee, paid - pool_fee, remainder, status),
            )
            batch_status = "confirmed" if status == "done" else "pending"
            raw.execute(
                "INSERT INTO payment_batches (round_id, batch_index, fee, status, updated_at) VALUES (?, 0, 1, ?, 500)",
                (round_id, batch_status),
            )
            raw.execute(
                "INSERT INTO payments (round_id, batch_index, puzzle_hash, amount, launcher_id, points) "
                "VALUES (?, 0, ?, ?, ?, 10), (?, 0, ?, ?, NULL, 0)",
                (
                    round_id,
                    farmer.payout_puzzle_hash,
                    paid - pool_fee,
                    farmer.launcher_id,
                    round_id,
                    std_hash(b"fee"),
                    pool_fee,
                ),
            )
    raw.close()


async def test_a_v1_database_opens_its_ledger_with_what_its_claims_have_not_paid(tmp_path: Path) -> None:
    path = tmp_path / "pool.sqlite"
    claims = [("a", 1_750, "confirmed"), ("b", 1_750, "confirmed"), ("c", 1_000, "submitted"), ("d", 500, "failed")]
    # Round 1 (done) took 2 000 of which 4 stayed as rounding; round 2 (still open, batch unsent) took 1 000.
    await v1_database(path, claims, rounds=[(2_000, 4, "done"), (1_000, 0, "open")])

    store = SqlitePoolStore(path)
    await store.open()
    try:
        assert await store.schema_version() == len(MIGRATIONS)
        ledger = await store.ledger()
        assert ledger.confirmed_claims == 3_500
        assert ledger.undistributed == 3_500 - (2_000 - 4) - 1_000 == 504
        assert (ledger.farmer_payments, ledger.farmer_payments_in_flight) == (1_976 + 990, 990)
        assert (ledger.pool_fee_payments, ledger.blockchain_fees) == (19 + 9, 2)
        assert (ledger.owed, ledger.pool_fee_share, ledger.pre_ledger_excess) == (0, 0, 0)
        assert ledger.balanced
        assert await store.ledger_entries() == []  # the opening balance is read from the v1 records, not journaled

        # The farmer kept its unpaid points, is owed nothing yet; the old claims read with no fee.
        assert await store.get_farmer(make_farmer().launcher_id) == make_farmer()
        assert {c.fee for c in await store.reward_claims()} == {0}

        # v1 records go on under the ledger: the claim in flight lands, the open round's batch is sent and lands.
        await store.update_reward_claim(std_hash(b"c"), ClaimStatus.CONFIRMED, confirmed_height=30)
        open_round = await store.open_round()
        assert open_round is not None and open_round.id is not None
        (batch,) = await store.batches(open_round.id)
        assert batch.id is not None and batch.submitted_height is None
        await store.mark_batch_submitted(batch.id, std_hash(b"tx"), b"bundle", now=600, height=40)
        await store.mark_batch_confirmed(batch.id, height=45, now=700)
        after = await store.ledger()
        assert (after.undistributed, after.farmer_payments_in_flight) == (1_504, 0)
        assert after.balanced
        assert await store.open_round() is None
    finally:
        await store.close()


async def test_a_v1_database_that_paid_more_than_it_claimed_records_the_excess_once(tmp_path: Path) -> None:
    # The v1 bug: rounds paid out the wallet's whole balance, including coins that were never rewards.
    path = tmp_path / "pool.sqlite"
    await v1_database(path, [("a", 1_750, "confirmed"), ("b", 1_750, "submitted")], rounds=[(5_000, 0, "done")])
    store = SqlitePoolStore(path)
    await store.open()
    try:
        ledger = await store.ledger()
        assert (ledger.undistributed, ledger.pre_ledger_excess) == (0, 5_000 - 1_750)
        assert ledger.accounted - ledger.confirmed_claims == ledger.pre_ledger_excess  # shown, never hidden
        assert ledger.balanced
        # New money under the ledger is all undistributed: the excess is fixed, never paid back out of claims.
        await store.update_reward_claim(std_hash(b"b"), ClaimStatus.CONFIRMED, confirmed_height=30)
        after = await store.ledger()
        assert (after.undistributed, after.pre_ledger_excess) == (1_750, 3_250)
        assert after.balanced
    finally:
        await store.close()
    reopened = SqlitePoolStore(path)  # the migration ran once: the excess is not recomputed
    await reopened.open()
    try:
        assert (await reopened.ledger()).pre_ledger_excess == 3_250
    finally:
        await reopened.close()


# -- the difficulty history (schema v6 -> v7) ---------------------------------------------------------------------
async def test_a_v6_database_starts_its_difficulty_history_with_what_is_in_force(tmp_path: Path) -> None:
    path = tmp_path / "pool.sqlite"
    old = SqlitePoolStore(path, migrations=MIGRATIONS[:6])
    await old.open()
    await old.add_farmer(make_farmer())  # difficulty 10
    await old.close()
    with sqlite3.connect(path) as raw:
        raw.execute("UPDATE farmers SET pending_difficulty = 40, pending_difficulty_at = 5000")  # a PUT's, pending
    raw.close()

    store = SqlitePoolStore(path)
    await store.open()
    try:
        launcher = make_farmer().launcher_id
        # The current difficulty for every moment before the pending one's (when it took effect is not known).
        assert [await store.difficulty_at(launcher, moment) for moment in (0, 4_999, 5_000)] == [10, 10, 40]
        record = await store.get_farmer(launcher)
        assert record is not None and record.difficulty_since == 0
    finally:
        await store.close()


async def test_the_running_total_of_farmer_payments_starts_from_what_confirmed_batches_paid(tmp_path: Path) -> None:
    """The step adding running_totals sums the farmer payments of the batches confirmed before it."""
    path = tmp_path / "pool.sqlite"
    old = SqlitePoolStore(path, migrations=MIGRATIONS[: MIGRATIONS.index(_SCHEMA_V14_BOUNDED_READS)])
    await old.open()
    farmer = make_farmer()
    await old.add_farmer(farmer)
    await old.close()
    with sqlite3.connect(path) as raw:
        raw.execute(
            "INSERT INTO payout_rounds (id, created_at, scheme, total, pool_fee, blockchain_fees, farmer_total, "
            "remainder, status) VALUES (1, 500, 'proportional', 1111, 100, 11, 1000, 0, 'open')"
        )
        raw.executemany(
            "INSERT INTO payment_batches (round_id, batch_index, fee, status, updated_at) VALUES (1, ?, ?, ?, 500)",
            [(0, 10, "confirmed"), (1, 1, "submitted")],
        )
        raw.executemany(
            "INSERT INTO payments (round_id, batch_index, puzzle_hash, amount, launcher_id, points) "
            "VALUES (1, ?, ?, ?, ?, 0)",
            [
                (0, farmer.payout_puzzle_hash, 700, farmer.launcher_id),
                (0, std_hash(b"fee"), 100, None),
                (1, farmer.payout_puzzle_hash, 300, farmer.launcher_id),
            ],
        )
    raw.close()
    store = SqlitePoolStore(path)
    await store.open()
    try:
        assert (await store.pool_figures()).paid_to_farmers == 700  # the confirmed batch's farmer payment only
        (_, in_flight) = await store.batches(1)
        assert in_flight.id is not None
        await store.mark_batch_confirmed(in_flight.id, height=30, now=600)
        assert (await store.pool_figures()).paid_to_farmers == 1_000
    finally:
        await store.close()


async def test_the_loops_reads_never_hold_up_the_requests_reads(tmp_path: Path) -> None:
    """The background loops' reads have a connection of their own: two of them held inside SQLite (one running, one
    queued behind it), the requests' reads are answered meanwhile, on both of their connections at once."""
    store = SqlitePoolStore(tmp_path / "pool.sqlite")
    await store.open()
    try:
        release = threading.Event()
        held_now = threading.Semaphore(0)
        running: list[int] = []

        def held(value: int) -> int:
            running.append(value)
            held_now.release()
            release.wait(timeout=30)
            return value

        for reader in store._readers:
            await reader.create_function("held", 1, held)

        async def loops_read(value: int) -> int:
            BACKGROUND_READS.set(True)  # as the loops' runner does, in the loop's own task
            row = await store._reads().fetchone("SELECT held(:v) AS v", {"v": value})
            assert row is not None
            return int(row["v"])

        loops = [asyncio.create_task(loops_read(value)) for value in (1, 2)]
        assert await asyncio.to_thread(held_now.acquire, timeout=10)  # the first loop read runs, the second waits
        # Two requests' reads held at once: they run on the two connections the loops do not use.
        requests = [asyncio.create_task(store._reads().fetchone("SELECT held(:v) AS v", {"v": v})) for v in (3, 4)]
        assert await asyncio.to_thread(held_now.acquire, timeout=10)
        assert await asyncio.to_thread(held_now.acquire, timeout=10)
        assert sorted(running) == [1, 3, 4]  # the second loop read still waits for the loops' connection
        assert not any(task.done() for task in loops + requests)
        release.set()
        assert await asyncio.gather(*loops) == [1, 2]
        assert [row["v"] for row in await asyncio.gather(*requests) if row is not None] == [3, 4]
    finally:
        release.set()
        await store.close()


async def test_a_long_read_does_not_hold_up_the_other_reads(tmp_path: Path) -> None:
    """The plain reads go to the least busy of the reading connections: while one read is still running (held here
    inside SQLite by a function that waits), another is answered on the other connection."""
    store = SqlitePoolStore(tmp_path / "pool.sqlite")
    await store.open()
    try:
        release = threading.Event()
        started = threading.Event()

        def held(value: int) -> int:
            started.set()
            release.wait(timeout=30)
            return value

        for reader in store._readers:
            await reader.create_function("held", 1, held)
        long_read = asyncio.create_task(store._reads().fetchone("SELECT held(7) AS v"))
        await asyncio.to_thread(started.wait, 30)
        farmer = make_farmer()
        await store.add_farmer(farmer)
        assert await store._reads().fetchone("SELECT COUNT(*) AS n FROM farmers") is not None
        assert (await store.list_farmers())[0].launcher_id == farmer.launcher_id
        assert not long_read.done()
        release.set()
        row = await long_read
        assert row is not None and row["v"] == 7
    finally:
        release.set()
        await store.close()


@pytest.mark.skipif(not hasattr(os, "setpriority"), reason="no per-thread nice values here")
async def test_the_loops_reads_run_at_a_lower_cpu_priority_than_the_rest_of_the_process(tmp_path: Path) -> None:
    """Only the background loops' reading connection's thread has its nice value raised: the event loop's thread,
    the requests' readers and the writer keep the process's priority."""
    own = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
    # This store's threads only: a thread of an earlier test's store may still be ending (a run of the store's tests
    # in two processes once found one lowered beside this store's).
    earlier = {t.native_id for t in threading.enumerate()}
    store = SqlitePoolStore(tmp_path / "pool.sqlite")
    await store.open()
    try:
        threads: dict[str, int] = {}

        def where(name: str) -> int:
            threads[name] = threading.get_native_id()
            return 1

        for reader in store._readers:
            await reader.create_function("where_am_i", 1, where)

        async def read_on(name: str, background: bool) -> None:
            BACKGROUND_READS.set(background)  # as the loops' runner does, in the loop's own task
            await store._reads().fetchone("SELECT where_am_i(:name) AS v", {"name": name})

        await asyncio.gather(read_on("loops", True), read_on("request", False))
        niceness = {name: os.getpriority(os.PRIO_PROCESS, thread) for name, thread in threads.items()}
        assert niceness == {"loops": own + sqlite_module.BACKGROUND_NICENESS, "request": own}
        assert os.getpriority(os.PRIO_PROCESS, threading.get_native_id()) == own
        ours = [t for t in threading.enumerate() if t.native_id not in earlier]
        lowered = [t for t in ours if os.getpriority(os.PRIO_PROCESS, t.native_id or 0) != own]
        assert [t.native_id for t in lowered] == [threads["loops"]]
    finally:
        await store.close()


def _hold_write_lock(path: Path) -> sqlite3.Connection:
    """Another connection (as ``python -m pool prune`` in a process of its own) holding the database's write lock."""
    other = sqlite3.connect(path, isolation_level=None, timeout=0)
    other.execute("BEGIN IMMEDIATE")
    return other


@asynccontextmanager
async def _store_with_a_farmer(path: Path) -> AsyncIterator[tuple[SqlitePoolStore, FarmerRecord]]:
    store = SqlitePoolStore(path)
    await store.open()
    try:
        farmer = contract.make_farmer(1)
        await store.add_farmer(farmer)
        yield store, farmer
    finally:
        await store.close()


async def test_writes_wait_for_another_connections_lock_and_go_through_after_it(tmp_path: Path) -> None:
    async with _store_with_a_farmer(tmp_path / "pool.sqlite") as (store, farmer):
        other = _hold_write_lock(tmp_path / "pool.sqlite")
        # A group commit of partials (one statement of its own) and a write transaction (BEGIN IMMEDIATE).
        partials = asyncio.create_task(store.record_partials([contract.make_partial(farmer, 1, 2_000)]))
        second = contract.make_farmer(2)
        added = asyncio.create_task(store.add_farmer(second))
        await asyncio.sleep(0.3)
        assert not partials.done() and not added.done()
        other.execute("COMMIT")
        other.close()
        (outcome,) = await asyncio.wait_for(partials, 5)
        await asyncio.wait_for(added, 5)
        assert isinstance(outcome, int)
        assert await store.get_partial(outcome) is not None
        assert await store.get_farmer(second.launcher_id) is not None


async def test_a_write_gives_up_on_a_lock_held_past_the_wait_and_changes_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sqlite_module, "WRITER_WAIT_SECONDS", 0.2)
    async with _store_with_a_farmer(tmp_path / "pool.sqlite") as (store, farmer):
        other = _hold_write_lock(tmp_path / "pool.sqlite")
        try:
            with pytest.raises(sqlite3.OperationalError, match="locked"):
                await asyncio.wait_for(store.record_partials([contract.make_partial(farmer, 1, 2_000)]), 5)
            with pytest.raises(sqlite3.OperationalError, match="locked"):
                await asyncio.wait_for(store.add_farmer(contract.make_farmer(2)), 5)
        finally:
            other.execute("ROLLBACK")
            other.close()
        assert await store.get_farmer(contract.make_farmer(2).launcher_id) is None
        # The store is not left in a transaction: the same writes go through now.
        (outcome,) = await store.record_partials([contract.make_partial(farmer, 1, 2_000)])
        assert isinstance(outcome, int)
        await store.add_farmer(contract.make_farmer(2))


async def test_the_prune_of_closed_events_reads_the_index_of_when_they_closed(tmp_path: Path) -> None:
    """A pass of the notifications loop looks for closed events old enough to delete, inside a write transaction: by
    the index of done_at, never a scan of every event (600 000 after 30 days at ten thousand farmers)."""
    store = SqlitePoolStore(tmp_path / "pool.sqlite")
    await store.open()
    try:
        plan = await store._reads().fetchall(
            f"EXPLAIN QUERY PLAN {sql_module.CLOSED_NOTIFICATIONS_SQL}", {"before": 1_000, "batch": 500}
        )
        assert [row["detail"] for row in plan] == [
            "SEARCH notifications USING COVERING INDEX notifications_due (done_at>? AND done_at<?)"
        ]
    finally:
        await store.close()


async def _synchronous(store: SqlitePoolStore) -> int:
    async with store._connection().execute("PRAGMA synchronous") as cursor:
        row = await cursor.fetchone()
    assert row is not None
    return int(row[0])


async def test_only_the_retentions_batches_commit_without_waiting_for_the_disk(tmp_path: Path) -> None:
    """A prune batch commits with synchronous=NORMAL (its sync was most of the time it held the writer, which the
    partials' group commit waits for); the writer is back to FULL right after it, so the partials that follow, and
    every other write, still reach the disk before they are answered."""
    async with _store_with_a_farmer(tmp_path / "pool.sqlite") as (store, farmer):
        outcomes = await store.record_partials([contract.make_partial(farmer, n, 1_000 + n) for n in range(4)])
        ids = [outcome for outcome in outcomes if isinstance(outcome, int)]
        assert len(ids) == 4 and await store.confirm_partials(ids)
        statements: list[str] = []
        await store._connection().set_trace_callback(statements.append)
        assert await store.prune_partials(2 * 3600, batch=10) == 4
        (outcome,) = await store.record_partials([contract.make_partial(farmer, 9, 3 * 3600)])
        await store.add_farmer(contract.make_farmer(2))
        await store._connection().set_trace_callback(cast(Any, None))
        assert isinstance(outcome, int)

        def first(prefix: str, after: int = 0) -> int:
            return next(n for n, sql in enumerate(statements) if n >= after and sql.lstrip().startswith(prefix))

        relaxed = first("PRAGMA synchronous = NORMAL")
        deleted = first("DELETE FROM partials", relaxed)
        committed = first("COMMIT", deleted)
        synced = first("PRAGMA synchronous = FULL", committed)
        inserted = first("INSERT INTO partials", synced)
        assert relaxed < first("BEGIN IMMEDIATE", relaxed) < deleted < committed < synced < inserted
        assert sum("synchronous = NORMAL" in sql for sql in statements) == 1
        assert await _synchronous(store) == 2


async def test_an_interrupted_prune_batch_leaves_the_next_write_synced(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A second cancellation can stop a batch before it sets the writer back to FULL: the next write does, before
    it begins, whether it is a group commit of partials or a transaction."""
    async with _store_with_a_farmer(tmp_path / "pool.sqlite") as (store, farmer):
        restore = SqlitePoolStore._synced_again
        interrupted = [False]

        async def cancelled_once(self: SqlitePoolStore) -> None:
            if not interrupted[0]:
                interrupted[0] = True
                raise asyncio.CancelledError
            await restore(self)

        monkeypatch.setattr(SqlitePoolStore, "_synced_again", cancelled_once)
        with pytest.raises(asyncio.CancelledError):
            await store.prune_partials(2 * 3600, batch=10)
        assert interrupted[0] and await _synchronous(store) == 1
        (outcome,) = await store.record_partials([contract.make_partial(farmer, 1, 3 * 3600)])
        assert isinstance(outcome, int) and await _synchronous(store) == 2

        with pytest.raises(asyncio.CancelledError):  # again, and a transaction next
            interrupted[0] = False
            await store.prune_partials(2 * 3600, batch=10)
        assert await _synchronous(store) == 1
        await store.add_farmer(contract.make_farmer(2))
        assert await _synchronous(store) == 2
