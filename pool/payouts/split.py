"""How a payout round divides the pool wallet's balance. Pure integer arithmetic: no I/O, no floats.

Given the amount to distribute (``total``), the order is:

1. pool fee = floor(total * fee), exact (``fee`` is a Fraction).
2. blockchain fees: one ``blockchain_fee`` per transaction (batch). The number of batches is estimated up front from
   every farmer that has points (an upper bound, since dust drops farmers). The fees are taken out of the pool fee
   when the pool fee covers them (the operator pays for sending), otherwise out of the farmers' share (so a fee larger
   than the pool fee can never drain the wallet: the farmers' share simply shrinks).
3. the farmers' share is split by weight: amount = floor(share * weight / total_weight).
4. a farmer whose amount is below ``min_payment`` (or zero) is not paid: its points are not consumed and its share stays
   in the wallet for the next round (carried forward).
5. whatever is left (rounding, dust, fees of batches that turned out not to be needed) is the remainder: it stays in
   the wallet and is part of the next round's total.

Invariant: sum(farmer payments) + pool fee payment + blockchain fees + remainder == total.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction

from pool.chia_adapter import bytes32


@dataclass(frozen=True)
class FarmerShare:
    """A farmer taking part in a round."""

    launcher_id: bytes32
    puzzle_hash: bytes32  # where its payment goes
    weight: int  # what its share is proportional to (points balance, or points in the PPLNS window)
    points: int  # points the payment consumes from its balance


@dataclass(frozen=True)
class PlannedPayment:
    puzzle_hash: bytes32
    amount: int
    launcher_id: bytes32 | None  # None for the pool fee
    points: int
    batch_index: int


@dataclass(frozen=True)
class PayoutPlan:
    total: int
    pool_fee: int  # paid to the fee address (after blockchain fees it covered)
    blockchain_fees: int  # sum of batch_fees
    farmer_total: int
    remainder: int
    payments: tuple[PlannedPayment, ...]
    batch_fees: tuple[int, ...]  # one per batch
    carried: tuple[bytes32, ...]  # farmers whose share was dust: not paid, their points stay

    def check(self) -> None:
        """Raise AssertionError if the plan does not add up (guards every round before it is recorded)."""
        paid = sum(p.amount for p in self.payments)
        assert paid + self.blockchain_fees + self.remainder == self.total, "payout plan does not add up"
        assert paid == self.farmer_total + self.pool_fee
        assert all(p.amount > 0 for p in self.payments) and self.remainder >= 0
        assert sum(self.batch_fees) == self.blockchain_fees
        assert all(0 <= p.batch_index < len(self.batch_fees) for p in self.payments)


def _batch_count(additions: int, max_additions: int) -> int:
    return -(-additions // max_additions)


def _farmer_amounts(
    share: int, farmers: Sequence[FarmerShare], min_payment: int
) -> tuple[dict[bytes32, int], list[bytes32]]:
    total_weight = sum(f.weight for f in farmers)
    paid: dict[bytes32, int] = {}
    carried: list[bytes32] = []
    for farmer in farmers:
        amount = share * farmer.weight // total_weight
        if amount <= 0 or amount < min_payment:
            carried.append(farmer.launcher_id)
        else:
            paid[farmer.launcher_id] = amount
    return paid, carried


def plan_payout(
    total: int,
    fee: Fraction,
    fee_puzzle_hash: bytes32,
    farmers: Sequence[FarmerShare],
    blockchain_fee: int,
    max_additions: int,
    min_payment: int,
) -> PayoutPlan | None:
    """The round for ``total`` mojos, or None when there is nothing to pay farmers (no weight, all dust, or the
    blockchain fees do not fit)."""
    if total <= 0 or max_additions < 1 or not 0 <= fee <= 1:
        return None
    farmers = sorted((f for f in farmers if f.weight > 0), key=lambda f: bytes(f.launcher_id))
    if not farmers:
        return None
    pool_fee = total * fee.numerator // fee.denominator
    estimated_batches = _batch_count(len(farmers) + (1 if pool_fee > 0 else 0), max_additions)
    reserved_fees = estimated_batches * blockchain_fee
    fees_from_pool_fee = pool_fee >= reserved_fees
    farmers_share = total - pool_fee - (0 if fees_from_pool_fee else reserved_fees)
    if farmers_share <= 0:
        return None
    amounts, carried = _farmer_amounts(farmers_share, farmers, min_payment)
    if not amounts:
        return None
    fee_payment = pool_fee - reserved_fees if fees_from_pool_fee else pool_fee

    ordered: list[tuple[bytes32, int, bytes32 | None, int]] = []
    if fee_payment > 0:
        ordered.append((fee_puzzle_hash, fee_payment, None, 0))
    for farmer in farmers:
        if farmer.launcher_id in amounts:
            ordered.append((farmer.puzzle_hash, amounts[farmer.launcher_id], farmer.launcher_id, farmer.points))
    payments = tuple(
        PlannedPayment(
            puzzle_hash=ph, amount=amount, launcher_id=launcher, points=points, batch_index=i // max_additions
        )
        for i, (ph, amount, launcher, points) in enumerate(ordered)
    )
    batches = _batch_count(len(payments), max_additions)  # <= the estimate; unused reserved fees join the remainder
    batch_fees = tuple(blockchain_fee for _ in range(batches))
    farmer_total = sum(amounts.values())
    plan = PayoutPlan(
        total=total,
        pool_fee=fee_payment,
        blockchain_fees=sum(batch_fees),
        farmer_total=farmer_total,
        remainder=total - farmer_total - fee_payment - sum(batch_fees),
        payments=payments,
        batch_fees=batch_fees,
        carried=tuple(carried),
    )
    plan.check()
    return plan


def merged_additions(payments: Sequence[tuple[bytes32, int]]) -> list[tuple[bytes32, int]]:
    """Additions of one transaction, one per puzzle hash: two equal (puzzle hash, amount) outputs of one spend would be
    the same coin, which the chain refuses. Farmers sharing a payout address are paid with one coin."""
    merged: dict[bytes32, int] = {}
    for puzzle_hash, amount in payments:
        merged[puzzle_hash] = merged.get(puzzle_hash, 0) + amount
    return sorted(merged.items(), key=lambda item: bytes(item[0]))
