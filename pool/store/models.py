"""Records kept by the store. Plain frozen dataclasses; amounts are integer mojos, times are integer unix seconds."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from pool.chia_adapter import CoinSpend, G1Element, PoolState, bytes32


class PartialStatus(str, Enum):
    PENDING = "pending"  # accepted by POST /partial, not yet credited
    CONFIRMED = "confirmed"  # points credited to the farmer (exactly once)
    REJECTED = "rejected"  # failed the re-check after the confirmation delay; reason recorded


class ClaimStatus(str, Enum):
    SUBMITTED = "submitted"  # absorb spend pushed to the node
    # The reward coin's spend is buried and paid the pool's target (checked on chain: the absorb's payment coin, tied
    # to this reward coin). Only now is the reward credited.
    CONFIRMED = "confirmed"
    # The absorb was refused or dropped: the coin is claimed again by a later scan while it is unspent; if a spend of
    # it lands after all, it is settled CONFIRMED or LOST by the same check as a submitted claim.
    FAILED = "failed"
    # The reward coin's spend is buried and did NOT pay the pool (its owner's delayed path, or an absorb into another
    # pool after leaving): never credited, shown in the books.
    LOST = "lost"


class RoundStatus(str, Enum):
    OPEN = "open"  # recorded, some batches not yet confirmed
    DONE = "done"  # every batch confirmed


class BatchStatus(str, Enum):
    PENDING = "pending"  # recorded, no transaction yet
    SUBMITTED = "submitted"  # a signed transaction was recorded (before being pushed) and pushed
    CONFIRMED = "confirmed"  # the transaction is on chain


@dataclass(frozen=True)
class FarmerRecord:
    launcher_id: bytes32
    p2_singleton_puzzle_hash: bytes32
    delay_time: int
    delay_puzzle_hash: bytes32
    authentication_public_key: G1Element
    singleton_tip: CoinSpend  # the most recent (buried) spend of the farmer's singleton that we know of
    singleton_tip_state: PoolState  # the pool state in force after that spend
    difficulty: int
    payout_instructions: str  # exactly as the farmer sent it (the farmer compares it with its own, case-insensitive)
    payout_puzzle_hash: bytes32  # the same instructions decoded: where payments go
    is_pool_member: bool
    points: int  # confirmed points not yet consumed by a payout round
    joined_at: int
    # A difficulty suggested with PUT /farmer takes effect only at pending_difficulty_at (cooldown against replay).
    pending_difficulty: int | None = None
    pending_difficulty_at: int | None = None
    owed: int = 0  # mojos shared out to this farmer and not yet paid (paid once at least payouts.min_payment)
    # The authentication token of the last PUT /farmer accepted: a PUT needs a newer one (no replay).
    last_put_token: int | None = None
    # When ``difficulty`` took effect (0: it is the farmer's first). Earlier difficulties are in the store's history
    # (AbstractPoolStore.difficulty_at): a partial is worth the difficulty in force at its signage point.
    difficulty_since: int = 0
    # Set by the operator (``farmers ban``): every request of the farmer is refused and its partials earn nothing
    # more; what it is owed stays owed and is paid as before.
    banned_at: int | None = None
    ban_reason: str | None = None

    @property
    def protocol_version(self) -> int:
        """The Pool Protocol the farmer registered with: 2 for a PlotNFT v2 (its state is recorded as version 2, see
        pool.chain.plotnft_v2.recorded_state), else 1."""
        return 2 if int(self.singleton_tip_state.version) == 2 else 1

    def difficulty_at(self, now: int) -> int:
        """The difficulty in force at ``now``, counting a pending change whose cooldown has passed."""
        if self.pending_difficulty is not None and self.pending_difficulty_at is not None:
            if now >= self.pending_difficulty_at:
                return self.pending_difficulty
        return self.difficulty

    def recorded_difficulty_at(self, moment: int) -> int | None:
        """The difficulty in force at ``moment`` if this record alone tells it; None when it changed since then
        (the store's history tells). While a change is pending nothing else changes the difficulty (the adjustment
        waits, a new PUT first applies a due one), so the pending change is in force from its time on."""
        if self.pending_difficulty is not None and self.pending_difficulty_at is not None:
            if moment >= self.pending_difficulty_at:
                return self.pending_difficulty
        return self.difficulty if moment >= self.difficulty_since else None


class FarmerChangeKind(str, Enum):
    """What a row of a farmer's history records (``old`` and ``new`` as the kind says)."""

    JOINED = "joined"  # POST /farmer: new is the payout instructions
    PAYOUT_INSTRUCTIONS = "payout_instructions"  # PUT /farmer: old -> new instructions, as sent
    AUTHENTICATION_KEY = "authentication_key"  # PUT /farmer: old -> new key, hex
    DIFFICULTY_SET = "difficulty_set"  # the operator set the difficulty: old -> new
    BANNED = "banned"  # the operator banned the farmer: new is the reason
    UNBANNED = "unbanned"  # the operator lifted the ban: old is the reason it had
    # The farmer's own settings on its page: old -> new as text, None for the pool's default.
    MIN_PAYOUT = "min_payout"  # mojos
    DIFFICULTY_PRESET = "difficulty_preset"
    WEBHOOK_URL = "webhook_url"


