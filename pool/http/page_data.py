"""What the farmer page and the pool page show, gathered from the store (and the node's peak for the plot filter).

Plain data for the templates (pool/http/templates/): amounts stay integer mojos until the template formats them.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from fractions import Fraction

from pool.chain.interface import ChainUnavailable
from pool.chia_adapter import PoolSingletonState, bytes32, encode_puzzle_hash
from pool.config import address_prefix_for
from pool.context import PoolContext
from pool.estimates import estimated_space
from pool.store.models import BatchStatus, ClaimStatus, FarmerRecord, PartialCount

DAY = 24 * 3600
HOUR = 3600
ACCEPTED = ("pending", "confirmed")  # outcomes of partials that earn points (pending ones once confirmed)
PALETTE = ("#c0392b", "#d35400", "#8e44ad", "#2c3e50", "#b7950b", "#7f8c8d", "#16a085", "#e84393")
ACCEPTED_COLOR = "#27ae60"

CHART_WIDTH = 720
CHART_HEIGHT = 160


@dataclass(frozen=True)
class Bar:
    x: float
    y: float
    width: float
    height: float
    color: str
    title: str


@dataclass(frozen=True)
class Chart:
    """An hourly bar chart over the last 24 h, laid out for inline SVG."""

    bars: list[Bar]
    ticks: list[tuple[float, str]]  # x, label (hours, UTC)
    maximum: int  # the y axis top
    width: int = CHART_WIDTH
    height: int = CHART_HEIGHT


@dataclass(frozen=True)
class RecentPartials:
    accepted: int
    refused: dict[str, int]  # reason -> count, most frequent first
    colors: dict[str, str]  # outcome -> bar color
    points: int  # points of the accepted partials
    chart: Chart
    points_chart: Chart


@dataclass(frozen=True)
class PayoutRow:
    created_at: int
    amount: int
    status: str  # the batch's: pending, submitted, confirmed
    tx_id: str | None
    confirmed_height: int | None


@dataclass(frozen=True)
class EarningRow:
    created_at: int
    points: int
    amount: int


@dataclass(frozen=True)
class HistoryRow:
    at: int
    change: str  # as a sentence


HISTORY_ROWS = 20  # the newest changes the farmer's page shows


@dataclass
class FarmerView:
    launcher_id: str
    payout_address: str
    payout_instructions: str
    is_pool_member: bool
    plotnft_state: str
    plotnft_targets_pool: bool
    difficulty: int
    pending_difficulty: int | None
    pending_difficulty_at: int | None
    points: int
    pool_points: int
    share_percent: str
    estimated_space: int
    owed: int
    joined_at: int
    partials: RecentPartials
    payouts: list[PayoutRow] = field(default_factory=list)
    earnings: list[EarningRow] = field(default_factory=list)
    paid_total: int = 0
    history: list[HistoryRow] = field(default_factory=list)


@dataclass
class RoundRow:
    created_at: int
    status: str
    farmer_total: int
    farmers_paid: int
    tx_ids: list[str]


@dataclass
class PoolView:
    name: str
    description: str
    fee: str
    logo_url: str
    farmers: int
    estimated_space: int
    blocks_won: int
    rewards_claimed: int
    paid_to_farmers: int
    partials_24h: int
    minimum_difficulty: int
    relative_lock_height: int
    rounds: list[RoundRow]


async def peak_height(ctx: PoolContext) -> int:
    """The node's peak height (the plot filter depends on it); 0 when the node cannot be reached."""
    try:
        return (await ctx.node.peak()).height
    except ChainUnavailable:
        return 0


def share_percent(points: int, total: int) -> str:
    if total <= 0:
        return "0.00 %"
    percent = Fraction(points * 100, total)
    return f"{float(percent):.2f} %"


