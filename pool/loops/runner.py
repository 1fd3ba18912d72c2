"""Runs the background loops as asyncio tasks: each iteration is isolated, a failure is logged and the loop goes on."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from typing import Protocol

from pool.chain.status import NodeNotReady
from pool.context import PoolContext
from pool.store.abstract import BACKGROUND_READS, NotLeader

log = logging.getLogger(__name__)

CANCEL_AGAIN_AFTER = 0.5  # seconds: a loop that has not stopped by then lost its cancellation (see LoopRunner.stop)


class Loop(Protocol):
    name: str

    def interval(self, ctx: PoolContext) -> float: ...

    async def run_once(self, ctx: PoolContext) -> object: ...


async def run_periodically(
    ctx: PoolContext,
    loop: Loop,
    on_not_leader: Callable[[], None] | None = None,
    on_pass: Callable[[str], None] | None = None,
) -> None:
    """Run ``loop`` forever; nothing but cancellation stops it. A write the store refused because another process
    leads now (NotLeader) is told to ``on_not_leader``, which stops every loop of this process. Each pass counted
    (a success or a failure) is told to ``on_pass`` with the loop's name."""
    BACKGROUND_READS.set(True)  # this task's context only: the loop's reads go apart from the requests'
    while True:
        started = time.monotonic()
        counted = True
        try:
            await loop.run_once(ctx)
        except asyncio.CancelledError:
            raise
        except NodeNotReady:
            counted = False  # no pass: nothing was done (the pool's start, a node syncing); tried again soon
        except NotLeader as exc:
            log.error("%s loop: %s", loop.name, exc)
            ctx.stats.loop_ran(loop.name, time.monotonic() - started, ctx.now(), f"not the leader: {exc}")
            if on_not_leader is not None:
                on_not_leader()
        except Exception as exc:
            # One bad iteration (node hiccup, unexpected data) must not stop the pool: log and try again later.
            log.exception("%s loop iteration failed", loop.name)
            ctx.stats.loop_ran(loop.name, time.monotonic() - started, ctx.now(), f"{type(exc).__name__}: {exc}")
        else:
            ctx.stats.loop_ran(loop.name, time.monotonic() - started, ctx.now())
        if counted and on_pass is not None:
            on_pass(loop.name)
        await asyncio.sleep(loop.interval(ctx))


class LoopRunner:
    """Runs the loops it is given (the composition root, pool/server.py, chooses and builds them)."""

    def __init__(self, loops: list[Loop], on_not_leader: Callable[[], None] | None = None) -> None:
        self.loops = loops
        self.on_not_leader = on_not_leader
        self._tasks: list[asyncio.Task[None]] = []

    def start(self, ctx: PoolContext) -> None:
        if self._tasks:
            raise RuntimeError("loops already started")
        waiting = {loop.name for loop in self.loops}

        def passed(name: str) -> None:
            # Every loop ran a pass (one the node was not ready for is none): tell the process (pool.server).
            waiting.discard(name)
            if not waiting:
                ctx.stats.first_passes.set()

        self._tasks = [
            asyncio.create_task(
                run_periodically(ctx, loop, self.on_not_leader, on_pass=passed), name=f"pool-loop-{loop.name}"
            )
            for loop in self.loops
        ]

    async def stop(self) -> None:
        """Cancel every loop and wait for it: each store call is one transaction, so stopping anywhere is safe.

        A cancellation can be lost: Python 3.11's ``asyncio.wait_for`` (every RPC call) returns the result instead of
        raising when the call finishes just as the task is cancelled, and the loop then goes on. So a loop still
        running a moment later is cancelled again, until it stops; otherwise the pool would never exit on SIGTERM.
        """
        tasks, self._tasks = self._tasks, []
        for task in tasks:
            task.cancel()
        for task in tasks:
            while not task.done():
                await asyncio.wait({task}, timeout=CANCEL_AGAIN_AFTER)
                if not task.done():
                    task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
