"""BLS points no honest signer produces, for tests of what the pool refuses."""

from __future__ import annotations

import itertools

from pool.chia_adapter import G2Element, std_hash

# The order of the BLS12-381 groups G1 and G2.
GROUP_ORDER = 0x73EDA753299D7D483339D80809A1D80553BDA402FFFE5BFEFFFFFFFF00000001


def torsion_point_of_g2_curve() -> G2Element:
    """A point of the curve of G2 outside the group G2: the group order times a random point of the curve. Added to
    a genuine signature, it gives bytes that decode as a point of the curve but not of the group."""
    for counter in itertools.count():
        candidate = bytearray(std_hash(counter.to_bytes(4, "big")) * 3)
        candidate[0] = 0x80 | (candidate[0] & 0x0F)  # compressed, not infinity; both x coordinates below the modulus
        candidate[48] &= 0x0F
        try:
            point = G2Element.from_bytes_unchecked(bytes(candidate))
        except ValueError:  # no point of the curve has this x
            continue
        multiple, power = G2Element(), point  # double and add: chia_rs points only add
        for bit in bin(GROUP_ORDER)[:1:-1]:
            if bit == "1":
                multiple += power
            power += power
        return multiple
    raise AssertionError("unreachable")
