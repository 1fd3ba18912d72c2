"""How confirmed reward money is shared out and paid. Pure integer arithmetic: no I/O, no floats.

Two steps, each its own store transaction (see pool/loops/payouts.py):

1. **Distribution** (``plan_distribution``): the undistributed money of confirmed claims is divided once.
   pool fee = floor(total * fee), exact (``fee`` is a Fraction); the rest, the farmers' share, is split by weight:
   floor(share * weight / total_weight). Each farmer's amount is added to its *owed balance*; the rounding left over
   stays undistributed and joins the next distribution. A farmer whose amount rounds to zero is left out and keeps
   its points. The pool fee is charged here and only here.
2. **Payment** (``plan_payments``): every farmer owed at least ``min_payment`` is paid its whole owed balance;
   smaller balances wait and grow with later distributions (never re-split among others). Blockchain fees come out
   of the pool's fee share, never out of what farmers are owed: when the share cannot cover ``blockchain_fee`` per
   transaction, the transactions carry what it can (possibly nothing). What remains of the pool's share beyond
   ``fee_reserve`` is paid to the fee address in the same round.

Invariants (checked by ``check``): distribution: pool_fee + farmer_total == total, total + remainder == available;
payment: farmer_total + pool_fee + blockchain_fees == total, every farmer paid exactly what it is owed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction

from pool.chia_adapter import bytes32


@dataclass(frozen=True)
class FarmerShare:
    """A farmer taking part in a distribution."""

    launcher_id: bytes32
    weight: int  # what its share is proportional to (points balance, or points in the PPLNS window)
    points: int  # points the distribution takes from its balance in exchange for the amount


@dataclass(frozen=True)
class PlannedShare:
    launcher_id: bytes32
    amount: int
    points: int


@dataclass(frozen=True)
class DistributionPlan:
    available: int  # undistributed money when planned
    total: int  # taken from it: pool_fee + farmer_total
    pool_fee: int
    farmer_total: int
    remainder: int  # rounding: stays undistributed
    shares: tuple[PlannedShare, ...]

    def check(self) -> None:
        assert self.pool_fee >= 0 and self.remainder >= 0 and self.total > 0
        assert self.pool_fee + self.farmer_total == self.total
        assert self.total + self.remainder == self.available
        assert sum(s.amount for s in self.shares) == self.farmer_total
        assert all(s.amount > 0 for s in self.shares)


def plan_distribution(available: int, fee: Fraction, farmers: Sequence[FarmerShare]) -> DistributionPlan | None:
    """Share out ``available`` mojos, or None when nobody has weight (the money waits for the next time)."""
    if available <= 0 or not 0 <= fee <= 1:
        return None
    farmers = sorted((f for f in farmers if f.weight > 0), key=lambda f: bytes(f.launcher_id))
    if not farmers:
        return None
    pool_fee = available * fee.numerator // fee.denominator
    farmers_share = available - pool_fee
    total_weight = sum(f.weight for f in farmers)
    shares = tuple(
        PlannedShare(f.launcher_id, farmers_share * f.weight // total_weight, f.points)
        for f in farmers
        if farmers_share * f.weight // total_weight > 0
    )
    farmer_total = sum(s.amount for s in shares)
    if pool_fee + farmer_total == 0:
        return None
    plan = DistributionPlan(
        available=available,
        total=pool_fee + farmer_total,
        pool_fee=pool_fee,
        farmer_total=farmer_total,
        remainder=farmers_share - farmer_total,
        shares=shares,
    )
    plan.check()
    return plan


@dataclass(frozen=True)
class Payable:
    """A farmer's owed balance and where it is paid."""

    launcher_id: bytes32
    puzzle_hash: bytes32
    owed: int
    min_payment: int = 0  # the farmer's own minimum (its page's setting), over the pool's


@dataclass(frozen=True)
class PlannedPayment:
    puzzle_hash: bytes32
    amount: int
    launcher_id: bytes32 | None  # None for the pool fee
    batch_index: int


