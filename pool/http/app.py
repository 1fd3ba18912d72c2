"""The farmer-facing HTTP server: Pool Protocol 1.0 endpoints, and v2's under /v2/, on aiohttp.

Protocol errors are answered with HTTP 200 and an ErrorResponse body (``{"error_code", "error_message"}``), because
chia's farmer reads error codes only from 200 replies. Malformed requests get REQUEST_FAILED, an unexpected failure
SERVER_EXCEPTION with a generic message (the details go to the log); never a 500 or a traceback.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable

from aiohttp import web

from pool.chain.interface import ChainUnavailable
from pool.chia_adapter import (
    POOL_PROTOCOL_VERSION,
    GetAuthRequest,
    GetFarmerResponse,
    GetPoolInfoResponse,
    PoolErrorCode,
    PostFarmerRequest,
    PutFarmerRequest,
    Streamable,
    pool_info_memoization,
    uint8,
    uint32,
    uint64,
)
from pool.context import PoolContext
from pool.http.admission import Admission
from pool.http.api import setup_api
from pool.http.cooldown import Cooldowns
from pool.http.guard import json_body, protocol_methods, quiet_http_parser_errors
from pool.http.health import setup_health_endpoints
from pool.http.keys import CONTEXT, COOLDOWNS, FARMERS, RATE_LIMITS
from pool.http.limits import client_of, per_address_limit
from pool.http.operator_endpoints import setup_operator_endpoints
from pool.http.pages import setup_pages
from pool.protocol.encoding import (
    parse_bytes32,
    parse_g2,
    parse_uint64,
    partial_launcher_id,
    partial_request_from_json,
    query_value,
    streamable_from_json,
)
from pool.protocol.errors import PoolProtocolError, one_line
from pool.protocol.farmers import FarmerChecks
from pool.protocol.partials import PartialChecker
from pool.protocol.rate_limits import RateLimits
from pool.protocol.signage_points import SignagePointCache
from pool.protocol.v2 import MAX_TOKEN_LENGTH, V2Checks
from pool.store.models import FarmerRecord

log = logging.getLogger(__name__)

PARTIALS = web.AppKey("partials", PartialChecker)
V2 = web.AppKey("v2", V2Checks)
ADMISSION = web.AppKey("admission", Admission)
SIGNAGE_POINTS = web.AppKey("signage_points", SignagePointCache)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def create_app(
    ctx: PoolContext,
    *,
    partials: PartialChecker,
    farmers: FarmerChecks,
    signage_points: SignagePointCache,
    admission: Admission,
    limits: RateLimits,
    cooldowns: Cooldowns,
    v2: V2Checks,
) -> web.Application:
    """The routes and middlewares over objects the composition root (pool/server.py) built: this module builds none."""
    quiet_http_parser_errors()
    app = web.Application(
        client_max_size=ctx.config.partials.max_body_bytes,
        # The per-address limit first: a client over its limit costs no more than this look-up.
        middlewares=[per_address_limit, _request_timing, _protocol_errors, protocol_methods],
    )
    app[CONTEXT] = ctx
    app[RATE_LIMITS] = limits
    app[SIGNAGE_POINTS] = signage_points  # shared with the confirmation loop
    app[PARTIALS] = partials
    app[FARMERS] = farmers
    app[ADMISSION] = admission
    app[COOLDOWNS] = cooldowns
    app[V2] = v2
    app.router.add_get("/pool_info", get_pool_info)
    app.router.add_get("/farmer", get_farmer)
    app.router.add_post("/farmer", post_farmer)
    app.router.add_put("/farmer", put_farmer)
    app.router.add_post("/partial", post_partial)
    # Pool Protocol v2 (a PlotNFT v2's farmer), beside v1: the same farmers' table, points and ledger.
    app.router.add_get("/v2/pool_info", get_pool_info_v2)
    app.router.add_get("/v2/auth", get_auth_v2)
    app.router.add_get("/v2/farmer", get_farmer_v2)
    app.router.add_post("/v2/farmer", post_farmer_v2)
    app.router.add_put("/v2/farmer", put_farmer_v2)
    app.router.add_post("/v2/partial", post_partial_v2)
    setup_pages(app)  # GET / and GET /login
    setup_api(app)  # GET /api/v1/... (after the pages: it shares their cached figures)
    setup_operator_endpoints(app)  # GET /status and GET /metrics
    setup_health_endpoints(app)  # GET /healthz and GET /readyz
    return app


# ---------------------------------------------------------------------------------------------------- endpoints


async def get_pool_info(request: web.Request) -> web.Response:
    return _reply(_pool_info(request, POOL_PROTOCOL_VERSION))


async def get_pool_info_v2(request: web.Request) -> web.Response:
    return _reply(_pool_info(request, uint8(2)))


def _pool_info(request: web.Request, protocol_version: uint8) -> GetPoolInfoResponse:
    """The same answer for both versions but the version: chia's wallet creates a v2 PlotNFT from the v1 answer's
    target, lock height and pool memoization."""
    ctx = request.app[CONTEXT]
    pool = ctx.config.pool
    return GetPoolInfoResponse(
        name=pool.name,
        logo_url=pool.logo_url,
        minimum_difficulty=uint64(ctx.config.difficulty.minimum),
        relative_lock_height=uint32(pool.relative_lock_height),
        protocol_version=protocol_version,
        fee=pool.fee_display,
        description=pool.description,
        target_puzzle_hash=pool.target_puzzle_hash,
        authentication_token_timeout=uint8(pool.authentication_token_timeout),
        pool_memoization=pool_info_memoization(pool.pool_memoization),
    )


async def post_farmer(request: web.Request) -> web.Response:
    return await _register(request, request.app[FARMERS])


async def put_farmer(request: web.Request) -> web.Response:
    return await _update(request, request.app[FARMERS])


async def _register(request: web.Request, checks: FarmerChecks | V2Checks) -> web.Response:
    """POST /farmer and POST /v2/farmer: the same body, checked by the version's rules."""
    farmer_request = streamable_from_json(PostFarmerRequest, await json_body(request))
    return _reply(await checks.register(farmer_request, client_of(request)))


