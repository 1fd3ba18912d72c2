"""The bench's announcer keeps the node a few events ahead of the partials being sent."""

from __future__ import annotations

import asyncio
from typing import cast

from pool.bench.load import Announcer
from pool.bench.processes import NodeProcess


class RecordingNode:
    """Stands in for the node process: records the events announced (the scheduling is what is tested here; the
    smoke test runs the real node)."""

    def __init__(self) -> None:
        self.announced: list[int] = []

    async def announce(self, event: int) -> float:
        await asyncio.sleep(0)
        self.announced.append(event)
        return 0.0


async def _settle() -> None:
    for _ in range(50):
        await asyncio.sleep(0)


async def test_the_lookahead_is_kept_while_the_sender_moves_on() -> None:
    node = RecordingNode()
    announcer = Announcer(cast(NodeProcess, node), events=10, lookahead=3)
    try:
        await announcer.ready(0)
        await _settle()
        assert node.announced == [0, 1, 2, 3]
        # The sender moves to event 1, which the node already saw: the node is told event 4 now, not only when the
        # sender reaches an event it has not seen (its partials would then go out the instant the node saw it).
        await announcer.ready(1)
        await _settle()
        assert node.announced == [0, 1, 2, 3, 4]
        await announcer.ready(8)
        await _settle()
        assert node.announced == list(range(10))  # never past the last event
    finally:
        await announcer.close()
