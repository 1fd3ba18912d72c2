"""SQLite dialect of the store (the default backend); the store itself, every method and money rule, is sql.py.

Durability first: WAL journal with ``synchronous=FULL`` so a partial answered "accepted" or a payment recorded as
submitted survives a power cut. One connection serves the process's writes; an asyncio lock serialises its use,
because statements of two tasks interleaved on one connection would share (and could commit or roll back) one
transaction. Every public method is a single transaction: ``BEGIN IMMEDIATE`` takes the write lock up front, so a
transaction never fails half-way on a lock upgrade, and any exception rolls everything back. That lock is the
database's only write lock, so write transactions (money-moving or not, of this process or another) always run one at
a time: the ledger needs no lock of its own here.

What is SQLite's own: the schema (BLOB keys, INTEGER mojos: SQLite's integers are 64-bit), the connections (a writer,
readers, key look-ups answered on the event loop, and a checkpointer), and POST /partial's group commit in one
statement.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sqlite3
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Collection, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, TypeVar

import aiosqlite

from pool.chia_adapter import bytes32
from pool.store.abstract import BACKGROUND_READS, StoreError, check_new_partial
from pool.store.models import NotAdded, PartialRecord, PartialRefusal
from pool.store.rows import Row
from pool.store.sql import Migration, Params, SchemaTooNew, SqlPoolStore, Statements, partial_outcomes
from pool.store.sqlite_schema import MIGRATIONS

__all__ = ["SchemaTooNew", "SqlitePoolStore"]  # SchemaTooNew: callers catch it from here too

log = logging.getLogger(__name__)
_T = TypeVar("_T")


class _Sqlite(Statements):
    """The shared SQL on an aiosqlite connection (sqlite3 binds ``:name`` parameters itself)."""

    def __init__(self, db: aiosqlite.Connection) -> None:
        self.db = db

    async def fetchone(self, sql: str, params: Params | None = None) -> Row | None:
        rows = await self.fetchall(sql, params)  # one trip to the connection's thread, not three (cursor, row, close)
        return rows[0] if rows else None

    async def fetchall(self, sql: str, params: Params | None = None) -> list[Row]:
        return list(await self.db.execute_fetchall(sql, params))

    async def execute(self, sql: str, params: Params | None = None) -> int:
        cursor = await self.db.execute(sql, params)
        return max(cursor.rowcount, 0)  # -1 for statements that change no rows (DDL)

    async def executemany(self, sql: str, rows: Sequence[Params]) -> None:
        await self.db.executemany(sql, rows)


# Connections for plain reads. One made every read wait behind the longest one in its thread's queue: a page's
# look-ups behind the pool page's count of the day's partials (seconds at ten thousand farmers), the difficulty loop's
# summaries behind the singletons loop's pages. WAL lets readers run side by side, each in its own thread. The last
# one is the background loops' own (BACKGROUND_READS): with two loops reading at once, their reads of every farmer
# (a tenth of a second each at ten thousand farmers) held both others, and the pages and partials queued behind them.
READERS = 3
# The writer's page cache (SQLite's default is 2 MiB). Its pages stay valid across its own commits (it is the only
# writer), and an insert touches a leaf of each index of partials: at 10 000 farmers those are thousands of pages
# (a leaf per farmer in the index by farmer, a random one in the index by proof), which 2 MiB cannot hold, so each
# group commit read most of them again from the OS. Measured on copies of the bench's stores, a 100-partial INSERT:
# 8.0 against 6.5 ms of CPU on the 1-day 10 000-farmer store (856 against 314 pages read), 46 against 26 ms on the
# 30-day one (rolled back, its pages not yet in memory). Filled only as pages are used: a small pool's writer stays
# as small as before.
WRITER_CACHE_KIB = 64 * 1024


# The background loops' reading connection runs at a lower CPU priority than the rest of the process. At ten thousand
# farmers a difficulty pass is about half a second of SQLite's work in that connection's thread every minute, while the
# singletons' pass keeps the node busy: on two cores that were also taking partials, the event loop got a fraction of a
# core, and pages and partials waited 50-100 ms. With the thread's nice value raised, the kernel gives the event loop's
# thread (and the requests' readers) the cores first and the loops' reads what is left, which is all of it on a machine
# that is not busy. SQLite releases the interpreter's lock while it computes, so the event loop does not wait for the
# slower thread; it holds it only to build a page of rows. Nice values are per thread on Linux; elsewhere this does
# nothing.
BACKGROUND_NICENESS = 10


async def _lower_priority(connection: aiosqlite.Connection) -> None:
    """Raises the nice value of ``connection``'s thread by BACKGROUND_NICENESS (never the process's own)."""

    def lower() -> bool:
        thread = threading.get_native_id()
        try:
            os.setpriority(os.PRIO_PROCESS, thread, os.getpriority(os.PRIO_PROCESS, thread) + BACKGROUND_NICENESS)
        except (OSError, AttributeError):  # not Linux: the loops' reads keep the process's priority
            return False
        return True

    # A function of the connection is what runs in its thread (aiosqlite keeps the thread to itself).
    await connection.create_function("pool_lower_priority", 0, lower)
    rows = list(await connection.execute_fetchall("SELECT pool_lower_priority()"))
    if not rows[0][0]:
        log.debug("the background loops' reads keep the process's CPU priority (no per-thread nice value here)")


class _SqliteReaders(Statements):
    """Plain reads on the least busy of a few read-only connections (each statement its own snapshot); the
    background loops' reads on the last one, which the others never use."""

    def __init__(self, readers: Sequence[aiosqlite.Connection]) -> None:
        self._readers = [_Sqlite(reader) for reader in readers]
        self._in_flight = [0] * len(readers)

    async def fetchone(self, sql: str, params: Params | None = None) -> Row | None:
        rows = await self.fetchall(sql, params)
        return rows[0] if rows else None

    async def fetchall(self, sql: str, params: Params | None = None) -> list[Row]:
        requests = self._in_flight[:-1]
        index = len(requests) if BACKGROUND_READS.get() else requests.index(min(requests))
        self._in_flight[index] += 1
        try:
            return await self._readers[index].fetchall(sql, params)
        finally:
            self._in_flight[index] -= 1

    async def execute(self, sql: str, params: Params | None = None) -> int:
        raise StoreError("the reading connections only read")

    async def executemany(self, sql: str, rows: Sequence[Params]) -> None:
        raise StoreError("the reading connections only read")


