"""Credits pending partials once their confirmation delay has passed, or rejects them with a reason.

A partial is accepted by POST /partial as PENDING. After ``partials.confirmation_delay`` seconds it is checked again:
the farmer must still be a pool member, and its signage point (or end of sub-slot) must not have been reverted by a
reorg. Everything lives in the store, so a restart simply picks up the pending partials again.

Only the node is needed (never the wallet), and each iteration asks it little: the farmers of a batch are read once,
each distinct signage point is looked up once through the signage point cache shared with POST /partial. A partial
whose re-check raises is set aside and retried later; the others go on. A partial whose signage point the node no
longer knows (it keeps about an hour of them, and none after a restart) was checked against it at receipt: it is
marked stale and credited or dropped as ``partials.stale_partials`` says.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from typing import TypeVar

from pool.chain.interface import ChainUnavailable, ChallengeInfo
from pool.chain.status import ChainStatus
from pool.chia_adapter import bytes32
from pool.context import PoolContext
from pool.protocol.signage_points import SignagePointCache
from pool.store.models import FarmerRecord, PartialRecord

log = logging.getLogger(__name__)

REASON_UNKNOWN_SP = "signage point no longer known"
REASON_STALE_DROPPED = "stale: signage point no longer known to the node (the pool fell behind); dropped by config"
REASON_REVERTED_SP = "signage point reverted"
REASON_NOT_MEMBER = "farmer is not a pool member"
REASON_BANNED = "farmer banned by the pool operator"

# A partial whose re-check raised is tried again after this many seconds (meanwhile it takes no place in a batch).
RETRY_AFTER_SECONDS = 60
LOOKUP_CONCURRENCY = 16  # signage point look-ups in flight at once
YIELD_EVERY = 100  # partials settled between two turns given to the rest of the event loop


@dataclass
class ConfirmStats:
    confirmed: int = 0
    rejected: int = 0
    stale: int = 0  # settled without their signage point (credited or dropped, see partials.stale_partials)
    failed: list[int] = field(default_factory=list)  # ids whose re-check raised: left pending, retried later


_Key = tuple[bytes32, bool]
T = TypeVar("T")


class PartialConfirmLoop:
    name = "confirm-partials"

    def __init__(self, status: ChainStatus, signage_points: SignagePointCache, batch_size: int = 1000) -> None:
        self.status = status
        self.signage_points = signage_points  # the cache POST /partial looks them up in too
        self.batch_size = batch_size
        self._retry_at: dict[int, int] = {}  # partial id -> unix time its re-check may run again

    def interval(self, ctx: PoolContext) -> float:
        return ctx.config.loops.confirm_interval

    async def run_once(self, ctx: PoolContext) -> ConfirmStats:
        stats = ConfirmStats()
        if not self.status.node_ready:
            return stats  # an unsynced node does not know recent signage points: rejecting now would be wrong
        now = ctx.now()
        self._retry_at = {pid: at for pid, at in self._retry_at.items() if at > now}
        # Every due partial, batch after batch: one batch per interval would cap what the pool can confirm (1000
        # every 5 s by default) below what it can accept, and the backlog would grow for ever.
        while await self._settle_batch(ctx, now, stats) == self.batch_size:
            pass
        if stats.stale:
            ctx.stats.stale_partials += stats.stale
        return stats

    async def _settle_batch(self, ctx: PoolContext, now: int, stats: ConfirmStats) -> int:
        """Settles the next batch of due partials; how many it held."""
        due_before = now - ctx.config.partials.confirmation_delay
        # Partials set aside are fetched on top of a full batch, so they never take the others' places.
        fetched = await ctx.store.pending_partials(
            received_before=due_before, limit=self.batch_size + len(self._retry_at)
        )
        batch = [p for p in fetched if p.id not in self._retry_at][: self.batch_size]
        if not batch:
            return 0
        farmers = await self._farmers(ctx, batch)
        challenges = await self._challenges(batch)
        confirmable: list[int] = []
        for number, partial in enumerate(batch, start=1):
            assert partial.id is not None
            if number % YIELD_EVERY == 0:
                await asyncio.sleep(0)  # let waiting requests in: a batch must not stall POST /partial
            try:
                if await self._settle(ctx, partial, farmers, challenges, stats):
                    confirmable.append(partial.id)
            except ChainUnavailable:
                raise  # a node outage must not reject anything: the whole iteration waits for the node
            except Exception as exc:
                self._set_aside(now, [partial], stats, exc)
        # The good ones, the bulk, are credited together: one transaction instead of one per partial.
        try:
            stats.confirmed += len(await ctx.store.confirm_partials(confirmable))
        except Exception as exc:
            ids = set(confirmable)
            self._set_aside(now, [p for p in batch if p.id in ids], stats, exc)
        return len(batch)

    def _set_aside(self, now: int, partials: list[PartialRecord], stats: ConfirmStats, exc: Exception) -> None:
        ids = [partial.id for partial in partials if partial.id is not None]
        log.warning("re-check of partials %s failed, retried later: %s", ids, exc)
        for partial_id in ids:
            self._retry_at[partial_id] = now + RETRY_AFTER_SECONDS
            stats.failed.append(partial_id)

    async def _settle(
        self,
        ctx: PoolContext,
        partial: PartialRecord,
        farmers: dict[bytes32, FarmerRecord | BaseException | None],
        challenges: dict[_Key, ChallengeInfo | BaseException | None],
        stats: ConfirmStats,
    ) -> bool:
        """Rejects or settles as stale what must be; True: the partial is to be confirmed."""
        assert partial.id is not None
        farmer = _result(farmers[partial.launcher_id])
        challenge = _result(challenges[(partial.sp_hash, partial.end_of_sub_slot)])
        if farmer is None or not farmer.is_pool_member:
            reason: str | None = REASON_NOT_MEMBER
        elif farmer.banned_at is not None:
            reason = REASON_BANNED  # received before the ban: it earns nothing either
        elif challenge is None:
            credit = ctx.config.partials.stale_partials == "credit"
            reason = REASON_UNKNOWN_SP if credit else REASON_STALE_DROPPED
            if await ctx.store.settle_stale_partial(partial.id, credit, reason):
                log.info(
                    "partial %d of %s is stale (%s): %s",
                    partial.id,
                    partial.launcher_id.hex(),
                    REASON_UNKNOWN_SP,
                    "credited" if credit else "dropped",
                )
                stats.stale += 1
            return False
        elif challenge.reverted:
            reason = REASON_REVERTED_SP
        else:
            reason = None
        if reason is None:
            return True
        if await ctx.store.reject_partial(partial.id, reason):
            log.info("partial %d of %s rejected: %s", partial.id, partial.launcher_id.hex(), reason)
            stats.rejected += 1
        return False

    @staticmethod
    async def _farmers(
        ctx: PoolContext, batch: list[PartialRecord]
    ) -> dict[bytes32, FarmerRecord | BaseException | None]:
        found: dict[bytes32, FarmerRecord | BaseException | None] = {}
        for launcher_id in {p.launcher_id for p in batch}:
            try:
                found[launcher_id] = await ctx.store.get_farmer(launcher_id)
            except Exception as exc:  # one unreadable farmer fails its own partials only
                found[launcher_id] = exc
        return found

    async def _challenges(self, batch: list[PartialRecord]) -> dict[_Key, ChallengeInfo | BaseException | None]:
        cache = self.signage_points
        limit = asyncio.Semaphore(LOOKUP_CONCURRENCY)

        async def lookup(key: _Key) -> ChallengeInfo | None:
            async with limit:
                # No waiting: a signage point the node does not know this long after receipt will not come back.
                return await cache.lookup(key[0], key[1], wait=0)

        keys = list({(p.sp_hash, p.end_of_sub_slot) for p in batch})
        results = await asyncio.gather(*(lookup(key) for key in keys), return_exceptions=True)
        for result in results:
            if isinstance(result, ChainUnavailable):
                raise result
        return dict(zip(keys, results, strict=True))


def _result(value: T | BaseException) -> T:
    if isinstance(value, BaseException):
        raise value
    return value
