"""The store, written once in SQL that SQLite and PostgreSQL both run; sqlite.py and postgres.py are its two dialects.

Every method of AbstractPoolStore and every money rule of the ledger is here, once. Statements use named parameters
(``:name``): SQLite binds them as they are, the PostgreSQL dialect numbers them (``$1``, ``$2``) for asyncpg. They
keep to what both databases speak: ``INSERT ... ON CONFLICT``, ``RETURNING``, booleans as TRUE/FALSE and bare boolean
columns in conditions. A dialect supplies only what truly differs:

* connections and transactions: ``_write`` is one write transaction (committed when its block ends, rolled back on any
  exception), ``_reads`` runs a statement on committed state outside any transaction, ``_lookup`` reads the one row a
  key selects (SQLite answers it on the event loop itself);
* ``_one_of``: "this column is one of these values" (SQLite binds a list of parameters, PostgreSQL one array);
* ``_insert_partials``: POST /partial's multi-row insert, in each database's fastest form;
* its schema: MIGRATIONS (BLOB or BYTEA, INTEGER or NUMERIC(20, 0) mojos, AUTOINCREMENT or identity columns) and the
  lock a migration step runs under.

Values need no adapting on the way in: both drivers take bytes32 (a bytes subclass), Python ints (for NUMERIC mojos
too, exactly) and bools. On the way out, rows.py reads sqlite3.Row and asyncpg.Record alike by column name and makes
records of them (INTEGER and NUMERIC to int, 0/1 and booleans to bool, BLOB and BYTEA to bytes32).

What every method keeps to, on both backends:

* Each public method is one transaction: it happens completely or not at all.
* A status changes only by a conditional update (``UPDATE ... WHERE status = 'pending'``) whose result says whether it
  changed: a partial is credited once, a claim settled once, a batch moved once, however often or concurrently asked.
* Money moves only inside ``self._write(ledger=True)``: one money transaction at a time (PostgreSQL takes a lock for
  it across processes; SQLite never has more than one writer). Balances are debited only by conditional updates
  (``balance >= amount``), the schema's CHECK constraints refuse an overdraft anyway, and every movement is journaled
  in ledger_entries.

To add a method: write it here, inside ``async with self._write() as tx`` (``ledger=True`` when it moves money), with
``:name`` parameters; a read of committed state is ``self._reads().fetchall(...)``. A schema change is a new entry
appended to MIGRATIONS in sqlite_schema.py and in postgres_schema.py.
"""

from __future__ import annotations

import logging
import time
from abc import ABC, abstractmethod
from collections import defaultdict
from collections.abc import AsyncIterator, Collection, Mapping, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any, ClassVar, Generic, Literal, TypeVar

from pool.chia_adapter import CoinSpend, G1Element, PoolState, SpendBundle, bytes32
from pool.store.abstract import (
    DIFFICULTY_HISTORY_SECONDS,
    AbstractPoolStore,
    CoinReserved,
    FarmerAlreadyExists,
    FarmerNotFound,
    InsufficientFunds,
    NotLeader,
    RoundAlreadyOpen,
    SchemaChanged,
    StaleTransaction,
    StoreError,
    StoreMigrated,
    check_new_partial,
)
from pool.store.models import (
    SETTING_KINDS,
    BatchStatus,
    BatchVersion,
    ClaimFeeVersion,
    ClaimStatus,
    DailyPartials,
    DifficultyAdjustment,
    Distribution,
    DistributionShare,
    FarmerChange,
    FarmerChangeKind,
    FarmerEarning,
    FarmerPayout,
    FarmerRecord,
    FarmerSettings,
    FarmerStanding,
    HarvesterFigures,
    LedgerEntry,
    LedgerKind,
    LedgerSummary,
    MemberDifficulty,
    NewNotification,
    NotAdded,
    Notification,
    NotificationKind,
    OwedBalance,
    PartialCount,
    PartialRecord,
    PartialRefusal,
    PartialsSummary,
    PartialStatus,
    Payment,
    PaymentBatch,
    PaymentLine,
    PayoutRound,
    PendingDifficulty,
    PoolFigures,
    RewardClaim,
    RoundStatus,
    RoundSummary,
    SingletonPosition,
    StateFigures,
    TargetProof,
    WebSession,
    batch_holder,
    claim_holder,
)
from pool.store.outbox import (
    enqueue,
    enqueue_batch_events,
    enqueue_instructions_change,
    enqueue_many,
    notification_from_row,
    setting_changes,
    settings_from_row,
)
from pool.store.rows import (
    Row,
    batch_from_row,
    change_from_row,
    claim_fee_version_from_row,
    claim_from_row,
    decoded,
    distribution_from_row,
    entry_from_row,
    farmer_from_row,
    ledger_from_row,
    optional_bytes32,
    optional_int,
    partial_from_row,
    payment_from_row,
    points_per_farmer,
    position_from_row,
    proof_from_row,
    round_from_row,
    share_from_row,
    summary_from_row,
    version_from_row,
)

log = logging.getLogger(__name__)

Params = Mapping[str, Any]
"""A statement's parameters by name (``:name`` in its text)."""

Migration = Sequence[str]
"""The statements that take the schema from one version to the next (run in one transaction, without parameters)."""


class SchemaTooNew(StoreError):
    """The database was written by a newer version of the pool than this one."""


class Statements(ABC):
    """Runs the shared SQL on one connection (or a pool of them) of a dialect."""

    @abstractmethod
    async def fetchone(self, sql: str, params: Params | None = None) -> Row | None:
        """The first row of a statement meant to give at most one (None without one)."""

    @abstractmethod
    async def fetchall(self, sql: str, params: Params | None = None) -> list[Row]: ...

    @abstractmethod
    async def execute(self, sql: str, params: Params | None = None) -> int:
        """Run one statement; how many rows it inserted, updated or deleted."""

    @abstractmethod
    async def executemany(self, sql: str, rows: Sequence[Params]) -> None:
        """Run one statement once per parameter set, in one trip where the driver can."""


S = TypeVar("S", bound=Statements)

_UNDISTRIBUTED = "undistributed"
_POOL_FEE_SHARE = "pool_fee_share"
_OPERATOR_FUNDING = "operator_funding"  # only ever credited: the sum of FEE_FUNDING entries