@dataclass(frozen=True)
class FarmerChange:
    """One change of a farmer's settings or standing, kept for good and written in the transaction that made it."""

    launcher_id: bytes32
    at: int
    kind: FarmerChangeKind
    old: str | None = None
    new: str | None = None
    id: int | None = None

    def describe(self) -> str:
        """The change as a sentence (the farmer's page and the operator's commands say the same)."""
        kind = self.kind
        if kind is FarmerChangeKind.JOINED:
            return f"joined the pool, payout instructions {self.new}"
        if kind is FarmerChangeKind.PAYOUT_INSTRUCTIONS:
            return f"payout instructions changed from {self.old} to {self.new}"
        if kind is FarmerChangeKind.AUTHENTICATION_KEY:
            return f"authentication key changed from {self.old} to {self.new}"
        if kind is FarmerChangeKind.DIFFICULTY_SET:
            return f"difficulty set by the pool operator from {self.old} to {self.new}"
        if kind is FarmerChangeKind.BANNED:
            return f"banned by the pool operator: {self.new}"
        if kind in SETTING_KINDS:
            return f"{kind.value} set by the farmer from {_or_default(self.old)} to {_or_default(self.new)}"
        return f"ban lifted by the pool operator (it was: {self.old})"


SETTING_KINDS = (FarmerChangeKind.MIN_PAYOUT, FarmerChangeKind.DIFFICULTY_PRESET, FarmerChangeKind.WEBHOOK_URL)
"""The changes a farmer makes on its settings form (the rest of its history comes from the protocol or the operator)."""


def _or_default(value: str | None) -> str:
    return "the pool's default" if value is None else value


@dataclass(frozen=True)
class PaymentLine:
    """A payment as the operator lists it: with its round's time and its batch's transaction."""

    payment: Payment
    created_at: int  # when its round was recorded
    batch_status: BatchStatus
    tx_id: bytes32 | None  # the batch's current transaction (None while PENDING)
    confirmed_height: int | None


@dataclass(frozen=True)
class DailyPartials:
    """Partials of one farmer on one UTC day with one outcome (as PartialCount names outcomes), pruned ones
    included."""

    day: int  # unix time of the day's start
    launcher_id: bytes32
    outcome: str
    count: int
    points: int


@dataclass(frozen=True)
class PendingDifficulty:
    """A difficulty asked for with PUT /farmer at ``asked_at``, in force from ``effective_at`` (after the cooldown).

    It replaces a change asked for earlier that is not yet in force; one already in force by ``asked_at`` stays in
    the difficulty's history."""

    difficulty: int
    effective_at: int
    asked_at: int


@dataclass(frozen=True)
class MemberDifficulty:
    """What the difficulty loop needs of a pool member (not its whole record): its difficulty, the one it asked for
    (pending until its cooldown is over), when it joined, and the difficulty it fixed on its page, if any."""

    launcher_id: bytes32
    difficulty: int
    pending_difficulty: int | None
    joined_at: int
    preset: int | None


@dataclass(frozen=True)
class DifficultyAdjustment:
    """A change of the difficulty loop: ``difficulty`` replaces ``expected`` unless the farmer changed meanwhile."""

    launcher_id: bytes32
    expected: int
    difficulty: int


