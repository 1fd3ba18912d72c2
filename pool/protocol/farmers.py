"""Farmer registration (POST /farmer), settings updates (PUT /farmer) and what GET /farmer and GET /login check.

Each check validates a parsed request against the chain and the store and raises PoolProtocolError with the
protocol's error code at the first failed check; only a request that passed every check writes to the store.

What a request costs the pool before it proved anything is bounded. Every signature is checked in the verifier's
threads, within the client address's budgets of failed signatures (signatures.py). POST /farmer reads the launcher's
spend (one look-up, kept) and checks the signature against the owner key of the PlotNFT's first pool state before it
walks the singleton (up to MAX_REQUEST_WALK spends, each a block-generator run in the node): a request that is not
the owner's makes no walk. An owner key that changed since (chia's wallet never changes it, a hand-made travel can)
is found without a walk, one look-up per state the PlotNFT went through (chain/singleton.py, newest_owner_key).
Walks run at most ``limits.concurrent_walks`` at once in the process, one per launcher id; refused ones count against
the client address (``limits.singleton_walks``), and so do the chain reads of requests whose signature did not verify
(``limits.launcher_lookups``): whichever launcher ids a client names, its budget is the same.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from pool.chain.singleton import (
    KnownTip,
    SingletonForged,
    SingletonNotFound,
    SingletonView,
    follow_singleton,
    newest_owner_key,
    read_launcher,
    view_is_member,
)
from pool.chia_adapter import (
    CoinSpend,
    G1Element,
    G2Element,
    PoolErrorCode,
    PoolState,
    PostFarmerPayload,
    PostFarmerRequest,
    PostFarmerResponse,
    PutFarmerPayload,
    PutFarmerRequest,
    PutFarmerResponse,
    Streamable,
    auth_v2_public_key,
    bytes32,
    encode_puzzle_hash,
    streamable,
    uint64,
)
from pool.config import address_prefix_for
from pool.context import PoolContext
from pool.protocol.auth import (
    authentication_message,
    check_authentication_key,
    check_authentication_token,
)
from pool.protocol.difficulty import suggested_difficulty_for
from pool.protocol.errors import PoolProtocolError, one_line
from pool.protocol.payout import parse_payout_instructions
from pool.protocol.rate_limits import RateLimited, RateLimits, SigningKey
from pool.protocol.signatures import Sender, SignatureChecks
from pool.store.abstract import FarmerAlreadyExists
from pool.store.models import FarmerRecord, PendingDifficulty

log = logging.getLogger(__name__)

T = TypeVar("T")

# A farmer can take its block rewards out of the p2_singleton alone after this delay; a shorter one would let it take
# rewards the pool is about to claim.
MINIMUM_DELAY_TIME = 3600
# Most singleton spends one request may make the node read (each costs two look-ups). A PlotNFT absorbs once per block
# its plots win, so this covers a farmer of a few percent of the netspace for months; the singleton loop, which
# follows known farmers from their recorded tip, has no bound.
MAX_REQUEST_WALK = 10_000
# Travels (pool state changes) followed to find an owner key that changed since the first (or recorded) state. Only a
# request whose signature is not the first key's looks: chia's wallet keeps one owner key for a PlotNFT's life.
MAX_OWNER_KEY_TRAVELS = 8
# A launcher id refused after a chain look-up is refused again without one for this long (an anonymous client cannot
# make the node read a PlotNFT over and over). Shorter than the farmer's 300 s retry of POST /farmer.
REFUSAL_MEMORY_SECONDS = 120
REFUSAL_MEMORY_ENTRIES = 10_000
LAUNCHERS_KEPT = 10_000  # launchers read (buried: what they say never changes), the least recently used forgotten
WALKS_BUSY = "the pool is busy following other PlotNFTs on chain; send the request again in a few minutes"
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


class RequestWalks:
    """The chain walks of POST and PUT /farmer (v1 and v2): at most ``limit`` at once in the process, a request
    beyond answered SERVER_EXCEPTION (busy, retry) at once; concurrent requests for the same key share one walk."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.started = 0  # walks started since the process started (tests and operators)
        self._running: dict[object, asyncio.Future[Any]] = {}

    @property
    def running(self) -> int:
        return len(self._running)

    async def run(self, key: object, walk: Callable[[], Awaitable[T]]) -> T:
        task = self._running.get(key)
        if task is None:
            if len(self._running) >= self.limit:
                raise PoolProtocolError(PoolErrorCode.SERVER_EXCEPTION, WALKS_BUSY)
            task = asyncio.ensure_future(walk())
            self._running[key] = task
            self.started += 1
            task.add_done_callback(lambda done: self._finished(key, done))
        # shield: one caller giving up (its client went away) must not cancel the others' walk.
        result: T = await asyncio.shield(task)
        return result

    def _finished(self, key: object, task: asyncio.Future[Any]) -> None:
        self._running.pop(key, None)
        if not task.cancelled():
            task.exception()  # retrieved: callers that gave up must not leave "never retrieved" warnings