class SqlPoolStore(AbstractPoolStore, Generic[S]):
    """AbstractPoolStore over a dialect; ``S`` is what the dialect's write transactions run statements with."""

    _LOCK_ROWS: ClassVar[str] = ""
    """Appended to a read of rows that the transaction then changes: PostgreSQL's `` FOR UPDATE``; SQLite has no row
    locks (its write transaction holds the whole database)."""
    _UNIQUE_VIOLATION: ClassVar[tuple[type[Exception], ...]] = ()
    """The driver's error for a broken unique constraint, where another process can cause one (PostgreSQL)."""
    _SHARE_ROWS: ClassVar[str] = ""
    """Appended to the read of the leader's epoch in a leader's write: PostgreSQL's `` FOR SHARE``, so that a new
    leader's epoch waits for the old leader's writes in flight and every later one sees it; SQLite has one writer."""
    _WARM_BEFORE_PRUNE: ClassVar[bool] = True
    """Whether a prune batch first reads what it will touch on a reading connection (_WARM_PRUNE_BATCH): on SQLite a
    batch holds the one writer, which the intake's group commit waits for; PostgreSQL's batch locks only its own
    rows, so the intake does not wait for it and reading them twice would only cost."""
    _SKIP_LOCKED_ROWS: ClassVar[str] = ""
    """Appended to the choice of rows to prune: PostgreSQL's `` FOR UPDATE SKIP LOCKED``, so that two pruners (the
    leader's loop and python -m pool prune) take different rows instead of waiting on each other's; SQLite has one
    writer."""

    def __init__(self, migrations: Sequence[Migration]) -> None:
        self._migrations = tuple(migrations)
        self._epoch: int | None = None  # the leader epoch this store object writes money under, once it took one

    # -- the dialect -------------------------------------------------------------------------------------------
    @abstractmethod
    def _write(self, *, ledger: bool = False) -> AbstractAsyncContextManager[S]:
        """One write transaction. ``ledger``: the method moves money, so no other money transaction may run
        alongside it (in any process)."""

    def _write_schema(self) -> AbstractAsyncContextManager[S]:
        """The transaction a migration step runs in."""
        return self._write()

    def _upkeep_write(self) -> AbstractAsyncContextManager[S]:
        """One write transaction of the store's own upkeep (the retention's batches: counts moved from rows to hours,
        settled rows deleted), committed without waiting for the disk. Nothing a farmer, an operator or the chain
        was told depends on one: a crash of the machine can only undo the last few, each whole (the log is replayed
        in order, and the next durable commit makes every one before it durable too), and the next pass does them
        again. On SQLite the wait for the disk was most of the time a batch held the one writer (see the
        backend)."""
        return self._write()

    @abstractmethod
    def _reads(self) -> Statements:
        """Statements on committed state, each on its own (outside any write transaction)."""

    async def _lookup(self, sql: str, params: Params) -> Row | None:
        """The one row a key selects (or None); only for statements an index answers."""
        return await self._reads().fetchone(sql, params)

    @abstractmethod
    def _one_of(self, column: str, name: str, values: Collection[Any], array_type: str) -> tuple[str, dict[str, Any]]:
        """The condition "``column`` is one of ``values``" and its parameters (named after ``name``).
        ``array_type``: the values' PostgreSQL type (bigint, bytea, text)."""

    @abstractmethod
    async def _insert_partials(self, tx: S, partials: Sequence[PartialRecord]) -> dict[bytes32, int]:
        """Insert the pending partials (of known farmers) whose proof the store does not hold yet, in few statements;
        the new rows' ids by proof hash. A proof repeated in ``partials`` is inserted once (the first row wins)."""

    @abstractmethod
    def _name(self) -> str:
        """How messages name this database."""

    # -- lifecycle ---------------------------------------------------------------------------------------------
    async def schema_version(self) -> int:
        return _version_of(await self._reads().fetchone("SELECT version FROM schema_version"))

    async def _migrate(self) -> None:
        """Apply, in order, each migration the database has not seen; each step and its version bump commit
        together, so an interrupted upgrade resumes from the last complete step."""
        target = len(self._migrations)
        while True:
            async with self._write_schema() as tx:
                await tx.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
                row = await tx.fetchone("SELECT version FROM schema_version")
                version = _version_of(row)
                if version > target:
                    raise SchemaTooNew(
                        f"{self._name()} has schema version {version}, newer than this pool's {target}: "
                        "upgrade the pool software (or restore a matching backup)"
                    )
                if row is None:
                    await tx.execute("INSERT INTO schema_version (version) VALUES (0)")
                if version == target:
                    await self._refuse_if_migrated(tx)
                    return
                for statement in self._migrations[version]:
                    await tx.execute(statement)
                if version + 1 == _RESERVATIONS_VERSION:
                    await _reserve_coins_in_flight(tx)
                await tx.execute("UPDATE schema_version SET version = :version", {"version": version + 1})

    async def _refuse_if_migrated(self, tx: Statements) -> None:
        """A database copied elsewhere by migrate-store must never run a pool again: two pools on one wallet."""
        if len(self._migrations) < _RESERVATIONS_VERSION:
            return  # a schema from before store_meta (tests of old migrations)
        row = await tx.fetchone("SELECT value FROM store_meta WHERE key = 'migrated_to'")
        if row is not None:
            raise StoreMigrated(
                f"{self._name()} was moved to {row['value']} by migrate-store: point store.backend and store.dsn at "
                "that store (this one must not run a pool again)"
            )

    # -- leadership --------------------------------------------------------------------------------------------
    async def leader_alive(self, now: int) -> bool:
        if self._epoch is None:
            return False
        async with self._write() as tx:
            changed = await tx.execute(
                "UPDATE leadership SET seen_at = :now WHERE id = 1 AND epoch = :epoch",
                {"now": now, "epoch": self._epoch},
            )
        return changed > 0

    async def leader_seen_at(self) -> int:
        row = await self._reads().fetchone("SELECT seen_at FROM leadership WHERE id = 1")
        return 0 if row is None else int(row["seen_at"])

    async def take_leadership(self, holder: str) -> int:
        async with self._write() as tx:
            await self._check_schema(tx)
            row = await tx.fetchone(
                "UPDATE leadership SET epoch = epoch + 1, holder = :holder, taken_at = :now WHERE id = 1 "
                "RETURNING epoch",
                {"holder": holder, "now": int(time.time())},
            )
            if row is None:  # pragma: no cover - the migration seeds the row
                raise StoreError("the leadership row is missing")
            self._epoch = int(row["epoch"])
            return self._epoch

    async def leader_epoch(self) -> int:
        row = await self._reads().fetchone("SELECT epoch FROM leadership WHERE id = 1")
        return 0 if row is None else int(row["epoch"])

    @asynccontextmanager
    async def _leader_write(self, *, ledger: bool = True) -> AsyncIterator[S]:
        """A write only the pool's leader makes (money, points, claims, batches). Once this store object took
        leadership, the transaction first checks that its epoch is still the newest and the schema still this
        code's: a leader that lost its lock without noticing, or runs older code than the database, writes nothing
        (NotLeader, SchemaChanged)."""
        async with self._write(ledger=ledger) as tx:
            if self._epoch is not None:
                row = await tx.fetchone(f"SELECT epoch FROM leadership WHERE id = 1{self._SHARE_ROWS}")
                current = 0 if row is None else int(row["epoch"])
                if current != self._epoch:
                    raise NotLeader(f"leader epoch {self._epoch} is over: epoch {current} leads now")
                await self._check_schema(tx)
            yield tx

    async def _check_schema(self, tx: Statements) -> None:
        version = _version_of(await tx.fetchone("SELECT version FROM schema_version"))
        if version != len(self._migrations):
            raise SchemaChanged(
                f"{self._name()} is at schema version {version}, this code writes version {len(self._migrations)}"
            )

    # -- farmers -----------------------------------------------------------------------------------------------
    async def add_farmer(self, farmer: FarmerRecord) -> None:
        if farmer.owed != 0:
            raise StoreError("a new farmer is owed nothing: owed balances come only from distributions")
        async with self._write() as tx:
            # The columns of the first schema only (tests add farmers to databases of every older version); what
            # later versions added is written apart.
            if await tx.fetchone(_INSERT_FARMER, _farmer_params(farmer)) is None:
                raise FarmerAlreadyExists(farmer.launcher_id.hex())
            if farmer.difficulty_since:
                await _update_farmer(tx, farmer.launcher_id, {"difficulty_since": farmer.difficulty_since})
            if len(self._migrations) >= _DIFFICULTY_HISTORY_VERSION:
                await _record_difficulty(tx, farmer.launcher_id, farmer.difficulty_since, farmer.difficulty)
                if farmer.pending_difficulty is not None and farmer.pending_difficulty_at is not None:
                    await _record_difficulty(
                        tx, farmer.launcher_id, farmer.pending_difficulty_at, farmer.pending_difficulty
                    )
            if self._keeps_history():
                joined = FarmerChangeKind.JOINED
                await _record_change(
                    tx, FarmerChange(farmer.launcher_id, farmer.joined_at, joined, new=farmer.payout_instructions)
                )

    async def get_farmer(self, launcher_id: bytes32) -> FarmerRecord | None:
        row = await self._lookup("SELECT * FROM farmers WHERE launcher_id = :launcher_id", {"launcher_id": launcher_id})
        return None if row is None else farmer_from_row(row)

    async def list_farmers(self, members_only: bool = False) -> list[FarmerRecord]:
        where = "WHERE is_pool_member" if members_only else ""
        rows = await self._reads().fetchall(f"SELECT * FROM farmers {where} ORDER BY joined_at, launcher_id")
        return [farmer_from_row(row) for row in rows]

    async def singleton_positions(self, after: bytes32 | None, limit: int) -> list[SingletonPosition]:
        rows = await self._reads().fetchall(
            "SELECT launcher_id, p2_singleton_puzzle_hash, delay_time, delay_puzzle_hash, singleton_tip, "
            f"singleton_tip_state, is_pool_member FROM farmers {'' if after is None else 'WHERE launcher_id > :after'} "
            "ORDER BY launcher_id LIMIT :limit",
            {"after": after, "limit": limit},
        )
        return [position_from_row(row) for row in rows]

    async def _read_one_of(self, select: str, column: str, values: Collection[Any], array_type: str) -> list[Row]:
        """The rows of ``select`` (its ``{condition}``: ``column`` is one of ``values``), ROWS_PER_STATEMENT values a
        statement; ``array_type`` as ``_one_of``'s."""
        ordered = sorted(set(values))
        rows: list[Row] = []
        for start in range(0, len(ordered), ROWS_PER_STATEMENT):
            condition, params = self._one_of(column, "values", ordered[start : start + ROWS_PER_STATEMENT], array_type)
            rows += await self._reads().fetchall(select.format(condition=condition), params)
        return rows

    async def farmer_standings(self, launcher_ids: Collection[bytes32]) -> dict[bytes32, FarmerStanding]:
        rows = await self._read_one_of(
            "SELECT launcher_id, is_pool_member, banned_at FROM farmers WHERE {condition}",
            "launcher_id",
            launcher_ids,
            "bytea",
        )
        return {
            bytes32(row["launcher_id"]): FarmerStanding(bool(row["is_pool_member"]), optional_int(row["banned_at"]))
            for row in rows
        }

    async def update_farmer_settings(
        self,
        launcher_id: bytes32,
        *,
        authentication_public_key: G1Element | None = None,
        payout_instructions: tuple[str, bytes32] | None = None,
        pending_difficulty: PendingDifficulty | None = None,
        now: int | None = None,
    ) -> None:
        changes: dict[str, Any] = {}
        if authentication_public_key is not None:
            changes["authentication_public_key"] = bytes(authentication_public_key)
        if payout_instructions is not None:
            changes["payout_instructions"], changes["payout_puzzle_hash"] = payout_instructions
        if pending_difficulty is not None:
            changes["pending_difficulty"] = pending_difficulty.difficulty
            changes["pending_difficulty_at"] = pending_difficulty.effective_at
        async with self._write() as tx:
            at = int(time.time()) if now is None else now
            history = await self._settings_history(tx, launcher_id, changes, at) if self._keeps_history() else []
            if payout_instructions is not None:
                before = await tx.fetchone(
                    f"SELECT payout_instructions FROM farmers WHERE launcher_id = :launcher_id{self._LOCK_ROWS}",
                    {"launcher_id": launcher_id},
                )
                if before is not None:
                    await enqueue_instructions_change(
                        tx,
                        launcher_id,
                        str(before["payout_instructions"]),
                        payout_instructions[0],
                        int(time.time() * 1000),
                    )
            if pending_difficulty is not None:
                # A change already in force becomes the current difficulty (and stays in the history); one not yet
                # in force is replaced, in the history too.
                await _apply_due_difficulty(tx, launcher_id, pending_difficulty.asked_at)
                await _forget_difficulties_after(tx, launcher_id, pending_difficulty.asked_at)
            await _update_farmer(tx, launcher_id, changes)
            if pending_difficulty is not None:
                await _record_difficulty(
                    tx, launcher_id, pending_difficulty.effective_at, pending_difficulty.difficulty
                )
            if authentication_public_key is not None:
                # Sessions were opened by signatures of the old key: whoever held it must not keep the page.
                await tx.execute(
                    "DELETE FROM web_sessions WHERE launcher_id = :launcher_id", {"launcher_id": launcher_id}
                )
            for change in history:
                await _record_change(tx, change)

    async def _settings_history(
        self, tx: Statements, launcher_id: bytes32, changes: Mapping[str, Any], now: int
    ) -> list[FarmerChange]:
        """The history rows of a PUT /farmer's changes, old values read in the transaction that changes them."""
        if "authentication_public_key" not in changes and "payout_instructions" not in changes:
            return []
        row = await self._locked_farmer(tx, launcher_id, "authentication_public_key, payout_instructions")
        kept: list[FarmerChange] = []
        if "payout_instructions" in changes:
            old, new = str(row["payout_instructions"]), str(changes["payout_instructions"])
            kept.append(FarmerChange(launcher_id, now, FarmerChangeKind.PAYOUT_INSTRUCTIONS, old, new))
        if "authentication_public_key" in changes:
            old_key, new_key = bytes(row["authentication_public_key"]), bytes(changes["authentication_public_key"])
            kept.append(
                FarmerChange(launcher_id, now, FarmerChangeKind.AUTHENTICATION_KEY, old_key.hex(), new_key.hex())
            )
        return kept

    async def _locked_farmer(self, tx: Statements, launcher_id: bytes32, columns: str) -> Row:
        """The farmer's ``columns`` (names from this module), its row locked until the transaction ends (the old
        values a history row records); FarmerNotFound if unknown."""
        row = await tx.fetchone(
            f"SELECT {columns} FROM farmers WHERE launcher_id = :launcher_id{self._LOCK_ROWS}",
            {"launcher_id": launcher_id},
        )
        if row is None:
            raise FarmerNotFound(launcher_id.hex())
        return row

    def _keeps_history(self) -> bool:
        """Whether this store's schema has the farmers' history (tests run stores of every older version)."""
        return len(self._migrations) >= _FARMER_HISTORY_VERSION

    async def set_difficulty(self, launcher_id: bytes32, difficulty: int, now: int) -> None:
        async with self._write() as tx:
            if self._keeps_history():
                old = await self._locked_farmer(tx, launcher_id, "difficulty, pending_difficulty")
                was = old["difficulty"] if old["pending_difficulty"] is None else old["pending_difficulty"]
                change = FarmerChange(launcher_id, now, FarmerChangeKind.DIFFICULTY_SET, str(was), str(difficulty))
                await _record_change(tx, change)
            changes = {
                "difficulty": difficulty,
                "difficulty_since": now,
                "pending_difficulty": None,
                "pending_difficulty_at": None,
            }
            await _update_farmer(tx, launcher_id, changes)
            await _forget_difficulties_after(tx, launcher_id, now)
            await _record_difficulty(tx, launcher_id, now, difficulty)

    async def adjust_difficulty(self, launcher_id: bytes32, expected: int, difficulty: int, now: int) -> bool:
        async with self._write() as tx:
            changed = await tx.execute(
                """
                UPDATE farmers SET difficulty = :difficulty, difficulty_since = :now
                WHERE launcher_id = :launcher_id AND difficulty = :expected AND pending_difficulty IS NULL
                """,
                {"difficulty": difficulty, "now": now, "launcher_id": launcher_id, "expected": expected},
            )
            if changed:
                await _record_difficulty(tx, launcher_id, now, difficulty)
            return await _changed_farmer(tx, launcher_id, changed)

    async def adjust_difficulties(
        self, adjustments: Sequence[DifficultyAdjustment], effective_at: int, due: Sequence[bytes32] = (), now: int = 0
    ) -> list[bytes32]:
        changed: list[bytes32] = []
        if not adjustments and not due:
            return changed
        async with self._write() as tx:
            for launcher_id in due:
                await _apply_due_difficulty(tx, launcher_id, now)
            # The compare-and-set of every change read first (rows locked), then the changes written a statement for
            # all: three statements a farmer held the writer for seconds when thousands changed at once.
            ordered = sorted(adjustments, key=lambda adjustment: adjustment.launcher_id)
            for start in range(0, len(ordered), ROWS_PER_STATEMENT):
                chunk = ordered[start : start + ROWS_PER_STATEMENT]
                condition, params = self._one_of("launcher_id", "launcher_ids", [a.launcher_id for a in chunk], "bytea")
                rows = await tx.fetchall(
                    f"SELECT launcher_id, difficulty FROM farmers WHERE {condition} AND pending_difficulty IS NULL "
                    f"ORDER BY launcher_id{self._LOCK_ROWS}",
                    params,
                )
                current = {bytes32(row["launcher_id"]): int(row["difficulty"]) for row in rows}
                changed += [a.launcher_id for a in chunk if current.get(a.launcher_id) == a.expected]
            applied = set(changed)
            changes = [(a.launcher_id, a.difficulty) for a in ordered if a.launcher_id in applied]
            if changes:
                await tx.executemany(
                    "UPDATE farmers SET difficulty = :difficulty, difficulty_since = :now WHERE launcher_id = :id",
                    [{"id": i, "difficulty": d, "now": effective_at} for i, d in changes],
                )
            await _record_difficulties(tx, changes, effective_at)
        return changed

    async def member_difficulties(
        self, first: bytes32 | None = None, end: bytes32 | None = None
    ) -> list[MemberDifficulty]:
        rows = await self._reads().fetchall(
            f"""
            SELECT f.launcher_id, f.difficulty, f.pending_difficulty, f.joined_at, s.difficulty_preset
            FROM farmers f LEFT JOIN farmer_settings s ON s.launcher_id = f.launcher_id
            WHERE f.is_pool_member{_launcher_range("f.launcher_id", first, end)} ORDER BY f.launcher_id
            """,
            {"first": first, "end": end},
        )
        return await decoded(rows, _member_difficulty)

    async def apply_due_difficulty(self, launcher_id: bytes32, now: int) -> int:
        async with self._write() as tx:
            await _apply_due_difficulty(tx, launcher_id, now)
            row = await tx.fetchone(
                "SELECT difficulty FROM farmers WHERE launcher_id = :launcher_id", {"launcher_id": launcher_id}
            )
            if row is None:
                raise FarmerNotFound(launcher_id.hex())
            return int(row["difficulty"])

    async def difficulty_at(self, launcher_id: bytes32, moment: int) -> int:
        params = {"launcher_id": launcher_id, "moment": moment}
        row = await self._reads().fetchone(
            """
            SELECT difficulty FROM difficulty_changes WHERE launcher_id = :launcher_id AND effective_at <= :moment
            ORDER BY effective_at DESC LIMIT 1
            """,
            params,
        )
        if row is None:  # before the first change: the difficulty the farmer started with
            row = await self._reads().fetchone(
                "SELECT difficulty FROM difficulty_changes WHERE launcher_id = :launcher_id "
                "ORDER BY effective_at LIMIT 1",
                params,
            )
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
        changes: dict[str, Any] = {
            "singleton_tip": bytes(tip),
            "singleton_tip_state": bytes(tip_state),
            "is_pool_member": is_pool_member,
        }
        async with self._write() as tx:
            if expected_tip is None:
                await _update_farmer(tx, launcher_id, changes)
                return True
            # Compare-and-set: a view computed from an older tip never overwrites a newer one written meanwhile.
            changed = await tx.execute(
                f"UPDATE farmers SET {_assignments(changes)} "
                "WHERE launcher_id = :launcher_id AND singleton_tip = :expected_tip",
                {**changes, "launcher_id": launcher_id, "expected_tip": bytes(expected_tip)},
            )
            return await _changed_farmer(tx, launcher_id, changed)

    async def accept_put_token(self, launcher_id: bytes32, token: int) -> bool:
        async with self._write() as tx:
            changed = await tx.execute(
                """
                UPDATE farmers SET last_put_token = :token
                WHERE launcher_id = :launcher_id AND (last_put_token IS NULL OR last_put_token < :token)
                """,
                {"token": token, "launcher_id": launcher_id},
            )
            return await _changed_farmer(tx, launcher_id, changed)

    async def ban_farmer(self, launcher_id: bytes32, reason: str, now: int) -> bool:
        async with self._write() as tx:
            changed = await tx.execute(
                "UPDATE farmers SET banned_at = :now, ban_reason = :reason "
                "WHERE launcher_id = :launcher_id AND banned_at IS NULL",
                {"now": now, "reason": reason, "launcher_id": launcher_id},
            )
            if changed:
                await _record_change(tx, FarmerChange(launcher_id, now, FarmerChangeKind.BANNED, new=reason))
            return await _changed_farmer(tx, launcher_id, changed)

    async def unban_farmer(self, launcher_id: bytes32, now: int) -> bool:
        async with self._write() as tx:
            row = await tx.fetchone(
                f"SELECT ban_reason FROM farmers WHERE launcher_id = :launcher_id AND banned_at IS NOT NULL"
                f"{self._LOCK_ROWS}",
                {"launcher_id": launcher_id},
            )
            if row is None:
                return await _changed_farmer(tx, launcher_id, 0)
            await _update_farmer(tx, launcher_id, {"banned_at": None, "ban_reason": None})
            reason = None if row["ban_reason"] is None else str(row["ban_reason"])
            await _record_change(tx, FarmerChange(launcher_id, now, FarmerChangeKind.UNBANNED, old=reason))
            return True

    async def farmer_history(self, launcher_id: bytes32, limit: int = 100) -> list[FarmerChange]:
        rows = await self._reads().fetchall(
            "SELECT * FROM farmer_history WHERE launcher_id = :launcher_id ORDER BY id DESC LIMIT :limit",
            {"launcher_id": launcher_id, "limit": limit},
        )
        return [change_from_row(row) for row in rows]

    # -- partials ----------------------------------------------------------------------------------------------
    async def record_partials(
        self, partials: Sequence[PartialRecord], refusals: Sequence[PartialRefusal] = ()
    ) -> list[int | NotAdded]:
        for partial in partials:
            check_new_partial(partial)
        async with self._write() as tx:
            known = await self._known_farmers(tx, {p.launcher_id for p in partials} | {r.launcher_id for r in refusals})
            inserted = await self._insert_partials(tx, [p for p in partials if p.launcher_id in known])
            refused = [
                {"launcher_id": r.launcher_id, "received_at": r.received_at, "reason": r.reason}
                for r in refusals
                if r.launcher_id in known
            ]
            if refused:
                await tx.executemany(_INSERT_REFUSAL, refused)
        return partial_outcomes(partials, inserted, known)

    async def _known_farmers(self, statements: Statements, launcher_ids: Collection[bytes32]) -> set[bytes32]:
        if not launcher_ids:
            return set()
        condition, params = self._one_of("launcher_id", "launcher_ids", launcher_ids, "bytea")
        rows = await statements.fetchall(f"SELECT launcher_id FROM farmers WHERE {condition}", params)
        return {bytes32(row["launcher_id"]) for row in rows}

    async def get_partial(self, partial_id: int) -> PartialRecord | None:
        row = await self._lookup("SELECT * FROM partials WHERE id = :id", {"id": partial_id})
        return None if row is None else partial_from_row(row)

    async def pending_partials(self, received_before: int, limit: int = 1000) -> list[PartialRecord]:
        rows = await self._reads().fetchall(
            """
            SELECT * FROM partials WHERE status = 'pending' AND received_at < :received_before
            ORDER BY received_at, id LIMIT :limit
            """,
            {"received_before": received_before, "limit": limit},
        )
        return [partial_from_row(row) for row in rows]

    async def confirm_partials(self, partial_ids: Sequence[int]) -> list[int]:
        return await self._credit_partials(partial_ids, stale=False)

    async def settle_stale_partials(self, partial_ids: Sequence[int], credit: bool, reason: str) -> list[int]:
        if credit:
            return await self._credit_partials(partial_ids, stale=True)
        return await self._reject_partials(partial_ids, reason, stale=True)

    async def _credit_partials(self, partial_ids: Sequence[int], *, stale: bool) -> list[int]:
        if not partial_ids:
            return []
        condition, params = self._one_of("id", "ids", partial_ids, "bigint")
        async with self._leader_write(ledger=False) as tx:
            # The status guard and the credit share one transaction: a partial moves out of pending once (a
            # concurrent confirmation waits for the row, then finds it no longer pending), so its points are added
            # once, however often or concurrently it is confirmed.
            rows = await tx.fetchall(
                f"UPDATE partials SET status = 'confirmed'{', stale = TRUE' if stale else ''} "
                f"WHERE {condition} AND status = 'pending' RETURNING id, launcher_id, received_at, difficulty",
                params,
            )
            # In launcher id order: two processes crediting the same farmers lock their rows in the same order.
            await tx.executemany(
                _CREDIT_POINTS,
                [
                    {"points": points, "launcher_id": launcher}
                    for launcher, points in sorted(points_per_farmer(rows).items())
                ],
            )
            # The PPLNS window's hourly counts, from exactly the rows this statement moved out of pending. A
            # statement here rather than a trigger on the partials: this is the one path that confirms a partial
            # (partials enter pending, and only the prune deletes confirmed ones, which takes them out the same way),
            # it is not the intake's group commit, and migrate-store then copies the counts as they are.
            await tx.executemany(_ADD_CONFIRMED_HOURS, confirmed_hours_of(rows))
            return sorted(int(row["id"]) for row in rows)

    async def _reject_partials(self, partial_ids: Sequence[int], reason: str, *, stale: bool) -> list[int]:
        if not partial_ids:
            return []
        condition, params = self._one_of("id", "ids", partial_ids, "bigint")
        async with self._leader_write(ledger=False) as tx:
            rows = await tx.fetchall(
                f"UPDATE partials SET status = 'rejected', reject_reason = :reason{', stale = TRUE' if stale else ''} "
                f"WHERE {condition} AND status = 'pending' RETURNING id",
                {**params, "reason": reason},
            )
            return sorted(int(row["id"]) for row in rows)

    async def state_figures(self) -> StateFigures:
        reads = self._reads()
        farmer_rows = await reads.fetchall(
            "SELECT is_pool_member, COUNT(*) AS n, COALESCE(SUM(points), 0) AS points FROM farmers "
            "GROUP BY is_pool_member"
        )
        pending = await reads.fetchone("SELECT COUNT(*) AS n FROM partials WHERE status = 'pending'")
        claim_rows = await reads.fetchall(
            "SELECT status, COUNT(*) AS n, COALESCE(SUM(amount), 0) AS mojos FROM reward_claims GROUP BY status"
        )
        round_rows = await reads.fetchall("SELECT status, COUNT(*) AS n FROM payout_rounds GROUP BY status")
        farmers = {False: 0, True: 0}
        for row in farmer_rows:
            farmers[bool(row["is_pool_member"])] += int(row["n"])
        return StateFigures(
            farmers=farmers,
            points=sum(int(row["points"]) for row in farmer_rows),
            pending_partials=0 if pending is None else int(pending["n"]),
            claims={ClaimStatus(row["status"]): (int(row["n"]), int(row["mojos"])) for row in claim_rows},
            rounds={RoundStatus(row["status"]): int(row["n"]) for row in round_rows},
        )

    async def count_stale_partials(self) -> int:
        row = await self._reads().fetchone(
            "SELECT (SELECT COUNT(*) FROM partials WHERE stale) "
            "+ (SELECT COALESCE(SUM(stale), 0) FROM partial_hours) AS n"
        )
        return 0 if row is None else int(row["n"])

    async def reject_partials(self, partial_ids: Sequence[int], reason: str) -> list[int]:
        return await self._reject_partials(partial_ids, reason, stale=False)

    async def recent_partials(
        self, launcher_id: bytes32, since: int, statuses: Sequence[PartialStatus] | None = None
    ) -> list[PartialRecord]:
        sql = "SELECT * FROM partials WHERE launcher_id = :launcher_id AND received_at >= :since"
        params: dict[str, Any] = {"launcher_id": launcher_id, "since": since}
        if statuses is not None:
            if not statuses:
                return []
            condition, status_params = self._one_of("status", "statuses", [s.value for s in statuses], "text")
            sql += f" AND {condition}"
            params.update(status_params)
        rows = await self._reads().fetchall(sql + " ORDER BY received_at DESC, id DESC", params)
        return [partial_from_row(row) for row in rows]

    async def difficulty_summaries(
        self, since: int, window_start: int, first: bytes32 | None = None, end: bytes32 | None = None
    ) -> dict[bytes32, PartialsSummary]:
        # A few hundred members a statement: the whole pool in one would hold a reading connection of the store for
        # seconds at ten thousand farmers, and every page and scrape behind it.
        members = await self._reads().fetchall(
            f"SELECT launcher_id FROM farmers WHERE is_pool_member{_launcher_range('launcher_id', first, end)} "
            "ORDER BY launcher_id",
            {"first": first, "end": end},
        )
        summaries: dict[bytes32, PartialsSummary] = {}
        for start in range(0, len(members), SUMMARIES_PER_READ):
            page = members[start : start + SUMMARIES_PER_READ]
            params = {
                "window": window_start,
                "window_hour": window_start - window_start % HOUR,
                "since": since,
                "since_hour": since - since % HOUR,
                "first": page[0]["launcher_id"],
                "last": page[-1]["launcher_id"],
            }
            summaries.update(
                summary_from_row(row) for row in await self._reads().fetchall(DIFFICULTY_SUMMARIES_SQL, params)
            )
        return summaries

    async def confirmed_points_since(self, since: int) -> dict[bytes32, int]:
        # Whole hours from their counts (a row a farmer and hour: 240 000 for a day at ten thousand farmers, where
        # the partials are 3 million), and the hour ``since`` falls in partial by partial: its partials from ``since``
        # on, or, when fewer, its whole count less its partials before ``since`` (the counts hold exactly the
        # confirmed partials kept, so both are exact). One statement: one snapshot of the counts and the partials.
        hour = since - since % HOUR
        if since - hour <= HOUR // 2:
            sql, params = CONFIRMED_POINTS_LESS_SQL, {"hours_from": hour, "rows_from": hour, "rows_to": since}
        else:
            sql, params = (
                CONFIRMED_POINTS_MORE_SQL,
                {"hours_from": hour + HOUR, "rows_from": since, "rows_to": hour + HOUR},
            )
        rows = await self._reads().fetchall(sql, params)
        return {bytes32(row["launcher_id"]): int(row["points"]) for row in rows}

    async def add_partial_refusal(self, launcher_id: bytes32, received_at: int, reason: str) -> None:
        async with self._write() as tx:
            if not await _farmer_exists(tx, launcher_id):
                raise FarmerNotFound(launcher_id.hex())
            await tx.execute(
                _INSERT_REFUSAL, {"launcher_id": launcher_id, "received_at": received_at, "reason": reason}
            )

    async def partial_counts(
        self, since: int, launcher_id: bytes32 | None = None, until: int | None = None
    ) -> list[PartialCount]:
        farmer = "" if launcher_id is None else " AND launcher_id = :launcher_id"
        farmer += "" if until is None else " AND received_at < :until"
        hours = farmer.replace("received_at", "hour")
        rows = await self._reads().fetchall(
            f"""
            SELECT hour, outcome, SUM(n) AS n, SUM(points) AS points FROM (
                SELECT received_at - received_at % 3600 AS hour, {_OUTCOME} AS outcome,
                       COUNT(*) AS n, SUM(difficulty) AS points
                FROM partials WHERE received_at >= :since{farmer} GROUP BY 1, 2
                UNION ALL
                SELECT received_at - received_at % 3600 AS hour, reason AS outcome, COUNT(*) AS n, 0 AS points
                FROM partial_refusals WHERE received_at >= :since{farmer} GROUP BY 1, 2
                UNION ALL
                SELECT hour, outcome, n, points FROM partial_hours WHERE hour >= :since{hours}
            ) AS counted GROUP BY hour, outcome ORDER BY hour, outcome
            """,
            {"since": since, "launcher_id": launcher_id, "until": until},
        )
        return [PartialCount(int(r["hour"]), str(r["outcome"]), int(r["n"]), int(r["points"])) for r in rows]

    async def oldest_pending_partial(self) -> int | None:
        row = await self._reads().fetchone(
            "SELECT received_at FROM partials WHERE status = 'pending' ORDER BY received_at LIMIT 1"
        )
        return None if row is None else int(row["received_at"])

    async def accepted_points(self, since: int, until: int | None = None) -> int:
        until_row = "" if until is None else " AND received_at < :until"
        until_hour = "" if until is None else " AND hour < :until"
        row = await self._reads().fetchone(
            f"""
            SELECT (SELECT COALESCE(SUM(difficulty), 0) FROM partials
                    WHERE status IN ('pending', 'confirmed') AND received_at >= :since{until_row})
                 + (SELECT COALESCE(SUM(points), 0) FROM partial_hours
                    WHERE outcome IN ('pending', 'confirmed') AND hour >= :since{until_hour}) AS points
            """,
            {"since": since, "until": until},
        )
        return 0 if row is None else int(row["points"])

    async def settled_points(self, since: int, until: int) -> int:
        whole_from, whole_to = _whole_hours(since, until)
        row = await self._reads().fetchone(
            """
            SELECT (SELECT COALESCE(SUM(points), 0) FROM confirmed_hours
                    WHERE hour >= :whole_from AND hour < :whole_to)
                 + (SELECT COALESCE(SUM(difficulty), 0) FROM partials
                    WHERE status IN ('pending', 'confirmed') AND received_at >= :since AND received_at < :whole_from)
                 + (SELECT COALESCE(SUM(difficulty), 0) FROM partials
                    WHERE status IN ('pending', 'confirmed') AND received_at >= :whole_to AND received_at < :until)
                 + (SELECT COALESCE(SUM(points), 0) FROM partial_hours
                    WHERE outcome IN ('pending', 'confirmed') AND hour >= :since AND hour < :until) AS points
            """,
            {"since": since, "until": until, "whole_from": whole_from, "whole_to": whole_to},
        )
        return 0 if row is None else int(row["points"])

    async def settled_counts(self, since: int, until: int) -> list[PartialCount]:
        whole_from, whole_to = _whole_hours(since, until)
        rows = await self._reads().fetchall(
            _SETTLED_COUNTS_SQL, {"since": since, "until": until, "whole_from": whole_from, "whole_to": whole_to}
        )
        return [PartialCount(int(r["hour"]), str(r["outcome"]), int(r["n"]), int(r["points"])) for r in rows]

    async def harvester_figures(self, launcher_id: bytes32, since: int, limit: int) -> list[HarvesterFigures]:
        rows = await self._reads().fetchall(
            """
            SELECT harvester_id,
                   SUM(CASE WHEN status = 'rejected' THEN 0 ELSE 1 END) AS accepted,
                   SUM(CASE WHEN status = 'rejected' THEN 1 ELSE 0 END) AS rejected,
                   SUM(CASE WHEN status = 'rejected' THEN 0 ELSE difficulty END) AS points,
                   MAX(received_at) AS last_seen
            FROM partials WHERE launcher_id = :launcher_id AND received_at >= :since
            GROUP BY harvester_id ORDER BY last_seen DESC, harvester_id LIMIT :limit
            """,
            {"launcher_id": launcher_id, "since": since, "limit": limit},
        )
        return [
            HarvesterFigures(
                harvester_id=bytes32(r["harvester_id"]),
                accepted=int(r["accepted"]),
                rejected=int(r["rejected"]),
                points=int(r["points"]),
                last_seen=int(r["last_seen"]),
            )
            for r in rows
        ]

    async def daily_partials(self, since: int, until: int) -> list[DailyPartials]:
        day = f"- :since % {DAY}"  # whole UTC days, from the day ``since`` falls in
        rows = await self._reads().fetchall(
            f"""
            SELECT day, launcher_id, outcome, SUM(n) AS n, SUM(points) AS points FROM (
                SELECT received_at - received_at % {DAY} AS day, launcher_id, {_OUTCOME} AS outcome,
                       COUNT(*) AS n, SUM(difficulty) AS points
                FROM partials WHERE received_at >= :since {day} AND received_at < :until GROUP BY 1, 2, 3
                UNION ALL
                SELECT received_at - received_at % {DAY} AS day, launcher_id, reason AS outcome, COUNT(*) AS n,
                       0 AS points
                FROM partial_refusals WHERE received_at >= :since {day} AND received_at < :until GROUP BY 1, 2, 3
                UNION ALL
                SELECT hour - hour % {DAY} AS day, launcher_id, outcome, SUM(n) AS n, SUM(points) AS points
                FROM partial_hours WHERE hour >= :since {day} AND hour < :until GROUP BY 1, 2, 3
            ) AS counted GROUP BY day, launcher_id, outcome ORDER BY day, launcher_id, outcome
            """,
            {"since": since, "until": until},
        )
        return [
            DailyPartials(int(r["day"]), bytes32(r["launcher_id"]), str(r["outcome"]), int(r["n"]), int(r["points"]))
            for r in rows
        ]

    async def prune_partials(self, before: int, batch: int) -> int:
        if batch < 1:
            raise StoreError("a prune batch needs room for at least one row")
        cutoff = before - before % HOUR  # whole hours only: an hour is counted either row by row or in partial_hours
        if self._WARM_BEFORE_PRUNE:
            await self._reads().fetchone(_WARM_PRUNE_BATCH, {"cutoff": cutoff, "batch": batch})
        async with self._upkeep_write() as tx:
            # DELETE ... RETURNING: what is counted is exactly what this transaction deleted, so a row another
            # pruner deleted meanwhile is counted once. Settled partials only: a pending one still waits for its
            # confirmation (and its points).
            rows = await tx.fetchall(
                f"""
                DELETE FROM partials WHERE id IN (
                    SELECT id FROM partials WHERE status IN ('confirmed', 'rejected') AND received_at < :cutoff
                    LIMIT :batch{self._SKIP_LOCKED_ROWS}
                ) RETURNING launcher_id, received_at, {_OUTCOME} AS outcome, difficulty, stale
                """,
                {"cutoff": cutoff, "batch": batch},
            )
            # The PPLNS window's counts hold what is still kept row by row: a pruned confirmed partial leaves them
            # (an hour whose last one goes is deleted), in key order as the confirmation adds to them.
            taken = confirmed_hours_of([row for row in rows if row["outcome"] == PartialStatus.CONFIRMED.value])
            await tx.executemany(_TAKE_CONFIRMED_HOURS, taken)
            await tx.executemany(_DROP_EMPTY_CONFIRMED_HOUR, taken)
            if len(rows) < batch:
                rows += await tx.fetchall(
                    f"""
                    DELETE FROM partial_refusals WHERE id IN (
                        SELECT id FROM partial_refusals WHERE received_at < :cutoff LIMIT :batch{self._SKIP_LOCKED_ROWS}
                    ) RETURNING launcher_id, received_at, reason AS outcome, 0 AS difficulty, FALSE AS stale
                    """,
                    {"cutoff": cutoff, "batch": batch - len(rows)},
                )
            hours: dict[tuple[bytes32, int, str], list[int]] = defaultdict(lambda: [0, 0, 0])
            for row in rows:
                received_at = int(row["received_at"])
                counted = hours[bytes32(row["launcher_id"]), received_at - received_at % HOUR, str(row["outcome"])]
                counted[0] += 1
                counted[1] += int(row["difficulty"])
                counted[2] += int(bool(row["stale"]))
            await _add_to_hours(tx, hours)
            return len(rows)

    async def fold_partial_hours(self, since: int, before: int, batch: int) -> int:
        if batch < 1:
            raise StoreError("a fold batch needs room for at least one row")
        first_day, last_day = since - since % DAY, before - before % DAY
        async with self._upkeep_write() as tx:
            # DELETE ... RETURNING, as the prune: what is added to the days is exactly what this transaction took
            # from the hours (a concurrent folder skips the rows this one holds). The day's own first hour stays
            # and is added to. Through the hour index from ``since``'s day: the days folded long ago, a row a farmer
            # and outcome each, are not read again.
            rows = await tx.fetchall(
                f"""
                DELETE FROM partial_hours WHERE (launcher_id, hour, outcome) IN (
                    SELECT launcher_id, hour, outcome FROM partial_hours
                    WHERE hour >= :first_day AND hour < :last_day AND hour % {DAY} <> 0
                    LIMIT :batch{self._SKIP_LOCKED_ROWS}
                ) RETURNING launcher_id, hour, outcome, n, points, stale
                """,
                {"first_day": first_day, "last_day": last_day, "batch": batch},
            )
            days: dict[tuple[bytes32, int, str], list[int]] = defaultdict(lambda: [0, 0, 0])
            for row in rows:
                counted = days[bytes32(row["launcher_id"]), int(row["hour"]) - int(row["hour"]) % DAY, row["outcome"]]
                counted[0] += int(row["n"])
                counted[1] += int(row["points"])
                counted[2] += int(row["stale"])
            await _add_to_hours(tx, days)
            return len(rows)

    async def prune_difficulty_hours(self, before: int, batch: int) -> int:
        if batch < 1:
            raise StoreError("a prune batch needs room for at least one row")
        async with self._upkeep_write() as tx:
            return await tx.execute(
                f"""
                DELETE FROM difficulty_hours WHERE (launcher_id, hour, difficulty) IN (
                    SELECT launcher_id, hour, difficulty FROM difficulty_hours WHERE hour < :cutoff
                    LIMIT :batch{self._SKIP_LOCKED_ROWS}
                )
                """,
                {"cutoff": before - before % HOUR, "batch": batch},
            )

    # -- browser sessions --------------------------------------------------------------------------------------
    async def add_session(
        self, session: WebSession, *, authentication_public_key: G1Element, max_per_launcher: int
    ) -> bool:
        if max_per_launcher < 1:
            raise StoreError("a launcher needs room for at least one session")
        launcher = {"launcher_id": session.launcher_id}
        async with self._write() as tx:
            # Locked: a PUT /farmer changing the key waits for this session (and then deletes it), or this waits for
            # the PUT and finds the new key.
            row = await tx.fetchone(
                f"SELECT authentication_public_key FROM farmers WHERE launcher_id = :launcher_id{self._LOCK_ROWS}",
                launcher,
            )
            if row is None or bytes(row["authentication_public_key"]) != bytes(authentication_public_key):
                return False
            await tx.execute("DELETE FROM web_sessions WHERE expires_at <= :now", {"now": session.created_at})
            # The newest max_per_launcher - 1 stay, beside the new one: a farmer (or whoever holds its key) logging in
            # over and over keeps a bounded number of rows.
            await tx.execute(
                """
                DELETE FROM web_sessions WHERE launcher_id = :launcher_id AND token_hash NOT IN (
                    SELECT token_hash FROM web_sessions WHERE launcher_id = :launcher_id
                    ORDER BY created_at DESC, token_hash DESC LIMIT :keep
                )
                """,
                {**launcher, "keep": max_per_launcher - 1},
            )
            await tx.execute(
                """
                INSERT INTO web_sessions (token_hash, launcher_id, created_at, expires_at)
                VALUES (:token_hash, :launcher_id, :created_at, :expires_at)
                """,
                {
                    "token_hash": session.token_hash,
                    "launcher_id": session.launcher_id,
                    "created_at": session.created_at,
                    "expires_at": session.expires_at,
                },
            )
            return True

    async def get_session(self, token_hash: bytes32, now: int) -> WebSession | None:
        row = await self._reads().fetchone(
            "SELECT * FROM web_sessions WHERE token_hash = :token_hash AND expires_at > :now",
            {"token_hash": token_hash, "now": now},
        )
        if row is None:
            return None
        return WebSession(
            bytes32(row["token_hash"]), bytes32(row["launcher_id"]), int(row["created_at"]), int(row["expires_at"])
        )

    # -- the target address ---------------------------------------------------------------------------------------
    async def record_target_proof(self, proof: TargetProof) -> None:
        async with self._write() as tx:
            await tx.execute(
                """
                INSERT INTO target_proofs (
                    target_puzzle_hash, address, fingerprint, public_key, signature, signing_mode, message, proven_at
                ) VALUES (
                    :target_puzzle_hash, :address, :fingerprint, :public_key, :signature, :signing_mode, :message,
                    :proven_at
                )
                ON CONFLICT (target_puzzle_hash) DO UPDATE SET
                    address = EXCLUDED.address, fingerprint = EXCLUDED.fingerprint,
                    public_key = EXCLUDED.public_key, signature = EXCLUDED.signature,
                    signing_mode = EXCLUDED.signing_mode, message = EXCLUDED.message, proven_at = EXCLUDED.proven_at
                """,
                {
                    "target_puzzle_hash": proof.target_puzzle_hash,
                    "address": proof.address,
                    "fingerprint": proof.fingerprint,
                    "public_key": proof.public_key,
                    "signature": proof.signature,
                    "signing_mode": proof.signing_mode,
                    "message": proof.message,
                    "proven_at": proof.proven_at,
                },
            )

    async def target_proof(self, target_puzzle_hash: bytes32) -> TargetProof | None:
        row = await self._reads().fetchone(
            "SELECT * FROM target_proofs WHERE target_puzzle_hash = :target", {"target": target_puzzle_hash}
        )
        return None if row is None else proof_from_row(row)

    # -- the pool's shared secrets -------------------------------------------------------------------------------
    async def pool_secret(self, name: str, candidate: bytes, now: int) -> bytes:
        async with self._write() as tx:
            await tx.execute(
                "INSERT INTO pool_secrets (name, secret, created_at) VALUES (:name, :secret, :now) "
                "ON CONFLICT (name) DO NOTHING",
                {"name": name, "secret": candidate, "now": now},
            )
            row = await tx.fetchone("SELECT secret FROM pool_secrets WHERE name = :name", {"name": name})
        if row is None:  # pragma: no cover - inserted or already there, in the same transaction
            raise StoreError(f"the pool secret {name!r} was not recorded")
        return bytes(row["secret"])

    # -- block rewards -----------------------------------------------------------------------------------------
    async def add_reward_claims(self, claims: Sequence[RewardClaim], fee_coins: Sequence[bytes32] = ()) -> bool:
        _validate_new_claims(claims, fee_coins)
        try:
            async with self._leader_write() as tx:
                for claim in claims:
                    await self._record_claim(tx, claim)
                payer = next((claim for claim in claims if claim.fee_spend_bundle is not None), None)
                if payer is not None:
                    await self._reserve(tx, fee_coins, claim_holder(payer.coin_id), payer.submitted_at)
        except _ClaimExists:
            return False
        return True

    async def _record_claim(self, tx: Statements, claim: RewardClaim) -> None:
        """Insert a claim, or replace a FAILED one of the same coin (taking over its fee if that may still land);
        _ClaimExists (rolling back the bundle's claims) if the coin has a live or settled claim."""
        earlier = await tx.fetchone(
            f"SELECT * FROM reward_claims WHERE coin_id = :coin_id{self._LOCK_ROWS}", {"coin_id": claim.coin_id}
        )
        params = {**_claim_params(claim), "fee_settled": claim.fee_spend_bundle is None, "earlier_fees": 0}
        if earlier is not None:
            if earlier["status"] != ClaimStatus.FAILED.value:
                raise _ClaimExists()  # spending the coin again would only be refused
            # A fee of the failed claim that landed stays charged: it moves with the coin's claim, never vanishes.
            landed = int(earlier["fee"]) if bool(earlier["fee_settled"]) else 0
            params["earlier_fees"] = int(earlier["earlier_fees"]) + landed
            if not bool(earlier["fee_settled"]):
                if claim.fee or claim.fee_spend_bundle is not None:
                    raise StoreError(
                        f"coin {claim.coin_id.hex()}: its failed claim's fee spend may still land; the new claim "
                        "takes that fee over and cannot pay one of its own"
                    )
                params.update(fee=earlier["fee"], fee_spend_bundle=earlier["fee_spend_bundle"], fee_settled=False)
        if await tx.fetchone(_UPSERT_CLAIM, params) is None:
            raise _ClaimExists()  # another process recorded a live claim of the coin meanwhile
        # A failed claim replaced is the same block won: its key is already in the outbox.
        await enqueue(
            tx,
            NotificationKind.BLOCK_WON,
            f"{NotificationKind.BLOCK_WON.value}:{claim.coin_id.hex()}",
            {"coin_id": claim.coin_id.hex(), "amount": claim.amount, "height": claim.coin_height},
            claim.submitted_at,
            launcher_id=claim.launcher_id,
        )
        if claim.fee_spend_bundle is not None:
            await _add_claim_fee_version(
                tx, claim.coin_id, claim.fee_spend_bundle, claim.fee, claim.submitted_at, claim.submitted_height
            )
        if claim.fee > 0:
            await _debit_account(tx, _POOL_FEE_SHARE, claim.fee)
            await _journal(tx, LedgerKind.CLAIM_FEE, claim.fee, claim.launcher_id, claim.coin_id.hex())

    async def get_reward_claim(self, coin_id: bytes32) -> RewardClaim | None:
        row = await self._lookup("SELECT * FROM reward_claims WHERE coin_id = :coin_id", {"coin_id": coin_id})
        return None if row is None else claim_from_row(row)

    async def reward_claims(self, status: ClaimStatus | None = None) -> list[RewardClaim]:
        where = "" if status is None else "WHERE status = :status"
        rows = await self._reads().fetchall(
            f"SELECT * FROM reward_claims {where} ORDER BY coin_height, coin_id",
            {} if status is None else {"status": status.value},
        )
        return [claim_from_row(row) for row in rows]

    async def update_reward_claim(
        self, coin_id: bytes32, status: ClaimStatus, confirmed_height: int | None = None, error: str | None = None
    ) -> None:
        async with self._leader_write() as tx:
            claim = await self._claim_in(tx, coin_id)
            # Never back to SUBMITTED or out of CONFIRMED and LOST: a claim credited once stays credited once.
            if status not in _CLAIM_MOVES.get(claim.status, ()):
                raise StoreError(
                    f"claim of coin {coin_id.hex()} is {claim.status.value}: it cannot become {status.value}"
                )
            # None keeps what is recorded, so a later status change does not erase an earlier height or error.
            await tx.execute(
                """
                UPDATE reward_claims SET status = :status, confirmed_height = COALESCE(:confirmed_height,
                    confirmed_height), error = COALESCE(:error, error)
                WHERE coin_id = :coin_id
                """,
                {"status": status.value, "confirmed_height": confirmed_height, "error": error, "coin_id": coin_id},
            )
            if status is ClaimStatus.CONFIRMED:
                await _credit_account(tx, _UNDISTRIBUTED, claim.amount)
                await _journal(tx, LedgerKind.CLAIM, claim.amount, claim.launcher_id, coin_id.hex())
                await enqueue(
                    tx,
                    NotificationKind.REWARD_CONFIRMED,
                    f"{NotificationKind.REWARD_CONFIRMED.value}:{coin_id.hex()}",
                    {"coin_id": coin_id.hex(), "amount": claim.amount, "confirmed_height": confirmed_height},
                    int(time.time()),
                    launcher_id=claim.launcher_id,
                )

    async def replace_claim_fee(
        self,
        coin_id: bytes32,
        fee_spend_bundle: bytes,
        fee: int,
        spend_bundle_name: bytes32,
        now: int,
        height: int,
        *,
        replaces: bytes32,
        coins: Sequence[bytes32] = (),
    ) -> None:
        async with self._leader_write() as tx:
            claim = await self._claim_in(tx, coin_id)
            if claim.status is not ClaimStatus.SUBMITTED:
                raise StoreError(
                    f"claim of coin {coin_id.hex()} is {claim.status.value}: only an absorb in flight is replaced"
                )
            # A fee spend built from an older version might not spend the newest one's coins.
            _still_current(f"claim of coin {coin_id.hex()}: its absorb", claim.spend_bundle_name, replaces)
            if claim.fee_settled and claim.fee_spend_bundle is not None:
                raise StoreError(f"claim of coin {coin_id.hex()}: its fee spend has settled, it is not replaced")
            carrier = await tx.fetchone(
                "SELECT coin_id FROM reward_claims WHERE spend_bundle_name = :replaces AND status = 'submitted' "
                "AND coin_id != :coin_id AND NOT fee_settled",
                {"replaces": replaces, "coin_id": coin_id},
            )
            if carrier is not None:
                raise StoreError(
                    f"the absorb {replaces.hex()} has its fee carried by the claim of coin "
                    f"{bytes(carrier['coin_id']).hex()}: one absorb has one fee spend"
                )
            if fee < claim.fee:
                raise StoreError(
                    f"claim of coin {coin_id.hex()}: a new version must not pay less fee ({fee} < {claim.fee})"
                )
            increase = fee - claim.fee
            if increase > 0:
                await _debit_account(tx, _POOL_FEE_SHARE, increase)
                await _journal(tx, LedgerKind.CLAIM_FEE, increase, claim.launcher_id, coin_id.hex())
            await tx.execute(
                "UPDATE reward_claims SET spend_bundle_name = :name, submitted_height = :height "
                "WHERE spend_bundle_name = :replaces AND status = 'submitted'",
                {"name": spend_bundle_name, "height": height, "replaces": replaces},
            )
            await tx.execute(
                "UPDATE reward_claims SET fee = :fee, fee_spend_bundle = :bundle, fee_settled = FALSE "
                "WHERE coin_id = :coin_id",
                {"fee": fee, "bundle": bytes(fee_spend_bundle), "coin_id": coin_id},
            )
            await _add_claim_fee_version(tx, coin_id, fee_spend_bundle, fee, now, height)
            await self._reserve(tx, coins, claim_holder(coin_id), now)

    async def claim_fee_versions(self, coin_id: bytes32) -> list[ClaimFeeVersion]:
        rows = await self._reads().fetchall(
            "SELECT * FROM claim_fee_versions WHERE coin_id = :coin_id ORDER BY version", {"coin_id": coin_id}
        )
        return [claim_fee_version_from_row(row) for row in rows]

    async def settle_claim_fee(self, coin_id: bytes32, landed: bool, fee_paid: int | None = None) -> None:
        async with self._leader_write() as tx:
            claim = await self._claim_in(tx, coin_id)
            if claim.fee_settled or claim.fee_spend_bundle is None:
                raise StoreError(f"claim of coin {coin_id.hex()} has no fee waiting to settle")
            if fee_paid is not None and not 0 <= fee_paid <= claim.fee:
                raise StoreError(
                    f"claim of coin {coin_id.hex()}: a fee paid of {fee_paid} is not within the {claim.fee} charged"
                )
            # What stays charged: the fee of the version that landed (all that was charged, unless an earlier,
            # cheaper one landed), or nothing when none can land any more.
            fee = (claim.fee if fee_paid is None else fee_paid) if landed else 0
            refund = claim.fee - fee
            if refund > 0:
                await _credit_account(tx, _POOL_FEE_SHARE, refund)
                await _journal(tx, LedgerKind.CLAIM_FEE_REFUND, refund, claim.launcher_id, coin_id.hex())
            await tx.execute(
                "UPDATE reward_claims SET fee = :fee, fee_settled = TRUE WHERE coin_id = :coin_id",
                {"fee": fee, "coin_id": coin_id},
            )
            await tx.execute(
                "UPDATE claim_fee_versions SET settled = TRUE WHERE coin_id = :coin_id", {"coin_id": coin_id}
            )
            await tx.execute("DELETE FROM coin_reservations WHERE holder = :holder", {"holder": claim_holder(coin_id)})

    async def reserved_coins(self) -> dict[bytes32, str]:
        rows = await self._reads().fetchall("SELECT coin_id, holder FROM coin_reservations")
        return {bytes32(row["coin_id"]): str(row["holder"]) for row in rows}

    async def _claim_in(self, tx: Statements, coin_id: bytes32) -> RewardClaim:
        row = await tx.fetchone(
            f"SELECT * FROM reward_claims WHERE coin_id = :coin_id{self._LOCK_ROWS}", {"coin_id": coin_id}
        )
        if row is None:
            raise StoreError(f"no reward claim for coin {coin_id.hex()}")
        return claim_from_row(row)

    async def _reserve(self, tx: Statements, coin_ids: Sequence[bytes32], holder: str, now: int) -> None:
        """Hold ``coin_ids`` for ``holder`` (coins it already holds stay held); CoinReserved, rolling the whole
        transaction back, if another holder has one. Reservations are written only in money transactions, which run
        one at a time, so the check and the insert see the same state."""
        if not coin_ids:
            return
        condition, params = self._one_of("coin_id", "coin_ids", set(coin_ids), "bytea")
        taken = await tx.fetchall(
            f"SELECT coin_id, holder FROM coin_reservations WHERE {condition} AND holder != :holder",
            {**params, "holder": holder},
        )
        if taken:
            raise CoinReserved(
                f"coin {bytes(taken[0]['coin_id']).hex()} is held by {taken[0]['holder']}, a transaction that may "
                f"still land"
            )
        await tx.executemany(
            "INSERT INTO coin_reservations (coin_id, holder, created_at) VALUES (:coin_id, :holder, :now) "
            "ON CONFLICT (coin_id) DO NOTHING",
            [{"coin_id": coin_id, "holder": holder, "now": now} for coin_id in dict.fromkeys(coin_ids)],
        )

    # -- the ledger --------------------------------------------------------------------------------------------
    async def distribute(self, distribution: Distribution, shares: Sequence[DistributionShare]) -> int:
        _validate_distribution(distribution, shares)
        async with self._leader_write() as tx:
            await _debit_account(tx, _UNDISTRIBUTED, distribution.total)
            distribution_id = await _inserted_id(
                tx,
                """
                INSERT INTO distributions (created_at, scheme, total, pool_fee, farmer_total, remainder)
                VALUES (:created_at, :scheme, :total, :pool_fee, :farmer_total, :remainder) RETURNING id
                """,
                {
                    "created_at": distribution.created_at,
                    "scheme": distribution.scheme,
                    "total": distribution.total,
                    "pool_fee": distribution.pool_fee,
                    "farmer_total": distribution.farmer_total,
                    "remainder": distribution.remainder,
                },
            )
            reference = f"distribution {distribution_id}"
            if distribution.pool_fee > 0:
                await _credit_account(tx, _POOL_FEE_SHARE, distribution.pool_fee)
                await _journal(tx, LedgerKind.DISTRIBUTION_POOL_FEE, distribution.pool_fee, None, reference)
            # A statement for all shares rather than four a share: thousands of farmers' shares one statement at a
            # time held the pool's writer for seconds.
            await self._take_from_farmers(tx, "points", {share.launcher_id: share.points for share in shares})
            ordered = sorted(shares, key=lambda share: share.launcher_id)
            await tx.executemany(
                "UPDATE farmers SET owed = owed + :amount WHERE launcher_id = :launcher_id",
                [{"launcher_id": share.launcher_id, "amount": share.amount} for share in ordered],
            )
            await tx.executemany(
                "INSERT INTO distribution_shares (distribution_id, launcher_id, amount, points) "
                "VALUES (:distribution_id, :launcher_id, :amount, :points)",
                [
                    {
                        "distribution_id": distribution_id,
                        "launcher_id": share.launcher_id,
                        "amount": share.amount,
                        "points": share.points,
                    }
                    for share in shares
                ],
            )
            await _journal_many(
                tx, LedgerKind.DISTRIBUTION_SHARE, [(share.amount, share.launcher_id) for share in shares], reference
            )
            return distribution_id

    async def _take_from_farmers(
        self, tx: S, column: Literal["owed", "points"], amounts: Mapping[bytes32, int]
    ) -> None:
        """Take each farmer's amount from its balance ``column``, in a few statements for thousands of farmers: the
        balances are read (their rows locked) and checked first, so none goes below zero, and the conditional
        updates then all apply. FarmerNotFound for an unknown farmer, StoreError if one holds less (raising rolls
        back the whole transaction)."""
        launcher_ids = sorted(amounts)  # locked in launcher id order, as every writer of farmers' balances does
        for start in range(0, len(launcher_ids), ROWS_PER_STATEMENT):
            chunk = launcher_ids[start : start + ROWS_PER_STATEMENT]
            condition, params = self._one_of("launcher_id", "launcher_ids", chunk, "bytea")
            rows = await tx.fetchall(
                f"SELECT launcher_id, {column} AS held FROM farmers WHERE {condition} "
                f"ORDER BY launcher_id{self._LOCK_ROWS}",
                params,
            )
            held = {bytes32(row["launcher_id"]): int(row["held"]) for row in rows}
            for launcher_id in chunk:
                if launcher_id not in held:
                    raise FarmerNotFound(f"payment to unknown farmer {launcher_id.hex()}")
                if held[launcher_id] < amounts[launcher_id]:
                    raise _shortfall(column, launcher_id, amounts[launcher_id])
        await tx.executemany(
            f"UPDATE farmers SET {column} = {column} - :amount "
            f"WHERE launcher_id = :launcher_id AND {column} >= :amount",
            [{"launcher_id": launcher_id, "amount": amounts[launcher_id]} for launcher_id in launcher_ids],
        )

    async def distributions(self, limit: int = 100) -> list[Distribution]:
        return [distribution_from_row(row) for row in await self._newest("distributions", limit)]

    async def distribution_shares(self, distribution_id: int) -> list[DistributionShare]:
        rows = await self._reads().fetchall(
            "SELECT * FROM distribution_shares WHERE distribution_id = :id ORDER BY launcher_id",
            {"id": distribution_id},
        )
        return [share_from_row(row) for row in rows]

    async def ledger(self) -> LedgerSummary:
        return await read_ledger(self._reads())

    async def ledger_entries(self, limit: int = 1000) -> list[LedgerEntry]:
        return [entry_from_row(row) for row in await self._newest("ledger_entries", limit)]

    async def fund_fees(self, amount: int, reference: str, *, wallet_spendable: int | None = None) -> int | None:
        if amount <= 0:
            raise ValueError(f"fee funding must be positive, got {amount}")
        surplus: int | None = None
        async with self._leader_write() as tx:
            if wallet_spendable is not None:
                # Checked in the money transaction: two fundings at once cannot both give the same coins.
                ledger = await read_ledger(tx)
                row = await tx.fetchone(
                    "SELECT COALESCE(SUM(amount), 0) AS unsettled FROM reward_claims "
                    "WHERE status IN ('submitted', 'failed')"
                )
                unsettled = 0 if row is None else int(row["unsettled"])
                surplus = wallet_spendable - ledger.wallet_should_hold - unsettled
                if amount > surplus:
                    raise InsufficientFunds(
                        f"the wallet can spend {wallet_spendable} mojos, of which the ledger holds "
                        f"{ledger.wallet_should_hold} for farmers and the pool and {unsettled} may be rewards of "
                        f"claims not settled yet: only {max(surplus, 0)} mojos are the operator's; send more to the "
                        "pool wallet first"
                    )
            # The account row appears with the first funding: stores made before it exists need no migration.
            await tx.execute(
                "INSERT INTO ledger_accounts (name, balance) VALUES (:name, 0) ON CONFLICT (name) DO NOTHING",
                {"name": _OPERATOR_FUNDING},
            )
            await _credit_account(tx, _OPERATOR_FUNDING, amount)
            await _credit_account(tx, _POOL_FEE_SHARE, amount)
            await _journal(tx, LedgerKind.FEE_FUNDING, amount, None, reference)
        return surplus

    # -- payouts -----------------------------------------------------------------------------------------------
    async def create_payout_round(
        self, payout_round: PayoutRound, payments: Sequence[Payment], batch_fees: Sequence[int]
    ) -> int:
        owed_by_farmer, fee_address_total = _validate_round(payout_round, payments, batch_fees)
        async with self._leader_write() as tx:
            # Under the ledger lock no other transaction can be opening a round between this check and the insert
            # (and the unique index payout_rounds_one_open would refuse it anyway).
            if await tx.fetchone("SELECT 1 FROM payout_rounds WHERE status = 'open'") is not None:
                raise RoundAlreadyOpen("a payout round is still open")
            try:
                round_id = await _insert_round(tx, payout_round)
            except self._UNIQUE_VIOLATION:
                raise RoundAlreadyOpen("a payout round is still open") from None
            reference = f"round {round_id}"
            await self._take_from_farmers(tx, "owed", owed_by_farmer)
            await _journal_many(tx, LedgerKind.PAYMENT, [(a, i) for i, a in owed_by_farmer.items()], reference)
            if fee_address_total > 0:
                await _debit_account(tx, _POOL_FEE_SHARE, fee_address_total)
                await _journal(tx, LedgerKind.POOL_FEE_PAYMENT, fee_address_total, None, reference)
            for index, fee in enumerate(batch_fees):
                await tx.execute(
                    "INSERT INTO payment_batches (round_id, batch_index, fee, status, updated_at) "
                    "VALUES (:round_id, :batch_index, :fee, 'pending', :now)",
                    {"round_id": round_id, "batch_index": index, "fee": fee, "now": payout_round.created_at},
                )
                if fee > 0:
                    await _debit_account(tx, _POOL_FEE_SHARE, fee)
                    await _journal(tx, LedgerKind.BATCH_FEE, fee, None, f"round {round_id} batch {index}")
            await tx.executemany(_INSERT_PAYMENT, [_payment_params(round_id, payment) for payment in payments])
            await tx.execute(_ADD_PAYMENTS_RECORDED, {"round_id": round_id})
            await tx.execute(_COUNT_FARMERS_PAID, {"round_id": round_id})
            return round_id

    async def open_round(self) -> PayoutRound | None:
        row = await self._reads().fetchone("SELECT * FROM payout_rounds WHERE status = 'open'")
        return None if row is None else round_from_row(row)

    async def get_round(self, round_id: int) -> PayoutRound | None:
        row = await self._lookup("SELECT * FROM payout_rounds WHERE id = :id", {"id": round_id})
        return None if row is None else round_from_row(row)

    async def rounds(self, limit: int = 100) -> list[PayoutRound]:
        return [round_from_row(row) for row in await self._newest("payout_rounds", limit)]

    async def batches(self, round_id: int) -> list[PaymentBatch]:
        rows = await self._reads().fetchall(
            "SELECT * FROM payment_batches WHERE round_id = :round_id ORDER BY batch_index", {"round_id": round_id}
        )
        return [batch_from_row(row) for row in rows]

    async def payments(
        self, *, round_id: int | None = None, batch_index: int | None = None, launcher_id: bytes32 | None = None
    ) -> list[Payment]:
        filters = {"round_id": round_id, "batch_index": batch_index, "launcher_id": launcher_id}
        given = {column: value for column, value in filters.items() if value is not None}
        where = f"WHERE {' AND '.join(f'{column} = :{column}' for column in given)}" if given else ""
        rows = await self._reads().fetchall(f"SELECT * FROM payments {where} ORDER BY id", given)
        return [payment_from_row(row) for row in rows]

    async def payment_lines(
        self, limit: int, offset: int = 0, *, launcher_id: bytes32 | None = None
    ) -> list[PaymentLine]:
        where = "" if launcher_id is None else "WHERE p.launcher_id = :launcher_id"
        rows = await self._reads().fetchall(
            f"""
            SELECT p.*, r.created_at, b.status AS batch_status, b.tx_id, b.confirmed_height
            FROM payments p
            JOIN payout_rounds r ON r.id = p.round_id
            JOIN payment_batches b ON b.round_id = p.round_id AND b.batch_index = p.batch_index
            {where} ORDER BY p.id DESC LIMIT :limit OFFSET :offset
            """,
            {"limit": limit, "offset": offset, "launcher_id": launcher_id},
        )
        return [
            PaymentLine(
                payment_from_row(row),
                int(row["created_at"]),
                BatchStatus(row["batch_status"]),
                optional_bytes32(row["tx_id"]),
                optional_int(row["confirmed_height"]),
            )
            for row in rows
        ]

    async def reward_claims_page(
        self, limit: int, offset: int = 0, *, status: ClaimStatus | None = None
    ) -> list[RewardClaim]:
        where = "" if status is None else "WHERE status = :status"
        rows = await self._reads().fetchall(
            f"SELECT * FROM reward_claims {where} ORDER BY coin_height DESC, coin_id LIMIT :limit OFFSET :offset",
            {"limit": limit, "offset": offset, "status": None if status is None else status.value},
        )
        return [claim_from_row(row) for row in rows]

    async def mark_batch_submitted(
        self,
        batch_id: int,
        tx_id: bytes32,
        spend_bundle: bytes,
        now: int,
        height: int | None = None,
        *,
        coins: Sequence[bytes32] = (),
    ) -> None:
        async with self._leader_write() as tx:
            batch = await self._batch_in(tx, batch_id)
            await _move_batch(
                tx,
                batch_id,
                BatchStatus.PENDING,
                BatchStatus.SUBMITTED,
                {"tx_id": tx_id, "spend_bundle": bytes(spend_bundle), "updated_at": now, "submitted_height": height},
            )
            await _add_version(tx, batch_id, 1, tx_id, spend_bundle, batch.fee, now, height)
            await self._reserve(tx, coins, batch_holder(batch_id), now)
            await enqueue_batch_events(tx, NotificationKind.PAYOUT_SENT, batch_id, now)

    async def replace_batch_transaction(
        self,
        batch_id: int,
        tx_id: bytes32,
        spend_bundle: bytes,
        fee: int,
        now: int,
        height: int,
        *,
        replaces: bytes32,
        coins: Sequence[bytes32] = (),
    ) -> None:
        async with self._leader_write() as tx:
            batch = await self._batch_in(tx, batch_id)
            if batch.status is not BatchStatus.SUBMITTED:
                raise StoreError(f"batch {batch_id} is {batch.status.value}: only a submitted batch is replaced")
            # A version built from an older one (by a second leader, or an iteration that ran alongside) might not
            # conflict with the version recorded meanwhile.
            _still_current(f"batch {batch_id}: its transaction", batch.tx_id, replaces)
            if fee < batch.fee:
                raise StoreError(f"batch {batch_id}: a replacement must not pay less fee ({fee} < {batch.fee})")
            increase = fee - batch.fee
            if increase > 0:
                await _debit_account(tx, _POOL_FEE_SHARE, increase)
                await _journal(tx, LedgerKind.BATCH_FEE, increase, None, _batch_reference(batch))
                await _change_round_fees(tx, batch.round_id, increase)
            await tx.execute(
                """
                UPDATE payment_batches SET tx_id = :tx_id, spend_bundle = :spend_bundle, fee = :fee, updated_at = :now,
                    submitted_height = :height
                WHERE id = :id
                """,
                {
                    "tx_id": tx_id,
                    "spend_bundle": bytes(spend_bundle),
                    "fee": fee,
                    "now": now,
                    "height": height,
                    "id": batch_id,
                },
            )
            latest = await tx.fetchone(
                "SELECT COALESCE(MAX(version), 0) AS version FROM batch_versions WHERE batch_id = :id", {"id": batch_id}
            )
            version = 1 + (0 if latest is None else int(latest["version"]))
            await _add_version(tx, batch_id, version, tx_id, spend_bundle, fee, now, height)
            await self._reserve(tx, coins, batch_holder(batch_id), now)

    async def batch_versions(self, batch_id: int) -> list[BatchVersion]:
        rows = await self._reads().fetchall(
            "SELECT * FROM batch_versions WHERE batch_id = :id ORDER BY version", {"id": batch_id}
        )
        return [version_from_row(row) for row in rows]

    async def mark_batch_confirmed(self, batch_id: int, height: int, now: int, fee_paid: int | None = None) -> None:
        if fee_paid is not None and fee_paid < 0:
            raise StoreError(f"batch {batch_id}: a transaction cannot pay a negative fee ({fee_paid})")
        async with self._leader_write() as tx:
            batch = await self._batch_in(tx, batch_id)
            round_id = await _move_batch(
                tx,
                batch_id,
                BatchStatus.SUBMITTED,
                BatchStatus.CONFIRMED,
                {"confirmed_height": height, "updated_at": now},
            )
            if fee_paid is not None and fee_paid < batch.fee:
                # An earlier, cheaper version of the transaction landed: the difference was never spent.
                refund = batch.fee - fee_paid
                await tx.execute(
                    "UPDATE payment_batches SET fee = :fee WHERE id = :id", {"fee": fee_paid, "id": batch_id}
                )
                await _change_round_fees(tx, round_id, -refund)
                await _credit_account(tx, _POOL_FEE_SHARE, refund)
                await _journal(tx, LedgerKind.BATCH_FEE_REFUND, refund, None, _batch_reference(batch))
            await tx.execute(_ADD_FARMERS_PAID, {"round_id": batch.round_id, "batch_index": batch.index})
            # One version landed: every other conflicts with it and never can, so its coins are free again.
            await tx.execute("DELETE FROM coin_reservations WHERE holder = :holder", {"holder": batch_holder(batch_id)})
            # Under the ledger lock no other batch of this round can be confirming concurrently, so "the last one"
            # is decided once.
            unconfirmed = await tx.fetchone(
                "SELECT 1 FROM payment_batches WHERE round_id = :round_id AND status != 'confirmed' LIMIT 1",
                {"round_id": round_id},
            )
            if unconfirmed is None:
                await tx.execute("UPDATE payout_rounds SET status = 'done' WHERE id = :id", {"id": round_id})
            await enqueue_batch_events(tx, NotificationKind.PAYOUT_CONFIRMED, batch_id, now, confirmed_height=height)

    async def batch_status(self, batch_id: int) -> BatchStatus | None:
        row = await self._lookup("SELECT status FROM payment_batches WHERE id = :id", {"id": batch_id})
        return None if row is None else BatchStatus(row["status"])

    # -- bounded reads for the pages and the operator -----------------------------------------------------------
    async def pool_figures(self) -> PoolFigures:
        row = await self._reads().fetchone(_POOL_FIGURES_SQL)
        assert row is not None  # a SELECT without FROM always gives one row
        return PoolFigures(
            members=int(row["members"]),
            points=int(row["points"]),
            blocks_won=int(row["blocks_won"]),
            rewards_claimed=int(row["rewards_claimed"]),
            paid_to_farmers=int(row["paid_to_farmers"]),
        )

    async def total_points(self) -> int:
        row = await self._reads().fetchone("SELECT COALESCE(SUM(points), 0) AS points FROM farmers")
        return 0 if row is None else int(row["points"])

    async def farmer_points(self) -> dict[bytes32, int]:
        rows = await self._reads().fetchall("SELECT launcher_id, points FROM farmers")
        return dict(await decoded(rows, lambda row: (bytes32(row["launcher_id"]), int(row["points"]))))

    async def farmer_payouts(self, launcher_id: bytes32, limit: int, before: int | None = None) -> list[FarmerPayout]:
        rows = await self._reads().fetchall(
            f"""
            SELECT p.id, r.created_at, p.amount, b.status, b.tx_id, b.confirmed_height
            FROM payments p
            JOIN payment_batches b ON b.round_id = p.round_id AND b.batch_index = p.batch_index
            JOIN payout_rounds r ON r.id = p.round_id
            WHERE p.launcher_id = :launcher_id{"" if before is None else " AND p.id < :before"}
            ORDER BY p.id DESC LIMIT :limit
            """,
            {"launcher_id": launcher_id, "before": before, "limit": limit},
        )
        return [
            FarmerPayout(
                id=int(row["id"]),
                created_at=int(row["created_at"]),
                amount=int(row["amount"]),
                status=BatchStatus(row["status"]),
                tx_id=optional_bytes32(row["tx_id"]),
                confirmed_height=optional_int(row["confirmed_height"]),
            )
            for row in rows
        ]

    async def farmer_paid(self, launcher_id: bytes32) -> int:
        row = await self._reads().fetchone(
            """
            SELECT COALESCE(SUM(p.amount), 0) AS paid FROM payments p
            JOIN payment_batches b ON b.round_id = p.round_id AND b.batch_index = p.batch_index
            WHERE p.launcher_id = :launcher_id AND b.status = 'confirmed'
            """,
            {"launcher_id": launcher_id},
        )
        return 0 if row is None else int(row["paid"])

    async def farmer_earnings(self, launcher_id: bytes32, limit: int, before: int | None = None) -> list[FarmerEarning]:
        rows = await self._reads().fetchall(
            f"""
            SELECT s.distribution_id, d.created_at, s.points, s.amount
            FROM distribution_shares s JOIN distributions d ON d.id = s.distribution_id
            WHERE s.launcher_id = :launcher_id{"" if before is None else " AND s.distribution_id < :before"}
            ORDER BY s.distribution_id DESC LIMIT :limit
            """,
            {"launcher_id": launcher_id, "before": before, "limit": limit},
        )
        return [
            FarmerEarning(int(row["distribution_id"]), int(row["created_at"]), int(row["points"]), int(row["amount"]))
            for row in rows
        ]

    async def round_summaries(self, limit: int, before: int | None = None) -> list[RoundSummary]:
        reads = self._reads()
        rows = await reads.fetchall(
            f"SELECT * FROM payout_rounds {'' if before is None else 'WHERE id < :before'} "
            "ORDER BY id DESC LIMIT :limit",
            {"before": before, "limit": limit},
        )
        rounds = [round_from_row(row) for row in rows]
        farmers_paid = {int(row["id"]): int(row["farmers_paid"]) for row in rows}
        ids = [r.id for r in rounds]
        if not ids:
            return []
        condition, params = self._one_of("round_id", "round_ids", ids, "bigint")
        tx_ids: dict[int, list[bytes32]] = defaultdict(list)
        for row in await reads.fetchall(
            f"SELECT round_id, tx_id FROM payment_batches WHERE {condition} AND tx_id IS NOT NULL "
            "ORDER BY round_id, batch_index",
            params,
        ):
            tx_ids[int(row["round_id"])].append(bytes32(row["tx_id"]))
        return [RoundSummary(r, farmers_paid[r.id], tx_ids.get(r.id, [])) for r in rounds if r.id is not None]

    async def won_blocks(self, limit: int, before: tuple[int, bytes32] | None = None) -> list[RewardClaim]:
        after = "" if before is None else " AND (coin_height < :height OR (coin_height = :height AND coin_id > :coin))"
        height, coin = (None, None) if before is None else before
        rows = await self._reads().fetchall(
            f"SELECT * FROM reward_claims WHERE status != 'failed'{after}"
            " ORDER BY coin_height DESC, coin_id LIMIT :limit",
            {"height": height, "coin": coin, "limit": limit},
        )
        return [claim_from_row(row) for row in rows]

    async def count_pending_partials(self) -> int:
        row = await self._reads().fetchone("SELECT COUNT(*) AS n FROM partials WHERE status = 'pending'")
        return 0 if row is None else int(row["n"])

    async def claim_totals(self) -> dict[ClaimStatus, tuple[int, int]]:
        rows = await self._reads().fetchall(
            "SELECT status, COUNT(*) AS n, COALESCE(SUM(amount), 0) AS mojos FROM reward_claims GROUP BY status"
        )
        return {ClaimStatus(row["status"]): (int(row["n"]), int(row["mojos"])) for row in rows}

    async def pool_fee_earned(self) -> int:
        row = await self._reads().fetchone(
            "SELECT COALESCE(SUM(amount), 0) AS earned FROM ledger_entries WHERE kind = :kind",
            {"kind": LedgerKind.DISTRIBUTION_POOL_FEE.value},
        )
        return 0 if row is None else int(row["earned"])

    async def owed_balances(self, limit: int | None = None) -> list[OwedBalance]:
        rows = await self._reads().fetchall(
            "SELECT launcher_id, owed, payout_puzzle_hash FROM farmers WHERE owed > 0 "
            f"ORDER BY owed DESC, launcher_id{'' if limit is None else ' LIMIT :limit'}",
            {"limit": limit},
        )
        return [
            OwedBalance(bytes32(row["launcher_id"]), int(row["owed"]), bytes32(row["payout_puzzle_hash"]))
            for row in rows
        ]

    async def anyone_due(self, min_payment: int) -> bool:
        row = await self._reads().fetchone(
            """
            SELECT 1 AS due FROM farmers f LEFT JOIN farmer_settings s ON s.launcher_id = f.launcher_id
            WHERE f.owed > 0 AND f.owed >= :min_payment AND f.owed >= COALESCE(s.min_payout, 0) LIMIT 1
            """,
            {"min_payment": min_payment},
        )
        return row is not None

    async def _newest(self, table: str, limit: int) -> list[Row]:
        """A table's ``limit`` most recent rows (highest ids) first."""
        return await self._reads().fetchall(f"SELECT * FROM {table} ORDER BY id DESC LIMIT :limit", {"limit": limit})

    # -- notifications and the farmers' settings ---------------------------------------------------------------
    async def add_notification(
        self,
        kind: NotificationKind,
        idempotency_key: str,
        payload: dict[str, object],
        now: int,
        *,
        launcher_id: bytes32 | None = None,
        to_operator: bool = True,
    ) -> bool:
        async with self._write() as tx:
            return await enqueue(
                tx, kind, idempotency_key, payload, now, launcher_id=launcher_id, to_operator=to_operator
            )

    async def add_notifications(self, events: Sequence[NewNotification], now: int) -> None:
        for start in range(0, len(events), NOTIFICATIONS_PER_WRITE):
            async with self._write() as tx:
                await enqueue_many(tx, events[start : start + NOTIFICATIONS_PER_WRITE], now)

    async def notification_keys(self, keys: Collection[str]) -> set[str]:
        rows = await self._read_one_of(
            "SELECT idempotency_key FROM notifications WHERE {condition}", "idempotency_key", keys, "text"
        )
        return {str(row["idempotency_key"]) for row in rows}

    async def notifications_due(self, now: int, limit: int = 100) -> list[Notification]:
        rows = await self._reads().fetchall(
            "SELECT * FROM notifications WHERE done_at IS NULL AND next_attempt_at <= :now ORDER BY id LIMIT :limit",
            {"now": now, "limit": limit},
        )
        return await self._with_deliveries(rows)

    async def notifications(self, limit: int = 100, kind: NotificationKind | None = None) -> list[Notification]:
        where = "" if kind is None else "WHERE kind = :kind"
        rows = await self._reads().fetchall(
            f"SELECT * FROM notifications {where} ORDER BY id DESC LIMIT :limit",
            {"limit": limit} if kind is None else {"limit": limit, "kind": kind.value},
        )
        return await self._with_deliveries(rows)

    async def _with_deliveries(self, rows: Sequence[Row]) -> list[Notification]:
        if not rows:
            return []
        condition, params = self._one_of("notification_id", "ids", [int(row["id"]) for row in rows], "bigint")
        delivered: dict[int, list[str]] = defaultdict(list)
        for row in await self._reads().fetchall(
            f"SELECT notification_id, destination FROM notification_deliveries WHERE {condition}", params
        ):
            delivered[int(row["notification_id"])].append(str(row["destination"]))
        return [notification_from_row(row, delivered[int(row["id"])]) for row in rows]

    async def record_delivery(self, notification_id: int, destination: str, now: int) -> None:
        async with self._write() as tx:
            await tx.execute(
                "INSERT INTO notification_deliveries (notification_id, destination, delivered_at) "
                "VALUES (:id, :destination, :now) ON CONFLICT (notification_id, destination) DO NOTHING",
                {"id": notification_id, "destination": destination, "now": now},
            )

    async def finish_attempt(self, notification_id: int, now: int, retry_at: int | None, error: str | None) -> None:
        async with self._write() as tx:
            if retry_at is None:
                await tx.execute(
                    "UPDATE notifications SET done_at = :now, last_error = :error WHERE id = :id AND done_at IS NULL",
                    {"now": now, "error": error, "id": notification_id},
                )
            else:
                await tx.execute(
                    "UPDATE notifications SET attempts = attempts + 1, next_attempt_at = :retry_at, "
                    "last_error = :error WHERE id = :id AND done_at IS NULL",
                    {"retry_at": retry_at, "error": error, "id": notification_id},
                )

    async def close_notifications(self, notification_ids: Sequence[int], now: int) -> None:
        if not notification_ids:
            return
        async with self._write() as tx:
            for start in range(0, len(notification_ids), ROWS_PER_STATEMENT):
                condition, params = self._one_of(
                    "id", "ids", notification_ids[start : start + ROWS_PER_STATEMENT], "bigint"
                )
                await tx.execute(
                    f"UPDATE notifications SET done_at = :now, last_error = NULL WHERE {condition} AND done_at IS NULL",
                    {**params, "now": now},
                )

    async def prune_notifications(self, before: int, batch: int = 500) -> int:
        async with self._write() as tx:
            rows = await tx.fetchall(
                f"{CLOSED_NOTIFICATIONS_SQL}{self._SKIP_LOCKED_ROWS}", {"before": before, "batch": batch}
            )
            if not rows:
                return 0
            condition, params = self._one_of("notification_id", "ids", [int(row["id"]) for row in rows], "bigint")
            await tx.execute(f"DELETE FROM notification_deliveries WHERE {condition}", params)
            condition, params = self._one_of("id", "ids", [int(row["id"]) for row in rows], "bigint")
            return await tx.execute(f"DELETE FROM notifications WHERE {condition}", params)

    async def last_partial_times(self, before: int | None = None) -> dict[bytes32, int]:
        # One index look-up (partials_launcher_received_difficulty) per member farmer, in the statement: only the
        # rows asked for come back (a minute's check for silent farmers decoded ten thousand rows to keep none).
        rows = await self._reads().fetchall(
            "SELECT launcher_id, last FROM (SELECT launcher_id, (SELECT MAX(received_at) FROM partials AS p "
            "WHERE p.launcher_id = f.launcher_id) AS last FROM farmers AS f WHERE is_pool_member) AS latest "
            f"WHERE last IS NOT NULL{'' if before is None else ' AND last < :before'}",
            {"before": before},
        )
        return dict(await decoded(rows, lambda row: (bytes32(row["launcher_id"]), int(row["last"]))))

    async def farmer_settings(self, launcher_id: bytes32) -> FarmerSettings:
        row = await self._lookup(
            "SELECT * FROM farmer_settings WHERE launcher_id = :launcher_id", {"launcher_id": launcher_id}
        )
        return FarmerSettings(launcher_id) if row is None else settings_from_row(row)

    async def farmer_webhooks(self, launcher_ids: Collection[bytes32]) -> dict[bytes32, str]:
        rows = await self._read_one_of(
            "SELECT launcher_id, webhook_url FROM farmer_settings WHERE {condition} AND webhook_url IS NOT NULL",
            "launcher_id",
            launcher_ids,
            "bytea",
        )
        return {bytes32(row["launcher_id"]): str(row["webhook_url"]) for row in rows}

    async def all_farmer_settings(self) -> dict[bytes32, FarmerSettings]:
        rows = await self._reads().fetchall("SELECT * FROM farmer_settings")
        return {settings.launcher_id: settings for settings in map(settings_from_row, rows)}

    async def change_farmer_settings(self, settings: FarmerSettings, now: int) -> list[FarmerChange]:
        launcher_id = settings.launcher_id
        async with self._write() as tx:
            if not await _farmer_exists(tx, launcher_id):
                raise FarmerNotFound(launcher_id.hex())
            row = await tx.fetchone(
                f"SELECT * FROM farmer_settings WHERE launcher_id = :launcher_id{self._LOCK_ROWS}",
                {"launcher_id": launcher_id},
            )
            old = FarmerSettings(launcher_id) if row is None else settings_from_row(row)
            changes = setting_changes(old, settings, now)
            if not changes:
                return []
            await tx.execute(
                """
                INSERT INTO farmer_settings (launcher_id, min_payout, difficulty_preset, webhook_url, updated_at)
                VALUES (:launcher_id, :min_payout, :difficulty_preset, :webhook_url, :now)
                ON CONFLICT (launcher_id) DO UPDATE SET min_payout = excluded.min_payout,
                    difficulty_preset = excluded.difficulty_preset, webhook_url = excluded.webhook_url,
                    updated_at = excluded.updated_at
                """,
                {
                    "launcher_id": launcher_id,
                    "min_payout": settings.min_payout,
                    "difficulty_preset": settings.difficulty_preset,
                    "webhook_url": settings.webhook_url,
                    "now": now,
                },
            )
            for change in changes:
                await _record_change(tx, change)
            return changes

    async def setting_changes(self, launcher_id: bytes32, limit: int = 50) -> list[FarmerChange]:
        kinds = {f"kind_{n}": kind.value for n, kind in enumerate(SETTING_KINDS)}
        rows = await self._reads().fetchall(
            f"SELECT * FROM farmer_history WHERE launcher_id = :launcher_id AND kind IN "
            f"({', '.join(':' + name for name in kinds)}) ORDER BY id DESC LIMIT :limit",
            {"launcher_id": launcher_id, "limit": limit, **kinds},
        )
        return [change_from_row(row) for row in rows]

    async def _batch_in(self, tx: Statements, batch_id: int) -> PaymentBatch:
        row = await tx.fetchone(f"SELECT * FROM payment_batches WHERE id = :id{self._LOCK_ROWS}", {"id": batch_id})
        if row is None:
            raise StoreError(f"no batch {batch_id}")
        return batch_from_row(row)


