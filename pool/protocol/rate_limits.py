"""Rate limits that keep one client from slowing the pool for every other farmer.

Token buckets in memory, per client address, per launcher id (requests signed by the farmer's authentication key)
and per launcher id for signage point look-ups that reach the node. They protect the process, so they are neither
durable nor shared between worker processes. Each map is bounded: the least recently seen keys are forgotten first,
which at worst gives a forgotten client a full bucket again.

A refusal is a protocol error (REQUEST_FAILED, HTTP 200) naming the limit and when to retry, decided from memory
alone: no store read, no node call, no signature check.
"""

from __future__ import annotations

import math
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable, Iterator
from contextlib import contextmanager
from typing import Generic, TypeVar

from prometheus_client import CollectorRegistry, Counter

from pool.chia_adapter import PoolErrorCode, bytes32
from pool.config import LimitsConfig, RateLimit
from pool.protocol.errors import PoolProtocolError

K = TypeVar("K", bound=Hashable)


class RateLimited(PoolProtocolError):
    """A request refused by a rate limit; ``retry_after``: seconds until the limit lets one through again."""

    def __init__(self, message: str, retry_after: float) -> None:
        seconds = max(1, math.ceil(retry_after))
        super().__init__(PoolErrorCode.REQUEST_FAILED, f"rate limit: {message}; retry in {seconds} s")
        self.retry_after = seconds


class TokenBuckets(Generic[K]):
    """One token bucket per key: ``burst`` tokens at most, refilled at ``rate`` per second."""

    def __init__(self, limit: RateLimit, max_keys: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.limit = limit
        self._max_keys = max_keys
        self._clock = clock
        self._buckets: OrderedDict[K, tuple[float, float]] = OrderedDict()  # key -> (tokens, when counted)

    def take(self, key: K) -> float:
        """Take a token for ``key``: 0.0 when one was taken, else the seconds until one will be there."""
        tokens, now = self._tokens(key)
        if tokens >= 1:
            self._store(key, tokens - 1, now)
            return 0.0
        self._store(key, tokens, now)
        return (1 - tokens) / self.limit.rate

    def give_back(self, key: K) -> None:
        tokens, now = self._tokens(key)
        self._store(key, min(float(self.limit.burst), tokens + 1), now)

    def __len__(self) -> int:
        return len(self._buckets)

    def _tokens(self, key: K) -> tuple[float, float]:
        now = self._clock()
        tokens, counted_at = self._buckets.pop(key, (float(self.limit.burst), now))
        return min(float(self.limit.burst), tokens + (now - counted_at) * self.limit.rate), now

    def _store(self, key: K, tokens: float, now: float) -> None:
        self._buckets[key] = (tokens, now)  # (re)inserted last: the most recently seen
        while len(self._buckets) > self._max_keys:
            self._buckets.popitem(last=False)


class SignedAllowance:
    """A token reserved for a request that claims to come from a farmer: kept only once its signature verified."""

    def __init__(self) -> None:
        self.signature_verified = False

    def verified(self) -> None:
        self.signature_verified = True


class RateLimits:
    """The pool's rate limits (see LimitsConfig for what each one counts)."""

    def __init__(
        self,
        config: LimitsConfig,
        clock: Callable[[], float] = time.monotonic,
        registry: CollectorRegistry | None = None,
    ) -> None:
        """``registry``: where the count of refusals per limit is exposed (GET /metrics)."""
        self.refused = Counter(
            "pool_rate_limited",
            "Requests refused by a rate limit, per limit",
            ["limit"],
            registry=registry if registry is not None else CollectorRegistry(),  # never prometheus' global one
        )
        self.addresses: TokenBuckets[str] = TokenBuckets(config.per_address, config.tracked_keys, clock)
        self.launchers: TokenBuckets[bytes32] = TokenBuckets(config.per_launcher, config.tracked_keys, clock)
        self.signage_point_lookups: TokenBuckets[bytes32] = TokenBuckets(
            config.signage_point_lookups, config.tracked_keys, clock
        )

    def admit_address(self, address: str) -> None:
        """Raises RateLimited when ``address`` sent more than its share of requests."""
        wait = self.addresses.take(address)
        if wait:
            self.refused.labels(limit="per_address").inc()
            raise RateLimited(f"more than {_rate(self.addresses.limit)} requests from {address}", wait)

    @contextmanager
    def signed_request(self, launcher_id: bytes32) -> Iterator[SignedAllowance]:
        """Reserve one of the farmer's requests before its signature is checked (RateLimited when there is none
        left); the reservation is given back unless the body marks the signature verified, so requests without
        the farmer's keys never use up its allowance."""
        wait = self.launchers.take(launcher_id)
        if wait:
            self.refused.labels(limit="per_launcher").inc()
            raise RateLimited(
                f"more than {_rate(self.launchers.limit)} signed requests for launcher {launcher_id.hex()}", wait
            )
        allowance = SignedAllowance()
        try:
            yield allowance
        finally:
            if not allowance.signature_verified:
                self.launchers.give_back(launcher_id)

    def admit_signage_point_lookup(self, launcher_id: bytes32) -> None:
        """Raises RateLimited when the farmer's partials made the pool ask its node too often for signage points
        it had not cached (each such look-up may poll the node for seconds)."""
        wait = self.signage_point_lookups.take(launcher_id)
        if wait:
            self.refused.labels(limit="signage_point_lookups").inc()
            raise RateLimited(
                f"more than {_rate(self.signage_point_lookups.limit)} look-ups of signage points the pool had not "
                f"seen for launcher {launcher_id.hex()}",
                wait,
            )


def _rate(limit: RateLimit) -> str:
    per_second = f"{limit.rate:g} per second" if limit.rate >= 1 else f"{limit.rate * 60:g} per minute"
    return f"{per_second} (bursts of {limit.burst})"
