"""Rate limits that keep one client from slowing the pool for every other farmer.

Token buckets in memory, per client address, per launcher id (requests signed by the farmer's authentication key),
per launcher id for signage point look-ups that reach the node, and the budgets of work done before a request proved
anything: failed signatures (per launcher id and client address, and per client address), and the chain reads and
walks of POST and PUT /farmer (per client address); and the refused requests of a client address, whose budget spent
cools the address down (pool/http/cooldown.py). They protect the process, so they are neither durable nor shared
between worker processes. Each map is bounded: the least recently seen keys are forgotten first, which at worst gives
a forgotten client a full bucket again.

A refusal is a protocol error (REQUEST_FAILED, HTTP 200) naming the limit and when to retry, decided from memory
alone: no store read, no node call, no signature check. A request refused by a failed-signature budget is answered
INVALID_SIGNATURE instead (its signature was not checked, and the message says so): chia's farmer answers that code
on GET /farmer with PUT /farmer, signed by the owner key, which is how a farmer whose authentication key the pool no
longer knows gets back in, and which its owner-key budget (counted apart) lets through.

Why failed signatures are counted per address: a budget per launcher id alone would let anyone lock a farmer out by
sending it forged requests. Counted per (launcher id, client address), only requests from the forger's own address
are refused; an honest farmer shares its budget only with whoever shares its address (a NAT, or an IPv6 network of
``limits.ipv6_prefix`` bits). The budget per address bounds a forger that names a different launcher id each time.
"""

from __future__ import annotations

import enum
import math
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable, Iterator
from contextlib import contextmanager
from typing import Any, Generic, NoReturn, TypeVar

from prometheus_client import CollectorRegistry, Counter

from pool.chia_adapter import PoolErrorCode, bytes32
from pool.config import LimitsConfig, RateLimit
from pool.protocol.errors import PoolProtocolError, one_line

K = TypeVar("K", bound=Hashable)


class RateLimited(PoolProtocolError):
    """A request refused by a rate limit; ``retry_after``: seconds until the limit lets one through again."""

    def __init__(self, message: str, retry_after: float, code: PoolErrorCode = PoolErrorCode.REQUEST_FAILED) -> None:
        seconds = max(1, math.ceil(retry_after))
        super().__init__(code, one_line(f"rate limit: {message}; retry in {seconds} s"))
        self.retry_after = seconds


class SigningKey(enum.Enum):
    """Whose signature a request carries; failures of the two are counted apart (see the module's description)."""

    OWNER = "owner key"  # POST and PUT /farmer
    AUTHENTICATION = "authentication key"  # GET /farmer, GET /login, POST /partial


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

    def wait(self, key: K) -> float:
        """Like ``take`` but takes nothing: 0.0 when a token is there, else the seconds until one will be."""
        tokens, now = self._tokens(key)
        self._store(key, tokens, now)
        return 0.0 if tokens >= 1 else (1 - tokens) / self.limit.rate

    def give_back(self, key: K) -> None:
        tokens, now = self._tokens(key)
        self._store(key, min(float(self.limit.burst), tokens + 1), now)

    def spent(self, key: K) -> bool:
        """Whether ``key``'s bucket is not full (a token was taken and has not come back yet)."""
        if key not in self._buckets:
            return False
        tokens, now = self._tokens(key)
        self._store(key, tokens, now)
        return tokens < self.limit.burst

    def refill(self, key: K) -> None:
        """The bucket is full again (forgotten: a new key starts full)."""
        self._buckets.pop(key, None)

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


