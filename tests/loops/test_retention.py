"""Retention against a real SQLite store: the leader's loop and ``python -m pool prune`` (a real subprocess, while
another connection keeps writing partials as the pool would) prune what is past partials.retention_days and leave
every hour's counts as they were. The store's own guarantees are in tests/store/test_store_contract.py."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, cast

import pytest
import yaml

from pool.config import parse_config
from pool.context import PoolContext
from pool.loops.retention import (
    PRUNE_BUSY_SHARE,
    PRUNE_PAUSE,
    PRUNE_PAUSE_MAX,
    RetentionLoop,
    pause_after,
    prune_old_partials,
)
from pool.store.abstract import AbstractPoolStore
from pool.store.models import PartialCount, PartialStatus
from pool.store.sqlite import SqlitePoolStore
from tests.store.test_store_contract import make_farmer, make_partial

REPO = Path(__file__).resolve().parents[2]
DAY = 86_400
NOW = 1_000 * DAY + 1_800  # half past an hour


async def fill(store: AbstractPoolStore, received_at: list[int]) -> list[int]:
    """A farmer's partials at these moments, each confirmed but the last; a refusal beside each. Their ids."""
    farmer = make_farmer(1, difficulty=5)
    if await store.get_farmer(farmer.launcher_id) is None:
        await store.add_farmer(farmer)
    ids = []
    for moment in received_at:
        partial_id = await store.add_partial(make_partial(farmer, f"at {moment}", moment))
        assert partial_id is not None
        await store.add_partial_refusal(farmer.launcher_id, moment, "TOO_LATE")
        ids.append(partial_id)
    await store.confirm_partials(ids[:-1])
    return ids


def day_of(counts: list[PartialCount]) -> list[PartialCount]:
    """Hourly counts as their days' counts (at each day's first second); pending partials, never pruned, stay rows
    in their hour."""
    days: dict[tuple[int, str], tuple[int, int]] = {}
    for count in counts:
        at = count.hour if count.outcome == "pending" else count.hour - count.hour % DAY
        n, points = days.get((at, count.outcome), (0, 0))
        days[at, count.outcome] = (n + count.count, points + count.points)
    return [PartialCount(at, outcome, n, points) for (at, outcome), (n, points) in sorted(days.items())]


def rows(path: Path) -> int:
    import sqlite3

    with sqlite3.connect(path) as connection:
        return sum(
            connection.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0] for t in ("partials", "partial_refusals")
        )


@pytest.fixture
async def ctx(tmp_path: Path) -> AsyncIterator[PoolContext]:
    config = parse_config(yaml.safe_load((REPO / "config.yaml").read_text()), REPO)
    store = SqlitePoolStore(tmp_path / "pool.sqlite")
    await store.open()
    no_chain = cast(Any, None)  # the loop reads only the store, the config and the clock
    yield PoolContext(config=config, store=store, node=no_chain, wallet=no_chain, constants=no_chain, now=lambda: NOW)
    await store.close()


async def test_the_loop_prunes_what_is_past_retention_and_keeps_the_counts(ctx: PoolContext, tmp_path: Path) -> None:
    retention = ctx.config.partials.retention_days * DAY
    old = [NOW - retention - 3 * 3600 + n * 600 for n in range(12)]  # the 12th is pending: never pruned
    recent = [NOW - retention + 3600, NOW - DAY]
    ids = await fill(ctx.store, old)
    await fill(ctx.store, recent)
    counts = await ctx.store.partial_counts(0)
    assert await RetentionLoop().run_once(ctx) == 11 + 12  # the settled old partials and the old refusals
    assert await ctx.store.partial_counts(0) == counts
    assert rows(tmp_path / "pool.sqlite") == 1 + 2 * 2  # the old pending one, the recent partials and refusals
    assert [await ctx.store.get_partial(i) for i in ids[:11]] == [None] * 11
    pending = await ctx.store.get_partial(ids[11])
    assert pending is not None and pending.status is PartialStatus.PENDING
    assert await RetentionLoop().run_once(ctx) == 0


