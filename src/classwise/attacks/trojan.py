"""Trojan-style watermark (after Liu et al. 2018): a shaped, coloured stamp."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from classwise.attacks._trigger import place, read_png_trigger
from classwise.attacks.base import MaskedAttack
from classwise.errors import UsageError
from classwise.seeding import rng


class Trojan(MaskedAttack):
    """A non-square watermark with non-binary content, stamped at ``position``.

    Built in: a ring ``size`` px across (default ``max(5, min(H, W) // 6)``) filled
    with random colours drawn from ``seed``. ``trigger_file`` is a PNG whose alpha
    channel is the mask and whose colours are the pattern; it replaces ``size``.
    ``position`` works as for :class:`~classwise.attacks.badnets.BadNets`.
    """

    name = "trojan"

    def __init__(self, image_shape: tuple[int, int, int], seed: int = 0,
                 size: int | None = None, position: str = "bottom-right",
                 trigger_file: str | Path | None = None) -> None:
        super().__init__(image_shape, seed)
        c, height, width = self.image_shape
        self.position = position
        self.trigger_file = None if trigger_file is None else str(trigger_file)
        if trigger_file is not None:
            patch, patch_mask = read_png_trigger(trigger_file, self.image_shape)
            self.size = None
        else:
            self.size = max(5, min(height, width) // 6) if size is None else int(size)
            if not 3 <= self.size <= min(height, width):
                raise UsageError(f"watermark size {self.size} does not fit {width}x{height} "
                                 f"images; use a size in 3..{min(height, width)}")
            patch_mask = _ring(self.size)
            patch = rng(self.seed).random((c, self.size, self.size), dtype=np.float32)
        self._set_trigger(*place(patch, patch_mask, position, self.image_shape))

    def options(self) -> dict[str, Any]:
        return super().options() | {"size": self.size, "position": self.position,
                                    "trigger_file": self.trigger_file}


def _ring(size: int) -> np.ndarray:
    """A binary ring ``size`` px across, about a quarter of its diameter thick."""
    centre = (size - 1) / 2
    rows, cols = np.indices((size, size))
    radius = np.hypot(rows - centre, cols - centre)
    outer = size / 2
    return ((radius <= outer) & (radius >= outer - max(1.0, size / 4))).astype(np.float32)
