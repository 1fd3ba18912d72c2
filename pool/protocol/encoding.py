"""Decoding the protocol's hex, integers and Streamable JSON, accepting hex with or without ``0x``.

The farmer sends GET parameters as its request's ``to_json_dict()`` (hex with ``0x``, integers in decimal) and POST/PUT
bodies as JSON; other clients may leave the ``0x`` out. Every failure becomes a REQUEST_FAILED protocol error.
"""

from __future__ import annotations

import dataclasses
import functools
import types
import typing
from collections.abc import Mapping
from typing import Any, TypeVar

from pool.chia_adapter import G1Element, G2Element, Streamable, bytes32
from pool.protocol.errors import PoolProtocolError, malformed

S = TypeVar("S", bound=Streamable)

UINT64_MAX = 2**64 - 1


def hex_bytes(text: str, length: int, name: str) -> bytes:
    """``length`` bytes from hex text, with or without a ``0x`` prefix."""
    digits = text[2:] if text[:2] in ("0x", "0X") else text
    try:
        value = bytes.fromhex(digits)
    except ValueError:
        raise malformed(f"{name} is not hex") from None
    if len(value) != length:
        raise malformed(f"{name} must be {length} bytes of hex, got {len(value)}")
    return value


def parse_bytes32(text: str, name: str) -> bytes32:
    return bytes32(hex_bytes(text, 32, name))


def parse_g1(text: str, name: str) -> G1Element:
    try:
        return G1Element.from_bytes(hex_bytes(text, 48, name))
    except PoolProtocolError:
        raise
    except Exception:
        raise malformed(f"{name} is not a valid BLS public key") from None


def parse_g2(text: str, name: str) -> G2Element:
    try:
        return G2Element.from_bytes(hex_bytes(text, 96, name))
    except PoolProtocolError:
        raise
    except Exception:
        raise malformed(f"{name} is not a valid BLS signature") from None


def parse_uint64(text: str, name: str) -> int:
    if not text.isdigit() or not text.isascii():
        raise malformed(f"{name} must be a non-negative decimal integer")
    significant = text.lstrip("0") or "0"
    if len(significant) > len(str(UINT64_MAX)):  # before int(): Python refuses to convert over 4300 digits
        raise malformed(f"{name} does not fit in 64 bits")
    value = int(significant)
    if value > UINT64_MAX:
        raise malformed(f"{name} does not fit in 64 bits")
    return value


def query_value(query: Mapping[str, str], name: str) -> str:
    value = query.get(name)
    if value is None or value == "":
        raise malformed(f"query parameter {name} is missing")
    return value


def streamable_from_json(cls: type[S], data: Any) -> S:
    """Build a Streamable request from parsed JSON, with or without ``0x`` on its hex fields."""
    if not isinstance(data, dict):
        raise malformed(f"expected a JSON object for {cls.__name__}")
    try:
        return cls.from_json_dict(with_hex_prefixes(cls, data))
    except Exception as exc:  # chia raises many types (ParameterMissingError, ConversionError, ValueError ...)
        raise malformed(f"not a valid {cls.__name__}: {exc}") from None


def with_hex_prefixes(cls: Any, data: dict[str, Any]) -> dict[str, Any]:
    """``data`` with ``0x`` put in front of hex that lacks it: chia's parsers insist on it for some byte fields.

    Text fields (``str`` in the class, e.g. payout_instructions) are left exactly as sent. Classes implemented in Rust
    (ProofOfSpace) have no text fields, so every string in them is hex.
    """
    hints = _field_types(cls)
    fixed: dict[str, Any] = {}
    for name, value in data.items():
        if hints is None:
            fixed[name] = _prefixed(Any, value)
        elif name in hints:
            fixed[name] = _prefixed(hints[name], value)
        else:
            fixed[name] = value
    return fixed


@functools.cache  # get_type_hints is slow and the classes are few: this runs for every partial
def _field_types(cls: Any) -> dict[str, Any] | None:
    if not dataclasses.is_dataclass(cls):
        return None
    return typing.get_type_hints(cls)


def _prefixed(field_type: Any, value: Any) -> Any:
    inner = _without_optional(field_type)
    if isinstance(value, str):
        if inner is str or value[:2] in ("0x", "0X"):
            return value
        return "0x" + value
    if isinstance(value, dict):
        return with_hex_prefixes(inner, value)
    return value


def _without_optional(field_type: Any) -> Any:
    """``X`` for ``X | None`` (or Optional[X]); the type itself otherwise."""
    if typing.get_origin(field_type) in (typing.Union, types.UnionType):
        members = [arg for arg in typing.get_args(field_type) if arg is not type(None)]
        if len(members) == 1:
            return members[0]
    return field_type
