"""Datasets from an image folder: ``train/`` and ``test/``, one sub-folder of images per class.

Class ``k`` is the ``k``-th class folder in sorted order (torchvision's ImageFolder
convention). Only paths and labels are kept; images are read when a batch is loaded.
The dataset is grey (1 channel) unless an image is colour; we look at the first image of
every class and a spread sample of the others, reading headers only. Transparent pixels
are composited onto black. With ``image_size`` every image is resized (shorter side) and
centre-cropped to ``image_size`` x ``image_size``; without it all images must share a size.
"""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps

from classwise.data.base import Dataset, Split
from classwise.errors import UsageError
from classwise.models.factory import describe

SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff")
GREY_MODES = ("1", "L", "LA", "La", "I", "I;16", "I;16L", "I;16B", "I;16N", "F")
SAMPLE = 64  # images whose headers are read, besides the first of every class
SPLITS = ("train", "test")
# What Pillow raises on damaged files: its decoders signal bad data with SyntaxError,
# struct.error, IndexError or TypeError besides OSError and ValueError.
READ_ERRORS = (OSError, ValueError, SyntaxError, EOFError, IndexError, TypeError,
               struct.error, Image.DecompressionBombError)


class FolderSplit(Split):
    """Images on disk, read, converted to ``mode`` (``L`` or ``RGB``) and sized on load."""

    def __init__(self, paths: list[str], labels: np.ndarray, mode: str, size: tuple[int, int],
                 root: Path, resize: bool) -> None:
        super().__init__(labels, (1 if mode == "L" else 3, size[1], size[0]))
        self.paths, self.mode, self.size, self.root, self.resize = paths, mode, size, root, resize

    def _load(self, indices: np.ndarray) -> torch.Tensor:
        batch = np.empty((len(indices), *self.image_shape), dtype=np.uint8)
        for row, i in enumerate(indices):
            batch[row] = self._read(self.paths[i])
        return torch.from_numpy(batch).float().div_(255.0)

    def _read(self, path: str) -> np.ndarray:
        """One image as uint8 ``(C, H, W)``."""
        try:
            with Image.open(path) as img:
                if self.resize:
                    img.draft(None, self.size)  # JPEG: decode at a cheaper scale
                elif img.size != self.size:
                    raise _sizes_differ(self.root, self.size, img.size)
                img = _convert(img, self.mode)
        except READ_ERRORS as e:
            raise _unreadable(path, e) from None
        if self.resize:
            img = ImageOps.fit(img, self.size, Image.Resampling.BILINEAR)
        pixels = np.asarray(img)
        return pixels.reshape(*pixels.shape[:2], -1).transpose(2, 0, 1)


def load_folder(root: str | Path, image_size: int | None = None) -> Dataset:
    """The image folder at ``root``; see the module docstring for the layout and rules."""
    root = Path(root)
    missing = [s for s in SPLITS if not (root / s).is_dir()]
    if missing:
        raise UsageError(f"{root} has no {' or '.join(s + '/' for s in missing)} folder; an image "
                         "folder holds train/ and test/, each with one sub-folder per class")
    classes = _class_folders(root)
    files = {s: _images(root / s, classes) for s in SPLITS}
    mode, size = _peek(root, files, image_size)
    splits = [FolderSplit([str(p) for p, _ in files[s]], np.array([y for _, y in files[s]]),
                          mode, size, root, image_size is not None) for s in SPLITS]
    return Dataset(root.resolve().name, splits[0], splits[1], classes)


def _class_folders(root: Path) -> list[str]:
    found = {s: sorted(d.name for d in (root / s).iterdir()
                       if d.is_dir() and not d.name.startswith(".")) for s in SPLITS}
    if not found["train"]:
        raise UsageError(f"{root / 'train'} has no class folders; put the images of each class "
                         "in a sub-folder named after the class")
    if found["train"] != found["test"]:
        only = {s: sorted(set(found[s]) - set(found[t])) for s, t in (SPLITS, SPLITS[::-1])}
        raise UsageError(f"train/ and test/ in {root} have different class folders (only in "
                         f"train: {', '.join(only['train']) or '-'}; only in test: "
                         f"{', '.join(only['test']) or '-'}); give both the same class folders")
    return found["train"]


def _images(split: Path, classes: list[str]) -> list[tuple[Path, int]]:
    """``(path, label)`` of every image under ``split``, class by class, in sorted order."""
    files = []
    for label, name in enumerate(classes):
        found = sorted(p for p in (split / name).rglob("*") if p.suffix.lower() in SUFFIXES
                       and not p.name.startswith(".") and p.is_file())
        if not found:
            raise UsageError(f"{split / name} holds no images ({', '.join(SUFFIXES)}); add some "
                             "or remove the class from train/ and test/")
        files += [(p, label) for p in found]
    return files


def _peek(root: Path, files: dict[str, list[tuple[Path, int]]],
          image_size: int | None) -> tuple[str, tuple[int, int]]:
    """Mode (``L`` or ``RGB``) and ``(width, height)``, from the headers of a few images."""
    paths = []
    for split in files.values():
        labels = np.array([y for _, y in split])
        spread = np.linspace(0, len(split) - 1, min(len(split), SAMPLE // 2)).astype(int)
        firsts = np.flatnonzero(np.r_[True, labels[1:] != labels[:-1]])
        paths += [split[i][0] for i in np.union1d(firsts, spread)]
    modes, sizes = set(), []
    for path in paths:
        try:
            with Image.open(path) as img:
                modes.add(img.mode)
                sizes.append(img.size)
        except READ_ERRORS as e:
            raise _unreadable(path, e) from None
    mode = "L" if modes <= set(GREY_MODES) else "RGB"
    if image_size is not None:
        return mode, (image_size, image_size)
    other = next((s for s in sizes if s != sizes[0]), None)
    if other is not None:
        raise _sizes_differ(root, sizes[0], other)
    return mode, sizes[0]


def _convert(img: Image.Image, mode: str) -> Image.Image:
    """``img`` as ``mode``: transparency composited onto black, 16-bit grey scaled to 8."""
    if img.mode == "PA" or (img.mode == "P" and "transparency" in img.info):
        img = img.convert("RGBA")
    if img.mode in ("RGBA", "RGBa", "LA", "La"):
        black = Image.new("RGBA", img.size, "black")
        img = Image.alpha_composite(black, img.convert("RGBA"))
    if img.mode.startswith("I;16"):
        img = Image.fromarray((np.asarray(img) // 257).astype(np.uint8))
    return img.convert(mode)


def _unreadable(path: str | Path, error: Exception) -> UsageError:
    return UsageError(f"cannot read image {path} ({describe(error)}); fix or remove the file")


def _sizes_differ(root: Path, size: tuple[int, int], other: tuple[int, int]) -> UsageError:
    return UsageError(f"images in {root} have different sizes ({size[0]}x{size[1]} and "
                      f"{other[0]}x{other[1]}); give --image-size to resize them")
