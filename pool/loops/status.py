"""What the loops know about the chain right now, refreshed by the peak loop and read by the others."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from pool.chain.interface import ChainUnavailable, PeakInfo
from pool.context import PoolContext

log = logging.getLogger(__name__)


@dataclass
class ChainStatus:
    """Shared by the loops of one pool; only the peak loop writes it."""

    peak: PeakInfo | None = None
    node_synced: bool = False
    wallet_synced: bool = False
    error: str | None = None  # why the last refresh failed, for logs and status pages

    @property
    def ready(self) -> bool:
        """Loops that need the wallet (payouts) run only when both node and wallet are synced."""
        return self.node_ready and self.wallet_synced

    @property
    def node_ready(self) -> bool:
        """Loops that need only the node (confirming partials, following singletons, claiming rewards) run as soon
        as the node is synced: a wallet outage must not make pending partials outlive the node's memory of their
        signage points, nor leave rewards unclaimed until the farmer may sweep them."""
        return self.peak is not None and self.node_synced

    @property
    def peak_height(self) -> int:
        if self.peak is None:
            raise ChainUnavailable("no peak known yet")
        return self.peak.height


class PeakLoop:
    """Refreshes the node's peak and both sync flags."""

    name = "peak"

    def __init__(self, status: ChainStatus) -> None:
        self.status = status

    def interval(self, ctx: PoolContext) -> float:
        return ctx.config.loops.peak_interval

    async def run_once(self, ctx: PoolContext) -> None:
        try:
            peak = await ctx.node.peak()
        except ChainUnavailable as exc:
            # Not synced until proven otherwise: the other loops pause instead of acting on stale data.
            self._failed(f"node: {exc}")
            self.status.node_synced = self.status.wallet_synced = False
            return
        try:
            wallet_synced = await ctx.wallet.synced()
            wallet_error = None
        except ChainUnavailable as exc:  # only the wallet's loops pause; the node's go on
            wallet_synced, wallet_error = False, f"wallet: {exc}"
        if not self.status.ready and peak.synced and wallet_synced:
            log.info("node and wallet synced at height %d", peak.height)
        self.status.peak = peak
        self.status.node_synced = peak.synced
        self.status.wallet_synced = wallet_synced
        if wallet_error is not None:
            self._failed(wallet_error)
        else:
            self.status.error = None

    def _failed(self, error: str) -> None:
        if self.status.error != error:
            log.warning("chain unavailable, the loops that need it are paused: %s", error)
        self.status.error = error
