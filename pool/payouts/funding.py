"""The operator's own coins given to the pool fee share (``python -m pool ledger fund-fees``).

Absorbs and payments pay their blockchain fees from the pool's fee share, which is empty until the first
distribution: a new pool, or one whose share a fee storm used up, would claim without fees and wait in a full
mempool. The operator can fund the share from coins of its own that are already in the pool wallet. Only coins the
ledger does not count are accepted (the wallet's spendable balance beyond what the ledger says it holds, less every
reward whose claim is not settled yet: an absorbed reward reaches the wallet before its claim is credited), so funding
never turns farmers' money into fees and never makes the books claim mojos the wallet does not have. What the fees
do not use is paid to the fee address with the pool fee, like the rest of the share.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from pool.payouts.books import MOJO_PER_XCH
from pool.store.abstract import AbstractPoolStore, InsufficientFunds

_AMOUNT = re.compile(r"^(?P<whole>\d+)(?:\.(?P<fraction>\d{1,12}))?(?P<xch>\s*xch)?$", re.IGNORECASE)


class FundingRefused(Exception):
    """The wallet does not hold the amount beyond the ledger's money, or the amount is not a positive number."""


@dataclass(frozen=True)
class Funding:
    amount: int
    surplus_before: int  # the wallet's coins beyond the ledger's and the unsettled claims', before this funding
    pool_fee_share: int  # the share after it


def parse_amount(text: str) -> int:
    """Mojos from ``1000000`` (mojos) or ``0.25xch`` (exact: no float ever touches it)."""
    match = _AMOUNT.match(text.strip())
    if match is None:
        raise FundingRefused(f"amount {text!r}: give mojos (1000000) or XCH with its unit (0.25xch)")
    if match["xch"] is None:
        if match["fraction"] is not None:
            raise FundingRefused(f"amount {text!r}: mojos are whole; write 0.25xch for XCH")
        amount = int(match["whole"])
    else:
        fraction = (match["fraction"] or "").ljust(12, "0")
        amount = int(match["whole"]) * MOJO_PER_XCH + int(fraction)
    if amount <= 0:
        raise FundingRefused(f"amount {text!r}: must be more than zero")
    return amount


async def fund_fees(store: AbstractPoolStore, wallet_spendable: int, amount: int, reference: str) -> Funding:
    """Record the funding if the wallet holds ``amount`` beyond the ledger's money; raises FundingRefused."""
    try:
        surplus = await store.fund_fees(amount, reference, wallet_spendable=wallet_spendable)
    except InsufficientFunds as exc:
        raise FundingRefused(str(exc)) from None
    assert surplus is not None  # checked against the wallet's balance
    return Funding(amount=amount, surplus_before=surplus, pool_fee_share=(await store.ledger()).pool_fee_share)
