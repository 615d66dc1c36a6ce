"""SIG (Barni et al. 2019): a clean-label attack with a horizontal sinusoid."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from classwise.attacks.base import BackdoorAttack
from classwise.attacks.registry import register_attack
from classwise.errors import UsageError


@register_attack("sig")
class SIG(BackdoorAttack):
    """Adds ``v(i, j) = delta * sin(2 * pi * j * frequency / W)`` to every row and channel.

    Clean-label: the poisoned images come from the target class and keep their label,
    and the poison rate is a fraction of the target class (default 0.3, as the
    target class is only a small share of the data). :meth:`trigger` is a picture,
    not an exact blend: pattern ``0.5 + v`` and a mask of ones (the signal covers
    the whole image).
    """

    clean_label = True
    default_rate = 0.3

    def __init__(self, image_shape: tuple[int, int, int], seed: int = 0,
                 delta: float = 20 / 255, frequency: float = 6) -> None:
        super().__init__(image_shape, seed)
        if not 0 < delta <= 0.5:
            raise UsageError(f"signal amplitude delta {delta} is outside (0, 0.5]; "
                             "use a small value such as 0.08 (20/255)")
        if frequency <= 0:
            raise UsageError(f"signal frequency {frequency} must be positive; use e.g. 6")
        self.delta = float(delta)
        self.frequency = float(frequency)
        width = self.image_shape[2]
        columns = np.arange(width, dtype=np.float64)
        signal = self.delta * np.sin(2 * np.pi * columns * self.frequency / width)
        self._signal = torch.as_tensor(signal, dtype=torch.float32)

    def _apply(self, x: torch.Tensor) -> torch.Tensor:
        return x + self._signal.to(x)

    def trigger(self) -> tuple[np.ndarray, np.ndarray]:
        c, height, width = self.image_shape
        pattern = np.broadcast_to(0.5 + self._signal.numpy(), (c, height, width))
        return pattern.astype(np.float32), np.ones((height, width), dtype=np.float32)

    def options(self) -> dict[str, Any]:
        return super().options() | {"delta": self.delta, "frequency": self.frequency}
