"""Group commit of POST /partial's writes (pool.store.group_commit) on every store backend."""

from __future__ import annotations

import asyncio
import dataclasses

import pytest

from pool.store.abstract import AbstractPoolStore, StoreError
from pool.store.group_commit import PartialWriter
from pool.store.models import NotAdded, PartialCount, PartialRefusal, PartialStatus
from tests.store.test_store_contract import h, make_farmer, make_partial


async def test_concurrent_partials_share_a_commit_and_each_gets_its_own_outcome(store: AbstractPoolStore) -> None:
    farmer = make_farmer(1)
    await store.add_farmer(farmer)
    writer = PartialWriter(store)
    partials = [make_partial(farmer, n, 100 + n) for n in range(20)]
    duplicate, stranger = make_partial(farmer, 3, 200), make_partial(make_farmer(9), "x", 100)
    outcomes = await asyncio.gather(
        *(writer.add_partial(partial) for partial in [*partials, duplicate, stranger]),
        writer.add_refusal(PartialRefusal(farmer.launcher_id, 100, "TOO_LATE")),
        writer.add_refusal(PartialRefusal(h("nobody"), 100, "TOO_LATE")),
    )
    ids, (again, unknown, refused, skipped) = outcomes[:20], outcomes[20:]
    assert (again, unknown, refused, skipped) == (NotAdded.DUPLICATE, NotAdded.UNKNOWN_FARMER, None, None)
    assert all(isinstance(partial_id, int) for partial_id in ids) and len(set(ids)) == 20
    # All were queued before the first commit started (one event loop turn): one transaction for the lot.
    assert writer.batches == 1
    for partial, partial_id in zip(partials, ids, strict=True):
        assert await store.get_partial(partial_id) == dataclasses.replace(partial, id=partial_id)  # type: ignore[arg-type]
    assert PartialCount(0, "TOO_LATE", 1, 0) in await store.partial_counts(0, farmer.launcher_id)


async def test_a_failed_batch_fails_its_requests_and_the_next_batch_commits(store: AbstractPoolStore) -> None:
    farmer = make_farmer(1)
    await store.add_farmer(farmer)
    writer = PartialWriter(store)
    credited = dataclasses.replace(make_partial(farmer, "bad", 100), status=PartialStatus.CONFIRMED)
    failed = await asyncio.gather(
        writer.add_partial(make_partial(farmer, "good", 100)), writer.add_partial(credited), return_exceptions=True
    )
    assert all(isinstance(outcome, StoreError) for outcome in failed)
    assert await store.pending_partials(received_before=10_000) == []  # nothing of the failed batch was written
    assert isinstance(await writer.add_partial(make_partial(farmer, "good", 100)), int)


@pytest.mark.parametrize("batch", [1, 3])
async def test_batches_are_bounded(store: AbstractPoolStore, batch: int) -> None:
    farmer = make_farmer(1)
    await store.add_farmer(farmer)
    writer = PartialWriter(store, max_batch=batch)
    await asyncio.gather(*(writer.add_partial(make_partial(farmer, n, 100)) for n in range(6)))
    assert writer.batches == 6 // batch
    assert len(await store.pending_partials(received_before=10_000)) == 6