async def read_ledger(statements: Statements) -> LedgerSummary:
    """The ledger summary in one statement: every figure comes from the same snapshot, whatever is committed
    meanwhile (also how migrate-store checks its copy before committing it)."""
    row = await statements.fetchone(LEDGER_SQL)
    assert row is not None  # a SELECT without FROM always gives one row
    return ledger_from_row(row)


def partial_outcomes(
    partials: Sequence[PartialRecord], inserted: dict[bytes32, int], known: Collection[bytes32]
) -> list[int | NotAdded]:
    """What record_partials answers for each partial, from the ids of the rows inserted (by proof hash; consumed) and
    the farmers known."""
    outcomes: list[int | NotAdded] = []
    for partial in partials:
        if partial.launcher_id not in known:
            outcomes.append(NotAdded.UNKNOWN_FARMER)
        else:
            # Not inserted, or already given to an earlier copy in this batch (pop): the same proof was received
            # before, and it earns points once.
            outcomes.append(inserted.pop(partial.proof_hash, NotAdded.DUPLICATE))
    return outcomes


# -- statements and rules that run inside a transaction ----------------------------------------------------------
_INSERT_FARMER = """
    INSERT INTO farmers (
        launcher_id, p2_singleton_puzzle_hash, delay_time, delay_puzzle_hash, authentication_public_key,
        singleton_tip, singleton_tip_state, difficulty, payout_instructions, payout_puzzle_hash,
        is_pool_member, points, joined_at, pending_difficulty, pending_difficulty_at
    ) VALUES (
        :launcher_id, :p2_singleton_puzzle_hash, :delay_time, :delay_puzzle_hash, :authentication_public_key,
        :singleton_tip, :singleton_tip_state, :difficulty, :payout_instructions, :payout_puzzle_hash,
        :is_pool_member, :points, :joined_at, :pending_difficulty, :pending_difficulty_at
    )
    ON CONFLICT (launcher_id) DO NOTHING
    RETURNING 1
"""

