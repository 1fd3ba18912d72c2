"""Farmer authentication: the time-based token, and what the authentication key signs (the signatures themselves are
checked in signatures.py, off the event loop)."""

from __future__ import annotations

from pool.chia_adapter import (
    AuthenticationPayloadV1,
    G1Element,
    PoolErrorCode,
    bytes32,
    uint64,
)
from pool.protocol.errors import PoolProtocolError


def current_authentication_token(now: int, timeout_minutes: int) -> int:
    """floor(unix minutes / timeout): the token a farmer with a correct clock sends now."""
    return (now // 60) // timeout_minutes


def check_authentication_token(token: int, now: int, timeout_minutes: int) -> None:
    """Accept tokens within ``timeout`` of ours (either way: clocks drift). Raises INVALID_AUTHENTICATION_TOKEN."""
    ours = current_authentication_token(now, timeout_minutes)
    if abs(token - ours) > timeout_minutes:
        raise PoolProtocolError(
            PoolErrorCode.INVALID_AUTHENTICATION_TOKEN,
            f"authentication token {token} is too far from the pool's current token {ours}: check the clock",
        )


def authentication_message(method_name: str, launcher_id: bytes32, target_puzzle_hash: bytes32, token: int) -> bytes32:
    """What GET /farmer ("get_farmer") and GET /login ("get_login") are signed over by the authentication key."""
    return AuthenticationPayloadV1(method_name, launcher_id, target_puzzle_hash, uint64(token)).get_hash()


def check_authentication_key(public_key: G1Element) -> None:
    """The identity element is a valid point but no one's key: it would make signatures meaningless."""
    if public_key == G1Element():
        raise PoolProtocolError(PoolErrorCode.REQUEST_FAILED, "the authentication public key must not be the identity")