async def test_the_loop_folds_hours_past_hourly_days_into_days(ctx: PoolContext) -> None:
    hourly = ctx.config.partials.hourly_days * DAY
    old_day = NOW - hourly - 2 * DAY - (NOW - hourly) % DAY  # a whole day two days before the hours' cutoff
    later = NOW - hourly + DAY + 5 * 3600  # its hour is still kept as an hour
    await fill(ctx.store, [*(old_day + hour * 3600 + 60 for hour in (0, 3, 7, 23)), later, NOW - DAY])
    await RetentionLoop().run_once(ctx)
    daily = await ctx.store.daily_partials(0, NOW)
    counts = await ctx.store.partial_counts(0)
    assert {c.hour for c in counts if c.hour < NOW - hourly} == {old_day}  # the old day: one count an outcome
    assert [(c.outcome, c.count) for c in counts if c.hour == old_day] == [("TOO_LATE", 4), ("confirmed", 4)]
    assert [c.hour for c in counts if NOW - hourly <= c.hour <= later] == [later - later % 3600] * 2
    await RetentionLoop().run_once(ctx)
    assert await ctx.store.daily_partials(0, NOW) == daily and await ctx.store.partial_counts(0) == counts


async def test_passes_go_batch_by_batch(ctx: PoolContext) -> None:
    await fill(ctx.store, [3600 + n for n in range(9)])
    assert await prune_old_partials(ctx.store, 7200, batch=2, pause=0, busy_share=1) == 8 + 9
    assert await ctx.store.partial_counts(0) == [
        PartialCount(3600, "TOO_LATE", 9, 0),
        PartialCount(3600, "confirmed", 8, 40),
        PartialCount(3600, "pending", 1, 5),
    ]


async def test_prune_command_prunes_while_the_pool_writes(tmp_path: Path) -> None:
    from tests.config.test_cli import write_config

    config = write_config(tmp_path)
    path = tmp_path / "pool-data" / "pool.sqlite"
    path.parent.mkdir()
    store = SqlitePoolStore(path)  # the pool, still open and writing while the command runs
    await store.open()
    try:
        await fill(store, [3600 * 10 + n for n in range(50)])
        counts = await store.partial_counts(0)
        command = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "pool", "prune", "--config", str(config),
            cwd=REPO, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        written = 0
        while command.returncode is None:
            farmer = make_farmer(1, difficulty=5)
            await store.add_partial(make_partial(farmer, f"new {written}", 2_000 * DAY + written))
            written += 1
            await asyncio.sleep(0.01)
        out, err = await command.communicate()
        assert written > 0
        assert command.returncode == 0, err.decode()
        assert out.decode().startswith("pruned 99 partials and refusals received before")
        assert "partials.retention_days: 30" in out.decode()
        # The old hours are folded into their day too (partials.hourly_days): the day's totals are the hours'.
        assert [c for c in await store.partial_counts(0) if c.hour < 2_000 * DAY] == day_of(counts)
        assert rows(path) == 1 + written  # the old pending partial and what the pool wrote meanwhile
        # With the pool stopped: batch after batch without pauses, the same counts.
        await fill(store, [3600 * 20 + n for n in range(30)])
        counts = [c for c in await store.partial_counts(0) if c.hour < 2_000 * DAY]
        command = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "pool", "prune", "--no-pause", "--config", str(config),
            cwd=REPO, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        out, err = await command.communicate()
        assert command.returncode == 0, err.decode()
        assert out.decode().startswith("pruned 59 partials and refusals received before")
        assert [c for c in await store.partial_counts(0) if c.hour < 2_000 * DAY] == day_of(counts)
    finally:
        await store.close()


def test_the_pauses_leave_the_writer_free_most_of_the_time() -> None:
    assert pause_after(0.001) == PRUNE_PAUSE  # a quick batch: the least pause
    assert pause_after(0.02) == pytest.approx(0.02 * (1 - PRUNE_BUSY_SHARE) / PRUNE_BUSY_SHARE)
    assert pause_after(0.5, pause=0, busy_share=1) == 0  # no pauses
    assert pause_after(10.0) == PRUNE_PAUSE_MAX  # a batch that waited long for the lock: the pass goes on
