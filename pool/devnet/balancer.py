"""A round-robin TCP load balancer on loopback, standing in for an operator's nginx ``stream`` block or HAProxy in TCP
mode in front of several pool hosts.

A farmer's PlotNFT has one pool URL; the balancer listens there and hands each new connection to the next pool
process in turn. chia's farmer opens a new HTTP session (so a new connection) for every pool request, so its
partials spread over all the pool processes. A backend that refuses the connection is skipped for that connection,
as a load balancer's passive health check would. It counts connections per backend, so a test can see the spread.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from dataclasses import dataclass, field

log = logging.getLogger(__name__)

CHUNK = 64 * 1024


@dataclass(frozen=True)
class Backend:
    host: str
    port: int


@dataclass
class RoundRobinBalancer:
    """``await start()`` to listen on ``host:port``; ``await stop()`` closes the listener and every open connection."""

    host: str
    port: int
    backends: list[Backend]
    connections: dict[Backend, int] = field(init=False)  # connections handed to each backend so far
    _server: asyncio.Server | None = field(init=False, default=None)
    _next: itertools.count[int] = field(init=False, default_factory=itertools.count)
    _pipes: set[asyncio.Task[None]] = field(init=False, default_factory=set)

    def __post_init__(self) -> None:
        if not self.backends:
            raise ValueError("a load balancer needs at least one backend")
        self.connections = {backend: 0 for backend in self.backends}

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._accept, self.host, self.port)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None
        for pipe in list(self._pipes):
            pipe.cancel()
        await asyncio.gather(*self._pipes, return_exceptions=True)

    async def _accept(self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._pipes.add(task)
        try:
            upstream = await self._connect_next()
            if upstream is None:
                return
            backend_reader, backend_writer = upstream
            try:
                await asyncio.gather(_pipe(client_reader, backend_writer), _pipe(backend_reader, client_writer))
            finally:
                backend_writer.close()
        finally:
            client_writer.close()
            self._pipes.discard(task)

    async def _connect_next(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter] | None:
        """The next backend in turn that accepts a connection; None when none does (the client is dropped)."""
        for _ in range(len(self.backends)):
            backend = self.backends[next(self._next) % len(self.backends)]
            try:
                streams = await asyncio.open_connection(backend.host, backend.port)
            except OSError as exc:
                log.warning(
                    "backend %s:%d refused a connection (%s): trying the next one", backend.host, backend.port, exc
                )
                continue
            self.connections[backend] += 1
            return streams
        log.warning("no backend accepted the connection")
        return None


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Copy one direction until its end of file, then half-close the other side (HTTP/1.1 keeps the other way open)."""
    try:
        while chunk := await reader.read(CHUNK):
            writer.write(chunk)
            await writer.drain()
        if writer.can_write_eof():
            writer.write_eof()
    except (ConnectionError, OSError):
        # One side went away: close both, as a proxy does (the other direction's read ends then).
        writer.close()
