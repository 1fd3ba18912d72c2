"""Credits pending partials once their confirmation delay has passed, or rejects them with a reason.

A partial is accepted by POST /partial as PENDING. After ``partials.confirmation_delay`` seconds it is checked again:
its signage point (or end of sub-slot) must still be known to the node and not reverted by a reorg, and the farmer
must still be a pool member. Everything lives in the store, so a restart simply picks up the pending partials again.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from pool.chain.interface import ChallengeInfo
from pool.context import PoolContext
from pool.loops.status import ChainStatus
from pool.store.models import PartialRecord

log = logging.getLogger(__name__)

REASON_UNKNOWN_SP = "signage point no longer known"
REASON_REVERTED_SP = "signage point reverted"
REASON_NOT_MEMBER = "farmer is not a pool member"


@dataclass
class ConfirmStats:
    confirmed: int = 0
    rejected: int = 0


class PartialConfirmLoop:
    name = "confirm-partials"

    def __init__(self, status: ChainStatus, batch_size: int = 1000) -> None:
        self.status = status
        self.batch_size = batch_size

    def interval(self, ctx: PoolContext) -> float:
        return ctx.config.loops.confirm_interval

    async def run_once(self, ctx: PoolContext) -> ConfirmStats:
        stats = ConfirmStats()
        if not self.status.ready:
            return stats  # an unsynced node does not know recent signage points: rejecting now would be wrong
        due_before = ctx.now() - ctx.config.partials.confirmation_delay
        for partial in await ctx.store.pending_partials(received_before=due_before, limit=self.batch_size):
            assert partial.id is not None
            reason = await rejection_reason(ctx, partial)
            if reason is None:
                if await ctx.store.confirm_partial(partial.id):
                    stats.confirmed += 1
            elif await ctx.store.reject_partial(partial.id, reason):
                log.info("partial %d of %s rejected: %s", partial.id, partial.launcher_id.hex(), reason)
                stats.rejected += 1
        return stats


async def _challenge(ctx: PoolContext, partial: PartialRecord) -> ChallengeInfo | None:
    if partial.end_of_sub_slot:
        return await ctx.node.end_of_sub_slot(partial.sp_hash)
    return await ctx.node.signage_point(partial.sp_hash)


async def rejection_reason(ctx: PoolContext, partial: PartialRecord) -> str | None:
    """None if the partial still stands. ChainUnavailable propagates: a node outage must not reject anything."""
    challenge = await _challenge(ctx, partial)
    if challenge is None:
        return REASON_UNKNOWN_SP
    if challenge.reverted:
        return REASON_REVERTED_SP
    farmer = await ctx.store.get_farmer(partial.launcher_id)
    if farmer is None or not farmer.is_pool_member:
        return REASON_NOT_MEMBER
    return None
