"""The MAD outlier rule, checked on numbers worked out by hand."""

from __future__ import annotations

import numpy as np
import pytest

from classwise.errors import UsageError
from classwise.scan.mad import anomaly_index, flag_outliers


def test_odd_count_by_hand():
    # median 3; |v - 3| = 2, 1, 0, 1, 97 -> MAD 1 -> scale 1.4826
    index = anomaly_index(np.array([1.0, 2.0, 3.0, 4.0, 100.0]))
    assert index == pytest.approx([2 / 1.4826, 1 / 1.4826, 0.0, -1 / 1.4826, -97 / 1.4826])
    assert flag_outliers([1.0, 2.0, 3.0, 4.0, 100.0]).tolist() == []
    assert flag_outliers([1.0, 2.0, 3.0, 4.0, 100.0], threshold=1.0).tolist() == [0]


def test_even_count_uses_mean_of_middle_values():
    # median (11 + 12) / 2 = 11.5; deviations 11, 1.5, .5, .5, 1.5, 2.5 -> MAD (1.5 + 1.5) / 2
    values = [0.5, 10.0, 11.0, 12.0, 13.0, 14.0]
    index = anomaly_index(values)
    assert index[0] == pytest.approx(11 / (1.4826 * 1.5))
    assert index[-1] == pytest.approx(-2.5 / (1.4826 * 1.5))
    assert flag_outliers(values).tolist() == [0]


def test_only_small_values_are_flagged():
    # median 11; deviations 1, .5, 0, .5, 89 -> MAD .5: 100 lies 120 deviations above
    values = [10.0, 10.5, 11.0, 11.5, 100.0]
    assert anomaly_index(values)[-1] == pytest.approx(-89 / (1.4826 * 0.5))
    assert flag_outliers(values).tolist() == []


def test_zero_mad_makes_any_smaller_value_an_outlier():
    assert anomaly_index([5, 5, 5, 1, 9]).tolist() == [0, 0, 0, np.inf, -np.inf]
    assert flag_outliers([5, 5, 5, 1, 9]).tolist() == [3]
    assert flag_outliers([2, 2, 2]).tolist() == []


def test_min_scale_is_a_floor_under_the_scale():
    # the odd-count numbers: scale 1.4826 stays when the floor is below it ...
    values = [1.0, 2.0, 3.0, 4.0, 100.0]
    assert anomaly_index(values, min_scale=1.0) == pytest.approx(anomaly_index(values))
    # ... and is replaced by it when above: 1 lies (3 - 1) / 4 below the median
    assert anomaly_index(values, min_scale=4.0) == pytest.approx([0.5, 0.25, 0, -0.25, -24.25])
    # with MAD 0 the floor keeps the index finite
    assert anomaly_index([5, 5, 5, 1, 9], min_scale=0.5).tolist() == [0, 0, 0, 8, -8]


@pytest.mark.parametrize("values", [[], [[1.0, 2.0]], [1.0, np.nan, 2.0]])
def test_bad_values_are_usage_errors(values):
    with pytest.raises(UsageError, match="pass one value per class"):
        anomaly_index(values)