_INSERT_REFUSAL = (
    "INSERT INTO partial_refusals (launcher_id, received_at, reason) VALUES (:launcher_id, :received_at, :reason)"
)

HOUR = 3600

# What partial_counts calls a partial's outcome: its status, or the reason it was rejected.
_OUTCOME = "CASE WHEN status = 'rejected' THEN COALESCE(reject_reason, 'rejected') ELSE status END"


def _whole_hours(since: int, until: int) -> tuple[int, int]:
    """The whole hours of [since, until): the first one's start and the last one's end (both ``until``'s hour start
    or ``until`` when the span holds no whole hour)."""
    whole_from = min(since + (-since) % HOUR, until)
    return whole_from, max(until - until % HOUR, whole_from)


# settled_counts: the confirmed partials of the whole hours from their hourly counts (the index by hour holds the
# points and the count), those of the part hours row by row, the other outcomes as partial_counts counts them.
_SETTLED_COUNTS_SQL = f"""
SELECT hour, outcome, SUM(n) AS n, SUM(points) AS points FROM (
    SELECT hour, 'confirmed' AS outcome, SUM(n) AS n, SUM(points) AS points
    FROM confirmed_hours WHERE hour >= :whole_from AND hour < :whole_to GROUP BY hour
    UNION ALL
    SELECT received_at - received_at % {HOUR} AS hour, 'confirmed' AS outcome, COUNT(*) AS n, SUM(difficulty) AS points
    FROM partials WHERE status = 'confirmed' AND received_at >= :since AND received_at < :whole_from GROUP BY 1
    UNION ALL
    SELECT received_at - received_at % {HOUR} AS hour, 'confirmed' AS outcome, COUNT(*) AS n, SUM(difficulty) AS points
    FROM partials WHERE status = 'confirmed' AND received_at >= :whole_to AND received_at < :until GROUP BY 1
    UNION ALL
    SELECT received_at - received_at % {HOUR} AS hour, {_OUTCOME} AS outcome, COUNT(*) AS n, SUM(difficulty) AS points
    FROM partials WHERE status IN ('pending', 'rejected') AND received_at >= :since AND received_at < :until
    GROUP BY 1, 2
    UNION ALL
    SELECT received_at - received_at % {HOUR} AS hour, reason AS outcome, COUNT(*) AS n, 0 AS points
    FROM partial_refusals WHERE received_at >= :since AND received_at < :until GROUP BY 1, 2
    UNION ALL
    SELECT hour, outcome, n, points FROM partial_hours WHERE hour >= :since AND hour < :until
) AS counted GROUP BY hour, outcome ORDER BY hour, outcome
"""

