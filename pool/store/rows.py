"""Rows to records: the same for every backend (sqlite3.Row and asyncpg.Record are both read by column name)."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable, Sequence
from typing import Any, Protocol, TypeVar

from pool.chia_adapter import CoinSpend, G1Element, PoolState, bytes32
from pool.store.models import (
    BatchStatus,
    BatchVersion,
    ClaimFeeVersion,
    ClaimStatus,
    Distribution,
    DistributionShare,
    FarmerChange,
    FarmerChangeKind,
    FarmerRecord,
    LedgerEntry,
    LedgerKind,
    LedgerSummary,
    PartialRecord,
    PartialsSummary,
    PartialStatus,
    Payment,
    PaymentBatch,
    PayoutRound,
    RewardClaim,
    RoundStatus,
    SingletonPosition,
    TargetProof,
)


class Row(Protocol):
    def __getitem__(self, key: str, /) -> Any: ...


T = TypeVar("T")

# Rows decoded between two turns of the event loop. Decoding is tens of microseconds a row (bytes32 and the record's
# constructor): a read of every farmer of ten thousand decoded at once held the event loop, and every partial waiting
# on it, a fifth of a second.
DECODED_AT_ONCE = 500


async def decoded(rows: Sequence[Row], decode: Callable[[Row], T]) -> list[T]:
    """``decode`` of each row, a slice of rows at a time with the event loop let run between slices."""
    records: list[T] = []
    for start in range(0, len(rows), DECODED_AT_ONCE):
        if start:
            await asyncio.sleep(0)
        records.extend(decode(row) for row in rows[start : start + DECODED_AT_ONCE])
    return records


def optional_bytes32(value: bytes | None) -> bytes32 | None:
    return None if value is None else bytes32(value)


def optional_int(value: int | None) -> int | None:
    return None if value is None else int(value)


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


# Decoding a BLS public key checks that the point is on the curve and in the subgroup, which is costly (and a PoolState
# holds one too); POST /partial reads its farmer for every partial, and the keys of a pool's farmers are few and
# immutable.
FARMER_KEYS_CACHED = 16_384


@functools.lru_cache(maxsize=FARMER_KEYS_CACHED)
def public_key_from_bytes(data: bytes) -> G1Element:
    return G1Element.from_bytes(data)


@functools.lru_cache(maxsize=FARMER_KEYS_CACHED)
def pool_state_from_bytes(data: bytes) -> PoolState:
    # Checked (not stored_pool_state): a farmer record's owner key verifies PUT /farmer's signatures; the cache keeps
    # the check to once a farmer and process.
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
        difficulty_since=int(row["difficulty_since"]),
        banned_at=optional_int(row["banned_at"]),
        ban_reason=None if row["ban_reason"] is None else str(row["ban_reason"]),
    )


def position_from_row(row: Row) -> SingletonPosition:
    return SingletonPosition(
        launcher_id=bytes32(row["launcher_id"]),
        p2_singleton_puzzle_hash=bytes32(row["p2_singleton_puzzle_hash"]),
        delay_time=int(row["delay_time"]),
        delay_puzzle_hash=bytes32(row["delay_puzzle_hash"]),
        singleton_tip=bytes(row["singleton_tip"]),
        singleton_tip_state=bytes(row["singleton_tip_state"]),
        is_pool_member=bool(row["is_pool_member"]),
    )


def change_from_row(row: Row) -> FarmerChange:
    return FarmerChange(
        launcher_id=bytes32(row["launcher_id"]),
        at=int(row["at"]),
        kind=FarmerChangeKind(row["kind"]),
        old=None if row["old"] is None else str(row["old"]),
        new=None if row["new"] is None else str(row["new"]),
        id=int(row["id"]),
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
        fee_settled=bool(row["fee_settled"]),
        earlier_fees=int(row["earlier_fees"]),
        network_difficulty=optional_int(row["network_difficulty"]),
        network_sub_slot_iters=optional_int(row["network_sub_slot_iters"]),
        coin_timestamp=optional_int(row["coin_timestamp"]),
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


def ledger_from_row(row: Row) -> LedgerSummary:
    """The row of LEDGER_SQL (pool.store.sql). The blockchain fees come in two columns and are added here: Python's
    integers never overflow, SQLite's 64-bit ones could."""
    return LedgerSummary(
        confirmed_claims=int(row["confirmed_claims"]),
        farmer_payments=int(row["farmer_payments"]),
        farmer_payments_in_flight=int(row["farmer_payments_in_flight"]),
        owed=int(row["owed"]),
        pool_fee_share=int(row["pool_fee_share"]),
        pool_fee_payments=int(row["pool_fee_payments"]),
        blockchain_fees=int(row["batch_fees"]) + int(row["claim_fees"]),
        undistributed=int(row["undistributed"]),
        pre_ledger_excess=int(row["pre_ledger_excess"]),
        lost_rewards=int(row["lost_rewards"]),
        operator_funding=int(row["operator_funding"]),
    )


def version_from_row(row: Row) -> BatchVersion:
    return BatchVersion(
        batch_id=int(row["batch_id"]),
        version=int(row["version"]),
        tx_id=bytes32(row["tx_id"]),
        spend_bundle=bytes(row["spend_bundle"]),
        fee=int(row["fee"]),
        created_at=int(row["created_at"]),
        height=optional_int(row["height"]),
    )


def claim_fee_version_from_row(row: Row) -> ClaimFeeVersion:
    return ClaimFeeVersion(
        coin_id=bytes32(row["coin_id"]),
        version=int(row["version"]),
        spend_bundle=bytes(row["spend_bundle"]),
        fee=int(row["fee"]),
        created_at=int(row["created_at"]),
        height=optional_int(row["height"]),
        settled=bool(row["settled"]),
    )


def proof_from_row(row: Row) -> TargetProof:
    return TargetProof(
        target_puzzle_hash=bytes32(row["target_puzzle_hash"]),
        address=str(row["address"]),
        fingerprint=optional_int(row["fingerprint"]),
        public_key=bytes(row["public_key"]),
        signature=bytes(row["signature"]),
        signing_mode=str(row["signing_mode"]),
        message=str(row["message"]),
        proven_at=int(row["proven_at"]),
    )
