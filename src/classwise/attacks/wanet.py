"""WaNet (Nguyen & Tran 2021): an imperceptible, smooth warp of the whole image."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from classwise.attacks.base import BackdoorAttack
from classwise.attacks.registry import register_attack
from classwise.errors import UsageError
from classwise.seeding import generator


@register_attack("wanet")
class WaNet(BackdoorAttack):
    """Warps images along a fixed random field.

    A ``k`` x ``k`` grid of uniform [-1, 1] offsets, normalised by their mean absolute
    value, is upsampled (bicubic) to H x W, scaled by ``strength`` / size and added to
    the identity sampling grid, which is clamped to [-1, 1] and applied with
    ``grid_sample`` (bilinear, ``align_corners=True``). The paper's "noise mode"
    (training on randomly warped, correctly labelled images to hide the field) is a
    training-time regulariser and is not part of this attack. :meth:`trigger` is a
    picture: pattern is the displacement magnitude scaled to [0, 1], mask is where
    pixels move by more than half a pixel.
    """

    def __init__(self, image_shape: tuple[int, int, int], seed: int = 0, k: int = 4,
                 strength: float = 0.5) -> None:
        super().__init__(image_shape, seed)
        _, height, width = self.image_shape
        if not 2 <= k <= min(height, width):
            raise UsageError(f"warp grid size k={k} must lie in 2..{min(height, width)}; "
                             "use e.g. 4")
        if strength < 0:
            raise UsageError(f"warp strength {strength} is negative; use e.g. 0.5")
        self.k = int(k)
        self.strength = float(strength)
        offsets = torch.rand(1, 2, k, k, generator=generator(self.seed)) * 2 - 1
        offsets = offsets / offsets.abs().mean()
        field = F.interpolate(offsets, size=(height, width), mode="bicubic", align_corners=True)
        field = field.permute(0, 2, 3, 1) * torch.tensor([1 / width, 1 / height])
        ys, xs = torch.meshgrid(torch.linspace(-1, 1, height), torch.linspace(-1, 1, width),
                                indexing="ij")
        self._identity = torch.stack([xs, ys], dim=-1)[None]
        self._grid = (self._identity + self.strength * field).clamp(-1, 1)

    def _apply(self, x: torch.Tensor) -> torch.Tensor:
        grid = self._grid.to(x).expand(len(x), -1, -1, -1)
        return F.grid_sample(x, grid, mode="bilinear", align_corners=True)

    def displacement(self) -> np.ndarray:
        """Where each output pixel samples from, relative to itself, in pixels ``(H, W, 2)``."""
        _, height, width = self.image_shape
        pixels_per_unit = torch.tensor([(width - 1) / 2, (height - 1) / 2])
        return ((self._grid - self._identity)[0] * pixels_per_unit).numpy()

    def trigger(self) -> tuple[np.ndarray, np.ndarray]:
        c = self.image_shape[0]
        magnitude = np.linalg.norm(self.displacement(), axis=-1)
        pattern = magnitude / magnitude.max() if magnitude.max() > 0 else magnitude
        mask = magnitude > 0.5
        return (np.broadcast_to(pattern, (c, *pattern.shape)).astype(np.float32),
                mask.astype(np.float32))

    def options(self) -> dict[str, Any]:
        return super().options() | {"k": self.k, "strength": self.strength}
