"""The generated ``shapes`` dataset: determinism, layout, ground-truth masks, learnability."""

from __future__ import annotations

import numpy as np
import pytest

from classwise.data.base import ArraySplit, Dataset
from classwise.data.shapes import SHAPE_NAMES, make_shapes


@pytest.fixture(scope="module")
def shapes() -> Dataset:
    return make_shapes(seed=0)


def _arrays(split: ArraySplit) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    return split.images, split.labels, split.object_masks


def _dilate(masks: np.ndarray, steps: int) -> np.ndarray:
    """Grow boolean masks ``(N, H, W)`` by ``steps`` pixels (8-neighbourhood)."""
    for _ in range(steps):
        padded = np.pad(masks, ((0, 0), (1, 1), (1, 1)))
        h, w = masks.shape[1:]
        masks = np.any([padded[:, dy:dy + h, dx:dx + w] for dy in range(3) for dx in range(3)],
                       axis=0)
    return masks


def _radial_features(masks: np.ndarray) -> np.ndarray:
    """Rotation- and scale-free silhouette features: radial histogram, fill, elongation."""
    features = []
    for mask in masks:
        ys, xs = np.nonzero(mask)
        r = np.hypot(ys - ys.mean(), xs - xs.mean())
        histogram = np.histogram(r / r.max(), bins=8, range=(0, 1))[0] / len(r)
        fill = len(r) / (np.pi * r.max() ** 2)
        small, large = np.linalg.eigvalsh(np.cov(np.stack([ys, xs])))
        features.append(np.r_[histogram, fill, small / large])
    return np.array(features)


def _nearest_centroid_accuracy(train: np.ndarray, train_labels: np.ndarray,
                               test: np.ndarray, test_labels: np.ndarray) -> float:
    mean, std = train.mean(axis=0), train.std(axis=0) + 1e-6
    train, test = (train - mean) / std, (test - mean) / std
    classes = np.unique(train_labels)
    centroids = np.stack([train[train_labels == k].mean(axis=0) for k in classes])
    nearest = ((test[:, None] - centroids[None]) ** 2).sum(axis=2).argmin(axis=1)
    return float((classes[nearest] == test_labels).mean())


def test_same_seed_gives_identical_arrays_and_other_seeds_differ() -> None:
    first, again, other = (make_shapes(seed, 100, 30) for seed in (5, 5, 6))
    for name in ("train", "test"):
        for a, b in zip(_arrays(first.split(name)), _arrays(again.split(name)), strict=True):
            assert a.dtype == b.dtype and np.array_equal(a, b)
        assert not np.array_equal(first.split(name).images, other.split(name).images)
    assert not np.array_equal(first.train.images[:30], first.test.images)


def test_layout_dtypes_and_ranges(shapes: Dataset) -> None:
    assert shapes.name == "shapes"
    assert shapes.class_names == list(SHAPE_NAMES) and len(set(SHAPE_NAMES)) == 10
    assert shapes.image_shape == (3, 32, 32)
    for split, n in ((shapes.train, 5000), (shapes.test, 1000)):
        assert split.images.shape == (n, 3, 32, 32) and split.images.dtype == np.uint8
        assert split.object_masks.shape == (n, 32, 32) and split.object_masks.dtype == bool
        assert split.images.min() == 0 and split.images.max() == 255
        batch = split.load([0, 1])
        assert batch.shape == (2, 3, 32, 32) and 0 <= batch.min() and batch.max() <= 1


def test_classes_are_balanced_and_shuffled(shapes: Dataset) -> None:
    for split, n in ((shapes.train, 5000), (shapes.test, 1000)):
        assert np.bincount(split.labels, minlength=10).tolist() == [n // 10] * 10
        assert (np.diff(split.labels) != 0).mean() > 0.8


def test_masks_are_plausibly_sized_and_inside_the_frame(shapes: Dataset) -> None:
    for split in (shapes.train, shapes.test):
        area = split.object_masks.mean(axis=(1, 2))
        assert area.min() > 0.03 and area.max() < 0.5
        border = np.ones((32, 32), dtype=bool)
        border[1:-1, 1:-1] = False
        assert not split.object_masks[:, border].any()


def test_objects_contrast_with_the_background_around_them(shapes: Dataset) -> None:
    images = shapes.test.images.astype(np.float64)
    masks = shapes.test.object_masks
    around = _dilate(masks, 2) & ~masks
    distances = np.array([
        np.linalg.norm(image[:, outside] - image[:, inside].mean(axis=1, keepdims=True),
                       axis=0).mean()
        for image, inside, outside in zip(images, masks, around, strict=True)])
    assert distances.mean() > 0.4 * 255
    assert (distances > 0.15 * 255).mean() > 0.98


def test_silhouettes_tell_the_classes_apart(shapes: Dataset) -> None:
    accuracy = _nearest_centroid_accuracy(
        _radial_features(shapes.train.object_masks[:2000]), shapes.train.labels[:2000],
        _radial_features(shapes.test.object_masks), shapes.test.labels)
    assert accuracy > 0.8


def test_background_colour_does_not_reveal_the_class(shapes: Dataset) -> None:
    def background_colour(split: ArraySplit) -> np.ndarray:
        outside = ~split.object_masks[:, None]
        return (split.images * outside).sum(axis=(2, 3)) / outside.sum(axis=(2, 3))

    accuracy = _nearest_centroid_accuracy(
        background_colour(shapes.train), shapes.train.labels,
        background_colour(shapes.test), shapes.test.labels)
    assert accuracy < 0.2
