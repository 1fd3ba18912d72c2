"""What the loops know about the chain right now: written by the peak loop (pool/loops/peak.py), read by the other
loops and by GET /status."""

from __future__ import annotations

from dataclasses import dataclass

from pool.chain.interface import ChainUnavailable, PeakInfo


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
