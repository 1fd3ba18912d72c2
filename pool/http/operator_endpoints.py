"""The operator's endpoints: GET /status (JSON) and GET /metrics (Prometheus text format).

They list every farmer's launcher id, balance and payout address, so they are closed by default: on the farmers'
listener they answer only ``Authorization: Bearer <server.operator_token>``, and with no token configured they
answer 403 to everyone. ``server.operator_listen`` adds a listener on a loopback address (operator_application) where
they answer without a token: whoever reaches it is on the pool's machine. Every figure about money or partials is
read from the store at each request, as aggregates of the database and bounded lists (the latest rounds without
their payments, the largest owed balances); chain and wallet figures are asked live. Both keep what they read for
``server.metrics_cache_seconds``; /status remakes its answer in the background (page_data.Shared), so that no request
waits for the store once the first answer is made.
"""

from __future__ import annotations

import hmac
import logging
from typing import Any

from aiohttp import web

from pool.chain.interface import ChainUnavailable
from pool.chain.status import ChainStatus
from pool.context import PoolContext
from pool.http.keys import CHAIN_STATUS, CONTEXT
from pool.http.page_data import Shared, closed_on_cleanup, pool_partials
from pool.metrics import CONTENT_TYPE_LATEST, ChainFigures, Metric, state_families
from pool.payouts.books import books_json, build_books

DAY = 24 * 3600
log = logging.getLogger(__name__)
# Scrapes within this many seconds (and server.metrics_cache_seconds) share one text: counters and histograms of the
# process move all the time, and a scrape is seldom more often (what the loops did in a window reads fresh enough).
EXPOSITION_SECONDS = 1.0
STATUS_OWED_BALANCES = 20  # the largest owed balances /status lists (python -m pool ledger lists them all)


# Set on the application of server.operator_listen: a loopback listener, whose requests need no token.
OPERATOR_LISTENER = web.AppKey("operator_listener", bool)
STATUS = web.AppKey("status", Shared[dict[str, Any]])  # the body of GET /status, shared by the requests
METRICS_STATE = web.AppKey("metrics_state", Shared[list[Metric]])  # the pool's state as GET /metrics shows it


def setup_operator_endpoints(app: web.Application) -> None:
    """After the application's context is set."""
    seconds = app[CONTEXT].config.server.metrics_cache_seconds
    app[STATUS] = closed_on_cleanup(app, Shared(seconds), warm=lambda: _status(app))
    app.router.add_get("/status", get_status)
    app.router.add_get("/metrics", get_metrics)
    # The state /metrics shows: made in the background as the application starts and again before it expires, as
    # /status's, and while scrapes come, every seconds (one waits for the store only after five quiet minutes,
    # page_data.WATCHED_SECONDS); every making is shown at once.
    app[METRICS_STATE] = closed_on_cleanup(app, Shared(seconds), warm=lambda: _state_shown(app))


async def _state_shown(app: web.Application) -> list[Metric]:
    families = await _read_state(app)
    app[CONTEXT].stats.metrics.show_state(families)
    return families


def operator_application(ctx: PoolContext, chain_status: ChainStatus | None) -> web.Application:
    """The application of the operator's loopback listener: these endpoints alone, over the farmers' application's
    context and the loops' view of the chain."""
    app = web.Application()
    app[CONTEXT] = ctx
    app[OPERATOR_LISTENER] = True
    if chain_status is not None:
        app[CHAIN_STATUS] = chain_status
    setup_operator_endpoints(app)
    return app


CLOSED = (
    '{"error": "operator endpoints are closed: set server.operator_token (and send it as a Bearer token), '
    'or use server.operator_listen"}'
)


def _authorized(request: web.Request) -> None:
    if request.app.get(OPERATOR_LISTENER, False):
        return
    token = request.app[CONTEXT].config.server.operator_token
    if token is None:
        raise web.HTTPForbidden(text=CLOSED, content_type="application/json")
    given = request.headers.get("Authorization", "")
    # aiohttp passes header bytes that are not UTF-8 on as surrogates: encoded back as they came, never a failure.
    if not hmac.compare_digest(given.encode(errors="surrogateescape"), f"Bearer {token}".encode()):
        raise web.HTTPUnauthorized(
            text='{"error": "operator token required"}',
            content_type="application/json",
            headers={"WWW-Authenticate": 'Bearer realm="pool operator"'},
        )


