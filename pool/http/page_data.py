"""What the farmer page and the pool page show, gathered from the store (and the node's peak for the plot filter).

Plain data for the templates (pool/http/templates/): amounts stay integer mojos until the template formats them.
Every figure is an aggregate of the database or an indexed read of the one farmer concerned, and every list is a page
of a bounded number of rows: what a page costs does not grow with the number of farmers or the pool's history.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import time
import weakref
from collections import defaultdict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Generic, TypeVar

from aiohttp import web

from pool.chain.interface import ChainUnavailable, PeakInfo
from pool.chia_adapter import PoolSingletonState, bytes32, encode_puzzle_hash
from pool.config import address_prefix_for
from pool.context import PoolContext
from pool.estimates import block_points, estimated_space
from pool.protocol.encoding import parse_bytes32
from pool.protocol.errors import PoolProtocolError
from pool.store.abstract import AbstractPoolStore
from pool.store.models import FarmerRecord, PartialCount, RewardClaim

DAY = 24 * 3600
HOUR = 3600
ACCEPTED = ("pending", "confirmed")  # outcomes of partials that earn points (pending ones once confirmed)
PALETTE = ("#c0392b", "#d35400", "#8e44ad", "#2c3e50", "#b7950b", "#7f8c8d", "#16a085", "#e84393")
ACCEPTED_COLOR = "#27ae60"

CHART_WIDTH = 720
CHART_HEIGHT = 160
ROWS_PER_PAGE = 20  # rows of a farmer's payouts and earnings on one page
ROUNDS_PER_PAGE = 10  # payout rounds on one pool page
BLOCKS_PER_PAGE = 10  # blocks won on one pool page
EFFORT_BLOCKS_PER_PAGE = 20  # blocks on one page of the blocks page
HARVESTERS_LISTED = 50  # a farmer's harvesters its pages list (those seen last)

T = TypeVar("T")
log = logging.getLogger(__name__)


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


@dataclass(frozen=True)
class HarvesterRow:
    harvester_id: str
    accepted: int
    rejected: int
    points: int
    last_seen: int


@dataclass
class PublicFarmerView:
    """What anyone may see of a farmer by its launcher id (the public page and GET /api/v1/farmers/...): never its
    payout address, payout instructions, settings or keys."""

    launcher_id: str
    is_pool_member: bool
    joined_at: int
    points: int
    difficulty: int
    estimated_space: int
    owed: int
    paid_total: int
    partials: RecentPartials
    harvesters: list[HarvesterRow]
    payouts: list[PayoutRow]
    older_payouts: int | None  # the ``payouts_before`` of the next page, if there is one


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
    older_payouts: int | None = None  # the ``payouts_before`` of the next page, if there is one
    # What the owed balance must reach to be paid: payouts.min_payment, or the farmer's own higher minimum.
    payment_threshold: int = 1
    older_earnings: int | None = None  # the ``earnings_before`` of the next page, if there is one
    harvesters: list[HarvesterRow] = field(default_factory=list)


@dataclass
class RoundRow:
    created_at: int
    status: str
    farmer_total: int
    farmers_paid: int
    tx_ids: list[str]


@dataclass(frozen=True)
class BlockRow:
    height: int  # of the block whose pool reward the claim absorbs
    amount: int
    status: str  # the claim's: submitted, confirmed, lost


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
    blocks: list[BlockRow] = field(default_factory=list)
    older_rounds: int | None = None  # the ``rounds_before`` of the next page of rounds, if there is one
    older_blocks: str | None = None  # the ``blocks_before`` of the next page of blocks, if there is one


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


async def payment_threshold(ctx: PoolContext, launcher_id: bytes32) -> int:
    """The owed balance from which the payout loop pays the farmer (pool.payouts.split.plan_payments)."""
    own = (await ctx.store.farmer_settings(launcher_id)).min_payout or 0
    return max(ctx.config.payouts.min_payment, own, 1)


async def farmer_view(
    ctx: PoolContext,
    farmer: FarmerRecord,
    peak: int,
    payouts_before: int | None = None,
    earnings_before: int | None = None,
) -> FarmerView:
    """The farmer's page: its own rows by index, the pool's points as one aggregate; ``peak``: the chain's height
    (for the plot filter of the space estimate). The reads go out at once: each waits for a reading connection and
    then for a turn of the event loop, and one after the other a page paid those waits a dozen times while the
    loops' passes kept the connections and the event loop busy."""
    store, now, launcher_id = ctx.store, ctx.now(), farmer.launcher_id
    own_rows = asyncio.gather(
        store.partial_counts(now - DAY, launcher_id),
        _payouts(ctx, launcher_id, payouts_before),
        _earnings(ctx, launcher_id, earnings_before),
        store.farmer_paid(launcher_id),
        store.farmer_history(launcher_id, HISTORY_ROWS),
        harvester_rows(ctx, launcher_id),
    )
    pool_wide = asyncio.gather(store.total_points(), payment_threshold(ctx, launcher_id))
    rows, (pool_points, threshold) = await asyncio.gather(own_rows, pool_wide)
    counts, (payouts, older_payouts), (earnings, older_earnings), paid, history, harvesters = rows
    partials = recent_partials(counts, now)
    state = farmer.singleton_tip_state
    pending_at = farmer.pending_difficulty_at
    pending = farmer.pending_difficulty if pending_at is not None and pending_at > now else None
    return FarmerView(
        launcher_id=launcher_id.hex(),
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
        estimated_space=estimated_space(partials.points, DAY, ctx.constants, peak),
        owed=farmer.owed,
        joined_at=farmer.joined_at,
        partials=partials,
        payouts=payouts,
        earnings=earnings,
        paid_total=paid,
        older_payouts=older_payouts,
        older_earnings=older_earnings,
        history=[HistoryRow(c.at, c.describe()) for c in history],
        payment_threshold=threshold,
        harvesters=harvesters,
    )


