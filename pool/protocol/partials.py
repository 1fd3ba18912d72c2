"""POST /partial: every check of a farmer's partial proof, in the protocol's order, then recording it as pending.

The checks run cheapest first, and anything that needs the node (signage point, peak) only after the farmer proved
who it is, so an anonymous client cannot make the pool poll its node. A partial that passes is stored PENDING with
the points (difficulty) in force at its signage point; the confirmation loop credits it later.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

from pool.chain.interface import ChallengeInfo, PeakInfo
from pool.chia_adapter import (
    PoolErrorCode,
    PostPartialRequest,
    PostPartialResponse,
    ProofOfSpace,
    bytes32,
    calculate_iterations_quality,
    calculate_sp_interval_iters,
    std_hash,
    uint32,
    uint64,
    verify_and_get_quality_string,
)
from pool.context import PoolContext
from pool.protocol.auth import check_authentication_token
from pool.protocol.errors import PoolProtocolError, one_line
from pool.protocol.farmers import known_farmer
from pool.protocol.rate_limits import RateLimits, SigningKey
from pool.protocol.signage_points import PeakCache, SignagePointCache
from pool.protocol.signatures import SignatureChecks
from pool.protocol.v2 import V2Checks
from pool.store.group_commit import PartialWriter
from pool.store.models import FarmerRecord, NotAdded, PartialRecord, PartialRefusal

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class AcceptedPartial:
    partial_id: int | None  # None: a resend of a proof already received, credited with the first copy only
    points: int
    new_difficulty: int


class PartialChecker:
    """Checks partials against the store and the node, sharing the signage point and peak lookups."""

    def __init__(
        self,
        ctx: PoolContext,
        signage_points: SignagePointCache,
        peak: PeakCache,
        signatures: SignatureChecks,
        limits: RateLimits,
        v2: V2Checks | None = None,
    ) -> None:
        self._ctx = ctx
        self._v2 = v2  # the v2 tokens' checks (POST /v2/partial)
        self._signage_points = signage_points
        self._peak = peak
        self._signatures = signatures
        self._limits = limits
        self._writer = PartialWriter(ctx.store)

    def admit(self, launcher_id: bytes32 | None, address: str) -> None:
        """Before the partial is decoded (its proof and points cost a few hundred microseconds): refused
        (INVALID_SIGNATURE, unchecked) when the client's budgets of failed signatures for the launcher id the body
        names, or for any, are spent. A forger whose budget is spent then costs the pool little more than its body."""
        if launcher_id is None:
            return
        try:
            self._signatures.admit(SigningKey.AUTHENTICATION, launcher_id, address)
        except PoolProtocolError as error:
            self._ctx.stats.rejected(error.code.name)
            raise

    async def submit(self, request: PostPartialRequest, address: str, version: int = 1) -> PostPartialResponse:
        """Check and record a partial; raises PoolProtocolError with the code of the first failed check.
        ``address``: the client's, as the rate limits count it; ``version``: the Pool Protocol of the route."""
        ctx = self._ctx
        try:
            accepted = await self._accept(
                request, address, received_at=ctx.now(), received_precisely=ctx.precise_now(), version=version
            )
        except PoolProtocolError as error:
            ctx.stats.rejected(error.code.name)
            raise
        if accepted.partial_id is None:
            ctx.stats.resent()
        else:
            ctx.stats.accepted()
        return PostPartialResponse(uint64(accepted.new_difficulty))

    async def _accept(
        self, request: PostPartialRequest, address: str, received_at: int, received_precisely: float, version: int
    ) -> AcceptedPartial:
        ctx, payload = self._ctx, request.payload
        check_authentication_token(
            payload.authentication_token, received_at, ctx.config.pool.authentication_token_timeout
        )
        # Before the store and the signature; the farmer's allowance is used only once its signature verified.
        with self._limits.signed_request(payload.launcher_id) as allowance:
            self._signatures.admit(SigningKey.AUTHENTICATION, payload.launcher_id, address)
            farmer = await self._farmer(request, version)
            await self._check_signatures(request, farmer, address)
            allowance.verified()
        try:
            return await self._check_and_record(request, farmer, received_at, received_precisely)
        except PoolProtocolError as error:
            # Signed by the farmer: a refusal it may see on its page (nobody else can add refusals to its chart).
            try:
                await self._writer.add_refusal(PartialRefusal(farmer.launcher_id, received_at, error.code.name))
            except Exception as exc:  # the store failing must not hide from the farmer why its partial was refused
                log.warning("refusal of a partial of %s not recorded: %s", farmer.launcher_id.hex(), one_line(str(exc)))
            raise

    async def _farmer(self, request: PostPartialRequest, version: int) -> FarmerRecord:
        """The registered farmer of the partial's launcher; for v2, authenticated by its token too (the signature
        then proves the same as in v1: the plot key and the farmer's authentication key, its synthetic key)."""
        launcher_id = request.payload.launcher_id
        if version == 2:
            if self._v2 is None:
                raise PoolProtocolError(PoolErrorCode.REQUEST_FAILED, "this pool does not serve Pool Protocol v2")
            return await self._v2.token_farmer(launcher_id, request.authentication_token_v2)
        return await known_farmer(self._ctx, launcher_id)

    async def _check_and_record(
        self, request: PostPartialRequest, farmer: FarmerRecord, received_at: int, received_precisely: float
    ) -> AcceptedPartial:
        payload = request.payload
        _check_pool_contract(payload.proof_of_space, farmer)
        if not farmer.is_pool_member:
            raise PoolProtocolError(
                PoolErrorCode.INVALID_SINGLETON,
                f"the PlotNFT {farmer.launcher_id.hex()} no longer farms to this pool: partials are not accepted",
            )
        challenge = await self._challenge(payload.sp_hash, payload.end_of_sub_slot, farmer.launcher_id)
        self._check_in_time(challenge, received_precisely)
        peak = await self._peak.get()
        quality_string = self._quality_string(payload.proof_of_space, challenge, peak)
        difficulty = await self._difficulty_at_signage_point(farmer, challenge)
        self._check_good_enough(payload.proof_of_space, quality_string, challenge, peak, difficulty)
        partial_id = await self._record(request, received_at, difficulty)
        new_difficulty = await self._current_difficulty(farmer, received_at)
        return AcceptedPartial(partial_id, difficulty if partial_id is not None else 0, new_difficulty)

    async def _check_signatures(self, request: PostPartialRequest, farmer: FarmerRecord, address: str) -> None:
        """The plot key (harvester and farmer together) and the farmer's current authentication key sign the
        payload; checked in the verifier's threads, the event loop meanwhile serves other requests."""
        message = request.payload.get_hash()
        public_keys = [request.payload.proof_of_space.plot_public_key, farmer.authentication_public_key]
        await self._signatures.check(
            SigningKey.AUTHENTICATION,
            farmer.launcher_id,
            address,
            public_keys,
            [message, message],
            request.aggregate_signature,
            "expected the plot key and the latest authentication key over the payload",
        )

    async def _challenge(self, sp_hash: bytes32, end_of_sub_slot: bool, launcher_id: bytes32) -> ChallengeInfo:
        what = "end of sub-slot" if end_of_sub_slot else "signage point"
        challenge = await self._signage_points.lookup(
            sp_hash, end_of_sub_slot, admit=lambda: self._limits.admit_signage_point_lookup(launcher_id)
        )
        if challenge is None:
            raise PoolProtocolError(
                PoolErrorCode.NOT_FOUND, f"{what} {sp_hash.hex()} is not known to the pool's full node"
            )
        if challenge.reverted:
            raise PoolProtocolError(
                PoolErrorCode.REVERTED_SIGNAGE_POINT, f"{what} {sp_hash.hex()} was reverted by a chain reorganisation"
            )
        return challenge

    async def _difficulty_at_signage_point(self, farmer: FarmerRecord, challenge: ChallengeInfo) -> int:
        """The difficulty in force when the pool's node first saw the signage point: the partial's points, and what
        its proof must meet.

        Not the difficulty at receipt: a farmer may hold a proof for up to ``partials.time_limit`` seconds, and
        knows when its next difficulty takes effect (a PUT's cooldown ends at a known time), so it could send each
        proof on whichever side of the switch pays it more (those good enough for the higher difficulty after a
        raise, the others before it) and earn more than its space. Nor the lower of the two: ahead of a lowering it
        would hold the proofs that fail the current difficulty until after the switch, and get them accepted. Only
        a difficulty fixed by the signage point alone leaves the farmer nothing to choose. A change takes effect at
        the start of its second, hence the whole second of the node's time."""
        moment = math.floor(challenge.time_received)
        recorded = farmer.recorded_difficulty_at(moment)
        if recorded is not None:  # the usual case: no change since the signage point, no store read
            return recorded
        return await self._ctx.store.difficulty_at(farmer.launcher_id, moment)

    def _check_in_time(self, challenge: ChallengeInfo, received_at: float) -> None:
        # Sub-second: the node's time of first sight is a float, and truncating the receipt time to whole seconds
        # would accept partials up to a second late.
        limit = self._ctx.config.partials.time_limit
        age = received_at - challenge.time_received
        if age > limit:
            raise PoolProtocolError(
                PoolErrorCode.TOO_LATE,
                f"partial received {age:.1f} s after the pool's node saw its signage point; the limit is {limit} s",
            )

    def _quality_string(self, proof: ProofOfSpace, challenge: ChallengeInfo, peak: PeakInfo) -> bytes32:
        # The same inputs chia's farmer uses to check its proofs: the signage point's challenge and hash, the peak
        # height (plot filter) and the last transaction block height (plot format phase-out).
        try:
            quality = verify_and_get_quality_string(
                proof,
                self._ctx.constants,
                challenge.challenge_hash,
                challenge.cc_sp_output_hash,
                height=uint32(peak.height),
                prev_transaction_block_height=uint32(peak.last_transaction_block_height),
                signage_point_index=challenge.signage_point_index,
            )
        except Exception as exc:  # chia asserts and raises on some malformed proofs; they are all just invalid
            log.debug("proof verification raised: %s", exc)
            quality = None
        if quality is None:
            raise PoolProtocolError(
                PoolErrorCode.INVALID_PROOF, "invalid proof of space for this signage point (or wrong network)"
            )
        return quality

    def _check_good_enough(
        self, proof: ProofOfSpace, quality_string: bytes32, challenge: ChallengeInfo, peak: PeakInfo, difficulty: int
    ) -> None:
        constants = self._ctx.constants
        required_iters = calculate_iterations_quality(
            constants,
            quality_string,
            proof.param(),
            uint64(difficulty),
            challenge.cc_sp_output_hash,
            height=uint32(peak.last_transaction_block_height),
        )
        # The farmer's own threshold for sending a partial: within one signage point interval of a pool sub-slot.
        threshold = calculate_sp_interval_iters(constants, constants.POOL_SUB_SLOT_ITERS)
        if required_iters >= threshold:
            raise PoolProtocolError(
                PoolErrorCode.PROOF_NOT_GOOD_ENOUGH,
                f"proof of space not good enough for difficulty {difficulty}: fetch GET /farmer for your difficulty",
            )

    async def _record(self, request: PostPartialRequest, received_at: int, difficulty: int) -> int | None:
        """The new partial's id, or None when the store already holds this proof (a resend: nothing is credited)."""
        payload = request.payload
        partial = PartialRecord(
            launcher_id=payload.launcher_id,
            proof_hash=proof_identity(payload.sp_hash, payload.proof_of_space),
            sp_hash=payload.sp_hash,
            end_of_sub_slot=payload.end_of_sub_slot,
            harvester_id=payload.harvester_id,
            received_at=received_at,
            difficulty=difficulty,
        )
        # Durable before the reply: this returns once the batch holding the partial committed.
        added = await self._writer.add_partial(partial)
        if added is NotAdded.UNKNOWN_FARMER:  # removed between the check and now
            raise PoolProtocolError(PoolErrorCode.FARMER_NOT_KNOWN, "farmer is not known to this pool")
        if added is NotAdded.DUPLICATE:
            # A proof already received is answered as the first copy was, and earns nothing more: the proof names
            # this farmer's pool contract, so only this farmer (or a replay of its own request) can send it, and
            # chia's farmer resends a proof through no fault of its own (a signage point that reaches it twice with
            # different reward chain hashes makes it post each of its proofs once per copy). An error would show
            # up as "Error in pooling" in its log, and it can do nothing about it.
            return None
        return added

    async def _current_difficulty(self, farmer: FarmerRecord, now: int) -> int:
        """The difficulty to tell the farmer; a pending PUT difficulty that is due becomes the stored one."""
        if farmer.pending_difficulty_at is not None and farmer.pending_difficulty_at <= now:
            return await self._ctx.store.apply_due_difficulty(farmer.launcher_id, now)
        return farmer.difficulty


