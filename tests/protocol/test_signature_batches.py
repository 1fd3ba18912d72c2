"""Signatures verified in batches (pool.protocol.verification): a batch's sum stands for its checks only when each
check is right, and a wrong one fails alone; checks of trusted senders go ahead of the others, which are answered
busy beyond their bounds."""

from __future__ import annotations

import asyncio

import pytest

from pool.chia_adapter import AugSchemeMPL, G2Element, PrivateKey, std_hash
from pool.protocol import verification
from pool.protocol.verification import (
    MAX_BATCH,
    SignatureVerifier,
    SignedMessages,
    VerifierBusy,
    verify_alone,
    verify_together,
)
from tests.bls_points import GROUP_ORDER, torsion_point_of_g2_curve


def secret_key(name: str) -> PrivateKey:
    return AugSchemeMPL.key_gen(std_hash(name.encode()))


def partial_like(number: int, signer: str = "") -> SignedMessages:
    """As a partial is signed: the plot key and the farmer's key over one payload hash (``signer`` signs instead of
    the farmer when given)."""
    plot, farmer = secret_key(f"plot {number}"), secret_key(f"farmer {number}")
    message = std_hash(f"payload {number}".encode())
    signing_farmer = secret_key(signer) if signer else farmer
    signature = AugSchemeMPL.aggregate(
        [
            AugSchemeMPL.sign(plot, message, plot.get_g1()),
            AugSchemeMPL.sign(signing_farmer, message, farmer.get_g1()),
        ]
    )
    return SignedMessages([plot.get_g1(), farmer.get_g1()], [message, message], signature)


def with_signature(check: SignedMessages, signature: G2Element) -> SignedMessages:
    return SignedMessages(check.public_keys, check.messages, signature)


def test_a_batch_of_right_signatures_passes() -> None:
    checks = [partial_like(number) for number in range(6)]
    assert verify_together(checks) == [True] * 6


def test_a_wrong_signature_fails_alone() -> None:
    checks = [partial_like(number) for number in range(5)]
    checks[2] = partial_like(2, signer="somebody else")  # the farmer's half signed with another key
    checks[4] = with_signature(checks[4], checks[3].signature)  # another partial's signature
    assert verify_together(checks) == [True, True, False, True, False]


def test_a_point_outside_the_group_fails_alone() -> None:
    checks = [partial_like(number) for number in range(3)]
    shifted = checks[1].signature + torsion_point_of_g2_curve()
    checks[1] = with_signature(checks[1], G2Element.from_bytes_unchecked(bytes(shifted)))
    assert verify_together(checks) == [True, False, True]


def test_signatures_of_one_sender_that_cancel_pass_together_and_fail_apart() -> None:
    # What the module's description says a batch cannot tell: a sender holding every key of two checks may move
    # part of one signature into the other. It gains nothing: it could have signed both correctly.
    first, second = partial_like(1), partial_like(2)
    key = secret_key("anything")
    negated = PrivateKey.from_bytes(
        ((GROUP_ORDER - int.from_bytes(bytes(key), "big")) % GROUP_ORDER).to_bytes(32, "big")
    )
    first_moved = with_signature(first, first.signature + AugSchemeMPL.sign(key, b"moved", key.get_g1()))
    second_moved = with_signature(second, second.signature + AugSchemeMPL.sign(negated, b"moved", key.get_g1()))
    assert verify_together([first_moved, second_moved]) == [True, True]
    assert [verify_alone(first_moved), verify_alone(second_moved)] == [False, False]


def test_a_forged_signature_cannot_borrow_from_a_sender_without_the_key() -> None:
    # The victim's check needs its farmer key's signature; a sender with every other key cannot supply the
    # difference (it would need that signature): whatever it adds to its own check, both fail.
    victim = partial_like(1, signer="attacker")
    attacker = partial_like(2)
    attempts = [AugSchemeMPL.sign(secret_key("attacker"), victim.messages[1], victim.public_keys[1]), G2Element()]
    for compensation in attempts:
        outcome = verify_together([victim, with_signature(attacker, attacker.signature + compensation)])
        assert outcome[0] is False


