"""The proof that the pool's wallet owns the pool's target address, made before any reward is absorbed into it.

Absorbs need only the node, and every reward goes to ``pool.target_address``. If the wallet the pool pays from does not
own that address, the money is stranded (an example address nobody owns) or every payout round waits for ever (an
address of another key). So the pool asks its wallet to sign a message with the target address's key (chia's CHIP-0002
message signing, the wallet's ``sign_message_by_address``), checks that the public key is that address's own and the
signature valid, and keeps the proof in the store; absorbs wait until it is there.
"""

from __future__ import annotations

from pool.chain.interface import AddressNotOwned, Wallet
from pool.chia_adapter import G1Element, G2Element, address_signature_valid, bytes32
from pool.store.models import TargetProof


def ownership_message(pool_name: str, address: str, now: int) -> str:
    return f"{pool_name}: this wallet owns {address} and receives the pool's rewards there (unix time {now})"


async def prove_target_ownership(
    wallet: Wallet, target_puzzle_hash: bytes32, address: str, pool_name: str, now: int
) -> TargetProof:
    """Have the wallet sign for ``address`` and check what it signed. Raises AddressNotOwned (the wallet has no key
    for it, or gave a signature that proves nothing) or ChainUnavailable (it cannot answer)."""
    message = ownership_message(pool_name, address, now)
    signed = await wallet.sign_with_address(target_puzzle_hash, address, message)
    if not address_signature_valid(signed.signing_mode, signed.public_key, message, signed.signature, address):
        raise AddressNotOwned(f"the wallet's signature for {address} does not prove it holds that address's key")
    return TargetProof(
        target_puzzle_hash=target_puzzle_hash,
        address=address,
        fingerprint=signed.fingerprint,
        public_key=bytes(signed.public_key),
        signature=bytes(signed.signature),
        signing_mode=signed.signing_mode,
        message=message,
        proven_at=now,
    )


def proof_holds(proof: TargetProof) -> bool:
    """Whether a recorded proof still checks out (it is read back from a store an operator may edit)."""
    try:
        public_key, signature = G1Element.from_bytes(proof.public_key), G2Element.from_bytes(proof.signature)
    except ValueError:
        return False
    return address_signature_valid(proof.signing_mode, public_key, proof.message, signature, proof.address)
