"""A small multi-layer perceptron, a held-out architecture for benchmarks."""

from __future__ import annotations

import math

from torch import nn

from classwise.models.registry import register_model


@register_model("mlp")
def mlp(image_shape: tuple[int, int, int], num_classes: int) -> nn.Module:
    """Flatten, dense 256 and 128 (ReLU), then the classes; for images of any size."""
    return nn.Sequential(
        nn.Flatten(), nn.Linear(math.prod(image_shape), 256), nn.ReLU(),
        nn.Linear(256, 128), nn.ReLU(), nn.Linear(128, num_classes),
    )