class RecentKeys(Generic[K]):
    """The keys noted in the last ``lasting`` seconds; ``kept`` of them at most, the least recently noted forgotten
    first (a flood of new keys cannot grow the map)."""

    def __init__(self, lasting: float, kept: int, clock: Callable[[], float] = time.monotonic) -> None:
        self._lasting = lasting
        self._kept = kept
        self._clock = clock
        self._noted: OrderedDict[K, float] = OrderedDict()  # key -> when it was last noted

    def note(self, key: K) -> None:
        self._noted[key] = self._clock()
        self._noted.move_to_end(key)
        while len(self._noted) > self._kept:
            self._noted.popitem(last=False)

    def __contains__(self, key: K) -> bool:
        noted_at = self._noted.get(key)
        return noted_at is not None and self._clock() - noted_at < self._lasting


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
        self.failed_signatures: TokenBuckets[tuple[SigningKey, bytes32, str]] = TokenBuckets(
            config.failed_signatures, config.tracked_keys, clock
        )
        self.failed_signatures_per_address: TokenBuckets[tuple[SigningKey, str]] = TokenBuckets(
            config.failed_signatures_per_address, config.tracked_keys, clock
        )
        self.launcher_lookups: TokenBuckets[str] = TokenBuckets(config.launcher_lookups, config.tracked_keys, clock)
        self.singleton_walks: TokenBuckets[str] = TokenBuckets(config.singleton_walks, config.tracked_keys, clock)
        self.refused_requests: TokenBuckets[str] = TokenBuckets(config.refused_requests, config.tracked_keys, clock)

    def reconfigure(self, config: LimitsConfig) -> None:
        """The rates and bursts of a reloaded configuration (SIGHUP): each bucket keeps its tokens, capped at the new
        burst the next time it is counted."""
        buckets: dict[str, TokenBuckets[Any]] = {
            "per_address": self.addresses,
            "per_launcher": self.launchers,
            "signage_point_lookups": self.signage_point_lookups,
            "failed_signatures": self.failed_signatures,
            "failed_signatures_per_address": self.failed_signatures_per_address,
            "launcher_lookups": self.launcher_lookups,
            "singleton_walks": self.singleton_walks,
            "refused_requests": self.refused_requests,
        }
        for name, bucket in buckets.items():
            bucket.limit = getattr(config, name)

    def admit_address(self, address: str) -> None:
        """Raises RateLimited when ``address`` sent more than its share of requests."""
        wait = self.addresses.take(address)
        if wait:
            self._refuse("per_address", f"more than {_rate(self.addresses.limit)} requests from {address}", wait)

    @contextmanager
    def signed_request(self, launcher_id: bytes32) -> Iterator[SignedAllowance]:
        """Reserve one of the farmer's requests before its signature is checked (RateLimited when there is none
        left); the reservation is given back unless the body marks the signature verified, so requests without
        the farmer's keys never use up its allowance."""
        wait = self.launchers.take(launcher_id)
        if wait:
            self._refuse(
                "per_launcher",
                f"more than {_rate(self.launchers.limit)} signed requests for launcher {launcher_id.hex()}",
                wait,
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
            self._refuse(
                "signage_point_lookups",
                f"more than {_rate(self.signage_point_lookups.limit)} look-ups of signage points the pool had not "
                f"seen for launcher {launcher_id.hex()}",
                wait,
            )

    def admit_signature_check(self, key: SigningKey, launcher_id: bytes32, address: str) -> None:
        """Raises RateLimited (INVALID_SIGNATURE, unchecked) when ``address`` has spent its budget of failed
        signatures, for ``launcher_id`` or for any launcher id; checked before the store and the signature."""
        wait = self.failed_signatures.wait((key, launcher_id, address))
        if wait:
            self._refuse(
                "failed_signatures",
                f"more than {self.failed_signatures.limit.burst} failed signatures of this launcher's {key.value} "
                f"from {address}; not checked",
                wait,
                PoolErrorCode.INVALID_SIGNATURE,
            )
        wait = self.failed_signatures_per_address.wait((key, address))
        if wait:
            self._refuse(
                "failed_signatures_per_address",
                f"more than {self.failed_signatures_per_address.limit.burst} failed signatures from {address}; "
                "not checked",
                wait,
                PoolErrorCode.INVALID_SIGNATURE,
            )

    def signature_checked(self, key: SigningKey, launcher_id: bytes32, address: str, verified: bool) -> None:
        """A failure spends from both budgets. A signature that verifies refills the budget of its launcher id and
        address (the farmer proved itself from there; an owner key signature, the authentication key's too), never
        the address's own: a forger with a launcher of its own must not reset it between forgeries."""
        if not verified:
            self.failed_signatures.take((key, launcher_id, address))
            self.failed_signatures_per_address.take((key, address))
            return
        self.failed_signatures.refill((key, launcher_id, address))
        if key is SigningKey.OWNER:
            self.failed_signatures.refill((SigningKey.AUTHENTICATION, launcher_id, address))

    def take_launcher_lookup(self, address: str) -> None:
        """Raises RateLimited when ``address`` made the pool read the chain for POST or PUT /farmer too often."""
        self._take(self.launcher_lookups, "launcher_lookups", "PlotNFT look-ups", address)

    def give_back_launcher_lookup(self, address: str) -> None:
        self.launcher_lookups.give_back(address)

    def take_singleton_walk(self, address: str) -> None:
        """Raises RateLimited when ``address``'s POST /farmer requests made the pool walk singletons too often."""
        self._take(self.singleton_walks, "singleton_walks", "refused PlotNFT walks", address)

    def give_back_singleton_walk(self, address: str) -> None:
        self.singleton_walks.give_back(address)

    def failed_lately(self, address: str) -> bool:
        """Whether a signature from ``address`` failed so lately that its budget of failures has not refilled."""
        return any(self.failed_signatures_per_address.spent((key, address)) for key in SigningKey)

    def spend_refusal(self, address: str) -> bool:
        """A request of ``address`` was refused; True when that spent its budget of refused requests (counted for
        operators as a refusal by the limit ``refused_requests``: the address is then cooled down)."""
        if not self.refused_requests.take(address):
            return False
        self.refused_requests.refill(address)  # a full budget again once its cool-down is over
        self.refused.labels(limit="refused_requests").inc()
        return True

    def _take(self, buckets: TokenBuckets[str], limit: str, what: str, address: str) -> None:
        wait = buckets.take(address)
        if wait:
            self._refuse(limit, f"more than {_rate(buckets.limit)} {what} for requests from {address}", wait)

    def _refuse(
        self, limit: str, message: str, retry_after: float, code: PoolErrorCode = PoolErrorCode.REQUEST_FAILED
    ) -> NoReturn:
        """Count the refusal for operators (GET /metrics, per limit) and raise it."""
        self.refused.labels(limit=limit).inc()
        raise RateLimited(message, retry_after, code)


def _rate(limit: RateLimit) -> str:
    per_second = f"{limit.rate:g} per second" if limit.rate >= 1 else f"{limit.rate * 60:g} per minute"
    return f"{per_second} (bursts of {limit.burst})"