async def public_farmer_view(
    ctx: PoolContext, farmer: FarmerRecord, peak: int, payouts_before: int | None = None
) -> PublicFarmerView:
    """The farmer's public figures: indexed reads of its own rows, all at once (``peak``: the chain's height, for
    the plot filter of the space estimate)."""
    now, launcher_id = ctx.now(), farmer.launcher_id
    counts, paid, harvesters, (payouts, older_payouts) = await asyncio.gather(
        ctx.store.partial_counts(now - DAY, launcher_id),
        ctx.store.farmer_paid(launcher_id),
        harvester_rows(ctx, launcher_id),
        _payouts(ctx, launcher_id, payouts_before),
    )
    partials = recent_partials(counts, now)
    return PublicFarmerView(
        launcher_id=launcher_id.hex(),
        is_pool_member=farmer.is_pool_member,
        joined_at=farmer.joined_at,
        points=farmer.points,
        difficulty=farmer.difficulty_at(now),
        estimated_space=estimated_space(partials.points, DAY, ctx.constants, peak),
        owed=farmer.owed,
        paid_total=paid,
        partials=partials,
        harvesters=harvesters,
        payouts=payouts,
        older_payouts=older_payouts,
    )


async def harvester_rows(ctx: PoolContext, launcher_id: bytes32) -> list[HarvesterRow]:
    """The farmer's harvesters seen last (at most HARVESTERS_LISTED) over the last 24 h: one aggregate."""
    found = await ctx.store.harvester_figures(launcher_id, ctx.now() - DAY, HARVESTERS_LISTED)
    return [HarvesterRow(h.harvester_id.hex(), h.accepted, h.rejected, h.points, h.last_seen) for h in found]


async def _payouts(ctx: PoolContext, launcher_id: bytes32, before: int | None) -> tuple[list[PayoutRow], int | None]:
    """A page of the farmer's payments, newest first, and the cursor of the next page (one row more is read to know
    whether there is one)."""
    found = await ctx.store.farmer_payouts(launcher_id, ROWS_PER_PAGE + 1, before)
    rows = [
        PayoutRow(
            created_at=p.created_at,
            amount=p.amount,
            status=p.status.value,
            tx_id=None if p.tx_id is None else p.tx_id.hex(),
            confirmed_height=p.confirmed_height,
        )
        for p in found[:ROWS_PER_PAGE]
    ]
    return rows, found[ROWS_PER_PAGE - 1].id if len(found) > ROWS_PER_PAGE else None


async def _earnings(ctx: PoolContext, launcher_id: bytes32, before: int | None) -> tuple[list[EarningRow], int | None]:
    """A page of the farmer's shares of distributions (points turned into owed mojos), newest first."""
    found = await ctx.store.farmer_earnings(launcher_id, ROWS_PER_PAGE + 1, before)
    rows = [EarningRow(e.created_at, e.points, e.amount) for e in found[:ROWS_PER_PAGE]]
    return rows, found[ROWS_PER_PAGE - 1].distribution_id if len(found) > ROWS_PER_PAGE else None


