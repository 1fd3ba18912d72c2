"""Rows to records: the same for every backend (sqlite3.Row and asyncpg.Record are both read by column name)."""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any, Protocol

from pool.chia_adapter import CoinSpend, G1Element, PoolState, bytes32
from pool.store.models import (
    BatchStatus,
    ClaimStatus,
    Distribution,
    DistributionShare,
    FarmerRecord,
    LedgerEntry,
    LedgerKind,
    PartialRecord,
    PartialsSummary,
    PartialStatus,
    Payment,
    PaymentBatch,
    PayoutRound,
    RewardClaim,
    RoundStatus,
)


class Row(Protocol):
    def __getitem__(self, key: str, /) -> Any: ...


def optional_bytes32(value: bytes | None) -> bytes32 | None:
    return None if value is None else bytes32(value)


def optional_int(value: int | None) -> int | None:
    return None if value is None else int(value)


# One row per pool member with partials since {since}: its newest partial and the newest run at its current difficulty
# within the window from {window} (pool.protocol.difficulty.summarize, computed in the database instead of reading
# every farmer's partials). In newest-first order with ties at the higher difficulty first, the run ends at the
# largest (received_at, difficulty) of another difficulty in the window: "cut".
# {since} and {window} are the backend's placeholders ($n, or ? with the parameters in order of appearance).
DIFFICULTY_SUMMARIES_SQL = """
WITH recent AS (
    SELECT p.launcher_id, p.received_at, p.difficulty, f.difficulty AS current_difficulty,
           p.received_at >= {window} AND p.difficulty <> f.difficulty AS cuts
    FROM partials p JOIN farmers f ON f.launcher_id = p.launcher_id
    WHERE p.received_at >= {since} AND f.is_pool_member
),
ranked AS (
    SELECT *,
           ROW_NUMBER() OVER (PARTITION BY launcher_id ORDER BY received_at DESC, difficulty DESC) AS newest_rank,
           ROW_NUMBER() OVER (PARTITION BY launcher_id, cuts ORDER BY received_at DESC, difficulty DESC) AS cut_rank
    FROM recent
),
cut AS (
    SELECT launcher_id, received_at, difficulty FROM ranked WHERE cuts AND cut_rank = 1
),
run AS (
    SELECT r.launcher_id, COUNT(*) AS run_count, MIN(r.received_at) AS run_oldest
    FROM recent r LEFT JOIN cut c ON c.launcher_id = r.launcher_id
    WHERE r.received_at >= {window} AND r.difficulty = r.current_difficulty
      AND (c.received_at IS NULL OR r.received_at > c.received_at
           OR (r.received_at = c.received_at AND r.difficulty > c.difficulty))
    GROUP BY r.launcher_id
)
SELECT n.launcher_id, n.received_at AS newest_at, n.difficulty AS newest_difficulty, run.run_count, run.run_oldest
FROM ranked n LEFT JOIN run ON run.launcher_id = n.launcher_id WHERE n.newest_rank = 1
"""


def summary_from_row(row: Row) -> tuple[bytes32, PartialsSummary]:
    return bytes32(row["launcher_id"]), PartialsSummary(
        (int(row["newest_at"]), int(row["newest_difficulty"])),
        int(row["run_count"] or 0),
        optional_int(row["run_oldest"]),
    )


def points_per_farmer(rows: Sequence[Row]) -> dict[bytes32, int]:
    """Rows with launcher_id and difficulty (partials being credited) summed per farmer."""
    points: dict[bytes32, int] = {}
    for row in rows:
        launcher_id = bytes32(row["launcher_id"])
        points[launcher_id] = points.get(launcher_id, 0) + int(row["difficulty"])
    return points


# Decoding a BLS public key checks that the point is on the curve and in the subgroup (~0.1 ms, and a PoolState holds
# one too); POST /partial reads its farmer for every partial, and the keys of a pool's farmers are few and immutable.
FARMER_KEYS_CACHED = 16_384


@functools.lru_cache(maxsize=FARMER_KEYS_CACHED)
def public_key_from_bytes(data: bytes) -> G1Element:
    return G1Element.from_bytes(data)


