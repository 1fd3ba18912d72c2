"""Moving an end-to-end devnet's chain until the pool reaches a state, and waiting for its loops without moving it."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

from pool.devnet.session import Devnet

DEADLINE = 120.0  # a hang guard: each wait ends far sooner when the pool works


async def drive_until(
    devnet: Devnet,
    condition: Callable[[], Awaitable[bool]],
    what: str,
    *,
    farm_every: int = 6,
    deadline: float = DEADLINE,
    with_status: bool = True,
) -> None:
    """Move the chain (signage points, and a block now and then) until ``condition`` holds. ``with_status``: say the
    pool's state on a timeout (only where the pool runs in this process)."""
    ends = time.monotonic() + deadline
    step = 0
    while not await condition():
        if time.monotonic() > ends:
            status = f"; status: {(await devnet.status()).line()}" if with_status else ""
            raise AssertionError(f"timed out waiting for: {what}{status}")
        step += 1
        await devnet.signage_point(pause=0.2)
        if step % farm_every == 0:
            await devnet.farm(1)


async def wait_until(condition: Callable[[], Awaitable[bool]], what: str, *, deadline: float = DEADLINE) -> None:
    """Wait, without moving the chain, for the pool's loops to reach a state."""
    ends = time.monotonic() + deadline
    while not await condition():
        if time.monotonic() > ends:
            raise AssertionError(f"timed out waiting for: {what}")
        await asyncio.sleep(0.1)
