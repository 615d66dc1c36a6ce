"""CIFAR-10 and CIFAR-100 in their python format (the extracted ``cifar-*-python.tar.gz``).

CIFAR-100 is read with its 100 fine labels. The files are pickles; they are read with an
unpickler that builds only dicts, lists and numpy arrays, so a file cannot run code.
"""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from classwise.data.base import ArraySplit, Dataset
from classwise.errors import UsageError
from classwise.models.factory import describe


class Layout(NamedTuple):
    """The files of one CIFAR variant and the keys of its labels and class names."""

    train: tuple[str, ...]
    test: tuple[str, ...]
    meta: str
    labels: bytes
    names: bytes
    archive: str


LAYOUTS = {
    "cifar10": Layout(tuple(f"data_batch_{i}" for i in range(1, 6)), ("test_batch",),
                      "batches.meta", b"labels", b"label_names", "cifar-10-python.tar.gz"),
    "cifar100": Layout(("train",), ("test",), "meta", b"fine_labels", b"fine_label_names",
                       "cifar-100-python.tar.gz"),
}
SAFE_GLOBALS = {("numpy.core.multiarray", "_reconstruct"),
                ("numpy._core.multiarray", "_reconstruct"),
                ("numpy", "ndarray"), ("numpy", "dtype"), ("_codecs", "encode")}


def cifar_variant(path: Path) -> str | None:
    """``cifar10`` or ``cifar100`` when the folder ``path`` holds one of their files, else None."""
    for name, layout in LAYOUTS.items():
        if any((path / f).is_file() for f in (*layout.train, *layout.test, layout.meta)):
            return name
    return None


def load_cifar(path: str | Path, variant: str) -> Dataset:
    """The CIFAR ``variant`` (``cifar10`` or ``cifar100``) in the folder ``path``."""
    path, layout = Path(path), LAYOUTS[variant]
    missing = [f for f in (*layout.train, *layout.test, layout.meta) if not (path / f).is_file()]
    if missing:
        raise UsageError(f"{path} looks like {variant} but lacks {', '.join(missing)}; extract "
                         f"all of {layout.archive} there")
    names = _entry(_unpickle(path / layout.meta), layout.names, path / layout.meta)
    if not isinstance(names, list | tuple):
        raise UsageError(f"{path / layout.meta}: {layout.names.decode()} is of type "
                         f"{type(names).__name__}, not a list of names; re-extract "
                         f"{layout.archive}")
    class_names = [n.decode(errors="replace") if isinstance(n, bytes) else str(n) for n in names]
    train, test = (_split([path / f for f in files], layout.labels)
                   for files in (layout.train, layout.test))
    return Dataset(variant, train, test, class_names)


def _split(files: list[Path], labels_key: bytes) -> ArraySplit:
    images, labels = [], []
    for path in files:
        batch = _unpickle(path)
        data = _array(batch, b"data", path)
        if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3 * 32 * 32:
            raise UsageError(f"{path}: data is {data.dtype} {data.shape}; a CIFAR batch holds "
                             "uint8 rows of 3072 values (32x32 RGB); re-extract the archive")
        images.append(data.reshape(-1, 3, 32, 32))
        found = _array(batch, labels_key, path)
        if found.ndim != 1 or not np.issubdtype(found.dtype, np.integer):
            raise UsageError(f"{path}: {labels_key.decode()} is {found.dtype} {found.shape}; a "
                             "CIFAR batch holds a list of integer labels; re-extract the archive")
        labels.append(found.astype(np.int64))
    return ArraySplit(np.concatenate(images), np.concatenate(labels))


def _array(batch: dict, key: bytes, path: Path) -> np.ndarray:
    """``batch[key]`` as a numpy array; a one-line error when it is ragged or not numeric."""
    try:
        return np.asarray(_entry(batch, key, path))
    except (TypeError, ValueError) as e:
        raise UsageError(f"{path}: {key.decode()} is not an array ({describe(e)}); re-extract "
                         "it from the CIFAR archive") from None


class _ArrayUnpickler(pickle.Unpickler):
    """Builds dicts, lists, strings and numpy arrays, nothing else."""

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in SAFE_GLOBALS:
            raise pickle.UnpicklingError(f"{module}.{name} is not allowed in a CIFAR file")
        return super().find_class(module, name)


def _unpickle(path: Path) -> dict:
    try:
        with open(path, "rb") as f:
            obj = _ArrayUnpickler(f, encoding="bytes").load()
    except Exception as e:  # a damaged pickle can raise almost anything
        raise UsageError(f"cannot read {path} as a CIFAR python file ({type(e).__name__}: "
                         f"{describe(e)}); "
                         "re-extract it from the CIFAR archive") from None
    if not isinstance(obj, dict):
        raise UsageError(f"{path} holds a {type(obj).__name__}, not a CIFAR dict; "
                         "re-extract it from the CIFAR archive")
    return obj


def _entry(batch: dict, key: bytes, path: Path) -> Any:
    """``batch[key]``, also under the str key a Python 3 pickle would use."""
    for k in (key, key.decode()):
        if k in batch:
            return batch[k]
    raise UsageError(f"{path} lacks {key.decode()!r}; is it a CIFAR python file? "
                     "re-extract it from the CIFAR archive")