@functools.lru_cache(maxsize=FARMER_KEYS_CACHED)
def pool_state_from_bytes(data: bytes) -> PoolState:
    return PoolState.from_bytes(data)


def farmer_from_row(row: Row) -> FarmerRecord:
    return FarmerRecord(
        launcher_id=bytes32(row["launcher_id"]),
        p2_singleton_puzzle_hash=bytes32(row["p2_singleton_puzzle_hash"]),
        delay_time=int(row["delay_time"]),
        delay_puzzle_hash=bytes32(row["delay_puzzle_hash"]),
        authentication_public_key=public_key_from_bytes(bytes(row["authentication_public_key"])),
        singleton_tip=CoinSpend.from_bytes(row["singleton_tip"]),
        singleton_tip_state=pool_state_from_bytes(bytes(row["singleton_tip_state"])),
        difficulty=int(row["difficulty"]),
        payout_instructions=str(row["payout_instructions"]),
        payout_puzzle_hash=bytes32(row["payout_puzzle_hash"]),
        is_pool_member=bool(row["is_pool_member"]),
        points=int(row["points"]),
        joined_at=int(row["joined_at"]),
        pending_difficulty=optional_int(row["pending_difficulty"]),
        pending_difficulty_at=optional_int(row["pending_difficulty_at"]),
        owed=int(row["owed"]),
        last_put_token=optional_int(row["last_put_token"]),
    )


def partial_from_row(row: Row) -> PartialRecord:
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


def claim_from_row(row: Row) -> RewardClaim:
    return RewardClaim(
        coin_id=bytes32(row["coin_id"]),
        launcher_id=bytes32(row["launcher_id"]),
        amount=int(row["amount"]),
        coin_height=int(row["coin_height"]),
        spend_bundle_name=optional_bytes32(row["spend_bundle_name"]),
        status=ClaimStatus(row["status"]),
        submitted_at=int(row["submitted_at"]),
        submitted_height=int(row["submitted_height"]),
        confirmed_height=optional_int(row["confirmed_height"]),
        error=row["error"],
        fee=int(row["fee"]),
        fee_spend_bundle=None if row["fee_spend_bundle"] is None else bytes(row["fee_spend_bundle"]),
    )


def round_from_row(row: Row) -> PayoutRound:
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


def payment_from_row(row: Row) -> Payment:
    return Payment(
        puzzle_hash=bytes32(row["puzzle_hash"]),
        amount=int(row["amount"]),
        launcher_id=optional_bytes32(row["launcher_id"]),
        points=int(row["points"]),
        batch_index=int(row["batch_index"]),
        round_id=int(row["round_id"]),
        id=int(row["id"]),
    )


def batch_from_row(row: Row) -> PaymentBatch:
    return PaymentBatch(
        round_id=int(row["round_id"]),
        index=int(row["batch_index"]),
        fee=int(row["fee"]),
        status=BatchStatus(row["status"]),
        tx_id=optional_bytes32(row["tx_id"]),
        spend_bundle=None if row["spend_bundle"] is None else bytes(row["spend_bundle"]),
        confirmed_height=optional_int(row["confirmed_height"]),
        updated_at=int(row["updated_at"]),
        submitted_height=optional_int(row["submitted_height"]),
        id=int(row["id"]),
    )


def distribution_from_row(row: Row) -> Distribution:
    return Distribution(
        created_at=int(row["created_at"]),
        scheme=str(row["scheme"]),
        total=int(row["total"]),
        pool_fee=int(row["pool_fee"]),
        farmer_total=int(row["farmer_total"]),
        remainder=int(row["remainder"]),
        id=int(row["id"]),
    )


def share_from_row(row: Row) -> DistributionShare:
    return DistributionShare(
        launcher_id=bytes32(row["launcher_id"]),
        amount=int(row["amount"]),
        points=int(row["points"]),
        distribution_id=int(row["distribution_id"]),
    )


def entry_from_row(row: Row) -> LedgerEntry:
    return LedgerEntry(
        created_at=int(row["created_at"]),
        kind=LedgerKind(row["kind"]),
        amount=int(row["amount"]),
        launcher_id=optional_bytes32(row["launcher_id"]),
        reference=str(row["reference"]),
        id=int(row["id"]),
    )
