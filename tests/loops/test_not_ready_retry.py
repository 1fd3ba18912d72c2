"""The loops that need only the node try again within a second while it is not ready (the pool's start, before the
peak loop's first answer), not after their whole interval (a minute for the singletons, five for the rewards)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import yaml

from pool.chain.interface import PeakInfo
from pool.chain.status import NOT_READY_RETRY, ChainStatus
from pool.chia_adapter import bytes32
from pool.config import parse_config
from pool.context import PoolContext
from pool.loops.partial_confirmation import PartialConfirmLoop
from pool.loops.rewards import RewardLoop
from pool.loops.runner import Loop, LoopRunner
from pool.loops.singletons import SingletonLoop
from pool.protocol.signage_points import SignagePointCache
from pool.stats import PoolStats

REPO = Path(__file__).resolve().parents[2]


def test_node_only_loops_retry_soon_until_the_node_is_ready() -> None:
    config = parse_config(yaml.safe_load((REPO / "config.yaml").read_text()), REPO)
    ctx = cast(PoolContext, SimpleNamespace(config=config))
    status = ChainStatus()
    no_node = cast(Any, None)  # the intervals ask nothing of the node
    loops: list[Loop] = [
        SingletonLoop(status),
        RewardLoop(status),
        PartialConfirmLoop(status, SignagePointCache(no_node, wait=0)),
    ]
    configured = [
        config.loops.singleton_interval,
        config.rewards.collect_interval,
        config.loops.confirm_interval,
    ]
    assert all(interval > NOT_READY_RETRY for interval in configured)  # else this test shows nothing

    assert [loop.interval(ctx) for loop in loops] == [NOT_READY_RETRY] * 3  # no peak yet
    status.peak = PeakInfo(10, bytes32(b"\1" * 32), False, 10, None)
    assert [loop.interval(ctx) for loop in loops] == [NOT_READY_RETRY] * 3  # a peak, the node still syncing
    status.node_synced = True
    assert [loop.interval(ctx) for loop in loops] == configured


class NeedsTheNode:
    """A loop that needs only the node, as the singletons, rewards and confirmation loops do."""

    name = "needs-the-node"

    def __init__(self, status: ChainStatus) -> None:
        self.status = status
        self.attempts = 0

    def interval(self, ctx: PoolContext) -> float:
        return self.status.after_node(3600.0)

    async def run_once(self, ctx: PoolContext) -> object:
        self.attempts += 1
        return self.status.need_node()


async def wait_for(condition: Callable[[], bool]) -> None:
    for _ in range(300):  # a hang guard, not a timing check
        if condition():
            return
        await asyncio.sleep(0.05)
    raise AssertionError("condition never met")


async def test_a_pass_without_the_node_is_no_pass_and_is_tried_again_soon() -> None:
    status = ChainStatus()
    loop = NeedsTheNode(status)
    stats = PoolStats()
    runner = LoopRunner(loops=[loop])
    runner.start(cast(PoolContext, SimpleNamespace(stats=stats, now=lambda: 1_000)))
    try:
        await wait_for(lambda: loop.attempts >= 2)  # again within NOT_READY_RETRY, not after the hour
        assert loop.name not in stats.loops  # neither a success nor a failure: nothing was done
        assert not stats.first_passes.is_set()  # so the loops' first passes are not over (pool.server waits for them)
        status.peak = PeakInfo(10, bytes32(b"\1" * 32), True, 10, None)
        status.node_synced = True
        await wait_for(lambda: loop.name in stats.loops)
        assert stats.loops[loop.name].runs == 1 and stats.loops[loop.name].last_success == 1_000
        await wait_for(stats.first_passes.is_set)
    finally:
        await runner.stop()
