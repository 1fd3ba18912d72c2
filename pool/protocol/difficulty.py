"""Per-farmer difficulty: aim for ``number_of_partials_target`` partials every ``time_target`` seconds.

A partial is worth its difficulty in points, so the difficulty does not change what a farmer earns on average; it sets
how often the farmer reports (load on the pool) and how noisy its share is. The adjustment therefore prefers to stay
put: it moves only on clear evidence, by a bounded factor per step, and it must come down as surely as it goes up
(a farmer whose space shrank, or whose difficulty is too high, would otherwise send nothing and earn nothing).

Proofs arrive as a Poisson process whose rate is proportional to the farmer's space divided by the difficulty. Let
``E = time_target / number_of_partials_target``, the interval between partials the pool aims for. All arithmetic is on
integers: both sides of each comparison are multiplied out instead of divided.

1. Silence. Counted from the newest partial, of any difficulty (or from ``active_since`` if that is later). Past
   ``SILENT_INTERVALS * E`` -- a gap a farmer at the target rate leaves once in about 3000 -- the farmer has spent the
   silence at difficulties no higher than ``h``, the larger of the newest partial's and the current difficulty. A
   silence ``S`` is that unlikely unless the farmer's interval at ``h`` is at least ``S / SILENT_INTERVALS``, so the
   difficulty must come down to ``h * SILENT_INTERVALS * E / S``. It comes down only once that is at least
   ``SILENCE_STEP`` times lower: a long silence lowers in a few halvings (16 E, 32 E, ...), not in a creep of small
   changes, and a chance gap of a healthy farmer changes nothing. The result depends on the length of the silence, not
   on how often this is called, so repeated calls during one silence do not compound.
2. Evidence. Only partials of the last ``time_target`` seconds, and of those only the newest run at the current
   difficulty (a partial at another difficulty ends it: it was earned under other conditions, and it marks roughly
   when the difficulty last changed). With fewer than ``MIN_PARTIALS`` of them, nothing changes.
3. Rate. The oldest partial of the run starts the clock; the ``c`` others arrived in the ``span`` seconds from it to
   now, where the target predicts ``e = span / E``. The difficulty moves only when ``|c - e| > 3 sqrt(max(c, e))``:
   outside three standard deviations of the Poisson noise whichever of the two is the truth. A steady farmer keeps its
   difficulty, and a handful of lucky (or unlucky) partials cannot move it. Then it moves by ``c / e``.
4. Each step is bounded to a factor of ``MAX_STEP`` either way; the result is never below ``minimum``.

tests/protocol/test_difficulty.py simulates Poisson farmers: a steady farmer keeps its difficulty, and one whose space
shrinks tenfold follows it down in a few changes (docs/performance.md has the figures measured on such a simulation).
"""

from __future__ import annotations

from collections.abc import Sequence

from pool.store.models import PartialsSummary

MIN_PARTIALS = 5
"""Partials at the current difficulty needed before the rate is trusted."""

SILENT_INTERVALS = 8
"""Target intervals without any partial after which the farmer counts as silent (chance: e^-8, 1 gap in ~3000)."""

SILENCE_STEP = 2
"""A silence lowers the difficulty only once it calls for at least this factor."""

MAX_STEP = 4
"""Largest factor by which one adjustment raises or lowers the difficulty."""

CONFIDENCE_SIGMAS = 3
"""How many standard deviations of Poisson noise the observed count must be off before the difficulty moves."""


def summarize(partials: Sequence[tuple[int, int]], current_difficulty: int, window_start: int) -> PartialsSummary:
    """The summary of partials given as (received_at, difficulty), in any order.

    In newest-first order (ties: higher difficulty first) the run is the partials at the current difficulty received
    at or after ``window_start`` up to the first partial at another difficulty or before the window.
    """
    newest_first = sorted(partials, reverse=True)
    run = _run_at_current_difficulty(newest_first, current_difficulty, window_start)
    return PartialsSummary(newest_first[0] if newest_first else None, len(run), run[-1] if run else None)