async def pool_view(ctx: PoolContext) -> PoolView:
    """The public page's figures (aggregates) and its first page of payout rounds."""
    store, now, pool = ctx.store, ctx.now(), ctx.config.pool
    counts = await pool_partials(ctx).day_counts(store, now)
    accepted_points = sum(c.points for c in counts if c.outcome in ACCEPTED)
    figures = await store.pool_figures()
    rounds, older = await round_rows(ctx, None)
    blocks, older_blocks = await block_rows(ctx, None)
    return PoolView(
        name=pool.name,
        description=pool.description,
        fee=pool.fee_display,
        logo_url=pool.logo_url,
        farmers=figures.members,
        estimated_space=estimated_space(accepted_points, DAY, ctx.constants, await peak_height(ctx)),
        blocks_won=figures.blocks_won,
        rewards_claimed=figures.rewards_claimed,
        paid_to_farmers=figures.paid_to_farmers,
        partials_24h=sum(c.count for c in counts if c.outcome in ACCEPTED),
        minimum_difficulty=ctx.config.difficulty.minimum,
        relative_lock_height=pool.relative_lock_height,
        rounds=rounds,
        blocks=blocks,
        older_rounds=older,
        older_blocks=older_blocks,
    )


async def older_pages_view(
    ctx: PoolContext, view: PoolView, rounds_before: int | None, blocks_before: tuple[int, bytes32] | None
) -> PoolView:
    """``view`` with the page of payout rounds older than round ``rounds_before`` and the page of blocks after
    ``blocks_before`` (each if given) instead of the newest."""
    if rounds_before is not None:
        rounds, older = await round_rows(ctx, rounds_before)
        view = dataclasses.replace(view, rounds=rounds, older_rounds=older)
    if blocks_before is not None:
        blocks, older_blocks = await block_rows(ctx, blocks_before)
        view = dataclasses.replace(view, blocks=blocks, older_blocks=older_blocks)
    return view


async def block_rows(ctx: PoolContext, before: tuple[int, bytes32] | None) -> tuple[list[BlockRow], str | None]:
    """A page of the blocks won and the cursor of the next page: "height-coin id" of the page's last claim."""
    found = await ctx.store.won_blocks(BLOCKS_PER_PAGE + 1, before)
    rows = [BlockRow(c.coin_height, c.amount, c.status.value) for c in found[:BLOCKS_PER_PAGE]]
    if len(found) <= BLOCKS_PER_PAGE:
        return rows, None
    last = found[BLOCKS_PER_PAGE - 1]
    return rows, f"{last.coin_height}-{last.coin_id.hex()}"


async def round_rows(ctx: PoolContext, before: int | None) -> tuple[list[RoundRow], int | None]:
    found = await ctx.store.round_summaries(ROUNDS_PER_PAGE + 1, before)
    rows = [
        RoundRow(
            created_at=s.round.created_at,
            status=s.round.status.value,
            farmer_total=s.round.farmer_total,
            farmers_paid=s.farmers_paid,
            tx_ids=[tx_id.hex() for tx_id in s.tx_ids],
        )
        for s in found[:ROUNDS_PER_PAGE]
    ]
    return rows, found[ROUNDS_PER_PAGE - 1].round.id if len(found) > ROUNDS_PER_PAGE else None


@dataclass(frozen=True)
class BlockRound:
    """A block won, the points its round earned and what a block took on average then (None: not recorded)."""

    claim: RewardClaim
    points: int
    expected: Fraction | None

    @property
    def effort(self) -> Fraction | None:
        return effort(self.points, self.expected)


@dataclass(frozen=True)
class RoundSoFar:
    """The round in progress: its points and what a block takes on average at the network's peak now."""

    since: int  # the hour it began (0: the pool has won no block yet)
    points: int
    expected: Fraction | None

    @property
    def effort(self) -> Fraction | None:
        return effort(self.points, self.expected)


def effort(points: int, expected: Fraction | None) -> Fraction | None:
    """The points of a round over the points a block takes on average (1: an average round), exact."""
    return None if expected is None or expected <= 0 else points / expected


