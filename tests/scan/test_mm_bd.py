"""MM-BD finds the backdoor target of a poisoned model as the class with the largest margin."""

from __future__ import annotations

import json

import helpers
import numpy as np
import pytest
import torch
from scipy import stats

from classwise.errors import UsageError
from classwise.scan.mm_bd import MIN_NULL, fit_null, mm_bd

TARGET = helpers.POISON_TARGET
SHAPE = (1, 8, 8)
NULL_LIKE = [10.2, 9.1, 11.0, 9.8, 10.5, 8.9, 10.1, 9.6, 10.8]
"""Made-up statistics of nine unremarkable classes."""


@pytest.fixture(scope="module")
def scan(poisoned_model):
    return mm_bd(poisoned_model, SHAPE, 10, show_progress=False)


def test_target_has_the_largest_margin_and_is_flagged(scan):
    assert int(np.argmax(scan.statistics)) == TARGET
    assert scan.p_value < 1e-4  # about 3e-7 with seed 0
    assert scan.flagged == [TARGET] and scan.note is None
    others = np.delete(scan.statistics, TARGET)
    assert scan.statistics[TARGET] > 1.4 * others.max()


def test_p_value_is_the_fitted_gammas_order_statistic(scan):
    others = np.delete(scan.statistics, TARGET)
    shape, loc, scale = stats.gamma.fit(others)
    assert scan.null == pytest.approx({"distribution": "gamma", "shape": shape, "loc": loc,
                                       "scale": scale})
    by_hand = 1 - stats.gamma.cdf(scan.statistics[TARGET], shape, loc, scale) ** 10
    assert scan.p_value == pytest.approx(by_hand, rel=1e-6)


def test_images_reach_the_statistics_and_have_the_documented_shapes(scan, poisoned_model):
    assert scan.classes == list(range(10))
    assert scan.statistics.shape == (10,) and scan.statistics.dtype == np.float64
    assert scan.images.shape == (10, *SHAPE) and scan.images.dtype == np.float32
    assert 0 <= scan.images.min() and scan.images.max() <= 1
    assert ((1 <= scan.steps_run) & (scan.steps_run <= 300)).all()
    assert scan.settings == {"starts": 30, "steps": 300, "lr": 1e-2, "tol": 1e-5,
                             "threshold": 0.05, "seed": 0}
    with torch.no_grad():
        logits = poisoned_model(torch.from_numpy(scan.images)).double().numpy()
    own = logits[np.arange(10), np.arange(10)]
    np.fill_diagonal(logits, -np.inf)
    assert np.allclose(own - logits.max(1), scan.statistics, rtol=1e-4)


def test_clean_model_is_not_flagged():
    result = mm_bd(helpers.tiny_model(), SHAPE, 10, show_progress=False)
    assert result.flagged == [] and result.p_value >= 0.05  # about 0.15 with seed 0


@pytest.mark.parametrize("top, expected", [(11.9, 0.0354), (12.5, 0.00246)])
def test_p_value_by_hand_on_made_up_statistics(top, expected):
    statistics = np.array([*NULL_LIKE[:4], top, *NULL_LIKE[4:]])
    fit = fit_null(statistics)
    shape, loc, scale = stats.gamma.fit(NULL_LIKE)
    by_hand = 1 - stats.gamma.cdf(top, shape, loc, scale) ** len(statistics)
    assert fit.p_value == pytest.approx(by_hand, rel=1e-9)
    assert fit.p_value == pytest.approx(expected, rel=1e-2)
    assert fit.null == {"distribution": "gamma", "shape": shape, "loc": loc, "scale": scale}
    assert fit.note is None


def test_far_outlier_keeps_a_positive_p_value():
    fit = fit_null(np.array([*NULL_LIKE, 30.0]))
    shape, loc, scale = stats.gamma.fit(NULL_LIKE)
    assert 1 - stats.gamma.cdf(30.0, shape, loc, scale) ** 10 == 0  # 1 - F ** K rounds to 0
    assert 0 < fit.p_value < 1e-50


