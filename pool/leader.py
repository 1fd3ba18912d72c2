"""Exactly one leader: of all the processes of one pool (workers on one machine, pool hosts sharing PostgreSQL), only
the leader runs the chain loops (peak, partial confirmation, singletons, rewards, difficulty, payouts).

Leadership is a lock the operating system or the database releases by itself when its holder dies:

* PostgreSQL (``store.backend: postgresql``): a session-level advisory lock (``pg_try_advisory_lock``) on a connection
  of its own. The leader asks on it every poll (``LEADER_POLL_SECONDS``); a question unanswered within
  ``LOCK_QUERY_TIMEOUT`` (a dead server, a silent network) ends its leadership at once. On the server's side the
  session ends, and the lock with it, when the leader stays silent for ``LOCK_IDLE_TIMEOUT`` (PostgreSQL's
  ``idle_session_timeout``: the leader's host died, or the network between them drops everything without a word) or
  its TCP keepalives go unanswered. The next process that polls takes the lock.
* SQLite: an exclusive ``flock`` on ``<store.path>.leader``; the kernel releases it when the process exits.

Failover bound: another process leads within ``LOCK_IDLE_TIMEOUT + LEADER_POLL_SECONDS`` (12 s) of the leader's last
word on PostgreSQL, within one poll (2 s) of its death on SQLite. The old leader, cut off, stops its loops within
``LEADER_POLL_SECONDS + LOCK_QUERY_TIMEOUT`` (7 s).

Fencing: a new leader records a new, higher leader epoch in the store before its loops start
(``AbstractPoolStore.take_leadership``), and every money write of the leader checks, in its own transaction, that its
epoch is still the newest and that the schema is still the one its code writes. So even a leader that has not yet
noticed it lost the lock (or that runs older code after an upgrade migrated the database) writes nothing: its
transaction fails with NotLeader, and it stops leading. Every loop keeps its progress in the store and every store
method is one transaction, so a leader killed anywhere leaves nothing half-done for the next one.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import os
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable
from pathlib import Path

from pool.config import StoreConfig
from pool.store.abstract import SchemaChanged

log = logging.getLogger(__name__)

LEADER_POLL_SECONDS = 2.0
LOCK_QUERY_TIMEOUT = 5.0  # seconds the leader waits for its lock connection to answer before it stops leading
LOCK_IDLE_TIMEOUT = 10.0  # seconds of silence after which PostgreSQL ends the leader's session (and its lock)
# PostgreSQL's TCP keepalives on the lock connection: a host that vanished is found out without waiting for the idle
# timeout when the connection is busy (idle seconds, then probes this many seconds apart, this many times).
KEEPALIVE_IDLE, KEEPALIVE_INTERVAL, KEEPALIVE_COUNT = 5, 2, 3


class Leadership(ABC):
    """A lock held by at most one process of the pool at a time."""

    @abstractmethod
    async def try_acquire(self) -> bool:
        """Take the lock if nobody holds it; True if this process holds it now."""

    @abstractmethod
    async def held(self) -> bool:
        """Whether this process still holds the lock (False once its hold could have been lost)."""

    @abstractmethod
    async def release(self) -> None: ...


class FileLeadership(Leadership):
    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: int | None = None

    async def try_acquire(self) -> bool:
        if self._fd is not None:
            return True
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        except BaseException:
            os.close(fd)
            raise
        self._fd = fd
        return True

    async def held(self) -> bool:
        return self._fd is not None

    async def release(self) -> None:
        fd, self._fd = self._fd, None
        if fd is not None:
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)


class PostgresLeadership(Leadership):
    def __init__(self, dsn: str, password: str | None = None) -> None:
        import asyncpg

        self._dsn = dsn
        self._password = password
        self._connection: asyncpg.Connection[asyncpg.Record] | None = None
        self._held = False

    async def try_acquire(self) -> bool:
        import asyncpg

        from pool.store.postgres import LEADER_LOCK

        if self._held and await self.held():
            return True
        try:
            if self._connection is None:
                self._connection = await asyncpg.connect(
                    self._dsn,
                    password=self._password,
                    timeout=LOCK_QUERY_TIMEOUT,
                    command_timeout=LOCK_QUERY_TIMEOUT,
                    server_settings=lock_session_settings(),
                )
            self._held = bool(await self._connection.fetchval("SELECT pg_try_advisory_lock($1)", LEADER_LOCK))
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError) as exc:
            log.warning("cannot reach PostgreSQL for the leader lock: %s", exc)
            await self._drop_connection()
        return self._held

    async def held(self) -> bool:
        import asyncpg

        if not self._held or self._connection is None:
            return False
        try:
            await self._connection.fetchval("SELECT 1", timeout=LOCK_QUERY_TIMEOUT)
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError) as exc:
            # The session (and with it the lock) may be gone: stop leading now rather than risk two leaders.
            log.warning("the leader lock's connection failed: %s", exc)
            await self._drop_connection()
            return False
        return True

    async def release(self) -> None:
        if self._connection is not None and self._held:
            from pool.store.postgres import LEADER_LOCK

            with contextlib.suppress(Exception):
                await self._connection.fetchval("SELECT pg_advisory_unlock($1)", LEADER_LOCK)
        await self._drop_connection()

    async def _drop_connection(self) -> None:
        connection, self._connection, self._held = self._connection, None, False
        if connection is not None:
            connection.terminate()  # closes the session at once: the server releases its locks


def lock_session_settings() -> dict[str, str]:
    """Settings of the lock connection's session, applied by the server: it ends a silent leader's session (and so
    releases its lock) by itself, whatever the leader's host or the network does."""
    return {
        # Operators (and tests) see which process leads: pg_stat_activity.application_name.
        "application_name": f"pool-leader-{os.getpid()}",
        "idle_session_timeout": str(int(LOCK_IDLE_TIMEOUT * 1000)),
        "tcp_keepalives_idle": str(KEEPALIVE_IDLE),
        "tcp_keepalives_interval": str(KEEPALIVE_INTERVAL),
        "tcp_keepalives_count": str(KEEPALIVE_COUNT),
    }


