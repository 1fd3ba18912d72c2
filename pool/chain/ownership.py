"""The proof that the pool's wallet owns the pool's target address, made before any reward is absorbed into it.

Absorbs need only the node, and every reward goes to ``pool.target_address``. If the wallet the pool pays from does not
own that address, the money is stranded (an example address nobody owns) or every payout round waits for ever (an
address of another key). So the pool asks its wallet to sign a message with the target address's key (chia's CHIP-0002
message signing, the wallet's ``sign_message_by_address``) and checks that the public key is that address's own and the
signature valid; the reward loop keeps the proof in the store, and absorbs wait until it is there.
"""

from __future__ import annotations

from pool.chain.interface import AddressNotOwned, AddressSignature, Wallet
from pool.chia_adapter import G1Element, G2Element, address_signature_valid, bytes32


def ownership_message(pool_name: str, address: str, now: int) -> str:
    return f"{pool_name}: this wallet owns {address} and receives the pool's rewards there (unix time {now})"


async def signed_for_target(
    wallet: Wallet, target_puzzle_hash: bytes32, address: str, message: str
) -> AddressSignature:
    """Have the wallet sign ``message`` for ``address`` and check what it signed. Raises AddressNotOwned (the wallet
    has no key for it, or gave a signature that proves nothing) or ChainUnavailable (it cannot answer)."""
    signed = await wallet.sign_with_address(target_puzzle_hash, address, message)
    if not address_signature_valid(signed.signing_mode, signed.public_key, message, signed.signature, address):
        raise AddressNotOwned(f"the wallet's signature for {address} does not prove it holds that address's key")
    return signed


def signature_proves(signing_mode: str, public_key: bytes, signature: bytes, message: str, address: str) -> bool:
    """Whether a recorded signature still checks out (it is read back from a store an operator may edit)."""
    try:
        key, signed = G1Element.from_bytes(public_key), G2Element.from_bytes(signature)
    except ValueError:
        return False
    return address_signature_valid(signing_mode, key, message, signed, address)
