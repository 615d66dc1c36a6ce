"""Neural Cleanse finds the backdoor target of a poisoned model as the smallest-trigger class."""

from __future__ import annotations

import json

import helpers
import numpy as np
import pytest
import torch

from classwise.errors import UsageError
from classwise.scan.neural_cleanse import _CostSchedule, neural_cleanse

TARGET = helpers.POISON_TARGET


@pytest.fixture(scope="module")
def scan(poisoned_model, digits):
    return neural_cleanse(poisoned_model, digits.train, np.arange(len(digits.train)), range(10),
                          show_progress=False)


def test_target_has_smallest_trigger_and_is_flagged(scan):
    assert int(np.argmin(scan.l1)) == TARGET
    assert scan.anomaly_index[TARGET] > 2
    assert TARGET in scan.flagged
    assert scan.l1[TARGET] < 0.6 * np.median(scan.l1)


def test_triggers_work_and_have_the_documented_shapes(scan):
    assert scan.classes == list(range(10))
    assert scan.masks.shape == (10, 8, 8) and scan.patterns.shape == (10, 1, 8, 8)
    assert scan.masks.dtype == scan.patterns.dtype == np.float32
    assert 0 <= scan.masks.min() and scan.masks.max() <= 1
    assert np.allclose(scan.l1, scan.masks.sum(axis=(1, 2)), rtol=1e-5)
    assert (scan.success >= 0.85).all()


def test_same_seed_same_result_and_classes_independent_of_order(poisoned_model, digits):
    kwargs = dict(indices=np.arange(300), steps=15, show_progress=False)
    first = neural_cleanse(poisoned_model, digits.train, classes=[1, TARGET], **kwargs)
    again = neural_cleanse(poisoned_model, digits.train, classes=[1, TARGET], **kwargs)
    swapped = neural_cleanse(poisoned_model, digits.train, classes=[TARGET, 1], **kwargs)
    assert np.array_equal(first.masks, again.masks) and np.array_equal(first.l1, again.l1)
    assert np.allclose(first.masks, swapped.masks[::-1], atol=1e-4)


def test_save_writes_arrays_and_summary(scan, tmp_path):
    scan.save(tmp_path)
    arrays = np.load(tmp_path / "neural_cleanse.npz")
    assert np.array_equal(arrays["masks"], scan.masks)
    assert arrays["flagged"].tolist() == scan.flagged
    summary = json.loads((tmp_path / "neural_cleanse.json").read_text())
    assert summary["flagged"] == scan.flagged and summary["settings"]["steps"] == 150


def test_model_mode_is_restored(poisoned_model, digits):
    poisoned_model.train()
    neural_cleanse(poisoned_model, digits.train, np.arange(50), [0, 1], steps=1,
                   show_progress=False)
    assert poisoned_model.training
    poisoned_model.eval()


@pytest.mark.parametrize("kwargs, message", [
    ({"classes": [0, 10]}, r"classes must be distinct class indices in 0\.\.9"),
    ({"classes": [2, 2]}, "list each class to scan once"),
    ({"classes": []}, "classes must be distinct"),
    ({"indices": []}, "indices must be a non-empty selection"),
    ({"indices": [5000]}, r"indices must be a non-empty selection of 0\.\.1436"),
    ({"steps": 0}, r"steps \(0\) and batch size \(32\) must be at least 1"),
])
def test_bad_arguments_are_usage_errors(poisoned_model, digits, kwargs, message):
    args = {"indices": np.arange(20), "classes": [0, 1], "steps": 1} | kwargs
    with pytest.raises(UsageError, match=message):
        neural_cleanse(poisoned_model, digits.train, show_progress=False, **args)


def test_images_of_the_scanned_class_alone_are_rejected(poisoned_model, digits):
    with pytest.raises(UsageError, match="all given images belong to class 4"):
        neural_cleanse(poisoned_model, digits.train, digits.train.indices_of(4), [4],
                       show_progress=False)


def test_cost_schedule_starts_raises_and_lowers():
    schedule = _CostSchedule(1, init_cost=1e-3, patience=2, threshold=0.99,
                             device=torch.device("cpu"))
    hit, miss = torch.tensor([1.0]), torch.tensor([0.5])
    costs, improved = [], []
    for success, l1 in [(hit, 9.0), (miss, 1.0), (hit, 8.0), (hit, 8.5),  # reached twice: start
                        (hit, 7.0), (hit, 7.5),                           # twice more: x1.5
                        (miss, 5.0), (miss, 5.0),                         # missed twice: / 1.5**1.5
                        (miss, 5.0)]:
        improved.append(bool(schedule.update(success, torch.tensor([l1]))))
        costs.append(float(schedule.cost))
    assert costs == pytest.approx([0, 0, 0, 1e-3, 1e-3, 1.5e-3, 1.5e-3, 1.5e-3 / 1.5 ** 1.5,
                                   1.5e-3 / 1.5 ** 1.5])
    assert improved == [True, False, True, False, True, False, False, False, False]
    assert float(schedule.best_l1) == 7.0
