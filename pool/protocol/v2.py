"""Pool Protocol v2, beside v1: GET /v2/auth and its tokens, POST, PUT and GET /v2/farmer.

A v2 farmer (a PlotNFT v2) first proves who it is with GET /v2/auth: a signature by the unhardened child
(``AUTH_V2_CHILD_INDEX``) of its PlotNFT's synthetic key over the timestamp, its launcher id and the pool's target
puzzle hash. The pool answers an opaque token and its expiry; GET and PUT /v2/farmer and POST /v2/partial carry the
token instead of a signature. The token is ``<expiry>.<mac>``: an HMAC-SHA256 of the launcher id, the expiry and the
farmer's recorded authentication key (its synthetic key) under a secret the pool keeps in its store, the same for
every process and host. Any worker checks a token with one HMAC, no look-up; a token names one launcher and one key,
so it is worth nothing for another launcher, nor once the PlotNFT's key changed.

The farmer keeps a token until its exact expiry: a partial sent at that second would be refused and lost, so a token
is accepted ``pool.v2_token_grace`` seconds past its expiry.

POST /v2/farmer is signed by the same child key; membership is what the chain proves (pool.chain.plotnft_v2): the
buried state's pool config must be the pool's, and its synthetic key the one posted.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import secrets

from pool.chain.plotnft_v2 import KnownV2Tip, PlotNFTView, follow_plotnft, puzzle_from_record, view_is_member
from pool.chain.singleton import SingletonForged, SingletonNotFound
from pool.chia_adapter import (
    G1Element,
    GetAuthRequest,
    GetAuthResponse,
    PoolErrorCode,
    PostFarmerRequest,
    PostFarmerResponse,
    PutFarmerRequest,
    PutFarmerResponse,
    auth_v2_public_key,
    bytes32,
    reward_puzzle_hash_v2,
    uint64,
)
from pool.context import PoolContext
from pool.protocol.auth import check_authentication_key
from pool.protocol.errors import PoolProtocolError
from pool.protocol.farmers import MAX_REQUEST_WALK, FarmerChecks, known_farmer, new_farmer, refuse_banned, wrong_version
from pool.protocol.payout import parse_payout_instructions
from pool.protocol.rate_limits import RateLimits, SigningKey
from pool.store.abstract import FarmerAlreadyExists
from pool.store.models import FarmerRecord

log = logging.getLogger(__name__)

TOKEN_SECRET_NAME = "v2 authentication tokens"
_MAC_DOMAIN = b"chia-pool v2 authentication token"
MAX_TOKEN_LENGTH = 128  # characters: an expiry and a hex MAC; anything longer is refused unread


def auth_message(timestamp: int, launcher_id: bytes32, target_puzzle_hash: bytes32) -> bytes:
    """What GET /v2/auth is signed over: the timestamp (8 bytes, big-endian), the launcher id and the pool's target
    puzzle hash, concatenated (as chia 2.7.5's farmer builds it)."""
    return bytes(uint64(timestamp)) + launcher_id + target_puzzle_hash


class TokenMint:
    """Issues and checks v2 tokens under one secret."""

    def __init__(self, secret: bytes, lifetime: int, grace: int) -> None:
        self._secret = secret
        self.lifetime = lifetime
        self.grace = grace

    def _mac(self, launcher_id: bytes32, expiration: int, key: G1Element) -> str:
        message = _MAC_DOMAIN + launcher_id + expiration.to_bytes(8, "big") + bytes(key)
        return hmac.new(self._secret, message, hashlib.sha256).hexdigest()

    def issue(self, launcher_id: bytes32, key: G1Element, now: int) -> GetAuthResponse:
        expiration = now + self.lifetime
        return GetAuthResponse(f"{expiration}.{self._mac(launcher_id, expiration, key)}", uint64(expiration))

    def check(self, token: str, launcher_id: bytes32, key: G1Element, now: int) -> None:
        """Raises INVALID_AUTHENTICATION_TOKEN unless ``token`` was issued for this launcher and key and is valid at
        ``now`` (up to ``grace`` seconds past its expiry)."""
        expiration_text, _, mac = token.partition(".")
        # ASCII only: str.isdigit() takes other scripts' digits, and compare_digest refuses non-ASCII text.
        well_formed = token.isascii() and expiration_text.isdigit() and len(expiration_text) < 20
        if not (0 < len(token) <= MAX_TOKEN_LENGTH and well_formed):
            raise _invalid_token("not a token of this pool: GET /v2/auth for one")
        expiration = int(expiration_text)
        if not hmac.compare_digest(mac, self._mac(launcher_id, expiration, key)):
            raise _invalid_token("not a token of this pool for this launcher and key: GET /v2/auth for one")
        if now > expiration + self.grace:
            raise _invalid_token(f"the token expired at {expiration}: GET /v2/auth for a new one")


def _invalid_token(message: str) -> PoolProtocolError:
    return PoolProtocolError(PoolErrorCode.INVALID_AUTHENTICATION_TOKEN, message)


class V2Checks:
    """The v2 endpoints' checks, over what v1's share in the process (signatures, rate limits, walks)."""

    def __init__(self, ctx: PoolContext, farmers: FarmerChecks, limits: RateLimits) -> None:
        self._ctx = ctx
        self._farmers = farmers
        self._limits = limits
        self._mint: TokenMint | None = None
        self._mint_lock = asyncio.Lock()

    async def mint(self) -> TokenMint:
        """The token mint, its secret read from the store (or created there) on first use."""
        if self._mint is None:
            async with self._mint_lock:
                if self._mint is None:
                    ctx = self._ctx
                    secret = await ctx.store.pool_secret(TOKEN_SECRET_NAME, secrets.token_bytes(32), ctx.now())
                    pool = ctx.config.pool
                    self._mint = TokenMint(secret, pool.v2_token_lifetime, pool.v2_token_grace)
        return self._mint

    async def auth(self, request: GetAuthRequest, address: str) -> GetAuthResponse:
        """GET /v2/auth: a fresh timestamp signed by the farmer's v2 authentication key buys a token."""
        ctx = self._ctx
        now = ctx.now()
        window = ctx.config.pool.authentication_token_timeout * 60
        if abs(int(request.timestamp) - now) > window:
            raise _invalid_token(
                f"timestamp {request.timestamp} is more than {window} s from the pool's time {now}: check the clock"
            )
        launcher_id = request.launcher_id
        signatures = self._farmers.signatures
        with self._limits.signed_request(launcher_id) as allowance:
            signatures.admit(SigningKey.AUTHENTICATION, launcher_id, address)
            farmer = await known_farmer(ctx, launcher_id, version=2)
            message = auth_message(int(request.timestamp), launcher_id, ctx.config.pool.target_puzzle_hash)
            await signatures.check(
                SigningKey.AUTHENTICATION,
                launcher_id,
                address,
                [auth_v2_public_key(farmer.authentication_public_key)],
                [message],
                request.signature,
                "not the PlotNFT's v2 authentication key's",
            )
            allowance.verified()
        return (await self.mint()).issue(launcher_id, farmer.authentication_public_key, now)

    async def token_farmer(self, launcher_id: bytes32, token: str) -> FarmerRecord:
        """The farmer a v2 token authenticates (GET and PUT /v2/farmer, POST /v2/partial)."""
        ctx = self._ctx
        mint = await self.mint()
        if not token:
            raise _invalid_token("no authentication_token_v2: GET /v2/auth for one")
        farmer = await known_farmer(ctx, launcher_id, version=2)
        mint.check(token, launcher_id, farmer.authentication_public_key, ctx.now())
        return farmer

    async def register(self, request: PostFarmerRequest, address: str) -> PostFarmerResponse:
        """POST /v2/farmer: signed by the v2 authentication key of the key posted, which must be the synthetic key
        of the PlotNFT's buried state, whose pool config must be the pool's."""
        ctx, payload = self._ctx, request.payload
        launcher_id, key = payload.launcher_id, payload.authentication_public_key
        now = ctx.now()
        check_authentication_key(key)
        payout_puzzle_hash = parse_payout_instructions(payload.payout_instructions, ctx.config.chain.network)
        existing = await ctx.store.get_farmer(launcher_id)
        if existing is not None:
            refuse_banned(existing)
            if existing.protocol_version != 2:
                raise wrong_version(launcher_id, existing.protocol_version)
            raise PoolProtocolError(
                PoolErrorCode.FARMER_ALREADY_KNOWN, f"farmer {launcher_id.hex()} is already registered"
            )
        # The signature first, with the key posted: a request that is not that key's makes no chain look-up.
        await self._farmers.signatures.check(
            SigningKey.OWNER,
            launcher_id,
            address,
            [auth_v2_public_key(key)],
            [payload.get_hash()],
            request.signature,
            "not the posted key's v2 authentication key's",
        )
        self._limits.take_singleton_walk(address)
        try:
            view, peak_height = await self._farmers.walks.run(
                ("v2", launcher_id), lambda: current_plotnft(ctx, launcher_id)
            )
            if view.synthetic_key != key:
                raise PoolProtocolError(
                    PoolErrorCode.INVALID_SIGNATURE,
                    f"the key posted is not the synthetic key of PlotNFT {launcher_id.hex()} on chain",
                )
            if not view_is_member(view, ctx.config.pool, peak_height):
                raise PoolProtocolError(PoolErrorCode.INVALID_SINGLETON, self._not_member(launcher_id))
        except PoolProtocolError as error:
            if error.code is not PoolErrorCode.INVALID_SINGLETON:
                self._limits.give_back_singleton_walk(address)
            raise
        # A v2 PlotNFT's rewards have no delayed path (only the singleton moves them): no delay time.
        farmer = new_farmer(
            ctx,
            payload,
            payout_puzzle_hash,
            reward_puzzle_hash_v2(launcher_id),
            (0, bytes32(b"\x00" * 32)),
            (view.tip, view.state),
            now,
        )
        try:
            await ctx.store.add_farmer(farmer)
        except FarmerAlreadyExists:
            raise PoolProtocolError(
                PoolErrorCode.FARMER_ALREADY_KNOWN, f"farmer {launcher_id.hex()} is already registered"
            ) from None
        self._limits.give_back_singleton_walk(address)
        log.info(
            "farmer %s joined (Pool Protocol v2): payout instructions %s, synthetic key %s, from %s",
            launcher_id.hex(),
            payload.payout_instructions,
            bytes(key).hex(),
            address,
        )
        return PostFarmerResponse(ctx.config.pool.welcome_message)

    async def update(self, request: PutFarmerRequest, address: str) -> PutFarmerResponse:
        """PUT /v2/farmer: authenticated by the token alone (chia's v2 farmer signs nothing). The authentication key
        is the PlotNFT's synthetic key, which only the chain changes."""
        payload = request.payload
        farmer = await self.token_farmer(payload.launcher_id, payload.authentication_token_v2)
        key = payload.authentication_public_key
        if key is not None and key != farmer.authentication_public_key:
            raise PoolProtocolError(
                PoolErrorCode.REQUEST_FAILED,
                "a v2 farmer's authentication key is its PlotNFT's synthetic key: it changes on chain only",
            )
        return await self._farmers.apply_settings(farmer, payload, self._ctx.now(), address, put_token=None)

    def _not_member(self, launcher_id: bytes32) -> str:
        ctx = self._ctx
        return (
            f"the PlotNFT {launcher_id.hex()} does not farm to this pool: join with target puzzle hash "
            f"{ctx.config.pool.target_puzzle_hash.hex()}, relative lock height {ctx.config.pool.relative_lock_height} "
            f"and pool memoization {ctx.config.pool.pool_memoization.hex()}, then wait "
            f"{ctx.config.chain.confirmation_security_threshold} blocks"
        )


async def current_plotnft(
    ctx: PoolContext, launcher_id: bytes32, farmer: FarmerRecord | None = None
) -> tuple[PlotNFTView, int]:
    """The v2 PlotNFT's buried state and the peak height it was read at (from a known farmer's recorded tip when it
    still holds). Raises INVALID_SINGLETON."""
    peak = await ctx.node.peak()
    try:
        view = await follow_v2(ctx, launcher_id, peak.height, farmer=farmer, max_spends=MAX_REQUEST_WALK)
    except SingletonForged as exc:
        log.warning("refused PlotNFT v2 %s: %s", launcher_id.hex(), exc)
        raise PoolProtocolError(PoolErrorCode.INVALID_SINGLETON, f"PlotNFT fails the chain check: {exc}") from None
    except SingletonNotFound as exc:
        raise PoolProtocolError(PoolErrorCode.INVALID_SINGLETON, f"no usable PlotNFT v2: {exc}") from None
    return view, peak.height


async def follow_v2(
    ctx: PoolContext,
    launcher_id: bytes32,
    peak_height: int,
    *,
    farmer: FarmerRecord | None = None,
    live: bool = False,
    max_spends: int | None = None,
) -> PlotNFTView:
    """The v2 PlotNFT followed from ``farmer``'s recorded tip (from its launcher without one, or when the tip no
    longer holds) to its newest buried spend; ``live``: to its newest spend at all, the coin a forward must spend.
    Raises SingletonForged, SingletonNotFound, SingletonWalkTooLong past ``max_spends``, ChainUnavailable."""
    genesis = ctx.constants.GENESIS_CHALLENGE
    known = None
    if farmer is not None:
        puzzle = puzzle_from_record(launcher_id, genesis, farmer.singleton_tip_state, ctx.config.pool.pool_memoization)
        known = KnownV2Tip(farmer.singleton_tip, puzzle)
    return await follow_plotnft(
        ctx.node,
        launcher_id,
        peak_height=peak_height,
        confirmation_security_threshold=0 if live else ctx.config.chain.confirmation_security_threshold,
        genesis_challenge=genesis,
        known=known,
        max_spends=max_spends,
    )


async def refresh_v2_farmer(ctx: PoolContext, farmer: FarmerRecord, peak_height: int) -> bool:
    """The singleton loop's step for a v2 farmer: its tip and membership brought up to the chain; True if anything
    changed. Raises SingletonForged (the loop revokes a member), SingletonNotFound, ChainUnavailable."""
    view = await follow_v2(ctx, farmer.launcher_id, peak_height, farmer=farmer)
    member = view_is_member(view, ctx.config.pool, peak_height)
    state = view.state
    key_moved = view.synthetic_key != farmer.authentication_public_key
    if key_moved:
        # A v2 farmer's authentication key is its PlotNFT's synthetic key as the chain shows it: the old key's
        # tokens and sessions end, and partials must be signed by the new one.
        await ctx.store.update_farmer_settings(farmer.launcher_id, authentication_public_key=view.synthetic_key)
        log.info(
            "farmer %s (PlotNFT v2) has a new synthetic key on chain: %s (was %s)",
            farmer.launcher_id.hex(),
            bytes(view.synthetic_key).hex(),
            bytes(farmer.authentication_public_key).hex(),
        )
    if view.tip == farmer.singleton_tip and state == farmer.singleton_tip_state and member == farmer.is_pool_member:
        return key_moved
    if not await ctx.store.update_singleton(
        farmer.launcher_id, view.tip, state, member, expected_tip=farmer.singleton_tip
    ):
        return key_moved
    if member != farmer.is_pool_member:
        why = "melted" if view.melted else f"{describe_v2(view)} at height {peak_height}"
        log.info("farmer %s is %s a pool member (%s)", farmer.launcher_id.hex(), "now" if member else "no longer", why)
    return True


def describe_v2(view: PlotNFTView) -> str:
    config = view.puzzle.pool_config
    if config is None:
        return "PlotNFT v2 farming to itself"
    where = "leaving (in the waiting room)" if view.puzzle.exiting else "farming"
    return (
        f"PlotNFT v2 {where} to {config.pool_puzzle_hash.hex()} (height lock {config.heightlock}, live coin "
        f"created at {view.coin_height})"
    )
