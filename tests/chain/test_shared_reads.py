"""The one policy of reads kept fresh in the background (pool/chain/shared_reads.py), with a clock moved by hand and a
read that counts its calls. The signage point and peak caches are tested on the chain in tests/http."""

from __future__ import annotations

import asyncio

import pytest

from pool.chain.shared_reads import KeptValue, RefreshedReads


class CountingRead:
    """A read answering 1, 2, 3, ... (or ``None`` when told to), each answer after ``delay`` seconds."""

    def __init__(self, delay: float = 0.0) -> None:
        self.calls = 0
        self.delay = delay
        self.finds_nothing = False

    async def __call__(self) -> int | None:
        self.calls += 1
        await asyncio.sleep(self.delay)
        return None if self.finds_nothing else self.calls


async def settled() -> None:
    """Lets background re-reads (no delay) finish."""
    for _ in range(5):
        await asyncio.sleep(0)


async def test_young_values_answer_half_old_ones_are_reread_behind_old_ones_are_waited_for() -> None:
    now = [100.0]
    reads: RefreshedReads[str, int | None] = RefreshedReads(10.0, clock=lambda: now[0])
    read = CountingRead()
    assert await reads.get("k", read) == 1
    now[0] += 4.9
    assert await reads.get("k", read) == 1
    await settled()
    assert read.calls == 1  # young: not re-read

    now[0] += 0.1  # half its time to live: answered at once, re-read once behind
    assert [await reads.get("k", read) for _ in range(3)] == [1, 1, 1]
    await settled()
    assert read.calls == 2 and await reads.get("k", read) == 2

    now[0] += 10.0  # past its time to live: the caller waits for the read
    assert await reads.get("k", read) == 3


async def test_callers_that_must_wait_share_one_read() -> None:
    reads: RefreshedReads[str, int | None] = RefreshedReads(10.0)
    read = CountingRead(delay=0.01)
    assert await asyncio.gather(*(reads.get("k", read) for _ in range(10))) == [1] * 10
    assert read.calls == 1


async def test_nothing_found_is_not_kept() -> None:
    reads: RefreshedReads[str, int | None] = RefreshedReads(10.0)
    read = CountingRead()
    read.finds_nothing = True
    assert await reads.read("k", read) is None
    assert reads.kept("k") is None
    read.finds_nothing = False
    assert await reads.read("k", read) == 2


async def test_a_reread_that_finds_nothing_leaves_the_kept_value() -> None:
    now = [0.0]
    reads: RefreshedReads[str, int | None] = RefreshedReads(10.0, clock=lambda: now[0])
    read = CountingRead()
    await reads.read("k", read)
    now[0] += 6.0
    kept = reads.kept("k")
    assert kept is not None and kept.reread_due
    read.finds_nothing = True
    reads.reread_in_background("k", read)
    assert reads.kept("k") == KeptValue(1, reread_due=False)  # a re-read runs: no second one is due
    await settled()
    kept_after = reads.kept("k")
    assert kept_after is not None and kept_after.value == 1


async def test_the_oldest_reads_are_forgotten_beyond_max_entries() -> None:
    reads: RefreshedReads[int, int | None] = RefreshedReads(10.0, max_entries=2)
    for key in range(3):
        await reads.read(key, CountingRead())
    assert reads.kept(0) is None
    assert reads.kept(1) is not None and reads.kept(2) is not None


async def test_a_failed_background_reread_is_dropped_and_the_next_wait_reads_again() -> None:
    now = [0.0]
    reads: RefreshedReads[str, int] = RefreshedReads(10.0, clock=lambda: now[0])

    async def one() -> int:
        return 1

    async def broken() -> int:
        raise ConnectionError("node gone")

    assert await reads.get("k", one) == 1
    now[0] += 5.0
    assert await reads.get("k", broken) == 1  # the kept value answers; the re-read fails behind it
    await settled()
    now[0] += 5.0
    with pytest.raises(ConnectionError):
        await reads.get("k", broken)
