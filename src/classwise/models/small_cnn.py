"""A small CNN for small images (MNIST-sized and below)."""

from __future__ import annotations

import torch
from torch import nn

from classwise.models.registry import register_model


class SmallCNN(nn.Module):
    """Two conv blocks and two dense layers; works on any image of at least 4x4 pixels."""

    def __init__(self, image_shape: tuple[int, int, int], num_classes: int, width: int = 32):
        super().__init__()
        c, h, w = image_shape
        self.features = nn.Sequential(
            nn.Conv2d(c, width, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(width, 2 * width, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        )
        self.classifier = nn.Sequential(
            nn.Flatten(), nn.Linear(2 * width * (h // 4) * (w // 4), 128), nn.ReLU(),
            nn.Linear(128, num_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))


@register_model("small-cnn")
def small_cnn(image_shape: tuple[int, int, int], num_classes: int) -> nn.Module:
    return SmallCNN(image_shape, num_classes)
