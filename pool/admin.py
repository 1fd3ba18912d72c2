"""The operator's commands over the store (``python -m pool farmers|difficulty|payments|claims|export``): what they
read or change, and how they print it. Plain functions of an open store; __main__.py parses the command line, opens
the store and prints what these return."""

from __future__ import annotations

import csv
import io
import time
from collections.abc import Iterable, Sequence

from pool.chia_adapter import bytes32
from pool.payouts.books import xch
from pool.store.abstract import AbstractPoolStore, FarmerNotFound, StoreError
from pool.store.models import ClaimStatus, FarmerChange, FarmerRecord, PaymentLine, RewardClaim

HISTORY_SHOWN = 20  # changes `farmers show` prints (`farmers history` prints more)


class AdminRefused(StoreError):
    """What the operator asked for cannot be done (an unknown farmer, a round that does not exist)."""


def parse_launcher_id(text: str) -> bytes32:
    """A launcher id as the operator pastes it: 64 hex digits, with or without 0x (ValueError otherwise)."""
    digits = text[2:] if text.lower().startswith("0x") else text
    if len(digits) != 64:
        raise ValueError(f"a launcher id is 64 hex digits, got {len(digits)}")
    return bytes32(bytes.fromhex(digits))


def when(moment: int | None) -> str:
    """A unix time as the operator reads it (UTC)."""
    return "-" if moment is None else time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(moment))


def mojos(amount: int) -> str:
    """An amount in mojos and in XCH."""
    return f"{amount} mojos ({xch(amount)})"


async def farmer_of(store: AbstractPoolStore, launcher_id: bytes32) -> FarmerRecord:
    farmer = await store.get_farmer(launcher_id)
    if farmer is None:
        raise AdminRefused(f"no farmer with launcher id {launcher_id.hex()} in this pool")
    return farmer


def farmer_lines(farmers: Sequence[FarmerRecord]) -> list[str]:
    """``farmers list``: one line a farmer."""
    lines = [f"{'launcher id':<64}  {'joined':<23}  {'difficulty':>10}  {'points':>10}  {'owed (mojos)':>15}  standing"]
    for farmer in farmers:
        standing = "member" if farmer.is_pool_member else "not a member"
        if farmer.banned_at is not None:
            standing += f", banned since {when(farmer.banned_at)}: {farmer.ban_reason}"
        lines.append(
            f"{farmer.launcher_id.hex()}  {when(farmer.joined_at):<23}  {farmer.difficulty:>10}  {farmer.points:>10}  "
            f"{farmer.owed:>15}  {standing}"
        )
    lines.append(f"{len(farmers)} farmer(s)")
    return lines


def farmer_detail(farmer: FarmerRecord, history: Sequence[FarmerChange]) -> list[str]:
    """``farmers show``: every field the operator asks about, then the newest changes."""
    pending = (
        "none"
        if farmer.pending_difficulty is None
        else f"{farmer.pending_difficulty} from {when(farmer.pending_difficulty_at)}"
    )
    banned = "no" if farmer.banned_at is None else f"since {when(farmer.banned_at)}: {farmer.ban_reason}"
    lines = [
        f"launcher id             {farmer.launcher_id.hex()}",
        f"joined                  {when(farmer.joined_at)}",
        f"pool member             {'yes' if farmer.is_pool_member else 'no'}",
        f"banned                  {banned}",
        f"difficulty              {farmer.difficulty} (since {when(farmer.difficulty_since or None)})",
        f"pending difficulty      {pending}",
        f"points                  {farmer.points}",
        f"owed                    {mojos(farmer.owed)}",
        f"payout instructions     {farmer.payout_instructions}",
        f"payout puzzle hash      {farmer.payout_puzzle_hash.hex()}",
        f"authentication key      {bytes(farmer.authentication_public_key).hex()}",
        f"p2 singleton puzzle     {farmer.p2_singleton_puzzle_hash.hex()}",
        "",
        "history (newest first):",
    ]
    return lines + history_lines(history)


def history_lines(history: Iterable[FarmerChange]) -> list[str]:
    lines = [f"{when(change.at)}  {change.describe()}" for change in history]
    return lines or ["(none)"]


def payment_lines(lines: Sequence[PaymentLine]) -> list[str]:
    """``payments list``: a payment a line, newest first."""
    out = [
        f"{'id':>6}  {'round':>5}  {'batch':>5}  {'recorded':<23}  {'to':<64}  {'amount (mojos)':>15}  "
        f"{'XCH':>20}  {'status':<9}  transaction"
    ]
    for line in lines:
        payment = line.payment
        to = "the pool fee address" if payment.launcher_id is None else payment.launcher_id.hex()
        tx = "-" if line.tx_id is None else line.tx_id.hex()
        out.append(
            f"{payment.id:>6}  {payment.round_id:>5}  {payment.batch_index:>5}  {when(line.created_at):<23}  "
            f"{to:<64}  {payment.amount:>15}  {xch(payment.amount):>20}  {line.batch_status.value:<9}  {tx}"
        )
    return out


