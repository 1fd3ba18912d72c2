"""The public JSON API under /api/v1/ (described by pool/http/openapi.py, served at /api/v1/openapi.json).

The same figures as the pool page and a farmer's page, read through the same functions (pool/http/page_data.py), as
JSON: the pool, its blocks won (with each round's points and effort, defined in docs/api.md), a farmer by launcher id
and the payout rounds. Read only and public: a farmer's answer holds neither its payout address nor its payout
instructions nor any key. Every request counts against the per-address limit like a page (the first middleware).

The pool's figures, the blocks and the first page of rounds are shared by the requests of ``server.page_cache_seconds``
(the pool page's figures are the very same object); every answer says as much in Cache-Control. Answers to GET carry
``Access-Control-Allow-Origin: *`` (no credentials are involved): any web page may show them. Errors are JSON
``{"error": ...}``: 400 for a malformed parameter, 404 for an unknown farmer or path, 503 when the store or node
fails; never a 500.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

from aiohttp import web

from pool.context import PoolContext
from pool.estimates import estimated_space
from pool.http.keys import CONTEXT
from pool.http.openapi import OPENAPI
from pool.http.page_data import (
    ACCEPTED,
    DAY,
    HOUR,
    Shared,
    closed_on_cleanup,
    peak_height,
    pool_view,
    recent_partials,
    round_rows,
)
from pool.http.pages import PEAK_HEIGHT, POOL_VIEW
from pool.protocol.encoding import parse_bytes32
from pool.protocol.errors import PoolProtocolError, one_line
from pool.store.models import RewardClaim

log = logging.getLogger(__name__)

PREFIX = "/api/v1"
BLOCKS_LISTED = 50  # blocks GET /api/v1/blocks lists, and over which the mean round (effort 1.0) is taken
PAYOUTS_LISTED = 20  # a farmer's newest payments in its answer

Json = dict[str, Any]


@dataclass(frozen=True)
class Rounds:
    """The blocks listed, each with its round's points, and the points of the round in progress."""

    blocks: list[Json]
    points_in_round: int
    mean_round: Fraction  # points of the mean round of the blocks listed (0: no block yet)


BLOCKS = web.AppKey("api_blocks", Shared[Rounds])
ROUNDS = web.AppKey("api_rounds", Shared[Json])

Handler = Callable[[web.Request], Awaitable[web.Response]]


class ApiError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def setup_api(app: web.Application) -> None:
    """After setup_pages (the pool page's shared figures are reused)."""
    seconds = app[CONTEXT].config.server.page_cache_seconds
    app[BLOCKS] = closed_on_cleanup(app, Shared(seconds))
    app[ROUNDS] = closed_on_cleanup(app, Shared(seconds))
    app.router.add_get(f"{PREFIX}/openapi.json", _api(openapi_document))
    app.router.add_get(f"{PREFIX}/pool", _api(get_pool))
    app.router.add_get(f"{PREFIX}/blocks", _api(get_blocks))
    app.router.add_get(f"{PREFIX}/farmers/{{launcher_id}}", _api(get_farmer))
    app.router.add_get(f"{PREFIX}/rounds", _api(get_rounds))
    app.router.add_get(f"{PREFIX}/{{rest:.*}}", _api(unknown_path))


def _api(handler: Callable[[web.Request], Awaitable[Json]]) -> Handler:
    """JSON in every case, with the cache and cross-origin headers."""

    async def answer(request: web.Request) -> web.Response:
        try:
            body, status = await handler(request), 200
        except ApiError as error:
            body, status = {"error": error.message}, error.status
        except Exception:  # the store or node failing: the client learns no more than that
            log.exception("GET %s failed", one_line(request.path, 80))
            body, status = {"error": "the pool cannot answer right now; try again later"}, 503
        response = web.json_response(body, status=status)
        response.headers["Access-Control-Allow-Origin"] = "*"
        response.headers["X-Content-Type-Options"] = "nosniff"
        fresh = int(request.app[CONTEXT].config.server.page_cache_seconds)
        response.headers["Cache-Control"] = f"public, max-age={fresh}" if status == 200 else "no-store"
        return response

    return answer


async def openapi_document(request: web.Request) -> Json:
    return OPENAPI


async def unknown_path(request: web.Request) -> Json:
    raise ApiError(404, f"no such endpoint; see {PREFIX}/openapi.json")


async def get_pool(request: web.Request) -> Json:
    ctx = request.app[CONTEXT]
    view = await request.app[POOL_VIEW].get(lambda: pool_view(ctx))
    rounds = await request.app[BLOCKS].get(lambda: blocks_and_rounds(ctx))
    payouts = ctx.config.payouts
    return {
        "name": view.name,
        "description": view.description,
        "policy": {
            "fee": view.fee,
            "payout_scheme": payouts.scheme,
            "pplns_window": payouts.pplns_window if payouts.scheme == "pplns" else 0,
            "payout_interval": payouts.interval,
            "minimum_payment": payouts.min_payment,
            "minimum_difficulty": view.minimum_difficulty,
            "relative_lock_height": view.relative_lock_height,
        },
        "farmers": view.farmers,
        "estimated_space": view.estimated_space,
        "partials_24h": view.partials_24h,
        "blocks_won": view.blocks_won,
        "rewards_claimed": view.rewards_claimed,
        "paid_to_farmers": view.paid_to_farmers,
        "points_in_round": rounds.points_in_round,
        "effort": effort(rounds.points_in_round, rounds.mean_round),
    }