@dataclass(frozen=True)
class PartialsSummary:
    """All that the adjustment needs of a farmer's partials (the store computes it in one query for every farmer;
    pool.protocol.difficulty.summarize from a list).

    ``newest``: (received_at, difficulty) of the newest partial, the highest difficulty among the newest ones.
    ``run_count`` and ``run_oldest``: how many partials the newest run at the current difficulty within the window
    holds, and when its oldest one arrived (see pool.protocol.difficulty.summarize).
    """

    newest: tuple[int, int] | None
    run_count: int = 0
    run_oldest: int | None = None


class NotAdded(str, Enum):
    """Why ``record_partials`` did not add a partial."""

    DUPLICATE = "duplicate"  # its proof was received before (or earlier in the same batch): credited once
    UNKNOWN_FARMER = "unknown farmer"


@dataclass(frozen=True)
class PartialRefusal:
    """A partial refused at intake after its farmer's signature checked out (shown on the farmer's page)."""

    launcher_id: bytes32
    received_at: int
    reason: str  # the error code's name


@dataclass(frozen=True)
class PartialRecord:
    launcher_id: bytes32
    proof_hash: bytes32  # identity of the proof: the same proof is credited once
    sp_hash: bytes32
    end_of_sub_slot: bool
    harvester_id: bytes32
    received_at: int
    difficulty: int  # the farmer's difficulty at the partial's signage point = the points it is worth
    status: PartialStatus = PartialStatus.PENDING
    reject_reason: str | None = None
    # Settled without its re-check: the node no longer knew its signage point because the pool fell behind. Credited
    # (CONFIRMED) or not (REJECTED) as partials.stale_partials says.
    stale: bool = False
    id: int | None = None  # assigned by the store


@dataclass(frozen=True)
class RewardClaim:
    coin_id: bytes32
    launcher_id: bytes32
    amount: int
    coin_height: int  # height at which the reward coin was created
    spend_bundle_name: bytes32 | None
    status: ClaimStatus
    submitted_at: int
    submitted_height: int
    confirmed_height: int | None = None
    error: str | None = None
    # Blockchain fee of the absorb transaction charged to the pool's fee share (and not given back): the whole fee of
    # a bundle that absorbs several coins is carried by one of its claims; the others carry 0. Once the fee spend's
    # fate is known on chain (``fee_settled``) a fee that never landed is given back and this becomes 0.
    fee: int = 0
    fee_spend_bundle: bytes | None = None  # the wallet's signed fee spend (its coins are reserved until it settles)
    fee_settled: bool = True  # False while the fee spend may still land (only for claims with a fee spend)
    # Fees of earlier claims of the same coin, replaced when they failed, whose fee spends landed: charged for good.
    earlier_fees: int = 0
    # The network's difficulty and sub-slot iterations when the claim was recorded (None: not known, as for claims
    # recorded before the pool kept them): what a block took on average then, for the round's effort.
    network_difficulty: int | None = None
    network_sub_slot_iters: int | None = None
    # The timestamp of the transaction block that created the reward coin (None: not known): where its round ends.
    coin_timestamp: int | None = None


@dataclass(frozen=True)
class ClaimFeeVersion:
    """One fee spend recorded for the absorb of a claim (the claim that carries the absorb's fee), kept for good: an
    absorb stuck in the mempool is replaced by one with a new fee spend that spends every coin of the previous one
    (and more), so at most one of them lands, and whichever does is the fee charged. ``settled`` once the chain
    showed which one landed, or that none can."""

    coin_id: bytes32  # the reward coin of the claim that carries the fee
    version: int  # 1 for the first fee spend, then one more per replacement
    spend_bundle: bytes  # the wallet's signed fee spend
    fee: int
    created_at: int
    height: int | None  # the chain's peak when it was recorded
    settled: bool = False


@dataclass(frozen=True)
class Distribution:
    """Confirmed reward money shared out: the pool fee to the pool's share, the rest to farmers' owed balances."""

    created_at: int
    scheme: str
    total: int  # mojos taken from the undistributed remainder
    pool_fee: int  # floor(total * fee): added to the pool's fee share
    farmer_total: int  # added to farmers' owed balances
    remainder: int  # rounding left undistributed (total == pool_fee + farmer_total; remainder is what stayed behind)
    id: int | None = None


@dataclass(frozen=True)
class DistributionShare:
    launcher_id: bytes32
    amount: int  # mojos added to the farmer's owed balance
    points: int  # points taken from the farmer's balance in exchange
    distribution_id: int | None = None