# SQLite's own checkpoint runs inside the commit that takes the write-ahead log past 1 000 pages: that commit copies
# the log's pages into the database file and syncs it while it still holds the one writer. On a store of 10 000
# farmers those pages lie all over a gigabyte-sized file, and the commit that happened to pay took 0.2-0.5 s while
# POST /partial's group commit waited behind it (the partials' p99 went from 10 to 265 ms). So the writer never
# checkpoints; a connection of its own, in its own thread, does after writes, at most once every CHECKPOINT_EVERY
# seconds, in PASSIVE mode: it takes no lock a writer or reader needs.
CHECKPOINT_EVERY = 1.0
# The log is reused from its start only once all of it is in the database file, and under steady writes a PASSIVE
# checkpoint never gets there (new pages arrive while it copies): the log grew to 50 MB in a few minutes at 50 partials
# a second. Once it is this long (pages), the checkpointer copies the rest with the pool's writes held: the pages
# written during its last pass, a fraction of SQLite's 1 000.
COMPLETE_AFTER_FRAMES = 4_000


class _Checkpointer:
    """Copies the write-ahead log into the database file after writes, beside the writer rather than in its way."""

    def __init__(self, connection: aiosqlite.Connection, writes: asyncio.Lock) -> None:
        self._connection = connection
        self._writes = writes  # the store's writer lock: held, no write of this process is in flight
        self._running: asyncio.Task[None] | None = None
        self._last = 0.0

    def after_write(self) -> None:
        """A transaction committed: start a checkpoint unless one is running or one started less than
        CHECKPOINT_EVERY ago (the next write after that starts it; an idle store has nothing to copy)."""
        if self._running is not None and not self._running.done():
            return
        now = time.monotonic()
        if now - self._last < CHECKPOINT_EVERY:
            return
        self._last = now
        self._running = asyncio.get_running_loop().create_task(self._checkpoint(), name="sqlite-checkpoint")

    async def _checkpoint(self) -> None:
        try:
            rows = list(await self._connection.execute_fetchall("PRAGMA wal_checkpoint(PASSIVE)"))
            # Pages written while it copied are not counted: a pass that copied all it counted may not be complete.
            in_log = int(rows[0][1])
            if in_log >= COMPLETE_AFTER_FRAMES:
                async with self._writes:  # after this, the next write transaction starts the log afresh
                    await self._connection.execute("PRAGMA wal_checkpoint(PASSIVE)")
        except (sqlite3.Error, ValueError) as exc:
            # Nothing is lost: the pages stay in the log, which the next checkpoint (or the last close) copies.
            log.warning("SQLite checkpoint failed: %s", exc)

    async def wait(self) -> None:
        """The checkpoint running now, if any, finished."""
        if self._running is not None:
            await asyncio.shield(self._running)

    async def close(self) -> None:
        running, self._running = self._running, None
        if running is not None and not running.done():
            running.cancel()
            try:
                await running
            except asyncio.CancelledError:
                pass
        await self._connection.close()


