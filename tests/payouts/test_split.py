"""plan_distribution and plan_payments: property tests of their invariants, and tables of hand-computed figures."""

from __future__ import annotations

from fractions import Fraction
from random import Random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pool.chia_adapter import bytes32
from pool.payouts.split import (
    DistributionPlan,
    FarmerShare,
    Payable,
    PaymentPlan,
    PlannedPayment,
    PlannedShare,
    merged_additions,
    plan_distribution,
    plan_payments,
)

FEE_PH = bytes32(b"\xfe" * 32)
XCH_REWARD = 1_750_000_000_000


def launcher(i: int) -> bytes32:
    return bytes32(i.to_bytes(32, "big"))


def payout_address(i: int) -> bytes32:
    return bytes32((10_000 + i).to_bytes(32, "big"))


def farmer(i: int, weight: int, points: int | None = None) -> FarmerShare:
    return FarmerShare(launcher_id=launcher(i), weight=weight, points=weight if points is None else points)


def payable(i: int, owed: int, puzzle_hash: bytes32 | None = None) -> Payable:
    return Payable(launcher(i), payout_address(i) if puzzle_hash is None else puzzle_hash, owed)


def pay(
    owed: list[Payable],
    *,
    min_payment: int = 0,
    pool_fee_share: int = 0,
    fee_reserve: int = 0,
    blockchain_fee: int = 0,
    max_additions: int = 400,
) -> PaymentPlan | None:
    return plan_payments(
        owed,
        min_payment=min_payment,
        pool_fee_share=pool_fee_share,
        fee_reserve=fee_reserve,
        blockchain_fee=blockchain_fee,
        max_additions=max_additions,
        fee_puzzle_hash=FEE_PH,
    )


