"""The public JSON API under /api/v1/ (described by pool/http/openapi.py, served at /api/v1/openapi.json).

The same figures as the pool page and a farmer's page, read through the same functions (pool/http/page_data.py), as
JSON: the pool, its blocks won (with each round's points and effort, defined in docs/api.md), a farmer by launcher id
and the payout rounds. Read only and public: a farmer's answer holds neither its payout address nor its payout
instructions nor any key. Every request counts against the per-address limit like a page (the first middleware).

The pool's figures and the first pages of blocks and rounds are shared by the requests of ``server.page_cache_seconds``
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
from pool.http.keys import CONTEXT
from pool.http.openapi import OPENAPI
from pool.http.page_data import (
    BlockRound,
    RoundSoFar,
    Shared,
    block_rounds,
    closed_on_cleanup,
    parse_block_cursor,
    peak_height,
    pool_view,
    public_farmer_view,
    round_rows,
    round_so_far,
)
from pool.http.pages import PEAK_HEIGHT, POOL_VIEW
from pool.protocol.encoding import parse_bytes32
from pool.protocol.errors import PoolProtocolError, one_line

log = logging.getLogger(__name__)

PREFIX = "/api/v1"
BLOCKS_LISTED = 50  # blocks GET /api/v1/blocks lists

Json = dict[str, Any]


@dataclass(frozen=True)
class Blocks:
    """The newest blocks won with their rounds, and the round in progress."""

    blocks: list[Json]
    older: str | None  # the cursor of the next page
    so_far: RoundSoFar


BLOCKS = web.AppKey("api_blocks", Shared[Blocks])
ROUNDS = web.AppKey("api_rounds", Shared[Json])

Handler = Callable[[web.Request], Awaitable[web.Response]]


class ApiError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def setup_api(app: web.Application) -> None:
    """After setup_pages (the pool page's shared figures are reused)."""
    ctx = app[CONTEXT]
    seconds = ctx.config.server.page_cache_seconds
    app[BLOCKS] = closed_on_cleanup(app, Shared(seconds), warm=lambda: newest_blocks(ctx))
    app[ROUNDS] = closed_on_cleanup(app, Shared(seconds), warm=lambda: rounds_page(ctx, None))
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
    rounds = await request.app[BLOCKS].get(lambda: newest_blocks(ctx))
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
        "points_in_round": rounds.so_far.points,
        "expected_points": ratio(rounds.so_far.expected),
        "effort": ratio(rounds.so_far.effort),
    }


async def get_blocks(request: web.Request) -> Json:
    ctx = request.app[CONTEXT]
    value = request.query.get("before")
    if value is None:
        rounds = await request.app[BLOCKS].get(lambda: newest_blocks(ctx))
        return {"blocks": rounds.blocks, "older": rounds.older}
    try:
        before = parse_block_cursor(value)
    except ValueError:
        raise ApiError(400, "before must be a height and a coin id (height-hex), as older gives it") from None
    listed, older = await block_rounds(ctx, BLOCKS_LISTED, before)
    return {"blocks": [block_json(found) for found in listed], "older": older}


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
    """The public farmer page's figures: indexed reads of the one farmer (a look-up of an unknown id costs one)."""
    ctx = request.app[CONTEXT]
    try:
        launcher_id = parse_bytes32(request.match_info["launcher_id"], "launcher_id")
    except PoolProtocolError:
        raise ApiError(400, "launcher_id must be 32 bytes in hex") from None
    farmer = await ctx.store.get_farmer(launcher_id)
    if farmer is None:
        raise ApiError(404, f"no farmer with launcher id {launcher_id.hex()}")
    peak = await request.app[PEAK_HEIGHT].get(lambda: peak_height(ctx))
    view = await public_farmer_view(ctx, farmer, peak)
    partials = view.partials
    return {
        "launcher_id": view.launcher_id,
        "is_pool_member": view.is_pool_member,
        "joined_at": view.joined_at,
        "points": view.points,
        "difficulty": view.difficulty,
        "estimated_space": view.estimated_space,
        "partials_24h": {"accepted": partials.accepted, "points": partials.points, "refused": partials.refused},
        "harvesters": [
            {
                "harvester_id": h.harvester_id,
                "accepted": h.accepted,
                "rejected": h.rejected,
                "points": h.points,
                "last_seen": h.last_seen,
            }
            for h in view.harvesters
        ],
        "owed": view.owed,
        "paid_total": view.paid_total,
        "payouts": [
            {
                "time": p.created_at,
                "amount": p.amount,
                "status": p.status,
                "tx_id": p.tx_id,
                "confirmed_height": p.confirmed_height,
            }
            for p in view.payouts
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


async def newest_blocks(ctx: PoolContext) -> Blocks:
    """The newest blocks won with their rounds' effort (see docs/api.md) and the round in progress."""
    listed, older = await block_rounds(ctx, BLOCKS_LISTED)
    return Blocks(blocks=[block_json(found) for found in listed], older=older, so_far=await round_so_far(ctx))


def block_json(found: BlockRound) -> Json:
    claim = found.claim
    return {
        "height": claim.coin_height,
        "time": claim.submitted_at,
        "won_at": claim.coin_timestamp,
        "coin_id": claim.coin_id.hex(),
        "finder_launcher_id": claim.launcher_id.hex(),
        "reward": claim.amount,
        "status": claim.status.value,
        "points_in_round": found.points,
        "network_difficulty": claim.network_difficulty,
        "network_sub_slot_iters": claim.network_sub_slot_iters,
        "expected_points": ratio(found.expected),
        "effort": ratio(found.effort),
    }


def ratio(value: Fraction | None) -> float | None:
    """An exact ratio shown to 4 decimals (a figure to read, not an amount)."""
    return None if value is None else round(float(value), 4)
