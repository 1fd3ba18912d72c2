"""The pool's books for its operator: where every mojo of the confirmed claims went, and the wallet against it.

Read-only: built from the store (and, when reachable, the wallet's spendable balance) by ``python -m pool ledger``
and GET /status. Every total is an aggregate of the database read on its own connection (the ledger summary in one
statement: one snapshot), so the books never hold up the store's writer nor read every row into the pool.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pool.store.abstract import AbstractPoolStore
from pool.store.models import BatchStatus, ClaimStatus, LedgerSummary, RoundStatus

MOJO_PER_XCH = 10**12


@dataclass(frozen=True)
class Books:
    summary: LedgerSummary
    claims: dict[str, tuple[int, int]]  # status -> (count, mojos)
    pool_fee_earned: int  # from distributions, before blockchain fees
    distributions: list[dict[str, Any]]
    rounds: list[dict[str, Any]]
    owed: list[dict[str, Any]]  # farmers with an owed balance
    wallet_spendable: int | None  # None: the wallet was not reachable
    wallet_error: str | None

    @property
    def wallet_difference(self) -> int | None:
        """Wallet minus what the ledger says it should hold: negative is a shortfall (payouts wait), positive a
        surplus (funds that are not the farmers': operator funds, donations, dust, claims not yet buried). Payments
        in flight are not counted as held: while a round is open the wallet may still hold them (a surplus)."""
        if self.wallet_spendable is None:
            return None
        return self.wallet_spendable - self.summary.wallet_should_hold


async def build_books(
    store: AbstractPoolStore,
    wallet_spendable: int | None,
    wallet_error: str | None = None,
    limit: int = 20,
    *,
    owed_limit: int | None = None,
    with_payments: bool = True,
) -> Books:
    """The books from aggregates of the store and its ``limit`` latest distributions and rounds (each round with its
    payments unless ``with_payments`` is False); the owed balances, largest first, at most ``owed_limit``."""
    claims = {status.value: totals for status, totals in (await store.claim_totals()).items()}
    distributions = [
        {
            "id": d.id,
            "created_at": d.created_at,
            "scheme": d.scheme,
            "total": d.total,
            "pool_fee": d.pool_fee,
            "farmer_total": d.farmer_total,
            "remainder": d.remainder,
        }
        for d in await store.distributions(limit=limit)
    ]
    rounds: list[dict[str, Any]] = []
    for r in await store.rounds(limit=limit):
        assert r.id is not None
        batches = await store.batches(r.id)
        shown: dict[str, Any] = {
            "id": r.id,
            "created_at": r.created_at,
            "status": r.status.value,
            "farmer_total": r.farmer_total,
            "pool_fee": r.pool_fee,
            "blockchain_fees": r.blockchain_fees,
        }
        if with_payments:
            shown["payments"] = [
                {
                    "launcher_id": None if p.launcher_id is None else p.launcher_id.hex(),
                    "puzzle_hash": p.puzzle_hash.hex(),
                    "amount": p.amount,
                    "batch": p.batch_index,
                }
                for p in await store.payments(round_id=r.id)
            ]
        shown["batches"] = [
            {
                "index": b.index,
                "status": b.status.value,
                "fee": b.fee,
                "tx_id": None if b.tx_id is None else b.tx_id.hex(),
                "confirmed_height": b.confirmed_height,
            }
            for b in batches
        ]
        rounds.append(shown)
    owed = [
        {"launcher_id": o.launcher_id.hex(), "owed": o.owed, "payout_puzzle_hash": o.payout_puzzle_hash.hex()}
        for o in await store.owed_balances(owed_limit)
    ]
    return Books(
        summary=await store.ledger(),
        claims=claims,
        pool_fee_earned=await store.pool_fee_earned(),
        distributions=distributions,
        rounds=rounds,
        owed=owed,
        wallet_spendable=wallet_spendable,
        wallet_error=wallet_error,
    )


def books_json(books: Books) -> dict[str, Any]:
    s = books.summary
    return {
        "balanced": s.balanced,
        "confirmed_claims": s.confirmed_claims,
        "farmer_payments": s.farmer_payments,
        "farmer_payments_in_flight": s.farmer_payments_in_flight,
        "owed": s.owed,
        "pool_fee_earned": books.pool_fee_earned,
        "pool_fee_share": s.pool_fee_share,
        "pool_fee_payments": s.pool_fee_payments,
        "blockchain_fees": s.blockchain_fees,
        "undistributed": s.undistributed,
        "pre_ledger_excess": s.pre_ledger_excess,
        "operator_funding": s.operator_funding,
        "lost_rewards": s.lost_rewards,
        "claims": {status: {"count": c, "mojos": m} for status, (c, m) in books.claims.items()},
        "distributions": books.distributions,
        "rounds": books.rounds,
        "owed_balances": books.owed,
        "wallet": {
            "spendable": books.wallet_spendable,
            "ledger_holds": s.wallet_should_hold,
            "difference": books.wallet_difference,
            "error": books.wallet_error,
        },
    }


def xch(mojos: int) -> str:
    sign = "-" if mojos < 0 else ""
    whole, frac = divmod(abs(mojos), MOJO_PER_XCH)
    return f"{sign}{whole}.{frac:012d} XCH"


def format_books(books: Books) -> str:
    s = books.summary
    lines = ["== Ledger (every mojo of confirmed reward claims)"]
    rows = [
        ("confirmed reward claims", s.confirmed_claims),
        ("  paid to farmers", s.farmer_payments - s.farmer_payments_in_flight),
        ("  being paid to farmers", s.farmer_payments_in_flight),
        ("  owed to farmers", s.owed),
        ("  to the fee address", s.pool_fee_payments),
        ("  pool fee share kept", s.pool_fee_share),
        ("  blockchain fees", s.blockchain_fees),
        ("  undistributed", s.undistributed),
    ]
    if s.pre_ledger_excess:
        rows.append(("  less: paid before the ledger beyond claims", -s.pre_ledger_excess))
    if s.operator_funding:
        rows.append(("  less: operator's fee funding", -s.operator_funding))
    lines += [f"{label:<28}{xch(amount):>26}  ({amount} mojos)" for label, amount in rows]
    verdict = "balanced" if s.balanced else f"NOT BALANCED: accounted {s.accounted} mojos"
    lines.append(f"{'invariant':<28}{verdict:>26}")
    lines.append(f"{'pool fee earned':<28}{xch(books.pool_fee_earned):>26}  (before blockchain fees)")
    if s.lost_rewards:
        lines.append(
            f"{'rewards lost to the pool':<28}{xch(s.lost_rewards):>26}  (won by members, spent by their owners: "
            "never credited, not in the sums above)"
        )
    lines.append("")
    lines.append("== Claims")
    for status in ClaimStatus:
        count, amount = books.claims.get(status.value, (0, 0))
        lines.append(f"{status.value:<28}{count:>6} claim(s) {xch(amount):>26}")
    lines.append("")
    lines.append("== Wallet reconciliation")
    lines.append(
        f"{'ledger money in the wallet':<28}{xch(s.wallet_should_hold):>26}  (owed + pool share + undistributed)"
    )
    if books.wallet_spendable is None:
        lines.append(f"{'wallet':<28}unreachable: {books.wallet_error}")
    else:
        difference = books.wallet_difference
        assert difference is not None
        lines.append(f"{'wallet spendable':<28}{xch(books.wallet_spendable):>26}")
        what = "surplus (not farmers' money)" if difference >= 0 else "SHORTFALL: payouts wait"
        lines.append(f"{'difference':<28}{xch(difference):>26}  {what}")
    lines.append("")
    lines.append(f"== Distributions (latest {len(books.distributions)})")
    for d in books.distributions:
        lines.append(
            f"#{d['id']:<5} {d['scheme']:<12} total {xch(d['total'])}  pool fee {xch(d['pool_fee'])}  "
            f"farmers {xch(d['farmer_total'])}  left {d['remainder']} mojos"
        )
    lines.append("")
    lines.append(f"== Payout rounds (latest {len(books.rounds)})")
    for r in books.rounds:
        confirmed = sum(1 for b in r["batches"] if b["status"] == BatchStatus.CONFIRMED.value)
        state = "done" if r["status"] == RoundStatus.DONE.value else f"open, {confirmed}/{len(r['batches'])} confirmed"
        lines.append(
            f"#{r['id']:<5} {state:<24} farmers {xch(r['farmer_total'])}  fee address {xch(r['pool_fee'])}  "
            f"blockchain fees {r['blockchain_fees']} mojos"
        )
        for b in r["batches"]:
            lines.append(f"       batch {b['index']}: {b['status']:<10} fee {b['fee']:>12}  tx {b['tx_id'] or '-'}")
    lines.append("")
    lines.append(f"== Owed balances ({len(books.owed)} farmer(s))")
    for o in books.owed:
        lines.append(f"{o['launcher_id']}  {xch(o['owed'])}")
    return "\n".join(lines)