@pytest.mark.parametrize("classes", [[0, TARGET], [0, 1, TARGET]])
def test_two_or_three_classes_give_no_p_value_and_flag_nothing(poisoned_model, classes):
    result = mm_bd(poisoned_model, SHAPE, 10, classes=classes, steps=5, show_progress=False)
    assert result.p_value is None and result.null == {} and result.flagged == []
    assert f"{len(classes)} classes leave {len(classes) - 1} statistic(s)" in result.note
    assert f"needs at least {MIN_NULL}" in result.note
    assert result.statistics.shape == (len(classes),) and np.isfinite(result.statistics).all()


def test_failed_fit_gives_no_p_value():
    fit = fit_null(np.array([2.0, 2.0, 2.0, 2.0, 9.0]))
    assert fit.p_value is None and fit.null == {}
    assert "the Gamma fit to the statistics besides the largest failed" in fit.note


def test_same_seed_same_result_and_classes_independent_of_order(poisoned_model):
    kwargs = dict(steps=15, starts=4, show_progress=False)
    first = mm_bd(poisoned_model, SHAPE, 10, classes=[1, TARGET, 5], **kwargs)
    again = mm_bd(poisoned_model, SHAPE, 10, classes=[1, TARGET, 5], **kwargs)
    swapped = mm_bd(poisoned_model, SHAPE, 10, classes=[5, TARGET, 1], **kwargs)
    other_seed = mm_bd(poisoned_model, SHAPE, 10, classes=[1, TARGET, 5], seed=1, **kwargs)
    assert np.array_equal(first.statistics, again.statistics)
    assert np.array_equal(first.images, again.images)
    assert np.allclose(first.statistics, swapped.statistics[::-1], rtol=1e-5)
    assert np.allclose(first.images, swapped.images[::-1], atol=1e-5)
    assert not np.allclose(first.statistics, other_seed.statistics)
    assert other_seed.settings["seed"] == 1


def test_save_writes_arrays_and_summary(scan, tmp_path):
    scan.save(tmp_path)
    arrays = np.load(tmp_path / "mm_bd.npz")
    assert np.array_equal(arrays["statistics"], scan.statistics)
    assert np.array_equal(arrays["images"], scan.images)
    summary = json.loads((tmp_path / "mm_bd.json").read_text())
    assert summary["flagged"] == [TARGET] and summary["p_value"] == scan.p_value
    assert summary["null"] == scan.null and summary["settings"]["seed"] == 0


def test_model_mode_is_restored_and_numpy_sizes_are_accepted(poisoned_model):
    poisoned_model.train()
    mm_bd(poisoned_model, np.array(SHAPE), np.int64(10), classes=[0, 1], steps=1,
          show_progress=False)
    assert poisoned_model.training
    poisoned_model.eval()


@pytest.mark.parametrize("kwargs, message", [
    ({"num_classes": 9}, r"the model returns \(2, 10\) for 2 images; expected \(2, 9\)"),
    ({"image_shape": (3, 8, 8)}, r"the model rejects images of shape \(3, 8, 8\)"),
    ({"image_shape": (8, 8)}, r"image_shape must be \(channels, height, width\)"),
    ({"image_shape": (1, 8.0, 8)}, r"positive sizes, got \(1, 8\.0, 8\)"),
    ({"num_classes": 1}, "the model must have at least 2, got num_classes=1"),
    ({"classes": [0, 10]}, r"at least 2 distinct class indices in 0\.\.9, got \[0, 10\]"),
    ({"classes": [2, 2]}, "list each class to scan once"),
    ({"classes": [4]}, "at least 2 distinct"),
    ({"steps": 0}, r"need starts >= 1, steps >= 1.*got 30, 0,"),
    ({"threshold": 1.0}, "0 < threshold < 1"),
])
def test_bad_arguments_are_usage_errors(poisoned_model, kwargs, message):
    args = {"image_shape": SHAPE, "num_classes": 10, "steps": 1} | kwargs
    with pytest.raises(UsageError, match=message):
        mm_bd(poisoned_model, show_progress=False, **args)


@pytest.mark.parametrize("statistics", [[1.0], [[1.0, 2.0]], [1.0, np.nan, 2.0]])
def test_unusable_statistics_are_usage_errors(statistics):
    with pytest.raises(UsageError, match="needs a 1-D array of at least 2 finite statistics"):
        fit_null(np.array(statistics))
