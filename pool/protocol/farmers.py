"""Farmer registration (POST /farmer), settings updates (PUT /farmer) and what GET /farmer and GET /login check.

Each check validates a parsed request against the chain and the store and raises PoolProtocolError with the
protocol's error code at the first failed check; only a request that passed every check writes to the store. Every
signature is checked in the verifier's threads, within the client address's budgets of failed signatures
(signatures.py).
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from dataclasses import dataclass

from pool.chain.shared_reads import SharedLookups
from pool.chain.singleton import (
    KnownTip,
    SingletonForged,
    SingletonNotFound,
    SingletonView,
    follow_singleton,
    view_is_member,
)
from pool.chia_adapter import (
    G1Element,
    G2Element,
    PoolErrorCode,
    PostFarmerRequest,
    PostFarmerResponse,
    PutFarmerRequest,
    PutFarmerResponse,
    Streamable,
    bytes32,
    streamable,
    uint64,
)
from pool.context import PoolContext
from pool.protocol.auth import (
    authentication_message,
    check_authentication_key,
    check_authentication_token,
)
from pool.protocol.difficulty import suggested_difficulty_for
from pool.protocol.errors import PoolProtocolError
from pool.protocol.payout import parse_payout_instructions
from pool.protocol.rate_limits import RateLimits, SigningKey
from pool.protocol.signatures import SignatureChecks
from pool.store.abstract import FarmerAlreadyExists
from pool.store.models import FarmerRecord

log = logging.getLogger(__name__)

# A farmer can take its block rewards out of the p2_singleton alone after this delay; a shorter one would let it take
# rewards the pool is about to claim.
MINIMUM_DELAY_TIME = 3600
# Most singleton spends one request may make the node read (each costs two look-ups). A PlotNFT absorbs once per block
# its plots win, so this covers a farmer of a few percent of the netspace for months; the singleton loop, which
# follows known farmers from their recorded tip, has no bound.
MAX_REQUEST_WALK = 10_000
# A launcher id refused after a chain walk is refused again without one for this long (an anonymous client cannot
# make the node walk a long-lived PlotNFT over and over). Shorter than the farmer's 300 s retry of POST /farmer.
REFUSAL_MEMORY_SECONDS = 120
REFUSAL_MEMORY_ENTRIES = 10_000
NOT_THE_OWNER = "not the PlotNFT owner's"


@streamable
@dataclass(frozen=True)
class ClassicPutFarmerPayload(Streamable):
    """The five fields a v1 farmer signs for PUT /farmer.

    chia 2.7.5's PutFarmerPayload has a sixth field (authentication_token_v2), so its hash differs from what the
    farmer signs; the farmer hashes exactly these five.
    """

    launcher_id: bytes32
    authentication_token: uint64
    authentication_public_key: G1Element | None
    payout_instructions: str | None
    suggested_difficulty: uint64 | None


class FarmerChecks:
    """POST and PUT /farmer, and the checks of GET /farmer and GET /login, over what one pool process shares: the
    signature checks, the rate limits, the walks and the launcher ids refused recently."""

    def __init__(self, ctx: PoolContext, signatures: SignatureChecks, limits: RateLimits) -> None:
        self._ctx = ctx
        self.signatures = signatures  # and what they counted
        self._limits = limits
        # Concurrent POST /farmer requests for the same launcher id share one chain walk.
        self._walks: SharedLookups[tuple[SingletonView, int]] = SharedLookups()
        # launcher id -> (unix time until which it stays refused, why)
        self._refused: OrderedDict[bytes32, tuple[int, str]] = OrderedDict()

    async def register(self, request: PostFarmerRequest, address: str) -> PostFarmerResponse:
        """POST /farmer: a PlotNFT farming to this pool joins with its authentication key and payout instructions.
        ``address``: the client's, as the rate limits count it."""
        ctx, payload = self._ctx, request.payload
        launcher_id = payload.launcher_id
        now = ctx.now()
        check_authentication_token(payload.authentication_token, now, ctx.config.pool.authentication_token_timeout)
        check_authentication_key(payload.authentication_public_key)
        payout_puzzle_hash = parse_payout_instructions(payload.payout_instructions, ctx.config.chain.network)
        if await ctx.store.get_farmer(launcher_id) is not None:
            raise _already_known(launcher_id)
        refused = self._refused.get(launcher_id)
        if refused is not None and now < refused[0]:
            raise PoolProtocolError(
                PoolErrorCode.INVALID_SINGLETON, f"{refused[1]} (refused recently; try again later)"
            )
        self.signatures.admit(SigningKey.OWNER, launcher_id, address)

        try:
            singleton, peak_height = await self._walks.run(launcher_id, lambda: current_singleton(ctx, launcher_id))
            if not view_is_member(singleton, ctx.config.pool, peak_height):
                raise PoolProtocolError(
                    PoolErrorCode.INVALID_SINGLETON,
                    f"the PlotNFT {launcher_id.hex()} does not farm to this pool: join with target puzzle hash "
                    f"{ctx.config.pool.target_puzzle_hash.hex()} and relative lock height "
                    f"{ctx.config.pool.relative_lock_height}, then wait "
                    f"{ctx.config.chain.confirmation_security_threshold} blocks",
                )
        except PoolProtocolError as error:
            self._remember_refusal(launcher_id, now, error.message)
            raise
        await self.signatures.check(
            SigningKey.OWNER,
            launcher_id,
            address,
            [singleton.state.owner_pubkey],
            [payload.get_hash()],
            request.signature,
            NOT_THE_OWNER,
        )
        if singleton.delay_time < MINIMUM_DELAY_TIME:
            raise PoolProtocolError(
                PoolErrorCode.DELAY_TIME_TOO_SHORT,
                f"the PlotNFT's delay time is {singleton.delay_time} s; this pool needs at least "
                f"{MINIMUM_DELAY_TIME} s",
            )

        minimum, default = ctx.config.difficulty.minimum, ctx.config.difficulty.default
        farmer = FarmerRecord(
            launcher_id=launcher_id,
            p2_singleton_puzzle_hash=singleton.p2_singleton_puzzle_hash,
            delay_time=singleton.delay_time,
            delay_puzzle_hash=singleton.delay_puzzle_hash,
            authentication_public_key=payload.authentication_public_key,
            singleton_tip=singleton.tip,
            singleton_tip_state=singleton.state,
            difficulty=suggested_difficulty_for(payload.suggested_difficulty, minimum, default),
            payout_instructions=payload.payout_instructions,
            payout_puzzle_hash=payout_puzzle_hash,
            is_pool_member=True,
            points=0,
            joined_at=now,
        )
        try:
            await ctx.store.add_farmer(farmer)
        except FarmerAlreadyExists:  # a concurrent POST of the same farmer won the race
            raise _already_known(launcher_id) from None
        return PostFarmerResponse(ctx.config.pool.welcome_message)

    async def update(self, request: PutFarmerRequest, address: str) -> PutFarmerResponse:
        """PUT /farmer: the PlotNFT owner changes the authentication key, payout instructions or difficulty.

        A farmer that is leaving (or left) may still update, e.g. to be paid its remaining points. A new difficulty
        takes effect only after ``difficulty.put_cooldown``: a partial received before then keeps the old difficulty,
        so a farmer cannot raise its difficulty and resend partials it already has for more points.
        """
        ctx, payload = self._ctx, request.payload
        launcher_id = payload.launcher_id
        now = ctx.now()
        check_authentication_token(payload.authentication_token, now, ctx.config.pool.authentication_token_timeout)
        farmer = await known_farmer(ctx, launcher_id)
        if request.signature is None:
            raise PoolProtocolError(PoolErrorCode.INVALID_SIGNATURE, "PUT /farmer must be signed by the PlotNFT owner")
        if farmer.last_put_token is not None and payload.authentication_token <= farmer.last_put_token:
            raise _token_not_newer(farmer.last_put_token)
        self.signatures.admit(SigningKey.OWNER, launcher_id, address)
        signed = ClassicPutFarmerPayload(
            payload.launcher_id,
            payload.authentication_token,
            payload.authentication_public_key,
            payload.payout_instructions,
            payload.suggested_difficulty,
        ).get_hash()
        # The owner key can change on chain (a new owner takes the PlotNFT to another wallet): ask the chain, not the
        # store.
        singleton, peak_height = await current_singleton(ctx, launcher_id, farmer)
        await self.signatures.check(
            SigningKey.OWNER,
            launcher_id,
            address,
            [singleton.state.owner_pubkey],
            [signed],
            request.signature,
            NOT_THE_OWNER,
        )

        new_key = payload.authentication_public_key
        if new_key is not None:
            check_authentication_key(new_key)
        payout: tuple[str, bytes32] | None = None
        if payload.payout_instructions is not None:
            payout = (
                payload.payout_instructions,
                parse_payout_instructions(payload.payout_instructions, ctx.config.chain.network),
            )
        difficulty: int | None = None
        if payload.suggested_difficulty is not None:
            minimum, default = ctx.config.difficulty.minimum, ctx.config.difficulty.default
            difficulty = suggested_difficulty_for(payload.suggested_difficulty, minimum, default)

        key_changed = new_key is not None and new_key != farmer.authentication_public_key
        payout_changed = payout is not None and payout[0] != farmer.payout_instructions
        difficulty_changed = difficulty is not None and difficulty != _latest_difficulty(farmer)
        # Only now, signed by the owner: the token becomes the newest accepted (atomically, so of two concurrent
        # PUTs with the same token one wins), and a replay of this request is refused from here on.
        if not await ctx.store.accept_put_token(launcher_id, int(payload.authentication_token)):
            raise _token_not_newer(int(payload.authentication_token))
        await ctx.store.update_farmer_settings(
            launcher_id,
            authentication_public_key=new_key if key_changed else None,
            payout_instructions=payout if payout_changed else None,
            pending_difficulty=(difficulty, now + ctx.config.difficulty.put_cooldown)
            if difficulty is not None and difficulty_changed
            else None,
        )
        member = view_is_member(singleton, ctx.config.pool, peak_height)
        # Compare-and-set on the tip this walk started from: never over a newer view the singleton loop wrote
        # meanwhile.
        await ctx.store.update_singleton(
            launcher_id, singleton.tip, singleton.state, member, expected_tip=farmer.singleton_tip
        )
        return PutFarmerResponse(
            key_changed if new_key is not None else None,
            payout_changed if payout is not None else None,
            difficulty_changed if difficulty is not None else None,
        )

    async def authenticated(
        self, method_name: str, launcher_id: bytes32, token: int, signature: G2Element, address: str
    ) -> FarmerRecord:
        """GET /farmer and GET /login: token, known farmer, signature of its latest authentication key."""
        ctx = self._ctx
        check_authentication_token(token, ctx.now(), ctx.config.pool.authentication_token_timeout)
        with self._limits.signed_request(launcher_id) as allowance:  # cheap, before the store and the signature
            self.signatures.admit(SigningKey.AUTHENTICATION, launcher_id, address)
            farmer = await known_farmer(ctx, launcher_id)
            message = authentication_message(method_name, launcher_id, ctx.config.pool.target_puzzle_hash, token)
            await self.signatures.check(
                SigningKey.AUTHENTICATION,
                launcher_id,
                address,
                [farmer.authentication_public_key],
                [message],
                signature,
                "not the farmer's authentication key's",
            )
            allowance.verified()
        return farmer

    def _remember_refusal(self, launcher_id: bytes32, now: int, message: str) -> None:
        refused = self._refused
        refused.pop(launcher_id, None)
        refused[launcher_id] = (now + REFUSAL_MEMORY_SECONDS, message)
        while len(refused) > REFUSAL_MEMORY_ENTRIES:
            refused.popitem(last=False)  # the oldest refusal