_ADD_TO_HOURS = """
    INSERT INTO partial_hours (launcher_id, hour, outcome, n, points, stale)
    VALUES (:launcher_id, :hour, :outcome, :n, :points, :stale)
    ON CONFLICT (launcher_id, hour, outcome) DO UPDATE SET
        n = partial_hours.n + excluded.n, points = partial_hours.points + excluded.points,
        stale = partial_hours.stale + excluded.stale
"""

_CREDIT_POINTS = "UPDATE farmers SET points = points + :points WHERE launcher_id = :launcher_id"


async def _add_to_hours(tx: Statements, counts: Mapping[tuple[bytes32, int, str], Sequence[int]]) -> None:
    """Add (n, points, stale) per (farmer, hour, outcome) to partial_hours: the prune's hours and the fold's days. In
    key order: two writers adding to the same rows lock them in the same order."""
    await tx.executemany(
        _ADD_TO_HOURS,
        [
            {"launcher_id": key[0], "hour": key[1], "outcome": key[2], "n": n, "points": points, "stale": stale}
            for key, (n, points, stale) in sorted(counts.items())
        ],
    )


# What a prune batch will touch, read first on a reading connection on SQLite (which holds no lock the writer needs;
# _WARM_BEFORE_PRUNE): the rows and their entries in the indexes by farmer and by proof, and their farmers' hourly
# counts. On a store larger than the page cache these lie all over the file; read inside the batch's transaction, they
# held the writer (and the intake's group commit behind it) 19-25 ms a batch of 50 at the median, against 5-6 ms once
# read before (a copy of the 1 000-farmer 30-day store, the page cache dropped before each set of 40 batches). Rows a
# concurrent write changes meanwhile cost the batch no more than before.
_WARM_PRUNE_BATCH = f"""
    WITH doomed AS MATERIALIZED (
        SELECT launcher_id, received_at, proof_hash FROM partials
        WHERE status IN ('confirmed', 'rejected') AND received_at < :cutoff LIMIT :batch
    )
    SELECT (SELECT COUNT(*) FROM doomed d JOIN partials p
            ON p.launcher_id = d.launcher_id AND p.received_at = d.received_at)
         + (SELECT COUNT(*) FROM doomed d JOIN partials p ON p.proof_hash = d.proof_hash)
         + (SELECT COUNT(*) FROM doomed d JOIN confirmed_hours h
            ON h.launcher_id = d.launcher_id AND h.hour = d.received_at - d.received_at % {HOUR})
         + (SELECT COUNT(*) FROM doomed d JOIN partial_hours h
            ON h.launcher_id = d.launcher_id AND h.hour = d.received_at - d.received_at % {HOUR}) AS touched
"""

