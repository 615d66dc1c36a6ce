"""BadNets (Gu et al. 2017): a small square patch stamped at a fixed place."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from classwise.attacks._trigger import place, read_png_trigger
from classwise.attacks.base import MaskedAttack
from classwise.errors import UsageError

CONTENTS = ("white", "checkerboard")


class BadNets(MaskedAttack):
    """A ``size`` x ``size`` patch at ``position``, or the PNG ``trigger_file``.

    ``size`` defaults to ``max(3, min(H, W) // 8)`` (3 px at 28 px, 4 px at 32 px).
    ``content`` is ``"white"`` or ``"checkerboard"`` (white at the patch's top-left
    pixel). ``position`` is a corner name, ``"center"`` or ``"x,y"`` (top-left pixel);
    named corners are flush with the image border. ``trigger_file`` is a PNG whose
    alpha channel is the mask; it replaces ``size`` and ``content``.
    """

    name = "badnets"

    def __init__(self, image_shape: tuple[int, int, int], seed: int = 0,
                 size: int | None = None, position: str = "bottom-right",
                 content: str = "white", trigger_file: str | Path | None = None) -> None:
        super().__init__(image_shape, seed)
        c, height, width = self.image_shape
        self.position = position
        self.trigger_file = None if trigger_file is None else str(trigger_file)
        if trigger_file is not None:
            patch, patch_mask = read_png_trigger(trigger_file, self.image_shape)
            self.size, self.content = None, None
        else:
            self.size = max(3, min(height, width) // 8) if size is None else int(size)
            if not 1 <= self.size <= min(height, width):
                raise UsageError(f"patch size {self.size} does not fit {width}x{height} images; "
                                 f"use a size in 1..{min(height, width)}")
            if content not in CONTENTS:
                raise UsageError(f"unknown content {content!r}; use {' or '.join(CONTENTS)}")
            self.content = content
            patch_mask = np.ones((self.size, self.size), dtype=np.float32)
            patch = np.broadcast_to(_content(content, self.size), (c, self.size, self.size))
        self._set_trigger(*place(patch, patch_mask, position, self.image_shape))

    def options(self) -> dict[str, Any]:
        return super().options() | {"size": self.size, "position": self.position,
                                    "content": self.content, "trigger_file": self.trigger_file}


def _content(content: str, size: int) -> np.ndarray:
    """A ``size`` x ``size`` patch: all white, or a checkerboard starting white."""
    if content == "white":
        return np.ones((size, size), dtype=np.float32)
    rows, cols = np.indices((size, size))
    return ((rows + cols) % 2 == 0).astype(np.float32)
