"""The stores ``make bench-scale`` measures the pool against: many farmers and their history, built through the
store's own API (``AbstractPoolStore``), cached, and copied for each run.

A store of F farmers over D days holds what a pool of that size would after D days: the farmers' records (real BLS
keys, singleton spends and pool states), 300 partials a farmer a day (``PARTIALS_PER_DAY``, the pool's target),
confirmed and credited (``confirm_partials``), a few partials refused a farmer a day, and the money: a few confirmed
block rewards a day, shared out each day (``distribute``, the payout arithmetic of ``pool.payouts.split``) and paid
in a round whose batches confirmed; the last day's at its middle, so that every farmer holds the points of the
partials after it. One last confirmed reward is left undistributed, so that the payouts loop of the measured pool
has a distribution to make over every farmer.

The farmers, claims, distributions and rounds go through the store's API. The partials, which are nearly all of the
rows, are written in bulk (``bulk_partials``): ``BULK_BATCH`` rows a transaction, inserted already confirmed with
the columns the store's own insert writes, their refusals with the store's own statement, and each farmer's points
credited with the store's own statement, once per farmer and transaction instead of once per group commit (the
intake's path, ``record_partials`` then ``confirm_partials``, wrote some 5 000-20 000 partials/s here). Meanwhile
(``begin_bulk``) the partials' secondary indexes and SQLite's per-row trigger of the difficulty's hourly counts are
dropped, the hourly counts are summed by the database over each transaction's rows, and SQLite's writer neither syncs
nor lets its pages go (the random places the unique index of the proofs takes each new proof at stay in memory);
``end_bulk`` makes the indexes (from all the rows at once, not entry by entry) and the trigger again with the very
statements that made them. ``tests/store/test_bulk_build.py`` checks, on both backends, that the bulk path and the
store's own write the same rows, points and counts. ``--days`` says how many days a store holds, and the report says
what was built.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import sqlite3
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from chia_rs import AugSchemeMPL, G2Element, Program, SpendBundle
from chia_rs.sized_bytes import bytes32
from chia_rs.sized_ints import uint8, uint32, uint64

from pool.bench.corpus import RELATIVE_LOCK_HEIGHT
from pool.chia_adapter import Coin, CoinSpend, PoolSingletonState, PoolState, std_hash
from pool.config import DAY_SECONDS, StoreConfig
from pool.devnet.postgres import PostgresServer
from pool.payouts.split import FarmerShare, Payable, plan_distribution, plan_payments
from pool.protocol.partials import proof_key
from pool.store import postgres_schema, sqlite_schema
from pool.store.abstract import AbstractPoolStore
from pool.store.factory import create_store
from pool.store.models import (
    ClaimStatus,
    Distribution,
    DistributionShare,
    FarmerRecord,
    PartialRecord,
    PartialRefusal,
    Payment,
    PayoutRound,
    RewardClaim,
)
from pool.store.sql import _CREDIT_POINTS, _INSERT_REFUSAL, SqlPoolStore
from pool.store.sqlite import SqlitePoolStore, database_bytes, database_files

# 2: built in bulk, with the schema of the difficulty index; 3: the proofs keyed by their signage point first (schema
# step 25; a store of format 2 holds random keys, as a pool's of before that step); 4: the last day's rewards shared
# out at its middle, the farmers holding the points of its second half (_parts_of_day).
FORMAT_VERSION = 4
PARTIALS_PER_DAY = 300  # a farmer's partials a day: the pool's difficulty target
REFUSALS_PER_DAY = 3  # a farmer's partials refused a day (too late, mostly)
REWARDS_PER_DAY = 4  # confirmed block rewards a day
REWARD = 1_750_000_000_000  # mojos: a block's pool reward (7/8 of 2 XCH)
WRITE_BATCH = 2_000  # partials a day_of_partials group
BULK_BATCH = 100_000  # partials per transaction while building
BUILD_CACHE_MAX_BYTES = 8 * 2**30  # SQLite's page cache while building (_cache_kib)
POOL_FEE = (1, 100)
MAX_ADDITIONS = 400  # payments per batch of the rounds built

Progress = Callable[[str], None]


@dataclass(frozen=True)
class ScaleSize:
    farmers: int
    days: int

    @property
    def partials(self) -> int:
        return self.farmers * self.days * PARTIALS_PER_DAY

    @property
    def label(self) -> str:
        return f"{self.farmers} farmers, {self.days} day{'s' if self.days != 1 else ''}"


def _migrations(backend: str) -> Sequence[object]:
    return sqlite_schema.MIGRATIONS if backend == "sqlite" else postgres_schema.MIGRATIONS


def schema_fingerprint(backend: str, steps: int | None = None) -> str:
    """A digest of the backend's first ``steps`` migration steps (None: all of them): a cached store is used if it
    was built by exactly these, or by fewer of them (it is then migrated by the rest, as an operator's store is)."""
    return hashlib.sha256(repr(_migrations(backend)[:steps]).encode()).hexdigest()[:16]


def steps_behind(backend: str, fingerprint: str) -> int | None:
    """How many of the backend's migration steps a store built by the steps of ``fingerprint`` lacks (0: none);
    None when those were not the first steps of these (another branch's, whose step numbers meant other steps)."""
    count = len(_migrations(backend))
    for steps in range(count, 0, -1):
        if schema_fingerprint(backend, steps) == fingerprint:
            return count - steps
    return None


def about_path(cached: Path) -> Path:
    """What is known of a cached store (when its history ends, its schema), beside it: one per backend (an SQLite
    store and a PostgreSQL dump of the same size shared one, and each build made the other's look out of date)."""
    return cached.with_name(cached.name + ".json")


def cache_path(cache_dir: Path, size: ScaleSize, backend: str) -> Path:
    suffix = "sqlite" if backend == "sqlite" else "dump"
    return cache_dir / f"scale-f{size.farmers}-d{size.days}-v{FORMAT_VERSION}.{suffix}"


# -- the records ------------------------------------------------------------------------------------------------


def _h(*parts: object) -> bytes32:
    return std_hash(" ".join(str(part) for part in parts).encode())


def farmer_launcher_id(number: int) -> bytes32:
    return _h("scale farmer", number)


def farmer_record(number: int, target_puzzle_hash: bytes32, joined_at: int) -> FarmerRecord:
    """A member as POST /farmer records one: its keys, its singleton's buried spend and pool state, its difficulty
    (spread, as farmers' sizes are), payout instructions."""
    owner = AugSchemeMPL.key_gen(_h("scale owner", number)).get_g1()
    authentication = AugSchemeMPL.key_gen(_h("scale authentication", number)).get_g1()
    launcher_id = farmer_launcher_id(number)
    coin = Coin(launcher_id, _h("scale singleton", number), uint64(1))
    state = PoolState(
        version=uint8(1),
        state=uint8(PoolSingletonState.FARMING_TO_POOL.value),
        target_puzzle_hash=target_puzzle_hash,
        owner_pubkey=owner,
        pool_url="http://127.0.0.1:8444",
        relative_lock_height=uint32(RELATIVE_LOCK_HEIGHT),
    )
    payout = _h("scale payout", number)
    return FarmerRecord(
        launcher_id=launcher_id,
        p2_singleton_puzzle_hash=_h("scale p2", number),
        delay_time=604800,
        delay_puzzle_hash=_h("scale delay", number),
        authentication_public_key=authentication,
        singleton_tip=CoinSpend(coin, Program.to([1, number]), Program.to([[number, 1], 0])),
        singleton_tip_state=state,
        difficulty=difficulty_of(number),
        payout_instructions=payout.hex(),
        payout_puzzle_hash=payout,
        is_pool_member=True,
        points=0,
        joined_at=joined_at,
    )


def difficulty_of(number: int) -> int:
    return 1 + (number * 7919) % 500


def partial_rows(
    size: ScaleSize, day_start: int, slots: range | None = None
) -> Iterator[tuple[list[dict[str, Any]], list[dict[str, Any]]]]:
    """One day's partials (of its ``slots``: the k-th partial of every farmer is slot k) as the rows the store writes,
    in the order they arrive (every farmer's k-th partial of the day in turn), in groups of WRITE_BATCH, with the
    day's refusals spread over the groups. Plain values, not records: the bulk builder writes tens of millions of
    them (made as records, they took 7 of a build's 35 s at 800 000)."""
    gap = DAY_SECONDS // PARTIALS_PER_DAY
    every = PARTIALS_PER_DAY // REFUSALS_PER_DAY
    rows: list[dict[str, Any]] = []
    refusals: list[dict[str, Any]] = []
    farmers = [
        (bytes(farmer_launcher_id(number)), bytes(_h("scale harvester", number)), difficulty_of(number))
        for number in range(size.farmers)
    ]
    sha256 = hashlib.sha256
    for slot in range(PARTIALS_PER_DAY) if slots is None else slots:
        slot_start = day_start + slot * gap
        sp_key = _h("scale sp", slot_start)
        sp_hash = bytes(sp_key)
        refused = slot % every == 0
        for number, (launcher_id, harvester_id, difficulty) in enumerate(farmers):
            received_at = slot_start + (number * 104729) % gap
            rows.append(
                {
                    "launcher_id": launcher_id,
                    # Keyed as the pool keys a proof (its signage point first, the store refuses any other key).
                    "proof_hash": bytes(
                        proof_key(sp_key, bytes32(sha256(launcher_id + received_at.to_bytes(8, "big")).digest()))
                    ),
                    "sp_hash": sp_hash,
                    "end_of_sub_slot": False,
                    "harvester_id": harvester_id,
                    "received_at": received_at,
                    "difficulty": difficulty,
                }
            )
            if refused:
                refusals.append({"launcher_id": launcher_id, "received_at": received_at + 1, "reason": "TOO_LATE"})
            if len(rows) >= WRITE_BATCH:
                yield rows, refusals
                rows, refusals = [], []
    if rows or refusals:
        yield rows, refusals


def day_of_partials(size: ScaleSize, day_start: int) -> Iterator[tuple[list[PartialRecord], list[PartialRefusal]]]:
    """``partial_rows`` as the records ``record_partials`` takes."""
    for rows, refusals in partial_rows(size, day_start):
        yield (
            [
                PartialRecord(
                    launcher_id=bytes32(row["launcher_id"]),
                    proof_hash=bytes32(row["proof_hash"]),
                    sp_hash=bytes32(row["sp_hash"]),
                    end_of_sub_slot=row["end_of_sub_slot"],
                    harvester_id=bytes32(row["harvester_id"]),
                    received_at=row["received_at"],
                    difficulty=row["difficulty"],
                )
                for row in rows
            ],
            [PartialRefusal(bytes32(r["launcher_id"]), r["received_at"], r["reason"]) for r in refusals],
        )


def row_of(partial: PartialRecord) -> dict[str, Any]:
    """A partial as the row ``bulk_partials`` writes."""
    return {
        "launcher_id": partial.launcher_id,
        "proof_hash": partial.proof_hash,
        "sp_hash": partial.sp_hash,
        "end_of_sub_slot": partial.end_of_sub_slot,
        "harvester_id": partial.harvester_id,
        "received_at": partial.received_at,
        "difficulty": partial.difficulty,
    }


# -- building ---------------------------------------------------------------------------------------------------


async def build_store(
    store: AbstractPoolStore, size: ScaleSize, target_puzzle_hash: bytes32, end: int, progress: Progress
) -> None:
    """Fill an empty store with ``size``'s history, ending at ``end`` (unix seconds)."""
    start = end - size.days * DAY_SECONDS
    started = time.monotonic()
    for number in range(size.farmers):
        await store.add_farmer(farmer_record(number, target_puzzle_hash, start))
        if (number + 1) % 1000 == 0 or number + 1 == size.farmers:
            progress(f"store: {number + 1}/{size.farmers} farmers")
    extras = await begin_bulk(store)
    written = 0
    height = 1000
    for day in range(size.days):
        day_start = start + day * DAY_SECONDS
        last = day == size.days - 1
        for number, slots in enumerate(_parts_of_day(last)):
            for batch in _bulk_batches(size, day_start, slots):
                before, written = written, written + len(batch[0])
                await bulk_partials(store, *batch)
                if written // 500_000 != before // 500_000:
                    rate = written / max(time.monotonic() - started, 1e-9)
                    left = (size.partials - written) / max(rate, 1e-9)
                    progress(
                        f"store: {written}/{size.partials} partials ({rate:.0f}/s, about {left / 60:.0f} min left)"
                    )
            if number == 0:
                height = await _day_of_money(store, day_start, height, last=last)
    progress(f"store: {written} partials written; making their {len(extras)} indexes and triggers again")
    await end_bulk(store, extras)
    progress(f"store: built in {time.monotonic() - started:.0f} s")


def _parts_of_day(last: bool) -> tuple[range, ...]:
    """The day's slots (partials of every farmer in turn) before its money is shared out, then after it. A day's
    rewards are shared out after its partials, but the last day's at its middle, as they are dated: the farmers keep
    the points of its second half, as a pool's farmers hold those of the partials since its last distribution, so
    that the measured pool's distribution of the reward left undistributed is over every farmer (without them,
    nobody had points: the pool shared it out over the corpus's farmers alone, once their first partials were
    confirmed, inside the first phase)."""
    if not last:
        return (range(PARTIALS_PER_DAY),)
    middle = PARTIALS_PER_DAY // 2
    return (range(middle), range(middle, PARTIALS_PER_DAY))


def _bulk_batches(
    size: ScaleSize, day_start: int, slots: range
) -> Iterator[tuple[list[dict[str, Any]], list[dict[str, Any]]]]:
    """The partial rows of a day's ``slots`` in groups of BULK_BATCH (a transaction each)."""
    rows: list[dict[str, Any]] = []
    refusals: list[dict[str, Any]] = []
    for more_rows, more_refusals in partial_rows(size, day_start, slots):
        rows.extend(more_rows)
        refusals.extend(more_refusals)
        if len(rows) >= BULK_BATCH:
            yield rows, refusals
            rows, refusals = [], []
    if rows or refusals:
        yield rows, refusals


async def begin_bulk(store: AbstractPoolStore) -> list[tuple[str, str]]:
    """Ready an SQL store for bulk_partials: the partials' secondary indexes and SQLite's per-row trigger dropped
    (an index is made far faster from all the rows at the end than entry by entry at random places; the trigger's
    counts are written per group instead), and SQLite's writer set not to sync and to keep its pages in memory (a
    failed build is never used: it is renamed into the cache only once built). Returns what was dropped, for
    end_bulk."""
    extras = [*await _partial_indexes(store), *await _sqlite_partial_triggers(store)]
    await _run(store, [f"DROP {kind} {name}" for kind, name, _ in extras])
    if isinstance(store, SqlitePoolStore):
        await _run_outside_transaction(store, ["PRAGMA synchronous = OFF", f"PRAGMA cache_size = -{_cache_kib()}"])
    return [(name, statement) for _, name, statement in extras]


async def end_bulk(store: AbstractPoolStore, extras: Sequence[tuple[str, str]]) -> None:
    """The indexes and triggers begin_bulk dropped, made again with the statements that made them; SQLite's writer
    syncing again."""
    await _run(store, [statement for _, statement in extras])
    if isinstance(store, SqlitePoolStore):
        await _run_outside_transaction(store, ["PRAGMA synchronous = FULL", "PRAGMA cache_size = -2000"])


def _cache_kib() -> int:
    """SQLite's page cache while building: a quarter of the machine's memory, at most BUILD_CACHE_MAX_BYTES. The
    unique index of the proofs takes each partial at a random place: once it outgrows the cache every insert reads a
    page back and every transaction writes most of the index out again."""
    try:
        memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError):
        memory = 4 * 2**30  # unknown: assume a small machine rather than take 8 GiB it may not have
    return min(memory // 4, BUILD_CACHE_MAX_BYTES) // 1024


async def _partial_indexes(store: AbstractPoolStore) -> list[tuple[str, str, str]]:
    """The partials table's indexes that no constraint owns, as ("INDEX", name, the statement that creates it)."""
    if not isinstance(store, SqlPoolStore):
        raise TypeError(f"bulk writes need an SQL store, not {type(store).__name__}")
    if isinstance(store, SqlitePoolStore):
        query = "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND tbl_name = 'partials' AND sql IS NOT NULL"
    else:
        query = (
            "SELECT indexname AS name, indexdef AS sql FROM pg_indexes WHERE tablename = 'partials' "
            "AND indexname NOT IN (SELECT conname FROM pg_constraint)"
        )
    return [("INDEX", str(row["name"]), str(row["sql"])) for row in await store._reads().fetchall(query)]


async def _sqlite_partial_triggers(store: AbstractPoolStore) -> list[tuple[str, str, str]]:
    """SQLite's triggers on the partials (the difficulty's hourly counts, a row at a time). PostgreSQL's counts a
    whole statement's rows at once and stays."""
    if not isinstance(store, SqlitePoolStore):
        return []
    query = "SELECT name, sql FROM sqlite_master WHERE type = 'trigger' AND tbl_name = 'partials'"
    return [("TRIGGER", str(row["name"]), str(row["sql"])) for row in await store._reads().fetchall(query)]


async def _run(store: AbstractPoolStore, statements: Sequence[str]) -> None:
    assert isinstance(store, SqlPoolStore)
    async with store._write() as tx:
        for statement in statements:
            await tx.execute(statement)


async def _run_outside_transaction(store: SqlitePoolStore, statements: Sequence[str]) -> None:
    """Settings of SQLite's writing connection (a PRAGMA setting the sync cannot run inside a transaction)."""
    async with store._lock:
        for statement in statements:
            await store._connection().execute(statement)


# The columns the store's insert of a partial writes (pool.store.sqlite, pool.store.postgres), confirmed at once.
_INSERT_CONFIRMED = """
    INSERT INTO partials (
        launcher_id, proof_hash, sp_hash, end_of_sub_slot, harvester_id, received_at, difficulty, status
    ) VALUES (
        :launcher_id, :proof_hash, :sp_hash, :end_of_sub_slot, :harvester_id, :received_at, :difficulty, 'confirmed'
    )
"""
_LAST_PARTIAL = "SELECT COALESCE(MAX(id), 0) AS id FROM partials"
# What confirm_partials adds to the PPLNS window's hourly counts, summed by the database over the rows just written.
_ADD_CONFIRMED_HOURS_AFTER = """
    INSERT INTO confirmed_hours (launcher_id, hour, n, points)
    SELECT launcher_id, received_at - received_at % 3600, COUNT(*), SUM(difficulty)
    FROM partials WHERE id > :after GROUP BY 1, 2
    ON CONFLICT (launcher_id, hour) DO UPDATE SET
        n = confirmed_hours.n + excluded.n, points = confirmed_hours.points + excluded.points
"""
# What SQLite's trigger partials_difficulty_hours adds, row by row, for the rows just written (begin_bulk drops it).
_ADD_DIFFICULTY_HOURS_AFTER = """
    INSERT INTO difficulty_hours (launcher_id, hour, difficulty, n, first_at, last_at)
    SELECT launcher_id, received_at - received_at % 3600, difficulty, COUNT(*), MIN(received_at), MAX(received_at)
    FROM partials WHERE id > :after GROUP BY 1, 2, 3
    ON CONFLICT (launcher_id, hour, difficulty) DO UPDATE SET
        n = difficulty_hours.n + excluded.n,
        first_at = MIN(difficulty_hours.first_at, excluded.first_at),
        last_at = MAX(difficulty_hours.last_at, excluded.last_at)
"""


async def bulk_partials(
    store: AbstractPoolStore, rows: Sequence[dict[str, Any]], refusals: Sequence[dict[str, Any]]
) -> None:
    """What record_partials then confirm_partials write for these partials' rows (``row_of``; of known farmers, with
    new proofs), in one transaction: the rows, confirmed, the refusals, each farmer's points credited and their
    hours' counts. Between begin_bulk and end_bulk."""
    if not isinstance(store, SqlPoolStore):
        raise TypeError(f"bulk writes need an SQL store, not {type(store).__name__}")
    if not rows and not refusals:
        return
    points: dict[bytes, int] = {}
    for row in rows:
        points[row["launcher_id"]] = points.get(row["launcher_id"], 0) + row["difficulty"]
    credits = [{"points": amount, "launcher_id": launcher} for launcher, amount in sorted(points.items())]
    async with store._write() as tx:
        last = await tx.fetchone(_LAST_PARTIAL)
        after = {"after": int(last["id"]) if last is not None else 0}
        await tx.executemany(_INSERT_CONFIRMED, rows)
        if refusals:
            await tx.executemany(_INSERT_REFUSAL, refusals)
        await tx.executemany(_CREDIT_POINTS, credits)
        await tx.execute(_ADD_CONFIRMED_HOURS_AFTER, after)
        if isinstance(store, SqlitePoolStore):
            await tx.execute(_ADD_DIFFICULTY_HOURS_AFTER, after)


async def _day_of_money(store: AbstractPoolStore, day_start: int, height: int, *, last: bool) -> int:
    """The day's block rewards claimed and confirmed, shared out and paid; on the last day one more reward is left
    undistributed (the measured pool's payouts loop shares it out)."""
    for number in range(REWARDS_PER_DAY + (1 if last else 0)):
        height += 1
        coin_id = _h("scale reward", day_start, number)
        claim = RewardClaim(
            coin_id=coin_id,
            launcher_id=farmer_launcher_id(number),
            amount=REWARD,
            coin_height=height,
            spend_bundle_name=_h("scale absorb", coin_id),
            status=ClaimStatus.SUBMITTED,
            submitted_at=day_start + number,
            submitted_height=height,
        )
        await store.add_reward_claims([claim])
        await store.update_reward_claim(coin_id, ClaimStatus.CONFIRMED, confirmed_height=height + 1)
        if number == REWARDS_PER_DAY - 1:
            await _share_out(store, day_start + DAY_SECONDS // 2)
            height = await _pay(store, day_start + DAY_SECONDS // 2 + 60, height)
    return height


async def _share_out(store: AbstractPoolStore, now: int) -> None:
    from fractions import Fraction

    farmers = await store.list_farmers()
    available = (await store.ledger()).undistributed
    shares = [FarmerShare(f.launcher_id, weight=f.points, points=f.points) for f in farmers]
    plan = plan_distribution(available, Fraction(*POOL_FEE), shares)
    if plan is None:
        return
    distribution = Distribution(now, "proportional", plan.total, plan.pool_fee, plan.farmer_total, plan.remainder)
    await store.distribute(distribution, [DistributionShare(s.launcher_id, s.amount, s.points) for s in plan.shares])


async def _pay(store: AbstractPoolStore, now: int, height: int) -> int:
    """A round paying every owed balance, its batches submitted and confirmed."""
    payable = [Payable(f.launcher_id, f.payout_puzzle_hash, f.owed) for f in await store.list_farmers() if f.owed]
    ledger = await store.ledger()
    plan = plan_payments(
        payable,
        min_payment=0,
        pool_fee_share=ledger.pool_fee_share,
        fee_reserve=0,
        blockchain_fee=0,
        max_additions=MAX_ADDITIONS,
        fee_puzzle_hash=_h("scale fee address"),
    )
    if plan is None:
        return height
    payout_round = PayoutRound(now, "proportional", plan.total, plan.pool_fee, plan.blockchain_fees, plan.farmer_total)
    payments = [Payment(p.puzzle_hash, p.amount, p.launcher_id, 0, p.batch_index) for p in plan.payments]
    round_id = await store.create_payout_round(payout_round, payments, plan.batch_fees)
    bundle = bytes(SpendBundle([], G2Element()))
    for batch in await store.batches(round_id):
        assert batch.id is not None
        height += 1
        await store.mark_batch_submitted(batch.id, _h("scale payment", round_id, batch.id), bundle, now, height)
        await store.mark_batch_confirmed(batch.id, height + 1, now + 60)
    return height


# -- caching and copies -----------------------------------------------------------------------------------------


@dataclass
class ScaleStores:
    """Where the built stores are cached (``cache_dir``) and where a run's copies live; for PostgreSQL, the server
    the copies are restored into (one per run, durable, as an operator runs it)."""

    cache_dir: Path
    backend: str
    postgres: PostgresServer | None = None

    def cached(self, size: ScaleSize) -> Path:
        return cache_path(self.cache_dir, size, self.backend)

    async def ensure(self, size: ScaleSize, target_puzzle_hash: bytes32, rebuild: bool, progress: Progress) -> int:
        """The cached store of ``size``, built first if missing; returns the moment its history ends."""
        path = self.cached(size)
        about = about_path(path)
        schema = schema_fingerprint(self.backend)
        if path.exists() and about.exists() and not rebuild:
            cached = json.loads(about.read_text())
            behind = steps_behind(self.backend, str(cached.get("schema")))
            if behind == 0:
                progress(f"using the cached store {path}")
                return int(cached["end"])
            if behind is not None:
                # Built before this pool's last steps: migrated by them once, in the cache, the way an operator's
                # store is at an upgrade (the 30-day store of 10 000 farmers takes an hour to build, a migration
                # seconds).
                progress(f"migrating the cached store {path} by this pool's {behind} newer schema step(s)")
                await self._migrate_cached(size, progress)
                about.write_text(json.dumps({**cached, "schema": schema}))
                return int(cached["end"])
            # A store built by other migrations (another branch's, whose step numbers meant other steps) may not
            # migrate to these: build it again rather than measure a store the pool could not have made.
            progress(f"the cached store {path} was built with another schema: building it again")
        path.parent.mkdir(parents=True, exist_ok=True)
        progress(f"building the store of {size.label} ({size.partials} partials; the partials in bulk)")
        name = f"scale_build_{size.farmers}_{size.days}"
        config = self.fresh(name, path.with_suffix(".building"))
        store = create_store(config)
        await store.open()
        end = int(time.time())
        started = time.monotonic()
        try:
            await build_store(store, size, target_puzzle_hash, end, progress)
        finally:
            await store.close()
        if self.backend == "sqlite":
            config.path.replace(path)
        else:
            assert self.postgres is not None
            self.postgres.dump(name, path)
            self.postgres.drop_database(name)
        about.write_text(json.dumps({"end": end, "build_seconds": round(time.monotonic() - started), "schema": schema}))
        progress(f"store cached at {path} ({path.stat().st_size / 2**20:.0f} MiB)")
        return end

    async def _migrate_cached(self, size: ScaleSize, progress: Progress) -> None:
        """The cached store of ``size`` opened by the store (which migrates it) and kept migrated."""
        path = self.cached(size)
        started = time.monotonic()
        name = f"scale_migrate_{size.farmers}_{size.days}"
        if self.backend == "sqlite":
            config = StoreConfig(backend="sqlite", path=path)
        else:
            config = self.copy(size, name, path.with_suffix(".migrating"))
        store = create_store(config)
        await store.open()
        await store.close()
        if self.backend == "sqlite":
            # Into the file itself: the runs copy the database file, not its write-ahead log.
            with contextlib.closing(sqlite3.connect(path)) as db:
                db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        else:
            assert self.postgres is not None
            self.postgres.dump(name, path)
            self.postgres.drop_database(name)
        progress(f"migrated in {time.monotonic() - started:.0f} s")

    def fresh(self, name: str, sqlite_path: Path) -> StoreConfig:
        """An empty store's configuration: a new SQLite file, or a new PostgreSQL database."""
        if self.backend == "sqlite":
            for leftover in database_files(sqlite_path):
                leftover.unlink(missing_ok=True)
            return StoreConfig(backend="sqlite", path=sqlite_path)
        assert self.postgres is not None
        self.postgres.drop_database(name)
        return StoreConfig(backend="postgresql", path=sqlite_path, dsn=self.postgres.create_database(name))

    def copy(self, size: ScaleSize | None, name: str, sqlite_path: Path) -> StoreConfig:
        """A run's own copy of the cached store of ``size`` (an empty store for None)."""
        config = self.fresh(name, sqlite_path)
        if size is None:
            return config
        if self.backend == "sqlite":
            shutil.copyfile(self.cached(size), sqlite_path)
            # Written to disk before the pool starts: the kernel otherwise writes a large copy's pages back (gigabytes
            # at 30 days of 10 000 farmers) during the first phase, where the intake's commits sync behind them.
            with open(sqlite_path, "rb") as copied:
                os.fsync(copied.fileno())
        else:
            assert self.postgres is not None
            self.postgres.restore(self.cached(size), name)
        return config

    def discard(self, name: str, config: StoreConfig) -> None:
        """A run's copy, once measured: the copy of the 30-day store of 10 000 farmers is as large as the cached one
        (some 30 GB), and a run keeps its logs and configurations, not its copies."""
        if config.backend == "sqlite":
            for part in (*database_files(config.path), config.path.with_name(config.path.name + ".leader")):
                part.unlink(missing_ok=True)
            return
        assert self.postgres is not None
        self.postgres.drop_database(name)


async def store_bytes(config: StoreConfig) -> int:
    """What the store takes on disk: the SQLite file and its write-ahead log, or the PostgreSQL database's size."""
    if config.backend == "sqlite":
        return database_bytes(config.path)
    import asyncpg

    connection = await asyncpg.connect(config.dsn)
    try:
        return int(await connection.fetchval("SELECT pg_database_size(current_database())"))
    finally:
        await connection.close()
