"""Trojan-style watermark (after Liu et al. 2018): a shaped, coloured stamp."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from classwise.attacks._trigger import PatchAttack, patch_size
from classwise.attacks.registry import register_attack
from classwise.seeding import rng


@register_attack("trojan")
class Trojan(PatchAttack):
    """A non-square watermark with non-binary content, stamped at ``position``.

    Built in: a ring ``size`` px across (default ``max(5, min(H, W) // 6)``) filled
    with random colours drawn from ``seed``. ``trigger_file`` is a PNG whose alpha
    channel is the mask and whose colours are the pattern; it replaces ``size``.
    ``position`` works as for :class:`~classwise.attacks.badnets.BadNets`.
    """

    def __init__(self, image_shape: tuple[int, int, int], seed: int = 0,
                 size: int | None = None, position: str = "bottom-right",
                 trigger_file: str | Path | None = None) -> None:
        self.size = None
        if trigger_file is None:
            self.size = patch_size(size, image_shape, "watermark", 3,
                                   lambda side: max(5, side // 6))
        super().__init__(image_shape, seed, position, trigger_file)

    def _built_in(self) -> tuple[np.ndarray, np.ndarray]:
        c, size = self.image_shape[0], self.size
        return rng(self.seed).random((c, size, size), dtype=np.float32), _ring(size)

    def options(self) -> dict[str, Any]:
        return super().options() | {"size": self.size}


def _ring(size: int) -> np.ndarray:
    """A binary ring ``size`` px across, about a quarter of its diameter thick."""
    centre = (size - 1) / 2
    rows, cols = np.indices((size, size))
    radius = np.hypot(rows - centre, cols - centre)
    outer = size / 2
    return ((radius <= outer) & (radius >= outer - max(1.0, size / 4))).astype(np.float32)