def test_checks_with_unmatched_keys_and_messages_go_alone() -> None:
    # Two checks whose pairs would line up only once concatenated: [k1 k2] over [m1] and [k3] over [m2 m3].
    whole = partial_like(1)
    third = secret_key("third")
    message = std_hash(b"third")
    signature = whole.signature + AugSchemeMPL.sign(third, message, third.get_g1())
    keys, messages = [*whole.public_keys, third.get_g1()], [*whole.messages, message]
    first = SignedMessages(keys[:2], messages[:1], signature)
    second = SignedMessages(keys[2:], messages[1:], G2Element())
    outcome = verify_together([first, second, partial_like(2)])
    assert outcome[2] is True
    assert all(result is not True for result in outcome[:2])  # refused, or the library's error to raise


@pytest.mark.parametrize("threads", [0, 2])
async def test_the_verifier_answers_each_check_under_load(threads: int) -> None:
    verifier = SignatureVerifier(threads)
    try:
        checks = [partial_like(number) for number in range(3 * MAX_BATCH)]
        wrong = {5, 17, 40}
        for number in wrong:
            checks[number] = with_signature(checks[number], checks[number - 1].signature)
        outcomes = await asyncio.gather(
            *(verifier.aggregate_verify(check.public_keys, check.messages, check.signature) for check in checks)
        )
        assert [number for number, passed in enumerate(outcomes) if not passed] == sorted(wrong)
    finally:
        verifier.close()


def forged(number: int) -> SignedMessages:
    """A partial for somebody else's farmer key, signed by a key that is not it."""
    return partial_like(number, signer="forger")


async def test_a_trusted_check_goes_ahead_of_the_untrusted_ones_queued_before_it() -> None:
    verifier = SignatureVerifier(2)
    try:
        queued = [
            asyncio.ensure_future(verifier.aggregate_verify(c.public_keys, c.messages, c.signature, trusted=False))
            for c in map(forged, range(200))
        ]
        await asyncio.sleep(0)  # the 200 are in their lane
        honest = partial_like(1000)
        assert await verifier.aggregate_verify(honest.public_keys, honest.messages, honest.signature) is True
        # One thread only ever takes the untrusted lane, one check at a time: the other took the trusted check at
        # once. In arrival order it would have waited for all 200.
        answered_before = sum(task.done() for task in queued)
        assert answered_before < 100
        assert await asyncio.gather(*queued) == [False] * 200
    finally:
        verifier.close()


async def test_untrusted_checks_beyond_the_lane_bound_are_answered_busy(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(verification, "UNTRUSTED_QUEUED", 4)
    verifier = SignatureVerifier(1)
    try:
        checks = [forged(number) for number in range(20)] + [partial_like(number) for number in range(3)]
        outcomes = await asyncio.gather(
            *(verifier.aggregate_verify(c.public_keys, c.messages, c.signature, trusted=False) for c in checks),
            return_exceptions=True,
        )
        busy = [number for number, outcome in enumerate(outcomes) if isinstance(outcome, VerifierBusy)]
        assert len(busy) >= 10  # 4 wait at most, one is verified at a time: the rest of 23 arriving at once
        assert verifier.shed == len(busy)
        # What was checked was checked right: the forged ones failed, the right ones passed.
        assert all(outcomes[number] is (number >= 20) for number in range(23) if number not in busy)
        honest = partial_like(99)
        assert await verifier.aggregate_verify(honest.public_keys, honest.messages, honest.signature) is True
    finally:
        verifier.close()


async def test_untrusted_checks_that_waited_too_long_are_answered_busy(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(verification, "UNTRUSTED_WAIT", -1.0)  # every untrusted check waited too long
    verifier = SignatureVerifier(2)
    try:
        check = partial_like(1)
        with pytest.raises(VerifierBusy):
            await verifier.aggregate_verify(check.public_keys, check.messages, check.signature, trusted=False)
        assert await verifier.aggregate_verify(check.public_keys, check.messages, check.signature) is True
        assert verifier.shed == 1
    finally:
        verifier.close()
