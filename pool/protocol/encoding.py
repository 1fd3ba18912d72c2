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
from typing import Any, TypeVar, cast

from pool.chia_adapter import (
    G1Element,
    G2Element,
    PostPartialPayload,
    PostPartialRequest,
    ProofOfSpace,
    Streamable,
    bytes32,
    uint8,
    uint16,
    uint64,
)
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


def partial_request_from_json(data: Any) -> PostPartialRequest:
    """POST /partial's body, decoded more cheaply than by the generic parser when it has the shape chia's farmer sends.

    Any other shape (hex without ``0x``, numbers as text, an older farmer's fields ...) goes through
    ``streamable_from_json``, which accepts and refuses exactly what it always did. The fast path decodes the plot key
    and the signature without their subgroup checks (most of the cost of decoding them): the signature check,
    which every partial passes before anything else reads them, makes both checks again
    (``AugSchemeMPL.aggregate_verify`` validates every key and the signature). A point outside its group is therefore
    refused as INVALID_SIGNATURE instead of REQUEST_FAILED; it is refused all the same.
    """
    fast = _farmer_shaped_partial(data)
    return fast if fast is not None else streamable_from_json(PostPartialRequest, data)


def partial_launcher_id(data: Any) -> bytes32 | None:
    """The launcher id a POST /partial body names, read without decoding the rest (None when it is not where chia's
    farmer writes it: the full decoding then says what is wrong)."""
    payload = data.get("payload") if type(data) is dict else None
    launcher_id = _exact_hex(payload.get("launcher_id"), 32) if type(payload) is dict else None
    return None if launcher_id is None else bytes32(launcher_id)


def _farmer_shaped_partial(data: Any) -> PostPartialRequest | None:
    """The request, or None if ``data`` is not exactly in the shape chia's farmer sends (or does not decode)."""
    if type(data) is not dict:
        return None
    payload, token_v2 = data.get("payload"), data.get("authentication_token_v2", "")
    signature = _exact_hex(data.get("aggregate_signature"), 96)
    if type(payload) is not dict or type(token_v2) is not str or signature is None:
        return None
    proof = _farmer_shaped_proof(payload.get("proof_of_space"))
    launcher_id, sp_hash = _exact_hex(payload.get("launcher_id"), 32), _exact_hex(payload.get("sp_hash"), 32)
    harvester_id = _exact_hex(payload.get("harvester_id"), 32)
    token, end_of_sub_slot = payload.get("authentication_token"), payload.get("end_of_sub_slot")
    if proof is None or launcher_id is None or sp_hash is None or harvester_id is None:
        return None
    if type(token) is not int or not 0 <= token <= UINT64_MAX or type(end_of_sub_slot) is not bool:
        return None
    try:
        return PostPartialRequest(
            PostPartialPayload(
                bytes32(launcher_id), uint64(token), proof, bytes32(sp_hash), end_of_sub_slot, bytes32(harvester_id)
            ),
            G2Element.from_bytes_unchecked(signature),  # checked by aggregate_verify
            token_v2,
        )
    except Exception:  # not a point of the curve: the generic parser says why
        return None


def _farmer_shaped_proof(proof: Any) -> ProofOfSpace | None:
    if type(proof) is not dict:
        return None
    challenge, plot_key = _exact_hex(proof.get("challenge"), 32), _exact_hex(proof.get("plot_public_key"), 48)
    # Both optional fields must be there, null or not, as for the generic parser: a missing one is malformed.
    if "pool_public_key" not in proof or "pool_contract_puzzle_hash" not in proof:
        return None
    contract = proof.get("pool_contract_puzzle_hash")
    contract_hash = None if contract is None else _exact_hex(contract, 32)
    numbers = _integers(proof, ("version", "plot_index", "meta_group", "strength", "size"))
    proof_bytes = _exact_hex(proof.get("proof"), None)
    if challenge is None or plot_key is None or proof_bytes is None or (contract is not None and contract_hash is None):
        return None
    # A plot with a pool public key (an OG plot) is never a pool partial: the generic parser takes those.
    if proof.get("pool_public_key") is not None or numbers is None:
        return None
    version, plot_index, meta_group, strength, size = numbers
    try:
        return ProofOfSpace(
            bytes32(challenge),
            None,
            None if contract_hash is None else bytes32(contract_hash),
            G1Element.from_bytes_unchecked(plot_key),  # checked by aggregate_verify, before the proof is read
            uint8(version),
            uint16(plot_index),
            uint8(meta_group),
            uint8(strength),
            uint8(size),
            proof_bytes,
        )
    except Exception:  # a number out of range, a point off the curve: the generic parser says why
        return None


def _integers(document: dict[str, Any], names: tuple[str, ...]) -> list[int] | None:
    """The named fields if each is a JSON integer (not a bool, not text), else None."""
    values = [document.get(name) for name in names]
    return None if any(type(value) is not int for value in values) else cast(list[int], values)


def _exact_hex(text: Any, length: int | None) -> bytes | None:
    """``0x`` and exactly ``length`` bytes of hex (any length if None), nothing else; None otherwise."""
    if type(text) is not str or text[:2] != "0x" or (length is not None and len(text) != 2 + 2 * length):
        return None
    try:
        value = bytes.fromhex(text[2:])
    except ValueError:
        return None
    # bytes.fromhex skips spaces: a length that does not match means some were there.
    return value if 2 * len(value) == len(text) - 2 else None
