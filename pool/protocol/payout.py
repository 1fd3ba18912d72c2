"""Payout instructions: where a farmer wants to be paid."""

from __future__ import annotations

from pool.chia_adapter import PoolErrorCode, bytes32
from pool.config import address_prefix_for, parse_address
from pool.protocol.errors import PoolProtocolError

MAX_PAYOUT_INSTRUCTIONS_LENGTH = 256  # an address is 62/63 characters, a hex puzzle hash 64 or 66


def parse_payout_instructions(instructions: str, network: str) -> bytes32:
    """The puzzle hash to pay: a bech32m address of ``network`` (xch1... / txch1...) or 32 bytes of hex.

    Raises INVALID_PAYOUT_INSTRUCTIONS for anything else, e.g. a mainnet address on a testnet pool.
    """
    text = instructions.strip()
    if len(text) > MAX_PAYOUT_INSTRUCTIONS_LENGTH:
        raise _invalid("too long")
    as_hex = _puzzle_hash_from_hex(text)
    if as_hex is not None:
        return as_hex
    try:
        return parse_address(text, network)
    except ValueError as exc:
        raise _invalid(f"expected a {address_prefix_for(network)}1... address or a hex puzzle hash ({exc})") from None


def _puzzle_hash_from_hex(text: str) -> bytes32 | None:
    digits = text[2:] if text[:2] in ("0x", "0X") else text
    if len(digits) != 64:
        return None
    try:
        return bytes32(bytes.fromhex(digits))
    except ValueError:
        return None


def _invalid(reason: str) -> PoolProtocolError:
    return PoolProtocolError(PoolErrorCode.INVALID_PAYOUT_INSTRUCTIONS, f"invalid payout instructions: {reason}")
