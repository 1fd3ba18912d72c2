"""GET /metrics's text is made once for the scrapes that come within ``server.metrics_cache_seconds``: what changed
meanwhile shows in the next one made, and a new reading of the pool's state shows at once."""

from __future__ import annotations

import asyncio

from prometheus_client.metrics_core import GaugeMetricFamily, Metric
from prometheus_client.parser import text_string_to_metric_families

from pool.metrics import PoolMetrics


def accepted(text: bytes) -> float:
    for family in text_string_to_metric_families(text.decode()):
        for sample in family.samples:
            if sample.name == "pool_partials_total" and sample.labels == {"result": "accepted"}:
                return sample.value
    raise AssertionError("no accepted partials series")


def state(value: float) -> list[Metric]:
    return [GaugeMetricFamily("pool_points", "Unpaid points of all farmers", value=value)]


async def test_scrapes_within_the_cache_time_share_one_exposition() -> None:
    metrics = PoolMetrics()
    metrics.partial_answered("accepted")
    first = metrics.exposition(max_age=3600)
    metrics.partial_answered("accepted")
    assert metrics.exposition(max_age=3600) == first and accepted(first) == 1
    assert accepted(metrics.exposition(max_age=0)) == 2  # no cache: made afresh


async def test_a_new_reading_of_the_state_is_shown_at_once() -> None:
    metrics = PoolMetrics()
    values = iter((5, 7))

    async def read() -> list[Metric]:
        return state(next(values))

    await metrics.refresh_state(read, max_age=0)
    assert b"pool_points 5.0" in metrics.exposition(max_age=3600)
    await metrics.refresh_state(read, max_age=0)  # read again: the cached text goes with the old state
    assert b"pool_points 7.0" in metrics.exposition(max_age=3600)


async def test_a_stale_reading_is_given_while_a_new_one_is_read_beside() -> None:
    """Older than the cache time but not twice as old: the scrape is answered from it at once and the state is read
    again in the background (once, however many scrapes come meanwhile); older still: the scrape waits for a fresh
    reading."""
    now = [0.0]
    metrics = PoolMetrics(clock=lambda: now[0])
    values = iter((5, 7, 9))
    release = asyncio.Event()
    reads = 0

    async def read() -> list[Metric]:
        nonlocal reads
        reads += 1
        if reads == 2:
            await release.wait()  # the background reading, held
        return state(next(values))

    await metrics.refresh_state(read, max_age=5)
    now[0] = 6  # stale, not twice the cache time
    # Answered at once, with the reading of before (the bound is a hang guard: a scrape waiting for the held reading).
    await asyncio.wait_for(metrics.refresh_state(read, max_age=5), 30)
    await asyncio.sleep(0)  # the background reading starts (and is held)
    await asyncio.wait_for(metrics.refresh_state(read, max_age=5), 30)  # the reading under way is not started twice
    await asyncio.sleep(0)
    assert b"pool_points 5.0" in metrics.exposition() and reads == 2
    release.set()
    for _ in range(10):
        await asyncio.sleep(0)
    assert b"pool_points 7.0" in metrics.exposition()  # the new reading shows once read
    now[0] = 6 + 10  # twice the cache time since that reading: this scrape waits for a fresh one
    await metrics.refresh_state(read, max_age=5)
    assert b"pool_points 9.0" in metrics.exposition() and reads == 3
    await metrics.close()