def percent(value: Fraction | None) -> str:
    """A ratio as a percentage: one decimal, or three significant digits below 0.1 % (a tiny effort is not 0)."""
    if value is None:
        return "-"
    shown = float(value * 100)
    return f"{shown:.1f} %" if shown >= 0.1 or shown == 0 else f"{shown:.3g} %"


def expected_points(ctx: PoolContext, difficulty: int | None, sub_slot_iters: int | None) -> Fraction | None:
    if not difficulty or not sub_slot_iters:
        return None
    return block_points(difficulty, sub_slot_iters, ctx.constants)


def parse_block_cursor(value: str) -> tuple[int, bytes32]:
    """A page of blocks' cursor, "height-coin id" (as block_rounds makes it); ValueError if it is not one."""
    height, _, coin_id = value.partition("-")
    if not (height.isascii() and height.isdigit()) or len(height) > 18:
        raise ValueError("not a block cursor")
    try:
        return int(height), parse_bytes32(coin_id, "before")
    except PoolProtocolError:
        raise ValueError("not a block cursor") from None


def round_ends(claims: list[RewardClaim]) -> list[int]:
    """When each block's round ends, newest first: the timestamp of the block that created its reward coin (or, for
    claims recorded without it, when the claim was recorded). Never later than a newer block's."""
    ends: list[int] = []
    for claim in claims:
        end = claim.coin_timestamp or claim.submitted_at
        ends.append(end if not ends else min(end, ends[-1]))
    return ends


async def block_rounds(
    ctx: PoolContext, limit: int, before: tuple[int, bytes32] | None = None
) -> tuple[list[BlockRound], str | None]:
    """A page of the blocks won (after ``before``), each with its round (see docs/api.md), and the cursor of the
    next page: one read of ``limit`` + 1 claims and one sum of the pool's accepted points per round."""
    claims = await ctx.store.won_blocks(limit + 1, before)
    listed = claims[:limit]
    ends = round_ends(claims)
    rounds = []
    for index, claim in enumerate(listed):
        begin = ends[index + 1] if index + 1 < len(claims) else 0
        points = await pool_partials(ctx).round_points(ctx.store, begin, ends[index], ctx.now())
        expected = expected_points(ctx, claim.network_difficulty, claim.network_sub_slot_iters)
        rounds.append(BlockRound(claim, points, expected))
    if len(claims) <= limit:
        return rounds, None
    last = listed[-1]
    return rounds, f"{last.coin_height}-{last.coin_id.hex()}"


async def round_so_far(ctx: PoolContext) -> RoundSoFar:
    """The points since the newest block and the expectation at the node's peak (None when the node cannot
    tell)."""
    newest = await ctx.store.won_blocks(1)
    since = round_ends(newest)[0] if newest else 0
    points = await pool_partials(ctx).accepted_points(ctx.store, since, ctx.now())
    try:
        peak: PeakInfo | None = await ctx.node.peak()
    except ChainUnavailable:
        peak = None
    expected = None if peak is None else expected_points(ctx, peak.difficulty, peak.sub_slot_iters)
    return RoundSoFar(since, points, expected)


# Partials received longer ago than this are written (the intake commits them in groups within a second or so): with
# no partial pending from before, their counts no longer change.
SETTLED_AFTER = 120
RECENT_ROUNDS = 500  # past rounds' points kept (those of the blocks the pages and the API list first)


async def settled_before(store: AbstractPoolStore, now: int) -> int:
    """A time before which the partials' counts no longer change: none pending, every one written."""
    pending = await store.oldest_pending_partial()
    return min(now - SETTLED_AFTER, now if pending is None else pending)


