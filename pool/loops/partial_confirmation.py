"""Credits pending partials once their confirmation delay has passed, or rejects them with a reason.

A partial is accepted by POST /partial as PENDING. After ``partials.confirmation_delay`` seconds it is checked again:
the farmer must still be a pool member, and its signage point (or end of sub-slot) must not have been reverted by a
reorg. Everything lives in the store, so a restart simply picks up the pending partials again.

Only the node is needed (never the wallet), and each iteration asks it little: the farmers of a batch are read
together (their membership and ban only), each distinct signage point is looked up once through the signage point
cache shared with POST /partial. A partial whose re-check raises is set aside and retried later; the others go on. A
partial whose signage point the node no longer knows (it keeps about an hour of them, and none after a restart) was
checked against it at receipt: it is marked stale and credited or dropped as ``partials.stale_partials`` says.
"""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Literal, TypeVar

from pool.chain.interface import ChainUnavailable, ChallengeInfo
from pool.chain.status import ChainStatus
from pool.chia_adapter import bytes32
from pool.context import PoolContext
from pool.protocol.signage_points import SignagePointCache
from pool.store.models import FarmerStanding, PartialRecord

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
# (what, reason): ("confirm", ""), ("reject", why), ("credit" | "drop", why): stale, credited or dropped.
_Verdict = tuple[Literal["confirm", "reject", "credit", "drop"], str]
T = TypeVar("T")


class PartialConfirmLoop:
    name = "confirm-partials"

    def __init__(self, status: ChainStatus, signage_points: SignagePointCache, batch_size: int = 1000) -> None:
        self.status = status
        self.signage_points = signage_points  # the cache POST /partial looks them up in too
        self.batch_size = batch_size
        self._retry_at: dict[int, int] = {}  # partial id -> unix time its re-check may run again

    def interval(self, ctx: PoolContext) -> float:
        return self.status.after_node(ctx.config.loops.confirm_interval)

    async def run_once(self, ctx: PoolContext) -> ConfirmStats:
        stats = ConfirmStats()
        self.status.need_node()  # an unsynced node does not know recent signage points: rejecting now would be wrong
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
        # What becomes of each, then written a kind at a time: one transaction per partial kept the pool's writer
        # for seconds when many went stale at once (a pool restarted after the node forgot their signage points).
        settled: dict[_Verdict, list[PartialRecord]] = defaultdict(list)
        for number, partial in enumerate(batch, start=1):
            if number % YIELD_EVERY == 0:
                await asyncio.sleep(0)  # let waiting requests in: a batch must not stall POST /partial
            try:
                settled[self._verdict(ctx, partial, farmers, challenges)].append(partial)
            except ChainUnavailable:
                raise  # a node outage must not reject anything: the whole iteration waits for the node
            except Exception as exc:
                self._set_aside(now, [partial], stats, exc)
        for verdict, partials in settled.items():
            try:
                await self._write(ctx, verdict, partials, stats)
            except Exception as exc:
                self._set_aside(now, partials, stats, exc)
        return len(batch)

    @staticmethod
    async def _write(ctx: PoolContext, verdict: _Verdict, partials: list[PartialRecord], stats: ConfirmStats) -> None:
        ids = [partial.id for partial in partials if partial.id is not None]
        kind, reason = verdict
        if kind == "confirm":  # the good ones, the bulk
            stats.confirmed += len(await ctx.store.confirm_partials(ids))
            return
        farmers = len({partial.launcher_id for partial in partials})
        if kind == "reject":
            rejected = await ctx.store.reject_partials(ids, reason)
            stats.rejected += len(rejected)
            if rejected:
                log.info("%d partials of %d farmers rejected: %s (ids %s)", len(rejected), farmers, reason, rejected)
            return
        credit = kind == "credit"
        stale = await ctx.store.settle_stale_partials(ids, credit, reason)
        stats.stale += len(stale)
        if stale:
            log.info(
                "%d partials of %d farmers are stale (%s): %s (ids %s)",
                len(stale),
                farmers,
                REASON_UNKNOWN_SP,
                "credited" if credit else "dropped",
                stale,
            )

    def _set_aside(self, now: int, partials: list[PartialRecord], stats: ConfirmStats, exc: Exception) -> None:
        ids = [partial.id for partial in partials if partial.id is not None]
        log.warning("re-check of partials %s failed, retried later: %s", ids, exc)
        for partial_id in ids:
            self._retry_at[partial_id] = now + RETRY_AFTER_SECONDS
            stats.failed.append(partial_id)

    @staticmethod
    def _verdict(
        ctx: PoolContext,
        partial: PartialRecord,
        farmers: dict[bytes32, FarmerStanding | BaseException | None],
        challenges: dict[_Key, ChallengeInfo | BaseException | None],
    ) -> _Verdict:
        """What becomes of the partial: confirmed, rejected with a reason, or settled stale (credited or dropped)."""
        farmer = _result(farmers[partial.launcher_id])
        challenge = _result(challenges[(partial.sp_hash, partial.end_of_sub_slot)])
        if farmer is None or not farmer.is_pool_member:
            return ("reject", REASON_NOT_MEMBER)
        if farmer.banned_at is not None:
            return ("reject", REASON_BANNED)  # received before the ban: it earns nothing either
        if challenge is None:
            if ctx.config.partials.stale_partials == "credit":
                return ("credit", REASON_UNKNOWN_SP)
            return ("drop", REASON_STALE_DROPPED)
        if challenge.reverted:
            return ("reject", REASON_REVERTED_SP)
        return ("confirm", "")

    @staticmethod
    async def _farmers(
        ctx: PoolContext, batch: list[PartialRecord]
    ) -> dict[bytes32, FarmerStanding | BaseException | None]:
        """The standing of the batch's farmers, read together (a look-up each was most of a pass at a thousand
        farmers a batch)."""
        launcher_ids = {p.launcher_id for p in batch}
        try:
            standings = await ctx.store.farmer_standings(launcher_ids)
            return {launcher_id: standings.get(launcher_id) for launcher_id in launcher_ids}
        except Exception as exc:
            log.warning("farmers of a batch of partials not read together, read one by one: %s", exc)
        found: dict[bytes32, FarmerStanding | BaseException | None] = {}
        for launcher_id in launcher_ids:
            try:
                found[launcher_id] = (await ctx.store.farmer_standings([launcher_id])).get(launcher_id)
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