def hourly_chart(counts: list[PartialCount], now: int, outcome_colors: dict[str, str], points: bool) -> Chart:
    """Stacked bars per hour of the last 24 h: accepted partials at the bottom, refusals by reason above (or the
    points of the accepted ones, ``points=True``)."""
    first_hour = now - now % HOUR - 23 * HOUR
    per_hour: dict[int, dict[str, int]] = defaultdict(dict)
    for count in counts:
        if count.hour < first_hour:
            continue
        if points:
            if count.outcome in ACCEPTED:
                per_hour[count.hour]["points"] = per_hour[count.hour].get("points", 0) + count.points
        else:
            key = "accepted" if count.outcome in ACCEPTED else count.outcome
            per_hour[count.hour][key] = per_hour[count.hour].get(key, 0) + count.count
    maximum = max([sum(values.values()) for values in per_hour.values()] + [1])
    slot = CHART_WIDTH / 24
    bars: list[Bar] = []
    ticks: list[tuple[float, str]] = []
    for index in range(24):
        hour = first_hour + index * HOUR
        x = index * slot
        if index % 3 == 0:
            ticks.append((x, f"{(hour // HOUR) % 24:02d}:00"))
        y = float(CHART_HEIGHT)
        values = per_hour.get(hour, {})
        order = ["points"] if points else ["accepted", *sorted(k for k in values if k != "accepted")]
        for key in order:
            value = values.get(key, 0)
            if value <= 0:
                continue
            height = value / maximum * CHART_HEIGHT
            y -= height
            color = ACCEPTED_COLOR if key in ("accepted", "points") else outcome_colors.get(key, PALETTE[-1])
            label = f"{(hour // HOUR) % 24:02d}:00 UTC: {value} {key}"
            bars.append(Bar(round(x + 1, 2), round(y, 2), round(slot - 2, 2), round(height, 2), color, label))
    return Chart(bars=bars, ticks=ticks, maximum=maximum)


def recent_partials(counts: list[PartialCount], now: int) -> RecentPartials:
    since = now - DAY
    recent = [c for c in counts if c.hour >= since - since % HOUR]
    accepted = sum(c.count for c in recent if c.outcome in ACCEPTED)
    refused: dict[str, int] = defaultdict(int)
    for c in recent:
        if c.outcome not in ACCEPTED:
            refused[c.outcome] += c.count
    ordered = dict(sorted(refused.items(), key=lambda item: (-item[1], item[0])))
    colors = {"accepted": ACCEPTED_COLOR}
    colors.update({reason: PALETTE[i % len(PALETTE)] for i, reason in enumerate(sorted(ordered))})
    return RecentPartials(
        accepted=accepted,
        refused=ordered,
        colors=colors,
        points=sum(c.points for c in recent if c.outcome in ACCEPTED),
        chart=hourly_chart(recent, now, colors, points=False),
        points_chart=hourly_chart(recent, now, colors, points=True),
    )


async def farmer_view(ctx: PoolContext, farmer: FarmerRecord) -> FarmerView:
    store, now = ctx.store, ctx.now()
    since = now - DAY
    counts = await store.partial_counts(since, farmer.launcher_id)
    partials = recent_partials(counts, now)
    farmers = await store.list_farmers()
    pool_points = sum(f.points for f in farmers)
    state = farmer.singleton_tip_state
    pending_at = farmer.pending_difficulty_at
    pending = farmer.pending_difficulty if pending_at is not None and pending_at > now else None
    payouts, paid_total = await _payouts(ctx, farmer.launcher_id)
    return FarmerView(
        launcher_id=farmer.launcher_id.hex(),
        payout_address=encode_puzzle_hash(farmer.payout_puzzle_hash, address_prefix_for(ctx.config.chain.network)),
        payout_instructions=farmer.payout_instructions,
        is_pool_member=farmer.is_pool_member,
        plotnft_state=PoolSingletonState(state.state).name,
        plotnft_targets_pool=state.target_puzzle_hash == ctx.config.pool.target_puzzle_hash,
        difficulty=farmer.difficulty_at(now),
        pending_difficulty=pending,
        pending_difficulty_at=pending_at if pending is not None else None,
        points=farmer.points,
        pool_points=pool_points,
        share_percent=share_percent(farmer.points, pool_points),
        estimated_space=estimated_space(partials.points, DAY, ctx.constants, await peak_height(ctx)),
        owed=farmer.owed,
        joined_at=farmer.joined_at,
        partials=partials,
        payouts=payouts,
        earnings=await _earnings(ctx, farmer.launcher_id),
        paid_total=paid_total,
        history=[HistoryRow(c.at, c.describe()) for c in await store.farmer_history(farmer.launcher_id, HISTORY_ROWS)],
    )


