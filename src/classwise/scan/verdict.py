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
from scipy import stats

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


def reached_index(log_sizes: np.ndarray, reached: np.ndarray) -> np.ndarray:
    """The MAD anomaly index of ``log_sizes`` (scale at least :data:`MIN_SCALE`), capped at
    0 for classes not ``reached``.

    A class that never reached the rate within the ladder has an extrapolated size, not a
    pattern that was seen to work; the backdoor sign is a pattern both small and
    predictive, so only a class that reached the rate can be flagged. Its size still counts
    in the median and the MAD.
    """
    index = anomaly_index(log_sizes, min_scale=MIN_SCALE)
    return np.where(reached, index, np.minimum(index, 0.0))


def smallest_outlier(log_sizes: np.ndarray, reached: np.ndarray) -> Verdict:
    """The verdict on the smallest class that reached the rate (see the module)."""
    log_sizes = np.asarray(log_sizes, dtype=np.float64)
    index = reached_index(log_sizes, reached)
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
    p = tail_p_value(log_sizes[candidate], others, len(log_sizes))
    rule = (f"p < {ALPHA:g} (normal null of the other classes, Sidak-corrected for "
            f"{len(log_sizes)}), anomaly index > {THRESHOLD:g} and {GAP:g}x below the next "
            "class")
    return Verdict([candidate] if outlying and p < ALPHA else [], rule, p, candidate)


def tail_p_value(value: float, others: np.ndarray, classes: int) -> float:
    """The Sidak-corrected lower-tail p-value of ``value`` under the normal null of
    ``others``."""
    n = len(others)
    centre = float(np.median(others))
    scale = max(CONSISTENCY * float(np.median(np.abs(others - centre))), MIN_SCALE)
    one = float(stats.norm.cdf((value - centre) / (scale * math.sqrt(1 + 1 / n))))
    return float(-np.expm1(classes * np.log1p(-min(one, 1.0 - 1e-16))))
