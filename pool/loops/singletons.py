"""Follows every farmer's PlotNFT to its buried tip and records whether it is (still, or again) a pool member.

Membership changes only on chain facts: a buried spend that changed the pool state, a melted singleton, or a spend
that contradicts the state the PlotNFT announced (forged). A node that cannot answer, or that says it no longer knows a
coin buried long ago (a node resyncing, or broken), changes nothing: the farmer is tried again next time.

Each pass resumes from the farmer's stored tip, never from the launcher: what is buried is not read again. The farmers
are read a page at a time, only what the check needs (their tips and states as stored, undecoded), and the tips of a
page and their children are looked up in one node call (``unmoved_singletons``): a farmer whose singleton has not
moved (its tip still spent and buried, the tip's child unspent) costs its share of that call and no spend read. The
child a tip created is checked against the tip's state once, and kept while the tip stays (``KnownTips``). Only the
others are read whole and followed one by one (a few at once), and a new spend is read once. A page whose call the
node refuses or fails is left for the next pass: a failed look-up is never read as a coin the node does not have.
A large pool's farmers are taken a slice of their launcher ids a pass, the passes as many times more often
(pool.store.slices): each farmer is still looked at once per ``loops.singleton_interval``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field

from pool.chain.interface import ChainUnavailable
from pool.chain.singleton import (
    CheckedTip,
    KnownTip,
    KnownTips,
    SingletonForged,
    SingletonView,
    Unmoved,
    follow_singleton,
    unmoved_singletons,
    view_is_member,
)
from pool.chain.status import ChainStatus
from pool.chia_adapter import bytes32
from pool.context import PoolContext
from pool.protocol.v2 import refresh_v2_farmer
from pool.store.models import FarmerRecord, SingletonPosition
from pool.store.slices import KeySlice, Rotation

log = logging.getLogger(__name__)

FARMERS_PER_READ = 200  # farmers read at once, and their singletons looked up in one node call
# Farmers followed at once: each follow is a few node round trips, mostly waiting, so a thousand farmers followed one
# after the other took seconds a pass; the node answers these reads concurrently.
FOLLOWED_AT_ONCE = 16
PAGES_AT_ONCE = 4  # pages of farmers whose node call (and follows) may be in flight at once
# Tips checked between two turns of the event loop: a tip not checked yet (every farmer in the first pass after a
# start) costs a fraction of a millisecond, and a page of them at once held the event loop for tens of milliseconds.
TIPS_CHECKED_AT_ONCE = 25


@dataclass
class SingletonStats:
    updated: int = 0
    failed: int = 0
    revoked: int = 0  # members whose singleton's spends contradict the state it announced
    unavailable: int = 0  # farmers left for the next iteration because the node could not answer
    not_on_chain: list[bytes32] = field(default_factory=list)  # launchers the node says it does not have


class SingletonLoop:
    name = "singletons"

    def __init__(self, status: ChainStatus) -> None:
        self.status = status
        self.known_tips: KnownTips | None = None  # made on the first pass, for the network's genesis challenge
        self.rotation = Rotation()  # a large pool's farmers a slice a pass (pool.store.slices)

    def interval(self, ctx: PoolContext) -> float:
        return self.status.after_node(self.rotation.interval(ctx.config.loops.singleton_interval))

    async def run_once(self, ctx: PoolContext) -> SingletonStats:
        stats = SingletonStats()
        peak_height = self.status.need_node().height
        if self.known_tips is None:
            self.known_tips = KnownTips(ctx.constants.GENESIS_CHALLENGE)
        at_once = asyncio.Semaphore(FOLLOWED_AT_ONCE)

        async def follow(launcher_id: bytes32) -> None:
            async with at_once:
                await _follow_one(ctx, launcher_id, peak_height, stats)

        async def one_page(page: list[SingletonPosition], known_tips: KnownTips) -> None:
            try:
                await _settle_page(ctx, page, known_tips, peak_height, stats, follow)
            finally:
                pages_at_once.release()

        # Every farmer, members or not: one that left and came back must become a member again. A few pages at
        # once: a page is mostly waiting for the node's answer, and fifty of them one after the other (ten thousand
        # farmers) made a pass last most of a second.
        pages_at_once = asyncio.Semaphore(PAGES_AT_ONCE)
        pages: list[asyncio.Task[None]] = []
        seen = 0
        try:
            async for page in _position_pages(ctx, self.rotation.current()):
                seen += len(page)
                await pages_at_once.acquire()
                pages.append(asyncio.create_task(one_page(page, self.known_tips)))
            # A failure as it was raised, not wrapped in a group: NotLeader must reach the runner as itself.
            await asyncio.gather(*pages)
        finally:
            for task in pages:
                task.cancel()
            await asyncio.gather(*pages, return_exceptions=True)
        self.rotation.passed(seen)
        _log_not_on_chain(stats.not_on_chain)
        return stats


async def _settle_page(
    ctx: PoolContext,
    page: list[SingletonPosition],
    known_tips: KnownTips,
    peak_height: int,
    stats: SingletonStats,
    follow: Callable[[bytes32], Awaitable[None]],
) -> None:
    """A page of farmers: the unmoved ones from one node call, the others followed one by one."""
    tips, unreadable = await _checked_tips(known_tips, page, stats)
    try:
        unmoved = await _unmoved(ctx, tips, peak_height)
    except ChainUnavailable as exc:  # says nothing about these farmers: try them again next time
        log.info("singletons of %d farmers not looked up this time: %s", len(page), exc)
        stats.unavailable += len(page)
        return
    members = {p.launcher_id for p in page if p.is_pool_member}
    for tip in tips:
        view = unmoved.views.get(tip.launcher_id)
        if view is not None:
            await _record_unmoved(ctx, tip, tip.launcher_id in members, view, peak_height, stats)
        elif tip.launcher_id in unmoved.not_found:  # as follow_singleton finding no launcher: no change
            stats.not_on_chain.append(tip.launcher_id)
            stats.failed += 1
    settled = unmoved.views.keys() | unmoved.not_found | unreadable
    await asyncio.gather(*(follow(p.launcher_id) for p in page if p.launcher_id not in settled))


NAMED_IN_A_LINE = 10  # launchers a warning names; the rest are counted


def _log_not_on_chain(launcher_ids: list[bytes32]) -> None:
    """One line a pass, however many: a node that lost its chain (resyncing, or another network's) does not know
    any launcher, and a line for each of ten thousand farmers every pass buried the log and held the event loop."""
    if not launcher_ids:
        return
    named = ", ".join(launcher_id.hex() for launcher_id in launcher_ids[:NAMED_IN_A_LINE])
    more = len(launcher_ids) - NAMED_IN_A_LINE
    log.warning(
        "cannot follow the singletons of %d farmers: not on chain (%s%s)",
        len(launcher_ids),
        named,
        f" and {more} more" if more > 0 else "",
    )


async def _checked_tips(
    known_tips: KnownTips, page: list[SingletonPosition], stats: SingletonStats
) -> tuple[list[CheckedTip], set[bytes32]]:
    """The page's PlotNFTs (v1) with their tips' checked children, and the farmers whose recorded tip or state does
    not decode (one farmer's broken record stops no other)."""
    tips: list[CheckedTip] = []
    unreadable: set[bytes32] = set()
    for index, position in enumerate(page):
        if index and index % TIPS_CHECKED_AT_ONCE == 0:
            await asyncio.sleep(0)  # the partials' intake runs between slices of a page
        if position.protocol_version == 2:
            continue  # a PlotNFT v2: followed by its own walk
        try:
            tips.append(
                known_tips.check(
                    position.launcher_id,
                    position.singleton_tip,
                    position.singleton_tip_state,
                    position.delay_time,
                    position.delay_puzzle_hash,
                )
            )
        except Exception as exc:
            log.warning("cannot read the recorded singleton of %s: %s", position.launcher_id.hex(), exc)
            stats.failed += 1
            unreadable.add(position.launcher_id)
    return tips, unreadable


async def _record_unmoved(
    ctx: PoolContext, tip: CheckedTip, was_member: bool, view: SingletonView, peak_height: int, stats: SingletonStats
) -> None:
    """Its membership may still change (a LEAVING_POOL countdown ends); one farmer's failure stops no other."""
    if view_is_member(view, ctx.config.pool, peak_height) == was_member:
        return  # the tip and state are the recorded ones: nothing to write
    try:
        if await record_view(ctx, tip.launcher_id, tip.known, was_member, view, peak_height):
            stats.updated += 1
    except Exception as exc:
        log.warning("cannot record the singleton of %s: %s", tip.launcher_id.hex(), exc)
        stats.failed += 1


async def _unmoved(ctx: PoolContext, tips: list[CheckedTip], peak_height: int) -> Unmoved:
    """Which of the page's PlotNFTs (v1) have not moved since their stored tip, from one node call."""
    return await unmoved_singletons(
        ctx.node,
        tips,
        peak_height=peak_height,
        confirmation_security_threshold=ctx.config.chain.confirmation_security_threshold,
    )


async def _follow_one(ctx: PoolContext, launcher_id: bytes32, peak_height: int, stats: SingletonStats) -> None:
    """A farmer whose singleton moved (or may have), read whole and followed."""
    farmer: FarmerRecord | None = None
    try:
        farmer = await ctx.store.get_farmer(launcher_id)
        if farmer is not None and await refresh_farmer(ctx, farmer, peak_height):
            stats.updated += 1
    except ChainUnavailable as exc:  # says nothing about this farmer: try it again next time
        log.info("singleton of %s not followed this time: %s", launcher_id.hex(), exc)
        stats.unavailable += 1
    except Exception as exc:
        # One farmer's odd singleton must not stop the others. A forged one (its spends contradict the state it
        # announces: a chain fact) is no member until it can be followed; anything else (a coin the node says it
        # does not know, an undecodable spend) changes nothing.
        log.warning("cannot follow the singleton of %s: %s", launcher_id.hex(), exc)
        stats.failed += 1
        if farmer is not None and farmer.is_pool_member and isinstance(exc, SingletonForged):
            if await revoke(ctx, farmer):
                stats.revoked += 1


async def _position_pages(ctx: PoolContext, within: KeySlice) -> AsyncIterator[list[SingletonPosition]]:
    """The singleton position of every farmer ``within`` the slice, a page at a time."""
    after = within.after
    while page := await ctx.store.singleton_positions(after, FARMERS_PER_READ):
        inside = [position for position in page if within.holds(position.launcher_id)]
        if inside:
            yield inside
        if len(inside) < len(page):
            return  # the page went past the slice's end
        after = page[-1].launcher_id


async def refresh_farmer(ctx: PoolContext, farmer: FarmerRecord, peak_height: int) -> bool:
    """Update the farmer's tip and membership; True if anything changed."""
    if farmer.protocol_version == 2:  # a PlotNFT v2: its own walk (pool.chain.plotnft_v2)
        return await refresh_v2_farmer(ctx, farmer, peak_height)
    view = await follow_singleton(
        ctx.node,
        farmer.launcher_id,
        peak_height=peak_height,
        confirmation_security_threshold=ctx.config.chain.confirmation_security_threshold,
        genesis_challenge=ctx.constants.GENESIS_CHALLENGE,
        known=KnownTip(farmer.singleton_tip, farmer.singleton_tip_state, farmer.delay_time, farmer.delay_puzzle_hash),
    )
    recorded = KnownTip(farmer.singleton_tip, farmer.singleton_tip_state)
    return await record_view(ctx, farmer.launcher_id, recorded, farmer.is_pool_member, view, peak_height)


async def record_view(
    ctx: PoolContext, launcher_id: bytes32, recorded: KnownTip, was_member: bool, view: SingletonView, peak_height: int
) -> bool:
    """Store the farmer's followed tip and membership if they changed from the ``recorded`` ones; True if they
    did."""
    member = view_is_member(view, ctx.config.pool, peak_height)
    if view.tip == recorded.tip and view.state == recorded.state and member == was_member:
        return False
    # Compare-and-set on the tip this walk started from: a newer view written meanwhile (PUT /farmer) stays.
    if not await ctx.store.update_singleton(launcher_id, view.tip, view.state, member, expected_tip=recorded.tip):
        return False
    if member != was_member:
        why = "melted" if view.melted else f"state {view.state.state} at height {peak_height}"
        log.info("farmer %s is %s a pool member (%s)", launcher_id.hex(), "now" if member else "no longer", why)
    return True


async def revoke(ctx: PoolContext, farmer: FarmerRecord) -> bool:
    """Membership off, tip and state as recorded (unless someone recorded a newer tip meanwhile)."""
    revoked = await ctx.store.update_singleton(
        farmer.launcher_id,
        farmer.singleton_tip,
        farmer.singleton_tip_state,
        False,
        expected_tip=farmer.singleton_tip,
    )
    if revoked:
        log.warning("farmer %s is no longer a pool member: its singleton cannot be trusted", farmer.launcher_id.hex())
    return revoked
