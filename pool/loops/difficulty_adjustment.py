"""Adjusts each member's difficulty towards ``number_of_partials_target`` partials per ``time_target``.

The arithmetic is the pure ``pool.protocol.difficulty``; this loop feeds it a summary of each member's recent partials,
computed by the store from hourly counts kept as partials are recorded (never every farmer's partials read back each
pass: a few dozen rows a member), and stores the changes of a pass in one transaction. It runs apart from POST
/partial so that the hot path stays a few store calls. A large pool's members are adjusted a slice of their launcher
ids a pass, the passes as many times more often (pool.store.slices): each member once per ``loops.difficulty_interval``.
"""

from __future__ import annotations

import asyncio
import logging

from pool.chia_adapter import bytes32
from pool.context import PoolContext
from pool.protocol.difficulty import next_difficulty
from pool.store.models import DifficultyAdjustment, MemberDifficulty, PartialsSummary
from pool.store.slices import Rotation

log = logging.getLogger(__name__)

NO_PARTIALS = PartialsSummary(newest=None)
# Members adjusted between two turns of the event loop: ten thousand at once held it (and the partials waiting on it)
# for a tenth of a second and more.
MEMBERS_AT_ONCE = 500
# Changes written in one transaction. A pass of a large pool can change thousands (every member after a long stop,
# or when the operator moves the target): 2 000 in one transaction held SQLite's one writer for half a second at
# 10 000 farmers, and POST /partial's group commit with it. As for the prune's batches, a partial that waits for one
# must still come in under the p99 of those that do not (some 10 ms): on a copy of the 1-day 10 000-farmer store a
# write of 250 changes took 9.5 ms at the median, one of 100 4.4 ms; on the 30-day store, its pages cold after a
# start, 250 held the writer 47-99 ms. Each change is its own compare-and-set, so nothing ties one slice to another.
CHANGES_PER_WRITE = 100


class DifficultyLoop:
    name = "difficulty"

    def __init__(self) -> None:
        self.rotation = Rotation()  # a large pool's members a slice a pass (pool.store.slices)

    def interval(self, ctx: PoolContext) -> float:
        return self.rotation.interval(ctx.config.loops.difficulty_interval)

    async def run_once(self, ctx: PoolContext) -> int:
        """Adjust the members of this pass's slice (every member, below FARMERS_PER_SLICE); returns how many
        difficulties changed. A pass is two reads (the members' difficulties and presets, and the summaries of their
        partials, all by indexed look-ups) and a write transaction for every CHANGES_PER_WRITE changes it makes: no
        farmer record is decoded, no farmer costs a transaction of its own."""
        now = ctx.now()
        time_target = ctx.config.difficulty.time_target
        within = self.rotation.current()
        # Members first: a difficulty changed after this read fails the compare-and-set of the write instead of
        # being adjusted from a summary of partials at another difficulty.
        members = await ctx.store.member_difficulties(first=within.first, end=within.end)
        summaries = await ctx.store.difficulty_summaries(
            since=now - ctx.config.difficulty.history_seconds,
            window_start=now - time_target,
            first=within.first,
            end=within.end,
        )
        due: list[bytes32] = []
        adjustments: list[DifficultyAdjustment] = []
        for index, member in enumerate(members):
            if index and index % MEMBERS_AT_ONCE == 0:
                await asyncio.sleep(0)  # the partials' intake runs between slices of a large pool's members
            if member.pending_difficulty is not None:
                # A difficulty the farmer asked for with PUT /farmer: applied when its cooldown is over, never
                # overridden.
                due.append(member.launcher_id)
                continue
            new = next_difficulty_of(ctx, member, summaries.get(member.launcher_id, NO_PARTIALS), now)
            if new != member.difficulty:
                adjustments.append(DifficultyAdjustment(member.launcher_id, member.difficulty, new))
        changed = await write_changes(ctx, adjustments, due, now)
        self.rotation.passed(len(members))
        for adjustment in adjustments:
            if adjustment.launcher_id in changed:
                log.info(
                    "difficulty of %s: %d -> %d",
                    adjustment.launcher_id.hex(),
                    adjustment.expected,
                    adjustment.difficulty,
                )
        return len(changed)


async def write_changes(
    ctx: PoolContext, adjustments: list[DifficultyAdjustment], due: list[bytes32], now: int
) -> set[bytes32]:
    """The pass's changes, CHANGES_PER_WRITE a transaction; the members whose difficulty changed."""
    changed: set[bytes32] = set()
    for start in range(0, max(len(adjustments), len(due)), CHANGES_PER_WRITE):
        if start:
            await asyncio.sleep(0)  # the intake's commits go between two slices'
        # In force from the next whole second: partials of every signage point seen until now keep the old
        # difficulty (a partial is worth the difficulty at its signage point, a change taking effect at the start of
        # its second).
        changed.update(
            await ctx.store.adjust_difficulties(
                adjustments[start : start + CHANGES_PER_WRITE],
                ctx.now() + 1,
                due=due[start : start + CHANGES_PER_WRITE],
                now=now,
            )
        )
    return changed


def next_difficulty_of(ctx: PoolContext, member: MemberDifficulty, partials: PartialsSummary, now: int) -> int:
    """One member's difficulty: its preset (the difficulty it fixed on its page, within the pool's bounds) if it has
    one, else the step towards the pool's target rate."""
    settings = ctx.config.difficulty
    if member.preset is not None:
        return min(max(member.preset, settings.minimum), settings.maximum)  # bounds the operator may have changed since
    return next_difficulty(
        partials,
        member.difficulty,
        now,
        settings.number_of_partials_target,
        settings.time_target,
        settings.minimum,
        active_since=member.joined_at,
    )
