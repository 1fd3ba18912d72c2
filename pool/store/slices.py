"""A loop's pass over every farmer of the store, split into slices of the launcher id space when the pool is large.

At ten thousand farmers the difficulty and singletons passes were each half a second to a second of reads, node calls
and event-loop work once a minute, both at the same moment; with the partials, the node and the pages on the same
cores, the requests in flight then waited tens of milliseconds. Split into slices of about FARMERS_PER_SLICE farmers,
one slice a pass and the passes as many times more often, each farmer is still seen once per the configured
interval and the work comes in small steps spread over it. A pool below that size takes every farmer in each pass,
as before. Launcher ids are hashes, so equal slices of the id space hold about equal shares of the farmers.

Which slice comes next lives only in the loop's object: after a restart a round starts again from the first slice,
with every farmer in one pass (the slice count comes from how many farmers the last round saw).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from pool.chia_adapter import bytes32

FARMERS_PER_SLICE = 2_000
_SPACE = 1 << 256  # launcher ids, read as 256-bit integers


@dataclass(frozen=True)
class KeySlice:
    """Launcher ids from ``first`` (inclusive) to ``end`` (exclusive); None: the space's start, or its end."""

    first: bytes32 | None
    end: bytes32 | None

    def holds(self, launcher_id: bytes32) -> bool:
        return (self.first is None or launcher_id >= self.first) and (self.end is None or launcher_id < self.end)

    @property
    def after(self) -> bytes32 | None:
        """The greatest id before the slice (for reads that continue after a key), None from the space's start."""
        return None if self.first is None else bytes32((int.from_bytes(self.first, "big") - 1).to_bytes(32, "big"))


EVERY_FARMER = KeySlice(None, None)


def key_slice(index: int, count: int) -> KeySlice:
    """Slice ``index`` of ``count`` equal slices of the launcher id space."""
    if not 0 <= index < count:
        raise ValueError(f"slice {index} of {count}")
    first = None if index == 0 else bytes32((_SPACE * index // count).to_bytes(32, "big"))
    end = None if index == count - 1 else bytes32((_SPACE * (index + 1) // count).to_bytes(32, "big"))
    return KeySlice(first, end)


@dataclass
class Rotation:
    """The slices of a loop's rounds: which one the next pass takes, and how many a round has."""

    count: int = 1  # slices in the current round (one at the start: every farmer in the first pass)
    index: int = 0
    seen: int = 0  # farmers the current round's passes saw so far

    def current(self) -> KeySlice:
        return key_slice(self.index, self.count)

    def passed(self, farmers: int) -> None:
        """The current slice's pass is over, having seen ``farmers``; a failed pass is not told (its slice comes
        again). The next round has as many slices as the farmers this one saw call for."""
        self.seen += farmers
        self.index += 1
        if self.index == self.count:
            self.count = max(1, math.ceil(self.seen / FARMERS_PER_SLICE))
            self.index = 0
            self.seen = 0

    def interval(self, configured: float) -> float:
        """Seconds between passes: each farmer seen once per ``configured`` seconds."""
        return configured / self.count
