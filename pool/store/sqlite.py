"""SQLite implementation of the store (the default backend).

Durability first: WAL journal with ``synchronous=FULL`` so a partial answered "accepted" or a payment recorded as
submitted survives a power cut. One connection serves the whole process; an asyncio lock serialises its use, because
statements of two tasks interleaved on one connection would share (and could commit or roll back) one transaction.
Every public method is a single transaction: ``BEGIN IMMEDIATE`` takes the write lock up front, so a transaction never
fails half-way on a lock upgrade, and any exception rolls everything back.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections import defaultdict
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiosqlite

from pool.chia_adapter import CoinSpend, G1Element, PoolState, bytes32
from pool.store.abstract import (
    AbstractPoolStore,
    FarmerAlreadyExists,
    FarmerNotFound,
    InsufficientFunds,
    RoundAlreadyOpen,
    StoreError,
    check_new_partial,
)
from pool.store.models import (
    BatchStatus,
    ClaimStatus,
    Distribution,
    DistributionShare,
    FarmerRecord,
    LedgerEntry,
    LedgerKind,
    LedgerSummary,
    NotAdded,
    PartialCount,
    PartialRecord,
    PartialRefusal,
    PartialsSummary,
    PartialStatus,
    Payment,
    PaymentBatch,
    PayoutRound,
    RewardClaim,
    WebSession,
)
from pool.store.rows import (
    DIFFICULTY_SUMMARIES_SQL,
    batch_from_row,
    claim_from_row,
    distribution_from_row,
    entry_from_row,
    farmer_from_row,
    partial_from_row,
    payment_from_row,
    points_per_farmer,
    round_from_row,
    share_from_row,
    summary_from_row,
)

Migration = Sequence[str]
"""The statements that take the schema from one version to the next (run in one transaction)."""

_SCHEMA_V1: Migration = (
    """
    CREATE TABLE farmers (
        launcher_id BLOB PRIMARY KEY,
        p2_singleton_puzzle_hash BLOB NOT NULL,
        delay_time INTEGER NOT NULL,
        delay_puzzle_hash BLOB NOT NULL,
        authentication_public_key BLOB NOT NULL,
        singleton_tip BLOB NOT NULL,
        singleton_tip_state BLOB NOT NULL,
        difficulty INTEGER NOT NULL,
        payout_instructions TEXT NOT NULL,
        payout_puzzle_hash BLOB NOT NULL,
        is_pool_member INTEGER NOT NULL,
        points INTEGER NOT NULL CHECK (points >= 0),
        joined_at INTEGER NOT NULL,
        pending_difficulty INTEGER,
        pending_difficulty_at INTEGER
    )
    """,
    "CREATE INDEX farmers_p2_singleton ON farmers (p2_singleton_puzzle_hash)",
    """
    CREATE TABLE partials (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        launcher_id BLOB NOT NULL REFERENCES farmers (launcher_id),
        proof_hash BLOB NOT NULL UNIQUE,
        sp_hash BLOB NOT NULL,
        end_of_sub_slot INTEGER NOT NULL,
        harvester_id BLOB NOT NULL,
        received_at INTEGER NOT NULL,
        difficulty INTEGER NOT NULL,
        status TEXT NOT NULL CHECK (status IN ('pending', 'confirmed', 'rejected')),
        reject_reason TEXT
    )
    """,
    "CREATE INDEX partials_status_received ON partials (status, received_at)",
    "CREATE INDEX partials_launcher_received ON partials (launcher_id, received_at)",
    """
    CREATE TABLE reward_claims (
        coin_id BLOB PRIMARY KEY,
        launcher_id BLOB NOT NULL REFERENCES farmers (launcher_id),
        amount INTEGER NOT NULL,
        coin_height INTEGER NOT NULL,
        spend_bundle_name BLOB,
        status TEXT NOT NULL CHECK (status IN ('submitted', 'confirmed', 'failed')),
        submitted_at INTEGER NOT NULL,
        submitted_height INTEGER NOT NULL,
        confirmed_height INTEGER,
        error TEXT
    )
    """,
    "CREATE INDEX reward_claims_status ON reward_claims (status)",
    """
    CREATE TABLE payout_rounds (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        created_at INTEGER NOT NULL,
        scheme TEXT NOT NULL,
        total INTEGER NOT NULL,
        pool_fee INTEGER NOT NULL,
        blockchain_fees INTEGER NOT NULL,
        farmer_total INTEGER NOT NULL,
        remainder INTEGER NOT NULL,
        status TEXT NOT NULL CHECK (status IN ('open', 'done'))
    )
    """,
    # The database itself refuses a second open round, whatever the code above it does.
    "CREATE UNIQUE INDEX payout_rounds_one_open ON payout_rounds (status) WHERE status = 'open'",
    """
    CREATE TABLE payment_batches (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        round_id INTEGER NOT NULL REFERENCES payout_rounds (id),
        batch_index INTEGER NOT NULL,
        fee INTEGER NOT NULL CHECK (fee >= 0),
        status TEXT NOT NULL CHECK (status IN ('pending', 'submitted', 'confirmed')),
        tx_id BLOB,
        spend_bundle BLOB,
        confirmed_height INTEGER,
        updated_at INTEGER NOT NULL,
        UNIQUE (round_id, batch_index)
    )
    """,
    """
    CREATE TABLE payments (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        round_id INTEGER NOT NULL,
        batch_index INTEGER NOT NULL,
        puzzle_hash BLOB NOT NULL,
        amount INTEGER NOT NULL CHECK (amount >= 0),
        launcher_id BLOB REFERENCES farmers (launcher_id),
        points INTEGER NOT NULL CHECK (points >= 0),
        FOREIGN KEY (round_id, batch_index) REFERENCES payment_batches (round_id, batch_index)
    )
    """,
    "CREATE INDEX payments_launcher ON payments (launcher_id)",
)

_SCHEMA_V2_LEDGER: Migration = (
    # Mojos shared out to a farmer and not yet paid.
    "ALTER TABLE farmers ADD COLUMN owed INTEGER NOT NULL DEFAULT 0 CHECK (owed >= 0)",
    "ALTER TABLE reward_claims ADD COLUMN fee INTEGER NOT NULL DEFAULT 0 CHECK (fee >= 0)",
    "ALTER TABLE reward_claims ADD COLUMN fee_spend_bundle BLOB",
    "ALTER TABLE payment_batches ADD COLUMN submitted_height INTEGER",
    # Running balances of the two pool-level ledger accounts; CHECK makes an overdraft abort its transaction.
    "CREATE TABLE ledger_accounts (name TEXT PRIMARY KEY, balance INTEGER NOT NULL CHECK (balance >= 0))",
    # A pool that paid rounds before the ledger existed (they paid the wallet's balance) opens with what its confirmed
    # claims have not yet paid for; what those rounds paid beyond the claims (operator funds, donations) is recorded
    # once as pre_ledger_excess so that the books balance from the first day.
    """
    INSERT INTO ledger_accounts (name, balance) VALUES
        ('pool_fee_share', 0),
        ('undistributed', MAX(0,
            (SELECT COALESCE(SUM(amount), 0) FROM reward_claims WHERE status = 'confirmed')
            - (SELECT COALESCE(SUM(total - remainder), 0) FROM payout_rounds))),
        ('pre_ledger_excess', MAX(0,
            (SELECT COALESCE(SUM(total - remainder), 0) FROM payout_rounds)
            - (SELECT COALESCE(SUM(amount), 0) FROM reward_claims WHERE status = 'confirmed')))
    """,
    """
    CREATE TABLE ledger_entries (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        created_at INTEGER NOT NULL,
        kind TEXT NOT NULL,
        amount INTEGER NOT NULL CHECK (amount >= 0),
        launcher_id BLOB,
        reference TEXT NOT NULL
    )
    """,
    """
    CREATE TABLE distributions (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        created_at INTEGER NOT NULL,
        scheme TEXT NOT NULL,
        total INTEGER NOT NULL CHECK (total > 0),
        pool_fee INTEGER NOT NULL CHECK (pool_fee >= 0),
        farmer_total INTEGER NOT NULL CHECK (farmer_total >= 0),
        remainder INTEGER NOT NULL CHECK (remainder >= 0)
    )
    """,
    """
    CREATE TABLE distribution_shares (
        distribution_id INTEGER NOT NULL REFERENCES distributions (id),
        launcher_id BLOB NOT NULL REFERENCES farmers (launcher_id),
        amount INTEGER NOT NULL CHECK (amount > 0),
        points INTEGER NOT NULL CHECK (points >= 0),
        PRIMARY KEY (distribution_id, launcher_id)
    )
    """,
)

# Membership and loop robustness (issue #9): the newest PUT /farmer token accepted per farmer (a captured PUT cannot
# be replayed to undo a later change), and partials settled without a re-check because the node no longer knew their
# signage point (the pool fell behind; config partials.stale_partials decides whether they are credited).
_SCHEMA_V3_MEMBERSHIP: Migration = (
    "ALTER TABLE farmers ADD COLUMN last_put_token INTEGER",
    "ALTER TABLE partials ADD COLUMN stale INTEGER NOT NULL DEFAULT 0 CHECK (stale IN (0, 1))",
)


_SCHEMA_V4_PAGES: Migration = (
    # Partials refused at intake once the farmer's signature was verified (so nobody else can fill its chart).
    """
    CREATE TABLE partial_refusals (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        launcher_id BLOB NOT NULL REFERENCES farmers (launcher_id),
        received_at INTEGER NOT NULL,
        reason TEXT NOT NULL
    )
    """,
    "CREATE INDEX partial_refusals_launcher_received ON partial_refusals (launcher_id, received_at)",
    "CREATE INDEX partial_refusals_received ON partial_refusals (received_at)",
    "CREATE INDEX partials_received ON partials (received_at)",
    # Farmers' browser sessions (GET /login): only a hash of the cookie's token is kept.
    """
    CREATE TABLE web_sessions (
        token_hash BLOB PRIMARY KEY,
        launcher_id BLOB NOT NULL REFERENCES farmers (launcher_id),
        created_at INTEGER NOT NULL,
        expires_at INTEGER NOT NULL
    )
    """,
    "CREATE INDEX web_sessions_expires ON web_sessions (expires_at)",
)


MIGRATIONS: tuple[Migration, ...] = (_SCHEMA_V1, _SCHEMA_V2_LEDGER, _SCHEMA_V3_MEMBERSHIP, _SCHEMA_V4_PAGES)
"""MIGRATIONS[i] upgrades a database of version i to version i + 1. Append only: never edit a released step."""


class SchemaTooNew(StoreError):
    """The database was written by a newer version of the pool than this one."""


class SqlitePoolStore(AbstractPoolStore):
    def __init__(self, path: Path, *, migrations: Sequence[Migration] = MIGRATIONS) -> None:
        self._path = path
        self._migrations = tuple(migrations)
        self._db: aiosqlite.Connection | None = None
        # Plain reads go through a second connection (its own thread): in WAL mode they see every committed write
        # and never wait for a write transaction's commit (fsync), e.g. POST /partial's farmer look-ups during a
        # group commit.
        self._reader: aiosqlite.Connection | None = None
        # Look-ups by key (a farmer for every partial) run on the event loop itself: one indexed read costs a few
        # microseconds, a trip through aiosqlite's thread a hundred times that in CPU (queue, futures, wake-ups).
        # In WAL mode such a read never waits for a writer; if it ever meets a lock, it goes through the reader.
        self._lookups: sqlite3.Connection | None = None
        self._lock = asyncio.Lock()

    # -- connection and transactions ---------------------------------------------------------------------------
    def _connection(self) -> aiosqlite.Connection:
        if self._db is None:
            raise StoreError("the store is not open")
        return self._db

    @asynccontextmanager
    async def _write(self) -> AsyncIterator[aiosqlite.Connection]:
        """One write transaction; committed when the block ends, rolled back on any exception."""
        async with self._lock:
            db = self._connection()
            if db.in_transaction:
                # Only possible if a rollback was itself interrupted (a second cancellation): start clean.
                await db.execute("ROLLBACK")
            await db.execute("BEGIN IMMEDIATE")
            try:
                yield db
                await db.execute("COMMIT")
            except BaseException:
                if db.in_transaction:
                    await db.execute("ROLLBACK")
                raise

    @asynccontextmanager
    async def _snapshot(self) -> AsyncIterator[aiosqlite.Connection]:
        """Several reads that must see one state: on the writing connection, under its lock, so that no write
        transaction commits between them (and none is half done on it)."""
        async with self._lock:
            yield self._connection()

    def _read(self) -> aiosqlite.Connection:
        if self._reader is None:
            raise StoreError("the store is not open")
        return self._reader

    async def _fetchone(self, sql: str, params: Sequence[Any] = ()) -> sqlite3.Row | None:
        rows = list(await self._read().execute_fetchall(sql, params))  # one trip to the reader's thread, not three
        return rows[0] if rows else None

    async def _fetchall(self, sql: str, params: Sequence[Any] | Mapping[str, Any] = ()) -> list[sqlite3.Row]:
        return list(await self._read().execute_fetchall(sql, params))

    async def _lookup(self, sql: str, params: Sequence[Any]) -> sqlite3.Row | None:
        """The one row a key selects (or None), read on the calling thread; only for queries an index answers."""
        if self._lookups is None:
            raise StoreError("the store is not open")
        try:
            # fetchall, not fetchone: the statement runs to its end, so no read transaction stays open behind it.
            rows = self._lookups.execute(sql, params).fetchall()
        except sqlite3.OperationalError as exc:
            if exc.sqlite_errorcode not in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED):
                raise
            return await self._fetchone(sql, params)  # waits for the lock in the reader's thread
        return rows[0] if rows else None

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
            reader = await aiosqlite.connect(self._path, isolation_level=None)
            reader.row_factory = sqlite3.Row
            await reader.execute("PRAGMA query_only = ON")
            await reader.execute("PRAGMA busy_timeout = 10000")
            self._reader = reader
            # timeout=0: a look-up never blocks the event loop waiting for a lock; _lookup falls back to the reader.
            lookups = sqlite3.connect(self._path, isolation_level=None, timeout=0)
            lookups.row_factory = sqlite3.Row
            lookups.execute("PRAGMA query_only = ON")
            self._lookups = lookups
        except BaseException:
            self._db = None
            await db.close()
            raise

    async def close(self) -> None:
        if self._db is not None:
            async with self._lock:
                db, self._db = self._db, None
                await db.close()
                if self._reader is not None:
                    reader, self._reader = self._reader, None
                    await reader.close()
                if self._lookups is not None:
                    lookups, self._lookups = self._lookups, None
                    lookups.close()

    async def schema_version(self) -> int:
        async with self._snapshot() as db:
            return await _read_schema_version(db)

    async def _migrate(self) -> None:
        """Apply, in order, each migration the database has not seen; each step and its version bump commit
        together, so an interrupted upgrade resumes from the last complete step."""
        target = len(self._migrations)
        async with self._write() as db:
            await db.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
            version = await _read_schema_version(db)
            if version > target:
                raise SchemaTooNew(
                    f"{self._path} has schema version {version}, newer than this pool's {target}: "
                    "upgrade the pool software (or restore a matching backup)"
                )
            if not await _has_row(db, "SELECT 1 FROM schema_version"):
                await db.execute("INSERT INTO schema_version (version) VALUES (0)")
        for step_index in range(version, target):
            async with self._write() as db:
                for statement in self._migrations[step_index]:
                    await db.execute(statement)
                await db.execute("UPDATE schema_version SET version = ?", (step_index + 1,))

    # -- farmers -----------------------------------------------------------------------------------------------
    async def add_farmer(self, farmer: FarmerRecord) -> None:
        if farmer.owed != 0:
            raise StoreError("a new farmer is owed nothing: owed balances come only from distributions")
        async with self._write() as db:
            if await _has_row(db, "SELECT 1 FROM farmers WHERE launcher_id = ?", (farmer.launcher_id,)):
                raise FarmerAlreadyExists(farmer.launcher_id.hex())
            await db.execute(
                """
                INSERT INTO farmers (
                    launcher_id, p2_singleton_puzzle_hash, delay_time, delay_puzzle_hash, authentication_public_key,
                    singleton_tip, singleton_tip_state, difficulty, payout_instructions, payout_puzzle_hash,
                    is_pool_member, points, joined_at, pending_difficulty, pending_difficulty_at
                ) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                """,
                (
                    farmer.launcher_id,
                    farmer.p2_singleton_puzzle_hash,
                    farmer.delay_time,
                    farmer.delay_puzzle_hash,
                    bytes(farmer.authentication_public_key),
                    bytes(farmer.singleton_tip),
                    bytes(farmer.singleton_tip_state),
                    farmer.difficulty,
                    farmer.payout_instructions,
                    farmer.payout_puzzle_hash,
                    int(farmer.is_pool_member),
                    farmer.points,
                    farmer.joined_at,
                    farmer.pending_difficulty,
                    farmer.pending_difficulty_at,
                ),
            )

    async def get_farmer(self, launcher_id: bytes32) -> FarmerRecord | None:
        row = await self._lookup("SELECT * FROM farmers WHERE launcher_id = ?", (launcher_id,))
        return None if row is None else farmer_from_row(row)

    async def list_farmers(self, members_only: bool = False) -> list[FarmerRecord]:
        where = "WHERE is_pool_member = 1" if members_only else ""
        rows = await self._fetchall(f"SELECT * FROM farmers {where} ORDER BY joined_at, launcher_id")
        return [farmer_from_row(row) for row in rows]

    async def update_farmer_settings(
        self,
        launcher_id: bytes32,
        *,
        authentication_public_key: G1Element | None = None,
        payout_instructions: tuple[str, bytes32] | None = None,
        pending_difficulty: tuple[int, int] | None = None,
    ) -> None:
        changes: dict[str, Any] = {}
        if authentication_public_key is not None:
            changes["authentication_public_key"] = bytes(authentication_public_key)
        if payout_instructions is not None:
            changes["payout_instructions"], changes["payout_puzzle_hash"] = payout_instructions
        if pending_difficulty is not None:
            changes["pending_difficulty"], changes["pending_difficulty_at"] = pending_difficulty
        async with self._write() as db:
            await _update_farmer(db, launcher_id, changes)

    async def set_difficulty(self, launcher_id: bytes32, difficulty: int) -> None:
        async with self._write() as db:
            changes = {"difficulty": difficulty, "pending_difficulty": None, "pending_difficulty_at": None}
            await _update_farmer(db, launcher_id, changes)

    async def adjust_difficulty(self, launcher_id: bytes32, expected: int, difficulty: int) -> bool:
        async with self._write() as db:
            cursor = await db.execute(
                """
                UPDATE farmers SET difficulty = ?
                WHERE launcher_id = ? AND difficulty = ? AND pending_difficulty IS NULL
                """,
                (difficulty, launcher_id, expected),
            )
            if cursor.rowcount == 1:
                return True
            async with db.execute("SELECT 1 FROM farmers WHERE launcher_id = ?", (launcher_id,)) as found:
                if await found.fetchone() is None:
                    raise FarmerNotFound(launcher_id.hex())
            return False

    async def apply_due_difficulty(self, launcher_id: bytes32, now: int) -> int:
        async with self._write() as db:
            await db.execute(
                """
                UPDATE farmers
                SET difficulty = pending_difficulty, pending_difficulty = NULL, pending_difficulty_at = NULL
                WHERE launcher_id = ? AND pending_difficulty IS NOT NULL AND pending_difficulty_at <= ?
                """,
                (launcher_id, now),
            )
            async with db.execute("SELECT difficulty FROM farmers WHERE launcher_id = ?", (launcher_id,)) as cursor:
                row = await cursor.fetchone()
            if row is None:
                raise FarmerNotFound(launcher_id.hex())
            return int(row["difficulty"])

    async def update_singleton(
        self,
        launcher_id: bytes32,
        tip: CoinSpend,
        tip_state: PoolState,
        is_pool_member: bool,
        *,
        expected_tip: CoinSpend | None = None,
    ) -> bool:
        changes = {
            "singleton_tip": bytes(tip),
            "singleton_tip_state": bytes(tip_state),
            "is_pool_member": int(is_pool_member),
        }
        async with self._write() as db:
            if expected_tip is None:
                await _update_farmer(db, launcher_id, changes)
                return True
            assignments = ", ".join(f"{column} = ?" for column in changes)
            cursor = await db.execute(
                f"UPDATE farmers SET {assignments} WHERE launcher_id = ? AND singleton_tip = ?",
                (*changes.values(), launcher_id, bytes(expected_tip)),
            )
            if cursor.rowcount == 1:
                return True
            if not await _has_row(db, "SELECT 1 FROM farmers WHERE launcher_id = ?", (launcher_id,)):
                raise FarmerNotFound(launcher_id.hex())
            return False

    async def accept_put_token(self, launcher_id: bytes32, token: int) -> bool:
        async with self._write() as db:
            cursor = await db.execute(
                """
                UPDATE farmers SET last_put_token = ?
                WHERE launcher_id = ? AND (last_put_token IS NULL OR last_put_token < ?)
                """,
                (token, launcher_id, token),
            )
            if cursor.rowcount == 1:
                return True
            if not await _has_row(db, "SELECT 1 FROM farmers WHERE launcher_id = ?", (launcher_id,)):
                raise FarmerNotFound(launcher_id.hex())
            return False

    # -- partials ----------------------------------------------------------------------------------------------
    async def record_partials(
        self, partials: Sequence[PartialRecord], refusals: Sequence[PartialRefusal] = ()
    ) -> list[int | NotAdded]:
        for partial in partials:
            check_new_partial(partial)
        if not refusals and 0 < len(partials) <= _PARTIALS_PER_INSERT:
            return await self._record_partials_at_once(partials)
        async with self._write() as db:
            known = await _known_farmers(db, {p.launcher_id for p in partials} | {r.launcher_id for r in refusals})
            inserted = await _insert_new_partials(db, [partial for partial in partials if partial.launcher_id in known])
            added: list[int | NotAdded] = []
            for partial in partials:
                if partial.launcher_id not in known:
                    added.append(NotAdded.UNKNOWN_FARMER)
                else:
                    # Not inserted (or already given to an earlier copy in this batch): the same proof was received
                    # before; it earns points once.
                    added.append(inserted.pop(partial.proof_hash, NotAdded.DUPLICATE))
            refused = [(r.launcher_id, r.received_at, r.reason) for r in refusals if r.launcher_id in known]
            if refused:
                await db.executemany(
                    "INSERT INTO partial_refusals (launcher_id, received_at, reason) VALUES (?, ?, ?)", refused
                )
            return added

    async def _record_partials_at_once(self, partials: Sequence[PartialRecord]) -> list[int | NotAdded]:
        """A group commit's usual batch (partials only, up to one statement's worth) as one statement in autocommit
        mode: SQLite makes a single statement its own transaction, committed (and synced) before it returns, so the
        batch takes one trip to the writer's thread instead of four (begin, the farmers, the insert, commit).

        The statement inserts only partials of known farmers; the rare partial it leaves out is then told apart as
        a duplicate proof or an unknown farmer."""
        async with self._lock:
            db = self._connection()
            if db.in_transaction:  # only after an interrupted rollback (see _write): never join a stale transaction
                await db.execute("ROLLBACK")
            inserted = await _insert_new_partials(db, partials, only_known_farmers=True)
            left_out = {p.launcher_id for p in partials if p.proof_hash not in inserted}
            known = await _known_farmers(db, left_out) if left_out else set()
        return [
            inserted.pop(p.proof_hash)
            if p.proof_hash in inserted
            else (NotAdded.DUPLICATE if p.launcher_id in known else NotAdded.UNKNOWN_FARMER)
            for p in partials
        ]

    async def get_partial(self, partial_id: int) -> PartialRecord | None:
        row = await self._lookup("SELECT * FROM partials WHERE id = ?", (partial_id,))
        return None if row is None else partial_from_row(row)

    async def pending_partials(self, received_before: int, limit: int = 1000) -> list[PartialRecord]:
        rows = await self._fetchall(
            """
            SELECT * FROM partials WHERE status = 'pending' AND received_at < ?
            ORDER BY received_at, id LIMIT ?
            """,
            (received_before, limit),
        )
        return [partial_from_row(row) for row in rows]

    async def confirm_partials(self, partial_ids: Sequence[int]) -> list[int]:
        if not partial_ids:
            return []
        marks = ", ".join("?" for _ in partial_ids)
        async with self._write() as db:
            # The status guard and the credit share one transaction: a partial moves out of pending once, so its
            # points are added once, however often or concurrently it is confirmed.
            async with db.execute(
                f"UPDATE partials SET status = 'confirmed' WHERE id IN ({marks}) AND status = 'pending' "
                "RETURNING id, launcher_id, difficulty",
                list(partial_ids),
            ) as cursor:
                rows = list(await cursor.fetchall())
            await db.executemany(
                "UPDATE farmers SET points = points + ? WHERE launcher_id = ?",
                [(points, launcher_id) for launcher_id, points in points_per_farmer(rows).items()],
            )
            return sorted(int(row["id"]) for row in rows)

    async def settle_stale_partial(self, partial_id: int, credit: bool, reason: str) -> bool:
        async with self._write() as db:
            if not credit:
                cursor = await db.execute(
                    "UPDATE partials SET status = 'rejected', stale = 1, reject_reason = ? "
                    "WHERE id = ? AND status = 'pending'",
                    (reason, partial_id),
                )
                return cursor.rowcount == 1
            # Credited like confirm_partial: the status guard and the credit share this transaction.
            async with db.execute(
                "UPDATE partials SET status = 'confirmed', stale = 1 WHERE id = ? AND status = 'pending' "
                "RETURNING launcher_id, difficulty",
                (partial_id,),
            ) as cursor:
                row = await cursor.fetchone()
            if row is None:
                return False
            await db.execute(
                "UPDATE farmers SET points = points + ? WHERE launcher_id = ?", (row["difficulty"], row["launcher_id"])
            )
            return True

    async def count_stale_partials(self) -> int:
        row = await self._fetchone("SELECT COUNT(*) AS n FROM partials WHERE stale = 1")
        return 0 if row is None else int(row["n"])

    async def reject_partial(self, partial_id: int, reason: str) -> bool:
        async with self._write() as db:
            cursor = await db.execute(
                "UPDATE partials SET status = 'rejected', reject_reason = ? WHERE id = ? AND status = 'pending'",
                (reason, partial_id),
            )
            return cursor.rowcount == 1

    async def recent_partials(
        self, launcher_id: bytes32, since: int, statuses: Sequence[PartialStatus] | None = None
    ) -> list[PartialRecord]:
        sql = "SELECT * FROM partials WHERE launcher_id = ? AND received_at >= ?"
        params: list[Any] = [launcher_id, since]
        if statuses is not None:
            if not statuses:
                return []
            sql += f" AND status IN ({', '.join('?' for _ in statuses)})"
            params.extend(status.value for status in statuses)
        rows = await self._fetchall(sql + " ORDER BY received_at DESC, id DESC", params)
        return [partial_from_row(row) for row in rows]

    async def difficulty_summaries(self, since: int, window_start: int) -> dict[bytes32, PartialsSummary]:
        sql = DIFFICULTY_SUMMARIES_SQL.format(window=":window", since=":since")
        rows = await self._fetchall(sql, {"window": window_start, "since": since})
        return dict(summary_from_row(row) for row in rows)

    async def confirmed_points_since(self, since: int) -> dict[bytes32, int]:
        rows = await self._fetchall(
            """
            SELECT launcher_id, SUM(difficulty) AS points FROM partials
            WHERE status = 'confirmed' AND received_at >= ? GROUP BY launcher_id
            """,
            (since,),
        )
        return {bytes32(row["launcher_id"]): int(row["points"]) for row in rows}

    async def add_partial_refusal(self, launcher_id: bytes32, received_at: int, reason: str) -> None:
        async with self._write() as db:
            if not await _has_row(db, "SELECT 1 FROM farmers WHERE launcher_id = ?", (launcher_id,)):
                raise FarmerNotFound(launcher_id.hex())
            await db.execute(
                "INSERT INTO partial_refusals (launcher_id, received_at, reason) VALUES (?, ?, ?)",
                (launcher_id, received_at, reason),
            )

    async def partial_counts(self, since: int, launcher_id: bytes32 | None = None) -> list[PartialCount]:
        farmer = "" if launcher_id is None else " AND launcher_id = ?"
        params: list[Any] = [since] if launcher_id is None else [since, launcher_id]
        rows = await self._fetchall(
            f"""
            SELECT hour, outcome, SUM(n) AS n, SUM(points) AS points FROM (
                SELECT received_at - received_at % 3600 AS hour,
                       CASE WHEN status = 'rejected' THEN COALESCE(reject_reason, 'rejected') ELSE status END
                           AS outcome,
                       COUNT(*) AS n, SUM(difficulty) AS points
                FROM partials WHERE received_at >= ?{farmer} GROUP BY hour, outcome
                UNION ALL
                SELECT received_at - received_at % 3600 AS hour, reason AS outcome, COUNT(*) AS n, 0 AS points
                FROM partial_refusals WHERE received_at >= ?{farmer} GROUP BY hour, outcome
            ) GROUP BY hour, outcome ORDER BY hour, outcome
            """,
            params + params,
        )
        return [PartialCount(int(r["hour"]), str(r["outcome"]), int(r["n"]), int(r["points"])) for r in rows]

    # -- browser sessions --------------------------------------------------------------------------------------
    async def add_session(self, session: WebSession) -> None:
        async with self._write() as db:
            await db.execute("DELETE FROM web_sessions WHERE expires_at <= ?", (session.created_at,))
            await db.execute(
                "INSERT INTO web_sessions (token_hash, launcher_id, created_at, expires_at) VALUES (?, ?, ?, ?)",
                (session.token_hash, session.launcher_id, session.created_at, session.expires_at),
            )

    async def get_session(self, token_hash: bytes32, now: int) -> WebSession | None:
        row = await self._fetchone(
            "SELECT * FROM web_sessions WHERE token_hash = ? AND expires_at > ?", (token_hash, now)
        )
        if row is None:
            return None
        return WebSession(
            bytes32(row["token_hash"]), bytes32(row["launcher_id"]), int(row["created_at"]), int(row["expires_at"])
        )

    # -- block rewards -----------------------------------------------------------------------------------------
    async def add_reward_claims(self, claims: Sequence[RewardClaim]) -> bool:
        for claim in claims:
            # A claim born CONFIRMED would be counted as claimed but never credited; one born FAILED would have its
            # fee charged but never refunded: the ledger would no longer balance.
            if claim.status is not ClaimStatus.SUBMITTED:
                raise StoreError(f"a new claim must be submitted, got {claim.status.value}")
            if claim.fee < 0:
                raise StoreError(f"claim of coin {claim.coin_id.hex()} has a negative fee")
        try:
            return await self._add_reward_claims(claims)
        except _ClaimExists:
            return False

    async def _add_reward_claims(self, claims: Sequence[RewardClaim]) -> bool:
        async with self._write() as db:
            for claim in claims:
                async with db.execute("SELECT status FROM reward_claims WHERE coin_id = ?", (claim.coin_id,)) as cursor:
                    existing = await cursor.fetchone()
                if existing is not None:
                    if existing["status"] != ClaimStatus.FAILED.value:
                        # A live or confirmed claim: spending the coin again would only be refused. Raising rolls
                        # back the claims of this bundle recorded so far.
                        raise _ClaimExists()
                    await db.execute("DELETE FROM reward_claims WHERE coin_id = ?", (claim.coin_id,))
                await _insert_claim(db, claim)
                if claim.fee > 0:
                    await _debit_account(db, _POOL_FEE_SHARE, claim.fee)
                    await _journal(db, LedgerKind.CLAIM_FEE, claim.fee, claim.launcher_id, claim.coin_id.hex())
            return True

    async def get_reward_claim(self, coin_id: bytes32) -> RewardClaim | None:
        row = await self._lookup("SELECT * FROM reward_claims WHERE coin_id = ?", (coin_id,))
        return None if row is None else claim_from_row(row)

    async def reward_claims(self, status: ClaimStatus | None = None) -> list[RewardClaim]:
        if status is None:
            rows = await self._fetchall("SELECT * FROM reward_claims ORDER BY coin_height, coin_id")
        else:
            rows = await self._fetchall(
                "SELECT * FROM reward_claims WHERE status = ? ORDER BY coin_height, coin_id", (status.value,)
            )
        return [claim_from_row(row) for row in rows]

    async def update_reward_claim(
        self, coin_id: bytes32, status: ClaimStatus, confirmed_height: int | None = None, error: str | None = None
    ) -> None:
        async with self._write() as db:
            async with db.execute("SELECT * FROM reward_claims WHERE coin_id = ?", (coin_id,)) as cursor:
                row = await cursor.fetchone()
            if row is None:
                raise StoreError(f"no reward claim for coin {coin_id.hex()}")
            claim = claim_from_row(row)
            # Only SUBMITTED -> CONFIRMED or FAILED: a settled claim moved back to SUBMITTED could be settled again
            # (credited twice, or its fee refunded twice).
            if status is ClaimStatus.SUBMITTED or claim.status is not ClaimStatus.SUBMITTED:
                raise StoreError(
                    f"claim of coin {coin_id.hex()} is {claim.status.value}: it cannot become {status.value}"
                )
            # None keeps what is recorded, so a later status change does not erase an earlier height or error.
            await db.execute(
                """
                UPDATE reward_claims
                SET status = ?, confirmed_height = COALESCE(?, confirmed_height), error = COALESCE(?, error)
                WHERE coin_id = ?
                """,
                (status.value, confirmed_height, error, coin_id),
            )
            if status is ClaimStatus.CONFIRMED:
                await _credit_account(db, _UNDISTRIBUTED, claim.amount)
                await _journal(db, LedgerKind.CLAIM, claim.amount, claim.launcher_id, coin_id.hex())
            elif status is ClaimStatus.FAILED and claim.fee > 0:
                # The fee spend asserts the absorb: a claim that did not land did not pay its fee either.
                await _credit_account(db, _POOL_FEE_SHARE, claim.fee)
                await _journal(db, LedgerKind.CLAIM_FEE_REFUND, claim.fee, claim.launcher_id, coin_id.hex())

    # -- the ledger --------------------------------------------------------------------------------------------
    async def distribute(self, distribution: Distribution, shares: Sequence[DistributionShare]) -> int:
        _validate_distribution(distribution, shares)
        async with self._write() as db:
            await _debit_account(db, _UNDISTRIBUTED, distribution.total)
            cursor = await db.execute(
                """
                INSERT INTO distributions (created_at, scheme, total, pool_fee, farmer_total, remainder)
                VALUES (?, ?, ?, ?, ?, ?)
                """,
                (
                    distribution.created_at,
                    distribution.scheme,
                    distribution.total,
                    distribution.pool_fee,
                    distribution.farmer_total,
                    distribution.remainder,
                ),
            )
            distribution_id = _row_id(cursor)
            reference = f"distribution {distribution_id}"
            if distribution.pool_fee > 0:
                await _credit_account(db, _POOL_FEE_SHARE, distribution.pool_fee)
                await _journal(db, LedgerKind.DISTRIBUTION_POOL_FEE, distribution.pool_fee, None, reference)
            for share in shares:
                await _consume_points(db, share.launcher_id, share.points)
                await db.execute(
                    "UPDATE farmers SET owed = owed + ? WHERE launcher_id = ?", (share.amount, share.launcher_id)
                )
                await db.execute(
                    "INSERT INTO distribution_shares (distribution_id, launcher_id, amount, points) "
                    "VALUES (?, ?, ?, ?)",
                    (distribution_id, share.launcher_id, share.amount, share.points),
                )
                await _journal(db, LedgerKind.DISTRIBUTION_SHARE, share.amount, share.launcher_id, reference)
            return distribution_id

    async def distributions(self, limit: int = 100) -> list[Distribution]:
        rows = await self._fetchall("SELECT * FROM distributions ORDER BY id DESC LIMIT ?", (limit,))
        return [distribution_from_row(row) for row in rows]

    async def distribution_shares(self, distribution_id: int) -> list[DistributionShare]:
        rows = await self._fetchall(
            "SELECT * FROM distribution_shares WHERE distribution_id = ? ORDER BY launcher_id", (distribution_id,)
        )
        return [share_from_row(row) for row in rows]

    async def ledger(self) -> LedgerSummary:
        # Under the lock: one consistent snapshot (no write transaction can commit between these reads).
        async with self._snapshot() as db:

            async def total(sql: str) -> int:
                async with db.execute(sql) as cursor:
                    row = await cursor.fetchone()
                return int(row[0]) if row is not None and row[0] is not None else 0

            in_flight = """
                SELECT SUM(p.amount) FROM payments p JOIN payment_batches b
                ON b.round_id = p.round_id AND b.batch_index = p.batch_index
                WHERE b.status != 'confirmed' AND p.launcher_id IS NOT NULL
            """
            return LedgerSummary(
                confirmed_claims=await total("SELECT SUM(amount) FROM reward_claims WHERE status = 'confirmed'"),
                farmer_payments=await total("SELECT SUM(amount) FROM payments WHERE launcher_id IS NOT NULL"),
                farmer_payments_in_flight=await total(in_flight),
                owed=await total("SELECT SUM(owed) FROM farmers"),
                pool_fee_share=await total("SELECT balance FROM ledger_accounts WHERE name = 'pool_fee_share'"),
                pool_fee_payments=await total("SELECT SUM(amount) FROM payments WHERE launcher_id IS NULL"),
                blockchain_fees=await total("SELECT SUM(fee) FROM payment_batches")
                + await total("SELECT SUM(fee) FROM reward_claims WHERE status != 'failed'"),
                undistributed=await total("SELECT balance FROM ledger_accounts WHERE name = 'undistributed'"),
                pre_ledger_excess=await total("SELECT balance FROM ledger_accounts WHERE name = 'pre_ledger_excess'"),
            )

    async def ledger_entries(self, limit: int = 1000) -> list[LedgerEntry]:
        rows = await self._fetchall("SELECT * FROM ledger_entries ORDER BY id DESC LIMIT ?", (limit,))
        return [entry_from_row(row) for row in rows]

    # -- payouts -----------------------------------------------------------------------------------------------
    async def create_payout_round(
        self, payout_round: PayoutRound, payments: Sequence[Payment], batch_fees: Sequence[int]
    ) -> int:
        owed_by_farmer, fee_address_total = _validate_round(payout_round, payments, batch_fees)
        async with self._write() as db:
            if await _has_row(db, "SELECT 1 FROM payout_rounds WHERE status = 'open'"):
                raise RoundAlreadyOpen("a payout round is still open")
            round_id = await _insert_round(db, payout_round)
            for launcher_id, amount in owed_by_farmer.items():
                await _take_owed(db, launcher_id, amount)
                await _journal(db, LedgerKind.PAYMENT, amount, launcher_id, f"round {round_id}")
            if fee_address_total > 0:
                await _debit_account(db, _POOL_FEE_SHARE, fee_address_total)
                await _journal(db, LedgerKind.POOL_FEE_PAYMENT, fee_address_total, None, f"round {round_id}")
            for index, fee in enumerate(batch_fees):
                await db.execute(
                    "INSERT INTO payment_batches (round_id, batch_index, fee, status, updated_at) "
                    "VALUES (?, ?, ?, 'pending', ?)",
                    (round_id, index, fee, payout_round.created_at),
                )
                if fee > 0:
                    await _debit_account(db, _POOL_FEE_SHARE, fee)
                    await _journal(db, LedgerKind.BATCH_FEE, fee, None, f"round {round_id} batch {index}")
            for payment in payments:
                await db.execute(
                    "INSERT INTO payments (round_id, batch_index, puzzle_hash, amount, launcher_id, points) "
                    "VALUES (?, ?, ?, ?, ?, ?)",
                    (
                        round_id,
                        payment.batch_index,
                        payment.puzzle_hash,
                        payment.amount,
                        payment.launcher_id,
                        payment.points,
                    ),
                )
            return round_id

    async def open_round(self) -> PayoutRound | None:
        row = await self._fetchone("SELECT * FROM payout_rounds WHERE status = 'open'")
        return None if row is None else round_from_row(row)

    async def get_round(self, round_id: int) -> PayoutRound | None:
        row = await self._lookup("SELECT * FROM payout_rounds WHERE id = ?", (round_id,))
        return None if row is None else round_from_row(row)

    async def rounds(self, limit: int = 100) -> list[PayoutRound]:
        rows = await self._fetchall("SELECT * FROM payout_rounds ORDER BY id DESC LIMIT ?", (limit,))
        return [round_from_row(row) for row in rows]

    async def batches(self, round_id: int) -> list[PaymentBatch]:
        rows = await self._fetchall(
            "SELECT * FROM payment_batches WHERE round_id = ? ORDER BY batch_index", (round_id,)
        )
        return [batch_from_row(row) for row in rows]

    async def payments(
        self, *, round_id: int | None = None, batch_index: int | None = None, launcher_id: bytes32 | None = None
    ) -> list[Payment]:
        conditions: list[str] = []
        params: list[Any] = []
        for column, value in (("round_id", round_id), ("batch_index", batch_index), ("launcher_id", launcher_id)):
            if value is not None:
                conditions.append(f"{column} = ?")
                params.append(value)
        where = f"WHERE {' AND '.join(conditions)}" if conditions else ""
        rows = await self._fetchall(f"SELECT * FROM payments {where} ORDER BY id", params)
        return [payment_from_row(row) for row in rows]

    async def mark_batch_submitted(
        self, batch_id: int, tx_id: bytes32, spend_bundle: bytes, now: int, height: int | None = None
    ) -> None:
        async with self._write() as db:
            await _move_batch(
                db,
                batch_id,
                BatchStatus.PENDING,
                BatchStatus.SUBMITTED,
                {"tx_id": tx_id, "spend_bundle": bytes(spend_bundle), "updated_at": now, "submitted_height": height},
            )

    async def replace_batch_transaction(
        self, batch_id: int, tx_id: bytes32, spend_bundle: bytes, fee: int, now: int, height: int
    ) -> None:
        async with self._write() as db:
            batch = await _batch_in(db, batch_id)
            if batch.status is not BatchStatus.SUBMITTED:
                raise StoreError(f"batch {batch_id} is {batch.status.value}: only a submitted batch is replaced")
            if fee < batch.fee:
                raise StoreError(f"batch {batch_id}: a replacement must not pay less fee ({fee} < {batch.fee})")
            increase = fee - batch.fee
            if increase > 0:
                await _debit_account(db, _POOL_FEE_SHARE, increase)
                await _journal(db, LedgerKind.BATCH_FEE, increase, None, _batch_reference(batch))
                await db.execute(
                    "UPDATE payout_rounds SET blockchain_fees = blockchain_fees + ?, total = total + ? WHERE id = ?",
                    (increase, increase, batch.round_id),
                )
            await db.execute(
                """
                UPDATE payment_batches SET tx_id = ?, spend_bundle = ?, fee = ?, updated_at = ?, submitted_height = ?
                WHERE id = ?
                """,
                (tx_id, bytes(spend_bundle), fee, now, height, batch_id),
            )

    async def mark_batch_confirmed(self, batch_id: int, height: int, now: int, fee_paid: int | None = None) -> None:
        if fee_paid is not None and fee_paid < 0:
            raise StoreError(f"batch {batch_id}: a transaction cannot pay a negative fee ({fee_paid})")
        async with self._write() as db:
            batch = await _batch_in(db, batch_id)
            round_id = await _move_batch(
                db,
                batch_id,
                BatchStatus.SUBMITTED,
                BatchStatus.CONFIRMED,
                {"confirmed_height": height, "updated_at": now},
            )
            if fee_paid is not None and fee_paid < batch.fee:
                # An earlier, cheaper version of the transaction landed: the difference was never spent.
                refund = batch.fee - fee_paid
                await db.execute("UPDATE payment_batches SET fee = ? WHERE id = ?", (fee_paid, batch_id))
                await db.execute(
                    "UPDATE payout_rounds SET blockchain_fees = blockchain_fees - ?, total = total - ? WHERE id = ?",
                    (refund, refund, round_id),
                )
                await _credit_account(db, _POOL_FEE_SHARE, refund)
                await _journal(db, LedgerKind.BATCH_FEE_REFUND, refund, None, _batch_reference(batch))
            if not await _has_row(
                db, "SELECT 1 FROM payment_batches WHERE round_id = ? AND status != 'confirmed'", (round_id,)
            ):
                await db.execute("UPDATE payout_rounds SET status = 'done' WHERE id = ?", (round_id,))

    async def reset_batch(self, batch_id: int, now: int) -> None:
        async with self._write() as db:
            # The old transaction is forgotten: a new one, from other coins, will be built and recorded.
            await _move_batch(
                db,
                batch_id,
                BatchStatus.SUBMITTED,
                BatchStatus.PENDING,
                {"tx_id": None, "spend_bundle": None, "updated_at": now},
            )

    async def batch_status(self, batch_id: int) -> BatchStatus | None:
        row = await self._lookup("SELECT status FROM payment_batches WHERE id = ?", (batch_id,))
        return None if row is None else BatchStatus(row["status"])


# -- helpers that run inside a transaction -----------------------------------------------------------------------
async def _has_row(db: aiosqlite.Connection, sql: str, params: Sequence[Any] = ()) -> bool:
    async with db.execute(sql, params) as cursor:
        return await cursor.fetchone() is not None


async def _known_farmers(db: aiosqlite.Connection, launcher_ids: set[bytes32]) -> set[bytes32]:
    if not launcher_ids:
        return set()
    marks = ", ".join("?" for _ in launcher_ids)
    rows = await db.execute_fetchall(
        f"SELECT launcher_id FROM farmers WHERE launcher_id IN ({marks})", list(launcher_ids)
    )
    return {bytes32(row["launcher_id"]) for row in rows}


_PARTIALS_PER_INSERT = 100  # 700 bound values: far below SQLite's limit on one statement's parameters


async def _insert_new_partials(
    db: aiosqlite.Connection, partials: Sequence[PartialRecord], only_known_farmers: bool = False
) -> dict[bytes32, int]:
    """Insert the partials whose proof the store does not hold yet (and, if asked, whose farmer it knows); the new
    rows' ids by proof hash.

    Many rows per statement (one trip to the connection's thread each): a group commit's batch costs a few trips,
    not one per partial. Within a statement, a proof repeated after its first row conflicts with it like with any
    earlier row.
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


async def _read_schema_version(db: aiosqlite.Connection) -> int:
    if not await _has_row(db, "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'schema_version'"):
        return 0
    async with db.execute("SELECT version FROM schema_version") as cursor:
        row = await cursor.fetchone()
    return 0 if row is None else int(row["version"])


async def _update_farmer(db: aiosqlite.Connection, launcher_id: bytes32, changes: dict[str, Any]) -> None:
    """Set the given columns (names come from this module, never from input); FarmerNotFound if unknown."""
    if not changes:
        if not await _has_row(db, "SELECT 1 FROM farmers WHERE launcher_id = ?", (launcher_id,)):
            raise FarmerNotFound(launcher_id.hex())
        return
    assignments = ", ".join(f"{column} = ?" for column in changes)
    cursor = await db.execute(
        f"UPDATE farmers SET {assignments} WHERE launcher_id = ?", (*changes.values(), launcher_id)
    )
    if cursor.rowcount == 0:
        raise FarmerNotFound(launcher_id.hex())


def _validate_round(
    payout_round: PayoutRound, payments: Sequence[Payment], batch_fees: Sequence[int]
) -> tuple[dict[bytes32, int], int]:
    """Check a round before writing anything; returns the mojos to take from each farmer's owed balance and the
    total paid to the fee address."""
    if not batch_fees:
        raise StoreError("a payout round needs at least one batch")
    if any(fee < 0 for fee in batch_fees):
        raise StoreError("a batch fee cannot be negative")
    owed_by_farmer: dict[bytes32, int] = defaultdict(int)
    fee_address_total = 0
    for payment in payments:
        if not 0 <= payment.batch_index < len(batch_fees):
            raise StoreError(
                f"payment to {payment.puzzle_hash.hex()} names batch {payment.batch_index}, which the "
                f"round does not have"
            )
        if payment.amount <= 0:
            raise StoreError(f"payment to {payment.puzzle_hash.hex()} has a non-positive amount")
        if payment.points != 0:
            # Points become owed mojos at distribution; a payment that said it consumed points would not have.
            raise StoreError(
                f"payment to {payment.puzzle_hash.hex()} claims {payment.points} points: a round takes none"
            )
        if payment.launcher_id is None:
            fee_address_total += payment.amount
            continue
        owed_by_farmer[payment.launcher_id] += payment.amount
    farmer_total = sum(owed_by_farmer.values())
    figures = (payout_round.farmer_total, payout_round.pool_fee, payout_round.blockchain_fees)
    if figures != (farmer_total, fee_address_total, sum(batch_fees)) or payout_round.total != sum(figures):
        raise StoreError("the round's totals do not match its payments and batch fees")
    return owed_by_farmer, fee_address_total


def _validate_distribution(distribution: Distribution, shares: Sequence[DistributionShare]) -> None:
    if distribution.total <= 0 or distribution.pool_fee < 0 or distribution.remainder < 0:
        raise StoreError("a distribution needs a positive total and no negative part")
    if distribution.total != distribution.pool_fee + distribution.farmer_total:
        raise StoreError("a distribution's total must be its pool fee plus its farmers' shares")
    if sum(share.amount for share in shares) != distribution.farmer_total:
        raise StoreError("a distribution's shares must add up to its farmer total")
    if any(share.amount <= 0 or share.points < 0 for share in shares):
        raise StoreError("a distribution share needs a positive amount and no negative points")
    if len({share.launcher_id for share in shares}) != len(shares):
        raise StoreError("a farmer appears twice in one distribution")


_UNDISTRIBUTED = "undistributed"
_POOL_FEE_SHARE = "pool_fee_share"


class _ClaimExists(StoreError):
    """Internal: a coin of the claims being added already has a live claim (rolls the whole bundle back)."""


async def _credit_account(db: aiosqlite.Connection, name: str, amount: int) -> None:
    await db.execute("UPDATE ledger_accounts SET balance = balance + ? WHERE name = ?", (amount, name))


async def _debit_account(db: aiosqlite.Connection, name: str, amount: int) -> None:
    cursor = await db.execute(
        "UPDATE ledger_accounts SET balance = balance - ? WHERE name = ? AND balance >= ?", (amount, name, amount)
    )
    if cursor.rowcount == 0:
        raise InsufficientFunds(f"the {name.replace('_', ' ')} is smaller than {amount} mojos")


async def _take_owed(db: aiosqlite.Connection, launcher_id: bytes32, amount: int) -> None:
    cursor = await db.execute(
        "UPDATE farmers SET owed = owed - ? WHERE launcher_id = ? AND owed >= ?", (amount, launcher_id, amount)
    )
    if cursor.rowcount == 0:
        if not await _has_row(db, "SELECT 1 FROM farmers WHERE launcher_id = ?", (launcher_id,)):
            raise FarmerNotFound(f"payment to unknown farmer {launcher_id.hex()}")
        raise InsufficientFunds(f"farmer {launcher_id.hex()} is owed less than the {amount} mojos of its payment")


async def _journal(
    db: aiosqlite.Connection, kind: LedgerKind, amount: int, launcher_id: bytes32 | None, reference: str
) -> None:
    await db.execute(
        "INSERT INTO ledger_entries (created_at, kind, amount, launcher_id, reference) VALUES (?, ?, ?, ?, ?)",
        (int(time.time()), kind.value, amount, launcher_id, reference),
    )


async def _insert_claim(db: aiosqlite.Connection, claim: RewardClaim) -> None:
    await db.execute(
        """
        INSERT INTO reward_claims (
            coin_id, launcher_id, amount, coin_height, spend_bundle_name, status, submitted_at,
            submitted_height, confirmed_height, error, fee, fee_spend_bundle
        ) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
        """,
        (
            claim.coin_id,
            claim.launcher_id,
            claim.amount,
            claim.coin_height,
            claim.spend_bundle_name,
            claim.status.value,
            claim.submitted_at,
            claim.submitted_height,
            claim.confirmed_height,
            claim.error,
            claim.fee,
            claim.fee_spend_bundle,
        ),
    )


async def _batch_in(db: aiosqlite.Connection, batch_id: int) -> PaymentBatch:
    async with db.execute("SELECT * FROM payment_batches WHERE id = ?", (batch_id,)) as cursor:
        row = await cursor.fetchone()
    if row is None:
        raise StoreError(f"no batch {batch_id}")
    return batch_from_row(row)


def _batch_reference(batch: PaymentBatch) -> str:
    return f"round {batch.round_id} batch {batch.index}"


def _row_id(cursor: aiosqlite.Cursor) -> int:
    if cursor.lastrowid is None:  # pragma: no cover - sqlite always reports the rowid of an INSERT
        raise StoreError("the new row got no id")
    return cursor.lastrowid


async def _insert_round(db: aiosqlite.Connection, payout_round: PayoutRound) -> int:
    cursor = await db.execute(
        """
        INSERT INTO payout_rounds (
            created_at, scheme, total, pool_fee, blockchain_fees, farmer_total, remainder, status
        ) VALUES (?, ?, ?, ?, ?, ?, ?, 'open')
        """,
        (
            payout_round.created_at,
            payout_round.scheme,
            payout_round.total,
            payout_round.pool_fee,
            payout_round.blockchain_fees,
            payout_round.farmer_total,
            payout_round.remainder,
        ),
    )
    return _row_id(cursor)


async def _consume_points(db: aiosqlite.Connection, launcher_id: bytes32, points: int) -> None:
    """Take ``points`` from a farmer's balance; raising rolls back the whole distribution, so no share is ever
    recorded without the points it takes, and no balance goes below zero."""
    cursor = await db.execute(
        "UPDATE farmers SET points = points - ? WHERE launcher_id = ? AND points >= ?", (points, launcher_id, points)
    )
    if cursor.rowcount == 0:
        if not await _has_row(db, "SELECT 1 FROM farmers WHERE launcher_id = ?", (launcher_id,)):
            raise FarmerNotFound(f"payment to unknown farmer {launcher_id.hex()}")
        raise StoreError(f"farmer {launcher_id.hex()} has fewer than the {points} points its payment consumes")


async def _move_batch(
    db: aiosqlite.Connection, batch_id: int, from_status: BatchStatus, to_status: BatchStatus, changes: dict[str, Any]
) -> int:
    """Change a batch's status only from ``from_status``; StoreError (nothing changed) otherwise. Returns its round."""
    assignments = ", ".join(f"{column} = ?" for column in ("status", *changes))
    async with db.execute(
        f"UPDATE payment_batches SET {assignments} WHERE id = ? AND status = ? RETURNING round_id",
        (to_status.value, *changes.values(), batch_id, from_status.value),
    ) as cursor:
        row = await cursor.fetchone()
    if row is None:
        async with db.execute("SELECT status FROM payment_batches WHERE id = ?", (batch_id,)) as cursor:
            current = await cursor.fetchone()
        found = "no such batch" if current is None else f"it is {current['status']}"
        raise StoreError(f"batch {batch_id} cannot go {from_status.value} -> {to_status.value}: {found}")
    return int(row["round_id"])
