"""Retention: partials and refusals older than ``partials.retention_days`` become hourly per-farmer counts, and
those older than ``partials.hourly_days`` daily ones.

The store's ``prune_partials`` adds a small batch of settled partials (never pending ones) and refusals to their
hour's counts and deletes them, in one short transaction; this loop calls it batch after batch, with a pause between
them, so that the partials' intake (on SQLite, its group commit waits for the database's one write lock) is never
held up for long, and the store stays the same size in steady state. Only the leader runs it;
``python -m pool prune`` runs the same passes at once. The ledger, claims, rounds and payments are never pruned.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable

from pool.config import DAY_SECONDS, PoolConfig
from pool.context import PoolContext
from pool.store.abstract import AbstractPoolStore

log = logging.getLogger(__name__)

PRUNE_INTERVAL = 3600.0  # seconds between passes: a pass finds about an hour's partials to prune
# Rows per transaction. On SQLite (synchronous=FULL, 2 busy cores) a batch held the write lock about 7 ms at 100 rows,
# 12 ms at 250 and 50 ms at 1 000 on a 1 000-farmer store, and 29 ms at 200 on a 10 000-farmer one, where the
# partials' p99 beside a prune went from 20 to 36 ms: a partial that waits for a batch must still come in under the
# p99 of the partials that do not (their own commit's tail, some 10 ms above the median), so a batch must hold the
# writer less than that. 3 million partials a day (10 000 farmers) are 2 500 batches an hour. Those figures include
# each commit's sync, which a batch no longer waits for (the store's upkeep writes): about 1.8 ms instead of 2.9 at 50
# rows on the 1 000-farmer store (docs/performance.md, "a prune batch's sync").
PRUNE_BATCH = 50
PRUNE_PAUSE = 0.1  # seconds between two batches at least, for the intake's writes
# The share of the time the batches may hold the writer: the pause after a batch is long enough for that. With a fixed
# pause of 0.1 s a 1 000-farmer store's batches (14 ms, more when they waited for the lock) held it an eighth of the
# time, and the partials' p99 went from 19 to 41 ms beside a prune; at 2% it is about a partial in fifty that may wait
# for a batch. About 100 rows a second at 10 000 farmers (batches of some 10 ms, half a second apart): 8 million a
# day, three times what they send, the hour's partials pruned in some twenty minutes.
PRUNE_BUSY_SHARE = 0.02
# ... but never more than this after a batch: one that waited long for the lock (the intake busy) must not stretch an
# hourly pass past the hour (2 500 batches at most 1.1 s apart: 46 minutes).
PRUNE_PAUSE_MAX = 1.0


# Days before the hourly counts' cutoff the leader's pass looks for hours to fold: the days folded before are not read
# again each hour (a row a farmer, day and outcome, kept for good), and a pool stopped for less than this folds the
# days it missed. ``python -m pool prune`` folds every day.
FOLD_LOOKBACK_DAYS = 7


def retention_cutoff(config: PoolConfig, now: int) -> int:
    """Partials received before this moment are pruned (the store prunes whole hours, up to the hour it is in)."""
    return now - config.partials.retention_days * DAY_SECONDS


def hours_cutoff(config: PoolConfig, now: int) -> int:
    """The hourly counts of days before the day this moment falls in are folded into daily ones."""
    return now - config.partials.hourly_days * DAY_SECONDS


def pause_after(batch_seconds: float, pause: float = PRUNE_PAUSE, busy_share: float = PRUNE_BUSY_SHARE) -> float:
    """Seconds to wait after a batch that took ``batch_seconds``: at least ``pause``, and so that batches take at
    most ``busy_share`` of the time (1: no more than ``pause``), up to PRUNE_PAUSE_MAX."""
    return max(pause, min(PRUNE_PAUSE_MAX, batch_seconds * (1 / busy_share - 1)))


async def batch_after_batch(
    step: Callable[[], Awaitable[int]], *, until_short_of: int | None, pause: float, busy_share: float
) -> int:
    """``step`` (one small transaction; how many rows it took) again and again, pausing after each; the rows in all.
    Ends at a step that took nothing, or with ``until_short_of``, fewer than that: rows a writer adds meanwhile then
    wait for the next pass instead of keeping this one going."""
    total = 0
    while True:
        started = time.monotonic()
        taken = await step()
        total += taken
        if taken == 0 or (until_short_of is not None and taken < until_short_of):
            return total
        await asyncio.sleep(pause_after(time.monotonic() - started, pause, busy_share))


async def prune_old_partials(
    store: AbstractPoolStore,
    before: int,
    *,
    batch: int = PRUNE_BATCH,
    pause: float = PRUNE_PAUSE,
    busy_share: float = PRUNE_BUSY_SHARE,
) -> int:
    """Prune, batch after batch, what was received before ``before``; how many rows were pruned."""
    pruned = await batch_after_batch(
        lambda: store.prune_partials(before, batch), until_short_of=None, pause=pause, busy_share=busy_share
    )
    # The difficulty summaries' hourly counts of the same hours (not counted in the total: they are no partials).
    await batch_after_batch(
        lambda: store.prune_difficulty_hours(before, batch), until_short_of=batch, pause=pause, busy_share=busy_share
    )
    return pruned


async def fold_old_hours(
    store: AbstractPoolStore,
    since: int,
    before: int,
    *,
    batch: int = PRUNE_BATCH,
    pause: float = PRUNE_PAUSE,
    busy_share: float = PRUNE_BUSY_SHARE,
) -> int:
    """Fold, batch after batch, the hourly counts of the days from ``since``'s to before ``before``'s into daily
    ones; how many hourly counts were folded."""
    return await batch_after_batch(
        lambda: store.fold_partial_hours(since, before, batch), until_short_of=batch, pause=pause, busy_share=busy_share
    )


class RetentionLoop:
    name = "retention"

    def interval(self, ctx: PoolContext) -> float:
        return PRUNE_INTERVAL

    async def run_once(self, ctx: PoolContext) -> int:
        """One pass; returns how many partials and refusals were pruned."""
        now = ctx.now()
        pruned = await prune_old_partials(ctx.store, retention_cutoff(ctx.config, now))
        if pruned:
            log.info("retention: %d partials and refusals counted per hour and pruned", pruned)
        before = hours_cutoff(ctx.config, now)
        folded = await fold_old_hours(ctx.store, before - FOLD_LOOKBACK_DAYS * DAY_SECONDS, before)
        if folded:
            log.info("retention: %d hourly counts folded into daily ones", folded)
        return pruned
