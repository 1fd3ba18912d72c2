"""Every signature check of a farmer's request: in the verifier's threads, off the event loop, and within the client
address's budgets of failed signatures (pool/protocol/rate_limits.py).

A BLS check costs about 2-3 ms of a core. On the event loop, a few clients sending forged GET /login requests would
stall every other request; in the verifier's threads (the partials' threads, ``partials.verify_threads``) the event
loop goes on answering meanwhile. And a client whose signatures keep failing is refused before its next check, from
memory, once its budgets are spent.

A sender is trusted when a signature for the same launcher id from the same client address verified in the last
``TRUSTED_FOR`` seconds: its checks go first in the verifier (pool/protocol/verification.py), ahead of the checks of
everyone else, which include every forged request (a forger names launcher ids it holds no key of, and never made a
signature for them verify). So forged requests, from however many addresses, cannot make the farmers the pool knows
wait; at worst they wait among themselves, and beyond a bound are answered busy (SERVER_EXCEPTION), unchecked.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import NamedTuple

from pool.chia_adapter import G1Element, G2Element, PoolErrorCode, bytes32
from pool.protocol.errors import PoolProtocolError
from pool.protocol.rate_limits import RateLimits, RecentKeys, SigningKey
from pool.protocol.verification import SignatureVerifier, VerifierBusy

TRUSTED_FOR = 3600.0  # seconds a sender stays trusted after a signature of it verified
TRUSTED_KEPT = 100_000  # senders remembered at most (the least recently verified forgotten first)
BUSY_MESSAGE = (
    "the pool is busy checking the signatures of senders it does not know yet; this request was not checked, send it "
    "again in a few seconds"
)


class Sender(NamedTuple):
    """Who a signed request claims to come from: the launcher id it names, and the client address it came from."""

    launcher_id: bytes32
    address: str


class SignatureChecks:
    def __init__(
        self, verifier: SignatureVerifier, limits: RateLimits, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._verifier = verifier
        self._limits = limits
        self._trusted: RecentKeys[Sender] = RecentKeys(TRUSTED_FOR, TRUSTED_KEPT, clock)  # senders that signed
        self.verified = 0  # signature checks made since start (each a pairing check in the verifier's threads)

    def admit(self, key: SigningKey, launcher_id: bytes32, address: str) -> None:
        """Before anything else is done for a signed request: refused (INVALID_SIGNATURE, unchecked) when the
        client's failure budgets for this launcher id, or for any, are spent."""
        self._limits.admit_signature_check(key, launcher_id, address)

    async def verifies(
        self, public_keys: Sequence[G1Element], messages: Sequence[bytes], signature: G2Element, sender: Sender | None
    ) -> bool:
        """Whether the aggregate signature verifies (in the verifier's threads, first if ``sender`` is trusted);
        spends no budget. Raises SERVER_EXCEPTION (busy, unchecked) when the verifier sheds the check."""
        self.verified += 1
        try:
            return await self._verifier.aggregate_verify(
                public_keys, messages, signature, trusted=sender is not None and self.trusts(sender)
            )
        except VerifierBusy:
            self.verified -= 1
            raise PoolProtocolError(PoolErrorCode.SERVER_EXCEPTION, BUSY_MESSAGE) from None

    def outcome(self, key: SigningKey, launcher_id: bytes32, address: str, verified: bool) -> None:
        """What a request's signature check came to, for the client's failure budgets and its trust."""
        self._limits.signature_checked(key, launcher_id, address, verified)
        if verified:
            self._trusted.note(Sender(launcher_id, address))

    def trusts(self, sender: Sender) -> bool:
        """Whether a signature of ``sender`` verified in the last ``TRUSTED_FOR`` seconds."""
        return sender in self._trusted

    async def check(
        self,
        key: SigningKey,
        launcher_id: bytes32,
        address: str,
        public_keys: Sequence[G1Element],
        messages: Sequence[bytes],
        signature: G2Element,
        what: str,
    ) -> None:
        """admit, verify and count; raises INVALID_SIGNATURE ("invalid signature: ``what``") when it fails."""
        self.admit(key, launcher_id, address)
        verified = await self.verifies(public_keys, messages, signature, Sender(launcher_id, address))
        self.outcome(key, launcher_id, address, verified)
        if not verified:
            raise PoolProtocolError(PoolErrorCode.INVALID_SIGNATURE, f"invalid signature: {what}")
