"""Which class, if any, a scan accuses: the MAD index and a calibrated p-value.

Per class a scan measures a statistic whose small side is the backdoor sign (``classwise``:
``log(pixels_to_reach)``). Two scores come of it:

- the **anomaly index**, Neural Cleanse's robust z-score (:mod:`classwise.scan.mad`), with
  its scale floored at ``log(MIN_FACTOR) / THRESHOLD`` and capped at 0 for a class that
  never reached the rate (:func:`reached_index`);
- a **p-value** for the most extreme class (the smallest that reached the rate): the
  chance that, were it one more class like the others, its value would be this small. The
  null is a normal distribution centred on the other classes' median, with their
  ``1.4826 * MAD`` (floored as above) as its standard deviation, widened by
  ``sqrt(1 + 1/n)`` for the ``n`` other classes (one more draw, its centre estimated); the
  tail probability is corrected for having picked the smallest of ``K`` classes (Sidak:
  ``1 - (1 - p) ** K``). (A Student t null with ``n - 1`` degrees of freedom was tried
  first: on the development zoo's recorded sizes it left a Trojan target six times smaller
  than the next class at p = 0.08, too heavy-tailed for nine classes.)

A backdoor has one target, so a scan flags at most that one class, and only when all three
hold: its corrected p-value is below ``ALPHA`` (0.05), its anomaly index exceeds the
threshold (2), and its statistic stands at least ``log(GAP)`` below the next smallest
class's (its pattern at most ``1 / GAP`` of that class's size): a natural class that is
merely the smallest of several small ones is not accused. With fewer than ``MIN_NULL``
other classes there is no null to fit; the verdict then rests on the anomaly index alone
and says so, and claims no p-value.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from classwise.scan.mad import CONSISTENCY, THRESHOLD, anomaly_index

MIN_FACTOR = 2.0
"""A flagged class's pattern is at least this many times smaller than the median class's:
the MAD scale of ``log(pixels_to_reach)`` is at least ``log(MIN_FACTOR) / THRESHOLD``.
A class's size differs between clean models of the same data by a factor of up to 1.4 on
mnist5k (the three reference models of ``bench/backdoor.py``, each against the other two,
over the classes all three reach), while a patch or blend target's shrinks two- to
fifty-fold. Against a reference the classes can lie closer together than that model-to-
model noise, and the MAD alone would then flag a class only a quarter smaller."""
ALPHA = 0.05
GAP = 1.5
MIN_NULL = 4
"""Fewest other classes a null is fitted to (so at least five classes in all)."""
MIN_SCALE = math.log(MIN_FACTOR) / THRESHOLD


@dataclass(frozen=True)
class Verdict:
    """The classes flagged (positions, at most one), the rule that decided and its p-value
    (None where the rule claims none), and the most extreme class's position."""

    flagged: list[int]
    rule: str
    p_value: float | None
    candidate: int


def min_scale(min_factor: float = MIN_FACTOR) -> float:
    """The floor of the MAD scale of log sizes that makes a flagged class at least
    ``min_factor`` times smaller than the median."""
    return math.log(min_factor) / THRESHOLD


def reached_index(log_sizes: np.ndarray, reached: np.ndarray,
                  min_factor: float = MIN_FACTOR) -> np.ndarray:
    """The MAD anomaly index of ``log_sizes`` (scale floored by ``min_factor``, see
    :func:`min_scale`), capped at 0 for classes not ``reached``.

    A class that never reached the rate within the ladder has an extrapolated size, not a
    pattern that was seen to work; the backdoor sign is a pattern both small and
    predictive, so only a class that reached the rate can be flagged. Its size still counts
    in the median and the MAD.
    """
    index = anomaly_index(log_sizes, min_scale=min_scale(min_factor))
    return np.where(reached, index, np.minimum(index, 0.0))


def smallest_outlier(log_sizes: np.ndarray, reached: np.ndarray,
                     min_factor: float = MIN_FACTOR, tests: int = 1) -> Verdict:
    """The verdict on the smallest class that reached the rate (see the module), its
    p-value corrected for ``tests`` statistics looked at (the pattern families) besides the
    classes."""
    log_sizes = np.asarray(log_sizes, dtype=np.float64)
    index = reached_index(log_sizes, reached, min_factor)
    if not np.any(reached):
        return Verdict([], "no class reached the rate", None, int(np.argmin(log_sizes)))
    candidate = int(np.flatnonzero(reached)[np.argmin(log_sizes[reached])])
    others = np.delete(log_sizes, candidate)
    gap = bool(np.min(others) - log_sizes[candidate] >= math.log(GAP))
    outlying = bool(index[candidate] > THRESHOLD) and gap
    if len(others) < MIN_NULL:
        rule = (f"anomaly index > {THRESHOLD:g} (and {GAP:g}x below the next class): "
                f"{len(others) + 1} classes are too few to fit a null for a p-value")
        return Verdict([candidate] if outlying else [], rule, None, candidate)
    p = tail_p_value(log_sizes[candidate], others, len(log_sizes) * tests,
                     min_scale(min_factor))
    rule = (f"p < {ALPHA:g} (normal null of the other classes, Sidak-corrected for "
            f"{len(log_sizes) * tests}), anomaly index > {THRESHOLD:g} and {GAP:g}x below the next "
            "class")
    return Verdict([candidate] if outlying and p < ALPHA else [], rule, p, candidate)


def tail_p_value(value: float, others: np.ndarray, classes: int,
                 floor: float = MIN_SCALE) -> float:
    """The lower-tail p-value of ``value`` under the normal null of ``others`` (scale at
    least ``floor``), Sidak-corrected for ``classes`` comparisons."""
    from scipy import stats  # here, not at the top: importing it costs every command 0.3 s

    n = len(others)
    centre = float(np.median(others))
    scale = max(CONSISTENCY * float(np.median(np.abs(others - centre))), floor)
    one = float(stats.norm.cdf((value - centre) / (scale * math.sqrt(1 + 1 / n))))
    return float(-np.expm1(classes * np.log1p(-min(one, 1.0 - 1e-16))))


def size_to_reach(budgets: list[float], rates: list[float], rate: float, top: float) -> float:
    """A size at which a pattern would reach ``rate``, from the ``rates`` below it that it
    reached at ascending ``budgets``: the line through the last two in (log size, rate),
    capped at ``top`` (``top`` itself from fewer than two budgets or a rate that did not
    climb)."""
    if len(budgets) < 2:
        return float(top)
    slope = (rates[-1] - rates[-2]) / (math.log(budgets[-1]) - math.log(budgets[-2]))
    if slope <= 0:
        return float(top)
    return float(min(math.exp(math.log(budgets[-1]) + (rate - rates[-1]) / slope), top))


def strongest(verdicts: dict[str, Verdict],
              indices: dict[str, np.ndarray]) -> tuple[str, Verdict]:
    """The family whose verdict decides, and that verdict: of the families that flag a
    class, the one with the smallest p-value (the largest anomaly index where none is
    claimed); when none flags, the one whose most extreme class has the largest index.
    Ties go to the family given first."""
    flagging = [f for f, v in verdicts.items() if v.flagged]
    if flagging:
        def strength(f: str) -> tuple[float, float]:
            v = verdicts[f]
            return (1.0 if v.p_value is None else v.p_value, -indices[f][v.candidate])

        best = min(flagging, key=strength)
    else:
        best = max(verdicts, key=lambda f: indices[f][verdicts[f].candidate])
    return best, verdicts[best]