# Bytes of the signage point's hash a proof's identity starts with (proof_identity).
SIGNAGE_POINT_PREFIX = 8


def proof_identity(sp_hash: bytes32, proof: ProofOfSpace) -> bytes32:
    """What makes two partials "the same proof", the key the store holds each proof once by: the first
    SIGNAGE_POINT_PREFIX bytes of its signage point's hash, then the hash of the proof's canonical (binary) form cut to
    the rest (192 bits: two different proofs of one signage point never share it).

    A proof commits to its plot and to the challenge of one signage point (its challenge is checked against the
    signage point the partial names before this), so it cannot be reused elsewhere and every copy of it names the same
    signage point: the same proof always has the same key. Led by the signage point, the store's unique index takes
    each new partial beside the others of the last few signage points, a few pages that stay in memory, instead of at
    a random place in an index of every partial kept: some 4 GB at 30 days of 10 000 farmers, of which each insert
    read a page from disk once the store outgrew the page cache (about 1 ms a partial on the 30-day store, measured).
    """
    return proof_key(sp_hash, std_hash(bytes(proof)))


def proof_key(sp_hash: bytes32, proof_digest: bytes32) -> bytes32:
    """A proof's key from its signage point and the hash of its binary form (proof_identity); the store refuses a
    partial keyed otherwise (schema step 25)."""
    return bytes32(sp_hash[:SIGNAGE_POINT_PREFIX] + proof_digest[: 32 - SIGNAGE_POINT_PREFIX])


def _check_pool_contract(proof: ProofOfSpace, farmer: FarmerRecord) -> None:
    if proof.pool_contract_puzzle_hash != farmer.p2_singleton_puzzle_hash:
        raise PoolProtocolError(
            PoolErrorCode.INVALID_P2_SINGLETON_PUZZLE_HASH,
            f"the plot pays {_hex_or_none(proof.pool_contract_puzzle_hash)}, not this farmer's pool contract "
            f"{farmer.p2_singleton_puzzle_hash.hex()}",
        )


def _hex_or_none(value: bytes32 | None) -> str:
    return "no pool contract (an OG plot)" if value is None else value.hex()
