"""The verdict: one class at most, a calibrated p-value where there are classes enough to fit a
null, the anomaly index alone (and no p-value) where there are not."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from classwise.scan.mad import CONSISTENCY
from classwise.scan.verdict import ALPHA, MIN_SCALE, smallest_outlier, tail_p_value


def sizes(*pixels: float) -> np.ndarray:
    return np.log(np.asarray(pixels, dtype=np.float64))


def test_the_p_value_is_the_sidak_corrected_normal_tail_of_the_other_classes():
    logs = sizes(30, 35, 40, 45, 50, 38, 42, 36, 44, 5)
    others = logs[:-1]
    centre = np.median(others)
    scale = max(CONSISTENCY * np.median(np.abs(others - centre)), MIN_SCALE)
    one = stats.norm.cdf((logs[-1] - centre) / (scale * math.sqrt(1 + 1 / 9)))
    assert tail_p_value(logs[-1], others, 10) == pytest.approx(-np.expm1(10 * np.log1p(-one)),
                                                               rel=1e-9)
    verdict = smallest_outlier(logs, np.ones(10, bool))
    assert verdict.flagged == [9] and verdict.candidate == 9 and verdict.p_value < ALPHA


def test_a_clean_spread_of_sizes_is_not_accused():
    verdict = smallest_outlier(sizes(30, 35, 40, 45, 50, 38, 42, 36, 44, 28), np.ones(10, bool))
    assert verdict.flagged == [] and verdict.p_value > 0.3


def test_only_one_class_is_flagged_and_not_one_of_two_small_ones():
    # two classes far below the rest but close to each other: no single target stands out
    both = smallest_outlier(sizes(30, 35, 40, 45, 50, 38, 42, 36, 6, 5), np.ones(10, bool))
    assert both.flagged == [] and both.candidate == 9
    # one far below, the next a little below the others: only the first is flagged
    one = smallest_outlier(sizes(30, 35, 40, 45, 50, 38, 42, 36, 22, 5), np.ones(10, bool))
    assert one.flagged == [9]


def test_a_class_that_never_reached_the_rate_is_never_flagged():
    logs = sizes(30, 35, 40, 45, 50, 38, 42, 36, 44, 5)
    reached = np.ones(10, bool)
    reached[9] = False
    verdict = smallest_outlier(logs, reached)
    assert verdict.flagged == [] and verdict.candidate != 9


@pytest.mark.parametrize("count, flagged", [(2, False), (3, True), (4, True)])
def test_too_few_classes_for_a_null_claim_no_p_value(count, flagged):
    logs = sizes(*np.linspace(38, 42, count - 1), 2.0)
    verdict = smallest_outlier(logs, np.ones(count, bool))
    assert verdict.p_value is None and "too few to fit a null" in verdict.rule
    # the anomaly index alone decides, and says so (of two classes neither lies 2 robust
    # deviations from their median)
    assert verdict.flagged == ([count - 1] if flagged else [])
