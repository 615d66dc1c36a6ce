"""Datasets from a ``.npz`` file with ``x_train``, ``y_train``, ``x_test``, ``y_test``."""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np

from classwise.data.base import ArraySplit, Dataset
from classwise.errors import UsageError

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
    try:
        with np.load(path, allow_pickle=False) as f:
            missing = [k for k in KEYS if k not in f.files]
            if missing:
                raise UsageError(f"{path} lacks {', '.join(missing)}; an .npz dataset needs "
                                 f"arrays {', '.join(KEYS)}")
            arrays = {k: f[k] for k in KEYS}
            names = [str(s) for s in f["class_names"]] if "class_names" in f.files else []
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as e:
        raise UsageError(f"cannot read {path} as .npz ({e}); give an npz file with arrays "
                         f"{', '.join(KEYS)}") from None
    splits = []
    for s in ("train", "test"):
        x = _images(arrays[f"x_{s}"], f"x_{s}", path)
        y = _labels(arrays[f"y_{s}"], f"y_{s}", path)
        splits.append(ArraySplit(x, y))
    return Dataset(path.stem, splits[0], splits[1], names)