def database_files(path: Path) -> tuple[Path, Path, Path]:
    """An SQLite store's files: the database, its write-ahead log and the log's shared index."""
    return path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")


def database_bytes(path: Path) -> int:
    """What an SQLite store takes on disk, its log and index included (0 for files not there)."""
    return sum(part.stat().st_size for part in database_files(path) if part.exists())


class SqlitePoolStore(SqlPoolStore[_Sqlite]):
    def __init__(self, path: Path, *, migrations: Sequence[Migration] = MIGRATIONS) -> None:
        super().__init__(migrations)
        self._path = path
        self._db: aiosqlite.Connection | None = None
        # Plain reads go through connections of their own (READERS, each with its thread): in WAL mode they see
        # every committed write and never wait for a write transaction's commit (fsync), e.g. POST /partial's farmer
        # look-ups during a group commit.
        self._readers: list[aiosqlite.Connection] = []
        self._reads_on: _SqliteReaders | None = None
        # Look-ups by key (a farmer for every partial) run on the event loop itself: one indexed read costs far less
        # than a trip through aiosqlite's thread costs in CPU (queue, futures, wake-ups).
        # In WAL mode such a read never waits for a writer; if it ever meets a lock, it goes through the reader.
        self._lookups: sqlite3.Connection | None = None
        self._checkpointer: _Checkpointer | None = None
        self._lock = asyncio.Lock()
        self._unsynced = False  # the writer's commits do not wait for the disk (only inside _upkeep_write)

    # -- connections and transactions --------------------------------------------------------------------------
    def _connection(self) -> aiosqlite.Connection:
        if self._db is None:
            raise StoreError("the store is not open")
        return self._db

    @asynccontextmanager
    async def _write(self, *, ledger: bool = False) -> AsyncIterator[_Sqlite]:
        """One write transaction; committed when the block ends, rolled back on any exception. ``ledger`` asks for
        nothing more: BEGIN IMMEDIATE already makes this the database's only write transaction."""
        async with self._lock:
            await self._synced_again()
            async with self._transaction() as tx:
                yield tx
        self._written()

    @asynccontextmanager
    async def _upkeep_write(self) -> AsyncIterator[_Sqlite]:
        """A write whose commit does not wait for the disk (``synchronous=NORMAL`` for it alone): measured on a
        copy of the 1 000-farmer 1-day store, a prune batch of 50 held the writer 2.9 ms, 1.8 of them its commit's
        sync, against 1.8 and 0.95 ms without it; the intake's group commit waited the whole time. The frames go to
        the log in order like any other commit's, and the writer's next synced commit (a group commit's, some
        milliseconds later) syncs them with its own."""
        async with self._lock:
            db = self._connection()
            self._unsynced = True  # before the pragma: whatever interrupts, the next write syncs again
            await db.execute("PRAGMA synchronous = NORMAL")
            try:
                async with self._transaction() as tx:
                    yield tx
            finally:
                await self._synced_again()
        self._written()

    async def _synced_again(self) -> None:
        """The writer back to ``synchronous=FULL`` after an upkeep write, if a second cancellation left it relaxed:
        every write but the upkeep's waits for its commit to reach the disk."""
        if self._unsynced:
            await self._connection().execute("PRAGMA synchronous = FULL")
            self._unsynced = False

    @asynccontextmanager
    async def _transaction(self) -> AsyncIterator[_Sqlite]:
        """BEGIN IMMEDIATE ... COMMIT on the writer, rolled back on any exception; the caller holds ``_lock``."""
        db = self._connection()
        if db.in_transaction:
            # Only possible if a rollback was itself interrupted (a second cancellation): start clean.
            await db.execute("ROLLBACK")
        await _when_unlocked(lambda: db.execute("BEGIN IMMEDIATE"))
        try:
            yield _Sqlite(db)
            await db.execute("COMMIT")
        except BaseException:
            if db.in_transaction:
                await db.execute("ROLLBACK")
            raise

    def _written(self) -> None:
        if self._checkpointer is not None:
            self._checkpointer.after_write()

    def _reads(self) -> Statements:
        if self._reads_on is None:
            raise StoreError("the store is not open")
        return self._reads_on

    async def _lookup(self, sql: str, params: Params) -> Row | None:
        """Read on the calling thread (see ``_lookups``)."""
        if self._lookups is None:
            raise StoreError("the store is not open")
        try:
            # fetchall, not fetchone: the statement runs to its end, so no read transaction stays open behind it.
            rows = self._lookups.execute(sql, params).fetchall()
        except sqlite3.OperationalError as exc:
            if exc.sqlite_errorcode not in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED):
                raise
            return await self._reads().fetchone(sql, params)  # waits for the lock in the reader's thread
        return rows[0] if rows else None

    def _one_of(self, column: str, name: str, values: Collection[Any], array_type: str) -> tuple[str, dict[str, Any]]:
        params = {f"{name}_{number}": value for number, value in enumerate(values)}
        return f"{column} IN ({', '.join(f':{key}' for key in params)})", params

    def _name(self) -> str:
        return str(self._path)

    # -- lifecycle ---------------------------------------------------------------------------------------------
    async def open(self) -> None:
        if self._db is not None:
            return
        # isolation_level=None: the sqlite3 module must not open transactions on its own; _write does it explicitly.
        db = await aiosqlite.connect(self._path, isolation_level=None)
        try:
            db.row_factory = sqlite3.Row
            await db.execute("PRAGMA journal_mode = WAL")
            await db.execute("PRAGMA synchronous = FULL")
            await db.execute("PRAGMA foreign_keys = ON")
            await db.execute("PRAGMA busy_timeout = 10000")  # another process (a CLI) may hold the lock briefly
            self._db = db
            await self._migrate()
            # From here the writer waits for another process's lock in _when_unlocked, not in SQLite's busy handler.
            await db.execute("PRAGMA busy_timeout = 0")
            await db.execute("PRAGMA wal_autocheckpoint = 0")  # the checkpointer's job (CHECKPOINT_EVERY)
            await db.execute(f"PRAGMA cache_size = {-WRITER_CACHE_KIB}")
            checkpoints = await aiosqlite.connect(self._path, isolation_level=None)
            await checkpoints.execute("PRAGMA busy_timeout = 10000")
            self._checkpointer = _Checkpointer(checkpoints, self._lock)
            for _ in range(READERS):
                reader = await aiosqlite.connect(self._path, isolation_level=None)
                self._readers.append(reader)
                reader.row_factory = sqlite3.Row
                await reader.execute("PRAGMA query_only = ON")
                await reader.execute("PRAGMA busy_timeout = 10000")
            await _lower_priority(self._readers[-1])  # the background loops' (_SqliteReaders)
            self._reads_on = _SqliteReaders(self._readers)
            # timeout=0: a look-up never blocks the event loop waiting for a lock; _lookup falls back to the reader.
            lookups = sqlite3.connect(self._path, isolation_level=None, timeout=0)
            lookups.row_factory = sqlite3.Row
            lookups.execute("PRAGMA query_only = ON")
            self._lookups = lookups
        except BaseException:
            self._db = None
            if self._checkpointer is not None:
                checkpointer, self._checkpointer = self._checkpointer, None
                await checkpointer.close()
            readers, self._readers, self._reads_on = self._readers, [], None
            for reader in readers:
                await reader.close()
            await db.close()
            raise

    async def close(self) -> None:
        if self._db is not None:
            async with self._lock:
                if self._checkpointer is not None:
                    checkpointer, self._checkpointer = self._checkpointer, None
                    await checkpointer.close()
                db, self._db = self._db, None
                await db.close()
                readers, self._readers, self._reads_on = self._readers, [], None
                for reader in readers:
                    await reader.close()
                if self._lookups is not None:
                    lookups, self._lookups = self._lookups, None
                    lookups.close()

    # -- POST /partial's group commit --------------------------------------------------------------------------
    async def record_partials(
        self, partials: Sequence[PartialRecord], refusals: Sequence[PartialRefusal] = ()
    ) -> list[int | NotAdded]:
        if refusals or not 0 < len(partials) <= _PARTIALS_PER_INSERT:
            return await super().record_partials(partials, refusals)
        for partial in partials:
            check_new_partial(partial)
        return await self._record_partials_at_once(partials)

    async def _record_partials_at_once(self, partials: Sequence[PartialRecord]) -> list[int | NotAdded]:
        """A group commit's usual batch (partials only, up to one statement's worth) as one statement in autocommit
        mode: SQLite makes a single statement its own transaction, committed (and synced) before it returns, so the
        batch takes one trip to the writer's thread instead of four (begin, the farmers, the insert, commit).

        The statement inserts only partials of known farmers; the farmers of the rare partials it leaves out are
        then looked up, to tell a duplicate proof from an unknown farmer."""
        async with self._lock:
            await self._synced_again()
            db = self._connection()
            if db.in_transaction:  # only after an interrupted rollback (see _write): never join a stale transaction
                await db.execute("ROLLBACK")
            # One statement (one chunk): if another process holds the lock, it changed nothing and is run again.
            inserted = await _when_unlocked(lambda: _insert_new_partials(db, partials, only_known_farmers=True))
            left_out = {p.launcher_id for p in partials if p.proof_hash not in inserted}
            known = await _when_unlocked(lambda: self._known_farmers(_Sqlite(db), left_out))
        self._written()
        known |= {p.launcher_id for p in partials if p.proof_hash in inserted}
        return partial_outcomes(partials, inserted, known)

    async def _insert_partials(self, tx: _Sqlite, partials: Sequence[PartialRecord]) -> dict[bytes32, int]:
        return await _insert_new_partials(tx.db, partials)


