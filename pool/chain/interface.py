"""What the pool needs from the blockchain, as two small interfaces.

There is one real implementation of each (chia's RPC clients, in ``pool.chain.node_rpc`` and ``pool.chain.wallet_rpc``)
so the same code runs against a mainnet node, a testnet node or the simulator.

Every answer of the node is one of three: found (a value), the node's own "there is no such thing" (None, or False
for a mempool look-up), or unavailable (ChainUnavailable: unreachable, timed out, or refused for any other reason,
such as a busy database). Only the first two are facts about the chain; callers never fail, revoke or rebuild
anything on the third.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass

from pool.chia_adapter import (
    Coin,
    CoinRecord,
    CoinSpend,
    ConsensusConstants,
    G1Element,
    G2Element,
    SpendBundle,
    bytes32,
)


class ChainUnavailable(Exception):
    """The node or wallet cannot be reached or answered with an error that is not "not found"; the message says which
    and why. It is never a statement about the chain."""


@dataclass(frozen=True)
class PeakInfo:
    height: int
    header_hash: bytes32
    synced: bool
    # Height of the most recent transaction block at or below the peak (proof-of-space checks need it).
    last_transaction_block_height: int
    timestamp: int | None  # of the last transaction block, unix seconds
    # The network's difficulty and sub-slot iterations at the peak (0: not known); what a block takes on average
    # (pool.estimates.expected_points).
    difficulty: int = 0
    sub_slot_iters: int = 0


@dataclass(frozen=True)
class ChallengeInfo:
    """A signage point or end of sub-slot as the node saw it; what a partial's proof of space answers."""

    sp_hash: bytes32  # what the farmer sends as sp_hash (cc signage point hash, or sub-slot challenge hash)
    end_of_sub_slot: bool
    challenge_hash: bytes32  # the original challenge hash for proof-of-space verification
    cc_sp_output_hash: bytes32  # the signage point output used for the quality -> iterations computation
    signage_point_index: int
    time_received: float  # unix time at which the node first saw it
    reverted: bool


@dataclass(frozen=True)
class PushResult:
    accepted: bool  # in the mempool (or already on chain / already in the mempool)
    error: str | None


class FullNode(ABC):
    """Read access to the chain and transaction submission, via a full node."""

    @abstractmethod
    async def close(self) -> None: ...

    @abstractmethod
    async def peak(self) -> PeakInfo:
        """Raises ChainUnavailable when the node is unreachable or has no peak yet."""

    @abstractmethod
    async def consensus_constants(self) -> ConsensusConstants:
        """The node's own constants (used to check the pool's network setting against the node)."""

    @abstractmethod
    async def signage_point(self, sp_hash: bytes32) -> ChallengeInfo | None:
        """A recent signage point by its cc hash, or None if the node does not know it (yet)."""

    @abstractmethod
    async def end_of_sub_slot(self, challenge_hash: bytes32) -> ChallengeInfo | None:
        """A recent end of sub-slot by its challenge hash, or None."""

    @abstractmethod
    async def coin_record(self, coin_id: bytes32) -> CoinRecord | None:
        """The coin's record, or None when the node says it has no such coin."""

    @abstractmethod
    async def coin_records_by_names(self, coin_ids: Sequence[bytes32]) -> list[CoinRecord]:
        """The records of those of these coins the node has, spent or not, in one call: a coin missing from the
        answer is one the node says it has no such coin (a failed call raises ChainUnavailable, never an empty
        answer)."""

    @abstractmethod
    async def coin_records_by_puzzle_hashes(
        self,
        puzzle_hashes: Sequence[bytes32],
        include_spent: bool,
        start_height: int | None = None,
        end_height: int | None = None,
    ) -> list[CoinRecord]:
        """Coins at these puzzle hashes confirmed at ``start_height`` or later and before ``end_height``."""

    @abstractmethod
    async def coin_records_by_parent_ids(
        self, parent_ids: Sequence[bytes32], include_spent: bool
    ) -> list[CoinRecord]: ...

    @abstractmethod
    async def coin_spend(self, coin: CoinRecord) -> CoinSpend | None:
        """The spend of a spent coin (puzzle and solution); None if it is unspent, or no longer spent at the height
        the record names (the chain moved since the record was read)."""

    @abstractmethod
    async def push(self, spend_bundle: SpendBundle) -> PushResult: ...

    @abstractmethod
    async def in_mempool(self, spend_bundle_name: bytes32) -> bool:
        """Whether the node's mempool holds the spend bundle (False only when the node says it does not)."""

    @abstractmethod
    async def fee_estimate(self, cost: int, target_seconds: int) -> int:
        """Mojos a transaction of this CLVM cost should pay to be mined within ``target_seconds``, by the node's
        fee estimator (what it saw in its mempool and recent blocks)."""


@dataclass(frozen=True)
class SignedPayment:
    """A signed, not yet pushed, payment transaction."""

    tx_id: bytes32
    spend_bundle: SpendBundle
    removals: tuple[bytes32, ...]  # coin ids it spends: if any is spent by something else, it can never land


class AddressNotOwned(Exception):
    """The wallet has no key for the address (not its own, or beyond the addresses it has derived)."""


@dataclass(frozen=True)
class AddressSignature:
    """A message signed by the wallet with the key of one of its addresses (chia's CHIP-0002 message signing)."""

    fingerprint: int | None  # of the wallet key logged in
    public_key: G1Element
    signature: G2Element
    signing_mode: str


@dataclass(frozen=True)
class SpendableCoin:
    coin: Coin
    confirmed_height: int  # a coin buried deep enough cannot vanish in a reorg (and come back later)


class Wallet(ABC):
    """The pool's wallet: it owns the target address and pays farmers."""

    # Unix time since which the wallet has not answered (None while it does), for the operator's status and metrics.
    unavailable_since: float | None = None

    @abstractmethod
    async def close(self) -> None: ...

    @abstractmethod
    async def synced(self) -> bool: ...

    @abstractmethod
    async def spendable_balance(self) -> int:
        """Confirmed mojos the wallet can spend now."""

    @abstractmethod
    async def spendable_coins(self) -> list[SpendableCoin]:
        """The confirmed coins the wallet can spend now, with their heights (the pool picks among them itself)."""

    @abstractmethod
    async def sign_payment(
        self,
        additions: Sequence[tuple[bytes32, int]],
        fee: int,
        exclude_coin_ids: Sequence[bytes32] = (),
        *,
        coins: Sequence[Coin] | None = None,
        assert_concurrent_spend: bytes32 | None = None,
    ) -> SignedPayment:
        """Build and sign a transaction paying ``additions`` (puzzle hash, mojos) plus ``fee``, without pushing.
        ``coins``: spend exactly these, the first one making the outputs (change goes back to the wallet); otherwise
        the wallet selects, never one of
        ``exclude_coin_ids`` (held by our own not yet confirmed transactions). ``assert_concurrent_spend``: the
        transaction is valid only in a block that also spends that coin (a fee tied to the spend it pays for)."""

    @abstractmethod
    async def push(self, payment: SignedPayment) -> None:
        """Submit a signed payment through the wallet (which then tracks and rebroadcasts it)."""

    @abstractmethod
    async def sign_with_address(self, puzzle_hash: bytes32, address: str, message: str) -> AddressSignature:
        """Sign ``message`` with the key of the wallet's address ``address`` (of ``puzzle_hash``). Raises
        AddressNotOwned when the wallet says it has no key for it, ChainUnavailable when it cannot answer."""
