"""GET /metrics's text is made once for the scrapes that come within ``server.metrics_cache_seconds``: what changed
meanwhile shows in the next one made, and a new reading of the pool's state shows at once."""

from __future__ import annotations

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

    metrics.show_state(await read())
    assert b"pool_points 5.0" in metrics.exposition(max_age=3600)
    metrics.show_state(await read())  # read again: the cached text goes with the old state
    assert b"pool_points 7.0" in metrics.exposition(max_age=3600)
