"""Datasets from a ``.npz`` file with ``x_train``, ``y_train``, ``x_test``, ``y_test``."""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np

from classwise.data.base import ArraySplit, Dataset
from classwise.errors import UsageError
from classwise.models.factory import describe

KEYS = ("x_train", "y_train", "x_test", "y_test")


def _images(arr: np.ndarray, key: str, path: Path) -> np.ndarray:
    """uint8 N x H x W or N x H x W x C -> uint8 N x C x H x W."""
    if arr.dtype != np.uint8:
        raise UsageError(f"{path}: {key} has dtype {arr.dtype}; store images as uint8 (0..255)")
    if arr.ndim == 3:
        return arr[:, None]
    if arr.ndim == 4 and arr.shape[-1] in (1, 3):
        return np.ascontiguousarray(arr.transpose(0, 3, 1, 2))
    raise UsageError(f"{path}: {key} has shape {arr.shape}; expected N x H x W or "
                     "N x H x W x C with C = 1 or 3")


def _labels(arr: np.ndarray, key: str, path: Path) -> np.ndarray:
    if arr.ndim != 1 or not np.issubdtype(arr.dtype, np.integer):
        raise UsageError(f"{path}: {key} must be a 1-D integer array, got {arr.dtype} "
                         f"shape {arr.shape}")
    return arr.astype(np.int64)


def load_npz(path: str | Path) -> Dataset:
    """Load a dataset from ``path``; errors name the missing key or the bad shape."""
    path = Path(path)
    arrays = _read(path)
    missing = [k for k in KEYS if k not in arrays]
    if missing:
        raise UsageError(f"{path} lacks {', '.join(missing)}; an .npz dataset needs "
                         f"arrays {', '.join(KEYS)}")
    names = arrays.get("class_names", np.empty(0))
    if names.ndim != 1:
        raise UsageError(f"{path}: class_names has shape {names.shape}; store a 1-D array "
                         "with one name per class")
    splits = []
    for s in ("train", "test"):
        x = _images(arrays[f"x_{s}"], f"x_{s}", path)
        y = _labels(arrays[f"y_{s}"], f"y_{s}", path)
        splits.append(ArraySplit(x, y))
    return Dataset(path.stem, splits[0], splits[1], [str(n) for n in names])


def _read(path: Path) -> dict[str, np.ndarray]:
    """The arrays of the dataset in ``path`` (the four of :data:`KEYS` and ``class_names``)."""
    if not zipfile.is_zipfile(path):
        raise UsageError(f"cannot read {path} as .npz (it is not a zip archive); save the "
                         f"arrays {', '.join(KEYS)} with numpy.savez")
    try:
        with np.load(path, allow_pickle=False) as f:
            return {k: f[k] for k in (*KEYS, "class_names") if k in f.files}
    except Exception as e:  # a damaged archive can raise almost anything (zlib, zipfile, numpy)
        raise UsageError(f"cannot read {path} as .npz ({type(e).__name__}: {describe(e)}); give "
                         f"an npz file with arrays {', '.join(KEYS)}") from None