@dataclass(frozen=True)
class PayoutRound:
    """Owed balances being paid: a set of payment transactions (batches) made together."""

    created_at: int
    scheme: str
    total: int  # mojos leaving the pool in this round: farmer_total + pool_fee + blockchain_fees
    pool_fee: int  # mojos paid to the fee address (from the pool's fee share)
    blockchain_fees: int  # mojos of transaction fees of all batches (from the pool's fee share)
    farmer_total: int  # mojos paid to farmers (from their owed balances)
    remainder: int = 0  # kept for older rounds, which distributed and paid in one step; 0 since the ledger
    status: RoundStatus = RoundStatus.OPEN
    id: int | None = None


@dataclass(frozen=True)
class Payment:
    """One addition of a payout round: to a farmer (launcher_id set) or the pool fee (launcher_id None)."""

    puzzle_hash: bytes32
    amount: int
    launcher_id: bytes32 | None
    points: int  # points consumed by older rounds; 0 since the ledger (points become owed mojos at distribution)
    batch_index: int  # which batch (0-based, within the round) pays it
    round_id: int | None = None
    id: int | None = None


@dataclass(frozen=True)
class BatchVersion:
    """One signed transaction of a batch, kept for good: every version ever recorded may land (one pushed long ago
    may still sit in some node's mempool), so all of them count when the batch's payment is looked for."""

    batch_id: int
    version: int  # 1 for the first transaction, then one more per replacement
    tx_id: bytes32
    spend_bundle: bytes
    fee: int
    created_at: int
    height: int | None  # the chain's peak when it was recorded


@dataclass(frozen=True)
class PaymentBatch:
    round_id: int
    index: int
    fee: int  # blockchain fee of this batch's transaction
    status: BatchStatus = BatchStatus.PENDING
    tx_id: bytes32 | None = None
    spend_bundle: bytes | None = None  # the signed transaction, recorded before it is pushed, so it can be re-pushed
    confirmed_height: int | None = None
    updated_at: int = 0
    submitted_height: int | None = None  # chain height when its current transaction was recorded (fee bumps)
    id: int | None = None


def batch_holder(batch_id: int) -> str:
    """How a payout batch is named among the holders of reserved coins."""
    return f"batch {batch_id}"


def claim_holder(coin_id: bytes32) -> str:
    """How a reward claim's fee spend is named among the holders of reserved coins."""
    return f"claim {coin_id.hex()}"


class LedgerKind(str, Enum):
    """What a ledger entry records. Amounts are positive; the kind says which way the mojos move."""

    CLAIM = "claim"  # a reward claim buried deep enough: confirmed claims -> undistributed
    DISTRIBUTION_POOL_FEE = "distribution_pool_fee"  # undistributed -> pool fee share
    DISTRIBUTION_SHARE = "distribution_share"  # undistributed -> a farmer's owed balance
    PAYMENT = "payment"  # a farmer's owed balance -> a payment transaction
    POOL_FEE_PAYMENT = "pool_fee_payment"  # pool fee share -> a payment to the fee address
    BATCH_FEE = "batch_fee"  # pool fee share -> blockchain fee of a payment transaction
    BATCH_FEE_REFUND = "batch_fee_refund"  # an unspent part of a batch's fee back to the pool fee share
    CLAIM_FEE = "claim_fee"  # pool fee share -> blockchain fee of an absorb
    CLAIM_FEE_REFUND = "claim_fee_refund"  # the fee of an absorb that can no longer land back to the pool fee share
    FEE_FUNDING = (
        "fee_funding"  # the operator's own coins in the wallet -> pool fee share (python -m pool ledger fund-fees)
    )


@dataclass(frozen=True)
class LedgerEntry:
    created_at: int
    kind: LedgerKind
    amount: int
    launcher_id: bytes32 | None = None
    reference: str = ""  # what it is about: a coin id, "round 3 batch 0", "distribution 7"
    id: int | None = None