async def _chain(app: web.Application) -> dict[str, Any]:
    """The node's peak and both sync flags, asked now; the wallet's spendable balance too."""
    ctx = app[CONTEXT]
    chain: dict[str, Any] = {"peak_height": None, "node_synced": False, "wallet_synced": False, "error": None}
    chain["wallet_spendable"] = None
    try:
        peak = await ctx.node.peak()
        chain.update(peak_height=peak.height, node_synced=peak.synced)
        chain["wallet_synced"] = await ctx.wallet.synced()
        chain["wallet_spendable"] = await ctx.wallet.spendable_balance()
    except ChainUnavailable as exc:
        chain["error"] = str(exc)
    chain["wallet_unavailable_since"] = ctx.wallet.unavailable_since
    loops_status = app.get(CHAIN_STATUS)
    chain["loops_see_chain_ready"] = None if loops_status is None else loops_status.ready
    return chain


async def get_status(request: web.Request) -> web.Response:
    _authorized(request)
    body = await request.app[STATUS].get(lambda: _status(request.app))
    return web.json_response(body, headers={"Cache-Control": "no-store"})


async def _status(app: web.Application) -> dict[str, Any]:
    ctx = app[CONTEXT]
    now = ctx.now()
    chain = await _chain(app)
    counts: dict[str, int] = {}
    for count in await pool_partials(ctx).day_counts(ctx.store, now):
        counts[count.outcome] = counts.get(count.outcome, 0) + count.count
    open_round = await ctx.store.open_round()
    open_round_json: dict[str, Any] | None = None
    if open_round is not None:
        assert open_round.id is not None
        batches = await ctx.store.batches(open_round.id)
        open_round_json = {
            "id": open_round.id,
            "created_at": open_round.created_at,
            "farmer_total": open_round.farmer_total,
            "pool_fee": open_round.pool_fee,
            "blockchain_fees": open_round.blockchain_fees,
            "batches": {status: sum(1 for b in batches if b.status.value == status) for status in _statuses(batches)},
        }
    books = await build_books(
        ctx.store,
        chain["wallet_spendable"],
        chain["error"] if chain["wallet_spendable"] is None else None,
        limit=5,
        owed_limit=STATUS_OWED_BALANCES,
        with_payments=False,
    )
    return {
        "pool": ctx.config.pool.name,
        "time": now,
        "chain": chain,
        "loops": {
            name: {
                "runs": health.runs,
                "last_success": health.last_success,
                "last_error": health.last_error,
                "last_error_at": health.last_error_at,
                "last_duration_seconds": health.last_duration,
            }
            for name, health in sorted(ctx.stats.loops.items())
        },
        "partials": {
            "pending": await ctx.store.count_pending_partials(),
            "last_24h": counts,
            "answered_since_start": {
                "accepted": ctx.stats.partials_accepted,
                "resent": ctx.stats.partials_resent,
                "refused": dict(ctx.stats.partials_rejected),
            },
        },
        "open_round": open_round_json,
        "ledger": books_json(books),
    }


def _statuses(batches: list[Any]) -> list[str]:
    return sorted({b.status.value for b in batches})


async def get_metrics(request: web.Request) -> web.Response:
    _authorized(request)
    ctx = request.app[CONTEXT]
    metrics = ctx.stats.metrics

    seconds = ctx.config.server.metrics_cache_seconds
    await request.app[METRICS_STATE].get(lambda: _state_shown(request.app))
    response = web.Response(body=metrics.exposition(min(seconds, EXPOSITION_SECONDS)))
    response.headers["Content-Type"] = CONTENT_TYPE_LATEST
    return response


async def _read_state(app: web.Application) -> list[Metric]:
    chain = await _chain(app)
    figures = ChainFigures(
        node_up=chain["peak_height"] is not None,
        peak_height=chain["peak_height"],
        node_synced=chain["node_synced"],
        wallet_synced=chain["wallet_synced"],
        wallet_spendable=chain["wallet_spendable"],
        wallet_unavailable_since=chain["wallet_unavailable_since"],
    )
    return await state_families(app[CONTEXT].store, figures)
