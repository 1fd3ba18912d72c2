"""``python -m pool ledger``: the operator's books from a real store, run as a real subprocess."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from fractions import Fraction
from pathlib import Path

import yaml

from pool.chia_adapter import AugSchemeMPL, Coin, CoinSpend, PoolState, bytes32, std_hash, uint8, uint32, uint64
from pool.payouts.split import FarmerShare, Payable, plan_distribution, plan_payments
from pool.store.models import (
    ClaimStatus,
    Distribution,
    DistributionShare,
    FarmerRecord,
    Payment,
    PayoutRound,
    RewardClaim,
)
from pool.store.sqlite import SqlitePoolStore

REPO = Path(__file__).resolve().parents[2]
XCH = 10**12


def _h(label: str) -> bytes32:
    return std_hash(label.encode())


def _farmer(seed: int, points: int) -> FarmerRecord:
    from chia_rs import Program

    key = AugSchemeMPL.key_gen(bytes([seed]) * 32).get_g1()
    coin = Coin(_h(f"parent {seed}"), _h(f"singleton {seed}"), uint64(1))
    return FarmerRecord(
        launcher_id=_h(f"launcher {seed}"),
        p2_singleton_puzzle_hash=_h(f"p2 {seed}"),
        delay_time=604800,
        delay_puzzle_hash=_h(f"delay {seed}"),
        authentication_public_key=key,
        singleton_tip=CoinSpend(coin, Program.to(1), Program.to(0)),
        singleton_tip_state=PoolState(uint8(1), uint8(3), _h("target"), key, "https://pool", uint32(100)),
        difficulty=1,
        payout_instructions=_h(f"payout {seed}").hex(),
        payout_puzzle_hash=_h(f"payout {seed}"),
        is_pool_member=True,
        points=points,
        joined_at=1_000,
    )


async def _fill(path: Path) -> None:
    """docs/ledger.md's worked example: 1.75 XCH claimed, fee 1%, min_payment 0.5 XCH, blockchain fee 0.0001 XCH."""
    store = SqlitePoolStore(path)
    await store.open()
    try:
        a, b = _farmer(1, 300), _farmer(2, 100)
        await store.add_farmer(a)
        await store.add_farmer(b)
        claim = RewardClaim(_h("coin"), a.launcher_id, 175 * XCH // 100, 10, _h("bundle"), ClaimStatus.SUBMITTED, 1, 10)
        await store.add_reward_claim(claim)
        await store.update_reward_claim(claim.coin_id, ClaimStatus.CONFIRMED, confirmed_height=12)
        shares = [FarmerShare(f.launcher_id, f.points, f.points) for f in (a, b)]
        plan = plan_distribution((await store.ledger()).undistributed, Fraction(1, 100), shares)
        assert plan is not None
        await store.distribute(
            Distribution(2_000, "proportional", plan.total, plan.pool_fee, plan.farmer_total, plan.remainder),
            [DistributionShare(s.launcher_id, s.amount, s.points) for s in plan.shares],
        )
        farmers = await store.list_farmers()
        payments = plan_payments(
            [Payable(f.launcher_id, f.payout_puzzle_hash, f.owed) for f in farmers],
            min_payment=XCH // 2,
            pool_fee_share=(await store.ledger()).pool_fee_share,
            fee_reserve=0,
            blockchain_fee=XCH // 10_000,
            max_additions=400,
            fee_puzzle_hash=_h("fee address"),
        )
        assert payments is not None
        await store.create_payout_round(
            PayoutRound(
                3_000,
                "proportional",
                payments.total,
                payments.pool_fee,
                payments.blockchain_fees,
                payments.farmer_total,
            ),
            [Payment(p.puzzle_hash, p.amount, p.launcher_id, 0, p.batch_index) for p in payments.payments],
            payments.batch_fees,
        )
    finally:
        await store.close()


def _config(tmp_path: Path, store_path: Path) -> Path:
    data = yaml.safe_load((REPO / "config.yaml").read_text())
    data["store"]["path"] = str(store_path)
    data["chain"]["chia_root"] = str(tmp_path / "no-chia-root")
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def _ledger(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pool", "ledger", *args], cwd=REPO, capture_output=True, text=True, timeout=120
    )


def test_books_show_the_worked_example_to_the_mojo(tmp_path: Path) -> None:
    store_path = tmp_path / "pool.sqlite"
    asyncio.run(_fill(store_path))
    config = _config(tmp_path, store_path)

    result = _ledger("--config", str(config), "--json", "--no-wallet")
    assert result.returncode == 0, result.stderr
    books = json.loads(result.stdout)
    assert books["balanced"] is True
    assert books["confirmed_claims"] == 1_750_000_000_000
    assert books["pool_fee_earned"] == 17_500_000_000
    assert books["farmer_payments"] == 1_299_375_000_000  # A, in flight
    assert books["farmer_payments_in_flight"] == 1_299_375_000_000
    assert books["owed"] == 433_125_000_000  # B waits for min_payment
    assert books["pool_fee_payments"] == 17_400_000_000
    assert books["blockchain_fees"] == 100_000_000
    assert books["pool_fee_share"] == 0 and books["undistributed"] == 0
    assert books["wallet"]["spendable"] is None
    (round_,) = books["rounds"]
    assert round_["status"] == "open" and [b["status"] for b in round_["batches"]] == ["pending"]

    text = _ledger("--config", str(config))  # the wallet cannot be reached: the books still print
    assert text.returncode == 0, text.stderr
    assert "balanced" in text.stdout and "NOT BALANCED" not in text.stdout
    assert "unreachable" in text.stdout and "Traceback" not in text.stderr
    assert "0.433125000000 XCH" in text.stdout  # B's owed balance


def test_books_without_a_database_name_the_key(tmp_path: Path) -> None:
    config = _config(tmp_path, tmp_path / "missing.sqlite")
    result = _ledger("--config", str(config))
    assert result.returncode == 2
    assert "store.path" in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "missing.sqlite").exists()
