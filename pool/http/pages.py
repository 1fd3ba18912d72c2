"""The web pages: the pool page (GET /), the blocks page with each round's effort (GET /blocks), a farmer's public
page by launcher id (GET /farmers/{launcher_id}), all public, and a farmer's own page (GET /login).

GET /login with the signed query chia's GUI opens (launcher_id, authentication_token, signature: the same check as
GET /farmer, over method "get_login") opens a session: a random token in an HttpOnly, SameSite=Lax cookie that
expires after ``server.session_lifetime``; the store keeps only the token's hash, at most
``server.sessions_per_farmer`` of them per farmer (the oldest go first), and none once the farmer's authentication key
changes. The browser is then sent to the plain /login, which shows the page for as long as the session lasts, so that
a reload needs no new signature. Without a valid signature or session nothing about any farmer is shown. The page's
settings form posts to /login/settings with the session's CSRF token (pool/http/settings.py).
"""

from __future__ import annotations

import asyncio
import datetime
import hashlib
import secrets
from collections.abc import Callable
from dataclasses import dataclass

import aiohttp_jinja2
import jinja2
from aiohttp import web

from pool.chia_adapter import PoolErrorCode, bytes32
from pool.config import PoolConfig, ServerConfig
from pool.context import PoolContext
from pool.estimates import format_space
from pool.http.keys import CONTEXT, FARMERS
from pool.http.limits import client_of
from pool.http.page_data import (
    EFFORT_BLOCKS_PER_PAGE,
    BlockRound,
    PoolView,
    RoundSoFar,
    Shared,
    block_rounds,
    closed_on_cleanup,
    farmer_view,
    older_pages_view,
    parse_block_cursor,
    peak_height,
    percent,
    pool_view,
    public_farmer_view,
    round_so_far,
)
from pool.http.settings import CSRF_FIELD, SETTINGS_PATH, SettingsView, csrf_ok, parse_settings, settings_view
from pool.payouts.books import xch
from pool.protocol.encoding import parse_bytes32, parse_g2, parse_uint64, query_value
from pool.protocol.errors import PoolProtocolError
from pool.store.models import FarmerRecord, WebSession

SESSION_COOKIE = "pool_session"
LOGIN_PARAMETERS = ("launcher_id", "authentication_token", "signature")
# The pool page's figures, shared by the requests of a few seconds (server.page_cache_seconds): GET / is public.
POOL_VIEW = web.AppKey("pool_view", Shared[PoolView])
PEAK_HEIGHT = web.AppKey("peak_height", Shared[int])  # likewise the node's peak, for the farmer pages
NEWEST_BLOCKS = web.AppKey("newest_blocks", Shared[tuple[list[BlockRound], str | None, RoundSoFar]])


def setup_pages(app: web.Application) -> None:
    filters: dict[str, Callable[..., str]] = {
        "xch": xch,
        "space": format_space,
        "utc": utc,
        "duration": duration,
        "percent": percent,
    }
    aiohttp_jinja2.setup(
        app,
        loader=jinja2.PackageLoader("pool.http", "templates"),
        autoescape=jinja2.select_autoescape(default=True),
        undefined=jinja2.StrictUndefined,
        filters=filters,
    )
    ctx = app[CONTEXT]
    seconds = ctx.config.server.page_cache_seconds
    # Made as the pool starts, in the background: the first page after the start does not wait for them.
    app[POOL_VIEW] = closed_on_cleanup(app, Shared(seconds), warm=lambda: pool_view(ctx))
    app[PEAK_HEIGHT] = closed_on_cleanup(app, Shared(seconds), warm=lambda: peak_height(ctx))
    app[NEWEST_BLOCKS] = closed_on_cleanup(app, Shared(seconds), warm=lambda: _newest_blocks(ctx))
    app.router.add_get("/", pool_page)
    app.router.add_get("/blocks", blocks_page)
    app.router.add_get("/farmers/{launcher_id}", public_farmer_page)
    app.router.add_get("/login", farmer_page)
    app.router.add_post(SETTINGS_PATH, save_settings)
    app.router.add_get("/v2/login", farmer_page)  # where a v2 farmer's login link points; either works for both


@dataclass(frozen=True)
class ExplorerLinks:
    """Where the pages link a coin or a transaction: the operator's block explorer (server.explorer_coin_url,
    server.explorer_tx_url), or nowhere."""

    server: ServerConfig

    def coin(self, coin_id: str) -> str | None:
        template = self.server.explorer_coin_url
        return None if template is None else template.replace("{id}", coin_id)

    def tx(self, tx_id: str) -> str | None:
        template = self.server.explorer_tx_url
        return None if template is None else template.replace("{id}", tx_id)


@dataclass(frozen=True)
class PolicyView:
    """The payout policy as the pool page shows it, from the configuration."""

    fee: str
    scheme: str
    pplns_window: int
    interval: int
    min_payment: int
    min_distribution: int
    relative_lock_height: int
    minimum_difficulty: int

    @staticmethod
    def of(config: PoolConfig) -> PolicyView:
        payouts = config.payouts
        return PolicyView(
            fee=config.pool.fee_display,
            scheme=payouts.scheme,
            pplns_window=payouts.pplns_window if payouts.scheme == "pplns" else 0,
            interval=payouts.interval,
            min_payment=payouts.min_payment,
            min_distribution=payouts.min_distribution,
            relative_lock_height=config.pool.relative_lock_height,
            minimum_difficulty=config.difficulty.minimum,
        )


