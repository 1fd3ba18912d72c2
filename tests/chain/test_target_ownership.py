"""The pool's wallet proves it owns the target address before any reward is absorbed into it: chia's real wallet
signs (or refuses to sign) for the address, and the reward loop absorbs only once the proof is recorded."""

from __future__ import annotations

import dataclasses
import secrets
from pathlib import Path

import pytest

from pool.chain.interface import AddressNotOwned
from pool.chain.ownership import ownership_message, signed_for_target
from pool.chia_adapter import bytes32, encode_puzzle_hash
from pool.devnet.world import World
from pool.loops.rewards import proof_holds, prove_target_ownership
from tests.loops.loops_harness import THRESHOLD, Clock, Pool, random_puzzle_hash

POOL_URL = "http://127.0.0.1:1"


async def test_the_pool_wallet_proves_its_own_address_and_no_other(world: World, tmp_path: Path) -> None:
    pool = await Pool.start(world, tmp_path / "pool.sqlite", Clock())
    try:
        proof = await prove_target_ownership(pool.ctx, now=1_000)
        assert proof.fingerprint == world.pool_wallet_fingerprint
        assert proof.target_puzzle_hash == world.pool_target_puzzle_hash
        assert proof_holds(proof)
        assert not proof_holds(dataclasses.replace(proof, message=proof.message + " (edited)"))
        assert not proof_holds(dataclasses.replace(proof, address=encode_puzzle_hash(random_puzzle_hash(), "txch")))

        for foreign in (await world.farmer_wallet_address(), bytes32(secrets.token_bytes(32))):
            address = encode_puzzle_hash(foreign, "txch")
            with pytest.raises(AddressNotOwned, match="has no key"):
                await signed_for_target(pool.ctx.wallet, foreign, address, ownership_message("Devnet Pool", address, 1))
    finally:
        await pool.stop()


async def test_no_reward_is_absorbed_into_an_address_the_pool_wallet_does_not_own(world: World, tmp_path: Path) -> None:
    """A PlotNFT farms to a target the pool's wallet cannot spend from (the farmer wallet's address): its rewards
    stay where they are; with the pool wallet's own address, the proof is made and recorded, and absorbs go."""
    foreign = await world.farmer_wallet_address()
    plotnft = await world.create_plotnft(pool_url=POOL_URL, target_puzzle_hash=foreign)
    await world.farm_blocks(THRESHOLD + 1)
    pool = await Pool.start(world, tmp_path / "pool.sqlite", Clock())
    try:
        pool.ctx.config = dataclasses.replace(
            pool.ctx.config, pool=dataclasses.replace(pool.ctx.config.pool, target_puzzle_hash=foreign)
        )
        await pool.add_farmer(plotnft, random_puzzle_hash())
        await world.farm_blocks(1, pool_reward_puzzle_hash=plotnft.p2_singleton_puzzle_hash)
        await world.farm_blocks(THRESHOLD + 1)
        await pool.peak()
        for _ in range(2):
            stats = await pool.rewards.run_once(pool.ctx)
            assert stats.waiting_for_proof and stats.submitted == []
        assert await pool.ctx.store.reward_claims() == [] and await pool.ctx.store.target_proof(foreign) is None
        unclaimed = await pool.coins_at(plotnft.p2_singleton_puzzle_hash)
        assert any(record.coinbase and not record.spent for record in unclaimed)
        own = world.pool_target_puzzle_hash
        assert await pool.ctx.store.target_proof(own) is None
    finally:
        await pool.stop()
    # The same store, the pool's own target: the proof is made once, kept, and the loop goes on to absorb.
    pool = await Pool.start(world, tmp_path / "pool.sqlite", Clock())
    try:
        stats = await pool.rewards.run_once(pool.ctx)
        assert not stats.waiting_for_proof
        proof = await pool.ctx.store.target_proof(world.pool_target_puzzle_hash)
        assert proof is not None and proof_holds(proof) and proof.fingerprint == world.pool_wallet_fingerprint
    finally:
        await pool.stop()