# The PPLNS window's hourly counts of confirmed partials (confirmed_hours): added to as partials are confirmed, taken
# from as confirmed ones are pruned (an emptied hour deleted after, by its key: a row this transaction locked).
_ADD_CONFIRMED_HOURS = """
    INSERT INTO confirmed_hours (launcher_id, hour, n, points) VALUES (:launcher_id, :hour, :n, :points)
    ON CONFLICT (launcher_id, hour) DO UPDATE SET
        n = confirmed_hours.n + excluded.n, points = confirmed_hours.points + excluded.points
"""
_TAKE_CONFIRMED_HOURS = """
    UPDATE confirmed_hours SET n = n - :n, points = points - :points WHERE launcher_id = :launcher_id AND hour = :hour
"""
_DROP_EMPTY_CONFIRMED_HOUR = "DELETE FROM confirmed_hours WHERE launcher_id = :launcher_id AND hour = :hour AND n = 0"


def confirmed_hours_of(rows: Sequence[Row]) -> list[dict[str, Any]]:
    """Partials' rows (launcher_id, received_at, difficulty) as the counts they add to or take from confirmed_hours:
    per hour and farmer, in key order (two writers lock the rows they share in the same order)."""
    hours: dict[tuple[bytes32, int], list[int]] = defaultdict(lambda: [0, 0])
    for row in rows:
        received_at = int(row["received_at"])
        counted = hours[bytes32(row["launcher_id"]), received_at - received_at % HOUR]
        counted[0] += 1
        counted[1] += int(row["difficulty"])
    return [
        {"launcher_id": launcher_id, "hour": hour, "n": n, "points": points}
        for (launcher_id, hour), (n, points) in sorted(hours.items())
    ]


