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
from collections import defaultdict
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiosqlite

from pool.chia_adapter import CoinSpend, G1Element, PoolState, bytes32
from pool.store.abstract import (
    AbstractPoolStore,
    FarmerAlreadyExists,
    FarmerNotFound,
    RoundAlreadyOpen,
    StoreError,
)
from pool.store.models import (
    BatchStatus,
    ClaimStatus,
    FarmerRecord,
    PartialRecord,
    PartialStatus,
    Payment,
    PaymentBatch,
    PayoutRound,
    RewardClaim,
    RoundStatus,
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

# Membership and loop robustness (issue #9): the newest PUT /farmer token accepted per farmer (a captured PUT cannot
# be replayed to undo a later change), and partials settled without a re-check because the node no longer knew their
# signage point (the pool fell behind; config partials.stale_partials decides whether they are credited).
_SCHEMA_V_MEMBERSHIP: Migration = (
    "ALTER TABLE farmers ADD COLUMN last_put_token INTEGER",
    "ALTER TABLE partials ADD COLUMN stale INTEGER NOT NULL DEFAULT 0 CHECK (stale IN (0, 1))",
)

MIGRATIONS: tuple[Migration, ...] = (_SCHEMA_V1, _SCHEMA_V_MEMBERSHIP)
"""MIGRATIONS[i] upgrades a database of version i to version i + 1. Append only: never edit a released step."""


class SchemaTooNew(StoreError):
    """The database was written by a newer version of the pool than this one."""


class SqlitePoolStore(AbstractPoolStore):
    def __init__(self, path: Path, *, migrations: Sequence[Migration] = MIGRATIONS) -> None:
        self._path = path
        self._migrations = tuple(migrations)
        self._db: aiosqlite.Connection | None = None
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
    async def _read(self) -> AsyncIterator[aiosqlite.Connection]:
        # Reads take the lock too: on a shared connection they would otherwise see another task's uncommitted rows.
        async with self._lock:
            yield self._connection()

    async def _fetchone(self, sql: str, params: Sequence[Any] = ()) -> sqlite3.Row | None:
        async with self._read() as db, db.execute(sql, params) as cursor:
            row: sqlite3.Row | None = await cursor.fetchone()
            return row

    async def _fetchall(self, sql: str, params: Sequence[Any] = ()) -> list[sqlite3.Row]:
        async with self._read() as db, db.execute(sql, params) as cursor:
            return list(await cursor.fetchall())

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
        except BaseException:
            self._db = None
            await db.close()
            raise

    async def close(self) -> None:
        if self._db is not None:
            async with self._lock:
                db, self._db = self._db, None
                await db.close()

    async def schema_version(self) -> int:
        async with self._read() as db:
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
        row = await self._fetchone("SELECT * FROM farmers WHERE launcher_id = ?", (launcher_id,))
        return None if row is None else _farmer_from_row(row)

    async def list_farmers(self, members_only: bool = False) -> list[FarmerRecord]:
        where = "WHERE is_pool_member = 1" if members_only else ""
        rows = await self._fetchall(f"SELECT * FROM farmers {where} ORDER BY joined_at, launcher_id")
        return [_farmer_from_row(row) for row in rows]

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
    async def add_partial(self, partial: PartialRecord) -> int | None:
        if partial.status is not PartialStatus.PENDING:
            # A partial enters as pending; crediting happens only through confirm_partial.
            raise StoreError(f"a new partial must be pending, got {partial.status.value}")
        async with self._write() as db:
            if not await _has_row(db, "SELECT 1 FROM farmers WHERE launcher_id = ?", (partial.launcher_id,)):
                raise FarmerNotFound(partial.launcher_id.hex())
            cursor = await db.execute(
                """
                INSERT INTO partials (
                    launcher_id, proof_hash, sp_hash, end_of_sub_slot, harvester_id, received_at, difficulty, status
                ) VALUES (?, ?, ?, ?, ?, ?, ?, 'pending')
                ON CONFLICT (proof_hash) DO NOTHING
                """,
                (
                    partial.launcher_id,
                    partial.proof_hash,
                    partial.sp_hash,
                    int(partial.end_of_sub_slot),
                    partial.harvester_id,
                    partial.received_at,
                    partial.difficulty,
                ),
            )
            if cursor.rowcount == 0:
                return None  # the same proof was received before: it earns points once
            return cursor.lastrowid

    async def get_partial(self, partial_id: int) -> PartialRecord | None:
        row = await self._fetchone("SELECT * FROM partials WHERE id = ?", (partial_id,))
        return None if row is None else _partial_from_row(row)

    async def pending_partials(self, received_before: int, limit: int = 1000) -> list[PartialRecord]:
        rows = await self._fetchall(
            """
            SELECT * FROM partials WHERE status = 'pending' AND received_at < ?
            ORDER BY received_at, id LIMIT ?
            """,
            (received_before, limit),
        )
        return [_partial_from_row(row) for row in rows]

    async def confirm_partial(self, partial_id: int) -> bool:
        async with self._write() as db:
            # The status guard and the credit share one transaction: a partial moves out of pending once, so its
            # points are added once, however often or concurrently it is confirmed.
            async with db.execute(
                "UPDATE partials SET status = 'confirmed' WHERE id = ? AND status = 'pending' "
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
        return [_partial_from_row(row) for row in rows]

    async def confirmed_points_since(self, since: int) -> dict[bytes32, int]:
        rows = await self._fetchall(
            """
            SELECT launcher_id, SUM(difficulty) AS points FROM partials
            WHERE status = 'confirmed' AND received_at >= ? GROUP BY launcher_id
            """,
            (since,),
        )
        return {bytes32(row["launcher_id"]): int(row["points"]) for row in rows}

    # -- block rewards -----------------------------------------------------------------------------------------
    async def add_reward_claim(self, claim: RewardClaim) -> bool:
        async with self._write() as db:
            async with db.execute("SELECT status FROM reward_claims WHERE coin_id = ?", (claim.coin_id,)) as cursor:
                existing = await cursor.fetchone()
            if existing is not None:
                if existing["status"] != ClaimStatus.FAILED.value:
                    return False  # a live or confirmed claim: spending the coin again would only be refused
                await db.execute("DELETE FROM reward_claims WHERE coin_id = ?", (claim.coin_id,))
            await db.execute(
                """
                INSERT INTO reward_claims (
                    coin_id, launcher_id, amount, coin_height, spend_bundle_name, status, submitted_at,
                    submitted_height, confirmed_height, error
                ) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
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
                ),
            )
            return True

    async def get_reward_claim(self, coin_id: bytes32) -> RewardClaim | None:
        row = await self._fetchone("SELECT * FROM reward_claims WHERE coin_id = ?", (coin_id,))
        return None if row is None else _claim_from_row(row)

    async def reward_claims(self, status: ClaimStatus | None = None) -> list[RewardClaim]:
        if status is None:
            rows = await self._fetchall("SELECT * FROM reward_claims ORDER BY coin_height, coin_id")
        else:
            rows = await self._fetchall(
                "SELECT * FROM reward_claims WHERE status = ? ORDER BY coin_height, coin_id", (status.value,)
            )
        return [_claim_from_row(row) for row in rows]

    async def update_reward_claim(
        self, coin_id: bytes32, status: ClaimStatus, confirmed_height: int | None = None, error: str | None = None
    ) -> None:
        # None keeps what is recorded, so a later status change does not erase an earlier height or error.
        async with self._write() as db:
            cursor = await db.execute(
                """
                UPDATE reward_claims
                SET status = ?, confirmed_height = COALESCE(?, confirmed_height), error = COALESCE(?, error)
                WHERE coin_id = ?
                """,
                (status.value, confirmed_height, error, coin_id),
            )
            if cursor.rowcount == 0:
                raise StoreError(f"no reward claim for coin {coin_id.hex()}")

    # -- payouts -----------------------------------------------------------------------------------------------
    async def create_payout_round(
        self, payout_round: PayoutRound, payments: Sequence[Payment], batch_fees: Sequence[int]
    ) -> int:
        points_by_farmer = _validate_round(payments, batch_fees)
        async with self._write() as db:
            if await _has_row(db, "SELECT 1 FROM payout_rounds WHERE status = 'open'"):
                raise RoundAlreadyOpen("a payout round is still open")
            for launcher_id, points in points_by_farmer.items():
                await _consume_points(db, launcher_id, points)
            round_id = await _insert_round(db, payout_round)
            for index, fee in enumerate(batch_fees):
                await db.execute(
                    "INSERT INTO payment_batches (round_id, batch_index, fee, status, updated_at) "
                    "VALUES (?, ?, ?, 'pending', ?)",
                    (round_id, index, fee, payout_round.created_at),
                )
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
        return None if row is None else _round_from_row(row)

    async def get_round(self, round_id: int) -> PayoutRound | None:
        row = await self._fetchone("SELECT * FROM payout_rounds WHERE id = ?", (round_id,))
        return None if row is None else _round_from_row(row)

    async def rounds(self, limit: int = 100) -> list[PayoutRound]:
        rows = await self._fetchall("SELECT * FROM payout_rounds ORDER BY id DESC LIMIT ?", (limit,))
        return [_round_from_row(row) for row in rows]

    async def batches(self, round_id: int) -> list[PaymentBatch]:
        rows = await self._fetchall(
            "SELECT * FROM payment_batches WHERE round_id = ? ORDER BY batch_index", (round_id,)
        )
        return [_batch_from_row(row) for row in rows]

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
        return [_payment_from_row(row) for row in rows]

    async def mark_batch_submitted(self, batch_id: int, tx_id: bytes32, spend_bundle: bytes, now: int) -> None:
        async with self._write() as db:
            await _move_batch(
                db,
                batch_id,
                BatchStatus.PENDING,
                BatchStatus.SUBMITTED,
                {"tx_id": tx_id, "spend_bundle": bytes(spend_bundle), "updated_at": now},
            )

    async def mark_batch_confirmed(self, batch_id: int, height: int, now: int) -> None:
        async with self._write() as db:
            round_id = await _move_batch(
                db,
                batch_id,
                BatchStatus.SUBMITTED,
                BatchStatus.CONFIRMED,
                {"confirmed_height": height, "updated_at": now},
            )
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
        row = await self._fetchone("SELECT status FROM payment_batches WHERE id = ?", (batch_id,))
        return None if row is None else BatchStatus(row["status"])


# -- helpers that run inside a transaction -----------------------------------------------------------------------
async def _has_row(db: aiosqlite.Connection, sql: str, params: Sequence[Any] = ()) -> bool:
    async with db.execute(sql, params) as cursor:
        return await cursor.fetchone() is not None


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


def _validate_round(payments: Sequence[Payment], batch_fees: Sequence[int]) -> dict[bytes32, int]:
    """Check a round before writing anything; returns the points to take from each farmer."""
    if not batch_fees:
        raise StoreError("a payout round needs at least one batch")
    if any(fee < 0 for fee in batch_fees):
        raise StoreError("a batch fee cannot be negative")
    points_by_farmer: dict[bytes32, int] = defaultdict(int)
    for payment in payments:
        if not 0 <= payment.batch_index < len(batch_fees):
            raise StoreError(
                f"payment to {payment.puzzle_hash.hex()} names batch {payment.batch_index}, which the "
                f"round does not have"
            )
        if payment.amount < 0 or payment.points < 0:
            raise StoreError(f"payment to {payment.puzzle_hash.hex()} has a negative amount or points")
        if payment.launcher_id is None:
            if payment.points != 0:
                raise StoreError("a payment to no farmer (the pool fee) cannot consume points")
            continue
        points_by_farmer[payment.launcher_id] += payment.points
    return points_by_farmer


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
    if cursor.lastrowid is None:  # pragma: no cover - sqlite always reports the rowid of an INSERT
        raise StoreError("the payout round got no id")
    return cursor.lastrowid


async def _consume_points(db: aiosqlite.Connection, launcher_id: bytes32, points: int) -> None:
    """Take ``points`` from a farmer's balance; raising rolls back the whole round, so no payment is ever recorded
    without the points it pays for, and no balance goes below zero."""
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


# -- rows to records ---------------------------------------------------------------------------------------------
def _optional_bytes32(value: bytes | None) -> bytes32 | None:
    return None if value is None else bytes32(value)


def _optional_int(value: int | None) -> int | None:
    return None if value is None else int(value)


def _farmer_from_row(row: sqlite3.Row) -> FarmerRecord:
    return FarmerRecord(
        launcher_id=bytes32(row["launcher_id"]),
        p2_singleton_puzzle_hash=bytes32(row["p2_singleton_puzzle_hash"]),
        delay_time=int(row["delay_time"]),
        delay_puzzle_hash=bytes32(row["delay_puzzle_hash"]),
        authentication_public_key=G1Element.from_bytes(row["authentication_public_key"]),
        singleton_tip=CoinSpend.from_bytes(row["singleton_tip"]),
        singleton_tip_state=PoolState.from_bytes(row["singleton_tip_state"]),
        difficulty=int(row["difficulty"]),
        payout_instructions=str(row["payout_instructions"]),
        payout_puzzle_hash=bytes32(row["payout_puzzle_hash"]),
        is_pool_member=bool(row["is_pool_member"]),
        points=int(row["points"]),
        joined_at=int(row["joined_at"]),
        pending_difficulty=_optional_int(row["pending_difficulty"]),
        pending_difficulty_at=_optional_int(row["pending_difficulty_at"]),
        last_put_token=_optional_int(row["last_put_token"]),
    )


def _partial_from_row(row: sqlite3.Row) -> PartialRecord:
    return PartialRecord(
        launcher_id=bytes32(row["launcher_id"]),
        proof_hash=bytes32(row["proof_hash"]),
        sp_hash=bytes32(row["sp_hash"]),
        end_of_sub_slot=bool(row["end_of_sub_slot"]),
        harvester_id=bytes32(row["harvester_id"]),
        received_at=int(row["received_at"]),
        difficulty=int(row["difficulty"]),
        status=PartialStatus(row["status"]),
        reject_reason=row["reject_reason"],
        stale=bool(row["stale"]),
        id=int(row["id"]),
    )


def _claim_from_row(row: sqlite3.Row) -> RewardClaim:
    return RewardClaim(
        coin_id=bytes32(row["coin_id"]),
        launcher_id=bytes32(row["launcher_id"]),
        amount=int(row["amount"]),
        coin_height=int(row["coin_height"]),
        spend_bundle_name=_optional_bytes32(row["spend_bundle_name"]),
        status=ClaimStatus(row["status"]),
        submitted_at=int(row["submitted_at"]),
        submitted_height=int(row["submitted_height"]),
        confirmed_height=_optional_int(row["confirmed_height"]),
        error=row["error"],
    )


def _round_from_row(row: sqlite3.Row) -> PayoutRound:
    return PayoutRound(
        created_at=int(row["created_at"]),
        scheme=str(row["scheme"]),
        total=int(row["total"]),
        pool_fee=int(row["pool_fee"]),
        blockchain_fees=int(row["blockchain_fees"]),
        farmer_total=int(row["farmer_total"]),
        remainder=int(row["remainder"]),
        status=RoundStatus(row["status"]),
        id=int(row["id"]),
    )


def _payment_from_row(row: sqlite3.Row) -> Payment:
    return Payment(
        puzzle_hash=bytes32(row["puzzle_hash"]),
        amount=int(row["amount"]),
        launcher_id=_optional_bytes32(row["launcher_id"]),
        points=int(row["points"]),
        batch_index=int(row["batch_index"]),
        round_id=int(row["round_id"]),
        id=int(row["id"]),
    )


def _batch_from_row(row: sqlite3.Row) -> PaymentBatch:
    return PaymentBatch(
        round_id=int(row["round_id"]),
        index=int(row["batch_index"]),
        fee=int(row["fee"]),
        status=BatchStatus(row["status"]),
        tx_id=_optional_bytes32(row["tx_id"]),
        spend_bundle=None if row["spend_bundle"] is None else bytes(row["spend_bundle"]),
        confirmed_height=_optional_int(row["confirmed_height"]),
        updated_at=int(row["updated_at"]),
        id=int(row["id"]),
    )
