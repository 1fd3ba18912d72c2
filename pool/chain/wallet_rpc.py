"""The pool's wallet over chia's wallet RPC (``WalletRpcClient``).

Payments are signed without being pushed (``create_signed_transactions`` with ``push=False``) so the payout loop can
record the signed transaction in the store before anything reaches the network: after a crash the very same
transaction is pushed again instead of a second, differently signed one.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import TypeVar

from pool.chain.interface import (
    AddressNotOwned,
    AddressSignature,
    ChainUnavailable,
    SignedPayment,
    SpendableCoin,
    Wallet,
)
from pool.chia_adapter import (
    DEFAULT_TX_CONFIG,
    Addition,
    AssertConcurrentSpend,
    Coin,
    Condition,
    CreateSignedTransaction,
    GetSpendableCoins,
    GetWalletBalance,
    LogIn,
    PushTX,
    ResponseFailureError,
    SignMessageByAddress,
    WalletRpcClient,
    WalletSpendBundle,
    bytes32,
    chia_config,
    uint16,
    uint32,
    uint64,
)
from pool.config import ChainConfig

T = TypeVar("T")


class WalletRpc(Wallet):
    """Wallet implementation talking to a running chia wallet service."""

    def __init__(self, client: WalletRpcClient, wallet_id: int, where: str) -> None:
        self._client = client
        self._wallet_id = wallet_id
        self._where = where  # "host:port", for error messages

    @classmethod
    async def connect(cls, chain: ChainConfig) -> WalletRpc:
        """Connect, log in with the configured fingerprint (if any) and check the wallet answers."""
        rpc = chain.wallet
        where = f"{rpc.host}:{rpc.port}"
        try:
            client = await WalletRpcClient.create(rpc.host, uint16(rpc.port), rpc.chia_root, chia_config(rpc.chia_root))
        except Exception as exc:
            raise ChainUnavailable(f"wallet at {where}: {exc}") from exc
        wallet = cls(client, chain.wallet_id, where)
        try:
            if chain.wallet_fingerprint is not None:
                await client.log_in(LogIn(fingerprint=uint32(chain.wallet_fingerprint)))
            await client.get_sync_status()
        except Exception as exc:
            await wallet.close()
            raise ChainUnavailable(f"wallet at {where}: {_reason(exc)}") from exc
        return wallet

    async def close(self) -> None:
        self._client.close()
        await self._client.await_closed()

    async def synced(self) -> bool:
        try:
            status = await self._client.get_sync_status()
        except Exception as exc:
            raise ChainUnavailable(f"wallet at {self._where}: {_reason(exc)}") from exc
        return bool(status.synced)

    async def spendable_balance(self) -> int:
        try:
            response = await self._client.get_wallet_balance(GetWalletBalance(wallet_id=uint32(self._wallet_id)))
        except Exception as exc:
            raise ChainUnavailable(f"wallet at {self._where}: {_reason(exc)}") from exc
        return int(response.wallet_balance.spendable_balance)

    async def spendable_coins(self) -> list[SpendableCoin]:
        try:
            response = await self._client.get_spendable_coins(GetSpendableCoins(wallet_id=uint32(self._wallet_id)))
        except Exception as exc:
            raise ChainUnavailable(f"wallet at {self._where}: {_reason(exc)}") from exc
        return [SpendableCoin(record.coin, int(record.confirmed_block_index)) for record in response.confirmed_records]

    async def sign_payment(
        self,
        additions: Sequence[tuple[bytes32, int]],
        fee: int,
        exclude_coin_ids: Sequence[bytes32] = (),
        *,
        coins: Sequence[Coin] | None = None,
        assert_concurrent_spend: bytes32 | None = None,
    ) -> SignedPayment:
        request = CreateSignedTransaction(
            additions=[Addition(puzzle_hash=ph, amount=uint64(amount)) for ph, amount in additions],
            wallet_id=uint32(self._wallet_id),
            fee=uint64(fee),
            coins=None if coins is None else list(coins),
            push=False,
        )
        # Coins held by our own transactions that are not confirmed yet must not be selected again: the wallet does
        # not know about transactions we push ourselves. With the coins given, the first one makes the outputs: every
        # version of a payment built from the same first coin makes the same payment coins, whichever the wallet would
        # have picked.
        tx_config = DEFAULT_TX_CONFIG.override(
            excluded_coin_ids=list(exclude_coin_ids), primary_coin=None if not coins else coins[0].name()
        )
        conditions: tuple[Condition, ...] = ()
        if assert_concurrent_spend is not None:
            conditions = (AssertConcurrentSpend(assert_concurrent_spend),)
        try:
            response = await self._client.create_signed_transactions(request, tx_config, conditions)
        except Exception as exc:
            raise ChainUnavailable(f"wallet at {self._where}: {_reason(exc)}") from exc
        record = response.signed_tx
        if record.spend_bundle is None:
            raise ChainUnavailable(f"wallet at {self._where}: signed transaction came back without a spend bundle")
        bundle = record.spend_bundle
        return SignedPayment(
            tx_id=bundle.name(),
            spend_bundle=bundle,
            removals=tuple(coin.name() for coin in bundle.removals()),
        )

    async def push(self, payment: SignedPayment) -> None:
        try:
            bundle = WalletSpendBundle(payment.spend_bundle.coin_spends, payment.spend_bundle.aggregated_signature)
            await self._client.push_tx(PushTX(spend_bundle=bundle))
        except Exception as exc:
            raise ChainUnavailable(f"wallet at {self._where}: {_reason(exc)}") from exc

    async def sign_with_address(self, puzzle_hash: bytes32, address: str, message: str) -> AddressSignature:
        try:
            logged_in = (await self._client.get_logged_in_fingerprint()).fingerprint
        except Exception as exc:
            raise ChainUnavailable(f"wallet at {self._where}: {_reason(exc)}") from exc
        fingerprint = None if logged_in is None else int(logged_in)
        try:
            signed = await self._client.sign_message_by_address(SignMessageByAddress(address=address, message=message))
        except Exception as exc:
            reason = _reason(exc)
            # chia's wallet looks the address up among those it has derived, and says so in words only.
            if _NO_KEY in reason:
                raise AddressNotOwned(
                    f"the wallet at {self._where} (key {fingerprint}) has no key for {address} among the addresses "
                    "it has derived"
                ) from exc
            raise ChainUnavailable(f"wallet at {self._where}: {reason}") from exc
        return AddressSignature(
            fingerprint=fingerprint,
            public_key=signed.pubkey,
            signature=signed.signature,
            signing_mode=signed.signing_mode,
        )


_NO_KEY = "No key for puzzle hash"  # chia's wallet_state_manager.get_private_key


def _reason(exc: BaseException) -> str:
    if isinstance(exc, ResponseFailureError):
        return str(exc.response.get("error", exc))
    return str(exc) or type(exc).__name__


class ReconnectingWallet(Wallet):
    """The pool's wallet, connected on first use and again after it failed: the pool starts, and serves farmers,
    while its wallet is away (a resync, a restart); only what needs the wallet (payouts, claim fees, the proof that
    it owns the target address) waits. ``unavailable_since``: when it last stopped answering (None while it does)."""

    def __init__(self, chain: ChainConfig, clock: Callable[[], float] = time.time) -> None:
        self._chain = chain
        self._clock = clock
        self._wallet: WalletRpc | None = None
        self._connecting = asyncio.Lock()
        self.unavailable_since: float | None = None
        self.last_error: str | None = None

    async def _connected(self) -> WalletRpc:
        async with self._connecting:
            if self._wallet is None:
                self._wallet = await self._answered(WalletRpc.connect(self._chain))
            return self._wallet

    async def _answered(self, request: Awaitable[T]) -> T:
        try:
            result = await request
        except ChainUnavailable as exc:
            if self.unavailable_since is None:
                self.unavailable_since = self._clock()
            self.last_error = str(exc)
            raise
        self.unavailable_since, self.last_error = None, None
        return result

    async def _call(self, use: Callable[[WalletRpc], Awaitable[T]]) -> T:
        wallet = await self._connected()
        try:
            return await self._answered(use(wallet))
        except ChainUnavailable:
            await self._drop(wallet)  # connect anew next time: the service may have restarted
            raise

    async def _drop(self, wallet: WalletRpc) -> None:
        async with self._connecting:
            if self._wallet is wallet:
                self._wallet = None
        with contextlib.suppress(Exception):
            await wallet.close()

    async def close(self) -> None:
        if self._wallet is not None:
            await self._drop(self._wallet)

    async def synced(self) -> bool:
        return await self._call(lambda wallet: wallet.synced())

    async def spendable_balance(self) -> int:
        return await self._call(lambda wallet: wallet.spendable_balance())

    async def spendable_coins(self) -> list[SpendableCoin]:
        return await self._call(lambda wallet: wallet.spendable_coins())

    async def sign_payment(
        self,
        additions: Sequence[tuple[bytes32, int]],
        fee: int,
        exclude_coin_ids: Sequence[bytes32] = (),
        *,
        coins: Sequence[Coin] | None = None,
        assert_concurrent_spend: bytes32 | None = None,
    ) -> SignedPayment:
        return await self._call(
            lambda wallet: wallet.sign_payment(
                additions, fee, exclude_coin_ids, coins=coins, assert_concurrent_spend=assert_concurrent_spend
            )
        )

    async def push(self, payment: SignedPayment) -> None:
        await self._call(lambda wallet: wallet.push(payment))

    async def sign_with_address(self, puzzle_hash: bytes32, address: str, message: str) -> AddressSignature:
        return await self._call(lambda wallet: wallet.sign_with_address(puzzle_hash, address, message))