async def get_blocks(request: web.Request) -> Json:
    ctx = request.app[CONTEXT]
    rounds = await request.app[BLOCKS].get(lambda: blocks_and_rounds(ctx))
    return {"blocks": rounds.blocks}


async def get_rounds(request: web.Request) -> Json:
    ctx = request.app[CONTEXT]
    before = _before(request)
    if before is None:
        return await request.app[ROUNDS].get(lambda: rounds_page(ctx, None))
    return await rounds_page(ctx, before)


async def rounds_page(ctx: PoolContext, before: int | None) -> Json:
    rows, older = await round_rows(ctx, before)
    return {
        "rounds": [
            {
                "time": row.created_at,
                "status": row.status,
                "farmer_total": row.farmer_total,
                "farmers_paid": row.farmers_paid,
                "tx_ids": row.tx_ids,
            }
            for row in rows
        ],
        "older": older,
    }


async def get_farmer(request: web.Request) -> Json:
    """The farmer page's public figures: indexed reads of the one farmer (a look-up of an unknown id costs one)."""
    ctx = request.app[CONTEXT]
    try:
        launcher_id = parse_bytes32(request.match_info["launcher_id"], "launcher_id")
    except PoolProtocolError:
        raise ApiError(400, "launcher_id must be 32 bytes in hex") from None
    farmer = await ctx.store.get_farmer(launcher_id)
    if farmer is None:
        raise ApiError(404, f"no farmer with launcher id {launcher_id.hex()}")
    now = ctx.now()
    partials = recent_partials(await ctx.store.partial_counts(now - DAY, launcher_id), now)
    peak = await request.app[PEAK_HEIGHT].get(lambda: peak_height(ctx))
    payouts = await ctx.store.farmer_payouts(launcher_id, PAYOUTS_LISTED)
    return {
        "launcher_id": launcher_id.hex(),
        "is_pool_member": farmer.is_pool_member,
        "joined_at": farmer.joined_at,
        "points": farmer.points,
        "difficulty": farmer.difficulty_at(now),
        "estimated_space": estimated_space(partials.points, DAY, ctx.constants, peak),
        "partials_24h": {"accepted": partials.accepted, "points": partials.points, "refused": partials.refused},
        "owed": farmer.owed,
        "paid_total": await ctx.store.farmer_paid(launcher_id),
        "payouts": [
            {
                "time": p.created_at,
                "amount": p.amount,
                "status": p.status.value,
                "tx_id": None if p.tx_id is None else p.tx_id.hex(),
                "confirmed_height": p.confirmed_height,
            }
            for p in payouts
        ],
    }


def _before(request: web.Request) -> int | None:
    value = request.query.get("before")
    if value is None:
        return None
    if not (value.isascii() and value.isdigit()) or len(value) > 18:
        raise ApiError(400, "before must be a round id (a non-negative integer)")
    return int(value)


# ---------------------------------------------------------------------------------------------------- effort


async def blocks_and_rounds(ctx: PoolContext) -> Rounds:
    """The newest blocks won with the points of their rounds (see docs/api.md): one read of the blocks and one
    aggregate of the pool's accepted partials per hour since the round of the oldest block listed began."""
    claims = await ctx.store.won_blocks(BLOCKS_LISTED + 1)
    listed = claims[:BLOCKS_LISTED]
    ends = round_ends(claims)
    start = ends[len(listed)] if len(claims) > BLOCKS_LISTED else 0
    counts = await ctx.store.partial_counts(start)
    hourly: dict[int, int] = {}
    for count in counts:
        if count.outcome in ACCEPTED:
            hourly[count.hour] = hourly.get(count.hour, 0) + count.points

    def points_between(begin: int, end: int | None) -> int:
        return sum(points for hour, points in hourly.items() if hour >= begin and (end is None or hour < end))

    in_round = [
        points_between(ends[index + 1] if index + 1 < len(claims) else 0, ends[index]) for index in range(len(listed))
    ]
    mean = Fraction(sum(in_round), len(in_round)) if in_round else Fraction(0)
    blocks = [_block(claim, points, mean) for claim, points in zip(listed, in_round, strict=True)]
    current = points_between(ends[0], None) if claims else sum(hourly.values())
    return Rounds(blocks=blocks, points_in_round=current, mean_round=mean)


def round_ends(claims: list[RewardClaim]) -> list[int]:
    """The hour at which each block's round ends, newest first: the hour its claim was recorded in. Never later than
    a newer block's (a claim recorded late belongs to the round it was won in, as far as hours tell)."""
    ends: list[int] = []
    for claim in claims:
        hour = claim.submitted_at - claim.submitted_at % HOUR
        ends.append(hour if not ends else min(hour, ends[-1]))
    return ends


def _block(claim: RewardClaim, points: int, mean: Fraction) -> Json:
    return {
        "height": claim.coin_height,
        "time": claim.submitted_at,
        "finder_launcher_id": claim.launcher_id.hex(),
        "reward": claim.amount,
        "status": claim.status.value,
        "points_in_round": points,
        "effort": effort(points, mean),
    }


def effort(points: int, mean: Fraction) -> float | None:
    """A round's points over the mean round's (4 decimals: a ratio to show, not an amount)."""
    return None if mean <= 0 else round(float(points / mean), 4)