@dataclass(frozen=True)
class LedgerSummary:
    """Where every mojo of the confirmed claims is, each figure read from its own table (the payments' two sums from
    the running totals their round's transaction keeps).

    Invariant (``balanced``): confirmed_claims + operator_funding == farmer_payments + owed + pool_fee_share
    + pool_fee_payments + blockchain_fees + undistributed (less ``pre_ledger_excess``: what rounds made before the
    ledger existed paid beyond the claims, from the wallet's balance; fixed at the upgrade, 0 for a pool that started
    with the ledger). ``operator_funding`` is what the operator moved from its own coins in the wallet into the pool
    fee share, so that fees can be paid before the first distribution. ``lost_rewards`` is outside the sum: rewards
    won by members that never reached the pool."""

    confirmed_claims: int  # sum of CONFIRMED reward claims
    farmer_payments: int  # every payment to a farmer ever recorded (confirmed + in flight)
    farmer_payments_in_flight: int  # of which in batches not yet confirmed
    owed: int  # farmers' owed balances
    pool_fee_share: int  # the pool's fee share not yet paid out (blockchain fees come out of it)
    pool_fee_payments: int  # paid (or being paid) to the fee address
    blockchain_fees: int  # fees of payment batches and of absorbs, as charged (a fee that never landed is given back)
    undistributed: int  # confirmed claims not yet shared out (includes rounding remainders)
    pre_ledger_excess: int = 0
    lost_rewards: int = 0  # rewards won by members but spent elsewhere (LOST claims): never credited, not in the sum
    operator_funding: int = 0  # the operator's own coins given to the pool fee share (FEE_FUNDING entries)

    @property
    def accounted(self) -> int:
        return (
            self.farmer_payments
            + self.owed
            + self.pool_fee_share
            + self.pool_fee_payments
            + self.blockchain_fees
            + self.undistributed
        )

    @property
    def balanced(self) -> bool:
        return self.accounted == self.confirmed_claims + self.pre_ledger_excess + self.operator_funding

    @property
    def wallet_should_hold(self) -> int:
        """Mojos of the ledger that are still in the pool wallet (in-flight payments excluded)."""
        return self.owed + self.pool_fee_share + self.undistributed


@dataclass(frozen=True)
class StateFigures:
    """What the operator's gauges show of the store, each figure an SQL aggregate (no row is loaded to count it)."""

    farmers: dict[bool, int]  # by is_pool_member
    points: int  # unpaid points of all farmers
    pending_partials: int
    claims: dict[ClaimStatus, tuple[int, int]]  # (count, mojos) by status; absent statuses have none
    rounds: dict[RoundStatus, int]


@dataclass(frozen=True)
class HarvesterFigures:
    """One harvester's partials of a farmer over a time span (its id as the farmer sends it with each partial)."""

    harvester_id: bytes32
    accepted: int
    rejected: int  # found invalid after intake (refusals at intake are not kept per harvester)
    points: int  # of the accepted partials
    last_seen: int  # when its newest partial was received


@dataclass(frozen=True)
class PartialCount:
    """Partials of one hour with one outcome, for charts: ``outcome`` is "pending" or "confirmed" (accepted), or the
    reason of a refusal (an error code name at intake, or the reason of a later rejection)."""

    hour: int  # unix time of the start of the hour
    outcome: str
    count: int
    points: int  # the partials' difficulty summed (what accepted ones are worth)


@dataclass(frozen=True)
class TargetProof:
    """The pool's wallet signed ``message`` with the key of the target address (chia's CHIP-0002 message signing): it
    can spend what is absorbed there. Recorded before the first absorb; absorbs wait while there is none."""

    target_puzzle_hash: bytes32
    address: str
    fingerprint: int | None  # the wallet key that signed
    public_key: bytes  # the address's synthetic public key (G1)
    signature: bytes  # G2
    signing_mode: str
    message: str
    proven_at: int


@dataclass(frozen=True)
class WebSession:
    """A farmer's browser session, opened by a signed GET /login; the cookie carries the token, the store its hash."""

    token_hash: bytes32
    launcher_id: bytes32
    created_at: int
    expires_at: int


@dataclass(frozen=True)
class PoolFigures:
    """The pool-wide figures of the public page, each an aggregate of the database (no row is read into the pool)."""

    members: int  # farmers whose PlotNFT farms to the pool now
    points: int  # every farmer's points not yet shared out
    blocks_won: int  # reward claims not failed
    rewards_claimed: int  # mojos of the confirmed claims
    paid_to_farmers: int  # mojos of farmer payments in confirmed batches


@dataclass(frozen=True)
class FarmerPayout:
    """One payment to a farmer as its page shows it: with its round's time and its batch's state."""

    id: int  # the payment's: the page before it shows older ones
    created_at: int  # the round's
    amount: int
    status: BatchStatus
    tx_id: bytes32 | None
    confirmed_height: int | None