# The PPLNS window: the confirmed partials' count and points per farmer of the hours from :hours_from on (from their
# counts, each farmer's hours an index range: no sort of every farmer's hours), and the partials from :rows_from to
# before :rows_to row by row, added (MORE) or taken away (LESS). A farmer is in the window if it holds partials
# there (a count above zero), whatever their points.
_CONFIRMED_POINTS_SQL = """
    SELECT launcher_id, SUM(points) AS points FROM (
        SELECT f.launcher_id, SUM(h.n) AS n, SUM(h.points) AS points
        FROM farmers f JOIN confirmed_hours h ON h.launcher_id = f.launcher_id
        WHERE h.hour >= :hours_from GROUP BY f.launcher_id
        UNION ALL
        SELECT launcher_id, {sign}COUNT(*) AS n, {sign}SUM(difficulty) AS points FROM partials
        WHERE status = 'confirmed' AND received_at >= :rows_from AND received_at < :rows_to GROUP BY launcher_id
    ) AS counted GROUP BY launcher_id HAVING SUM(n) > 0
"""
CONFIRMED_POINTS_MORE_SQL = _CONFIRMED_POINTS_SQL.format(sign="")
CONFIRMED_POINTS_LESS_SQL = _CONFIRMED_POINTS_SQL.format(sign="-")

# Events the leader detected written in one transaction: ten thousand farmers found silent after an outage, a
# transaction each, were ten thousand commits (each a sync of the log) queued with the partials' group commit.
NOTIFICATIONS_PER_WRITE = 200

# Farmers' balances read by one statement when a distribution or a round takes from thousands of them (SQLite's
# bound parameters are limited, and a smaller IN list keeps each statement short).
ROWS_PER_STATEMENT = 500

# Inserted, or replacing a FAILED claim of the same coin; otherwise nothing is written and no row returned. A
# concurrent insert of the same coin (another process) waits for the other transaction and then decides.
_UPSERT_CLAIM = """
    INSERT INTO reward_claims (
        coin_id, launcher_id, amount, coin_height, spend_bundle_name, status, submitted_at,
        submitted_height, confirmed_height, error, fee, fee_spend_bundle, fee_settled, earlier_fees,
        network_difficulty, network_sub_slot_iters, coin_timestamp
    ) VALUES (
        :coin_id, :launcher_id, :amount, :coin_height, :spend_bundle_name, :status, :submitted_at,
        :submitted_height, :confirmed_height, :error, :fee, :fee_spend_bundle, :fee_settled, :earlier_fees,
        :network_difficulty, :network_sub_slot_iters, :coin_timestamp
    )
    ON CONFLICT (coin_id) DO UPDATE SET
        launcher_id = EXCLUDED.launcher_id, amount = EXCLUDED.amount, coin_height = EXCLUDED.coin_height,
        spend_bundle_name = EXCLUDED.spend_bundle_name, status = EXCLUDED.status,
        submitted_at = EXCLUDED.submitted_at, submitted_height = EXCLUDED.submitted_height,
        confirmed_height = EXCLUDED.confirmed_height, error = EXCLUDED.error, fee = EXCLUDED.fee,
        fee_spend_bundle = EXCLUDED.fee_spend_bundle, fee_settled = EXCLUDED.fee_settled,
        earlier_fees = EXCLUDED.earlier_fees, network_difficulty = EXCLUDED.network_difficulty,
        network_sub_slot_iters = EXCLUDED.network_sub_slot_iters, coin_timestamp = EXCLUDED.coin_timestamp
    WHERE reward_claims.status = 'failed'
    RETURNING 1
"""

# How a claim may move (update_reward_claim): a FAILED claim whose absorb lands after all is settled like one in flight.
_CLAIM_MOVES: dict[ClaimStatus, tuple[ClaimStatus, ...]] = {
    ClaimStatus.SUBMITTED: (ClaimStatus.CONFIRMED, ClaimStatus.LOST, ClaimStatus.FAILED),
    ClaimStatus.FAILED: (ClaimStatus.CONFIRMED, ClaimStatus.LOST),
}

# The schema version from which coins are reserved (the step to it reserves those of transactions in flight).
_RESERVATIONS_VERSION = 5
_DIFFICULTY_HISTORY_VERSION = 7  # difficulty_changes: the migration fills it for the farmers added before
_FARMER_HISTORY_VERSION = 12  # farmer_history and the ban
DAY = 86_400

_INSERT_PAYMENT = """
    INSERT INTO payments (round_id, batch_index, puzzle_hash, amount, launcher_id, points)
    VALUES (:round_id, :batch_index, :puzzle_hash, :amount, :launcher_id, :points)
"""

# Where the confirmed claims' mojos are (read_ledger). The payments in flight are found from the few batches not
# confirmed, through the index of payments by batch (CROSS JOIN: SQLite then reads the batches first; to PostgreSQL it
# is an inner join like any other), not by reading every payment ever made; every payment recorded, from the running
# totals that the round's own transaction adds them to (_ADD_PAYMENTS_RECORDED).
LEDGER_SQL = """
    SELECT
        (SELECT COALESCE(SUM(amount), 0) FROM reward_claims WHERE status = 'confirmed') AS confirmed_claims,
        (SELECT COALESCE(SUM(total), 0) FROM running_totals WHERE name = 'farmer_payments') AS farmer_payments,
        (SELECT COALESCE(SUM(p.amount), 0) FROM payment_batches b CROSS JOIN payments p
            WHERE p.round_id = b.round_id AND p.batch_index = b.batch_index
            AND b.status != 'confirmed' AND p.launcher_id IS NOT NULL) AS farmer_payments_in_flight,
        (SELECT COALESCE(SUM(owed), 0) FROM farmers) AS owed,
        (SELECT COALESCE(SUM(balance), 0) FROM ledger_accounts WHERE name = 'pool_fee_share') AS pool_fee_share,
        (SELECT COALESCE(SUM(total), 0) FROM running_totals WHERE name = 'pool_fee_payments') AS pool_fee_payments,
        (SELECT COALESCE(SUM(fee), 0) FROM payment_batches) AS batch_fees,
        (SELECT COALESCE(SUM(fee + earlier_fees), 0) FROM reward_claims) AS claim_fees,
        (SELECT COALESCE(SUM(amount), 0) FROM reward_claims WHERE status = 'lost') AS lost_rewards,
        (SELECT COALESCE(SUM(balance), 0) FROM ledger_accounts WHERE name = 'undistributed') AS undistributed,
        (SELECT COALESCE(SUM(balance), 0) FROM ledger_accounts WHERE name = 'pre_ledger_excess') AS pre_ledger_excess,
        (SELECT COALESCE(SUM(balance), 0) FROM ledger_accounts WHERE name = 'operator_funding') AS operator_funding
"""

# The public page's pool-wide figures (PoolFigures), in one statement: one snapshot.
_POOL_FIGURES_SQL = """
    SELECT
        (SELECT COUNT(*) FROM farmers WHERE is_pool_member) AS members,
        (SELECT COALESCE(SUM(points), 0) FROM farmers) AS points,
        (SELECT COUNT(*) FROM reward_claims WHERE status != 'failed') AS blocks_won,
        (SELECT COALESCE(SUM(amount), 0) FROM reward_claims WHERE status = 'confirmed') AS rewards_claimed,
        (SELECT COALESCE(SUM(total), 0) FROM running_totals WHERE name = 'farmers_paid') AS paid_to_farmers
"""

# A round's payments, just inserted, added to the running totals the ledger reads (farmer_payments, pool_fee_payments):
# payments are only ever inserted, here, so the totals are every payment's sum (a contract test checks them against
# the payments' own sums; without them the ledger state machine's books would not balance).
_ADD_PAYMENTS_RECORDED = """
    UPDATE running_totals SET total = total + (
        SELECT COALESCE(SUM(p.amount), 0) FROM payments p WHERE p.round_id = :round_id AND (
            (running_totals.name = 'farmer_payments' AND p.launcher_id IS NOT NULL)
            OR (running_totals.name = 'pool_fee_payments' AND p.launcher_id IS NULL)
        )
    )
    WHERE name IN ('farmer_payments', 'pool_fee_payments')
"""

# The events closed before :before that a pass of the notifications loop deletes, in the order of the index of
# done_at: ORDER BY id with a bound LIMIT made SQLite scan the table in id order instead (600 000 events after 30 days
# at ten thousand farmers: 130 ms holding the writer, when none was old enough to go).
CLOSED_NOTIFICATIONS_SQL = (
    "SELECT id FROM notifications WHERE done_at IS NOT NULL AND done_at < :before ORDER BY done_at LIMIT :batch"
)

# How many farmers a round just recorded pays (its payments are never changed after): the pages list rounds with it.
_COUNT_FARMERS_PAID = """
    UPDATE payout_rounds SET farmers_paid = (
        SELECT COUNT(DISTINCT launcher_id) FROM payments WHERE round_id = :round_id
    )
    WHERE id = :round_id
"""

# A batch just confirmed: its farmer payments join the running total the pool page shows (a batch is confirmed once).
_ADD_FARMERS_PAID = """
    UPDATE running_totals SET total = total + (
        SELECT COALESCE(SUM(amount), 0) FROM payments
        WHERE round_id = :round_id AND batch_index = :batch_index AND launcher_id IS NOT NULL
    )
    WHERE name = 'farmers_paid'
"""

# One row per pool member with partials since :since: its newest partial and the newest run at its current difficulty
# within the window from :window (pool.protocol.difficulty.summarize, computed in the database instead of reading
# every farmer's partials). In newest-first order with ties at the higher difficulty first, the run ends at the
# largest (received_at, difficulty) of another difficulty in the window: "cut".
# Each member's figures by indexed look-ups of its own partials (partials_launcher_received_difficulty, which holds
# every column read: the table's rows are never read): the time of its newest partial and of the newest one in the
# window at another difficulty (the cut: the only scan, backwards from the newest, that stops at the first one it
# finds), then the highest difficulty at each of those two moments (a seek each), then the run at the current
# difficulty, counted from the cut on (or from the window's start). A window function over every recent partial of
# every farmer cost seconds at a thousand farmers; this costs a few seeks per farmer and at most two scans of its
# own window (for a steady farmer, whose window has no cut).
SUMMARIES_PER_READ = 500  # members summed up by one statement (a page of difficulty_summaries)
# Each member's summary from the hourly counts its partials keep in difficulty_hours (exact, not an estimate): the
# newest partial and the newest one at another difficulty are the newest "last" seconds of those rows, the run's whole
# hours are their counts, and only the hour the run starts in is read partial by partial. A few dozen index entries a
# member, where the partials themselves are 300 a member a day at the default target. MATERIALIZED: inlined, each use
# of newest_at or cut_at below ran its subquery again (three times the work, measured on SQLite).
DIFFICULTY_SUMMARIES_SQL = """
WITH heads AS MATERIALIZED (
    SELECT f.launcher_id, f.difficulty AS current_difficulty,
        (SELECT MAX(h.last_at) FROM difficulty_hours h WHERE h.launcher_id = f.launcher_id
           AND h.hour = (SELECT MAX(l.hour) FROM difficulty_hours l
                         WHERE l.launcher_id = f.launcher_id AND l.hour >= :since_hour)
           AND h.last_at >= :since) AS newest_at,
        (SELECT MAX(h.last_at) FROM difficulty_hours h WHERE h.launcher_id = f.launcher_id AND h.hour >= :window_hour
           AND h.last_at >= :window AND h.difficulty <> f.difficulty) AS cut_at
    FROM farmers f WHERE f.is_pool_member AND f.launcher_id BETWEEN :first AND :last
),
members AS MATERIALIZED (
    SELECT hd.launcher_id, hd.current_difficulty, hd.newest_at, hd.cut_at,
        COALESCE(hd.cut_at, :window) AS run_start,
        COALESCE(hd.cut_at, :window) - COALESCE(hd.cut_at, :window) % 3600 AS run_start_hour,
        (SELECT MAX(h.difficulty) FROM difficulty_hours h WHERE h.launcher_id = hd.launcher_id
           AND h.hour = hd.newest_at - hd.newest_at % 3600 AND h.last_at = hd.newest_at) AS newest_difficulty,
        (SELECT MAX(h.difficulty) FROM difficulty_hours h WHERE h.launcher_id = hd.launcher_id
           AND h.hour = hd.cut_at - hd.cut_at % 3600 AND h.last_at = hd.cut_at
           AND h.difficulty <> hd.current_difficulty) AS cut_difficulty
    FROM heads hd WHERE hd.newest_at IS NOT NULL
),
runs AS (
    SELECT m.launcher_id, m.newest_at, m.newest_difficulty,
        -- the hour the run starts in, partial by partial (at the cut's own second a higher difficulty comes first)
        (SELECT COUNT(*) FROM partials p WHERE p.launcher_id = m.launcher_id
           AND p.received_at >= m.run_start AND p.received_at < m.run_start_hour + 3600
           AND p.difficulty = m.current_difficulty
           AND (m.cut_at IS NULL OR p.received_at > m.cut_at OR p.difficulty > m.cut_difficulty)) AS first_count,
        (SELECT MIN(p.received_at) FROM partials p WHERE p.launcher_id = m.launcher_id
           AND p.received_at >= m.run_start AND p.received_at < m.run_start_hour + 3600
           AND p.difficulty = m.current_difficulty
           AND (m.cut_at IS NULL OR p.received_at > m.cut_at OR p.difficulty > m.cut_difficulty)) AS first_at,
        -- the whole hours after it (none holds a partial at another difficulty: the cut is the newest such one)
        (SELECT SUM(h.n) FROM difficulty_hours h WHERE h.launcher_id = m.launcher_id
           AND h.hour > m.run_start_hour AND h.difficulty = m.current_difficulty) AS later_count,
        (SELECT MIN(h.first_at) FROM difficulty_hours h WHERE h.launcher_id = m.launcher_id
           AND h.hour > m.run_start_hour AND h.difficulty = m.current_difficulty) AS later_first_at
    FROM members m
)
SELECT launcher_id, newest_at, newest_difficulty,
    first_count + COALESCE(later_count, 0) AS run_count, COALESCE(first_at, later_first_at) AS run_oldest
FROM runs
"""