@dataclass(frozen=True)
class PaymentPlan:
    total: int  # leaves the pool: farmer_total + pool_fee + blockchain_fees
    pool_fee: int  # paid to the fee address
    blockchain_fees: int  # sum of batch_fees
    farmer_total: int
    payments: tuple[PlannedPayment, ...]
    batch_fees: tuple[int, ...]  # one per batch (transaction)

    def check(self, payable: Sequence[Payable], pool_fee_share: int) -> None:
        owed = {p.launcher_id: p.owed for p in payable}
        farmer_payments = [p for p in self.payments if p.launcher_id is not None]
        assert all(p.amount == owed[p.launcher_id] for p in farmer_payments if p.launcher_id is not None)
        assert sum(p.amount for p in farmer_payments) == self.farmer_total
        assert sum(p.amount for p in self.payments if p.launcher_id is None) == self.pool_fee
        assert sum(self.batch_fees) == self.blockchain_fees <= pool_fee_share - self.pool_fee
        assert self.total == self.farmer_total + self.pool_fee + self.blockchain_fees
        assert all(p.amount > 0 for p in self.payments)
        assert all(0 <= p.batch_index < len(self.batch_fees) for p in self.payments)


def _batch_count(additions: int, max_additions: int) -> int:
    return -(-additions // max_additions)


def plan_payments(
    payable: Sequence[Payable],
    *,
    min_payment: int,
    pool_fee_share: int,
    fee_reserve: int,
    blockchain_fee: int,
    max_additions: int,
    fee_puzzle_hash: bytes32,
) -> PaymentPlan | None:
    """Pay every farmer owed at least ``min_payment`` and its own minimum (and at least one mojo); None when nobody is
    due."""
    if max_additions < 1:
        raise ValueError("max_additions must be at least 1")
    due = sorted(
        (p for p in payable if p.owed >= max(min_payment, p.min_payment, 1)), key=lambda p: bytes(p.launcher_id)
    )
    if not due:
        return None
    batches = _batch_count(len(due) + 1, max_additions)  # room for the fee-address payment
    per_batch_fee = min(blockchain_fee, pool_fee_share // batches)
    fee_payment = pool_fee_share - fee_reserve - per_batch_fee * batches
    if fee_payment <= 0:
        fee_payment = 0
        batches = _batch_count(len(due), max_additions)
        per_batch_fee = min(blockchain_fee, pool_fee_share // batches)

    ordered: list[tuple[bytes32, int, bytes32 | None]] = []
    if fee_payment > 0:
        ordered.append((fee_puzzle_hash, fee_payment, None))
    ordered.extend((p.puzzle_hash, p.owed, p.launcher_id) for p in due)
    payments = tuple(
        PlannedPayment(puzzle_hash=ph, amount=amount, launcher_id=launcher, batch_index=i // max_additions)
        for i, (ph, amount, launcher) in enumerate(ordered)
    )
    batch_fees = tuple(per_batch_fee for _ in range(batches))
    farmer_total = sum(p.owed for p in due)
    plan = PaymentPlan(
        total=farmer_total + fee_payment + sum(batch_fees),
        pool_fee=fee_payment,
        blockchain_fees=sum(batch_fees),
        farmer_total=farmer_total,
        payments=payments,
        batch_fees=batch_fees,
    )
    plan.check(payable, pool_fee_share)
    return plan


def merged_additions(payments: Sequence[tuple[bytes32, int]]) -> list[tuple[bytes32, int]]:
    """Additions of one transaction, one per puzzle hash: two equal (puzzle hash, amount) outputs of one spend would be
    the same coin, which the chain refuses. Farmers sharing a payout address are paid with one coin."""
    merged: dict[bytes32, int] = {}
    for puzzle_hash, amount in payments:
        merged[puzzle_hash] = merged.get(puzzle_hash, 0) + amount
    return sorted(merged.items(), key=lambda item: bytes(item[0]))
