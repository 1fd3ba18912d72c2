"""Cool-downs: a client address whose requests keep being refused is refused at the connection for a while.

Every other limit answers a request, and answering costs the event loop the reading and parsing of that request first
(aiohttp's parser, the middlewares, the body, its JSON): about as much as the rest of a refused partial's handling.
One address flooding forged partials makes the pool spend its loop on answers it knows in advance, while honest
partials wait to be read. So requests refused as forged or beyond a limit (INVALID_SIGNATURE, checked or not, a rate
limit, and "busy" just after a failed signature) are counted per client address (``limits.refused_requests``); once
an address has spent that budget, it is cooled down for ``limits.cooldown`` seconds: each of its connections is closed
when it next sends anything, unread, and each new one is answered 429 and closed before anything of it is read
(pool/http/connections.py). A flood then costs an accept and a close a connection, not a request's parse.

Honest farmers that share the address (a NAT, an IPv6 network of ``limits.ipv6_prefix`` bits) would be cooled down
with the flooder, so an address that had a partial accepted in the last hour (``Admission.is_proven``) is never
cooled down: its farmers keep being served, and a flood from behind it meets the other limits only. Clients of a
trusted reverse proxy share its connections: a cooled-down one is refused by the first middleware instead, before
its body is read (its request head was parsed, by the proxy too).
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from collections.abc import Callable

from pool.chia_adapter import PoolErrorCode
from pool.protocol.errors import PoolProtocolError
from pool.protocol.rate_limits import RateLimited, RateLimits

log = logging.getLogger(__name__)

# What a refused request is refused as, besides a rate limit, to count against its address. Not the other protocol
# errors: a proof not good enough or a partial too late happen to honest farmers in the normal course, and "busy"
# (SERVER_EXCEPTION) to every farmer the pool does not know yet when it is overloaded, after a restart for one; a busy
# answer counts only while the address's last failed signature is recent (its budget of failures not refilled yet),
# so that a forger, whose requests are mostly answered busy by the checks of unknown senders, is cooled down sooner.
STRIKING_CODES = frozenset({PoolErrorCode.INVALID_SIGNATURE})


class Cooldowns:
    """The client addresses cooled down in this process, until when."""

    def __init__(
        self,
        seconds: float,
        kept: int,
        rate_limits: RateLimits,
        is_proven: Callable[[str], bool],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """``kept``: addresses remembered at most (the earliest cooled down forgotten first); ``is_proven``: whether
        an address had a partial accepted lately (such an address is never cooled down)."""
        self.seconds = seconds
        self.started = 0  # cool-downs since start, for operators and tests
        self._kept = kept
        self._rate_limits = rate_limits
        self._is_proven = is_proven
        self._clock = clock
        self._until: OrderedDict[str, float] = OrderedDict()  # address -> when its cool-down ends

    def refused(self, address: str, error: PoolProtocolError) -> None:
        """A request of ``address`` was answered ``error``: it counts against the address when it is a refusal of
        a forged request or one beyond a limit, and cools the address down once its budget is spent."""
        if not (isinstance(error, RateLimited) or error.code in STRIKING_CODES or self._busy_forger(address, error)):
            return
        if self._is_proven(address):
            return
        if self._rate_limits.spend_refusal(address):
            self._until[address] = self._clock() + self.seconds
            self._until.move_to_end(address)
            while len(self._until) > self._kept:
                self._until.popitem(last=False)
            self.started += 1
            log.info("%s cooled down for %g s: too many of its requests were refused", address, self.seconds)

    def _busy_forger(self, address: str, error: PoolProtocolError) -> bool:
        return error.code is PoolErrorCode.SERVER_EXCEPTION and self._rate_limits.failed_lately(address)

    def remaining(self, address: str) -> float:
        """Seconds until ``address``'s cool-down ends; 0.0 when it is not cooled down."""
        until = self._until.get(address)
        if until is None:
            return 0.0
        left = until - self._clock()
        if left > 0:
            return left
        del self._until[address]
        return 0.0
