"""What the loops know about the chain right now: written by the peak loop (pool/loops/peak.py), read by the other
loops and by GET /status."""

from __future__ import annotations

from dataclasses import dataclass

from pool.chain.interface import ChainUnavailable, PeakInfo

# How soon a loop that found the node not ready (the pool's start, before the peak loop's first answer) tries again,
# rather than after its whole interval: the singletons (60 s) and the rewards (300 s) would otherwise wait that long
# after every start, and a start's first pass would land in the middle of the intake instead of before it.
NOT_READY_RETRY = 1.0


class NodeNotReady(ChainUnavailable):
    """Raised instead of a pass by a loop that needs the node while it is not ready: nothing was done, so the runner
    counts no pass (a pool whose node never syncs shows its loops never succeeding, as they do not) and tries again
    after ``ChainStatus.after_node``."""


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

    def after_node(self, interval: float) -> float:
        """A node-only loop's pause: its ``interval``, or NOT_READY_RETRY while the node is not ready."""
        return interval if self.node_ready else min(interval, NOT_READY_RETRY)

    def need_node(self) -> PeakInfo:
        """The peak, for a loop about to use the node; NodeNotReady if the node is not ready."""
        if self.peak is None or not self.node_synced:
            raise NodeNotReady(self.error or "the node is not synced yet")
        return self.peak

    @property
    def peak_height(self) -> int:
        if self.peak is None:
            raise ChainUnavailable("no peak known yet")
        return self.peak.height
