"""Blended (Chen et al. 2017): a full-image pattern mixed into every pixel."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from classwise.attacks._trigger import open_image, to_channels
from classwise.attacks.base import MaskedAttack
from classwise.attacks.registry import register_attack
from classwise.errors import UsageError
from classwise.seeding import rng


@register_attack("blended")
class Blended(MaskedAttack):
    """``x' = (1 - alpha) * x + alpha * pattern``.

    The pattern is uniform noise drawn from ``seed``, or the image ``pattern_file``
    resized (bilinear) to the data's size. :meth:`trigger` gives the mask as ``alpha``
    everywhere.
    """

    def __init__(self, image_shape: tuple[int, int, int], seed: int = 0, alpha: float = 0.2,
                 pattern_file: str | Path | None = None) -> None:
        super().__init__(image_shape, seed)
        if not 0 < alpha <= 1:
            raise UsageError(f"blend alpha {alpha} is outside (0, 1]; use a weight such as 0.2")
        c, height, width = self.image_shape
        self.alpha = float(alpha)
        self.pattern_file = None if pattern_file is None else str(pattern_file)
        if pattern_file is None:
            pattern = rng(self.seed).random((c, height, width), dtype=np.float32)
        else:
            image = open_image(pattern_file, "blend pattern")
            pattern = to_channels(image.resize((width, height), Image.BILINEAR), c)
        self._set_trigger(pattern, np.full((height, width), self.alpha, dtype=np.float32))

    def options(self) -> dict[str, Any]:
        return super().options() | {"alpha": self.alpha, "pattern_file": self.pattern_file}