class PoolPartials:
    """The pool's partials of the last 24 h per hour and outcome, and its accepted points since a time, kept between
    makings of the shared figures. At 10 000 farmers a day holds 3 million partials: counting them took seconds of
    a reading connection of the store (the reads queued behind it wait). Here the settled partials, those whose
    counts no longer change (settled_before), are read once: a making reads only those that came in since the last
    (and, for the day's counts, those that went out of the day) and the newest, unsettled ones afresh. What it
    gives is what the store's partial_counts and accepted_points give for the same span."""

    def __init__(self) -> None:
        self._lock = asyncio.Lock()
        self._window: tuple[int, int] | None = None  # [since, until) of the kept day counts
        self._counts: dict[tuple[int, str], tuple[int, int]] = {}
        self._points: tuple[int, int, int] | None = None  # since, until, the accepted points of [since, until)
        self._rounds: dict[tuple[int, int], int] = {}  # [since, until) -> the accepted points of a settled round
        self._rounds_lock = asyncio.Lock()

    async def day_counts(self, store: AbstractPoolStore, now: int) -> list[PartialCount]:
        """What ``store.partial_counts(now - DAY)`` gives."""
        since = now - DAY
        async with self._lock:
            cut = max(since, await settled_before(store, now))
            kept = self._window
            # Both reads before anything kept changes: a read that fails leaves the kept counts as they were.
            # Settled spans: their confirmed partials' whole hours from the hourly counts (store.settled_counts).
            if kept is None or not kept[0] <= since <= kept[1] or cut < kept[1]:
                entered, left = await store.settled_counts(since, cut), []
                self._counts = {}
            else:
                entered = await store.settled_counts(kept[1], cut)
                left = await store.settled_counts(kept[0], since)
            self._add(entered, 1)
            self._add(left, -1)
            self._window = (since, cut)
            fresh = await store.partial_counts(cut)
            merged = dict(self._counts)
        for count in fresh:
            n, points = merged.get((count.hour, count.outcome), (0, 0))
            merged[(count.hour, count.outcome)] = (n + count.count, points + count.points)
        return [PartialCount(hour, outcome, n, points) for (hour, outcome), (n, points) in sorted(merged.items()) if n]

    def _add(self, counts: list[PartialCount], sign: int) -> None:
        for count in counts:
            key = (count.hour, count.outcome)
            n, points = self._counts.get(key, (0, 0))
            n, points = n + sign * count.count, points + sign * count.points
            if n:
                self._counts[key] = (n, points)
            else:
                self._counts.pop(key, None)

    async def accepted_points(self, store: AbstractPoolStore, since: int, now: int) -> int:
        """What ``store.accepted_points(since)`` gives."""
        async with self._lock:
            cut = max(since, await settled_before(store, now))
            kept = self._points
            if kept is None or kept[0] != since or cut < kept[1]:
                settled = await store.settled_points(since, cut)
            else:
                settled = kept[2] + await store.settled_points(kept[1], cut)
            self._points = (since, cut, settled)
            return settled + await store.accepted_points(cut)

    async def round_points(self, store: AbstractPoolStore, since: int, until: int, now: int) -> int:
        """What ``store.accepted_points(since, until)`` gives: a round that ended before the settled partials is
        summed once (the blocks' pages list the same rounds at every making), from the hourly counts
        (``store.settled_points``), the newest RECENT_ROUNDS kept. One round summed at a time: the pages and the API
        list the same rounds, and each making after a start would otherwise sum them all side by side."""
        async with self._rounds_lock:
            found = self._rounds.get((since, until))
            if found is not None:
                return found
            if until > await settled_before(store, now):
                return await store.accepted_points(since, until)
            points = self._rounds[(since, until)] = await store.settled_points(since, until)
            while len(self._rounds) > RECENT_ROUNDS:
                del self._rounds[min(self._rounds, key=lambda span: span[1])]
            return points


_POOL_PARTIALS: weakref.WeakKeyDictionary[AbstractPoolStore, PoolPartials] = weakref.WeakKeyDictionary()


def pool_partials(ctx: PoolContext) -> PoolPartials:
    """The store's kept counts, one for the process (the pages, the API and /status share them)."""
    found = _POOL_PARTIALS.get(ctx.store)
    if found is None:
        found = _POOL_PARTIALS[ctx.store] = PoolPartials()
    return found


# A value asked within this long is kept fresh in the background (Shared): a Prometheus scrape every 15 s or every
# minute, or a status probe, comes less often than the value's few seconds of life, and each would otherwise wait for
# a making (tens of milliseconds of reads and node calls at ten thousand farmers, more while the loops' passes run).
WATCHED_SECONDS = 300.0


