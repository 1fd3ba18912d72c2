"""Adjusts each member's difficulty towards ``number_of_partials_target`` partials per ``time_target``.

The arithmetic is the pure ``pool.protocol.difficulty``; this loop feeds it a summary of each member's recent partials,
computed by the store in one query for all members (never every farmer's partials read back each pass), and stores
the result. It runs apart from POST /partial so that the hot path stays a few store calls.
"""

from __future__ import annotations

import logging

from pool.context import PoolContext
from pool.protocol.difficulty import next_difficulty
from pool.store.models import FarmerRecord, PartialsSummary

log = logging.getLogger(__name__)

NO_PARTIALS = PartialsSummary(newest=None)


class DifficultyLoop:
    name = "difficulty"

    def interval(self, ctx: PoolContext) -> float:
        return ctx.config.loops.difficulty_interval

    async def run_once(self, ctx: PoolContext) -> int:
        """Adjust every member; returns how many difficulties changed."""
        changed = 0
        now = ctx.now()
        time_target = ctx.config.difficulty.time_target
        # Farmers first: a difficulty changed after this read fails the compare-and-set below instead of being
        # adjusted from a summary of partials at another difficulty.
        farmers = await ctx.store.list_farmers(members_only=True)
        summaries = await ctx.store.difficulty_summaries(
            since=now - ctx.config.difficulty.history_seconds, window_start=now - time_target
        )
        presets = {i: s.difficulty_preset for i, s in (await ctx.store.all_farmer_settings()).items()}
        for farmer in farmers:
            try:
                summary = summaries.get(farmer.launcher_id, NO_PARTIALS)
                changed += await adjust_farmer(ctx, farmer, summary, now, presets.get(farmer.launcher_id))
            except Exception:
                log.exception("difficulty adjustment of %s failed", farmer.launcher_id.hex())
        return changed


async def adjust_farmer(
    ctx: PoolContext, farmer: FarmerRecord, partials: PartialsSummary, now: int, preset: int | None = None
) -> int:
    """Move one farmer's difficulty: to its ``preset`` (the difficulty it fixed on its page, within the pool's
    bounds) if it has one, else towards the pool's target rate."""
    if farmer.pending_difficulty is not None:
        # A difficulty the farmer asked for with PUT /farmer: apply it when its cooldown is over, never override it.
        await ctx.store.apply_due_difficulty(farmer.launcher_id, now)
        return 0
    settings = ctx.config.difficulty
    if preset is not None:
        new = min(max(preset, settings.minimum), settings.maximum)  # bounds the operator may have changed since
    else:
        new = next_difficulty(
            partials,
            farmer.difficulty,
            now,
            settings.number_of_partials_target,
            settings.time_target,
            settings.minimum,
            active_since=farmer.joined_at,
        )
    if new == farmer.difficulty:
        return 0
    # Compare-and-set: a PUT /farmer that landed since the farmer was read wins over this adjustment.
    # In force from the next whole second: partials of every signage point seen until now keep the old difficulty
    # (a partial is worth the difficulty at its signage point, a change taking effect at the start of its second).
    if not await ctx.store.adjust_difficulty(farmer.launcher_id, farmer.difficulty, new, ctx.now() + 1):
        return 0
    log.info("difficulty of %s: %d -> %d", farmer.launcher_id.hex(), farmer.difficulty, new)
    return 1
