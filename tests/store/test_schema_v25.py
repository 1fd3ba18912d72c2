"""The step to schema version 25 on both backends: a proof's key starts with its signage point's hash from then on
(pool.protocol.partials.proof_identity), and the partials of the last hour are keyed so too, so that a copy of one of
them sent again after the upgrade is still a resend; older ones keep the key they had, and a new partial keyed
otherwise is refused."""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

import pytest

from pool.chia_adapter import AugSchemeMPL, ProofOfSpace, bytes32, std_hash, uint8, uint16
from pool.protocol.partials import proof_identity
from pool.store import postgres_schema, sqlite_schema
from pool.store.abstract import NotAdded
from tests.store.test_schema_v19 import store_of
from tests.store.test_store_contract import h, make_farmer, make_partial


def a_proof(seed: str) -> ProofOfSpace:
    plot_key = AugSchemeMPL.key_gen(std_hash(f"plot key {seed}".encode())).get_g1()
    return ProofOfSpace(
        h(f"challenge {seed}"),
        None,
        h("pool contract"),
        plot_key,
        uint8(0),
        uint16(0),
        uint8(0),
        uint8(0),
        uint8(32),
        std_hash(f"proof {seed}".encode()) * 8,
    )


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
async def test_the_last_hours_proofs_are_keyed_by_their_signage_point_and_still_found(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    steps = sqlite_schema.MIGRATIONS.index(sqlite_schema._SCHEMA_V25_PROOF_KEYS)
    assert steps == postgres_schema.MIGRATIONS.index(postgres_schema._SCHEMA_V25_PROOF_KEYS)
    farmer = make_farmer(1)
    now = int(time.time())
    # As the pool recorded them before the step: keyed by the hash of the proof's binary form alone.
    recent, old = a_proof("recent"), a_proof("old")
    recent_partial = dataclasses.replace(make_partial(farmer, "recent", now - 60), proof_hash=std_hash(bytes(recent)))
    old_partial = dataclasses.replace(make_partial(farmer, "old", now - 7_200), proof_hash=std_hash(bytes(old)))
    before = store_of(backend, tmp_path, request, steps=steps)
    await before.open()
    await before.add_farmer(farmer)
    assert all(isinstance(added, int) for added in await before.record_partials([recent_partial, old_partial]))
    await before.close()

    store = store_of(backend, tmp_path, request, steps=None)
    await store.open()
    try:
        keys = {p.received_at: p.proof_hash for p in await store.recent_partials(farmer.launcher_id, since=0)}
        recent_key = proof_identity(recent_partial.sp_hash, recent)
        assert recent_key[:8] == recent_partial.sp_hash[:8] and recent_key != recent_partial.proof_hash
        assert keys == {now - 60: recent_key, now - 7_200: old_partial.proof_hash}
        # The recent proof sent again, keyed as the pool keys it now: a resend, credited once.
        again = dataclasses.replace(recent_partial, proof_hash=recent_key, received_at=now)
        assert await store.record_partials([again]) == [NotAdded.DUPLICATE]
        # A new proof of the same signage point: its own key, recorded.
        other = dataclasses.replace(recent_partial, proof_hash=proof_identity(recent_partial.sp_hash, a_proof("new")))
        (added,) = await store.record_partials([other])
        assert isinstance(added, int)
        # A partial keyed the old way (a process of before the step, in a rolling upgrade) is refused, with every
        # partial of its statement: the same proof cannot be recorded under both keys.
        old_way = dataclasses.replace(other, proof_hash=std_hash(bytes(a_proof("old way"))))
        with pytest.raises(Exception, match="proof key must start with its signage point"):
            await store.record_partials(
                [dataclasses.replace(other, proof_hash=proof_identity(other.sp_hash, a_proof("x"))), old_way]
            )
        assert len(await store.recent_partials(farmer.launcher_id, since=0)) == 3
    finally:
        await store.close()


def test_a_proofs_key_names_its_signage_point_and_its_proof() -> None:
    proof, sp = a_proof("one"), h("signage point")
    key = proof_identity(sp, proof)
    assert isinstance(key, bytes32) and key[:8] == sp[:8] and key[8:] == std_hash(bytes(proof))[:24]
    assert proof_identity(sp, proof) == key  # the same proof, the same key: a resend is found
    assert proof_identity(sp, a_proof("two")) != key
    assert proof_identity(h("another signage point"), proof) != key