class Shared(Generic[T]):
    """One value shared by every request for ``seconds`` (0: made for each request), so that a burst of page loads
    costs one read of the store. It is first made as the application starts (``warm``), in the background; a request
    that comes before that making ends waits for it (and if it failed, the first request makes it). From then on the
    first request that finds it older than half its time gets it at once and starts making it again in the
    background, one making at a time; and while it is asked at all (a request within WATCHED_SECONDS) it is made
    again in the background every ``seconds``, asked or not: requests that come seldom (scrapes, probes) find it at
    most ``seconds`` old (and the making's time) and never wait for the store either. A value older than twice its
    time (nobody asked for WATCHED_SECONDS: the next request must not read figures of long ago) is not given: the
    request waits for a fresh one (the requests that come meanwhile wait for the same making). A failed background
    making is not kept: the value stays as it was (it is logged) and the next request, or the next making in the
    background, tries again."""

    def __init__(
        self,
        seconds: float,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.seconds = seconds
        self._clock = clock
        self._sleep = sleep
        self._lock = asyncio.Lock()
        self._value: tuple[float, T] | None = None
        self._remaking: asyncio.Task[None] | None = None
        self._asked_at: float | None = None  # when a request last asked for the value
        self._tried_at = 0.0  # when the last background making started
        self._keeper: asyncio.Task[None] | None = None

    async def get(self, make: Callable[[], Awaitable[T]]) -> T:
        if self.seconds <= 0:
            return await make()
        self._asked_at = self._clock()
        if self._too_old():
            async with self._lock:
                remaking = self._remaking
                if remaking is not None and self._too_old():
                    await asyncio.shield(remaking)  # a making under way is the fresh value: wait for it, not another
                if self._too_old():
                    self._value = (self._clock(), await make())
        assert self._value is not None
        made_at, value = self._value
        if self._remaking is None and self._clock() - made_at >= self.seconds / 2:
            self._start_remaking(make)
        if self._keeper is None:
            self._keeper = asyncio.create_task(self._keep_fresh(make))
        return value

    @property
    def made(self) -> bool:
        """Whether a value is at hand (made at least once)."""
        return self._value is not None

    def warm(self, make: Callable[[], Awaitable[T]]) -> None:
        """Starts making the value in the background (at the application's start): the first request then finds it
        made, or waits only for what is left of this making. Nothing waits for it here, so the pool serves at once; a
        failure is logged like a background making's, and the first request tries again."""
        if self.seconds > 0 and self._value is None and self._remaking is None:
            self._start_remaking(make)

    def _too_old(self) -> bool:
        return self._value is None or self._clock() - self._value[0] >= 2 * self.seconds

    def _watched(self) -> bool:
        return self._asked_at is not None and self._clock() - self._asked_at < WATCHED_SECONDS

    def _start_remaking(self, make: Callable[[], Awaitable[T]]) -> None:
        self._tried_at = self._clock()
        self._remaking = asyncio.create_task(self._remake(make))

    async def _remake(self, make: Callable[[], Awaitable[T]]) -> None:
        try:
            self._value = (self._clock(), await make())
        except Exception:
            log.exception("shared figures not made again; the previous ones stay until the next request")
        finally:
            self._remaking = None

    async def _keep_fresh(self, make: Callable[[], Awaitable[T]]) -> None:
        """While the value is watched: made again once it is ``seconds`` old (a failed making tried again
        ``seconds`` after it started); then ends, and the next request starts it again."""
        try:
            while self.seconds > 0 and self._watched():
                made_at = self._value[0] if self._value is not None else self._tried_at
                due = max(made_at, self._tried_at) + self.seconds
                if self._clock() < due:
                    await self._sleep(due - self._clock())
                    continue  # a request may have made it meanwhile, or stopped watching
                if self._remaking is None:
                    self._start_remaking(make)
                remaking = self._remaking
                if remaking is not None:
                    await asyncio.shield(remaking)
        finally:
            self._keeper = None

    async def close(self) -> None:
        """Stops a making under way and the keeping fresh (the application is shutting down: the store it reads is
        closing)."""
        for task in (self._keeper, self._remaking):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task


def closed_on_cleanup(
    app: web.Application, shared: Shared[T], warm: Callable[[], Awaitable[T]] | None = None
) -> Shared[T]:
    """``shared``, its background making stopped when ``app`` shuts down; made by ``warm`` in the background as
    ``app`` starts, if given, so that the first request after the start does not wait for the store."""

    async def start(_: web.Application) -> None:
        assert warm is not None
        shared.warm(warm)

    async def close(_: web.Application) -> None:
        await shared.close()

    if warm is not None:
        app.on_startup.append(start)
    app.on_cleanup.append(close)
    return shared