def next_difficulty(
    partials: Sequence[tuple[int, int]] | PartialsSummary,
    current_difficulty: int,
    now: int,
    number_of_partials_target: int,
    time_target: int,
    minimum: int,
    *,
    active_since: int | None = None,
) -> int:
    """The difficulty a farmer should have now.

    ``partials``: the farmer's partials as (received_at, difficulty), in any order, at least those of the last
    ``time_target`` seconds. Older ones are used only to measure a silence: include the newest partial even when it
    is older, or a farmer silent for longer than ``time_target`` stops coming down. Or their summary (``summarize``
    with window_start = now - time_target), as the store computes it.
    ``active_since``: optional time from which a silence may be counted when there is no later partial (when the
    farmer joined, say). Without partials and without it nothing is known, and the difficulty stays.
    """
    summary = (
        partials
        if isinstance(partials, PartialsSummary)
        else summarize(partials, current_difficulty, now - time_target)
    )
    if number_of_partials_target <= 0 or time_target <= 0:
        raise ValueError("number_of_partials_target and time_target must be positive")
    lowered = _lowered_for_silence(
        summary.newest, active_since, current_difficulty, now, number_of_partials_target, time_target
    )
    if lowered is not None:
        return _bounded(lowered, current_difficulty, minimum)
    if summary.run_count < MIN_PARTIALS or summary.run_oldest is None:
        return max(current_difficulty, minimum)
    span = max(now - summary.run_oldest, 1)
    proposed = _rescaled_for_rate(
        summary.run_count - 1, span, current_difficulty, number_of_partials_target, time_target
    )
    if proposed is None:
        return max(current_difficulty, minimum)
    return _bounded(proposed, current_difficulty, minimum)


def suggested_difficulty_for(suggested: int | None, minimum: int, default: int) -> int:
    """The starting difficulty of a farmer: its own suggestion when it respects the pool's minimum, else the default."""
    if suggested is not None and suggested >= minimum:
        return suggested
    return default


def _lowered_for_silence(
    newest: tuple[int, int] | None,
    active_since: int | None,
    current_difficulty: int,
    now: int,
    target: int,
    time_target: int,
) -> int | None:
    """The lower difficulty a long silence calls for, or None when the farmer is not silent (or already low enough)."""
    highest_during_silence = current_difficulty
    last_sign_of_life = active_since
    if newest is not None:
        newest_at, newest_difficulty = newest
        highest_during_silence = max(highest_during_silence, newest_difficulty)
        last_sign_of_life = newest_at if last_sign_of_life is None else max(last_sign_of_life, newest_at)
    if last_sign_of_life is None:
        return None
    silence = now - last_sign_of_life
    # silence > SILENT_INTERVALS * E, with E = time_target / target
    if silence * target <= SILENT_INTERVALS * time_target:
        return None
    # highest * SILENT_INTERVALS * E / silence
    ceiling = highest_during_silence * SILENT_INTERVALS * time_target // (target * silence)
    return ceiling if ceiling * SILENCE_STEP <= current_difficulty else None


def _run_at_current_difficulty(
    newest_first: Sequence[tuple[int, int]], current_difficulty: int, window_start: int
) -> list[int]:
    """Receipt times of the newest run of partials at the current difficulty within the window, newest first."""
    run: list[int] = []
    for received_at, difficulty in newest_first:
        if difficulty != current_difficulty or received_at < window_start:
            break
        run.append(received_at)
    return run


def _rescaled_for_rate(count: int, span: int, current_difficulty: int, target: int, time_target: int) -> int | None:
    """The difficulty for ``count`` partials in ``span`` seconds, or None when that is within the noise of the target.

    Counts are scaled by time_target: observed = c * T and expected = target * span = e * T.
    """
    observed = count * time_target
    expected = target * span
    deviation = observed - expected
    # |c - e| <= k * sqrt(max(c, e)), squared and multiplied by T^2
    if deviation * deviation <= CONFIDENCE_SIGMAS**2 * time_target * max(observed, expected):
        return None
    return current_difficulty * observed // expected


def _bounded(proposed: int, current_difficulty: int, minimum: int) -> int:
    lowest = -(-current_difficulty // MAX_STEP)  # ceiling division: never more than MAX_STEP times lower
    highest = current_difficulty * MAX_STEP
    return max(minimum, min(highest, max(lowest, proposed)))
