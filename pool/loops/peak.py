"""The peak loop: keeps the ChainStatus (pool/chain/status.py) the other loops read up to date."""

from __future__ import annotations

import logging

from pool.chain.interface import ChainUnavailable
from pool.chain.status import ChainStatus
from pool.context import PoolContext

log = logging.getLogger(__name__)


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
