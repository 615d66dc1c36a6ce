"""Datasets: built-in names or paths, all yielding images in [0, 1] with integer labels."""

from __future__ import annotations

import functools
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


@functools.lru_cache(maxsize=len(BUILTIN))
def _load_builtin(name: str) -> Dataset:
    """Built-in datasets are read (or generated) once per process: mnist5k takes seconds."""
    return _builtin()[name]()


FORMS = ("a built-in name (mnist5k, digits, shapes), an .npz file with x_train, y_train, "
         "x_test, y_test, an image folder with train/ and test/ (one sub-folder per class), "
         "or a CIFAR-10/100 python folder")


def load_data(data: str | Path | Dataset, image_size: int | None = None) -> Dataset:
    """A dataset from a built-in name (``mnist5k``, ``digits``, ``shapes``) or a path.

    A path is an ``.npz`` file (:mod:`classwise.data.npz`), an image folder
    (:mod:`classwise.data.folder`) or a CIFAR-10/100 python folder (:mod:`classwise.data.cifar`).
    ``image_size`` resizes an image folder's images to ``image_size`` x ``image_size``;
    other data must already have that size.

    >>> ds = load_data("digits")
    >>> ds.image_shape, ds.num_classes, len(ds.train), len(ds.test)
    ((1, 8, 8), 10, 1437, 360)
    """
    if image_size is not None and image_size < 1:
        raise UsageError(f"image size must be a positive number of pixels, got {image_size}")
    ds = _load(data, image_size)
    if image_size is not None and ds.image_shape[1:] != (image_size, image_size):
        _, h, w = ds.image_shape
        raise UsageError(f"{ds.name} images are {w}x{h} and only image folders are resized; "
                         "drop --image-size")
    return ds


def _load(data: str | Path | Dataset, image_size: int | None) -> Dataset:
    if isinstance(data, Dataset):
        return data
    text = str(data)
    if text in BUILTIN:
        return _load_builtin(text)
    path = Path(text)
    if path.suffix == ".npz" and path.is_file():
        from classwise.data.npz import load_npz

        return load_npz(path)
    if path.is_dir():
        from classwise.data.cifar import cifar_variant, load_cifar
        from classwise.data.folder import load_folder

        if (path / "train").is_dir() or (path / "test").is_dir():
            return load_folder(path, image_size)
        variant = cifar_variant(path)
        if variant is not None:
            return load_cifar(path, variant)
        raise UsageError(f"cannot read data from the folder {text!r}; give {FORMS}")
    if not path.exists():
        raise UsageError(f"unknown data {text!r}; give {FORMS}")
    raise UsageError(f"cannot read data from {text!r}; give {FORMS}")


__all__ = ["ArraySplit", "Dataset", "Split", "load_data", "BUILTIN"]
