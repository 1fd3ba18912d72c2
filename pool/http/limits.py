"""The per-address rate limit, the first thing every request meets (before its body is read), and who the client is.

The client is the TCP peer, unless the peer is one of ``limits.trusted_proxies``: then it is the last address in
``X-Forwarded-For`` that is not a trusted proxy itself (each proxy appends the address it received the request from,
so entries left of the trusted ones are whatever the client wrote, and only the right-most untrusted one is known to
be true). An IPv6 client counts as its network of ``limits.ipv6_prefix`` bits (a /48 by default): one subscriber
usually holds a /48 or a /56, and counted by its /64s it would have thousands of buckets. The price: clients that share
such a network (a hosting provider's customers, where it hands out /64s from one /48) share their limits.

The key is kept on the request (``CLIENT``) for the limits checked later: admission of partials, and the budgets of
failed signatures and chain look-ups.
"""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Awaitable, Callable

from aiohttp import web

from pool.config import IpNetwork, LimitsConfig
from pool.http.guard import PROTOCOL_PATHS
from pool.http.keys import CLIENT, CONTEXT, COOLDOWNS, RATE_LIMITS
from pool.protocol.errors import one_line
from pool.protocol.rate_limits import RateLimited

log = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

API_PREFIX = "/api/"  # the public JSON API (pool/http/api.py)
MAX_FORWARDED_HOPS = 16  # more proxies than any real chain: the rest of a longer header is not looked at
UNKNOWN = "unknown"  # a peer without an IP address (a Unix socket)


@web.middleware
async def per_address_limit(request: web.Request, handler: Handler) -> web.StreamResponse:
    ctx = request.app[CONTEXT]
    address = client_address(request.remote, request.headers.getall("X-Forwarded-For", []), ctx.config.limits)
    request[CLIENT] = address
    cooldowns = request.app[COOLDOWNS]
    cooled = cooldowns.remaining(address)
    try:
        if cooled:  # a client of a trusted proxy (the connection of any other was refused or closed)
            raise RateLimited(f"too many requests from {address} were refused", cooled)
        request.app[RATE_LIMITS].admit_address(address)
    except RateLimited as refused:
        log.debug("%s %s refused: %s", one_line(request.method, 16), one_line(request.path, 80), refused.message)
        if not cooled:
            cooldowns.refused(address, refused)
        return refusal(request.path, refused)
    return await handler(request)


def refusal(path: str, refused: RateLimited) -> web.Response:
    """A farmer reads protocol errors only from HTTP 200 replies; other clients (browsers, Prometheus) get 429."""
    headers = {"Retry-After": str(refused.retry_after)}
    if path in PROTOCOL_PATHS:
        return web.json_response(refused.response().to_json_dict(), headers=headers)
    if path.startswith(API_PREFIX):  # as the API answers every error: JSON, readable by the pages of other origins
        headers.update({"Access-Control-Allow-Origin": "*", "Cache-Control": "no-store"})
        return web.json_response({"error": refused.message}, status=429, headers=headers)
    return web.Response(status=429, text=refused.message, headers=headers)


def client_address(peer: str | None, forwarded_for: list[str], limits: LimitsConfig) -> str:
    """The key the per-address limit counts requests under (see the module's description)."""
    peer_address = _parse(peer)
    if peer_address is None:
        return UNKNOWN if peer is None else one_line(peer, 64)
    trusted = limits.trusted_proxies
    client = peer_address
    if _is_trusted(client, trusted):
        hops = [hop for header in forwarded_for for hop in header.split(",")][-MAX_FORWARDED_HOPS:]
        for hop in reversed(hops):
            address = _parse(hop.strip())
            if address is None:
                break  # not written by a proxy that appends what it saw: stop at the last address known true
            client = address
            if not _is_trusted(address, trusted):
                break
    return _bucket_key(client, limits.ipv6_prefix)


def connection_key(peer: str | None, limits: LimitsConfig) -> str | None:
    """What the open connections of a TCP peer are counted under (pool.http.connections): its address as the
    per-address limit keys it, or None for a trusted proxy, whose connections carry many clients' requests (and
    X-Forwarded-For names a client per request, not per connection)."""
    address = _parse(peer)
    if address is None:
        return UNKNOWN if peer is None else one_line(peer, 64)
    if _is_trusted(address, limits.trusted_proxies):
        return None
    return _bucket_key(address, limits.ipv6_prefix)


def _parse(text: str | None) -> IpAddress | None:
    if not text:
        return None
    text = _without_port(text)
    try:
        address = ipaddress.ip_address(text.split("%", 1)[0])  # without an IPv6 zone (fe80::1%eth0)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def _without_port(text: str) -> str:
    """Some proxies write the client's port too: ``192.0.2.1:5678``, ``[2001:db8::1]:443`` (or brackets alone)."""
    if text.startswith("["):
        return text[1:].split("]", 1)[0]
    if text.count(":") == 1:  # IPv4 with a port (a bare IPv6 address has at least two colons)
        return text.split(":", 1)[0]
    return text


def _is_trusted(address: IpAddress, trusted: tuple[IpNetwork, ...]) -> bool:
    return any(address.version == network.version and address in network for network in trusted)


def client_of(request: web.Request) -> str:
    """The client the limits count ``request`` under (set by per_address_limit, which every request passes)."""
    return request[CLIENT] if CLIENT in request else UNKNOWN


def _bucket_key(address: IpAddress, ipv6_prefix: int) -> str:
    if isinstance(address, ipaddress.IPv6Address):
        return str(ipaddress.IPv6Network((address, ipv6_prefix), strict=False))
    return str(address)
