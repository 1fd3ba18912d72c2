"""Stopping the loops: a loop whose cancellation is lost (as Python 3.11's asyncio.wait_for loses it when the awaited
call finishes at that moment) still stops, so the pool exits on SIGTERM."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import cast

from pool.context import PoolContext
from pool.loops.runner import LoopRunner
from pool.stats import PoolStats


class SwallowsOneCancellation:
    """A loop whose first cancellation is lost inside its iteration, as in wait_for's race."""

    name = "swallowing"

    def __init__(self) -> None:
        self.cancellations = 0
        self.running = asyncio.Event()

    def interval(self, ctx: PoolContext) -> float:
        return 0.01

    async def run_once(self, ctx: PoolContext) -> object:
        self.running.set()
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            self.cancellations += 1
            if self.cancellations > 1:
                raise
        return None


async def test_a_loop_that_loses_its_cancellation_is_stopped_anyway() -> None:
    loop = SwallowsOneCancellation()
    runner = LoopRunner(loops=[loop])
    # The runner only records each iteration in the context's stats; a whole pool is not what this test is about.
    ctx = cast(PoolContext, SimpleNamespace(stats=PoolStats(), now=lambda: 0))
    runner.start(ctx)
    await loop.running.wait()
    stopping = asyncio.create_task(runner.stop())
    # A hang guard, not a timing check: before the fix stop() waited for the loop forever.
    done, _ = await asyncio.wait({stopping}, timeout=30)
    assert stopping in done, "the loop kept running after its cancellation was lost"
    assert loop.cancellations == 2
