"""Rows to records: a large read is decoded a slice at a time, the event loop running other work between slices."""

from __future__ import annotations

import asyncio

from pool.store.rows import DECODED_AT_ONCE, Row, decoded


async def test_a_large_read_lets_the_event_loop_run_between_slices() -> None:
    """What the partials' intake needs while a loop decodes ten thousand farmers: turns of the event loop."""
    turns_seen: list[int] = []
    turns = 0

    async def other_work() -> None:
        nonlocal turns
        while True:
            turns += 1
            await asyncio.sleep(0)

    def decode(row: Row) -> int:
        turns_seen.append(turns)
        return int(row["n"]) * 2

    beside = asyncio.create_task(other_work())
    await asyncio.sleep(0)
    try:
        records = await decoded([{"n": n} for n in range(2 * DECODED_AT_ONCE + 1)], decode)
    finally:
        beside.cancel()
    assert records == [n * 2 for n in range(2 * DECODED_AT_ONCE + 1)]
    # One slice decoded without a turn between its rows; the other work ran between the slices.
    slices = [turns_seen[start : start + DECODED_AT_ONCE] for start in range(0, len(turns_seen), DECODED_AT_ONCE)]
    assert [len(set(seen)) for seen in slices] == [1, 1, 1]
    assert slices[0][0] < slices[1][0] < slices[2][0]


async def test_a_small_read_is_decoded_at_once() -> None:
    assert await decoded([], lambda row: row) == []
    assert await decoded([{"n": 1}], lambda row: row["n"]) == [1]