async def round_detail(store: AbstractPoolStore, round_id: int) -> list[str]:
    """``payments show``: a payout round, its batches with every transaction version, and its payments."""
    payout_round = await store.get_round(round_id)
    if payout_round is None:
        raise AdminRefused(f"no payout round {round_id}")
    lines = [
        f"round {round_id}: {payout_round.status.value}, recorded {when(payout_round.created_at)}",
        f"  paid to farmers         {mojos(payout_round.farmer_total)}",
        f"  pool fee                {mojos(payout_round.pool_fee)}",
        f"  blockchain fees         {mojos(payout_round.blockchain_fees)}",
        f"  total                   {mojos(payout_round.total)}",
    ]
    for batch in await store.batches(round_id):
        confirmed = "" if batch.confirmed_height is None else f" at height {batch.confirmed_height}"
        lines.append(f"batch {batch.index}: {batch.status.value}{confirmed}, fee {mojos(batch.fee)}")
        assert batch.id is not None
        for version in await store.batch_versions(batch.id):
            lines.append(
                f"  transaction {version.tx_id.hex()} (version {version.version}, fee {version.fee}, "
                f"{when(version.created_at)})"
            )
        for payment in await store.payments(round_id=round_id, batch_index=batch.index):
            to = "pool fee address" if payment.launcher_id is None else f"farmer {payment.launcher_id.hex()}"
            lines.append(f"  pays {mojos(payment.amount)} to {to} at puzzle hash {payment.puzzle_hash.hex()}")
    return lines


def claim_lines(claims: Sequence[RewardClaim]) -> list[str]:
    """``claims list``: a reward claim a line, newest reward coin first."""
    out = [
        f"{'reward coin':<64}  {'height':>8}  {'farmer':<64}  {'amount (mojos)':>15}  {'XCH':>20}  "
        f"{'status':<9}  {'fee':>10}  absorb spend"
    ]
    for claim in claims:
        bundle = "-" if claim.spend_bundle_name is None else claim.spend_bundle_name.hex()
        out.append(
            f"{claim.coin_id.hex()}  {claim.coin_height:>8}  {claim.launcher_id.hex()}  {claim.amount:>15}  "
            f"{xch(claim.amount):>20}  {claim.status.value:<9}  {claim.fee:>10}  {bundle}"
        )
    return out


def claim_status(text: str | None) -> ClaimStatus | None:
    return None if text is None else ClaimStatus(text)


async def set_difficulty(store: AbstractPoolStore, launcher_id: bytes32, difficulty: int, now: int) -> int:
    """The operator's difficulty, in force from now on; returns the one it replaces."""
    farmer = await farmer_of(store, launcher_id)
    try:
        await store.set_difficulty(launcher_id, difficulty, now)
    except FarmerNotFound:  # pragma: no cover - removed between the read and the write
        raise AdminRefused(f"no farmer with launcher id {launcher_id.hex()} in this pool") from None
    return farmer.difficulty_at(now)


async def partials_csv(store: AbstractPoolStore, since: int, until: int) -> str:
    """``export partials``: per UTC day, farmer and outcome, the partials (pruned ones from their hourly counts) and
    the points they are worth."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["day", "launcher_id", "outcome", "partials", "points"])
    for row in await store.daily_partials(since, until):
        writer.writerow(
            [time.strftime("%Y-%m-%d", time.gmtime(row.day)), row.launcher_id.hex(), row.outcome, row.count, row.points]
        )
    return out.getvalue()


async def payments_csv(store: AbstractPoolStore, since: int, until: int, page: int = 1_000) -> str:
    """``export payments``: every payment recorded in ``[since, until)``, oldest first, amounts in mojos."""
    lines: list[PaymentLine] = []
    offset = 0
    while True:  # newest first, a page at a time, until past ``since``
        chunk = await store.payment_lines(page, offset)
        lines += [line for line in chunk if since <= line.created_at < until]
        if len(chunk) < page or chunk[-1].created_at < since:
            break
        offset += page
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(
        [
            "recorded_at",
            "payment_id",
            "round_id",
            "batch_index",
            "launcher_id",
            "puzzle_hash",
            "amount_mojos",
            "batch_status",
            "tx_id",
            "confirmed_height",
        ]
    )
    for line in reversed(lines):
        payment = line.payment
        writer.writerow(
            [
                time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(line.created_at)),
                payment.id,
                payment.round_id,
                payment.batch_index,
                "" if payment.launcher_id is None else payment.launcher_id.hex(),
                payment.puzzle_hash.hex(),
                payment.amount,
                line.batch_status.value,
                "" if line.tx_id is None else line.tx_id.hex(),
                "" if line.confirmed_height is None else line.confirmed_height,
            ]
        )
    return out.getvalue()
