"""The protocol's rules that need no chain: tokens, hex, payout instructions, pool membership, the PUT payload."""

from __future__ import annotations

import pytest

from pool.chain.singleton import is_member_of_pool
from pool.chia_adapter import (
    AugSchemeMPL,
    PoolErrorCode,
    PoolSingletonState,
    PoolState,
    PostFarmerRequest,
    PutFarmerPayload,
    bytes32,
    encode_puzzle_hash,
    std_hash,
    uint8,
    uint32,
    uint64,
)
from pool.config import PoolInfoConfig
from pool.protocol.auth import check_authentication_token, current_authentication_token
from pool.protocol.encoding import parse_bytes32, parse_g2, parse_uint64, streamable_from_json
from pool.protocol.errors import PoolProtocolError
from pool.protocol.farmers import ClassicPutFarmerPayload
from pool.protocol.payout import parse_payout_instructions

TARGET = bytes32(std_hash(b"pool target"))
OWNER = AugSchemeMPL.key_gen(std_hash(b"owner")).get_g1()


def pool_info(relative_lock_height: int = 10) -> PoolInfoConfig:
    from fractions import Fraction

    return PoolInfoConfig(
        name="p",
        logo_url="",
        description="",
        welcome_message="hi",
        fee=Fraction(1, 100),
        fee_display="0.01",
        fee_puzzle_hash=bytes32(std_hash(b"fee")),
        target_puzzle_hash=TARGET,
        relative_lock_height=relative_lock_height,
        authentication_token_timeout=5,
    )


def state(
    singleton_state: PoolSingletonState = PoolSingletonState.FARMING_TO_POOL,
    target: bytes32 = TARGET,
    relative_lock_height: int = 10,
    version: int = 1,
) -> PoolState:
    return PoolState(
        uint8(version), uint8(singleton_state.value), target, OWNER, "http://pool", uint32(relative_lock_height)
    )


def code_of(error: pytest.ExceptionInfo[PoolProtocolError]) -> PoolErrorCode:
    return error.value.code


def test_authentication_token_window() -> None:
    now = 1_700_000_000
    ours = current_authentication_token(now, 5)
    assert ours == now // 60 // 5
    for token in (ours - 5, ours, ours + 5):
        check_authentication_token(token, now, 5)
    for token in (ours - 6, ours + 6, 0):
        with pytest.raises(PoolProtocolError) as error:
            check_authentication_token(token, now, 5)
        assert code_of(error) is PoolErrorCode.INVALID_AUTHENTICATION_TOKEN


def test_hex_with_and_without_0x() -> None:
    value = bytes32(std_hash(b"x"))
    assert parse_bytes32("0x" + value.hex(), "v") == value
    assert parse_bytes32(value.hex(), "v") == value
    assert parse_bytes32(value.hex().upper(), "v") == value
    signature = AugSchemeMPL.sign(AugSchemeMPL.key_gen(bytes(32)), b"m")
    assert parse_g2(bytes(signature).hex(), "s") == signature
    for bad in ("0x12", "zz" * 32, "", "0x" + "00" * 33):
        with pytest.raises(PoolProtocolError) as error:
            parse_bytes32(bad, "v")
        assert code_of(error) is PoolErrorCode.REQUEST_FAILED
    assert parse_uint64("18446744073709551615", "n") == 2**64 - 1
    for bad_number in ("-1", "1e3", "18446744073709551616", "١٢"):
        with pytest.raises(PoolProtocolError):
            parse_uint64(bad_number, "n")


def test_streamable_without_0x_keeps_text_fields() -> None:
    sk = AugSchemeMPL.key_gen(std_hash(b"auth"))
    payout = std_hash(b"payout").hex()  # text that looks like hex must stay exactly as sent
    body = {
        "payload": {
            "launcher_id": std_hash(b"launcher").hex(),
            "authentication_token": 7,
            "authentication_public_key": bytes(sk.get_g1()).hex(),
            "payout_instructions": payout,
            "suggested_difficulty": None,
        },
        "signature": bytes(AugSchemeMPL.sign(sk, b"m")).hex(),
    }
    request = streamable_from_json(PostFarmerRequest, body)
    assert request.payload.payout_instructions == payout
    assert request.payload.authentication_public_key == sk.get_g1()


def test_payout_instructions() -> None:
    puzzle_hash = bytes32(std_hash(b"payee"))
    assert parse_payout_instructions(encode_puzzle_hash(puzzle_hash, "txch"), "simulator0") == puzzle_hash
    assert parse_payout_instructions(encode_puzzle_hash(puzzle_hash, "txch"), "testnet11") == puzzle_hash
    assert parse_payout_instructions(encode_puzzle_hash(puzzle_hash, "xch"), "mainnet") == puzzle_hash
    assert parse_payout_instructions(puzzle_hash.hex(), "mainnet") == puzzle_hash
    assert parse_payout_instructions("0x" + puzzle_hash.hex(), "mainnet") == puzzle_hash
    for bad, network in [
        (encode_puzzle_hash(puzzle_hash, "xch"), "testnet11"),
        (encode_puzzle_hash(puzzle_hash, "txch"), "mainnet"),
        (encode_puzzle_hash(puzzle_hash, "xch")[:-1] + "q", "mainnet"),  # checksum
        ("0x" + puzzle_hash.hex()[:-2], "mainnet"),
        ("x" * 1000, "mainnet"),
        ("", "mainnet"),
    ]:
        with pytest.raises(PoolProtocolError) as error:
            parse_payout_instructions(bad, network)
        assert code_of(error) is PoolErrorCode.INVALID_PAYOUT_INSTRUCTIONS


def test_membership() -> None:
    pool = pool_info(relative_lock_height=10)
    assert is_member_of_pool(state(), pool, peak_height=1000, coin_height=10)
    assert not is_member_of_pool(state(target=bytes32(b"\x01" * 32)), pool, 1000, 10)
    assert not is_member_of_pool(state(relative_lock_height=11), pool, 1000, 10)
    assert not is_member_of_pool(state(version=2), pool, 1000, 10)
    assert not is_member_of_pool(state(PoolSingletonState.SELF_POOLING), pool, 1000, 10)
    leaving = state(PoolSingletonState.LEAVING_POOL)
    assert is_member_of_pool(leaving, pool, peak_height=109, coin_height=100)
    assert not is_member_of_pool(leaving, pool, peak_height=110, coin_height=100)


def test_classic_put_payload_is_the_first_five_fields() -> None:
    """What a v1 farmer signs is PutFarmerPayload without its sixth field, serialized the same way."""
    sk = AugSchemeMPL.key_gen(std_hash(b"auth"))
    five = (bytes32(std_hash(b"l")), uint64(9), sk.get_g1(), "txch1abc", uint64(12))
    six = PutFarmerPayload(*five, authentication_token_v2="9")
    classic = ClassicPutFarmerPayload(*five)
    assert bytes(six).startswith(bytes(classic))
    assert bytes(six) != bytes(classic)
    assert ClassicPutFarmerPayload(bytes32(b"\x00" * 32), uint64(0), None, None, None).get_hash() != (
        PutFarmerPayload(bytes32(b"\x00" * 32), uint64(0), None, None, None).get_hash()
    )