class _LookupCharge:
    """The client's launcher look-up budget, taken once by a request when it first reads the chain."""

    def __init__(self, limits: RateLimits, address: str) -> None:
        self._limits = limits
        self._address = address
        self.taken = False

    def take(self) -> None:
        if not self.taken:
            self._limits.take_launcher_lookup(self._address)
            self.taken = True

    def give_back(self) -> None:
        if self.taken:
            self._limits.give_back_launcher_lookup(self._address)
            self.taken = False


class FarmerChecks:
    """POST and PUT /farmer, and the checks of GET /farmer and GET /login, over what one pool process shares: the
    signature checks, the rate limits, the walks, the launchers read and the launcher ids refused recently."""

    def __init__(self, ctx: PoolContext, signatures: SignatureChecks, limits: RateLimits) -> None:
        self._ctx = ctx
        self.signatures = signatures  # and what they counted
        self._limits = limits
        self.walks = RequestWalks(ctx.config.limits.concurrent_walks)
        self._launchers: OrderedDict[bytes32, SingletonView] = OrderedDict()
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
        existing = await ctx.store.get_farmer(launcher_id)
        if existing is not None:
            refuse_banned(existing)
            raise _already_known(launcher_id) if existing.protocol_version == 1 else wrong_version(launcher_id, 2)
        refused = self._refused.get(launcher_id)
        if refused is not None and now < refused[0]:
            raise PoolProtocolError(
                PoolErrorCode.INVALID_SINGLETON, f"{refused[1]} (refused recently; try again later)"
            )
        self.signatures.admit(SigningKey.OWNER, launcher_id, address)

        lookups = _LookupCharge(self._limits, address)
        launcher = await self._launcher(launcher_id, lookups, now)
        message = payload.get_hash()
        owner_key = await self._owner_key(
            launcher_id, launcher, KnownTip(launcher.tip, launcher.state), message, request.signature, lookups, address
        )
        if launcher.delay_time < MINIMUM_DELAY_TIME:
            raise PoolProtocolError(
                PoolErrorCode.DELAY_TIME_TOO_SHORT,
                f"the PlotNFT's delay time is {launcher.delay_time} s; this pool needs at least {MINIMUM_DELAY_TIME} s",
            )

        # Signed by the owner (or a replay of the owner's request to another pool): now the walk, charged to the
        # client until it ends in a registration (so the budget counts the walks that ended in a refusal).
        self._limits.take_singleton_walk(address)
        try:
            singleton, peak_height = await self.walks.run(
                launcher_id, lambda: current_singleton(ctx, launcher_id, launcher=launcher)
            )
            if not view_is_member(singleton, ctx.config.pool, peak_height):
                raise PoolProtocolError(
                    PoolErrorCode.INVALID_SINGLETON,
                    f"the PlotNFT {launcher_id.hex()} does not farm to this pool: join with target puzzle hash "
                    f"{ctx.config.pool.target_puzzle_hash.hex()} and relative lock height "
                    f"{ctx.config.pool.relative_lock_height}, then wait "
                    f"{ctx.config.chain.confirmation_security_threshold} blocks",
                )
        except PoolProtocolError as error:
            if error.code is PoolErrorCode.INVALID_SINGLETON:
                self._remember_refusal(launcher_id, now, error.message)
            else:  # busy: nothing was walked
                self._limits.give_back_singleton_walk(address)
            raise
        await self._signed_by_buried_owner(
            singleton, owner_key, message, request.signature, Sender(launcher_id, address)
        )

        farmer = new_farmer(
            ctx,
            payload,
            payout_puzzle_hash,
            singleton.p2_singleton_puzzle_hash,
            (singleton.delay_time, singleton.delay_puzzle_hash),
            (singleton.tip, singleton.state),
            now,
        )
        try:
            await ctx.store.add_farmer(farmer)
        except FarmerAlreadyExists:  # a concurrent POST of the same farmer won the race
            raise _already_known(launcher_id) from None
        # Registered: what this request spent of the client's budgets was not a refusal.
        self._limits.give_back_singleton_walk(address)
        lookups.give_back()
        log.info(
            "farmer %s joined: payout address %s, authentication key %s, from %s",
            launcher_id.hex(),
            _address(payout_puzzle_hash, ctx.config.chain.network),
            bytes(payload.authentication_public_key).hex(),
            address,
        )
        return PostFarmerResponse(ctx.config.pool.welcome_message)

    async def update(self, request: PutFarmerRequest, address: str) -> PutFarmerResponse:
        """PUT /farmer: the PlotNFT owner changes the authentication key, payout instructions or difficulty.

        A farmer that is leaving (or left) may still update, e.g. to be paid its remaining points. A new difficulty
        takes effect only after ``difficulty.put_cooldown``, and only for partials of signage points from then on (a
        partial is worth the difficulty in force at its signage point), so a farmer cannot change its difficulty and
        then send partials it already has for more points. A new authentication key ends the farmer's browser
        sessions.
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
        signed = await self._put_message(request, farmer.singleton_tip_state.owner_pubkey, Sender(launcher_id, address))
        # The owner key of the state the pool recorded first; if it is not that key's, the key may have changed on
        # chain since (a new owner took the PlotNFT): found without a walk.
        lookups = _LookupCharge(self._limits, address)
        recorded = KnownTip(farmer.singleton_tip, farmer.singleton_tip_state)
        owner_key = await self._owner_key(launcher_id, farmer, recorded, signed, request.signature, lookups, address)
        # The buried state decides (read from the recorded tip, so a short walk).
        singleton, peak_height = await self.walks.run(
            ("put", launcher_id), lambda: current_singleton(ctx, launcher_id, farmer)
        )
        await self._signed_by_buried_owner(
            singleton, owner_key, signed, request.signature, Sender(launcher_id, address)
        )
        lookups.give_back()

        response = await self.apply_settings(farmer, payload, now, address, int(payload.authentication_token))
        member = view_is_member(singleton, ctx.config.pool, peak_height)
        # Compare-and-set on the tip this walk started from: never over a newer view the singleton loop wrote
        # meanwhile.
        await ctx.store.update_singleton(
            launcher_id, singleton.tip, singleton.state, member, expected_tip=farmer.singleton_tip
        )
        return response

    async def apply_settings(
        self, farmer: FarmerRecord, payload: PutFarmerPayload, now: int, address: str, put_token: int | None
    ) -> PutFarmerResponse:
        """What a PUT /farmer (v1 or v2) that passed its authentication changes. ``put_token``: the v1 token that
        becomes the newest accepted (a replay is refused from here on); None for v2 (authenticated by its token)."""
        ctx, launcher_id = self._ctx, farmer.launcher_id
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
            # A change takes effect at the start of a whole second (pool.protocol.partials): at least the next one,
            # so that no signage point seen before this request gets it, even without a cooldown.
            pending = PendingDifficulty(difficulty, now + max(ctx.config.difficulty.put_cooldown, 1), now)
        # Only now, signed by the owner: the token becomes the newest accepted (atomically, so of two concurrent
        # PUTs with the same token one wins), and a replay of this request is refused from here on.
        if put_token is not None and not await ctx.store.accept_put_token(launcher_id, put_token):
            raise _token_not_newer(put_token)
        await ctx.store.update_farmer_settings(
            launcher_id,
            authentication_public_key=new_key if key_changed else None,
            payout_instructions=payout if payout_changed else None,
            pending_difficulty=pending,
            now=now,
        )
        if payout is not None and payout_changed:
            log.info(
                "farmer %s changed its payout address: %s (was %s), from %s",
                launcher_id.hex(),
                _address(payout[1], ctx.config.chain.network),
                _address(farmer.payout_puzzle_hash, ctx.config.chain.network),
                address,
            )
        if new_key is not None and key_changed:
            log.info(
                "farmer %s changed its authentication key: %s (was %s), from %s",
                launcher_id.hex(),
                bytes(new_key).hex(),
                bytes(farmer.authentication_public_key).hex(),
                address,
            )
        return PutFarmerResponse(
            key_changed if new_key is not None else None,
            payout_changed if payout is not None else None,
            difficulty_changed if difficulty is not None else None,
        )

    async def authenticated(
        self,
        method_name: str,
        launcher_id: bytes32,
        token: int,
        signature: G2Element,
        address: str,
        version: int | None = 1,
    ) -> FarmerRecord:
        """GET /farmer and GET /login: token, known farmer, signature of its latest authentication key (see
        ``authentication_key_of``). ``version``: the Pool Protocol version of the route (None: either)."""
        ctx = self._ctx
        check_authentication_token(token, ctx.now(), ctx.config.pool.authentication_token_timeout)
        with self._limits.signed_request(launcher_id) as allowance:  # cheap, before the store and the signature
            self.signatures.admit(SigningKey.AUTHENTICATION, launcher_id, address)
            farmer = await known_farmer(ctx, launcher_id, version)
            message = authentication_message(method_name, launcher_id, ctx.config.pool.target_puzzle_hash, token)
            await self.signatures.check(
                SigningKey.AUTHENTICATION,
                launcher_id,
                address,
                [authentication_key_of(farmer)],
                [message],
                signature,
                "not the farmer's authentication key's",
            )
            allowance.verified()
        return farmer

    async def _launcher(self, launcher_id: bytes32, lookups: _LookupCharge, now: int) -> SingletonView:
        """The launcher as read before (kept), or read now: charged to the client, a refusal remembered."""
        kept = self._launchers.get(launcher_id)
        if kept is not None:
            self._launchers.move_to_end(launcher_id)
            return kept
        lookups.take()
        ctx = self._ctx
        try:
            peak = await ctx.node.peak()
            buried_below = peak.height - ctx.config.chain.confirmation_security_threshold
            launcher = await read_launcher(ctx.node, launcher_id, buried_below)
        except SingletonNotFound as exc:
            error = _singleton_refusal(launcher_id, exc)
            self._remember_refusal(launcher_id, now, error.message)
            raise error from None
        self._launchers[launcher_id] = launcher
        while len(self._launchers) > LAUNCHERS_KEPT:
            self._launchers.popitem(last=False)
        return launcher

    async def _put_message(self, request: PutFarmerRequest, recorded_owner: G1Element, sender: Sender) -> bytes32:
        """What the PUT's signature covers: the classic five fields (chia 2.7.5's farmer), or the whole six-field
        payload (chia 2.7.4's farmer signed ``PutFarmerPayload.get_hash()`` with ``authentication_token_v2`` in it).
        The six fields are taken only when they, and not the five, verify with the owner key recorded; otherwise
        the five go on to the owner key checks (which also look for a newer owner key)."""
        payload = request.payload
        classic = ClassicPutFarmerPayload(
            payload.launcher_id,
            payload.authentication_token,
            payload.authentication_public_key,
            payload.payout_instructions,
            payload.suggested_difficulty,
        ).get_hash()
        assert request.signature is not None  # checked by the caller
        if await self.signatures.verifies([recorded_owner], [classic], request.signature, sender):
            return classic
        six = payload.get_hash()
        if await self.signatures.verifies([recorded_owner], [six], request.signature, sender):
            return six
        return classic

    async def _owner_key(
        self,
        launcher_id: bytes32,
        delay: SingletonView | FarmerRecord,
        since: KnownTip,
        message: bytes,
        signature: G2Element,
        lookups: _LookupCharge,
        address: str,
    ) -> G1Element:
        """The owner key the request is signed by: that of the state ``since`` left the PlotNFT in, or of a newer
        state it travelled to after (looked for only when the signature is not the first's, charged to the client).
        ``delay``: where the PlotNFT's delay time and puzzle hash are read. Raises INVALID_SIGNATURE, counted against
        the client's failure budgets."""
        key = since.state.owner_pubkey
        verified = await self.signatures.verifies([key], [message], signature, Sender(launcher_id, address))
        if not verified:
            try:
                lookups.take()
            except RateLimited:  # refused the look-up, but the signature was checked and failed: that counts
                self.signatures.outcome(SigningKey.OWNER, launcher_id, address, verified=False)
                raise
            ctx = self._ctx
            newer = await newest_owner_key(
                ctx.node,
                launcher_id,
                tip=since.tip,
                state=since.state,
                delay_time=delay.delay_time,
                delay_puzzle_hash=delay.delay_puzzle_hash,
                genesis_challenge=ctx.constants.GENESIS_CHALLENGE,
                max_travels=MAX_OWNER_KEY_TRAVELS,
            )
            if newer != key:
                verified = await self.signatures.verifies([newer], [message], signature, Sender(launcher_id, address))
                key = newer
        self.signatures.outcome(SigningKey.OWNER, launcher_id, address, verified)
        if not verified:
            raise PoolProtocolError(PoolErrorCode.INVALID_SIGNATURE, f"invalid signature: {NOT_THE_OWNER}")
        return key

    async def _signed_by_buried_owner(
        self, singleton: SingletonView, signed_by: G1Element, message: bytes, signature: G2Element, sender: Sender
    ) -> None:
        """The key of the state the pool trusts (buried) must be the one that signed: one found in a travel that
        is not buried yet does not count yet."""
        if singleton.state.owner_pubkey == signed_by:
            return
        if not await self.signatures.verifies([singleton.state.owner_pubkey], [message], signature, sender):
            raise PoolProtocolError(
                PoolErrorCode.INVALID_SIGNATURE,
                f"invalid signature: {NOT_THE_OWNER} (of the state buried "
                f"{self._ctx.config.chain.confirmation_security_threshold} blocks deep)",
            )

    def _remember_refusal(self, launcher_id: bytes32, now: int, message: str) -> None:
        refused = self._refused
        refused.pop(launcher_id, None)
        refused[launcher_id] = (now + REFUSAL_MEMORY_SECONDS, message)
        while len(refused) > REFUSAL_MEMORY_ENTRIES:
            refused.popitem(last=False)  # the oldest refusal


def new_farmer(
    ctx: PoolContext,
    payload: PostFarmerPayload,
    payout_puzzle_hash: bytes32,
    pool_contract: bytes32,
    delay: tuple[int, bytes32],
    tip: tuple[CoinSpend, PoolState],
    now: int,
) -> FarmerRecord:
    """The record of a farmer joining (POST /farmer, POST /v2/farmer): a member, no points yet, its difficulty
    as suggested within the pool's bounds."""
    minimum, default = ctx.config.difficulty.minimum, ctx.config.difficulty.default
    return FarmerRecord(
        launcher_id=payload.launcher_id,
        p2_singleton_puzzle_hash=pool_contract,
        delay_time=delay[0],
        delay_puzzle_hash=delay[1],
        authentication_public_key=payload.authentication_public_key,
        singleton_tip=tip[0],
        singleton_tip_state=tip[1],
        difficulty=suggested_difficulty_for(payload.suggested_difficulty, minimum, default),
        payout_instructions=payload.payout_instructions,
        payout_puzzle_hash=payout_puzzle_hash,
        is_pool_member=True,
        points=0,
        joined_at=now,
    )


def _address(puzzle_hash: bytes32, network: str) -> str:
    """A payout puzzle hash as the farmer's wallet shows it (xch1..., txch1...)."""
    return encode_puzzle_hash(puzzle_hash, address_prefix_for(network))


def _latest_difficulty(farmer: FarmerRecord) -> int:
    """The difficulty the farmer will have once a pending change applies (what a new suggestion compares to)."""
    return farmer.pending_difficulty if farmer.pending_difficulty is not None else farmer.difficulty


async def known_farmer(ctx: PoolContext, launcher_id: bytes32, version: int | None = 1) -> FarmerRecord:
    """The registered farmer; ``version``: the Pool Protocol version of the route asked (None: either), a farmer
    registered with the other one is refused with a message that says so."""
    farmer = await ctx.store.get_farmer(launcher_id)
    if farmer is None:
        post = "POST /farmer" if version != 2 else "POST /v2/farmer"
        raise PoolProtocolError(
            PoolErrorCode.FARMER_NOT_KNOWN, f"farmer {launcher_id.hex()} is not known to this pool: {post} first"
        )
    refuse_banned(farmer)
    if version is not None and farmer.protocol_version != version:
        raise wrong_version(launcher_id, farmer.protocol_version)
    return farmer


def wrong_version(launcher_id: bytes32, registered: int) -> PoolProtocolError:
    """A launcher registered with one Pool Protocol version, asked about on the other's routes."""
    paths = "the /v2/ paths" if registered == 2 else "the paths without /v2/"
    return PoolProtocolError(
        PoolErrorCode.REQUEST_FAILED,
        f"farmer {launcher_id.hex()} is registered with Pool Protocol v{registered} (a PlotNFT v{registered}): "
        f"use {paths}",
    )


def authentication_key_of(farmer: FarmerRecord) -> G1Element:
    """The key GET /farmer (v1) and GET /login sign with: a v1 farmer's authentication key; for a v2 farmer, the
    unhardened child its farmer derives from the PlotNFT's synthetic key."""
    if farmer.protocol_version == 2:
        return auth_v2_public_key(farmer.authentication_public_key)
    return farmer.authentication_public_key


def refuse_banned(farmer: FarmerRecord) -> None:
    """A farmer the operator banned is refused from its record alone, before any signature is checked (a banned
    farmer's requests cost the pool nothing more). REQUEST_FAILED: FARMER_NOT_KNOWN would make chia's farmer
    register again and again, and the message is what its log shows."""
    if farmer.banned_at is not None:
        raise PoolProtocolError(
            PoolErrorCode.REQUEST_FAILED,
            one_line(f"banned by the pool operator: {farmer.ban_reason or 'no reason given'}"),
        )


async def current_singleton(
    ctx: PoolContext, launcher_id: bytes32, farmer: FarmerRecord | None = None, launcher: SingletonView | None = None
) -> tuple[SingletonView, int]:
    """The singleton's buried state and the peak height it was read at (continuing from a known farmer's recorded
    tip, which saves walking every reward claim again; ``launcher``: its launcher as read already). Raises
    INVALID_SINGLETON."""
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
            launcher=launcher,
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
