"""Test helpers for the loops: a pool (context + loops) on a devnet World, with a clock the test moves by hand.

Money reaches a pool only the way it does in production: a member's pool plot wins a block (its pool reward lands at
the PlotNFT's p2_singleton puzzle hash), the reward loop absorbs it and the absorb is buried (``win_and_claim``).
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field, replace
from pathlib import Path

from pool.chain.node_rpc import RpcFullNode
from pool.chain.singleton import follow_singleton, is_member_of_pool
from pool.chain.status import ChainStatus
from pool.chain.wallet_rpc import WalletRpc
from pool.chia_adapter import CoinRecord, bytes32
from pool.config import PoolConfig
from pool.context import PoolContext
from pool.devnet.pool_config import world_pool_config
from pool.devnet.world import PlotNFTInfo, World
from pool.loops.partial_confirmation import PartialConfirmLoop
from pool.loops.payouts import PayoutLoop, PayoutStats
from pool.loops.peak import PeakLoop
from pool.loops.rewards import RewardLoop, RewardStats
from pool.loops.singletons import SingletonLoop
from pool.protocol.partials import proof_key
from pool.server import signage_point_cache
from pool.store.models import ClaimStatus, FarmerRecord, PartialRecord, PayoutRound, RoundStatus
from pool.store.sqlite import SqlitePoolStore
from tests.chain_checks import store_agrees_with_chain

THRESHOLD = 2  # confirmation_security_threshold of the test pool


@dataclass
class Clock:
    now: int = 1_700_000_000

    def __call__(self) -> int:
        return self.now


def pool_config(world: World, store_path: Path, **overrides: object) -> PoolConfig:
    # Fixed fees unless a test asks for the node's estimate: the tests count fees to the mojo, and the simulator's
    # estimator learns from every fee its blocks carried, so an estimate depends on the tests that ran before.
    settings: dict[str, object] = {
        "relative_lock_height": 5,
        "confirmation_threshold": THRESHOLD,
        "fees": {"from_node": False},
        **overrides,
    }
    return world_pool_config(world, store_path=store_path, server_port=0, **settings)  # type: ignore[arg-type]


@dataclass
class Pool:
    """One pool process: its context and loops. ``restart()`` builds fresh ones over the same database file."""

    ctx: PoolContext
    status: ChainStatus = field(default_factory=ChainStatus)
    stopped: bool = False
    config_overrides: dict[str, object] = field(default_factory=dict)  # kept across restarts
    node_port: int | None = None  # the node's RPC port the pool uses, if not the world's (a proxy in front of it)

    def __post_init__(self) -> None:
        self.signage_points = signage_point_cache(self.ctx)
        self.peak_loop = PeakLoop(self.status)
        self.partials = PartialConfirmLoop(self.status, self.signage_points)
        self.singletons = SingletonLoop(self.status)
        self.rewards = RewardLoop(self.status, drop_after_blocks=3)
        self.payouts = PayoutLoop(self.status, repush_after=0)

    @classmethod
    async def start(
        cls, world: World, store_path: Path, clock: Clock, *, node_port: int | None = None, **config_overrides: object
    ) -> Pool:
        config = pool_config(world, store_path, **config_overrides)
        store = SqlitePoolStore(store_path)
        await store.open()
        node_rpc = config.chain.full_node
        if node_port is not None:
            node_rpc = replace(node_rpc, port=node_port)
        node = await RpcFullNode.connect(node_rpc)
        wallet = await WalletRpc.connect(config.chain)
        ctx = PoolContext(config=config, store=store, node=node, wallet=wallet, constants=world.constants, now=clock)
        pool = cls(ctx, config_overrides=dict(config_overrides), node_port=node_port)
        await pool.peak()
        return pool

    async def stop(self) -> None:
        if self.stopped:
            return
        self.stopped = True
        await self.ctx.store.close()
        await self.ctx.node.close()
        await self.ctx.wallet.close()

    async def restart(self, world: World) -> Pool:
        """As after a crash: everything in memory is gone, only the database file remains."""
        store_path = self.ctx.config.store.path
        clock = self.ctx.now
        assert isinstance(clock, Clock)
        await self.stop()
        return await Pool.start(world, store_path, clock, node_port=self.node_port, **self.config_overrides)

    async def peak(self) -> None:
        await self.peak_loop.run_once(self.ctx)
        assert self.status.ready, self.status

    async def add_farmer(self, plotnft: PlotNFTInfo, payout_puzzle_hash: bytes32) -> FarmerRecord:
        await self.peak()
        peak = self.status.peak_height
        view = await follow_singleton(
            self.ctx.node,
            plotnft.launcher_id,
            peak_height=peak,
            confirmation_security_threshold=THRESHOLD,
            genesis_challenge=self.ctx.constants.GENESIS_CHALLENGE,
        )
        farmer = FarmerRecord(
            launcher_id=plotnft.launcher_id,
            p2_singleton_puzzle_hash=view.p2_singleton_puzzle_hash,
            delay_time=view.delay_time,
            delay_puzzle_hash=view.delay_puzzle_hash,
            authentication_public_key=plotnft.authentication_secret_key.get_g1(),
            singleton_tip=view.tip,
            singleton_tip_state=view.state,
            difficulty=1,
            payout_instructions=payout_puzzle_hash.hex(),
            payout_puzzle_hash=payout_puzzle_hash,
            is_pool_member=is_member_of_pool(view.state, self.ctx.config.pool, peak, view.coin_height),
            points=0,
            joined_at=self.ctx.now(),
        )
        await self.ctx.store.add_farmer(farmer)
        return farmer

    async def add_partial(
        self, launcher_id: bytes32, sp_hash: bytes32, difficulty: int, end_of_sub_slot: bool = False
    ) -> int:
        partial = PartialRecord(
            launcher_id=launcher_id,
            proof_hash=proof_key(sp_hash, bytes32(secrets.token_bytes(32))),
            sp_hash=sp_hash,
            end_of_sub_slot=end_of_sub_slot,
            harvester_id=bytes32(secrets.token_bytes(32)),
            received_at=self.ctx.now(),
            difficulty=difficulty,
        )
        partial_id = await self.ctx.store.add_partial(partial)
        assert partial_id is not None
        return partial_id

    async def coins_at(self, puzzle_hash: bytes32) -> list[CoinRecord]:
        return await self.ctx.node.coin_records_by_puzzle_hashes([puzzle_hash], include_spent=True)

    def advance(self, seconds: int) -> None:
        clock = self.ctx.now
        assert isinstance(clock, Clock)
        clock.now += seconds

    async def confirm_partials(self, world: World, *points: tuple[PlotNFTInfo, int]) -> None:
        """One partial per (PlotNFT, difficulty) on a fresh signage point, confirmed by the partials loop."""
        sp = await world.new_signage_point()
        for plotnft, difficulty in points:
            await self.add_partial(plotnft.launcher_id, sp.sp_hash, difficulty)
        self.advance(self.ctx.config.partials.confirmation_delay + 1)
        await self.peak()
        stats = await self.partials.run_once(self.ctx)
        assert (stats.confirmed, stats.rejected) == (len(points), 0)

    async def points(self) -> dict[bytes32, int]:
        return {f.launcher_id: f.points for f in await self.ctx.store.list_farmers()}

    async def run_payouts(self) -> PayoutStats:
        await self.peak()
        return await self.payouts.run_once(self.ctx)


async def win(world: World, pool: Pool, plotnft: PlotNFTInfo, blocks: int = 1) -> None:
    """``blocks`` blocks won by the PlotNFT's pool plots (their pool rewards at its p2_singleton puzzle hash), then
    farmed on until the last reward coin is buried deep enough to be claimed."""
    await world.farm_blocks(blocks, pool_reward_puzzle_hash=plotnft.p2_singleton_puzzle_hash)
    await world.farm_blocks(THRESHOLD + 1)  # a block's reward is created in the next block, then buried
    await pool.peak()


async def absorb(pool: Pool, coins: int) -> RewardStats:
    """One reward loop iteration that must push absorbs of exactly ``coins`` reward coins."""
    await pool.peak()
    stats = await pool.rewards.run_once(pool.ctx)
    assert len(stats.submitted) == coins, stats
    return stats


async def bury_claims(world: World, pool: Pool, coins: int) -> None:
    """Farm the absorbs in flight into a block, bury them and let the reward loop confirm ``coins`` claims."""
    await world.farm_blocks(1)
    await pool.peak()
    assert (await pool.rewards.run_once(pool.ctx)).confirmed == 0  # on chain, not yet buried
    await world.farm_blocks(THRESHOLD)
    await pool.peak()
    assert (await pool.rewards.run_once(pool.ctx)).confirmed == coins


async def win_and_claim(pool: Pool, world: World, plotnft: PlotNFTInfo, blocks: int = 1) -> int:
    """Win ``blocks`` blocks with the PlotNFT's pool plots, absorb the rewards and bury the absorb: returns the mojos
    the new confirmed claims credited to the ledger (all of them rewards of this PlotNFT)."""
    before = {c.coin_id for c in await pool.ctx.store.reward_claims(ClaimStatus.CONFIRMED)}
    await win(world, pool, plotnft, blocks)
    await absorb(pool, blocks)
    await bury_claims(world, pool, blocks)
    new = [c for c in await pool.ctx.store.reward_claims(ClaimStatus.CONFIRMED) if c.coin_id not in before]
    assert len(new) == blocks and {c.launcher_id for c in new} == {plotnft.launcher_id}
    assert (await pool.ctx.store.ledger()).balanced
    await check_chain(pool)
    return sum(c.amount for c in new)


async def settle_round(pool: Pool, world: World, round_id: int) -> PayoutRound:
    """Farm the round's pushed batches into a block and bury them until the payout loop closes the round."""
    await world.farm_blocks(1)
    assert (await pool.run_payouts()).confirmed == []  # on chain, not yet buried
    await world.farm_blocks(THRESHOLD)
    stats = await pool.run_payouts()
    assert stats.round_id == round_id and stats.confirmed, stats
    done = await pool.ctx.store.get_round(round_id)
    assert done is not None and done.status == RoundStatus.DONE, done
    assert (await pool.ctx.store.ledger()).balanced
    await check_chain(pool)
    return done


async def check_chain(pool: Pool) -> None:
    """The pool's store against the chain (tests/chain_checks.py)."""
    await store_agrees_with_chain(
        pool.ctx.store, pool.ctx.node, pool.ctx.config.pool.target_puzzle_hash, pool.ctx.constants.MAX_BLOCK_COST_CLVM
    )


def random_puzzle_hash() -> bytes32:
    return bytes32(secrets.token_bytes(32))
