"""Prometheus metrics of one pool process (served at GET /metrics by pool/http/operator_endpoints.py).

Counters and histograms of what happens in this process (partials answered, request and RPC latency, loop runs) live
here, in a registry of their own so that two pools in one process (tests) never share them. Figures that are state,
not events (pending partials, points, farmers, claims, payouts, ledger, wallet), are read from the store at each
scrape by ``refresh_from_store``: the store is the truth, and a restarted pool reports them at once.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from pool.store.abstract import AbstractPoolStore
from pool.store.models import BatchStatus, ClaimStatus, RoundStatus

__all__ = ["CONTENT_TYPE_LATEST", "PoolMetrics"]

# Seconds. Partials must be answered well within the farmer's time limit; RPCs to a local node take milliseconds.
_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
_LOOP_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0)


class PoolMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        # -- events in this process (reset on restart, as Prometheus counters are)
        self.partials = Counter(
            "pool_partials",
            "Partials answered by POST /partial: result is 'accepted' or the protocol error code name",
            ["result"],
            registry=r,
        )
        self.partials.labels(result="accepted")  # the series exists from the start, at 0
        self.http_request_seconds = Histogram(
            "pool_http_request_duration_seconds",
            "Time to answer an HTTP request, per route and method",
            ["endpoint", "method"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.signage_point_lookups = Counter(
            "pool_signage_point_cache_lookups",
            "Signage point lookups of partials: 'hit' answered from the cache, 'miss' asked the node",
            ["result"],
            registry=r,
        )
        self.node_rpc_seconds = Histogram(
            "pool_node_rpc_duration_seconds",
            "Full node RPC latency per call",
            ["call"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.node_rpc_errors = Counter(
            "pool_node_rpc_errors", "Full node RPCs that failed (unreachable, timeout, refused)", ["call"], registry=r
        )
        self.loop_seconds = Histogram(
            "pool_loop_duration_seconds",
            "Duration of one iteration of a background loop",
            ["loop"],
            buckets=_LOOP_BUCKETS,
            registry=r,
        )
        self.loop_errors = Counter("pool_loop_errors", "Loop iterations that raised", ["loop"], registry=r)
        self.loop_last_success = Gauge(
            "pool_loop_last_success_timestamp_seconds",
            "Unix time a loop iteration last succeeded",
            ["loop"],
            registry=r,
        )
        # -- state, read from the store (and chain status) at each scrape
        self.partials_pending = Gauge("pool_partials_pending", "Partials accepted and not yet credited", registry=r)
        self.points = Gauge("pool_points", "Unpaid points of all farmers", registry=r)
        self.farmers = Gauge("pool_farmers", "Farmers known to the pool, by membership", ["membership"], registry=r)
        self.claims = Gauge("pool_reward_claims", "Reward claims (absorbs) by status", ["status"], registry=r)
        self.claims_mojos = Gauge(
            "pool_reward_claims_mojos", "Mojos of reward claims by status", ["status"], registry=r
        )
        self.payout_rounds = Gauge("pool_payout_rounds", "Payout rounds by status (open, done)", ["status"], registry=r)
        self.payment_batches = Gauge(
            "pool_payment_batches_open_round",
            "Payout transactions (batches) of the open payout round by status (all 0 when no round is open)",
            ["status"],
            registry=r,
        )
        self.paid_mojos = Gauge(
            "pool_paid_to_farmers_mojos", "Mojos paid to farmers in confirmed payout transactions", registry=r
        )
        self.owed_mojos = Gauge("pool_owed_mojos", "Mojos shared out to farmers and not yet paid", registry=r)
        self.ledger_wallet_mojos = Gauge(
            "pool_ledger_wallet_mojos",
            "Mojos the ledger says the wallet holds (owed + fee share + undistributed)",
            registry=r,
        )
        self.ledger_balanced = Gauge("pool_ledger_balanced", "1 when the ledger's invariant holds", registry=r)
        self.wallet_spendable_mojos = Gauge(
            "pool_wallet_spendable_mojos", "Spendable balance of the pool wallet (absent when unreachable)", registry=r
        )
        self.wallet_up = Gauge("pool_wallet_up", "1 when the pool wallet answered the last scrape", registry=r)
        self.wallet_unavailable_since = Gauge(
            "pool_wallet_unavailable_since_seconds",
            "Unix time since which the pool wallet has not answered (0 while it answers): payouts wait meanwhile",
            registry=r,
        )
        self.peak_height = Gauge("pool_peak_height", "Height of the full node's peak seen by the peak loop", registry=r)
        self.synced = Gauge("pool_synced", "1 when synced, per component (node, wallet)", ["component"], registry=r)

    # -- hooks called by the parts of the pool -----------------------------------------------------------------
    def partial_answered(self, result: str) -> None:
        self.partials.labels(result=result).inc()

    def signage_point_lookup(self, hit: bool) -> None:
        self.signage_point_lookups.labels(result="hit" if hit else "miss").inc()

    def node_rpc(self, call: str, seconds: float, ok: bool) -> None:
        self.node_rpc_seconds.labels(call=call).observe(seconds)
        if not ok:
            self.node_rpc_errors.labels(call=call).inc()

    def loop_ran(self, loop: str, seconds: float, ok: bool, now: int) -> None:
        self.loop_seconds.labels(loop=loop).observe(seconds)
        if ok:
            self.loop_last_success.labels(loop=loop).set(now)
        else:
            self.loop_errors.labels(loop=loop).inc()

    # -- scrape ------------------------------------------------------------------------------------------------
    async def refresh_from_store(self, store: AbstractPoolStore, now: int) -> None:
        farmers = await store.list_farmers()
        self.farmers.labels(membership="member").set(sum(1 for f in farmers if f.is_pool_member))
        self.farmers.labels(membership="left").set(sum(1 for f in farmers if not f.is_pool_member))
        self.points.set(sum(f.points for f in farmers))
        self.partials_pending.set(len(await store.pending_partials(received_before=now + 1, limit=10**6)))
        claims = await store.reward_claims()
        for claim_status in ClaimStatus:
            of_status = [c for c in claims if c.status is claim_status]
            self.claims.labels(status=claim_status.value).set(len(of_status))
            self.claims_mojos.labels(status=claim_status.value).set(sum(c.amount for c in of_status))
        rounds = await store.rounds(limit=10**9)  # one query; batches only of the open round (at most one is open)
        for round_status in RoundStatus:
            self.payout_rounds.labels(status=round_status.value).set(sum(1 for r in rounds if r.status is round_status))
        batch_counts = dict.fromkeys(BatchStatus, 0)
        open_round = await store.open_round()
        if open_round is not None and open_round.id is not None:
            for batch in await store.batches(open_round.id):
                batch_counts[batch.status] += 1
        for batch_status, count in batch_counts.items():
            self.payment_batches.labels(status=batch_status.value).set(count)
        ledger = await store.ledger()
        self.paid_mojos.set(ledger.farmer_payments - ledger.farmer_payments_in_flight)
        self.owed_mojos.set(ledger.owed)
        self.ledger_wallet_mojos.set(ledger.wallet_should_hold)
        self.ledger_balanced.set(1 if ledger.balanced else 0)

    def wallet(self, spendable: int | None, unavailable_since: float | None = None) -> None:
        if spendable is None:
            self.wallet_up.set(0)
            self.wallet_spendable_mojos.set(float("nan"))
        else:
            self.wallet_up.set(1)
            self.wallet_spendable_mojos.set(spendable)
        self.wallet_unavailable_since.set(unavailable_since or 0)

    def chain(self, peak_height: int | None, node_synced: bool, wallet_synced: bool) -> None:
        if peak_height is not None:
            self.peak_height.set(peak_height)
        self.synced.labels(component="node").set(1 if node_synced else 0)
        self.synced.labels(component="wallet").set(1 if wallet_synced else 0)

    def exposition(self) -> bytes:
        return generate_latest(self.registry)