async def _payouts(ctx: PoolContext, launcher_id: bytes32) -> tuple[list[PayoutRow], int]:
    store = ctx.store
    rows: list[PayoutRow] = []
    rounds = {r.id: r for r in await store.rounds(limit=10**6)}
    batches_of: dict[int, dict[int, tuple[str, str | None, int | None]]] = {}
    paid = 0
    for payment in await store.payments(launcher_id=launcher_id):
        assert payment.round_id is not None
        if payment.round_id not in batches_of:
            batches_of[payment.round_id] = {
                b.index: (b.status.value, None if b.tx_id is None else b.tx_id.hex(), b.confirmed_height)
                for b in await store.batches(payment.round_id)
            }
        status, tx_id, height = batches_of[payment.round_id].get(payment.batch_index, ("pending", None, None))
        payout_round = rounds.get(payment.round_id)
        if status == BatchStatus.CONFIRMED.value:
            paid += payment.amount
        rows.append(
            PayoutRow(
                created_at=0 if payout_round is None else payout_round.created_at,
                amount=payment.amount,
                status=status,
                tx_id=tx_id,
                confirmed_height=height,
            )
        )
    rows.sort(key=lambda row: row.created_at, reverse=True)
    return rows, paid


async def _earnings(ctx: PoolContext, launcher_id: bytes32, limit: int = 20) -> list[EarningRow]:
    """The farmer's shares of the latest distributions: points turned into owed mojos."""
    rows: list[EarningRow] = []
    for distribution in await ctx.store.distributions(limit=limit):
        assert distribution.id is not None
        for share in await ctx.store.distribution_shares(distribution.id):
            if share.launcher_id == launcher_id:
                rows.append(EarningRow(distribution.created_at, share.points, share.amount))
    return rows


async def pool_view(ctx: PoolContext) -> PoolView:
    store, now, pool = ctx.store, ctx.now(), ctx.config.pool
    counts = await store.partial_counts(now - DAY)
    accepted_points = sum(c.points for c in counts if c.outcome in ACCEPTED)
    claims = await store.reward_claims()
    ledger = await store.ledger()
    rounds: list[RoundRow] = []
    for payout_round in await store.rounds(limit=10):  # the page's queries do not grow with the pool's history
        assert payout_round.id is not None
        batches = await store.batches(payout_round.id)
        payments = [p for p in await store.payments(round_id=payout_round.id) if p.launcher_id is not None]
        rounds.append(
            RoundRow(
                created_at=payout_round.created_at,
                status=payout_round.status.value,
                farmer_total=payout_round.farmer_total,
                farmers_paid=len({p.launcher_id for p in payments}),
                tx_ids=[b.tx_id.hex() for b in batches if b.tx_id is not None],
            )
        )
    return PoolView(
        name=pool.name,
        description=pool.description,
        fee=pool.fee_display,
        logo_url=pool.logo_url,
        farmers=len(await store.list_farmers(members_only=True)),
        estimated_space=estimated_space(accepted_points, DAY, ctx.constants, await peak_height(ctx)),
        blocks_won=len({c.coin_id for c in claims if c.status is not ClaimStatus.FAILED}),
        rewards_claimed=sum(c.amount for c in claims if c.status is ClaimStatus.CONFIRMED),
        paid_to_farmers=ledger.farmer_payments - ledger.farmer_payments_in_flight,
        partials_24h=sum(c.count for c in counts if c.outcome in ACCEPTED),
        minimum_difficulty=ctx.config.difficulty.minimum,
        relative_lock_height=pool.relative_lock_height,
        rounds=rounds,
    )
