"""The plot space estimate against chia's own quality check: simulate a k32 plot's proofs with chia's
calculate_iterations_quality at a given difficulty, count the points they earn, and the estimate must give back
chia's expected size of a k32 plot."""

from __future__ import annotations

from pool.chia_adapter import (
    DEFAULT_CONSTANTS,
    PlotParam,
    bytes32,
    calculate_iterations_quality,
    calculate_sp_interval_iters,
    plot_filter_bits,
    std_hash,
    uint32,
    uint64,
)
from pool.estimates import estimated_space, format_space

HEIGHT = 10_000_000  # mainnet, after every plot filter reduction
DAY = 86_400
K32_EXPECTED_SIZE = (2 * 32 + 1) * 2**31  # chia's _expected_plot_size for k = 32


def test_points_of_a_simulated_k32_plot_give_back_its_size() -> None:
    constants = DEFAULT_CONSTANTS
    difficulty = 10
    threshold = calculate_sp_interval_iters(constants, constants.POOL_SUB_SLOT_ITERS)
    samples = 40_000
    good = 0
    for i in range(samples):  # deterministic "random" proofs: one per signage point that passed the plot filter
        quality = bytes32(std_hash(f"quality {i}".encode()))
        iters = calculate_iterations_quality(
            constants,
            quality,
            PlotParam.make_v1(32),
            uint64(difficulty),
            bytes32(std_hash(f"sp {i}".encode())),
            height=uint32(HEIGHT),
        )
        good += iters < threshold
    # Points per signage point: a proof only 1 in 2**f signage points (plot filter), worth the difficulty.
    signage_points_per_day = DAY * constants.NUM_SPS_SUB_SLOT // constants.SUB_SLOT_TIME_TARGET
    points_per_day = good * difficulty * signage_points_per_day // (samples * 2 ** plot_filter_bits(constants, HEIGHT))
    estimate = estimated_space(points_per_day, DAY, constants, HEIGHT)
    assert abs(estimate - K32_EXPECTED_SIZE) <= K32_EXPECTED_SIZE * 0.08, (good, points_per_day, format_space(estimate))


def test_no_points_no_space() -> None:
    assert estimated_space(0, DAY, DEFAULT_CONSTANTS, HEIGHT) == 0
    assert estimated_space(5, 0, DEFAULT_CONSTANTS, HEIGHT) == 0
    assert format_space(0) == "0 B"
    assert format_space(3 * 1024**4) == "3.00 TiB"
