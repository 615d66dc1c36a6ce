"""The data abstraction: named splits of images in [0, 1] with integer labels."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from classwise.errors import UsageError


class Split:
    """One split (``train`` or ``test``): labels in memory, images loaded on demand.

    ``load(indices)`` returns float32 images ``(n, C, H, W)`` in [0, 1]. Subclasses
    that read from disk override :meth:`_load`; :class:`ArraySplit` keeps uint8 arrays.
    """

    def __init__(self, labels: np.ndarray, image_shape: tuple[int, int, int],
                 object_masks: np.ndarray | None = None) -> None:
        labels = np.asarray(labels)
        if labels.ndim != 1 or (labels.size and not np.issubdtype(labels.dtype, np.integer)):
            raise UsageError(f"labels are {labels.dtype} of shape {labels.shape}; give one "
                             "integer label per image")
        self.labels = labels.astype(np.int64)
        self.image_shape = tuple(int(s) for s in image_shape)
        self.object_masks = object_masks

    def __len__(self) -> int:
        return len(self.labels)

    def load(self, indices: Sequence[int] | np.ndarray | None = None) -> torch.Tensor:
        """Images at ``indices`` (all when None) as float32 ``(n, C, H, W)`` in [0, 1]."""
        if indices is None:
            indices = np.arange(len(self))
        return self._load(np.asarray(indices, dtype=np.int64))

    def _load(self, indices: np.ndarray) -> torch.Tensor:
        raise NotImplementedError

    def indices_of(self, classes: int | Sequence[int], exclude: bool = False) -> np.ndarray:
        """Indices of the images whose label is (or, with ``exclude``, is not) in ``classes``."""
        hit = np.isin(self.labels, np.atleast_1d(classes))
        return np.flatnonzero(~hit if exclude else hit)


class ArraySplit(Split):
    """A split held in memory as uint8 ``(N, C, H, W)``, or float in [0, 1]."""

    def __init__(self, images: np.ndarray, labels: np.ndarray,
                 object_masks: np.ndarray | None = None) -> None:
        images = np.asarray(images)
        if images.ndim != 4:
            raise UsageError(f"images must be N x C x H x W, got shape {images.shape}")
        super().__init__(labels, images.shape[1:], object_masks)
        if len(images) != len(self.labels):
            raise UsageError(f"{len(images)} images but {len(self.labels)} labels; "
                             "give one label per image")
        if images.dtype != np.uint8 and images.size:
            check_unit_range(images)
        self.images = images

    def _load(self, indices: np.ndarray) -> torch.Tensor:
        batch = self.images[indices]
        if batch.dtype == np.uint8:
            return torch.from_numpy(batch.astype(np.float32) / 255.0)
        return torch.from_numpy(np.ascontiguousarray(batch, dtype=np.float32))


def check_unit_range(images: np.ndarray) -> None:
    """Refuse images that are not uint8 and not real numbers in [0, 1]."""
    if not any(np.issubdtype(images.dtype, t) for t in (np.integer, np.floating, np.bool_)):
        raise UsageError(f"images are {images.dtype}; give uint8 or float images in [0, 1]")
    lo, hi = float(images.min()), float(images.max())
    if not (0.0 <= lo and hi <= 1.0):  # also refuses NaN, which compares false
        raise UsageError(f"{images.dtype} images must lie in [0, 1], found {lo:g} to {hi:g}; "
                         "give uint8 images, or float images before any normalisation "
                         "(the model's --mean/--std normalise them)")


@dataclass
class Dataset:
    """A named dataset: ``train`` and ``test`` splits and one name per class."""

    name: str
    train: Split
    test: Split
    class_names: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not self.class_names:
            n = int(max(self.train.labels.max(initial=-1), self.test.labels.max(initial=-1))) + 1
            if n > len(self.train):  # some class would lack training images; name none of them
                raise UsageError(f"labels go up to {n - 1} but the train split holds only "
                                 f"{len(self.train)} images; every class 0..{n - 1} needs "
                                 "training images, so fix the labels")
            self.class_names = [str(i) for i in range(n)]
        validate(self)

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def image_shape(self) -> tuple[int, int, int]:
        """``(C, H, W)``."""
        return self.train.image_shape

    def split(self, name: str) -> Split:
        if name not in ("train", "test"):
            raise UsageError(f"unknown split {name!r}; use 'train' or 'test'")
        return getattr(self, name)

    def class_index(self, key: int | str) -> int:
        """The index of a class given by index or by name; a clear error otherwise."""
        if isinstance(key, str) and key in self.class_names:
            return self.class_names.index(key)
        try:
            idx = int(key)
        except (TypeError, ValueError):
            idx = -1
        if not 0 <= idx < self.num_classes:
            raise UsageError(
                f"unknown class {key!r}; valid classes are 0..{self.num_classes - 1} "
                f"or names {', '.join(self.class_names[:20])}"
                + (" ..." if self.num_classes > 20 else ""))
        return idx


def validate(data: Dataset) -> None:
    """Check that a dataset is usable; raise :class:`UsageError` naming the problem."""
    odd = next((n for n in data.class_names if not str(n).isprintable()), None)
    if odd is not None:
        raise UsageError(f"class name {str(odd)!r} holds a line break or control character; "
                         "rename the class")
    for name in ("train", "test"):
        split = data.split(name)
        if len(split) == 0:
            raise UsageError(f"the {name} split of {data.name!r} is empty; give it images")
        if split.image_shape != data.train.image_shape:
            raise UsageError(f"train images are {data.train.image_shape} but {name} images are "
                             f"{split.image_shape}; give both splits the same image size")
        c, h, w = split.image_shape
        if c not in (1, 3):
            raise UsageError(f"images have {c} channels; classwise takes 1 (grey) or 3 (RGB)")
        if min(h, w) < 1:
            raise UsageError(f"images are {w}x{h} pixels; give images at least 1x1")
        bad = (split.labels < 0) | (split.labels >= data.num_classes)
        if bad.any():
            raise UsageError(f"{name} labels must lie in 0..{data.num_classes - 1}, found "
                             f"{int(split.labels[bad][0])}; fix the labels or the class names")
    missing = sorted(set(range(data.num_classes)) - set(np.unique(data.train.labels).tolist()))
    if missing:
        raise UsageError(f"class {missing[0]} ({data.class_names[missing[0]]}) has no training "
                         "images; every class needs some")
