"""GET /healthz and GET /readyz: what a load balancer or a container runtime asks of each pool process.

``/healthz``: the process answers (its event loop runs). ``/readyz``: it can take partials now, so a balancer sends
them here: its store answers, its full node answers and is synced, and a leader said it leads within
``LEADER_SEEN_WITHIN`` seconds (partials taken without a leader would wait unconfirmed, and nothing would be claimed or
paid). 200 ``{"ready": true}``, or 503 with the reasons. Open without the operator token: they name no farmer and no
figure, and the per-address rate limit applies to them as to every request.
"""

from __future__ import annotations

import asyncio
import logging

from aiohttp import web

from pool.chain.interface import ChainUnavailable
from pool.http.keys import CONTEXT

log = logging.getLogger(__name__)

CHECK_TIMEOUT = 2.0  # seconds for the store and the node to answer a readiness probe
# The leader says it leads every pool.leader.LEADER_POLL_SECONDS (2 s); a few missed beats are a stalled leader.
LEADER_SEEN_WITHIN = 30


def setup_health_endpoints(app: web.Application) -> None:
    app.router.add_get("/healthz", get_healthz)
    app.router.add_get("/readyz", get_readyz)


async def get_healthz(request: web.Request) -> web.Response:
    return web.json_response({"alive": True}, headers={"Cache-Control": "no-store"})


async def get_readyz(request: web.Request) -> web.Response:
    reasons = await not_ready_because(request)
    body = {"ready": not reasons, "reasons": reasons}
    return web.json_response(body, status=503 if reasons else 200, headers={"Cache-Control": "no-store"})


async def not_ready_because(request: web.Request) -> list[str]:
    ctx = request.app[CONTEXT]
    reasons: list[str] = []
    try:
        seen_at = await asyncio.wait_for(ctx.store.leader_seen_at(), CHECK_TIMEOUT)
    except Exception as exc:  # whatever the driver raises when the database is away: the answer is "not ready"
        log.debug("readiness: the store did not answer", exc_info=True)
        reasons.append(f"store: {_said(exc)}")
    else:
        silent = ctx.now() - seen_at
        if silent > LEADER_SEEN_WITHIN:
            reasons.append("leader: none seen yet" if seen_at == 0 else f"leader: none seen for {silent} s")
    try:
        peak = await asyncio.wait_for(ctx.node.peak(), CHECK_TIMEOUT)
    except (ChainUnavailable, TimeoutError) as exc:
        reasons.append(f"full node: {_said(exc)}")
    else:
        if not peak.synced:
            reasons.append(f"full node: not synced (height {peak.height})")
    return reasons


def _said(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError):
        return f"no answer within {CHECK_TIMEOUT:.0f} s"
    return str(exc) or type(exc).__name__
