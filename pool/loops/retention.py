"""Retention: partials and refusals older than ``partials.retention_days`` become hourly per-farmer counts.

The store's ``prune_partials`` adds a small batch of settled partials (never pending ones) and refusals to their
hour's counts and deletes them, in one short transaction; this loop calls it batch after batch, with a pause between
them, so that the partials' intake (on SQLite, its group commit waits for the database's one write lock) is never
held up for long, and the store stays the same size in steady state. Only the leader runs it;
``python -m pool prune`` runs the same passes at once. The ledger, claims, rounds and payments are never pruned.
"""

from __future__ import annotations

import asyncio
import logging

from pool.config import DAY_SECONDS, PoolConfig
from pool.context import PoolContext
from pool.store.abstract import AbstractPoolStore

log = logging.getLogger(__name__)

PRUNE_INTERVAL = 3600.0  # seconds between passes: a pass finds about an hour's partials to prune
# Rows per transaction. On SQLite (synchronous=FULL, 2 busy cores) a batch held the write lock about 7 ms at 100 rows,
# 12 ms at 250 and 50 ms at 1 000: 200 keeps the intake's group commit from waiting more than about 10 ms, and with
# the pause the lock is free nine tenths of a pass. 3 million partials a day (10 000 farmers) are about 625 batches,
# a minute of pruning, an hour.
PRUNE_BATCH = 200
PRUNE_PAUSE = 0.1  # seconds between two batches, for the intake's writes


def retention_cutoff(config: PoolConfig, now: int) -> int:
    """Partials received before this moment are pruned (the store prunes whole hours, up to the hour it is in)."""
    return now - config.partials.retention_days * DAY_SECONDS


async def prune_old_partials(
    store: AbstractPoolStore, before: int, *, batch: int = PRUNE_BATCH, pause: float = PRUNE_PAUSE
) -> int:
    """Prune, batch after batch, what was received before ``before``; how many rows were pruned."""
    total = 0
    while pruned := await store.prune_partials(before, batch):
        total += pruned
        await asyncio.sleep(pause)
    # The difficulty summaries' hourly counts of the same hours (not counted in the total: they are no partials).
    # A batch short of full ends the pass: rows a writer adds meanwhile wait for the next one, never keep it going.
    while True:
        if await store.prune_difficulty_hours(before, batch) < batch:
            return total
        await asyncio.sleep(pause)


class RetentionLoop:
    name = "retention"

    def interval(self, ctx: PoolContext) -> float:
        return PRUNE_INTERVAL

    async def run_once(self, ctx: PoolContext) -> int:
        """One pass; returns how many partials and refusals were pruned."""
        pruned = await prune_old_partials(ctx.store, retention_cutoff(ctx.config, ctx.now()))
        if pruned:
            log.info("retention: %d partials and refusals counted per hour and pruned", pruned)
        return pruned
