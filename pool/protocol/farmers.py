"""Farmer registration (POST /farmer), settings updates (PUT /farmer) and what GET /farmer and GET /login check.

Each function validates a parsed request against the chain and the store and raises PoolProtocolError with the
protocol's error code at the first failed check; only a request that passed every check writes to the store.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

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
    check_signature,
)
from pool.protocol.difficulty import suggested_difficulty_for
from pool.protocol.errors import PoolProtocolError
from pool.protocol.payout import parse_payout_instructions
from pool.protocol.rate_limits import RateLimits
from pool.store.abstract import FarmerAlreadyExists
from pool.store.models import FarmerRecord, PendingDifficulty

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


async def register_farmer(ctx: PoolContext, request: PostFarmerRequest) -> PostFarmerResponse:
    """POST /farmer: a PlotNFT farming to this pool joins with its authentication key and payout instructions."""
    payload = request.payload
    now = ctx.now()
    check_authentication_token(payload.authentication_token, now, ctx.config.pool.authentication_token_timeout)
    check_authentication_key(payload.authentication_public_key)
    payout_puzzle_hash = parse_payout_instructions(payload.payout_instructions, ctx.config.chain.network)
    if await ctx.store.get_farmer(payload.launcher_id) is not None:
        raise _already_known(payload.launcher_id)
    refused = ctx.refused_launchers.get(payload.launcher_id)
    if refused is not None and now < refused[0]:
        raise PoolProtocolError(PoolErrorCode.INVALID_SINGLETON, f"{refused[1]} (refused recently; try again later)")

    try:
        singleton, peak_height = await ctx.singleton_walks.run(
            payload.launcher_id, lambda: current_singleton(ctx, payload.launcher_id)
        )
        if not view_is_member(singleton, ctx.config.pool, peak_height):
            raise PoolProtocolError(
                PoolErrorCode.INVALID_SINGLETON,
                f"the PlotNFT {payload.launcher_id.hex()} does not farm to this pool: join with target puzzle hash "
                f"{ctx.config.pool.target_puzzle_hash.hex()} and relative lock height "
                f"{ctx.config.pool.relative_lock_height}, then wait "
                f"{ctx.config.chain.confirmation_security_threshold} blocks",
            )
    except PoolProtocolError as error:
        _remember_refusal(ctx, payload.launcher_id, now, error.message)
        raise
    check_signature(singleton.state.owner_pubkey, payload.get_hash(), request.signature, "not the PlotNFT owner's")
    if singleton.delay_time < MINIMUM_DELAY_TIME:
        raise PoolProtocolError(
            PoolErrorCode.DELAY_TIME_TOO_SHORT,
            f"the PlotNFT's delay time is {singleton.delay_time} s; this pool needs at least {MINIMUM_DELAY_TIME} s",
        )

    minimum, default = ctx.config.difficulty.minimum, ctx.config.difficulty.default
    farmer = FarmerRecord(
        launcher_id=payload.launcher_id,
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
        raise _already_known(payload.launcher_id) from None
    return PostFarmerResponse(ctx.config.pool.welcome_message)


async def update_farmer(ctx: PoolContext, request: PutFarmerRequest) -> PutFarmerResponse:
    """PUT /farmer: the PlotNFT owner changes the authentication key, payout instructions or difficulty.

    A farmer that is leaving (or left) may still update, e.g. to be paid its remaining points. A new difficulty takes
    effect only after ``difficulty.put_cooldown``, and only for partials of signage points from then on (a partial
    is worth the difficulty in force at its signage point), so a farmer cannot change its difficulty and then send
    partials it already has for more points. A new authentication key ends the farmer's browser sessions.
    """
    payload = request.payload
    now = ctx.now()
    check_authentication_token(payload.authentication_token, now, ctx.config.pool.authentication_token_timeout)
    farmer = await known_farmer(ctx, payload.launcher_id)
    if request.signature is None:
        raise PoolProtocolError(PoolErrorCode.INVALID_SIGNATURE, "PUT /farmer must be signed by the PlotNFT owner")
    if farmer.last_put_token is not None and payload.authentication_token <= farmer.last_put_token:
        raise _token_not_newer(farmer.last_put_token)
    # The owner key can change on chain (a new owner takes the PlotNFT to another wallet): ask the chain, not the store.
    singleton, peak_height = await current_singleton(ctx, payload.launcher_id, farmer)
    signed = ClassicPutFarmerPayload(
        payload.launcher_id,
        payload.authentication_token,
        payload.authentication_public_key,
        payload.payout_instructions,
        payload.suggested_difficulty,
    ).get_hash()
    check_signature(singleton.state.owner_pubkey, signed, request.signature, "not the PlotNFT owner's")

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
    pending: PendingDifficulty | None = None
    if difficulty is not None and difficulty_changed:
        # A change takes effect at the start of a whole second (pool.protocol.partials): at least the next one, so
        # that no signage point seen before this request gets it, even without a cooldown.
        pending = PendingDifficulty(difficulty, now + max(ctx.config.difficulty.put_cooldown, 1), now)
    # Only now, signed by the owner: the token becomes the newest accepted (atomically, so of two concurrent PUTs
    # with the same token one wins), and a replay of this request is refused from here on.
    if not await ctx.store.accept_put_token(payload.launcher_id, int(payload.authentication_token)):
        raise _token_not_newer(int(payload.authentication_token))
    await ctx.store.update_farmer_settings(
        payload.launcher_id,
        authentication_public_key=new_key if key_changed else None,
        payout_instructions=payout if payout_changed else None,
        pending_difficulty=pending,
    )
    member = view_is_member(singleton, ctx.config.pool, peak_height)
    # Compare-and-set on the tip this walk started from: never over a newer view the singleton loop wrote meanwhile.
    await ctx.store.update_singleton(
        payload.launcher_id, singleton.tip, singleton.state, member, expected_tip=farmer.singleton_tip
    )
    return PutFarmerResponse(
        key_changed if new_key is not None else None,
        payout_changed if payout is not None else None,
        difficulty_changed if difficulty is not None else None,
    )


def _latest_difficulty(farmer: FarmerRecord) -> int:
    """The difficulty the farmer will have once a pending change applies (what a new suggestion compares to)."""
    return farmer.pending_difficulty if farmer.pending_difficulty is not None else farmer.difficulty


async def authenticated_farmer(
    ctx: PoolContext, limits: RateLimits, method_name: str, launcher_id: bytes32, token: int, signature: G2Element
) -> FarmerRecord:
    """GET /farmer and GET /login: token, known farmer, signature of its latest authentication key."""
    check_authentication_token(token, ctx.now(), ctx.config.pool.authentication_token_timeout)
    with limits.signed_request(launcher_id) as allowance:  # cheap, before the store and the signature
        farmer = await known_farmer(ctx, launcher_id)
        message = authentication_message(method_name, launcher_id, ctx.config.pool.target_puzzle_hash, token)
        check_signature(farmer.authentication_public_key, message, signature, "not the farmer's authentication key's")
        allowance.verified()
    return farmer


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
    except SingletonForged as exc:
        log.warning("refused PlotNFT %s: %s", launcher_id.hex(), exc)
        raise PoolProtocolError(PoolErrorCode.INVALID_SINGLETON, f"PlotNFT fails the chain check: {exc}") from None
    except SingletonNotFound as exc:
        raise PoolProtocolError(PoolErrorCode.INVALID_SINGLETON, f"no usable PlotNFT singleton: {exc}") from None
    return view, peak.height


def _remember_refusal(ctx: PoolContext, launcher_id: bytes32, now: int, message: str) -> None:
    refused = ctx.refused_launchers
    refused.pop(launcher_id, None)
    refused[launcher_id] = (now + REFUSAL_MEMORY_SECONDS, message)
    while len(refused) > REFUSAL_MEMORY_ENTRIES:
        del refused[next(iter(refused))]  # the oldest refusal


def _token_not_newer(last: int) -> PoolProtocolError:
    return PoolProtocolError(
        PoolErrorCode.INVALID_AUTHENTICATION_TOKEN,
        f"PUT /farmer needs an authentication token newer than {last}, the last one accepted for this farmer",
    )


def _already_known(launcher_id: bytes32) -> PoolProtocolError:
    return PoolProtocolError(
        PoolErrorCode.FARMER_ALREADY_KNOWN, f"farmer {launcher_id.hex()} is already registered: use PUT /farmer"
    )
