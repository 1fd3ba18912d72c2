"""Exactly one leader: of all the processes of one pool (workers on one machine, pool hosts sharing PostgreSQL), only
the leader runs the chain loops (peak, partial confirmation, singletons, rewards, difficulty, payouts).

Leadership is a lock the operating system or the database releases by itself when its holder dies:

* PostgreSQL (``store.backend: postgresql``): a session-level advisory lock (``pg_try_advisory_lock``) on a connection
  of its own. A killed leader's connection closes, the server drops the lock, and the next process that polls takes
  it. The leader checks its connection every poll; when it fails, it stops its loops at once (it can no longer be
  sure it leads).
* SQLite: an exclusive ``flock`` on ``<store.path>.leader``; the kernel releases it when the process exits.

Another process takes over within one poll interval (``LEADER_POLL_SECONDS``) and resumes from the store: every loop
keeps its progress there, and every store method is one transaction, so a leader killed anywhere leaves nothing
half-done. Even an overlap of two leaders (a network partition the old one has not noticed yet) cannot pay, claim or
credit twice: the store's guards (one open round, status-conditional updates, the ledger lock) hold across processes.
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

log = logging.getLogger(__name__)

LEADER_POLL_SECONDS = 2.0


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
                    # Operators (and tests) see which process leads: pg_stat_activity.application_name.
                    server_settings={"application_name": f"pool-leader-{os.getpid()}"},
                )
            self._held = bool(await self._connection.fetchval("SELECT pg_try_advisory_lock($1)", LEADER_LOCK))
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            log.warning("cannot reach PostgreSQL for the leader lock: %s", exc)
            await self._drop_connection()
        return self._held

    async def held(self) -> bool:
        import asyncpg

        if not self._held or self._connection is None:
            return False
        try:
            await self._connection.fetchval("SELECT 1")
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
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
    begin: Callable[[], None],
    end: Callable[[], Awaitable[None]],
    *,
    poll: float = LEADER_POLL_SECONDS,
) -> None:
    """Forever (until cancelled): wait to become the leader, ``begin()`` (start the loops), and ``end()`` (stop
    them) the moment leadership is lost or on cancellation; then try again. Releases the lock when cancelled."""
    try:
        while True:
            while True:  # polling is the point: the holder's death is noticed by asking again
                if await _safely(leadership.try_acquire, "taking the leader lock"):
                    break
                await asyncio.sleep(poll)
            log.info("this process is the leader: it runs the chain loops")
            begin()
            try:
                while True:
                    await asyncio.sleep(poll)
                    if not await _safely(leadership.held, "checking the leader lock"):
                        break
                log.warning("leadership lost: stopping the chain loops")
            finally:
                await end()
    finally:
        await leadership.release()