def _latest_difficulty(farmer: FarmerRecord) -> int:
    """The difficulty the farmer will have once a pending change applies (what a new suggestion compares to)."""
    return farmer.pending_difficulty if farmer.pending_difficulty is not None else farmer.difficulty


async def known_farmer(ctx: PoolContext, launcher_id: bytes32) -> FarmerRecord:
    farmer = await ctx.store.get_farmer(launcher_id)
    if farmer is None:
        raise PoolProtocolError(
            PoolErrorCode.FARMER_NOT_KNOWN, f"farmer {launcher_id.hex()} is not known to this pool: POST /farmer first"
        )
    return farmer


async def current_singleton(
    ctx: PoolContext, launcher_id: bytes32, farmer: FarmerRecord | None = None
) -> tuple[SingletonView, int]:
    """The singleton's buried state and the peak height it was read at (continuing from a known farmer's recorded
    tip, which saves walking every reward claim again). Raises INVALID_SINGLETON."""
    peak = await ctx.node.peak()
    known = KnownTip(farmer.singleton_tip, farmer.singleton_tip_state) if farmer is not None else None
    try:
        view = await follow_singleton(
            ctx.node,
            launcher_id,
            peak_height=peak.height,
            confirmation_security_threshold=ctx.config.chain.confirmation_security_threshold,
            genesis_challenge=ctx.constants.GENESIS_CHALLENGE,
            known=known,
            max_spends=MAX_REQUEST_WALK,
        )
    except SingletonNotFound as exc:
        raise _singleton_refusal(launcher_id, exc) from None
    return view, peak.height


def _singleton_refusal(launcher_id: bytes32, exc: SingletonNotFound) -> PoolProtocolError:
    if isinstance(exc, SingletonForged):
        log.warning("refused PlotNFT %s: %s", launcher_id.hex(), exc)
        return PoolProtocolError(PoolErrorCode.INVALID_SINGLETON, f"PlotNFT fails the chain check: {exc}")
    return PoolProtocolError(PoolErrorCode.INVALID_SINGLETON, f"no usable PlotNFT singleton: {exc}")


def _token_not_newer(last: int) -> PoolProtocolError:
    return PoolProtocolError(
        PoolErrorCode.INVALID_AUTHENTICATION_TOKEN,
        f"PUT /farmer needs an authentication token newer than {last}, the last one accepted for this farmer",
    )


def _already_known(launcher_id: bytes32) -> PoolProtocolError:
    return PoolProtocolError(
        PoolErrorCode.FARMER_ALREADY_KNOWN, f"farmer {launcher_id.hex()} is already registered: use PUT /farmer"
    )
