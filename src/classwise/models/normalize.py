"""Apply a model's input normalisation inside it, so everything else thinks in [0, 1] pixels."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from classwise.errors import UsageError


def _channel_values(values: float | Sequence[float], name: str) -> torch.Tensor:
    """``values`` as a ``(1, C, 1, 1)`` float tensor; a clear error for bad values."""
    try:
        flat = torch.as_tensor(values, dtype=torch.float32).flatten().clone()
    except (TypeError, ValueError, RuntimeError):
        flat = torch.empty(0)
    if flat.numel() == 0 or not torch.isfinite(flat).all():
        raise UsageError(f"{name} must be one finite number or one per channel, got {values!r}")
    return flat.view(1, -1, 1, 1)


class Normalized(nn.Module):
    """``model((x - mean) / std)``: takes ``x`` in [0, 1], applies the model's normalisation.

    ``mean`` and ``std`` are one value or one per channel, in [0, 1] pixel units (ImageNet's
    are ``(0.485, 0.456, 0.406)`` and ``(0.229, 0.224, 0.225)``). They are buffers, so they
    follow the model in ``.to()``, and the module can be scripted with ``torch.jit.script``.
    """

    def __init__(self, model: nn.Module, mean: float | Sequence[float] = 0.0,
                 std: float | Sequence[float] = 1.0) -> None:
        super().__init__()
        mean_t, std_t = _channel_values(mean, "mean"), _channel_values(std, "std")
        if not ((mean_t >= 0) & (mean_t <= 1)).all():
            raise UsageError(f"mean {mean!r} lies outside [0, 1]; give it in [0, 1] pixel units "
                             "(divide 0..255 values by 255)")
        if not (std_t > 0).all():
            raise UsageError(f"std {std!r} must be positive")
        if 1 not in (mean_t.shape[1], std_t.shape[1]) and mean_t.shape != std_t.shape:
            raise UsageError(f"mean has {mean_t.shape[1]} values but std has {std_t.shape[1]}; "
                             "give one value per channel for both")
        self.model = model
        self.register_buffer("mean", mean_t)
        self.register_buffer("std", std_t)

    @property
    def channels(self) -> int:
        """The number of channels the normalisation fixes (1 when it broadcasts over any)."""
        return max(self.mean.shape[1], self.std.shape[1])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model((x - self.mean) / self.std)