@dataclass(frozen=True)
class FarmerEarning:
    """A farmer's share of one distribution: points turned into owed mojos."""

    distribution_id: int
    created_at: int
    points: int
    amount: int


@dataclass(frozen=True)
class RoundSummary:
    """A payout round as the public page lists it: how many farmers it pays, its transactions."""

    round: PayoutRound
    farmers_paid: int
    tx_ids: list[bytes32]


@dataclass(frozen=True)
class SingletonPosition:
    """What the singleton loop needs of a farmer to tell whether its PlotNFT moved: the recorded tip and its pool
    state as stored (serialized: decoding them costs more than the check that mostly finds nothing moved), the
    launcher's delay, and the recorded membership."""

    launcher_id: bytes32
    p2_singleton_puzzle_hash: bytes32
    delay_time: int
    delay_puzzle_hash: bytes32
    singleton_tip: bytes  # a CoinSpend, serialized
    singleton_tip_state: bytes  # a PoolState, serialized
    is_pool_member: bool

    @property
    def protocol_version(self) -> int:
        """As FarmerRecord.protocol_version: a PoolState's version is its first byte."""
        return 2 if self.singleton_tip_state[:1] == b"\x02" else 1


@dataclass(frozen=True)
class FarmerStanding:
    """Whether a farmer's partials may still earn: what the confirmation loop needs of it."""

    is_pool_member: bool
    banned_at: int | None


@dataclass(frozen=True)
class OwedBalance:
    launcher_id: bytes32
    owed: int
    payout_puzzle_hash: bytes32


class NotificationKind(str, Enum):
    """What a notification tells; its value is the ``kind`` its receivers see."""

    BLOCK_WON = "block-won"  # a reward coin of a farmer's block was found and its absorb recorded
    REWARD_CONFIRMED = "reward-confirmed"  # the absorb is buried and paid the pool: the reward is credited
    PAYOUT_SENT = "payout-sent"  # a payment batch's transaction was recorded and pushed
    PAYOUT_CONFIRMED = "payout-confirmed"  # the batch's transaction is on chain
    FARMER_SILENT = "farmer-silent"  # no partial from a member farmer for notifications.silent_after_hours
    PAYOUT_INSTRUCTIONS_CHANGED = "payout-instructions-changed"  # PUT /farmer changed where payments go
    BOOKS_UNBALANCED = "books-unbalanced"  # the ledger's invariant does not hold
    BOOKS_BALANCED = "books-balanced"  # it holds again after an unbalanced episode


@dataclass(frozen=True)
class NewNotification:
    """An event the leader detected itself (a silent farmer), before the outbox holds it: ``idempotency_key`` names
    the event, and an event whose key the outbox holds already is the same event."""

    kind: NotificationKind
    idempotency_key: str
    payload: dict[str, object]
    launcher_id: bytes32 | None = None
    to_operator: bool = True


@dataclass(frozen=True)
class Notification:
    """An event in the outbox, written in the transaction of the change it tells (or by the leader's checks) and
    delivered at least once to each of its destinations; ``idempotency_key`` names the event, so a receiver that
    keeps the keys it accepted sees it once."""

    id: int
    idempotency_key: str
    kind: NotificationKind
    launcher_id: bytes32 | None  # the farmer it concerns (its webhook is a destination), None for the pool's own
    to_operator: bool  # also sent to the operator's webhooks (a farmer's own payment is not)
    payload: dict[str, object]  # JSON: what the event's receivers need (amounts in mojos, ids in hex)
    created_at: int
    attempts: int  # delivery passes that left some destination undelivered
    next_attempt_at: int
    done_at: int | None  # delivered everywhere, or given up after notifications.max_attempts
    last_error: str | None
    delivered_to: frozenset[str] = frozenset()  # destinations that answered 2xx


@dataclass(frozen=True)
class FarmerSettings:
    """What a farmer chose on its page; None: the pool's default."""

    launcher_id: bytes32
    min_payout: int | None = None  # mojos, at least payouts.min_payment
    difficulty_preset: int | None = None  # a fixed difficulty within the pool's bounds instead of the adjustment
    webhook_url: str | None = None  # where the farmer's notifications go
    updated_at: int = 0
