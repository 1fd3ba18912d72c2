"""The difficulty adjustment: named single-call cases, then farmers simulated over days of successive calls."""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction
from itertools import pairwise

import pytest

from pool.protocol.difficulty import MAX_STEP, next_difficulty, suggested_difficulty_for

TARGET = 300  # partials per time_target
DAY = 86_400  # time_target
E = DAY // TARGET  # 288 s: the interval between partials the pool aims for
NOW = 10 * DAY


def evenly(count: int, interval: int, newest_at: int, difficulty: int = 1_000) -> list[tuple[int, int]]:
    """``count`` partials ``interval`` seconds apart, the newest at ``newest_at``; newest first."""
    return [(newest_at - i * interval, difficulty) for i in range(count)]


@dataclass(frozen=True)
class Case:
    partials: list[tuple[int, int]]
    current: int = 1_000
    expected: int | tuple[int, int] = 1_000  # exact, or an inclusive range
    minimum: int = 1
    active_since: int | None = None


CASES: dict[str, Case] = {
    "steady farmer stays": Case(evenly(300, E, NOW - 100)),
    "steady farmer stays despite some noise": Case(evenly(250, E + 40, NOW - 10)),
    "too many partials go up": Case(evenly(100, E // 4, NOW - 10), expected=(3_900, 4_000)),
    "far too many partials go up by at most MAX_STEP": Case(evenly(100, 5, NOW - 1), expected=1_000 * MAX_STEP),
    "too few partials go down": Case(evenly(100, 3 * E, NOW - 100), expected=(320, 340)),
    "few partials leave it unchanged however fast": Case(evenly(4, 10, NOW - 1)),
    "only current-difficulty partials count": Case(evenly(4, 10, NOW - 1) + evenly(300, 10, NOW - 50, difficulty=500)),
    "partials from before the last change do not count": Case(
        evenly(4, 10, NOW - 1) + evenly(50, E, NOW - 100, 250) + evenly(200, 10, NOW - 100 - 50 * E)
    ),
    "partials older than time_target do not count": Case(
        evenly(290, E, NOW - 10) + evenly(500, 10, NOW - DAY - 1)  # without the window: 2.6x the target
    ),
    "a short silence changes nothing": Case(evenly(50, E, NOW - 9 * E)),
    "silent farmer comes down": Case(evenly(50, E, NOW - 16 * E - 1), expected=499),
    "a long silence lowers by at most MAX_STEP": Case(evenly(50, E, NOW - 100 * E), expected=1_000 // MAX_STEP),
    "calls during the same silence do not compound": Case(evenly(50, E, NOW - 16 * E - 61), current=499, expected=499),
    "silence after a raise counts at the higher difficulty": Case(
        evenly(50, E, NOW - 20 * E, difficulty=250), current=1_000, expected=400
    ),
    "a silence older than time_target still counts": Case([(NOW - 2 * DAY, 1_000)], expected=1_000 // MAX_STEP),
    "no partial at all leaves it unchanged": Case([]),
    "no partial since active_since counts as silence": Case([], active_since=NOW - 20 * E, expected=400),
    "a partial after active_since ends the silence": Case(
        evenly(1, E, NOW - 60), active_since=NOW - 20 * E, expected=1_000
    ),
    "never below minimum going down": Case(evenly(100, 3 * E, NOW - 100), minimum=900, expected=900),
    "never below minimum when silent": Case(evenly(50, E, NOW - 100 * E), minimum=600, expected=600),
    "raised to a minimum above the current difficulty": Case([], current=50, minimum=100, expected=100),
    "order of the partials does not matter": Case(list(reversed(evenly(100, 3 * E, NOW - 100))), expected=(320, 340)),
}


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_next_difficulty(case: Case) -> None:
    result = next_difficulty(
        case.partials, case.current, NOW, TARGET, DAY, case.minimum, active_since=case.active_since
    )
    if isinstance(case.expected, tuple):
        low, high = case.expected
        assert low <= result <= high
    else:
        assert result == case.expected


def test_targets_must_be_positive() -> None:
    with pytest.raises(ValueError):
        next_difficulty([], 1_000, NOW, 0, DAY, 1)


@pytest.mark.parametrize(
    ("suggested", "expected"),
    [(None, 100), (19, 100), (1, 100), (20, 20), (2_000, 2_000)],
    ids=["no suggestion", "below minimum", "far below minimum", "at minimum", "above"],
)
def test_suggested_difficulty_for(suggested: int | None, expected: int) -> None:
    assert suggested_difficulty_for(suggested, minimum=20, default=100) == expected


# -- successive calls on a simulated farmer ---------------------------------------------------------------------
def simulate(
    ideal_at: Callable[[int], int], start: int, duration: int, seed: int | None = None, call_every: int = 60
) -> list[int]:
    """Run a farmer whose partials come at the target rate at difficulty ``ideal_at(t)`` (its space), calling
    next_difficulty every ``call_every`` seconds. Evenly spaced partials when ``seed`` is None, Poisson otherwise.
    Returns the difficulty after each call."""
    rng = random.Random(seed)
    partials: list[tuple[int, int]] = []  # oldest first
    difficulty, clock, history = start, Fraction(0), []
    for call_at in range(call_every, duration + 1, call_every):
        while True:
            interval = Fraction(E * difficulty, ideal_at(int(clock)))  # fewer partials at a higher difficulty
            step = interval if seed is None else Fraction(rng.expovariate(1 / float(interval)))
            if clock + step > call_at:
                if seed is not None:
                    clock = Fraction(call_at)  # memoryless: draw afresh at the (possibly new) difficulty
                break
            clock += step
            partials.append((int(clock), difficulty))
        window = [p for p in reversed(partials) if p[0] >= call_at - DAY] or partials[-1:]
        difficulty = next_difficulty(window, difficulty, call_at, TARGET, DAY, 1)
        history.append(difficulty)
    return history


def test_farmer_whose_space_shrinks_comes_down_over_successive_calls() -> None:
    history = simulate(lambda t: 1_000 if t < DAY else 100, start=1_000, duration=2 * DAY)
    calls_per_day = DAY // 60
    before, after = history[:calls_per_day], history[calls_per_day:]
    assert set(before) == {1_000}
    assert all(later <= earlier for earlier, later in pairwise(after)), "it only comes down"
    assert len(set(after)) >= 3, "in several steps, not at once"
    assert 50 <= after[-1] <= 200


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_steady_farmer_with_random_proofs_keeps_its_difficulty(seed: int) -> None:
    history = simulate(lambda t: 1_000, start=1_000, duration=3 * DAY, seed=seed)
    assert 800 <= min(history) and max(history) <= 1_250


@pytest.mark.parametrize("seed", [1, 2])
def test_farmer_with_random_proofs_follows_a_tenfold_shrink(seed: int) -> None:
    history = simulate(lambda t: 1_000 if t < DAY else 100, start=1_000, duration=3 * DAY, seed=seed)
    assert 50 <= history[-1] <= 200


def test_big_farmer_at_a_low_difficulty_goes_up_quickly() -> None:
    history = simulate(lambda t: 1_000_000, start=10, duration=DAY // 2, seed=5)
    two_hours = 2 * 3_600 // 60
    assert 500_000 <= history[two_hours] <= 2_000_000