# The writer's wait for the database's write lock while another process (``python -m pool prune``, an admin command)
# holds it. SQLite's own busy handler sleeps 1, 2, 5, 10, 15 ... ms between tries: a group commit that met a prune
# batch of 6 ms took the lock after 8 ms, one of 10 ms after 18 (measured), so the partials beside a prune waited
# up to twice as long as the batch. Tried again every millisecond (the event loop's timer resolution) instead.
WRITER_WAIT_SECONDS = 10.0
_WRITER_RETRY_SECONDS = 0.001


async def _when_unlocked(attempt: Callable[[], Awaitable[_T]]) -> _T:
    """``attempt`` (a statement that starts a transaction or is one), again while the database is locked by another
    connection, up to WRITER_WAIT_SECONDS; then the lock error. A statement refused for the lock changed nothing."""
    deadline = time.monotonic() + WRITER_WAIT_SECONDS
    while True:
        try:
            return await attempt()
        except sqlite3.OperationalError as exc:
            if exc.sqlite_errorcode & 0xFF != sqlite3.SQLITE_BUSY or time.monotonic() >= deadline:
                raise
        await asyncio.sleep(_WRITER_RETRY_SECONDS)


_PARTIALS_PER_INSERT = 100  # 700 bound values: far below SQLite's limit on one statement's parameters


