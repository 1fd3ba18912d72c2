"""The storage contract. Every implementation passes the same contract tests (tests/store/)."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Collection, Sequence
from contextvars import ContextVar

from pool.chia_adapter import CoinSpend, G1Element, PoolState, bytes32
from pool.store.models import (
    BatchStatus,
    BatchVersion,
    ClaimFeeVersion,
    ClaimStatus,
    DailyPartials,
    DifficultyAdjustment,
    Distribution,
    DistributionShare,
    FarmerChange,
    FarmerEarning,
    FarmerPayout,
    FarmerRecord,
    FarmerSettings,
    FarmerStanding,
    HarvesterFigures,
    LedgerEntry,
    LedgerSummary,
    MemberDifficulty,
    NewNotification,
    NotAdded,
    Notification,
    NotificationKind,
    OwedBalance,
    PartialCount,
    PartialRecord,
    PartialRefusal,
    PartialsSummary,
    PartialStatus,
    Payment,
    PaymentBatch,
    PaymentLine,
    PayoutRound,
    PendingDifficulty,
    PoolFigures,
    RewardClaim,
    RoundSummary,
    SingletonPosition,
    StateFigures,
    TargetProof,
    WebSession,
)

# True in the background loops' tasks (pool.loops.runner sets it): the store may give their reads connections of their
# own, so that a loop's long read (every member's summary, the PPLNS window: a tenth of a second and more at ten
# thousand farmers) never makes a page or a partial wait for a connection.
BACKGROUND_READS: ContextVar[bool] = ContextVar("background_reads", default=False)

DIFFICULTY_HISTORY_SECONDS = 86_400
"""How long past difficulties stay in the history: far longer than a partial may take after its signage point
(``partials.time_limit``, at most 300 s)."""


class StoreError(Exception):
    """Base class of the store's own errors."""


class FarmerAlreadyExists(StoreError):
    pass


class FarmerNotFound(StoreError):
    pass


class RoundAlreadyOpen(StoreError):
    """A payout round is still open: a new one must wait until every batch of the old one confirmed."""


class InsufficientFunds(StoreError):
    """A ledger balance (undistributed, the pool fee share, a farmer's owed balance) would go below zero; nothing
    was written."""


class CoinReserved(StoreError):
    """A coin the transaction would spend is held by another transaction of the pool that may still land; nothing was
    written (the reward and payout loops never spend the same coin)."""


class StaleTransaction(StoreError):
    """A batch's transaction was replaced meanwhile (by another leader, or a concurrent iteration): the replacement
    built from the older one is not recorded, and must not be pushed."""


class NotLeader(StoreError):
    """A money write by a process that is no longer the pool's leader: another one took over since (its epoch is
    newer). Nothing was written."""


class SchemaChanged(NotLeader):
    """A money write (or taking leadership) by code older than the database's schema: another version of the pool
    migrated it meanwhile (a rolling upgrade). Nothing was written; this process must not lead again."""


class StoreMigrated(StoreError):
    """The database was copied to another store by ``migrate-store`` and must not be used any more."""


def check_new_partial(partial: PartialRecord) -> None:
    if partial.status is not PartialStatus.PENDING:
        # A partial enters as pending; crediting happens only through confirm_partial.
        raise StoreError(f"a new partial must be pending, got {partial.status.value}")


