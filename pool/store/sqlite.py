"""SQLite dialect of the store (the default backend); the store itself, every method and money rule, is sql.py.

Durability first: WAL journal with ``synchronous=FULL`` so a partial answered "accepted" or a payment recorded as
submitted survives a power cut. One connection serves the process's writes; an asyncio lock serialises its use,
because statements of two tasks interleaved on one connection would share (and could commit or roll back) one
transaction. Every public method is a single transaction: ``BEGIN IMMEDIATE`` takes the write lock up front, so a
transaction never fails half-way on a lock upgrade, and any exception rolls everything back. That lock is the
database's only write lock, so write transactions (money-moving or not, of this process or another) always run one at
a time: the ledger needs no lock of its own here.

What is SQLite's own: the schema (BLOB keys, INTEGER mojos: SQLite's integers are 64-bit), the connections (a writer,
a reader, and key look-ups answered on the event loop), and POST /partial's group commit in one statement.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator, Collection, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiosqlite

from pool.chia_adapter import bytes32
from pool.store.abstract import StoreError, check_new_partial
from pool.store.models import NotAdded, PartialRecord, PartialRefusal
from pool.store.rows import Row
from pool.store.sql import Migration, Params, SchemaTooNew, SqlPoolStore, Statements, partial_outcomes

__all__ = ["MIGRATIONS", "SchemaTooNew", "SqlitePoolStore"]  # SchemaTooNew: callers catch it from here too

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

# Membership and loop robustness: the newest PUT /farmer token accepted per farmer (a captured PUT cannot
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


_SCHEMA_V5_CHAIN_TRUTH: Migration = (
    # A claim can be LOST (its reward spent without paying the pool), and its fee settles on its own, once the chain
    # shows whether the fee spend landed: `fee` is what stays charged, `fee_settled` says whether that is final, and
    # `earlier_fees` keeps the landed fees of the coin's earlier claims when a failed one is replaced.
    # SQLite cannot change a CHECK constraint in place: the table is built anew. A FAILED claim's fee was given back
    # when it failed (the old rule): it is charged 0 now.
    """
    CREATE TABLE reward_claims_v5 (
        coin_id BLOB PRIMARY KEY,
        launcher_id BLOB NOT NULL REFERENCES farmers (launcher_id),
        amount INTEGER NOT NULL,
        coin_height INTEGER NOT NULL,
        spend_bundle_name BLOB,
        status TEXT NOT NULL CHECK (status IN ('submitted', 'confirmed', 'failed', 'lost')),
        submitted_at INTEGER NOT NULL,
        submitted_height INTEGER NOT NULL,
        confirmed_height INTEGER,
        error TEXT,
        fee INTEGER NOT NULL DEFAULT 0 CHECK (fee >= 0),
        fee_spend_bundle BLOB,
        fee_settled INTEGER NOT NULL DEFAULT 1 CHECK (fee_settled IN (0, 1)),
        earlier_fees INTEGER NOT NULL DEFAULT 0 CHECK (earlier_fees >= 0)
    )
    """,
    """
    INSERT INTO reward_claims_v5 (
        coin_id, launcher_id, amount, coin_height, spend_bundle_name, status, submitted_at, submitted_height,
        confirmed_height, error, fee, fee_spend_bundle, fee_settled
    )
    SELECT coin_id, launcher_id, amount, coin_height, spend_bundle_name, status, submitted_at, submitted_height,
        confirmed_height, error, CASE WHEN status = 'failed' THEN 0 ELSE fee END, fee_spend_bundle,
        CASE WHEN status = 'submitted' AND fee_spend_bundle IS NOT NULL THEN 0 ELSE 1 END
    FROM reward_claims
    """,
    "DROP TABLE reward_claims",
    "ALTER TABLE reward_claims_v5 RENAME TO reward_claims",
    "CREATE INDEX reward_claims_status ON reward_claims (status)",
    # Every transaction ever recorded for a batch (its current one becomes version 1; older ones were not kept).
    """
    CREATE TABLE batch_versions (
        batch_id INTEGER NOT NULL REFERENCES payment_batches (id),
        version INTEGER NOT NULL CHECK (version >= 1),
        tx_id BLOB NOT NULL,
        spend_bundle BLOB NOT NULL,
        fee INTEGER NOT NULL CHECK (fee >= 0),
        created_at INTEGER NOT NULL,
        height INTEGER,
        PRIMARY KEY (batch_id, version)
    )
    """,
    """
    INSERT INTO batch_versions (batch_id, version, tx_id, spend_bundle, fee, created_at, height)
    SELECT id, 1, tx_id, spend_bundle, fee, updated_at, submitted_height FROM payment_batches
    WHERE tx_id IS NOT NULL AND spend_bundle IS NOT NULL
    """,
    # Coins held by the pool's transactions that may still land (filled for those in flight after this step).
    """
    CREATE TABLE coin_reservations (
        coin_id BLOB PRIMARY KEY,
        holder TEXT NOT NULL,
        created_at INTEGER NOT NULL
    )
    """,
    "CREATE INDEX coin_reservations_holder ON coin_reservations (holder)",
    # The leader's epoch (fencing) and facts about the database itself (migrate-store's mark).
    """
    CREATE TABLE leadership (
        id INTEGER PRIMARY KEY CHECK (id = 1),
        epoch INTEGER NOT NULL,
        holder TEXT NOT NULL,
        taken_at INTEGER NOT NULL
    )
    """,
    "INSERT INTO leadership (id, epoch, holder, taken_at) VALUES (1, 0, '', 0)",
    "CREATE TABLE store_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
)


_SCHEMA_V6_TARGET_PROOF: Migration = (
    # The proof that the pool's wallet owns the target address: absorbs wait until there is one.
    """
    CREATE TABLE target_proofs (
        target_puzzle_hash BLOB PRIMARY KEY,
        address TEXT NOT NULL,
        fingerprint INTEGER,
        public_key BLOB NOT NULL,
        signature BLOB NOT NULL,
        signing_mode TEXT NOT NULL,
        message TEXT NOT NULL,
        proven_at INTEGER NOT NULL
    )
    """,
)


_SCHEMA_V7_DIFFICULTY_HISTORY: Migration = (
    # A partial is worth the difficulty in force at its signage point, which may have changed since: when the current
    # difficulty took effect (0: the farmer's first), and every change (a PUT's pending one from its time on), for a
    # day (pool.store.abstract.DIFFICULTY_HISTORY_SECONDS).
    "ALTER TABLE farmers ADD COLUMN difficulty_since INTEGER NOT NULL DEFAULT 0",
    """
    CREATE TABLE difficulty_changes (
        launcher_id BLOB NOT NULL REFERENCES farmers (launcher_id),
        effective_at INTEGER NOT NULL,
        difficulty INTEGER NOT NULL,
        PRIMARY KEY (launcher_id, effective_at)
    )
    """,
    """
    INSERT INTO difficulty_changes (launcher_id, effective_at, difficulty)
    SELECT launcher_id, pending_difficulty_at, pending_difficulty FROM farmers
    WHERE pending_difficulty IS NOT NULL AND pending_difficulty_at IS NOT NULL
    """,
    """
    INSERT INTO difficulty_changes (launcher_id, effective_at, difficulty)
    SELECT launcher_id, 0, difficulty FROM farmers WHERE TRUE  -- WHERE: SQLite's parser needs it before ON CONFLICT
    ON CONFLICT (launcher_id, effective_at) DO NOTHING
    """,
)


_SCHEMA_V8_SESSIONS_PER_FARMER: Migration = (
    # Sessions per launcher are capped (the oldest go first) and end when the farmer's authentication key changes.
    "CREATE INDEX web_sessions_launcher ON web_sessions (launcher_id, created_at)",
)


_SCHEMA_V9_CLAIM_FEE_VERSIONS: Migration = (
    # Every fee spend recorded for a claim's absorb: a stuck absorb gets a new version with a higher fee, the earlier
    # ones may still land, and whichever lands is the fee charged. A fee spend that may still land is version 1.
    """
    CREATE TABLE claim_fee_versions (
        coin_id BLOB NOT NULL REFERENCES reward_claims (coin_id),
        version INTEGER NOT NULL CHECK (version >= 1),
        spend_bundle BLOB NOT NULL,
        fee INTEGER NOT NULL CHECK (fee >= 0),
        created_at INTEGER NOT NULL,
        height INTEGER,
        settled INTEGER NOT NULL DEFAULT 0 CHECK (settled IN (0, 1)),
        PRIMARY KEY (coin_id, version)
    )
    """,
    """
    INSERT INTO claim_fee_versions (coin_id, version, spend_bundle, fee, created_at, height, settled)
    SELECT coin_id, 1, fee_spend_bundle, fee, submitted_at, submitted_height, FALSE FROM reward_claims
    WHERE fee_spend_bundle IS NOT NULL AND NOT fee_settled
    """,
    # The claims of one absorb share its bundle's name: a new version renames them together.
    "CREATE INDEX reward_claims_bundle ON reward_claims (spend_bundle_name)",
)


_SCHEMA_V10_PARTIAL_HOURS: Migration = (
    # Partials and refusals older than partials.retention_days, counted per farmer, hour and outcome (as
    # partial_counts names them) when they are pruned: n partials, the sum of their difficulties, how many were
    # settled stale.
    """
    CREATE TABLE partial_hours (
        launcher_id BLOB NOT NULL REFERENCES farmers (launcher_id),
        hour INTEGER NOT NULL,
        outcome TEXT NOT NULL,
        n INTEGER NOT NULL CHECK (n >= 0),
        points INTEGER NOT NULL CHECK (points >= 0),
        stale INTEGER NOT NULL CHECK (stale >= 0),
        PRIMARY KEY (launcher_id, hour, outcome)
    )
    """,
    "CREATE INDEX partial_hours_hour ON partial_hours (hour)",
)


MIGRATIONS: tuple[Migration, ...] = (
    _SCHEMA_V1,
    _SCHEMA_V2_LEDGER,
    _SCHEMA_V3_MEMBERSHIP,
    _SCHEMA_V4_PAGES,
    _SCHEMA_V5_CHAIN_TRUTH,
    _SCHEMA_V6_TARGET_PROOF,
    _SCHEMA_V7_DIFFICULTY_HISTORY,
    _SCHEMA_V8_SESSIONS_PER_FARMER,
    _SCHEMA_V9_CLAIM_FEE_VERSIONS,
    _SCHEMA_V10_PARTIAL_HOURS,
)
"""MIGRATIONS[i] upgrades a database of version i to version i + 1. Append only: never edit a released step."""


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


class SqlitePoolStore(SqlPoolStore[_Sqlite]):
    def __init__(self, path: Path, *, migrations: Sequence[Migration] = MIGRATIONS) -> None:
        super().__init__(migrations)
        self._path = path
        self._db: aiosqlite.Connection | None = None
        # Plain reads go through a second connection (its own thread): in WAL mode they see every committed write
        # and never wait for a write transaction's commit (fsync), e.g. POST /partial's farmer look-ups during a
        # group commit.
        self._reader: aiosqlite.Connection | None = None
        # Look-ups by key (a farmer for every partial) run on the event loop itself: one indexed read costs far less
        # than a trip through aiosqlite's thread costs in CPU (queue, futures, wake-ups).
        # In WAL mode such a read never waits for a writer; if it ever meets a lock, it goes through the reader.
        self._lookups: sqlite3.Connection | None = None
        self._lock = asyncio.Lock()

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
            db = self._connection()
            if db.in_transaction:
                # Only possible if a rollback was itself interrupted (a second cancellation): start clean.
                await db.execute("ROLLBACK")
            await db.execute("BEGIN IMMEDIATE")
            try:
                yield _Sqlite(db)
                await db.execute("COMMIT")
            except BaseException:
                if db.in_transaction:
                    await db.execute("ROLLBACK")
                raise

    def _reads(self) -> _Sqlite:
        if self._reader is None:
            raise StoreError("the store is not open")
        return _Sqlite(self._reader)

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
            db = self._connection()
            if db.in_transaction:  # only after an interrupted rollback (see _write): never join a stale transaction
                await db.execute("ROLLBACK")
            inserted = await _insert_new_partials(db, partials, only_known_farmers=True)
            left_out = {p.launcher_id for p in partials if p.proof_hash not in inserted}
            known = await self._known_farmers(_Sqlite(db), left_out)
        known |= {p.launcher_id for p in partials if p.proof_hash in inserted}
        return partial_outcomes(partials, inserted, known)

    async def _insert_partials(self, tx: _Sqlite, partials: Sequence[PartialRecord]) -> dict[bytes32, int]:
        return await _insert_new_partials(tx.db, partials)


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
