"""Plot space estimated from points, as shown on the farmer and pool pages (formula documented in docs/monitoring.md).

A partial is good enough when its required iterations are below T = POOL_SUB_SLOT_ITERS / NUM_SPS_SUB_SLOT. For a
plot that passes the plot filter (1 in 2**f), the required iterations of its proof are uniform on
[0, D * DIFFICULTY_CONSTANT_FACTOR / size), so it yields a partial with probability T * size / (D * DCF), worth D
points: a plot earns T * size / (2**f * DCF) points per signage point whatever the difficulty. With
NUM_SPS_SUB_SLOT / SUB_SLOT_TIME_TARGET signage points a second, ``points`` earned in ``seconds`` mean

    space = points * 2**f * DCF * SUB_SLOT_TIME_TARGET / (seconds * NUM_SPS_SUB_SLOT * T)

where size is chia's expected plot size (k32: 65 * 2**31), the unit chia's own netspace figures use.
"""

from __future__ import annotations

from fractions import Fraction

from pool.chia_adapter import ConsensusConstants, calculate_sp_interval_iters, plot_filter_bits, uint64


def estimated_space(points: int, seconds: int, constants: ConsensusConstants, height: int) -> int:
    """Estimated plot space (chia's expected-plot-size units, ~bytes) of whoever earned ``points`` in ``seconds``."""
    if points <= 0 or seconds <= 0:
        return 0
    threshold = int(calculate_sp_interval_iters(constants, constants.POOL_SUB_SLOT_ITERS))
    numerator = (
        points * 2 ** plot_filter_bits(constants, height) * constants.DIFFICULTY_CONSTANT_FACTOR
    ) * constants.SUB_SLOT_TIME_TARGET
    return int(numerator) // (seconds * constants.NUM_SPS_SUB_SLOT * threshold)


def format_space(size: int) -> str:
    units = ["B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"]
    value, unit = float(size), 0
    while value >= 1024 and unit < len(units) - 1:
        value, unit = value / 1024, unit + 1
    return f"{value:.2f} {units[unit]}" if unit else f"{size} B"


def block_points(difficulty: int, sub_slot_iters: int, constants: ConsensusConstants) -> Fraction:
    """The points a pool's farmers earn, on average, per block they win, with the network at ``difficulty`` and
    ``sub_slot_iters`` (exact). A proof wins a block when its required iterations, which scale with the difficulty,
    are below SSI / NUM_SPS_SUB_SLOT at the network's difficulty D; it earns a partial worth d points when they are
    below POOL_SUB_SLOT_ITERS / NUM_SPS_SUB_SLOT at the farmer's d. Per proof, the points expected over the blocks
    expected are D * T_pool / T_block, whatever the plot, its size or d (see docs/api.md)."""
    pool_threshold = int(calculate_sp_interval_iters(constants, constants.POOL_SUB_SLOT_ITERS))
    block_threshold = int(calculate_sp_interval_iters(constants, uint64(sub_slot_iters)))
    return Fraction(difficulty * pool_threshold, block_threshold)