class AbstractPoolStore(ABC):
    """Durable pool state. Each method is one transaction: it happens completely or not at all."""

    # -- lifecycle ---------------------------------------------------------------------------------------------
    @abstractmethod
    async def open(self) -> None:
        """Connect and bring the schema up to the current version (forward migrations)."""

    @abstractmethod
    async def close(self) -> None: ...

    @abstractmethod
    async def schema_version(self) -> int: ...

    # -- leadership ----------------------------------------------------------------------------------------------
    @abstractmethod
    async def leader_alive(self, now: int) -> bool:
        """The leader says it still leads, at ``now``: recorded only if this store object took the newest epoch
        (False otherwise: a stale leader's word does not count)."""

    @abstractmethod
    async def leader_seen_at(self) -> int:
        """When the leader last said it leads (0: never); read by every process for its readiness."""

    @abstractmethod
    async def take_leadership(self, holder: str) -> int:
        """Called by a process that just became the pool's leader, before any loop runs: a new, higher leader epoch
        is recorded and returned, and from now on every money write of THIS store object checks in its own
        transaction that the epoch is still the newest and the schema still the one this code writes (NotLeader
        otherwise). A leader that lost its lock without noticing can therefore write nothing once another took over.
        Writes of a store object that never took leadership (HTTP-only processes, tools, tests) are not fenced."""

    @abstractmethod
    async def leader_epoch(self) -> int:
        """The newest leader epoch recorded (0 before any leader)."""

    # -- farmers -----------------------------------------------------------------------------------------------
    @abstractmethod
    async def add_farmer(self, farmer: FarmerRecord) -> None:
        """Insert a new farmer; raises FarmerAlreadyExists if the launcher id is known."""

    @abstractmethod
    async def get_farmer(self, launcher_id: bytes32) -> FarmerRecord | None: ...

    @abstractmethod
    async def list_farmers(self, members_only: bool = False) -> list[FarmerRecord]: ...

    @abstractmethod
    async def singleton_positions(self, after: bytes32 | None, limit: int) -> list[SingletonPosition]:
        """At most ``limit`` farmers by launcher id, from the first one after ``after`` (from the first if None), with
        only what the singleton loop needs to tell whether a farmer's PlotNFT moved (its tip and state serialized,
        nothing decoded): a pass over every farmer, a page at a time, that costs the event loop little for those
        whose singleton has not moved."""

    @abstractmethod
    async def farmer_standings(self, launcher_ids: Collection[bytes32]) -> dict[bytes32, FarmerStanding]:
        """The membership and ban of each of these farmers that exists, in a few statements (no record decoded): a
        batch of partials of a thousand farmers is re-checked without a thousand look-ups."""

    @abstractmethod
    async def update_farmer_settings(
        self,
        launcher_id: bytes32,
        *,
        authentication_public_key: G1Element | None = None,
        payout_instructions: tuple[str, bytes32] | None = None,
        pending_difficulty: PendingDifficulty | None = None,
        now: int | None = None,
    ) -> None:
        """Change what PUT /farmer may change. ``payout_instructions`` is (as sent, decoded puzzle hash). None leaves
        a field as it is. A new ``authentication_public_key`` ends the farmer's browser sessions (they were opened
        with the old key). ``pending_difficulty`` enters the difficulty's history at its time (see difficulty_at).
        A new key or new payout instructions enter the farmer's history (``farmer_history``) at ``now`` (the
        store's clock if None), old and new, in the same transaction. Raises FarmerNotFound."""

    @abstractmethod
    async def set_difficulty(self, launcher_id: bytes32, difficulty: int, now: int) -> None:
        """The operator sets the difficulty in force from ``now`` on; clears a pending difficulty. The change enters
        the difficulty's history and the farmer's history (from what was current or pending), in one transaction.
        Raises FarmerNotFound."""

    @abstractmethod
    async def adjust_difficulty(self, launcher_id: bytes32, expected: int, difficulty: int, now: int) -> bool:
        """The difficulty loop's change, in force from ``now`` on: set ``difficulty`` only if the current one is still
        ``expected`` and no difficulty is pending, so that it never overwrites a change the farmer made meanwhile
        (PUT /farmer). Returns whether it changed. Raises FarmerNotFound."""

    @abstractmethod
    async def adjust_difficulties(
        self, adjustments: Sequence[DifficultyAdjustment], effective_at: int, due: Sequence[bytes32] = (), now: int = 0
    ) -> list[bytes32]:
        """A pass of the difficulty loop, in one transaction: the pending difficulties of ``due`` whose time has come
        (at ``now``) become current, then each adjustment is made as ``adjust_difficulty`` makes it, in force from
        ``effective_at``. Returns the farmers whose difficulty the adjustments changed (unknown ones are skipped)."""

    @abstractmethod
    async def member_difficulties(
        self, first: bytes32 | None = None, end: bytes32 | None = None
    ) -> list[MemberDifficulty]:
        """Every pool member's difficulty state and preset (the difficulty loop's reading, no record decoded); only
        those whose launcher id is from ``first`` (inclusive) to ``end`` (exclusive), where given."""

    @abstractmethod
    async def apply_due_difficulty(self, launcher_id: bytes32, now: int) -> int:
        """Make a pending difficulty whose time has come the current one; returns the difficulty in force."""

    @abstractmethod
    async def difficulty_at(self, launcher_id: bytes32, moment: int) -> int:
        """The farmer's difficulty in force at ``moment`` (unix seconds; a change takes effect at the start of its
        second), from the history every difficulty change writes (the first difficulty for any earlier moment).
        The history is kept for at least DIFFICULTY_HISTORY_SECONDS before the newest change. Raises
        FarmerNotFound."""

    @abstractmethod
    async def update_singleton(
        self,
        launcher_id: bytes32,
        tip: CoinSpend,
        tip_state: PoolState,
        is_pool_member: bool,
        *,
        expected_tip: CoinSpend | None = None,
    ) -> bool:
        """Record the farmer's singleton tip, its pool state and the membership it implies.

        With ``expected_tip`` it is a compare-and-set: it writes only if the recorded tip is still ``expected_tip``
        (the one the caller started from), so a view computed earlier never overwrites a newer one written
        meanwhile. Returns whether it wrote. Raises FarmerNotFound."""

    @abstractmethod
    async def accept_put_token(self, launcher_id: bytes32, token: int) -> bool:
        """Record ``token`` as the farmer's last accepted PUT /farmer token if it is newer than the recorded one;
        False (nothing changed) if it is not, so a captured PUT cannot be replayed. Raises FarmerNotFound."""

    @abstractmethod
    async def ban_farmer(self, launcher_id: bytes32, reason: str, now: int) -> bool:
        """The operator bans the farmer from ``now`` with ``reason`` (on the record, ``banned_at``): its requests are
        refused and its pending partials rejected, while its points and owed balance stay (the payouts pay it). The
        ban enters the farmer's history in the same transaction. False (nothing changed) if it was banned already.
        Raises FarmerNotFound."""

    @abstractmethod
    async def unban_farmer(self, launcher_id: bytes32, now: int) -> bool:
        """Lift the farmer's ban, in its history too; False (nothing changed) if it was not banned. Raises
        FarmerNotFound."""

    @abstractmethod
    async def farmer_history(self, launcher_id: bytes32, limit: int = 100) -> list[FarmerChange]:
        """The farmer's changes, newest first: its join, payout instructions and authentication keys changed by PUT
        /farmer, difficulties the operator set, bans (written by the store methods that make them)."""

    # -- partials ----------------------------------------------------------------------------------------------
    @abstractmethod
    async def record_partials(
        self, partials: Sequence[PartialRecord], refusals: Sequence[PartialRefusal] = ()
    ) -> list[int | NotAdded]:
        """Group commit of POST /partial: insert pending partials and refusal records in ONE transaction (all or
        nothing). Returns, for each partial in order, its id or why it was not added (a proof hash received before,
        also earlier in the same batch or by another process: DUPLICATE; UNKNOWN_FARMER). Refusals of unknown
        farmers are skipped."""

    async def add_partial(self, partial: PartialRecord) -> int | None:
        """Insert a pending partial; returns its id, or None when its proof hash was already received. Raises
        FarmerNotFound."""
        (added,) = await self.record_partials([partial])
        if added is NotAdded.UNKNOWN_FARMER:
            raise FarmerNotFound(partial.launcher_id.hex())
        return None if added is NotAdded.DUPLICATE else added

    @abstractmethod
    async def get_partial(self, partial_id: int) -> PartialRecord | None: ...

    @abstractmethod
    async def pending_partials(self, received_before: int, limit: int = 1000) -> list[PartialRecord]:
        """Pending partials received before ``received_before``, oldest first."""

    @abstractmethod
    async def confirm_partials(self, partial_ids: Sequence[int]) -> list[int]:
        """Pending -> confirmed and the partials' points added to their farmers' balances, all in one transaction.
        Returns the ids that were pending (and are now confirmed); the others are left as they are: points are
        credited exactly once however often or concurrently a partial is confirmed."""

    async def confirm_partial(self, partial_id: int) -> bool:
        """One partial of ``confirm_partials``: False (and nothing changed) if it was not pending."""
        return bool(await self.confirm_partials([partial_id]))

    @abstractmethod
    async def settle_stale_partials(self, partial_ids: Sequence[int], credit: bool, reason: str) -> list[int]:
        """Pending -> stale, all in one transaction: CONFIRMED with their points credited (``credit``) or REJECTED
        with ``reason``, marked stale either way. Returns the ids that were pending (and are now settled); the
        others are left as they are: points are credited exactly once, as by confirm_partials."""

    async def settle_stale_partial(self, partial_id: int, credit: bool, reason: str) -> bool:
        """One partial of ``settle_stale_partials``: False (and nothing changed) if it was not pending."""
        return bool(await self.settle_stale_partials([partial_id], credit, reason))

    @abstractmethod
    async def state_figures(self) -> StateFigures:
        """Counts and sums of farmers, points, pending partials, claims and rounds for the operator's gauges: SQL
        aggregates over indexed columns, cheap enough for every scrape whatever the number of rows."""

    @abstractmethod
    async def count_stale_partials(self) -> int:
        """How many partials were settled stale (credited or not), pruned ones included."""

    @abstractmethod
    async def reject_partials(self, partial_ids: Sequence[int], reason: str) -> list[int]:
        """Pending -> rejected with a reason, all in one transaction. Returns the ids that were pending."""

    async def reject_partial(self, partial_id: int, reason: str) -> bool:
        """One partial of ``reject_partials``: False if it was not pending."""
        return bool(await self.reject_partials([partial_id], reason))

    @abstractmethod
    async def recent_partials(
        self, launcher_id: bytes32, since: int, statuses: Sequence[PartialStatus] | None = None
    ) -> list[PartialRecord]:
        """A farmer's partials received at or after ``since`` (all statuses unless given), newest first: only those
        still kept row by row (see ``prune_partials``)."""

    @abstractmethod
    async def difficulty_summaries(
        self, since: int, window_start: int, first: bytes32 | None = None, end: bytes32 | None = None
    ) -> dict[bytes32, PartialsSummary]:
        """For every pool member with partials received at or after ``since``, one query's summary of them: the
        newest partial and the newest run at the farmer's current difficulty from ``window_start`` on (exactly
        pool.protocol.difficulty.summarize of those partials). Members without partials are left out, and so are
        those whose launcher id is not from ``first`` (inclusive) to ``end`` (exclusive), where given."""

    @abstractmethod
    async def confirmed_points_since(self, since: int) -> dict[bytes32, int]:
        """Per farmer, the points of confirmed partials received at or after ``since`` (the PPLNS window): exactly
        the sum over the confirmed partials still kept row by row (see ``prune_partials``), read from hourly counts
        that confirming and pruning keep in their own transactions, and partial by partial only in the hour
        ``since`` falls in."""

    @abstractmethod
    async def add_partial_refusal(self, launcher_id: bytes32, received_at: int, reason: str) -> None:
        """Record a partial refused at intake after its farmer's signature was verified (for the farmer's chart).
        Raises FarmerNotFound."""

    @abstractmethod
    async def partial_counts(
        self, since: int, launcher_id: bytes32 | None = None, until: int | None = None
    ) -> list[PartialCount]:
        """Partials received at or after ``since`` and before ``until`` (None: up to now; one farmer's, or
        everyone's), counted per hour and outcome: accepted ones by status, refused and rejected ones by reason.
        Oldest hour first. Pruned partials count in their hour's totals, exactly as before they were pruned; of the
        pruned hours, those starting in that span count (the same as the rows whenever ``since`` is a whole hour or
        after every pruned hour). Counts of consecutive spans add up to the count of their union."""

    @abstractmethod
    async def oldest_pending_partial(self) -> int | None:
        """When the oldest partial still pending was received (None: none is): older partials' status no longer
        changes. One index look-up."""

    @abstractmethod
    async def accepted_points(self, since: int, until: int | None = None) -> int:
        """The points of the pool's accepted partials (pending or confirmed) received at or after ``since`` and
        before ``until`` (None: up to now), to the second; of the pruned ones (counted per hour), those of the hours
        that start in that span. Two index ranges (partials by status and time, partial hours by hour)."""

    @abstractmethod
    async def settled_points(self, since: int, until: int) -> int:
        """What ``accepted_points(since, until)`` gives for a span whose partials are all settled (received before
        the oldest pending one and written): the confirmed partials of its whole hours from their hourly counts (a
        farmer and hour a row, not 125 000 partials an hour at ten thousand farmers), those of its first and last
        part hours row by row, and the pruned ones as ``accepted_points`` counts them. Four index ranges. A pending
        partial inside a whole hour is not counted: ask only for settled spans."""

    @abstractmethod
    async def settled_counts(self, since: int, until: int) -> list[PartialCount]:
        """What ``partial_counts(since, until=until)`` gives for a settled span (as ``settled_points``): the
        confirmed partials of its whole hours from their hourly counts, the rest (its part hours, the pending,
        rejected and refused ones, the pruned hours) as ``partial_counts`` counts them. A day at ten thousand farmers
        is some 240 000 hourly rows instead of 3 million partials."""

    @abstractmethod
    async def harvester_figures(self, launcher_id: bytes32, since: int, limit: int) -> list[HarvesterFigures]:
        """The farmer's partials received at or after ``since`` (within the partials' retention) per harvester:
        accepted (pending or confirmed) and rejected ones, the points of the accepted, the last received; the
        ``limit`` harvesters seen last, newest first. One range of the (launcher_id, received_at) index."""

    @abstractmethod
    async def daily_partials(self, since: int, until: int) -> list[DailyPartials]:
        """Partials and refusals of every farmer per UTC day and outcome (as ``partial_counts`` names them), from
        the day ``since`` falls in to before ``until``, pruned ones included (from their hourly counts), ordered by
        day, farmer and outcome."""

    @abstractmethod
    async def prune_partials(self, before: int, batch: int) -> int:
        """One small transaction of retention: up to ``batch`` settled partials (CONFIRMED or REJECTED, stale ones
        included; never PENDING) and, when fewer remain, refusals, received before the hour that ``before`` falls in,
        are added to their farmer's hourly counts (what ``partial_counts`` and ``count_stale_partials`` read) and
        deleted (a pruned confirmed partial leaves the counts ``confirmed_points_since`` reads, in the same
        transaction). Returns how many rows it pruned: call it again until that is 0. Safe to run beside the pool and
        beside another pruner (each row is counted by the transaction that deleted it); the ledger, claims, rounds
        and payments are never touched."""

    @abstractmethod
    async def fold_partial_hours(self, since: int, before: int, batch: int) -> int:
        """Retention of the hourly counts of pruned partials: the counts of the UTC days from the day ``since`` falls
        in to the day before the one ``before`` falls in become one count a farmer, day and outcome, at the day's
        first second (the hour the day's first hour already has). Up to ``batch`` hourly counts folded in one small
        transaction; returns how many: call it again until it returns fewer. Every day's totals per farmer and
        outcome stay the same at every commit (a day folded partly is still summed right), and concurrent folders
        fold each count once."""

    @abstractmethod
    async def prune_difficulty_hours(self, before: int, batch: int) -> int:
        """Retention of the hourly counts the difficulty summaries read: deletes up to ``batch`` of them of hours
        before the hour ``before`` falls in, in one small transaction. Returns how many: call it again until 0.
        The summaries read no further back than the partials are kept (the configuration refuses a retention
        shorter than the difficulty's history), so the same cutoff as ``prune_partials`` loses nothing they read."""

    # -- browser sessions --------------------------------------------------------------------------------------
    @abstractmethod
    async def add_session(
        self, session: WebSession, *, authentication_public_key: G1Element, max_per_launcher: int
    ) -> bool:
        """Record a session opened with ``authentication_public_key``: only while that is still the farmer's key
        (False, nothing written, once it changed or for an unknown farmer), so a key change that lands while a
        login is checked still ends every session of the old key. In the same transaction the launcher's oldest
        sessions beyond ``max_per_launcher`` (this one included) and sessions expired before ``session.created_at``
        are deleted."""

    @abstractmethod
    async def get_session(self, token_hash: bytes32, now: int) -> WebSession | None:
        """The session with this token hash if it has not expired at ``now``."""

    # -- the target address ---------------------------------------------------------------------------------------
    @abstractmethod
    async def record_target_proof(self, proof: TargetProof) -> None:
        """Keep the proof that the pool's wallet owns a target address (the newest proof of an address replaces an
        older one)."""

    @abstractmethod
    async def target_proof(self, target_puzzle_hash: bytes32) -> TargetProof | None:
        """The proof recorded for this target puzzle hash, or None: absorbs into it wait until there is one."""

    # -- the pool's shared secrets -------------------------------------------------------------------------------
    @abstractmethod
    async def pool_secret(self, name: str, candidate: bytes, now: int) -> bytes:
        """The secret called ``name``, the same for every process of the pool: ``candidate`` becomes it if none
        is recorded yet (of two processes creating it at once, one wins and both get its secret). Never changes
        once recorded."""

    # -- block rewards -----------------------------------------------------------------------------------------
    @abstractmethod
    async def add_reward_claims(self, claims: Sequence[RewardClaim], fee_coins: Sequence[bytes32] = ()) -> bool:
        """Record the claims of one absorb transaction, all or nothing. False (nothing written) if a coin already
        has a claim that is not FAILED (never claim a coin twice); a FAILED claim of the same coin is replaced, and
        if its fee spend has not settled (it may still land), the new claim takes that fee over and must carry none
        of its own (StoreError). The claims' fees are charged to the pool fee share in the same transaction
        (InsufficientFunds if it is smaller), a fee spend becomes its claim's next fee version
        (``claim_fee_versions``), and ``fee_coins``, the coins the fee spend spends, are reserved for the claim until
        its fee settles (CoinReserved if another transaction of the pool holds one)."""

    async def add_reward_claim(self, claim: RewardClaim, fee_coins: Sequence[bytes32] = ()) -> bool:
        return await self.add_reward_claims([claim], fee_coins)

    @abstractmethod
    async def get_reward_claim(self, coin_id: bytes32) -> RewardClaim | None: ...

    @abstractmethod
    async def reward_claims(self, status: ClaimStatus | None = None) -> list[RewardClaim]: ...

    @abstractmethod
    async def update_reward_claim(
        self, coin_id: bytes32, status: ClaimStatus, confirmed_height: int | None = None, error: str | None = None
    ) -> None:
        """Move a claim on, as the chain showed: SUBMITTED -> CONFIRMED, LOST or FAILED; FAILED -> CONFIRMED or LOST
        (a spend that landed after all). CONFIRMED credits its amount to the undistributed ledger money, exactly
        once; LOST credits nothing. Any other move raises StoreError. The claim's fee is not touched: it is settled
        by ``settle_claim_fee`` once the chain tells whether the fee spend landed."""

    @abstractmethod
    async def replace_claim_fee(
        self,
        coin_id: bytes32,
        fee_spend_bundle: bytes,
        fee: int,
        spend_bundle_name: bytes32,
        now: int,
        height: int,
        *,
        replaces: bytes32,
        coins: Sequence[bytes32] = (),
    ) -> None:
        """A SUBMITTED absorb stuck in the mempool gets a new version: the same absorb spends with a new fee spend,
        carried by the claim of ``coin_id`` (the one that carries the absorb's fee, or, when it had none, one of its
        claims). Recorded only if the claim's absorb is still ``replaces`` (StaleTransaction otherwise: it was
        replaced meanwhile). Every claim of that absorb now names ``spend_bundle_name`` and waits from ``height``;
        the new fee spend becomes the claim's next fee version and every earlier one is kept (the caller makes it
        spend every coin of the previous one, so that at most one lands). A higher ``fee`` is charged to the pool
        fee share (InsufficientFunds); a lower one, a claim not SUBMITTED, a fee already settled or another claim of
        the absorb carrying an unsettled fee are refused (StoreError). ``coins`` are reserved for the claim
        (CoinReserved if another transaction holds one)."""

    @abstractmethod
    async def claim_fee_versions(self, coin_id: bytes32) -> list[ClaimFeeVersion]:
        """Every fee spend ever recorded for the claim of this coin, oldest first (settled ones included)."""

    @abstractmethod
    async def settle_claim_fee(self, coin_id: bytes32, landed: bool, fee_paid: int | None = None) -> None:
        """The fee spend of this claim landed (its fee stays charged) or can no longer land (the fee goes back to the
        pool fee share and the claim's fee becomes 0); either way its fee versions are settled and its coins no
        longer reserved. ``fee_paid``: the fee of the version that landed (an earlier, cheaper one may land instead
        of a replacement); what was charged beyond it goes back to the pool fee share (StoreError if it is negative
        or more than was charged). Only once (StoreError for a claim without an unsettled fee)."""

    @abstractmethod
    async def reserved_coins(self) -> dict[bytes32, str]:
        """Coins held by the pool's own transactions that may still land (payout batches not yet confirmed, claim
        fees not yet settled): coin id -> what holds it ("batch 7", "claim <coin id>"). No transaction may spend
        a coin held by another."""

    # -- the ledger --------------------------------------------------------------------------------------------
    @abstractmethod
    async def distribute(self, distribution: Distribution, shares: Sequence[DistributionShare]) -> int:
        """In one transaction: take ``distribution.total`` from the undistributed money (InsufficientFunds if it
        is smaller), add its pool fee to the pool fee share and each share to its farmer's owed balance, taking the
        share's points from the farmer's points (StoreError if the farmer has fewer). Returns the id."""

    @abstractmethod
    async def distributions(self, limit: int = 100) -> list[Distribution]:
        """Most recent first."""

    @abstractmethod
    async def distribution_shares(self, distribution_id: int) -> list[DistributionShare]: ...

    @abstractmethod
    async def ledger(self) -> LedgerSummary:
        """Where the confirmed claims' mojos are, each figure read from its own records (one consistent read)."""

    @abstractmethod
    async def ledger_entries(self, limit: int = 1000) -> list[LedgerEntry]:
        """The journal, most recent first."""

    @abstractmethod
    async def fund_fees(self, amount: int, reference: str, *, wallet_spendable: int | None = None) -> int | None:
        """In one money transaction: ``amount`` mojos of the operator's own coins join the pool fee share (a
        FEE_FUNDING entry; ``operator_funding`` in the ledger). With ``wallet_spendable`` (the wallet's balance, just
        asked), the same transaction checks that the wallet holds them beyond what the ledger holds and beyond the
        rewards of claims not settled yet (InsufficientFunds otherwise) and returns that surplus before the funding;
        without it (None returned) the caller vouches for the coins."""

    # -- payouts -----------------------------------------------------------------------------------------------
    @abstractmethod
    async def create_payout_round(
        self, payout_round: PayoutRound, payments: Sequence[Payment], batch_fees: Sequence[int]
    ) -> int:
        """In one transaction: record the round, its payments and one PENDING batch per entry of ``batch_fees``.
        Farmer payments come out of their owed balances, the fee-address payment and the batch fees out of the pool
        fee share (InsufficientFunds if a balance is too small). Raises RoundAlreadyOpen if a round is open.
        Returns the round id."""

    @abstractmethod
    async def open_round(self) -> PayoutRound | None: ...

    @abstractmethod
    async def get_round(self, round_id: int) -> PayoutRound | None: ...

    @abstractmethod
    async def rounds(self, limit: int = 100) -> list[PayoutRound]:
        """Most recent first."""

    @abstractmethod
    async def batches(self, round_id: int) -> list[PaymentBatch]: ...

    @abstractmethod
    async def payments(
        self, *, round_id: int | None = None, batch_index: int | None = None, launcher_id: bytes32 | None = None
    ) -> list[Payment]: ...

    @abstractmethod
    async def payment_lines(
        self, limit: int, offset: int = 0, *, launcher_id: bytes32 | None = None
    ) -> list[PaymentLine]:
        """Payments (of one farmer, or all, the fee address's included), newest first, a page of ``limit`` after
        skipping ``offset``: with their round's time and their batch's status and transaction."""

    @abstractmethod
    async def reward_claims_page(
        self, limit: int, offset: int = 0, *, status: ClaimStatus | None = None
    ) -> list[RewardClaim]:
        """Reward claims (of one status, or all), newest reward coin first, a page of ``limit`` after ``offset``."""

    @abstractmethod
    async def mark_batch_submitted(
        self,
        batch_id: int,
        tx_id: bytes32,
        spend_bundle: bytes,
        now: int,
        height: int | None = None,
        *,
        coins: Sequence[bytes32] = (),
    ) -> None:
        """PENDING -> SUBMITTED with the signed transaction (its version 1); call before pushing it (so a crash can
        re-push it). ``coins``: what it spends, reserved for the batch until it is confirmed (CoinReserved if another
        transaction holds one). ``height``: the chain's peak when it was recorded (how long it waits is counted from
        there)."""

    @abstractmethod
    async def replace_batch_transaction(
        self,
        batch_id: int,
        tx_id: bytes32,
        spend_bundle: bytes,
        fee: int,
        now: int,
        height: int,
        *,
        replaces: bytes32,
        coins: Sequence[bytes32] = (),
    ) -> None:
        """A SUBMITTED batch gets a new version of its transaction, recorded only if its current one is still
        ``replaces`` (StaleTransaction otherwise: someone replaced it meanwhile). The caller makes sure the new
        version conflicts with every older one that may still land (pool/payouts/versions.py); every version is kept.
        ``coins`` are reserved for the batch (CoinReserved if another transaction holds one). A higher ``fee`` is
        charged to the pool fee share (InsufficientFunds); a lower one is refused (StoreError)."""

    @abstractmethod
    async def batch_versions(self, batch_id: int) -> list[BatchVersion]:
        """Every transaction ever recorded for the batch, oldest first."""

    @abstractmethod
    async def mark_batch_confirmed(self, batch_id: int, height: int, now: int, fee_paid: int | None = None) -> None:
        """SUBMITTED -> CONFIRMED; closes the round when it was its last unconfirmed batch, and frees the coins its
        versions held. ``fee_paid``: the fee the version that landed really paid (an earlier, cheaper version may
        land instead of a replacement); what was charged beyond it goes back to the pool fee share."""

    @abstractmethod
    async def batch_status(self, batch_id: int) -> BatchStatus | None: ...

    # -- bounded reads for the pages and the operator: aggregates and one farmer's indexed rows ------------------
    @abstractmethod
    async def pool_figures(self) -> PoolFigures:
        """The public page's pool-wide figures, from one read (aggregates: no row is read into the pool)."""

    @abstractmethod
    async def total_points(self) -> int:
        """Every farmer's points not yet shared out (an aggregate)."""

    @abstractmethod
    async def farmer_points(self) -> dict[bytes32, int]:
        """Every farmer's points not yet shared out, members or not, without decoding its record (what a
        distribution shares out by)."""

    @abstractmethod
    async def farmer_payouts(self, launcher_id: bytes32, limit: int, before: int | None = None) -> list[FarmerPayout]:
        """The farmer's payments, newest first, at most ``limit``, only those with an id below ``before`` if given."""

    @abstractmethod
    async def farmer_paid(self, launcher_id: bytes32) -> int:
        """Mojos paid to the farmer in confirmed batches."""

    @abstractmethod
    async def farmer_earnings(self, launcher_id: bytes32, limit: int, before: int | None = None) -> list[FarmerEarning]:
        """The farmer's shares of distributions, newest first, at most ``limit``, only those of distributions with an
        id below ``before`` if given."""

    @abstractmethod
    async def round_summaries(self, limit: int, before: int | None = None) -> list[RoundSummary]:
        """Payout rounds, newest first, at most ``limit``, only those with an id below ``before`` if given: each with
        the number of farmers it pays and its batches' transaction ids."""

    @abstractmethod
    async def won_blocks(self, limit: int, before: tuple[int, bytes32] | None = None) -> list[RewardClaim]:
        """Claims of the blocks the pool won (not failed), by coin height, newest first, then coin id; at most
        ``limit``, only those after the (coin height, coin id) ``before`` in that order if given (several rewards
        may be created at one height)."""

    @abstractmethod
    async def count_pending_partials(self) -> int: ...

    @abstractmethod
    async def claim_totals(self) -> dict[ClaimStatus, tuple[int, int]]:
        """Per status of the reward claims that have one: how many, and their mojos."""

    @abstractmethod
    async def pool_fee_earned(self) -> int:
        """Mojos the distributions gave the pool fee share (before blockchain fees)."""

    @abstractmethod
    async def owed_balances(self, limit: int | None = None) -> list[OwedBalance]:
        """Farmers with an owed balance, largest first (at most ``limit`` if given)."""

    @abstractmethod
    async def anyone_due(self, min_payment: int) -> bool:
        """Whether a farmer is owed at least ``min_payment``, its own minimum payout (its settings) and one mojo: whom
        a payout round would pay (pool.payouts.split.plan_payments). A range of the index of the owed balances from
        ``min_payment`` up, each farmer's settings looked up: no owed balance read below it."""

    # -- notifications (the outbox) and the farmers' settings ---------------------------------------------------
    # Events of the store's own changes are written by the methods that make them, in their transaction: a claim
    # recorded (block won) or confirmed, a batch submitted or confirmed (one event for the operator, one per farmer
    # it pays), payout instructions changed by update_farmer_settings.

    @abstractmethod
    async def add_notification(
        self,
        kind: NotificationKind,
        idempotency_key: str,
        payload: dict[str, object],
        now: int,
        *,
        launcher_id: bytes32 | None = None,
        to_operator: bool = True,
    ) -> bool:
        """Put an event the leader detected (a silent farmer, the books) in the outbox; False (nothing written) if
        an event of that key is there already."""

    @abstractmethod
    async def add_notifications(self, events: Sequence[NewNotification], now: int) -> None:
        """Put many events the leader detected in the outbox, a few hundred a transaction (thousands of farmers
        found silent at once, after an outage); an event whose key the outbox holds already is left as it is."""

    @abstractmethod
    async def notification_keys(self, keys: Collection[str]) -> set[str]:
        """Which of these idempotency keys the outbox holds an event of: a check of thousands of events already told
        (silent farmers, every minute) without a write transaction for each."""

    @abstractmethod
    async def notifications_due(self, now: int, limit: int = 100) -> list[Notification]:
        """Events not yet delivered everywhere nor given up whose next attempt is due, oldest first, each with the
        destinations that already took it."""

    @abstractmethod
    async def notifications(self, limit: int = 100, kind: NotificationKind | None = None) -> list[Notification]:
        """The newest events (of ``kind``), newest first, whatever their delivery."""

    @abstractmethod
    async def record_delivery(self, notification_id: int, destination: str, now: int) -> None:
        """``destination`` answered 2xx: it is not sent the event again (recording it twice changes nothing)."""

    @abstractmethod
    async def finish_attempt(self, notification_id: int, now: int, retry_at: int | None, error: str | None) -> None:
        """End a delivery pass: ``retry_at`` None closes the event (delivered everywhere, or given up with
        ``error``); otherwise it counts one more attempt and waits until ``retry_at``."""

    @abstractmethod
    async def close_notifications(self, notification_ids: Sequence[int], now: int) -> None:
        """Close these events at ``now`` (delivered everywhere), in one transaction; closed ones stay as they were."""

    @abstractmethod
    async def prune_notifications(self, before: int, batch: int = 500) -> int:
        """Delete up to ``batch`` events closed before ``before`` (and their deliveries); how many. Events not yet
        closed are kept whatever their age."""

    @abstractmethod
    async def last_partial_times(self, before: int | None = None) -> dict[bytes32, int]:
        """Each member farmer's latest partial still held (by received_at); a farmer without one is absent, and so
        is one whose latest is at or after ``before``, if given."""

    @abstractmethod
    async def farmer_settings(self, launcher_id: bytes32) -> FarmerSettings:
        """What the farmer chose (the defaults, all None, if nothing)."""

    @abstractmethod
    async def farmer_webhooks(self, launcher_ids: Collection[bytes32]) -> dict[bytes32, str]:
        """The webhook URL of each of these farmers that set one."""

    @abstractmethod
    async def all_farmer_settings(self) -> dict[bytes32, FarmerSettings]:
        """Every farmer that chose something."""

    @abstractmethod
    async def change_farmer_settings(self, settings: FarmerSettings, now: int) -> list[FarmerChange]:
        """Replace a farmer's settings with ``settings`` (FarmerNotFound for an unknown farmer); each setting that
        changed enters the farmer's history (``farmer_history``, a kind of SETTING_KINDS) in the same transaction, and
        is returned. Callers validate the values."""

    @abstractmethod
    async def setting_changes(self, launcher_id: bytes32, limit: int = 50) -> list[FarmerChange]:
        """The changes of the farmer's history that it made on its settings form, newest first."""
