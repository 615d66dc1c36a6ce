"""A LeNet-5-style CNN with batch norm, a held-out architecture for benchmarks."""

from __future__ import annotations

import torch
from torch import nn

from classwise.models.registry import register_model


class LeNet5BN(nn.Module):
    """conv5x5-6, conv5x5-16 (each with batch norm, ReLU and a 2x2 max-pool), then dense
    120, 84, classes. The convolutions are padded to keep their input's size, so it works
    on any image of at least 4x4 pixels (28x28 MNIST and 8x8 digits alike)."""

    def __init__(self, image_shape: tuple[int, int, int], num_classes: int):
        super().__init__()
        c, h, w = image_shape
        self.features = nn.Sequential(
            nn.Conv2d(c, 6, 5, padding=2), nn.BatchNorm2d(6), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(6, 16, 5, padding=2), nn.BatchNorm2d(16), nn.ReLU(), nn.MaxPool2d(2),
        )
        self.classifier = nn.Sequential(
            nn.Flatten(), nn.Linear(16 * (h // 4) * (w // 4), 120), nn.ReLU(),
            nn.Linear(120, 84), nn.ReLU(), nn.Linear(84, num_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))


@register_model("lenet5-bn")
def lenet5_bn(image_shape: tuple[int, int, int], num_classes: int) -> nn.Module:
    """LeNet-5 with batch norm."""
    return LeNet5BN(image_shape, num_classes)