def create_leadership(config: StoreConfig) -> Leadership:
    """The leader lock of the configured store."""
    if config.backend == "postgresql" and config.dsn is not None:
        return PostgresLeadership(config.dsn, config.password())
    return FileLeadership(config.path.with_name(config.path.name + ".leader"))


async def _safely(check: Callable[[], Awaitable[bool]], what: str) -> bool:
    """A lock check that fails counts as "not held": never lead on an error, never let it end the election."""
    try:
        return await check()
    except Exception:
        log.exception("%s failed", what)
        return False


async def lead(
    leadership: Leadership,
    begin: Callable[[], Awaitable[None]],
    end: Callable[[], Awaitable[None]],
    *,
    lost: asyncio.Event | None = None,
    poll: float = LEADER_POLL_SECONDS,
    beat: Callable[[], Awaitable[object]] | None = None,
) -> None:
    """Forever (until cancelled): wait to become the leader, ``begin()`` (take a new epoch, start the loops), and
    ``end()`` (stop them) the moment leadership is lost, ``lost`` is set (a loop's write was refused as not the
    leader's), or on cancellation; then try again. Code older than the database's schema (``begin`` raises
    SchemaChanged) stops competing for good: it must not move money. Releases the lock when cancelled. ``beat``:
    called once a ``poll`` while leading (the leader says it is alive, for every process's readiness); a failure of it
    is logged."""
    lost = lost if lost is not None else asyncio.Event()
    try:
        while True:
            while True:  # polling is the point: the holder's death is noticed by asking again
                if await _safely(leadership.try_acquire, "taking the leader lock"):
                    break
                await asyncio.sleep(poll)
            log.info("this process is the leader: it runs the chain loops")
            lost.clear()
            try:
                try:
                    await begin()
                except SchemaChanged as exc:
                    log.error("this process no longer leads: %s (restart it with the pool's new version)", exc)
                    return
                while True:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(lost.wait(), poll)
                    if lost.is_set():
                        log.warning("a money write was refused: another process leads now")
                        break
                    if not await _safely(leadership.held, "checking the leader lock"):
                        log.warning("leadership lost")
                        break
                    if beat is not None:
                        try:
                            await beat()
                        except Exception as exc:  # the store is away: readiness says so; leading goes on
                            log.warning("could not record that this process leads: %s", exc)
                log.warning("stopping the chain loops")
            finally:
                await end()
            if lost.is_set():
                await leadership.release()  # let the newer leader keep it; poll again from scratch
    finally:
        await leadership.release()
