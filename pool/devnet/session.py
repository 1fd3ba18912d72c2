"""A whole pool on the devnet, in one process: the simulated world, the pool server, and a real chia farmer.

Used by the demo (``python -m pool.devnet``) and by the end-to-end tests. The pool server runs exactly as in
production (``pool.server``): it reaches the simulator's node and the pool wallet over chia's RPC, and the real farmer
reaches the pool over HTTP on loopback.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

import aiohttp

from pool.chain.interface import ChainUnavailable
from pool.chia_adapter import bytes32
from pool.config import PoolConfig
from pool.context import PoolContext
from pool.devnet.base import _wait_until
from pool.devnet.pool_config import world_pool_config
from pool.devnet.wallets import PlotNFTV2Info
from pool.devnet.world import FarmerHandle, PlotNFTInfo, PoolPlot, World
from pool.server import pool_context, serve
from pool.store.models import BatchStatus, ClaimStatus, PartialStatus, RoundStatus

log = logging.getLogger(__name__)


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


@dataclass
class DevnetFarmer:
    plotnft: PlotNFTInfo
    plots: list[PoolPlot]


@dataclass
class DevnetV2Farmer:
    """A PlotNFT v2 (Pool Protocol v2) of the same farmer, with its plots."""

    plotnft: PlotNFTV2Info
    plots: list[PoolPlot]


@dataclass(frozen=True)
class DevnetStatus:
    height: int
    farmers: int
    members: int
    partials_pending: int
    partials_confirmed: int
    partials_rejected_later: int
    rejected_by_reason: dict[str, int]
    points: int
    difficulty: list[int]
    blocks_won: int
    rewards_absorbed: int
    payouts_confirmed: int  # payment batches confirmed on chain
    paid_to_farmers: int  # mojos
    owed: int = 0  # mojos shared out to farmers, not yet paid
    wallet_shortfall: int = 0  # mojos the wallet lacks against the ledger (payouts wait)
    partials_stale: int = 0  # settled without their signage point (the pool fell behind), credited or dropped
    wallet_away_since: float | None = None  # unix time since which the pool's wallet has not answered

    def line(self) -> str:
        rejected = ", ".join(f"{name} {count}" for name, count in sorted(self.rejected_by_reason.items())) or "none"
        short = f" | WALLET SHORT {self.wallet_shortfall / 10**12:.6f} XCH" if self.wallet_shortfall > 0 else ""
        if self.wallet_away_since is not None:
            short += f" | WALLET AWAY since {time.strftime('%H:%M:%S', time.localtime(self.wallet_away_since))}"
        return (
            f"height {self.height} | farmers {self.members}/{self.farmers} | partials pending {self.partials_pending} "
            f"confirmed {self.partials_confirmed} stale {self.partials_stale} | rejected: {rejected} "
            f"| points {self.points} "
            f"| difficulty {','.join(map(str, self.difficulty)) or '-'} | blocks won {self.blocks_won} "
            f"| rewards absorbed {self.rewards_absorbed} | payouts confirmed {self.payouts_confirmed} "
            f"({self.paid_to_farmers / 10**12:.6f} XCH) | owed {self.owed / 10**12:.6f} XCH{short}"
        )


@dataclass
class Devnet:
    """Use as ``async with Devnet(work_dir) as devnet``; then drive the chain with ``step`` / ``win_block``."""

    work_dir: Path
    farmers_count: int = 1
    plots_per_farmer: int = 3
    # PlotNFT v2 of the same farmer (Pool Protocol v2), beside the v1 ones; at most MAX_PLOTNFT_V2_PER_KEY.
    v2_farmers_count: int = 0
    progress: Callable[[str], None] = field(default=lambda message: log.info("%s", message))
    # Whether each PlotNFT gets a launcher no earlier run had; None: decided by _fresh_launchers.
    fresh_launchers: bool | None = None
    world: World = field(init=False)
    config: PoolConfig = field(init=False)
    farmers: list[DevnetFarmer] = field(init=False, default_factory=list)
    v2_farmers: list[DevnetV2Farmer] = field(init=False, default_factory=list)
    farmer: FarmerHandle = field(init=False)
    blocks_won: int = field(init=False, default=0)
    _stack: contextlib.AsyncExitStack = field(init=False, default_factory=contextlib.AsyncExitStack)
    _pool_task: asyncio.Task[None] | None = field(init=False, default=None)
    _pool_stop: asyncio.Event = field(init=False, default_factory=asyncio.Event)
    _ctx: PoolContext | None = field(init=False, default=None)

    # ------------------------------------------------------------------ lifecycle

    async def __aenter__(self) -> Devnet:
        try:
            await self._start()
        except BaseException:
            await self.stop_pool()
            await self._stack.aclose()
            raise
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        await self.stop_pool()
        await self._stack.aclose()

    async def _start(self) -> None:
        self.progress("starting the simulated chain (the first run on a machine creates test plots)")
        self.world = await self._stack.enter_async_context(World.create(work_dir=self.work_dir / "world"))
        self.config = self._pool_config()
        fresh_launchers = self._fresh_launchers()  # before the pool creates its store
        await self.start_pool()
        info = await self.pool_info()
        for number in range(self.farmers_count):
            self.progress(f"creating PlotNFT {number + 1}/{self.farmers_count} and its {self.plots_per_farmer} plots")
            plotnft = await self.world.create_plotnft(
                pool_url=self.pool_url,
                target_puzzle_hash=bytes32.from_hexstr(str(info["target_puzzle_hash"])),
                relative_lock_height=int(str(info["relative_lock_height"])),
                fresh_launcher=fresh_launchers,
            )
            plots = await self.world.create_pool_plots(plotnft.p2_singleton_puzzle_hash, self.plots_per_farmer)
            self.farmers.append(DevnetFarmer(plotnft, plots))
        for number in range(self.v2_farmers_count):
            self.progress(f"creating PlotNFT v2 {number + 1}/{self.v2_farmers_count} and its plots")
            plotnft_v2 = await self.world.create_plotnft_v2(
                pool_url=self.pool_url,
                target_puzzle_hash=bytes32.from_hexstr(str(info["target_puzzle_hash"])),
                relative_lock_height=int(str(info["relative_lock_height"])),
                pool_memoization=self.config.pool.pool_memoization,
                fresh_launcher=fresh_launchers,
            )
            plots = await self.world.create_pool_plots(plotnft_v2.reward_puzzle_hash, self.plots_per_farmer)
            self.v2_farmers.append(DevnetV2Farmer(plotnft_v2, plots))
        # POST /farmer needs the launcher buried confirmation_security_threshold deep, and a refused farmer waits
        # 300 s before it tries again: bury the PlotNFTs before the farmer starts.
        await self.world.farm_blocks(self.config.chain.confirmation_security_threshold + 1)
        self.progress("starting the chia farmer and harvester")
        all_plots = [plot for farmer in self.all_farmers for plot in farmer.plots]
        self.farmer = await self.world.start_farmer(all_plots)
        await self._wait_for_registration()

    async def _wait_for_registration(self, timeout: float = 60.0) -> None:
        """Keep the chain still until the farmer has registered every PlotNFT (it does so on its own within seconds).

        chia's farmer posts partials as soon as GET /pool_info gave it a difficulty, before its POST /farmer is done:
        partials of signage points in that window would be refused FARMER_NOT_KNOWN.
        """
        wanted = {farmer.plotnft.launcher_id for farmer in self.all_farmers}

        async def registered() -> bool:
            known = await self.registered_launcher_ids()
            return known is None or wanted <= known

        await _wait_until(registered, timeout, "the farmer registered with the pool")

    async def registered_launcher_ids(self) -> set[bytes32] | None:
        """The launcher ids the pool's store knows; None when this devnet cannot read the store (a subclass that runs
        the pool elsewhere and does not say how to read it: then nothing waits)."""
        if self._ctx is None:
            return None
        return {farmer.launcher_id for farmer in await self._ctx.store.list_farmers()}

    def _fresh_launchers(self) -> bool:
        """Fresh launchers (World.create_plotnft's fresh_launcher) only where the pool's store may know this chain's
        launchers from an earlier run: any store but a new SQLite file, unless told.

        Every new World makes the same chain up to the first PlotNFT, so without a fresh launcher every run gets the
        same PlotNFT, and its plots come back from chia's test plot cache instead of being plotted again. A store that
        outlived its chain (a demo work dir used again) would hold stale records of it.
        """
        if self.fresh_launchers is not None:
            return self.fresh_launchers
        store = self.config.store
        return store.backend != "sqlite" or store.path.exists()

    def _pool_config(self) -> PoolConfig:
        return world_pool_config(self.world, store_path=self.work_dir / "pool" / "pool.sqlite", server_port=free_port())

    @property
    def all_farmers(self) -> list[DevnetFarmer | DevnetV2Farmer]:
        """The PlotNFTs of both versions (v1 first)."""
        return [*self.farmers, *self.v2_farmers]

    @property
    def pool_url(self) -> str:
        return f"http://127.0.0.1:{self.config.server.port}"

    @property
    def ctx(self) -> PoolContext:
        if self._ctx is None:
            raise RuntimeError("the pool is not running")
        return self._ctx

    async def start_pool(self) -> None:
        """Start the pool server (HTTP + loops) in this process, against the same store file as any earlier run."""
        if self._pool_task is not None:
            raise RuntimeError("the pool is already running")
        ready: asyncio.Future[PoolContext] = asyncio.get_running_loop().create_future()
        self._pool_stop = asyncio.Event()

        async def run() -> None:
            async with pool_context(self.config) as ctx:
                ready.set_result(ctx)
                await serve(ctx, self._pool_stop)

        self._pool_task = asyncio.create_task(run(), name="devnet pool")
        waiting: set[asyncio.Future[Any]] = {ready, self._pool_task}
        done, _ = await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
        if ready not in done:
            self._pool_task.result()  # raises the start-up error
        self._ctx = ready.result()
        await self._wait_listening()

    async def _wait_listening(self, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while True:
            try:
                await self.pool_info()
                return
            except aiohttp.ClientError:
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.05)

    async def stop_pool(self) -> None:
        """Stop the pool as an operator's Ctrl-C would; the chain and the farmer keep running."""
        if self._pool_task is None:
            return
        self._pool_stop.set()
        try:
            await self._pool_task
        finally:
            self._pool_task = None
            self._ctx = None

    async def restart_pool(self) -> None:
        await self.stop_pool()
        await self.start_pool()

    async def pool_info(self) -> dict[str, object]:
        async with aiohttp.ClientSession() as session, session.get(f"{self.pool_url}/pool_info") as response:
            response.raise_for_status()
            data: dict[str, object] = await response.json()
            return data

    # ------------------------------------------------------------------ driving the chain

    async def signage_point(self, pause: float = 0.0) -> None:
        """One new signage point: the farmer looks up proofs and sends partials to the pool on its own."""
        await self.world.new_signage_point()
        if pause:
            await asyncio.sleep(pause)

    async def farm(self, blocks: int = 1) -> int:
        return await self.world.farm_blocks(blocks)

    async def win_block(self, farmer: DevnetFarmer | DevnetV2Farmer) -> int:
        """A block whose pool reward goes to the farmer's PlotNFT, as when one of its plots wins."""
        plotnft = farmer.plotnft
        contract = (
            plotnft.reward_puzzle_hash if isinstance(plotnft, PlotNFTV2Info) else plotnft.p2_singleton_puzzle_hash
        )
        height = await self.world.farm_blocks(1, pool_reward_puzzle_hash=contract)
        self.blocks_won += 1
        return height

    # ------------------------------------------------------------------ observing

    async def status(self) -> DevnetStatus:
        ctx = self.ctx
        farmers = await ctx.store.list_farmers()
        counts = {status: 0 for status in PartialStatus}
        stale = 0
        for farmer in farmers:
            for partial in await ctx.store.recent_partials(farmer.launcher_id, since=0):
                counts[partial.status] += 1
                stale += partial.stale
        confirmed_batches, paid = await self.confirmed_payouts()
        ledger = await ctx.store.ledger()
        shortfall = 0
        if await ctx.store.open_round() is None:  # while a round is open its payments may or may not have left
            with contextlib.suppress(ChainUnavailable):
                shortfall = max(0, ledger.wallet_should_hold - await ctx.wallet.spendable_balance())
        return DevnetStatus(
            height=self.world.peak_height,
            farmers=len(farmers),
            members=sum(1 for farmer in farmers if farmer.is_pool_member),
            partials_pending=counts[PartialStatus.PENDING],
            partials_confirmed=counts[PartialStatus.CONFIRMED],
            partials_rejected_later=counts[PartialStatus.REJECTED],
            rejected_by_reason=dict(ctx.stats.partials_rejected),
            points=sum(farmer.points for farmer in farmers),
            difficulty=[farmer.difficulty for farmer in farmers],
            blocks_won=self.blocks_won,
            rewards_absorbed=len(await ctx.store.reward_claims(ClaimStatus.CONFIRMED)),
            payouts_confirmed=confirmed_batches,
            paid_to_farmers=paid,
            owed=ledger.owed,
            wallet_shortfall=shortfall,
            partials_stale=stale,
            wallet_away_since=ctx.wallet.unavailable_since,
        )

    async def login_link(self, farmer: DevnetFarmer | DevnetV2Farmer) -> str | None:
        """The signed GET /login link chia's farmer makes for its GUI's "login to pool" (None until the farmer has
        read the pool's GET /pool_info)."""
        link: str | None = await self.farmer.farmer_service._node.generate_login_link(farmer.plotnft.launcher_id)
        return link

    async def confirmed_payouts(self) -> tuple[int, int]:
        """(payment batches confirmed on chain, mojos they paid to farmers)."""
        store = self.ctx.store
        batches = 0
        paid = 0
        for payout_round in await store.rounds():
            assert payout_round.id is not None
            for batch in await store.batches(payout_round.id):
                if batch.status != BatchStatus.CONFIRMED:
                    continue
                batches += 1
                payments = await store.payments(round_id=payout_round.id, batch_index=batch.index)
                paid += sum(payment.amount for payment in payments if payment.launcher_id is not None)
        return batches, paid

    async def open_rounds(self) -> int:
        return sum(1 for r in await self.ctx.store.rounds() if r.status == RoundStatus.OPEN)
