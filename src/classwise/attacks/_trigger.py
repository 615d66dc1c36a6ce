"""What the patch attacks share: reading trigger images, placing patches, their base class."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from classwise.attacks.base import MaskedAttack, checked_shape
from classwise.errors import UsageError

POSITIONS = ("bottom-right", "top-left", "top-right", "bottom-left", "center")


def open_image(path: str | Path, what: str) -> Image.Image:
    """Open and decode the image at ``path``; :class:`UsageError` if it cannot be read."""
    try:
        image = Image.open(path)
        image.load()
    except OSError as err:
        raise UsageError(f"cannot read {what} {path} ({err.__class__.__name__}); "
                         "give the path of a PNG or JPEG image") from err
    return image


def to_channels(image: Image.Image, channels: int) -> np.ndarray:
    """``image`` as float32 ``(channels, h, w)`` in [0, 1]; ``channels`` is 1 (grey) or 3."""
    if channels not in (1, 3):
        raise UsageError(f"images have {channels} channels; image triggers need 1 (grey) or 3 "
                         "(RGB)")
    array = np.asarray(image.convert("RGB" if channels == 3 else "L"), dtype=np.float32) / 255
    return array.reshape(array.shape[0], array.shape[1], -1).transpose(2, 0, 1)


def read_png_trigger(path: str | Path,
                     image_shape: tuple[int, int, int]) -> tuple[np.ndarray, np.ndarray]:
    """``(pattern (C, h, w), mask (h, w))`` from a PNG whose alpha channel is the mask."""
    c, height, width = image_shape
    image = open_image(path, "trigger PNG")
    if image.mode not in ("RGBA", "LA", "PA") and "transparency" not in image.info:
        raise UsageError(f"trigger PNG {path} has no alpha channel; save it with transparency "
                         "where the trigger is absent")
    if image.width > width or image.height > height:
        raise UsageError(f"trigger PNG {path} is {image.width}x{image.height} px, larger than the "
                         f"{width}x{height} images; crop or shrink it")
    rgba = image.convert("RGBA")
    mask = np.asarray(rgba, dtype=np.float32)[..., 3] / 255
    return to_channels(rgba, c), mask


def place(patch: np.ndarray, patch_mask: np.ndarray, position: str,
          image_shape: tuple[int, int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Paste ``patch`` (C, h, w) and ``patch_mask`` (h, w) into a blank image-sized trigger.

    The pattern is zero wherever the mask is, so it shows only the trigger.

    ``position`` is one of :data:`POSITIONS` (flush with the named corner, or centred)
    or ``"x,y"``, the patch's top-left pixel (column x, row y).
    """
    c, height, width = image_shape
    h, w = patch_mask.shape
    top, left = _offset(position, h, w, height, width)
    if top < 0 or left < 0 or top + h > height or left + w > width:
        raise UsageError(f"a {w}x{h} px trigger at {position!r} does not fit the {width}x{height} "
                         f"images; use x in 0..{width - w} and y in 0..{height - h}")
    pattern = np.zeros((c, height, width), dtype=np.float32)
    mask = np.zeros((height, width), dtype=np.float32)
    pattern[:, top:top + h, left:left + w] = patch * (patch_mask > 0)
    mask[top:top + h, left:left + w] = patch_mask
    return pattern, mask


def _offset(position: str, h: int, w: int, height: int, width: int) -> tuple[int, int]:
    """``(top, left)`` of an ``h x w`` patch at ``position`` in a ``height x width`` image."""
    named = {
        "bottom-right": (height - h, width - w),
        "top-left": (0, 0),
        "top-right": (0, width - w),
        "bottom-left": (height - h, 0),
        "center": ((height - h) // 2, (width - w) // 2),
    }
    if position in named:
        return named[position]
    try:
        x, y = (int(v) for v in position.split(","))
    except ValueError:
        raise UsageError(f"unknown position {position!r}; use {', '.join(POSITIONS)} or 'x,y' "
                         "pixel coordinates of the top-left corner") from None
    return y, x


def patch_size(size: int | None, image_shape: tuple[int, int, int], what: str, smallest: int,
               default: Callable[[int], int]) -> int:
    """``size``, or ``default(shortest side)``; :class:`UsageError` unless it lies in
    ``smallest``..shortest side (``what`` names the patch in the message)."""
    _, height, width = checked_shape(image_shape)
    side = min(height, width)
    n = default(side) if size is None else int(size)
    if not smallest <= n <= side:
        raise UsageError(f"{what} size {n} does not fit {width}x{height} images; use a size in "
                         f"{smallest}..{side}")
    return n


class PatchAttack(MaskedAttack):
    """A patch stamped at ``position``: the subclass's own (:meth:`_built_in`), or the PNG
    ``trigger_file``, whose alpha channel is the mask and whose colours are the patch."""

    def __init__(self, image_shape: tuple[int, int, int], seed: int, position: str,
                 trigger_file: str | Path | None) -> None:
        super().__init__(image_shape, seed)
        self.position = position
        self.trigger_file = None if trigger_file is None else str(trigger_file)
        if trigger_file is not None:
            patch, patch_mask = read_png_trigger(trigger_file, self.image_shape)
        else:
            patch, patch_mask = self._built_in()
        self._set_trigger(*place(patch, patch_mask, position, self.image_shape))

    def _built_in(self) -> tuple[np.ndarray, np.ndarray]:
        """The built-in patch (C, h, w) and its mask (h, w)."""
        raise NotImplementedError

    def options(self) -> dict[str, Any]:
        return super().options() | {"position": self.position, "trigger_file": self.trigger_file}