class _ClaimExists(StoreError):
    """Internal: a coin of the claims being added already has a live claim (rolls the whole bundle back)."""


def _version_of(row: Row | None) -> int:
    return 0 if row is None else int(row["version"])


def _assignments(changes: Mapping[str, Any]) -> str:
    """``column = :column, ...`` for the given columns (names come from this module, never from input)."""
    return ", ".join(f"{column} = :{column}" for column in changes)


def _farmer_params(farmer: FarmerRecord) -> dict[str, Any]:
    return {
        "launcher_id": farmer.launcher_id,
        "p2_singleton_puzzle_hash": farmer.p2_singleton_puzzle_hash,
        "delay_time": farmer.delay_time,
        "delay_puzzle_hash": farmer.delay_puzzle_hash,
        "authentication_public_key": bytes(farmer.authentication_public_key),
        "singleton_tip": bytes(farmer.singleton_tip),
        "singleton_tip_state": bytes(farmer.singleton_tip_state),
        "difficulty": farmer.difficulty,
        "payout_instructions": farmer.payout_instructions,
        "payout_puzzle_hash": farmer.payout_puzzle_hash,
        "is_pool_member": farmer.is_pool_member,
        "points": farmer.points,
        "joined_at": farmer.joined_at,
        "pending_difficulty": farmer.pending_difficulty,
        "pending_difficulty_at": farmer.pending_difficulty_at,
    }


def _claim_params(claim: RewardClaim) -> dict[str, Any]:
    return {
        "coin_id": claim.coin_id,
        "launcher_id": claim.launcher_id,
        "amount": claim.amount,
        "coin_height": claim.coin_height,
        "spend_bundle_name": claim.spend_bundle_name,
        "status": claim.status.value,
        "submitted_at": claim.submitted_at,
        "submitted_height": claim.submitted_height,
        "confirmed_height": claim.confirmed_height,
        "error": claim.error,
        "fee": claim.fee,
        "fee_spend_bundle": claim.fee_spend_bundle,
        "network_difficulty": claim.network_difficulty,
        "network_sub_slot_iters": claim.network_sub_slot_iters,
        "coin_timestamp": claim.coin_timestamp,
    }


def _payment_params(round_id: int, payment: Payment) -> dict[str, Any]:
    return {
        "round_id": round_id,
        "batch_index": payment.batch_index,
        "puzzle_hash": payment.puzzle_hash,
        "amount": payment.amount,
        "launcher_id": payment.launcher_id,
        "points": payment.points,
    }


async def _inserted_id(tx: Statements, sql: str, params: Params) -> int:
    """The id of the row an ``INSERT ... RETURNING id`` inserted."""
    row = await tx.fetchone(sql, params)
    if row is None:  # pragma: no cover - an INSERT without a conflict clause inserts or raises
        raise StoreError("the new row got no id")
    return int(row["id"])


async def _farmer_exists(tx: Statements, launcher_id: bytes32) -> bool:
    row = await tx.fetchone("SELECT 1 FROM farmers WHERE launcher_id = :launcher_id", {"launcher_id": launcher_id})
    return row is not None


async def _changed_farmer(tx: Statements, launcher_id: bytes32, changed: int) -> bool:
    """Whether a conditional update of a farmer changed it; FarmerNotFound when it did not because it is unknown."""
    if changed:
        return True
    if not await _farmer_exists(tx, launcher_id):
        raise FarmerNotFound(launcher_id.hex())
    return False


async def _apply_due_difficulty(tx: Statements, launcher_id: bytes32, now: int) -> None:
    """A pending difficulty whose time has come becomes the current one, in force since its time."""
    await tx.execute(
        """
        UPDATE farmers
        SET difficulty = pending_difficulty, difficulty_since = pending_difficulty_at,
            pending_difficulty = NULL, pending_difficulty_at = NULL
        WHERE launcher_id = :launcher_id AND pending_difficulty IS NOT NULL AND pending_difficulty_at <= :now
        """,
        {"launcher_id": launcher_id, "now": now},
    )


async def _record_difficulty(tx: Statements, launcher_id: bytes32, effective_at: int, difficulty: int) -> None:
    await _record_difficulties(tx, [(launcher_id, difficulty)], effective_at)


async def _record_difficulties(tx: Statements, changes: Sequence[tuple[bytes32, int]], effective_at: int) -> None:
    """Add each change (launcher id, difficulty) to its farmer's difficulty history (the last one written for a
    second wins), and forget what is older than DIFFICULTY_HISTORY_SECONDS before it, but for the difficulty then in
    force: a statement for all of them."""
    if not changes:
        return
    await tx.executemany(
        """
        INSERT INTO difficulty_changes (launcher_id, effective_at, difficulty)
        VALUES (:launcher_id, :effective_at, :difficulty)
        ON CONFLICT (launcher_id, effective_at) DO UPDATE SET difficulty = excluded.difficulty
        """,
        [{"launcher_id": i, "effective_at": effective_at, "difficulty": d} for i, d in changes],
    )
    await tx.executemany(
        """
        DELETE FROM difficulty_changes WHERE launcher_id = :launcher_id AND effective_at < (
            SELECT MAX(effective_at) FROM difficulty_changes
            WHERE launcher_id = :launcher_id AND effective_at <= :cutoff
        )
        """,
        [{"launcher_id": i, "cutoff": effective_at - DIFFICULTY_HISTORY_SECONDS} for i, _ in changes],
    )


async def _record_change(tx: Statements, change: FarmerChange) -> None:
    await tx.execute(
        "INSERT INTO farmer_history (launcher_id, at, kind, old, new) VALUES (:launcher_id, :at, :kind, :old, :new)",
        {
            "launcher_id": change.launcher_id,
            "at": change.at,
            "kind": change.kind.value,
            "old": change.old,
            "new": change.new,
        },
    )


async def _forget_difficulties_after(tx: Statements, launcher_id: bytes32, moment: int) -> None:
    """Changes not in force by ``moment`` (a pending PUT difficulty) leave the history: they are being replaced."""
    await tx.execute(
        "DELETE FROM difficulty_changes WHERE launcher_id = :launcher_id AND effective_at > :moment",
        {"launcher_id": launcher_id, "moment": moment},
    )


async def _update_farmer(tx: Statements, launcher_id: bytes32, changes: dict[str, Any]) -> None:
    """Set the given columns (names come from this module, never from input); FarmerNotFound if unknown."""
    if not changes:
        if not await _farmer_exists(tx, launcher_id):
            raise FarmerNotFound(launcher_id.hex())
        return
    sql = f"UPDATE farmers SET {_assignments(changes)} WHERE launcher_id = :launcher_id"
    if await tx.execute(sql, {**changes, "launcher_id": launcher_id}) == 0:
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


async def _credit_account(tx: Statements, name: str, amount: int) -> None:
    await tx.execute(
        "UPDATE ledger_accounts SET balance = balance + :amount WHERE name = :name", {"amount": amount, "name": name}
    )


async def _debit_account(tx: Statements, name: str, amount: int) -> None:
    debited = await tx.execute(
        "UPDATE ledger_accounts SET balance = balance - :amount WHERE name = :name AND balance >= :amount",
        {"amount": amount, "name": name},
    )
    if debited == 0:
        raise InsufficientFunds(f"the {name.replace('_', ' ')} is smaller than {amount} mojos")


def _shortfall(column: Literal["owed", "points"], launcher_id: bytes32, amount: int) -> StoreError:
    if column == "owed":
        return InsufficientFunds(f"farmer {launcher_id.hex()} is owed less than the {amount} mojos of its payment")
    # No share is ever recorded without the points it takes.
    return StoreError(f"farmer {launcher_id.hex()} has fewer than the {amount} points its payment consumes")


async def _journal_many(
    tx: Statements, kind: LedgerKind, movements: Sequence[tuple[int, bytes32 | None]], reference: str
) -> None:
    """_journal for many movements (amount, farmer) of one kind and reference, in one statement."""
    created_at = int(time.time())
    await tx.executemany(
        "INSERT INTO ledger_entries (created_at, kind, amount, launcher_id, reference) "
        "VALUES (:created_at, :kind, :amount, :launcher_id, :reference)",
        [
            {"created_at": created_at, "kind": kind.value, "amount": amount, "launcher_id": i, "reference": reference}
            for amount, i in movements
        ],
    )


async def _journal(tx: Statements, kind: LedgerKind, amount: int, launcher_id: bytes32 | None, reference: str) -> None:
    await tx.execute(
        """
        INSERT INTO ledger_entries (created_at, kind, amount, launcher_id, reference)
        VALUES (:created_at, :kind, :amount, :launcher_id, :reference)
        """,
        {
            "created_at": int(time.time()),
            "kind": kind.value,
            "amount": amount,
            "launcher_id": launcher_id,
            "reference": reference,
        },
    )


async def _insert_round(tx: Statements, payout_round: PayoutRound) -> int:
    return await _inserted_id(
        tx,
        """
        INSERT INTO payout_rounds (
            created_at, scheme, total, pool_fee, blockchain_fees, farmer_total, remainder, status
        ) VALUES (:created_at, :scheme, :total, :pool_fee, :blockchain_fees, :farmer_total, :remainder, 'open')
        RETURNING id
        """,
        {
            "created_at": payout_round.created_at,
            "scheme": payout_round.scheme,
            "total": payout_round.total,
            "pool_fee": payout_round.pool_fee,
            "blockchain_fees": payout_round.blockchain_fees,
            "farmer_total": payout_round.farmer_total,
            "remainder": payout_round.remainder,
        },
    )


async def _change_round_fees(tx: Statements, round_id: int, change: int) -> None:
    """A batch's fee changed by ``change`` mojos (a replacement's increase, or a refund when negative): so do its
    round's blockchain fees and total."""
    await tx.execute(
        "UPDATE payout_rounds SET blockchain_fees = blockchain_fees + :change, total = total + :change WHERE id = :id",
        {"change": change, "id": round_id},
    )


def _batch_reference(batch: PaymentBatch) -> str:
    return f"round {batch.round_id} batch {batch.index}"


async def _move_batch(
    tx: Statements, batch_id: int, from_status: BatchStatus, to_status: BatchStatus, changes: dict[str, Any]
) -> int:
    """Change a batch's status only from ``from_status``; StoreError (nothing changed) otherwise. Returns its round."""
    row = await tx.fetchone(
        f"UPDATE payment_batches SET {_assignments({'status': None, **changes})} "
        "WHERE id = :batch_id AND status = :from_status RETURNING round_id",
        {**changes, "status": to_status.value, "batch_id": batch_id, "from_status": from_status.value},
    )
    if row is None:
        current = await tx.fetchone("SELECT status FROM payment_batches WHERE id = :id", {"id": batch_id})
        found = "no such batch" if current is None else f"it is {current['status']}"
        raise StoreError(f"batch {batch_id} cannot go {from_status.value} -> {to_status.value}: {found}")
    return int(row["round_id"])


async def _add_version(
    tx: Statements,
    batch_id: int,
    version: int,
    tx_id: bytes32,
    spend_bundle: bytes,
    fee: int,
    now: int,
    height: int | None,
) -> None:
    await tx.execute(
        """
        INSERT INTO batch_versions (batch_id, version, tx_id, spend_bundle, fee, created_at, height)
        VALUES (:batch_id, :version, :tx_id, :spend_bundle, :fee, :now, :height)
        """,
        {
            "batch_id": batch_id,
            "version": version,
            "tx_id": tx_id,
            "spend_bundle": bytes(spend_bundle),
            "fee": fee,
            "now": now,
            "height": height,
        },
    )


def _still_current(what: str, current: bytes32 | None, replaces: bytes32) -> None:
    """The compare-and-set of a new version: StaleTransaction unless ``what`` is still the ``replaces`` it was built
    from."""
    if current != replaces:
        shown = "none" if current is None else current.hex()
        raise StaleTransaction(f"{what} is {shown} now, not {replaces.hex()} as the new version assumes")


async def _add_claim_fee_version(
    tx: Statements, coin_id: bytes32, spend_bundle: bytes, fee: int, now: int, height: int | None
) -> None:
    """The claim's next fee version (after every one recorded for its coin, settled ones included)."""
    latest = await tx.fetchone(
        "SELECT COALESCE(MAX(version), 0) AS version FROM claim_fee_versions WHERE coin_id = :coin_id",
        {"coin_id": coin_id},
    )
    await tx.execute(
        """
        INSERT INTO claim_fee_versions (coin_id, version, spend_bundle, fee, created_at, height, settled)
        VALUES (:coin_id, :version, :spend_bundle, :fee, :now, :height, FALSE)
        """,
        {
            "coin_id": coin_id,
            "version": 1 + (0 if latest is None else int(latest["version"])),
            "spend_bundle": bytes(spend_bundle),
            "fee": fee,
            "now": now,
            "height": height,
        },
    )


def _validate_new_claims(claims: Sequence[RewardClaim], fee_coins: Sequence[bytes32]) -> None:
    for claim in claims:
        # A claim born CONFIRMED would be counted as claimed but never credited; one born FAILED or LOST would skip
        # the chain's check of where its reward went.
        if claim.status is not ClaimStatus.SUBMITTED:
            raise StoreError(f"a new claim must be submitted, got {claim.status.value}")
        if claim.fee < 0:
            raise StoreError(f"claim of coin {claim.coin_id.hex()} has a negative fee")
        if claim.fee > 0 and claim.fee_spend_bundle is None:
            raise StoreError(f"claim of coin {claim.coin_id.hex()} charges a fee without the spend that pays it")
    payers = [claim for claim in claims if claim.fee_spend_bundle is not None]
    if len(payers) > 1:
        raise StoreError("one absorb transaction has one fee spend, carried by one of its claims")
    if fee_coins and not payers:
        raise StoreError("coins to reserve for a fee, but no claim carries a fee spend")


async def _reserve_coins_in_flight(tx: Statements) -> None:
    """The step to the schema with reservations: the coins of transactions recorded before it that may still land
    (submitted batches, unsettled claim fees) are reserved for them, as they would have been when recorded."""
    held: dict[bytes32, str] = {}
    for row in await tx.fetchall(
        "SELECT id, spend_bundle FROM payment_batches WHERE status = 'submitted' AND spend_bundle IS NOT NULL"
    ):
        for coin_id in _removals(bytes(row["spend_bundle"]), f"payout batch {row['id']}"):
            held.setdefault(coin_id, batch_holder(int(row["id"])))
    for row in await tx.fetchall(
        "SELECT coin_id, fee_spend_bundle FROM reward_claims WHERE NOT fee_settled AND fee_spend_bundle IS NOT NULL"
    ):
        claim = bytes32(row["coin_id"])
        for coin_id in _removals(bytes(row["fee_spend_bundle"]), f"the fee of the claim of coin {claim.hex()}"):
            held.setdefault(coin_id, claim_holder(claim))
    now = int(time.time())
    await tx.executemany(
        "INSERT INTO coin_reservations (coin_id, holder, created_at) VALUES (:coin_id, :holder, :now)",
        [{"coin_id": coin_id, "holder": holder, "now": now} for coin_id, holder in held.items()],
    )


def _removals(spend_bundle: bytes, what: str) -> list[bytes32]:
    try:
        return [coin.name() for coin in SpendBundle.from_bytes(spend_bundle).removals()]
    except Exception as exc:  # a record the pool itself never writes: say so, reserve nothing for it
        log.warning("the transaction recorded for %s cannot be read (%s): none of its coins are reserved", what, exc)
        return []


def _launcher_range(column: str, first: bytes32 | None, end: bytes32 | None) -> str:
    """The conditions (each with a leading AND) for ``column`` from ``first`` (inclusive) to ``end`` (exclusive),
    bound as :first and :end; none for a bound not given."""
    return ("" if first is None else f" AND {column} >= :first") + ("" if end is None else f" AND {column} < :end")


def _member_difficulty(row: Row) -> MemberDifficulty:
    return MemberDifficulty(
        bytes32(row["launcher_id"]),
        int(row["difficulty"]),
        optional_int(row["pending_difficulty"]),
        int(row["joined_at"]),
        optional_int(row["difficulty_preset"]),
    )
