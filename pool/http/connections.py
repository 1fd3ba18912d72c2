"""Connections, before any request: how long a request head may take, and how many connections one client may hold.

Without these, a client holds a connection (a socket, a parser, a task) for as long as it likes by sending half a
request, or nothing: aiohttp closes a connection that has not delivered a complete request head only after its
keep-alive timeout, an hour by default, and counts no connections. Both bounds are per pool process:

* ``limits.header_timeout``: a connection must deliver a complete request head within this many seconds of opening
  (of its TLS handshake, with ``server.tls_cert``) or of its previous answer, or it is closed. It is aiohttp's
  keep-alive timeout, which runs from the connection's start and from each answer until a request head is complete
  (bytes of an incomplete head do not reset it), so an idle keep-alive connection is closed after it too. The body
  has its own limit (pool.http.guard.BODY_READ_TIMEOUT).
* ``limits.connections_per_address``: open connections of one client address (an IPv6 client by the same block as the
  per-address rate limit). One more is answered ``503`` and closed at once, before anything of it is read. The
  address is the TCP peer's: a connection has no ``X-Forwarded-For``, and a reverse proxy carries many clients over
  its connections, so connections from ``limits.trusted_proxies`` are not counted (the proxy bounds its own clients).
* an address cooled down (pool.http.cooldown): a new connection is answered ``429`` and closed before anything of it
  is read, an open one closed when it next sends anything, unread.
"""

from __future__ import annotations

import asyncio
import logging
import math
import ssl
from collections.abc import Callable
from typing import Any, cast

from aiohttp import web

from pool.config import LimitsConfig
from pool.http.cooldown import Cooldowns
from pool.http.keys import COOLDOWNS
from pool.http.limits import connection_key

log = logging.getLogger(__name__)

ProtocolFactory = Callable[[], asyncio.Protocol]

LISTEN_BACKLOG = 128  # aiohttp's TCPSite default
UNCOUNTED = ""  # what a connection that is not counted (a trusted proxy's) is admitted under


class ConnectionCounts:
    """Open connections per client address in this process; an address at its cap, or cooled down, gets no more."""

    def __init__(self, limits: LimitsConfig, cooldowns: Cooldowns | None = None) -> None:
        self._limits = limits
        self._cooldowns = cooldowns
        self._open: dict[str, int] = {}

    def admit(self, peer: str | None) -> str | bytes:
        """The key a new connection is counted under (release it when the connection ends; UNCOUNTED for a trusted
        proxy's), or the answer that refuses it: its address is at the cap, or cooled down."""
        key = connection_key(peer, self._limits)
        if key is None:
            return UNCOUNTED
        cooled = self.cooled(key)
        if cooled:
            log.debug("connection from %s refused: its address is cooled down", peer)
            return _answer(429, "Too Many Requests", COOLED_DOWN, retry_after=math.ceil(cooled))
        count = self._open.get(key, 0)
        if count >= self._limits.connections_per_address:
            log.debug("connection from %s refused: too many open connections from its address", peer)
            return TOO_MANY
        self._open[key] = count + 1
        return key

    def cooled(self, key: str) -> float:
        """Seconds the address counted under ``key`` stays cooled down (0.0: it is not)."""
        if self._cooldowns is None or key == UNCOUNTED:
            return 0.0
        return self._cooldowns.remaining(key)

    def release(self, key: str) -> None:
        if key == UNCOUNTED:
            return
        count = self._open.get(key, 0) - 1
        if count > 0:
            self._open[key] = count
        else:
            self._open.pop(key, None)  # nothing kept for an address without connections


class _Counted(asyncio.Protocol):
    """The HTTP protocol of one connection, made only once its address was admitted; every event goes to it."""

    def __init__(self, counts: ConnectionCounts, make_inner: ProtocolFactory) -> None:
        self._counts = counts
        self._make_inner = make_inner
        self._inner: asyncio.Protocol | None = None
        self._key: str | None = None
        self._transport: asyncio.BaseTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        key = self._counts.admit(_peer_host(transport.get_extra_info("peername")))
        if isinstance(key, bytes):
            _refuse(transport, key)
            return
        self._key = key
        self._transport = transport
        self._inner = self._make_inner()
        self._inner.connection_made(transport)

    def connection_lost(self, exc: Exception | None) -> None:
        if self._key is not None:
            self._counts.release(self._key)
            self._key = None
        if self._inner is not None:
            self._inner.connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._inner is None or self._transport is None:
            return
        if self._key is not None and self._counts.cooled(self._key):
            # Its address was cooled down since it opened: what it sends now is not read (closing ends the request
            # it may be in, whose answer the pool would otherwise have to write).
            self._transport.close()
            return
        self._inner.data_received(data)

    def eof_received(self) -> bool | None:
        return self._inner.eof_received() if self._inner is not None else None

    def pause_writing(self) -> None:
        if self._inner is not None:
            self._inner.pause_writing()

    def resume_writing(self) -> None:
        if self._inner is not None:
            self._inner.resume_writing()


def _peer_host(peername: Any) -> str | None:
    """The host of a TCP peer (``(host, port)``, or four fields for IPv6); None without one (a Unix socket)."""
    if isinstance(peername, tuple) and peername and isinstance(peername[0], str):
        return peername[0]
    return None


def _answer(status: int, reason: str, body: bytes, retry_after: int | None = None) -> bytes:
    """A whole HTTP answer that closes its connection."""
    retry = b"" if retry_after is None else b"Retry-After: " + str(retry_after).encode() + b"\r\n"
    return (
        f"HTTP/1.1 {status} {reason}\r\nConnection: close\r\nContent-Type: text/plain\r\n".encode()
        + retry
        + b"Content-Length: "
        + str(len(body)).encode()
        + b"\r\n\r\n"
        + body
    )


TOO_MANY = _answer(503, "Service Unavailable", b"too many open connections from your address\n")
COOLED_DOWN = b"too many requests from your address were refused; try again later\n"


def _refuse(transport: asyncio.BaseTransport, answer: bytes) -> None:
    # A stream transport (uvloop's does not subclass asyncio's classes, so no isinstance check): closing it sends
    # what was written first.
    cast(asyncio.Transport, transport).write(answer)
    transport.close()


def runner_options(limits: LimitsConfig) -> dict[str, Any]:
    """What web.AppRunner takes to bound the wait for a request head."""
    return {"keepalive_timeout": limits.header_timeout}


async def listen(
    runner: web.AppRunner,
    host: str,
    port: int,
    limits: LimitsConfig,
    *,
    ssl_context: ssl.SSLContext | None = None,
    reuse_port: bool = False,
) -> asyncio.Server:
    """Serve ``runner``'s application on host:port with the connection cap (the runner set up with runner_options).
    The caller closes the server before cleaning the runner up."""
    server = runner.server
    if server is None:
        raise RuntimeError("set the runner up before listening")
    counts = ConnectionCounts(limits, runner.app.get(COOLDOWNS))
    loop = asyncio.get_running_loop()
    return await loop.create_server(
        lambda: _Counted(counts, server),
        host,
        port,
        ssl=ssl_context,
        # A TLS handshake that never completes is not counted yet (the connection is counted once it has one): its
        # time is bounded like a request head's.
        ssl_handshake_timeout=limits.header_timeout if ssl_context is not None else None,
        backlog=LISTEN_BACKLOG,
        reuse_port=reuse_port or None,
    )
