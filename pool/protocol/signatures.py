"""Every signature check of a farmer's request: in the verifier's threads, off the event loop, and within the client
address's budgets of failed signatures (pool/protocol/rate_limits.py).

A BLS check costs about 2-3 ms of a core. On the event loop, a few clients sending forged GET /login requests would
stall every other request; in the verifier's threads (the partials' threads, ``partials.verify_threads``) the event
loop goes on answering meanwhile. And a client whose signatures keep failing is refused before its next check, from
memory, once its budgets are spent.
"""

from __future__ import annotations

from collections.abc import Sequence

from pool.chia_adapter import G1Element, G2Element, PoolErrorCode, bytes32
from pool.protocol.errors import PoolProtocolError
from pool.protocol.rate_limits import RateLimits, SigningKey
from pool.protocol.verification import SignatureVerifier


class SignatureChecks:
    def __init__(self, verifier: SignatureVerifier, limits: RateLimits) -> None:
        self._verifier = verifier
        self._limits = limits
        self.verified = 0  # signature checks made since start (each a pairing check in the verifier's threads)

    def admit(self, key: SigningKey, launcher_id: bytes32, address: str) -> None:
        """Before anything else is done for a signed request: refused (INVALID_SIGNATURE, unchecked) when the
        client's failure budgets for this launcher id, or for any, are spent."""
        self._limits.admit_signature_check(key, launcher_id, address)

    async def verifies(self, public_keys: Sequence[G1Element], messages: Sequence[bytes], signature: G2Element) -> bool:
        """Whether the aggregate signature verifies (in the verifier's threads); spends no budget."""
        self.verified += 1
        return await self._verifier.aggregate_verify(public_keys, messages, signature)

    def outcome(self, key: SigningKey, launcher_id: bytes32, address: str, verified: bool) -> None:
        """What a request's signature check came to, for the client's failure budgets."""
        self._limits.signature_checked(key, launcher_id, address, verified)

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
        verified = await self.verifies(public_keys, messages, signature)
        self.outcome(key, launcher_id, address, verified)
        if not verified:
            raise PoolProtocolError(PoolErrorCode.INVALID_SIGNATURE, f"invalid signature: {what}")
