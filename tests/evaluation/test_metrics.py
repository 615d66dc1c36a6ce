"""Predictive power, its baselines, and that they are measured on the test split only."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from helpers import recording_digits, tiny_model
from torch import nn

from classwise.data.base import ArraySplit, Dataset
from classwise.errors import UsageError
from classwise.evaluation.measure import TestSet as EvalSet  # not "Test*": pytest would collect it
from classwise.evaluation.measure import class_figures, pattern_figures
from classwise.evaluation.metrics import other_class_indices, predictive_power, random_pattern


class CornerModel(nn.Module):
    """Predicts class 1 when the top-left pixel is bright, else class 0 (never class 2)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        corner = x[:, 0, 0, 0]
        return torch.stack([torch.zeros_like(corner), 10 * (corner - 0.5),
                            torch.full_like(corner, -1.0)], 1)


def split_of(corners: list[float], labels: list[int]) -> ArraySplit:
    """2x2 grey images, dark but for the given top-left values."""
    x = np.zeros((len(labels), 1, 2, 2), np.float32)
    x[:, 0, 0, 0] = corners
    return ArraySplit(x, np.array(labels))


# Labels 0, 0, 2, 2, 1, 1: one image of class 0 is already bright (classified as 1).
TEST = split_of([1.0, 0.0, 0.0, 0.0, 1.0, 0.0], [0, 0, 2, 2, 1, 1])
CANVAS = torch.ones(1, 2, 2)
CORNER = np.array([[True, False], [False, False]])


def test_pattern_on_the_deciding_pixel_fools_every_other_image():
    assert predictive_power(CornerModel(), TEST, 1, CANVAS, CORNER) == 1.0


def test_pattern_elsewhere_changes_nothing():
    assert predictive_power(CornerModel(), TEST, 1, CANVAS, ~CORNER) == 0.25


def test_no_pattern_counts_other_classes_only():
    # 1 of the 4 images outside class 1 is classified as 1; class 1's own images do not count.
    assert predictive_power(CornerModel(), TEST, 1, CANVAS, None) == 0.25
    assert predictive_power(CornerModel(), TEST, 2, CANVAS, CORNER) == 0.0


def test_dark_canvas_takes_the_fooling_away():
    assert predictive_power(CornerModel(), TEST, 1, torch.zeros(1, 2, 2), CORNER) == 0.0


def test_only_target_images_is_an_error():
    only_ones = split_of([0.0, 0.0], [1, 1])
    with pytest.raises(UsageError, match="no images outside class 1"):
        other_class_indices(only_ones, 1)


def test_random_pattern_is_seeded_per_class():
    a = random_pattern((8, 8), 6, seed=0, target=3)
    assert a.dtype == bool and a.shape == (8, 8) and a.sum() == 6
    np.testing.assert_array_equal(a, random_pattern((8, 8), 6, seed=0, target=3))
    assert not np.array_equal(a, random_pattern((8, 8), 6, seed=0, target=4))
    assert not np.array_equal(a, random_pattern((8, 8), 6, seed=1, target=3))


def test_evaluate_pattern_reads_the_test_split():
    """Train images are all bright (class 1 everywhere); test images are dark."""
    data = Dataset("special", split_of([1.0] * 3, [0, 1, 2]), TEST, ["a", "b", "c"])
    figures = pattern_figures(EvalSet(CornerModel(), data.test, 3), 1, CANVAS.numpy(), CORNER,
                              seed=0)
    assert figures["no_pattern"] == 0.25
    assert figures["predictive_power"] == 1.0
    assert 0.25 <= figures["random_pixels"] <= 1.0


def test_the_figures_never_load_training_images():
    data = recording_digits()
    pattern = np.zeros((8, 8), bool)
    pattern[3:5, 3:5] = True
    pattern_figures(EvalSet(tiny_model(), data.test, 10), 7, np.ones((1, 8, 8), np.float32),
                    pattern, seed=0)
    assert data.train.loaded == []
    np.testing.assert_array_equal(np.unique(data.test.all_loaded()), np.arange(len(data.test)))


def test_the_shared_test_set_gives_exactly_the_figures_of_each_class_measured_alone():
    """One plain pass and one loading of the test images serve every class; each figure
    equals :func:`predictive_power` run for that class alone."""
    from helpers import digits

    model, data = tiny_model(), digits()
    test = EvalSet(model, data.test, 10)
    gen = torch.Generator().manual_seed(5)
    for t in range(10):
        canvas = torch.rand(1, 8, 8, generator=gen)
        ranks = torch.randperm(64, generator=gen).view(8, 8).numpy()
        pattern = ranks < 6
        figures = class_figures(test, t, canvas.numpy(), pattern, seed=3, ranks=ranks)
        rand = random_pattern((8, 8), 6, 3, t)
        assert figures["predictive_power"] == predictive_power(model, data.test, t, canvas,
                                                               pattern)
        assert figures["no_pattern"] == predictive_power(model, data.test, t, canvas, None)
        assert figures["random_pixels"] == predictive_power(model, data.test, t, canvas, rand)
        for n, power in figures["budget_curve"]:
            cut = ranks < n
            assert power == round(predictive_power(model, data.test, t, canvas, cut), 4)


def test_by_source_counts_each_source_class_and_weights_to_the_pooled_power():
    """Hand count on a tiny model: per source class, the share flipped to the target."""
    from helpers import digits, power_by_hand

    model, data = tiny_model(), digits()
    test = EvalSet(model, data.test, 10)
    canvas = data.train.load([int(np.flatnonzero(data.train.labels == 4)[0])])[0].numpy()
    pattern = np.zeros((8, 8), bool)
    pattern[2:6, 3:5] = True
    power, shares = test.by_source(4, canvas, pattern)
    assert shares[4] is None and len(shares) == 10
    with torch.no_grad():
        for s in range(10):
            if s == 4:
                continue
            x = data.test.load(np.flatnonzero(data.test.labels == s)).numpy()
            stamped = torch.from_numpy(np.where(pattern, canvas, x).astype(np.float32))
            assert shares[s] == float((model(stamped).argmax(1) == 4).double().mean())
    counts = np.bincount(data.test.labels, minlength=10)
    weighted = sum(counts[s] * shares[s] for s in range(10) if s != 4) / (counts.sum() - counts[4])
    assert power == pytest.approx(weighted, abs=1e-12)
    assert power == power_by_hand(model, data, 4, canvas, pattern)
    assert len({v for v in shares if v is not None}) > 2  # the classes really differ
