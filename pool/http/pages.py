"""The web pages: the pool page (GET /, public) and a farmer's page (GET /login).

GET /login with the signed query chia's GUI opens (launcher_id, authentication_token, signature: the same check as
GET /farmer, over method "get_login") opens a session: a random token in an HttpOnly, SameSite=Lax cookie that
expires after ``server.session_lifetime``; the store keeps only the token's hash, at most
``server.sessions_per_farmer`` of them per farmer (the oldest go first), and none once the farmer's authentication key
changes. The browser is then sent to the plain /login, which shows the page for as long as the session lasts, so that
a reload needs no new signature. Without a valid signature or session nothing about any farmer is shown.
"""

from __future__ import annotations

import datetime
import hashlib
import secrets

import aiohttp_jinja2
import jinja2
from aiohttp import web

from pool.chia_adapter import PoolErrorCode, bytes32
from pool.estimates import format_space
from pool.http.keys import CONTEXT, FARMERS
from pool.http.limits import client_of
from pool.http.page_data import farmer_view, pool_view
from pool.payouts.books import xch
from pool.protocol.encoding import parse_bytes32, parse_g2, parse_uint64, query_value
from pool.protocol.errors import PoolProtocolError
from pool.store.models import FarmerRecord, WebSession

SESSION_COOKIE = "pool_session"
LOGIN_PARAMETERS = ("launcher_id", "authentication_token", "signature")


def setup_pages(app: web.Application) -> None:
    aiohttp_jinja2.setup(
        app,
        loader=jinja2.PackageLoader("pool.http", "templates"),
        autoescape=jinja2.select_autoescape(default=True),
        undefined=jinja2.StrictUndefined,
        filters={"xch": xch, "space": format_space, "utc": utc},
    )
    app.router.add_get("/", pool_page)
    app.router.add_get("/login", farmer_page)
    app.router.add_get("/v2/login", farmer_page)  # where a v2 farmer's login link points; either works for both


def utc(timestamp: int | None) -> str:
    if not timestamp:
        return "-"
    return datetime.datetime.fromtimestamp(timestamp, datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")


def join_url(request: web.Request) -> str:
    configured = request.app[CONTEXT].config.server.public_url
    return configured if configured is not None else str(request.url.origin())


async def pool_page(request: web.Request) -> web.Response:
    ctx = request.app[CONTEXT]
    view = await pool_view(ctx)
    return _page("pool.html", request, {"pool": view, "join_url": join_url(request)})


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
    session = None
    token = request.cookies.get(SESSION_COOKIE)
    if token:
        session = await ctx.store.get_session(_token_hash(token), ctx.now())
    farmer = None if session is None else await ctx.store.get_farmer(session.launcher_id)
    if session is None or farmer is None:
        response = _page("login_needed.html", request, {"pool_name": ctx.config.pool.name}, status=401)
        if token:
            response.del_cookie(SESSION_COOKIE, path="/")
        return response
    view = await farmer_view(ctx, farmer)
    response = _page(
        "farmer.html", request, {"pool_name": ctx.config.pool.name, "farmer": view, "expires_at": session.expires_at}
    )
    response.headers["Cache-Control"] = "no-store, private"
    return response


async def _signed_login(request: web.Request) -> FarmerRecord:
    """The farmer once its GET /login signature checks out; PoolProtocolError otherwise."""
    query = request.query
    launcher_id = parse_bytes32(query_value(query, "launcher_id"), "launcher_id")
    token = parse_uint64(query_value(query, "authentication_token"), "authentication_token")
    signature = parse_g2(query_value(query, "signature"), "signature")
    return await request.app[FARMERS].authenticated(
        "get_login", launcher_id, token, signature, client_of(request), version=None
    )


def _token_hash(token: str) -> bytes32:
    return bytes32(hashlib.sha256(token.encode()).digest())


def _page(template: str, request: web.Request, context: dict[str, object], status: int = 200) -> web.Response:
    response = aiohttp_jinja2.render_template(template, request, context, status=status)
    response.headers["Content-Security-Policy"] = (
        "default-src 'none'; style-src 'unsafe-inline'; img-src 'self' https: data:; frame-ancestors 'none'"
    )
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response
