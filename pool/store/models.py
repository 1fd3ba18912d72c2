"""Records kept by the store. Plain frozen dataclasses; amounts are integer mojos, times are integer unix seconds."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from pool.chia_adapter import CoinSpend, G1Element, PoolState, bytes32


class PartialStatus(str, Enum):
    PENDING = "pending"  # accepted by POST /partial, not yet credited
    CONFIRMED = "confirmed"  # points credited to the farmer (exactly once)
    REJECTED = "rejected"  # failed the re-check after the confirmation delay; reason recorded


class ClaimStatus(str, Enum):
    SUBMITTED = "submitted"  # absorb spend pushed to the node
    CONFIRMED = "confirmed"  # the reward coin is spent on chain
    FAILED = "failed"  # the spend was refused; the coin may be claimed again by a later scan


class RoundStatus(str, Enum):
    OPEN = "open"  # recorded, some batches not yet confirmed
    DONE = "done"  # every batch confirmed


class BatchStatus(str, Enum):
    PENDING = "pending"  # recorded, no transaction yet
    SUBMITTED = "submitted"  # a signed transaction was recorded (before being pushed) and pushed
    CONFIRMED = "confirmed"  # the transaction is on chain


@dataclass(frozen=True)
class FarmerRecord:
    launcher_id: bytes32
    p2_singleton_puzzle_hash: bytes32
    delay_time: int
    delay_puzzle_hash: bytes32
    authentication_public_key: G1Element
    singleton_tip: CoinSpend  # the most recent (buried) spend of the farmer's singleton that we know of
    singleton_tip_state: PoolState  # the pool state in force after that spend
    difficulty: int
    payout_instructions: str  # exactly as the farmer sent it (the farmer compares it with its own, case-insensitive)
    payout_puzzle_hash: bytes32  # the same instructions decoded: where payments go
    is_pool_member: bool
    points: int  # confirmed points not yet consumed by a payout round
    joined_at: int
    # A difficulty suggested with PUT /farmer takes effect only at pending_difficulty_at (cooldown against replay).
    pending_difficulty: int | None = None
    pending_difficulty_at: int | None = None
    # The authentication token of the last PUT /farmer accepted: a PUT needs a newer one (no replay).
    last_put_token: int | None = None

    def difficulty_at(self, now: int) -> int:
        """The difficulty in force at ``now``, counting a pending change whose cooldown has passed."""
        if self.pending_difficulty is not None and self.pending_difficulty_at is not None:
            if now >= self.pending_difficulty_at:
                return self.pending_difficulty
        return self.difficulty


@dataclass(frozen=True)
class PartialRecord:
    launcher_id: bytes32
    proof_hash: bytes32  # identity of the proof: the same proof is credited once
    sp_hash: bytes32
    end_of_sub_slot: bool
    harvester_id: bytes32
    received_at: int
    difficulty: int  # the farmer's difficulty when the partial was received = the points it is worth
    status: PartialStatus = PartialStatus.PENDING
    reject_reason: str | None = None
    # Settled without its re-check: the node no longer knew its signage point because the pool fell behind. Credited
    # (CONFIRMED) or not (REJECTED) as partials.stale_partials says.
    stale: bool = False
    id: int | None = None  # assigned by the store


@dataclass(frozen=True)
class RewardClaim:
    coin_id: bytes32
    launcher_id: bytes32
    amount: int
    coin_height: int  # height at which the reward coin was created
    spend_bundle_name: bytes32 | None
    status: ClaimStatus
    submitted_at: int
    submitted_height: int
    confirmed_height: int | None = None
    error: str | None = None


@dataclass(frozen=True)
class PayoutRound:
    created_at: int
    scheme: str
    total: int  # mojos distributed by this round (taken from the pool wallet's confirmed balance)
    pool_fee: int  # mojos paid to the fee address
    blockchain_fees: int  # mojos of transaction fees of all batches
    farmer_total: int  # mojos paid to farmers
    remainder: int  # mojos not distributed (rounding, dust); they stay in the wallet for the next round
    status: RoundStatus = RoundStatus.OPEN
    id: int | None = None


@dataclass(frozen=True)
class Payment:
    """One addition of a payout round: to a farmer (launcher_id set) or the pool fee (launcher_id None)."""

    puzzle_hash: bytes32
    amount: int
    launcher_id: bytes32 | None
    points: int  # the points this payment consumed from the farmer's balance
    batch_index: int  # which batch (0-based, within the round) pays it
    round_id: int | None = None
    id: int | None = None


@dataclass(frozen=True)
class PaymentBatch:
    round_id: int
    index: int
    fee: int  # blockchain fee of this batch's transaction
    status: BatchStatus = BatchStatus.PENDING
    tx_id: bytes32 | None = None
    spend_bundle: bytes | None = None  # the signed transaction, recorded before it is pushed, so it can be re-pushed
    confirmed_height: int | None = None
    updated_at: int = 0
    id: int | None = None