async def _insert_new_partials(
    db: aiosqlite.Connection, partials: Sequence[PartialRecord], only_known_farmers: bool = False
) -> dict[bytes32, int]:
    """Insert the partials whose proof the store does not hold yet (and, if asked, whose farmer it knows); the new
    rows' ids by proof hash.

    Many rows per statement (one trip to the connection's thread each): a group commit's batch costs a few trips,
    not one per partial. Within a statement, a proof repeated after its first row conflicts with it like with any
    earlier row. Positional parameters: the hottest statement of the store binds 700 values at a time.
    """
    # The farmer's row is looked up by its primary key for each candidate row, in the same statement.
    farmer_known = "EXISTS (SELECT 1 FROM farmers WHERE farmers.launcher_id = v.column1)" if only_known_farmers else "1"
    inserted: dict[bytes32, int] = {}
    for start in range(0, len(partials), _PARTIALS_PER_INSERT):
        chunk = partials[start : start + _PARTIALS_PER_INSERT]
        values = ", ".join("(?, ?, ?, ?, ?, ?, ?)" for _ in chunk)
        rows = await db.execute_fetchall(
            # The WHERE is also what SQLite needs to parse INSERT ... SELECT ... ON CONFLICT unambiguously.
            f"""
            INSERT INTO partials (
                launcher_id, proof_hash, sp_hash, end_of_sub_slot, harvester_id, received_at, difficulty, status
            )
            SELECT v.column1, v.column2, v.column3, v.column4, v.column5, v.column6, v.column7, 'pending'
            FROM (VALUES {values}) AS v
            WHERE {farmer_known}
            ON CONFLICT (proof_hash) DO NOTHING
            RETURNING id, proof_hash
            """,
            [
                value
                for p in chunk
                for value in (
                    p.launcher_id,
                    p.proof_hash,
                    p.sp_hash,
                    int(p.end_of_sub_slot),
                    p.harvester_id,
                    p.received_at,
                    p.difficulty,
                )
            ],
        )
        inserted.update((bytes32(row["proof_hash"]), int(row["id"])) for row in rows)
    return inserted
