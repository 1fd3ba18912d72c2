"""Which of the pool wallet's coins a transaction spends. Pure: no I/O.

The pool picks the coins itself, largest first, instead of leaving it to the wallet: anyone can send dust to the
public target address, and a wallet that reached for a thousand one-mojo coins would hit chia's limit of 500 coins per
transaction and never pay again. Coins held by the pool's own transactions that may still land are never picked.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence

from pool.chain.interface import SpendableCoin
from pool.chia_adapter import Coin, bytes32

MAX_COINS_PER_TRANSACTION = 400  # below chia's wallet limit of 500 inputs; big coins make this rarely matter


class NotEnoughCoins(Exception):
    """The spendable coins (within the per-transaction limit) do not cover the amount."""


def select_coins(
    coins: Sequence[Coin],
    amount: int,
    *,
    held: Collection[bytes32] = (),
    required: Sequence[Coin] = (),
    max_coins: int = MAX_COINS_PER_TRANSACTION,
) -> list[Coin]:
    """Coins worth at least ``amount``: every coin of ``required`` (a replacement must spend what the transaction it
    replaces spent), then the largest free ones, never one in ``held``. Raises NotEnoughCoins."""
    chosen = list(required)
    total = int(sum(coin.amount for coin in chosen))
    taken = {coin.name() for coin in chosen}
    free = sorted(
        (coin for coin in coins if coin.name() not in held and coin.name() not in taken),
        key=lambda coin: (-coin.amount, bytes(coin.name())),
    )
    for coin in free:
        if total >= amount and chosen:
            break
        if len(chosen) >= max_coins:
            break
        chosen.append(coin)
        total += int(coin.amount)
    if total < amount or not chosen:
        raise NotEnoughCoins(
            f"{amount} mojos needed, the {len(chosen)} largest spendable coins hold {total} "
            f"({len(held)} coin(s) held by transactions in flight)"
        )
    return chosen


def buried_coins(coins: Iterable[SpendableCoin], peak_height: int, threshold: int) -> list[Coin]:
    """The coins confirmed at least ``threshold`` blocks below the peak: a reorg the pool allows for cannot take
    them away (a transaction that spent a coin which then vanished could land later, when the coin comes back)."""
    return [spendable.coin for spendable in coins if peak_height - spendable.confirmed_height >= threshold]
