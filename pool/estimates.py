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

from pool.chia_adapter import ConsensusConstants, calculate_sp_interval_iters, plot_filter_bits


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
