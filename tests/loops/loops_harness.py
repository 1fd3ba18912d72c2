"""Test helpers for the loops: a pool (context + loops) on a devnet World, with a clock the test moves by hand."""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from pathlib import Path

from pool.chain.node_rpc import RpcFullNode
from pool.chain.singleton import follow_singleton, is_member_of_pool
from pool.chain.wallet_rpc import WalletRpc
from pool.chia_adapter import CoinRecord, bytes32
from pool.config import PoolConfig
from pool.context import PoolContext
from pool.devnet.pool_config import world_pool_config
from pool.devnet.world import PlotNFTInfo, World
from pool.loops.partials import PartialConfirmLoop
from pool.loops.payouts import PayoutLoop
from pool.loops.rewards import RewardLoop
from pool.loops.singletons import SingletonLoop
from pool.loops.status import ChainStatus, PeakLoop
from pool.store.models import FarmerRecord, PartialRecord
from pool.store.sqlite import SqlitePoolStore

THRESHOLD = 2  # confirmation_security_threshold of the test pool


@dataclass
class Clock:
    now: int = 1_700_000_000

    def __call__(self) -> int:
        return self.now


def pool_config(world: World, store_path: Path, **overrides: object) -> PoolConfig:
    settings: dict[str, object] = {"relative_lock_height": 5, "confirmation_threshold": THRESHOLD, **overrides}
    return world_pool_config(world, store_path=store_path, server_port=0, **settings)  # type: ignore[arg-type]


@dataclass
class Pool:
    """One pool process: its context and loops. ``restart()`` builds fresh ones over the same database file."""

    ctx: PoolContext
    status: ChainStatus = field(default_factory=ChainStatus)
    stopped: bool = False

    def __post_init__(self) -> None:
        self.peak_loop = PeakLoop(self.status)
        self.partials = PartialConfirmLoop(self.status)
        self.singletons = SingletonLoop(self.status)
        self.rewards = RewardLoop(self.status, drop_after_blocks=3)
        self.payouts = PayoutLoop(self.status, repush_after=0)

    @classmethod
    async def start(cls, world: World, store_path: Path, clock: Clock, **config_overrides: object) -> Pool:
        config = pool_config(world, store_path, **config_overrides)
        store = SqlitePoolStore(store_path)
        await store.open()
        node = await RpcFullNode.connect(config.chain.full_node)
        wallet = await WalletRpc.connect(config.chain)
        ctx = PoolContext(config=config, store=store, node=node, wallet=wallet, constants=world.constants, now=clock)
        pool = cls(ctx)
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
        return await Pool.start(world, store_path, clock)

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
            proof_hash=bytes32(secrets.token_bytes(32)),
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


def random_puzzle_hash() -> bytes32:
    return bytes32(secrets.token_bytes(32))