def duration(seconds: int) -> str:
    """Seconds as the largest whole units (1 d 2 h, 30 min, 45 s)."""
    parts = []
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60), ("s", 1)):
        if seconds >= size:
            parts.append(f"{seconds // size} {unit}")
            seconds %= size
    return " ".join(parts[:2]) or "0 s"


def utc(timestamp: int | None) -> str:
    if not timestamp:
        return "-"
    return datetime.datetime.fromtimestamp(timestamp, datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")


def join_url(request: web.Request) -> str | None:
    """From the configuration only (server.public_url, else the address the pool listens on): never from the
    request's Host header, which the client writes and a caching proxy would serve to everyone."""
    return request.app[CONTEXT].config.server.join_url()


async def pool_page(request: web.Request) -> web.Response:
    ctx = request.app[CONTEXT]
    rounds_before, blocks_before = _cursor(request, "rounds_before"), _block_cursor(request)
    view = await request.app[POOL_VIEW].get(lambda: pool_view(ctx))
    if rounds_before is not None or blocks_before is not None:  # older pages: the figures stay the shared ones
        view = await older_pages_view(ctx, view, rounds_before, blocks_before)
    policy = PolicyView.of(ctx.config)
    return _page("pool.html", request, {"pool": view, "policy": policy, "join_url": join_url(request)})


async def blocks_page(request: web.Request) -> web.Response:
    """The blocks won with each round's effort, a page at a time, and the round in progress (docs/api.md)."""
    ctx = request.app[CONTEXT]
    before = _block_cursor(request)
    # The first page and the round in progress (its sums of points and a node call) are shared like the pool page's
    # figures; an older page reads only its own blocks.
    found, older, so_far = await request.app[NEWEST_BLOCKS].get(lambda: _newest_blocks(ctx))
    if before is not None:
        found, older = await block_rounds(ctx, EFFORT_BLOCKS_PER_PAGE, before)
    context = {"pool_name": ctx.config.pool.name, "blocks": found, "older": older, "so_far": so_far}
    return _page("blocks.html", request, {**context, "first_page": before is None})


async def _newest_blocks(ctx: PoolContext) -> tuple[list[BlockRound], str | None, RoundSoFar]:
    found, older = await block_rounds(ctx, EFFORT_BLOCKS_PER_PAGE)
    return found, older, await round_so_far(ctx)


async def public_farmer_page(request: web.Request) -> web.Response:
    """Anyone's view of a farmer by launcher id (what GET /api/v1/farmers/{launcher_id} answers): never its payout
    address, instructions, settings or keys; its own signed login link adds those (/login)."""
    ctx = request.app[CONTEXT]
    try:
        launcher_id = parse_bytes32(request.match_info["launcher_id"], "launcher_id")
    except PoolProtocolError:
        raise web.HTTPBadRequest(text="launcher_id must be 32 bytes in hex") from None
    farmer = await ctx.store.get_farmer(launcher_id)
    if farmer is None:
        context: dict[str, object] = {"pool_name": ctx.config.pool.name, "launcher_id": launcher_id.hex()}
        return _page("farmer_unknown.html", request, context, status=404)
    peak = await request.app[PEAK_HEIGHT].get(lambda: peak_height(ctx))
    view = await public_farmer_view(ctx, farmer, peak, _cursor(request, "payouts_before"))
    return _page("farmer_public.html", request, {"pool_name": ctx.config.pool.name, "farmer": view})


async def farmer_page(request: web.Request) -> web.StreamResponse:
    ctx = request.app[CONTEXT]
    if any(name in request.query for name in LOGIN_PARAMETERS):
        signed_by = await _signed_login(request)
        new_token = secrets.token_urlsafe(32)
        now, lifetime = ctx.now(), ctx.config.server.session_lifetime
        opened = await ctx.store.add_session(
            WebSession(_token_hash(new_token), signed_by.launcher_id, now, now + lifetime),
            authentication_public_key=signed_by.authentication_public_key,
            max_per_launcher=ctx.config.server.sessions_per_farmer,
        )
        if not opened:  # the key that signed was replaced (PUT /farmer) while the login was checked
            raise PoolProtocolError(PoolErrorCode.INVALID_SIGNATURE, "the authentication key changed: sign again")
        redirect = web.HTTPSeeOther("/login")
        redirect.set_cookie(
            SESSION_COOKIE,
            new_token,
            max_age=lifetime,
            path="/",
            httponly=True,
            samesite="Lax",  # sent on the GUI's top-level link and the redirect; never on cross-site sub-requests
            secure=request.secure or (ctx.config.server.public_url or "").startswith("https://"),  # TLS at a proxy
        )
        redirect.headers["Cache-Control"] = "no-store"
        return redirect
    found = await _session_of(request)
    if isinstance(found, web.Response):
        return found
    token, session, farmer = found
    settings, changes = await asyncio.gather(
        ctx.store.farmer_settings(farmer.launcher_id), ctx.store.setting_changes(farmer.launcher_id)
    )
    view = settings_view(ctx.config, settings, changes, token, saved="saved" in request.query)
    return await _farmer_page(request, farmer, session, view)


async def _session_of(request: web.Request) -> tuple[str, WebSession, FarmerRecord] | web.Response:
    """The session's token, the session and its farmer; or the "sign in" page to answer."""
    ctx = request.app[CONTEXT]
    session = None
    token = request.cookies.get(SESSION_COOKIE)
    if token:
        session = await ctx.store.get_session(_token_hash(token), ctx.now())
    farmer = None if session is None else await ctx.store.get_farmer(session.launcher_id)
    if token is None or session is None or farmer is None:
        response = _page("login_needed.html", request, {"pool_name": ctx.config.pool.name}, status=401)
        if token:
            response.del_cookie(SESSION_COOKIE, path="/")
        return response
    return token, session, farmer


async def _farmer_page(
    request: web.Request, farmer: FarmerRecord, session: WebSession, settings: SettingsView, status: int = 200
) -> web.Response:
    ctx = request.app[CONTEXT]
    payouts_before, earnings_before = _cursor(request, "payouts_before"), _cursor(request, "earnings_before")
    peak = await request.app[PEAK_HEIGHT].get(lambda: peak_height(ctx))
    view = await farmer_view(ctx, farmer, peak, payouts_before, earnings_before)
    context = {"pool_name": ctx.config.pool.name, "farmer": view, "expires_at": session.expires_at}
    response = _page("farmer.html", request, {**context, "settings": settings}, status=status)
    response.headers["Cache-Control"] = "no-store, private"
    return response


async def save_settings(request: web.Request) -> web.StreamResponse:
    """POST of the settings form: refused without the session's CSRF token; saved (and each change recorded) only
    when every value is within the pool's bounds, else the page again with what is wrong."""
    ctx = request.app[CONTEXT]
    found = await _session_of(request)
    if isinstance(found, web.Response):
        return found
    token, session, farmer = found
    form = {name: value for name, value in (await request.post()).items() if isinstance(value, str)}
    if not csrf_ok(token, form.get(CSRF_FIELD)):
        return web.Response(
            status=403, text="The form's CSRF token is missing or wrong: reload the page and try again."
        )
    current = await ctx.store.farmer_settings(farmer.launcher_id)
    chosen, errors = parse_settings(ctx.config, current, form)
    if errors:
        changes = await ctx.store.setting_changes(farmer.launcher_id)
        view = settings_view(ctx.config, current, changes, token, form=form, errors=errors)
        return await _farmer_page(request, farmer, session, view, status=400)
    await ctx.store.change_farmer_settings(chosen, ctx.now())
    return web.HTTPSeeOther("/login?saved#settings")


async def _signed_login(request: web.Request) -> FarmerRecord:
    """The farmer once its GET /login signature checks out; PoolProtocolError otherwise."""
    query = request.query
    launcher_id = parse_bytes32(query_value(query, "launcher_id"), "launcher_id")
    token = parse_uint64(query_value(query, "authentication_token"), "authentication_token")
    signature = parse_g2(query_value(query, "signature"), "signature")
    return await request.app[FARMERS].authenticated(
        "get_login", launcher_id, token, signature, client_of(request), version=None
    )


def _cursor(request: web.Request, name: str) -> int | None:
    """A list's page: the id its rows come before (from the page's "older" link)."""
    value = request.query.get(name)
    if value is None:
        return None
    if not (value.isascii() and value.isdigit()) or len(value) > 18:
        raise web.HTTPBadRequest(text=f"{name} must be a row id (a positive integer)")
    return int(value)


def _block_cursor(request: web.Request) -> tuple[int, bytes32] | None:
    """The blocks' page: the (coin height, coin id) of the last claim of the page before ("height-coin id"), as
    ``blocks_before`` (the pool page) or ``before`` (the blocks page)."""
    name = "before" if request.path == "/blocks" else "blocks_before"
    value = request.query.get(name)
    if value is None:
        return None
    try:
        return parse_block_cursor(value)
    except ValueError:
        raise web.HTTPBadRequest(text=f"{name} must be a height and a coin id (height-hex)") from None


def _token_hash(token: str) -> bytes32:
    # A cookie's bytes that are not UTF-8 come from aiohttp as surrogates: hashed as they came, they name no session.
    return bytes32(hashlib.sha256(token.encode(errors="surrogateescape")).digest())


def _page(template: str, request: web.Request, context: dict[str, object], status: int = 200) -> web.Response:
    links = ExplorerLinks(request.app[CONTEXT].config.server)
    response = aiohttp_jinja2.render_template(template, request, {**context, "links": links}, status=status)
    response.headers["Content-Security-Policy"] = (
        "default-src 'none'; style-src 'unsafe-inline'; img-src 'self' https: data:; frame-ancestors 'none'"
    )
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response