async def _update(request: web.Request, checks: FarmerChecks | V2Checks) -> web.Response:
    """PUT /farmer and PUT /v2/farmer: the same body, checked by the version's rules."""
    farmer_request = streamable_from_json(PutFarmerRequest, await json_body(request))
    return _reply(await checks.update(farmer_request, client_of(request)))


async def get_farmer(request: web.Request) -> web.Response:
    return _farmer_reply(request, await _authenticated(request, "get_farmer"))


def _farmer_reply(request: web.Request, farmer: FarmerRecord) -> web.Response:
    """GET /farmer's (and GET /v2/farmer's) answer: the farmer's key, payout instructions, difficulty and points."""
    return _reply(
        GetFarmerResponse(
            farmer.authentication_public_key,
            farmer.payout_instructions,
            uint64(farmer.difficulty_at(request.app[CONTEXT].now())),
            uint64(farmer.points),
        )
    )


async def post_partial(request: web.Request) -> web.Response:
    return await _partial(request, version=1)


async def _partial(request: web.Request, version: int) -> web.Response:
    # The body first: a client that is slow to send it must not hold one of the places of partials in flight. Its
    # decoding after admission: a partial refused as busy costs the pool as little as possible.
    body = await json_body(request)
    admission, address = request.app[ADMISSION], client_of(request)
    try:
        admission.enter(address)
    except PoolProtocolError as busy:
        request.app[CONTEXT].stats.rejected(busy.code.name)
        raise
    try:
        partials = request.app[PARTIALS]
        partials.admit(partial_launcher_id(body), address)
        reply = await partials.submit(partial_request_from_json(body), address, version)
        admission.prove(address)  # accepted: its signatures verified, the address is a farmer's
        return _reply(reply)
    finally:
        admission.leave(address)


async def get_auth_v2(request: web.Request) -> web.Response:
    query = request.query
    auth_request = GetAuthRequest(
        parse_bytes32(query_value(query, "launcher_id"), "launcher_id"),
        uint64(parse_uint64(query_value(query, "timestamp"), "timestamp")),
        parse_g2(query_value(query, "signature"), "signature"),
    )
    return _reply(await request.app[V2].auth(auth_request, client_of(request)))


async def get_farmer_v2(request: web.Request) -> web.Response:
    query = request.query
    launcher_id = parse_bytes32(query_value(query, "launcher_id"), "launcher_id")
    token = one_line(query.get("authentication_token_v2", ""), MAX_TOKEN_LENGTH + 1)
    with request.app[RATE_LIMITS].signed_request(launcher_id) as allowance:
        farmer = await request.app[V2].token_farmer(launcher_id, token)
        allowance.verified()
    return _farmer_reply(request, farmer)


async def post_farmer_v2(request: web.Request) -> web.Response:
    return await _register(request, request.app[V2])


async def put_farmer_v2(request: web.Request) -> web.Response:
    return await _update(request, request.app[V2])


async def post_partial_v2(request: web.Request) -> web.Response:
    return await _partial(request, version=2)


# ---------------------------------------------------------------------------------------------------- helpers


async def _authenticated(request: web.Request, method_name: str) -> FarmerRecord:
    """GET /farmer carries launcher_id, authentication_token and signature as query parameters."""
    query = request.query
    launcher_id = parse_bytes32(query_value(query, "launcher_id"), "launcher_id")
    token = parse_uint64(query_value(query, "authentication_token"), "authentication_token")
    signature = parse_g2(query_value(query, "signature"), "signature")
    return await request.app[FARMERS].authenticated(method_name, launcher_id, token, signature, client_of(request))


def _reply(message: Streamable) -> web.Response:
    return web.json_response(message.to_json_dict())


def _error(code: PoolErrorCode, message: str) -> web.Response:
    return _reply(PoolProtocolError(code, message).response())


@web.middleware
async def _request_timing(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Latency per route for GET /metrics (the route's pattern, never the raw path: no unbounded label values)."""
    started = time.monotonic()
    try:
        return await handler(request)
    finally:
        resource = request.match_info.route.resource
        endpoint = resource.canonical if resource is not None else "unmatched"
        request.app[CONTEXT].stats.metrics.http_request_seconds.labels(
            endpoint=endpoint, method=request.method
        ).observe(time.monotonic() - started)


@web.middleware
async def _protocol_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Every failure becomes an ErrorResponse the farmer can read; routing errors stay as they are (404, and 405
    outside the protocol's endpoints: see guard.protocol_methods)."""
    try:
        return await handler(request)
    except PoolProtocolError as error:
        log.debug("%s %s refused: %s", one_line(request.method, 16), one_line(request.path, 80), error)
        request.app[COOLDOWNS].refused(client_of(request), error)
        return _reply(error.response())
    except ChainUnavailable as exc:
        log.warning("%s %s: %s", request.method, one_line(request.path, 80), exc)
        return _error(PoolErrorCode.SERVER_EXCEPTION, "the pool cannot reach its full node right now; try again later")
    except web.HTTPException:
        raise
    except Exception:
        log.exception("unexpected error in %s %s", request.method, one_line(request.path, 80))
        return _error(PoolErrorCode.SERVER_EXCEPTION, "internal error in the pool server")
