"""Datasets: built-in names or paths, all yielding images in [0, 1] with integer labels."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from classwise.data.base import ArraySplit, Dataset, Split
from classwise.errors import UsageError


def _shapes() -> Dataset:
    from classwise.data.shapes import make_shapes

    return make_shapes()


def _builtin() -> dict[str, Callable[[], Dataset]]:
    from classwise.data.builtin import digits, mnist5k

    return {"mnist5k": mnist5k, "digits": digits, "shapes": _shapes}


BUILTIN = ("mnist5k", "digits", "shapes")


def load_data(data: str | Path | Dataset) -> Dataset:
    """A dataset from a built-in name (``mnist5k``, ``digits``, ``shapes``) or a path.

    >>> ds = load_data("digits")
    >>> ds.image_shape, ds.num_classes, len(ds.train), len(ds.test)
    ((1, 8, 8), 10, 1437, 360)
    """
    if isinstance(data, Dataset):
        return data
    text = str(data)
    if text in BUILTIN:
        return _builtin()[text]()
    path = Path(text)
    if path.suffix == ".npz" and path.is_file():
        from classwise.data.npz import load_npz

        return load_npz(path)
    if not path.exists():
        raise UsageError(f"unknown data {text!r}; give a built-in name "
                         f"({', '.join(BUILTIN)}) or the path of an .npz file or folder")
    raise UsageError(f"cannot read data from {text!r}; give a built-in name "
                     f"({', '.join(BUILTIN)}) or an .npz file with x_train, y_train, x_test, y_test")


__all__ = ["ArraySplit", "Dataset", "Split", "load_data", "BUILTIN"]
