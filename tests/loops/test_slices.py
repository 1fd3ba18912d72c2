"""A large pool's loop passes, a slice of the launcher ids at a time: the slices cover every id once, a round's
slice count follows the farmers the round before saw, and over a round the difficulty loop adjusts every member
once, as one whole pass does."""

from __future__ import annotations

import dataclasses
import itertools
from typing import Any

import pytest

from pool.chia_adapter import bytes32, std_hash
from pool.context import PoolContext
from pool.loops import singletons
from pool.loops.difficulty_adjustment import DifficultyLoop
from pool.store import slices
from pool.store.slices import EVERY_FARMER, Rotation, key_slice
from tests.loops.test_difficulty_loop import NOW, ctx, farmer, partial  # noqa: F401 (the ctx fixture)

LOWEST = bytes32(b"\0" * 32)
HIGHEST = bytes32(b"\xff" * 32)


@pytest.mark.parametrize("count", [1, 2, 3, 5, 7])
def test_the_slices_cover_every_launcher_id_once(count: int) -> None:
    parts = [key_slice(index, count) for index in range(count)]
    assert parts[0].first is None and parts[-1].end is None
    assert all(a.end == b.first and a.end is not None for a, b in itertools.pairwise(parts))  # no gap, no overlap
    ids = [LOWEST, HIGHEST] + [bytes32(std_hash(bytes([n]))) for n in range(200)]
    assert all(sum(part.holds(launcher_id) for part in parts) == 1 for launcher_id in ids)
    for part in parts[1:]:
        assert part.first is not None and part.after is not None
        assert int.from_bytes(part.after, "big") == int.from_bytes(part.first, "big") - 1
        assert not part.holds(part.after) and part.holds(part.first)
    assert key_slice(0, 1) == EVERY_FARMER and EVERY_FARMER.after is None
    with pytest.raises(ValueError):
        key_slice(3, 3)


def test_a_rounds_slice_count_follows_the_farmers_the_round_before_saw(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(slices, "FARMERS_PER_SLICE", 10)
    rotation = Rotation()
    assert rotation.current() == EVERY_FARMER and rotation.interval(60) == 60  # the first pass: every farmer
    rotation.passed(25)
    assert rotation.count == 3 and rotation.interval(60) == 20  # each farmer still seen once a minute
    seen = [rotation.current()]
    rotation.passed(9)
    seen.append(rotation.current())
    rotation.passed(8)
    seen.append(rotation.current())
    assert seen == [key_slice(index, 3) for index in range(3)]
    rotation.passed(3)  # the round saw 20 farmers: two slices next
    assert (rotation.count, rotation.index) == (2, 0)


async def test_a_sliced_round_adjusts_every_member_once(
    ctx: PoolContext,  # noqa: F811 (the fixture)
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(slices, "FARMERS_PER_SLICE", 2)
    members = [farmer(bytes([seed]), 10) for seed in range(6)]
    for member in members:
        await ctx.store.add_farmer(member)
        for number in range(100):  # 100 partials in the last hour: far above the target rate
            await ctx.store.add_partial(partial(member, number, NOW - 3600 + number * 36))
    passes: list[list[bytes32]] = []
    read_members = ctx.store.member_difficulties

    async def members_read(first: bytes32 | None = None, end: bytes32 | None = None) -> Any:
        found = await read_members(first=first, end=end)
        passes.append([member.launcher_id for member in found])
        return found

    monkeypatch.setattr(ctx.store, "member_difficulties", members_read)
    loop = DifficultyLoop()
    interval = ctx.config.loops.difficulty_interval
    assert loop.interval(ctx) == interval
    assert await loop.run_once(ctx) == 6  # the first pass: every member, as before
    assert loop.interval(ctx) == interval / 3  # then three slices a round, each member once per interval
    for _ in range(3):
        await loop.run_once(ctx)
    everyone = sorted(member.launcher_id for member in members)
    assert sorted(passes[0]) == everyone
    assert sorted(launcher_id for seen in passes[1:] for launcher_id in seen) == everyone  # each once in the round
    assert all(seen for seen in passes[1:])  # equal slices of hashed ids: none empty here


async def test_the_singletons_pass_reads_each_farmer_of_a_round_once(
    ctx: PoolContext,  # noqa: F811 (the fixture)
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The positions a sliced pass reads, page by page: every farmer, members or not, in exactly one slice of the
    round, a page cut where it runs past its slice."""
    monkeypatch.setattr(singletons, "FARMERS_PER_READ", 3)  # pages that cross the slices' bounds
    records = [farmer(bytes([seed]), 10) for seed in range(11)]
    for record in records:
        await ctx.store.add_farmer(
            record if record.launcher_id[0] % 2 else dataclasses.replace(record, is_pool_member=False)
        )
    everyone = sorted(record.launcher_id for record in records)
    for count in (1, 2, 3, 4):
        read: list[list[list[bytes32]]] = []
        for index in range(count):
            positions = singletons._position_pages(ctx, key_slice(index, count))
            read.append([[p.launcher_id for p in page] async for page in positions])
        assert sorted(i for pages in read for page in pages for i in page) == everyone, count
        for index, pages in enumerate(read):
            assert all(len(page) <= 3 and key_slice(index, count).holds(i) for page in pages for i in page)
