"""Property tests of the payout split: every mojo accounted for, no negative amounts, dust carried, exact fee."""

from __future__ import annotations

from fractions import Fraction

from hypothesis import given, settings
from hypothesis import strategies as st

from pool.chia_adapter import bytes32
from pool.payouts.split import FarmerShare, merged_additions, plan_payout

FEE_PH = bytes32(b"\xfe" * 32)


def _farmer(i: int, weight: int, same_address: bool = False) -> FarmerShare:
    launcher = bytes32(i.to_bytes(32, "big"))
    ph = bytes32(b"\x01" * 32) if same_address else bytes32((10_000 + i).to_bytes(32, "big"))
    return FarmerShare(launcher_id=launcher, puzzle_hash=ph, weight=weight, points=weight)


farmers_strategy = st.lists(st.integers(min_value=0, max_value=10**9), min_size=0, max_size=30).map(
    lambda weights: [_farmer(i, w) for i, w in enumerate(weights)]
)
fees = st.fractions(min_value=0, max_value=1, max_denominator=10_000)


@settings(max_examples=400, deadline=None)
@given(
    total=st.integers(min_value=0, max_value=10**16),
    fee=fees,
    farmers=farmers_strategy,
    blockchain_fee=st.integers(min_value=0, max_value=10**9),
    max_additions=st.integers(min_value=1, max_value=7),
    min_payment=st.integers(min_value=0, max_value=10**10),
)
def test_split_accounts_for_every_mojo(
    total: int, fee: Fraction, farmers: list[FarmerShare], blockchain_fee: int, max_additions: int, min_payment: int
) -> None:
    plan = plan_payout(total, fee, FEE_PH, farmers, blockchain_fee, max_additions, min_payment)
    if plan is None:
        return
    paid = sum(p.amount for p in plan.payments)
    assert paid + plan.blockchain_fees + plan.remainder == total
    assert plan.remainder >= 0 and plan.pool_fee >= 0 and plan.blockchain_fees >= 0
    assert all(p.amount > 0 for p in plan.payments)
    exact_fee = total * fee.numerator // fee.denominator
    fee_covers_chain = exact_fee >= plan.blockchain_fees
    # The pool fee is exact; the blockchain fees come out of it only when it covers them.
    assert plan.pool_fee <= exact_fee
    if not fee_covers_chain:
        assert plan.pool_fee == exact_fee
    assert sum(1 for p in plan.payments if p.launcher_id is None) <= 1
    # Batches: at most max_additions each, one fee per batch.
    for index in range(len(plan.batch_fees)):
        assert 1 <= sum(1 for p in plan.payments if p.batch_index == index) <= max_additions
    assert plan.blockchain_fees == len(plan.batch_fees) * blockchain_fee
    # Every farmer with weight is either paid (> 0, at least min_payment) or carried with its points.
    paid_farmers = {p.launcher_id: p for p in plan.payments if p.launcher_id is not None}
    for farmer in farmers:
        if farmer.weight == 0:
            assert farmer.launcher_id not in paid_farmers
        elif farmer.launcher_id in paid_farmers:
            payment = paid_farmers[farmer.launcher_id]
            assert payment.amount >= max(1, min_payment) and payment.points == farmer.points
            assert farmer.launcher_id not in plan.carried
        else:
            assert farmer.launcher_id in plan.carried


@settings(max_examples=200, deadline=None)
@given(
    total=st.integers(min_value=1, max_value=10**15),
    fee=fees,
    weights=st.lists(st.integers(min_value=1, max_value=10**6), min_size=1, max_size=20),
)
def test_split_is_proportional_to_points(total: int, fee: Fraction, weights: list[int]) -> None:
    farmers = [_farmer(i, w) for i, w in enumerate(weights)]
    plan = plan_payout(total, fee, FEE_PH, farmers, blockchain_fee=0, max_additions=400, min_payment=0)
    if plan is None:
        return
    share = total - total * fee.numerator // fee.denominator
    total_weight = sum(weights)
    by_farmer = {p.launcher_id: p.amount for p in plan.payments if p.launcher_id is not None}
    for farmer in farmers:
        assert by_farmer.get(farmer.launcher_id, 0) == share * farmer.weight // total_weight
    # Rounding loses less than one mojo per farmer.
    assert plan.remainder < len(farmers) + 1


def test_fee_is_exact_with_fractions() -> None:
    plan = plan_payout(10**12 + 99, Fraction(1, 100), FEE_PH, [_farmer(1, 5)], 0, 400, 0)
    assert plan is not None
    assert plan.pool_fee == (10**12 + 99) // 100
    assert plan.farmer_total + plan.pool_fee + plan.remainder == 10**12 + 99


def test_blockchain_fee_larger_than_pool_fee_comes_from_farmers() -> None:
    plan = plan_payout(1_000_000, Fraction(1, 1000), FEE_PH, [_farmer(1, 1), _farmer(2, 3)], 5_000, 400, 0)
    assert plan is not None
    assert plan.pool_fee == 1_000  # the whole exact fee is paid: the operator cannot be drained by chain fees
    assert plan.blockchain_fees == 5_000
    assert plan.farmer_total == (1_000_000 - 1_000 - 5_000) // 4 * 1 + (1_000_000 - 1_000 - 5_000) * 3 // 4


def test_blockchain_fee_from_pool_fee_when_it_covers_it() -> None:
    plan = plan_payout(1_000_000, Fraction(1, 10), FEE_PH, [_farmer(1, 1)], 5_000, 400, 0)
    assert plan is not None
    assert (plan.pool_fee, plan.blockchain_fees, plan.farmer_total) == (95_000, 5_000, 900_000)


def test_dust_is_carried_with_its_points() -> None:
    plan = plan_payout(1_000, Fraction(0), FEE_PH, [_farmer(1, 999), _farmer(2, 1)], 0, 400, min_payment=10)
    assert plan is not None
    assert [p.launcher_id for p in plan.payments] == [bytes32((1).to_bytes(32, "big"))]
    assert plan.carried == (bytes32((2).to_bytes(32, "big")),)
    assert plan.remainder == 1_000 - 999


def test_nothing_to_pay_without_points_or_balance() -> None:
    assert plan_payout(0, Fraction(0), FEE_PH, [_farmer(1, 5)], 0, 400, 0) is None
    assert plan_payout(10**9, Fraction(0), FEE_PH, [_farmer(1, 0)], 0, 400, 0) is None
    assert plan_payout(10**9, Fraction(0), FEE_PH, [], 0, 400, 0) is None


def test_shared_payout_address_is_one_output() -> None:
    a, b = _farmer(1, 1, same_address=True), _farmer(2, 1, same_address=True)
    plan = plan_payout(10, Fraction(0), FEE_PH, [a, b], 0, 400, 0)
    assert plan is not None
    merged = merged_additions([(p.puzzle_hash, p.amount) for p in plan.payments])
    assert merged == [(a.puzzle_hash, 10)]