def ceil_div(a: int, b: int) -> int:
    return -(-a // b)


fees = st.fractions(min_value=0, max_value=1, max_denominator=10_000)
weighted_farmers = st.lists(
    st.tuples(st.integers(min_value=0, max_value=10**9), st.integers(min_value=0, max_value=10**9)), max_size=30
).map(lambda pairs: [farmer(i, weight, points) for i, (weight, points) in enumerate(pairs)])


# -- plan_distribution: properties --------------------------------------------------------------------------------
@settings(max_examples=400, deadline=None)
@given(available=st.integers(min_value=-5, max_value=10**16), fee=fees, farmers=weighted_farmers)
def test_a_distribution_shares_out_exactly_what_is_available(
    available: int, fee: Fraction, farmers: list[FarmerShare]
) -> None:
    plan = plan_distribution(available, fee, farmers)
    weighted = [f for f in farmers if f.weight > 0]
    total_weight = sum(f.weight for f in weighted)
    if available <= 0 or not weighted:
        assert plan is None
        return
    exact_fee = available * fee  # a Fraction: exact
    pool_fee = int(exact_fee)  # floor, for a non-negative Fraction
    farmers_share = available - pool_fee
    expected = {f.launcher_id: int(Fraction(farmers_share * f.weight, total_weight)) for f in weighted}
    if pool_fee == 0 and not any(expected.values()):
        assert plan is None  # everything rounds to nothing: the money waits, nobody loses points
        return
    assert plan is not None
    plan.check()
    assert plan.available == available
    assert plan.pool_fee == pool_fee and plan.pool_fee <= exact_fee < plan.pool_fee + 1
    assert plan.total + plan.remainder == available
    assert plan.pool_fee + plan.farmer_total == plan.total
    # Each farmer's share is the floor of its exact part of the farmers' share; one rounded to 0 is left out (and so
    # keeps its points); a farmer with no weight gets nothing and keeps its points.
    by_farmer = {s.launcher_id: s for s in plan.shares}
    assert set(by_farmer) == {launcher_id for launcher_id, amount in expected.items() if amount > 0}
    for f in farmers:
        if f.launcher_id in by_farmer:
            assert by_farmer[f.launcher_id].amount == expected[f.launcher_id]
            assert by_farmer[f.launcher_id].points == f.points
    # Rounding loses less than one mojo per farmer with weight, and the remainder stays undistributed.
    assert 0 <= plan.remainder < len(weighted)
    assert plan.remainder == farmers_share - plan.farmer_total


@settings(max_examples=100, deadline=None)
@given(
    available=st.integers(min_value=1, max_value=10**15),
    fee=st.one_of(
        st.fractions(max_value=Fraction(-1, 10**6)), st.fractions(min_value=Fraction(10**6 + 1, 10**6), max_value=50)
    ),
)
def test_a_fee_outside_zero_to_one_distributes_nothing(available: int, fee: Fraction) -> None:
    assert plan_distribution(available, fee, [farmer(1, 5)]) is None


@settings(max_examples=200, deadline=None)
@given(
    available=st.integers(min_value=1, max_value=10**16),
    fee=fees,
    farmers=weighted_farmers,
    order=st.randoms(use_true_random=False),
)
def test_a_distribution_does_not_depend_on_the_order_of_farmers(
    available: int, fee: Fraction, farmers: list[FarmerShare], order: Random
) -> None:
    shuffled = list(farmers)
    order.shuffle(shuffled)
    assert plan_distribution(available, fee, shuffled) == plan_distribution(available, fee, farmers)


# -- plan_distribution: figures -----------------------------------------------------------------------------------
def test_distribution_figures_by_hand() -> None:
    # 1 000 000 at 1 %: 10 000 pool fee; 990 000 split 3:1.
    plan = plan_distribution(1_000_000, Fraction(1, 100), [farmer(1, 3, points=30), farmer(2, 1, points=10)])
    assert plan == DistributionPlan(
        available=1_000_000,
        total=1_000_000,
        pool_fee=10_000,
        farmer_total=990_000,
        remainder=0,
        shares=(PlannedShare(launcher(1), 742_500, 30), PlannedShare(launcher(2), 247_500, 10)),
    )


def test_distribution_rounding_stays_undistributed() -> None:
    # 1 000 at 1/3: pool fee 333; 667 split in three is 222 each, 1 mojo left over for the next distribution.
    plan = plan_distribution(1_000, Fraction(1, 3), [farmer(1, 7), farmer(2, 7), farmer(3, 7)])
    assert plan is not None
    assert (plan.pool_fee, plan.farmer_total, plan.total, plan.remainder) == (333, 666, 999, 1)
    assert [s.amount for s in plan.shares] == [222, 222, 222]


def test_a_share_rounding_to_nothing_is_left_out_with_its_points() -> None:
    # 10 mojos, no fee, weights 1000:1 -> 9 and 0: the small farmer is not in the plan and keeps its points.
    plan = plan_distribution(10, Fraction(0), [farmer(1, 1_000), farmer(2, 1)])
    assert plan is not None
    assert plan.shares == (PlannedShare(launcher(1), 9, 1_000),)
    assert (plan.total, plan.remainder) == (9, 1)


def test_the_pool_fee_is_exact_with_fractions() -> None:
    plan = plan_distribution(XCH_REWARD, Fraction(1, 100), [farmer(1, 1)])
    assert plan is not None
    assert (plan.pool_fee, plan.farmer_total) == (17_500_000_000, 1_732_500_000_000)
    # 0.7 % of 10**12 + 99: floor(7 000 000 000.693) — a float 0.007 would give 6 999 999 999 or 7 000 000 000 by luck
    odd = plan_distribution(10**12 + 99, Fraction(7, 1_000), [farmer(1, 1)])
    assert odd is not None and odd.pool_fee == 7_000_000_000


def test_a_fee_of_one_gives_everything_to_the_pool_and_takes_no_points() -> None:
    plan = plan_distribution(500, Fraction(1), [farmer(1, 5)])
    assert plan is not None
    assert (plan.pool_fee, plan.farmer_total, plan.shares) == (500, 0, ())


def test_nothing_to_distribute() -> None:
    assert plan_distribution(0, Fraction(0), [farmer(1, 5)]) is None
    assert plan_distribution(10**9, Fraction(0), [farmer(1, 0)]) is None
    assert plan_distribution(10**9, Fraction(1, 10), []) is None
    assert plan_distribution(1, Fraction(0), [farmer(1, 1), farmer(2, 1)]) is None  # half a mojo each


# -- plan_payments: properties ------------------------------------------------------------------------------------
owed_balances = st.lists(
    st.one_of(st.integers(min_value=0, max_value=1_000), st.integers(min_value=0, max_value=10**13)), max_size=30
).map(lambda owed: [payable(i, amount) for i, amount in enumerate(owed)])
small_or_large = st.one_of(st.integers(min_value=0, max_value=1_000), st.integers(min_value=0, max_value=10**12))


@settings(max_examples=500, deadline=None)
@given(
    owed=owed_balances,
    min_payment=small_or_large,
    pool_fee_share=small_or_large,
    fee_reserve=small_or_large,
    blockchain_fee=small_or_large,
    max_additions=st.integers(min_value=1, max_value=7),
)
def test_a_payment_plan_pays_owed_balances_exactly_and_fees_only_from_the_pool_share(
    owed: list[Payable],
    min_payment: int,
    pool_fee_share: int,
    fee_reserve: int,
    blockchain_fee: int,
    max_additions: int,
) -> None:
    plan = pay(
        owed,
        min_payment=min_payment,
        pool_fee_share=pool_fee_share,
        fee_reserve=fee_reserve,
        blockchain_fee=blockchain_fee,
        max_additions=max_additions,
    )
    due = {p.launcher_id: p for p in owed if p.owed >= max(min_payment, 1)}
    if not due:
        assert plan is None
        return
    assert plan is not None
    plan.check(owed, pool_fee_share)

    # Every farmer due is paid exactly its whole owed balance, once, at its address; nobody else is paid.
    farmer_payments = [p for p in plan.payments if p.launcher_id is not None]
    paid_farmers = [p.launcher_id for p in farmer_payments]
    assert len(paid_farmers) == len(set(paid_farmers)) and set(paid_farmers) == set(due)
    for payment in farmer_payments:
        assert payment.launcher_id is not None
        assert (payment.amount, payment.puzzle_hash) == (
            due[payment.launcher_id].owed,
            due[payment.launcher_id].puzzle_hash,
        )
    assert plan.farmer_total == sum(p.owed for p in due.values())

    # Fees never come from what farmers are owed: the round's fees and fee-address payment fit in the pool's share.
    fee_address = [p for p in plan.payments if p.launcher_id is None]
    assert len(fee_address) <= 1 and all(p.puzzle_hash == FEE_PH for p in fee_address)
    assert plan.pool_fee >= 0 and plan.blockchain_fees >= 0
    assert plan.pool_fee + plan.blockchain_fees <= pool_fee_share
    assert plan.total == plan.farmer_total + plan.pool_fee + plan.blockchain_fees
    # The fee address is paid only what is beyond the reserve and the fees: what stays in the share is the reserve.
    if plan.pool_fee > 0:
        assert pool_fee_share - plan.pool_fee - plan.blockchain_fees == fee_reserve

    # One fee per transaction: the same for each, never above blockchain_fee, and in full when the share allows.
    batches = len(plan.batch_fees)
    assert len(set(plan.batch_fees)) == 1
    per_batch = plan.batch_fees[0]
    assert 0 <= per_batch <= blockchain_fee
    if pool_fee_share >= blockchain_fee * batches:
        assert per_batch == blockchain_fee

    # Batching: at most max_additions payments per transaction, none empty, in order, as few as possible.
    assert batches == ceil_div(len(plan.payments), max_additions)
    sizes = [sum(1 for p in plan.payments if p.batch_index == index) for index in range(batches)]
    assert all(1 <= size <= max_additions for size in sizes)
    assert [p.batch_index for p in plan.payments] == sorted(p.batch_index for p in plan.payments)


@settings(max_examples=200, deadline=None)
@given(owed=owed_balances, min_payment=small_or_large, order=st.randoms(use_true_random=False))
def test_a_payment_plan_does_not_depend_on_the_order_of_balances(
    owed: list[Payable], min_payment: int, order: Random
) -> None:
    shuffled = list(owed)
    order.shuffle(shuffled)
    kwargs = {"min_payment": min_payment, "pool_fee_share": 5_000, "blockchain_fee": 100, "max_additions": 3}
    assert pay(shuffled, **kwargs) == pay(owed, **kwargs)


# -- plan_payments: figures ---------------------------------------------------------------------------------------
def test_payment_figures_by_hand() -> None:
    # Owed 600, 5, 300; min_payment 100: 1 and 3 are paid, 2's 5 mojos wait. Share 50, reserve 10, fee 7 a batch,
    # 2 additions a batch: 3 additions (fee address + 2 farmers) -> 2 batches -> 14 fees -> 50 - 10 - 14 = 26 to the fee
    # address, which goes first.
    plan = pay(
        [payable(1, 600), payable(2, 5), payable(3, 300)],
        min_payment=100,
        pool_fee_share=50,
        fee_reserve=10,
        blockchain_fee=7,
        max_additions=2,
    )
    assert plan == PaymentPlan(
        total=600 + 300 + 26 + 14,
        pool_fee=26,
        blockchain_fees=14,
        farmer_total=900,
        payments=(
            PlannedPayment(FEE_PH, 26, None, 0),
            PlannedPayment(payout_address(1), 600, launcher(1), 0),
            PlannedPayment(payout_address(3), 300, launcher(3), 1),
        ),
        batch_fees=(7, 7),
    )


def test_a_share_too_small_for_the_fee_pays_what_it_has_and_farmers_in_full() -> None:
    plan = pay([payable(1, 600)], pool_fee_share=5, blockchain_fee=7)
    assert plan is not None
    assert (plan.farmer_total, plan.pool_fee, plan.batch_fees, plan.total) == (600, 0, (5,), 605)
    empty = pay([payable(1, 600)], pool_fee_share=0, blockchain_fee=7)
    assert empty is not None
    assert (empty.farmer_total, empty.pool_fee, empty.batch_fees, empty.total) == (600, 0, (0,), 600)


def test_the_reserve_pays_fees_but_is_not_paid_to_the_fee_address() -> None:
    plan = pay([payable(1, 600)], pool_fee_share=100, fee_reserve=100, blockchain_fee=30)
    assert plan is not None
    assert (plan.pool_fee, plan.batch_fees) == (0, (30,))
    above = pay([payable(1, 600)], pool_fee_share=131, fee_reserve=100, blockchain_fee=30)
    assert above is not None
    assert (above.pool_fee, above.batch_fees) == (1, (30,))


def test_without_a_fee_payment_the_batches_are_counted_for_farmers_only() -> None:
    # 4 farmers, 2 additions a batch: with a fee-address payment 3 batches, without it 2 (and 2 fees, not 3).
    owed = [payable(i, 1_000) for i in range(4)]
    plan = pay(owed, pool_fee_share=30, fee_reserve=0, blockchain_fee=10, max_additions=2)
    assert plan is not None
    assert (plan.pool_fee, plan.batch_fees) == (0, (10, 10))
    with_fee_payment = pay(owed, pool_fee_share=31, fee_reserve=0, blockchain_fee=10, max_additions=2)
    assert with_fee_payment is not None
    assert (with_fee_payment.pool_fee, with_fee_payment.batch_fees) == (1, (10, 10, 10))


def test_nobody_due() -> None:
    assert pay([]) is None
    assert pay([payable(1, 0)]) is None  # min_payment 0 still pays at least one mojo
    assert pay([payable(1, 99), payable(2, 50)], min_payment=100, pool_fee_share=10**9) is None
    plan = pay([payable(1, 1), payable(2, 0)])
    assert plan is not None and [p.launcher_id for p in plan.payments] == [launcher(1)]


def test_max_additions_must_be_positive() -> None:
    with pytest.raises(ValueError):
        pay([payable(1, 100)], max_additions=0)


def test_shared_payout_address_is_one_output() -> None:
    shared = bytes32(b"\x01" * 32)
    plan = pay([payable(1, 4, shared), payable(2, 6, shared)])
    assert plan is not None
    merged = merged_additions([(p.puzzle_hash, p.amount) for p in plan.payments if p.batch_index == 0])
    assert merged == [(shared, 10)]
    assert merged_additions([(FEE_PH, 3), (shared, 2), (FEE_PH, 4)]) == sorted([(shared, 2), (FEE_PH, 7)])


def test_a_farmers_own_minimum_holds_its_payment_back() -> None:
    patient = Payable(launcher(1), payout_address(1), 500, min_payment=1_000)
    plan = pay([patient, payable(2, 500)], min_payment=100, pool_fee_share=10**9)
    assert plan is not None and [p.launcher_id for p in plan.payments if p.launcher_id] == [launcher(2)]
    grown = Payable(launcher(1), payout_address(1), 1_000, min_payment=1_000)
    plan = pay([grown], min_payment=100, pool_fee_share=10**9)
    assert plan is not None and [p.amount for p in plan.payments if p.launcher_id] == [1_000]
