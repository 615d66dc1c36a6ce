"""CIFAR-style ResNets (3x3 stem, no max-pool): ResNet-18 with basic blocks, and ResNet-50
with bottleneck blocks, the model the paper's authors used for CIFAR-10.

Both have four stages of widths ``w``, ``2w``, ``4w``, ``8w`` (``w`` = 64, or 16 for the
``-narrow`` variants) at strides 1, 2, 2, 2, then a global average pool and a linear head; a
stage's blocks output ``expansion`` times its width (1 for basic, 4 for bottleneck blocks).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from classwise.models.registry import register_model


def _shortcut(cin: int, cout: int, stride: int) -> nn.Sequential:
    """The identity, or a strided 1x1 projection where the block changes size or width."""
    if stride == 1 and cin == cout:
        return nn.Sequential()
    return nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))


class BasicBlock(nn.Module):
    """Two 3x3 convolutions (the first strided) around a shortcut; outputs ``width`` channels."""

    expansion = 1

    def __init__(self, cin: int, width: int, stride: int):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, width, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = nn.Conv2d(width, width, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(width)
        self.shortcut = _shortcut(cin, width, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        return F.relu(self.bn2(self.conv2(out)) + self.shortcut(x))


class Bottleneck(nn.Module):
    """1x1 down to ``width``, a (strided) 3x3, 1x1 up to ``4 * width``, around a shortcut."""

    expansion = 4

    def __init__(self, cin: int, width: int, stride: int):
        super().__init__()
        cout = self.expansion * width
        self.conv1 = nn.Conv2d(cin, width, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = nn.Conv2d(width, width, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(width)
        self.conv3 = nn.Conv2d(width, cout, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(cout)
        self.shortcut = _shortcut(cin, cout, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = F.relu(self.bn2(self.conv2(out)))
        return F.relu(self.bn3(self.conv3(out)) + self.shortcut(x))


class ResNet(nn.Module):
    """A 3x3 stem, then ``depths[i]`` blocks per stage (in one flat ``layers``), pool, head."""

    def __init__(self, block: type[BasicBlock | Bottleneck], depths: tuple[int, ...],
                 in_channels: int, num_classes: int, width: int = 64):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(in_channels, width, 3, 1, 1, bias=False),
                                  nn.BatchNorm2d(width), nn.ReLU())
        layers, cin = [], width
        for i, (depth, stride) in enumerate(zip(depths, (1, 2, 2, 2), strict=True)):
            for j in range(depth):
                layers.append(block(cin, width * 2**i, stride if j == 0 else 1))
                cin = block.expansion * width * 2**i
        self.layers = nn.Sequential(*layers)
        self.fc = nn.Linear(cin, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.layers(self.stem(x))
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))


@register_model("resnet18")
def resnet18(image_shape: tuple[int, int, int], num_classes: int) -> nn.Module:
    """ResNet-18: basic blocks, 2-2-2-2."""
    return ResNet(BasicBlock, (2, 2, 2, 2), image_shape[0], num_classes)


@register_model("resnet18-narrow")
def resnet18_narrow(image_shape: tuple[int, int, int], num_classes: int) -> nn.Module:
    """The same ResNet-18 topology at a quarter of the width (16 base channels): about
    16 times fewer operations, for CPU-only benchmarks."""
    return ResNet(BasicBlock, (2, 2, 2, 2), image_shape[0], num_classes, width=16)


@register_model("resnet50")
def resnet50(image_shape: tuple[int, int, int], num_classes: int) -> nn.Module:
    """ResNet-50: bottleneck blocks (expansion 4), 3-4-6-3; the paper's CIFAR-10 model."""
    return ResNet(Bottleneck, (3, 4, 6, 3), image_shape[0], num_classes)


@register_model("resnet50-narrow")
def resnet50_narrow(image_shape: tuple[int, int, int], num_classes: int) -> nn.Module:
    """The same ResNet-50 topology at a quarter of the width, for CPU-only benchmarks."""
    return ResNet(Bottleneck, (3, 4, 6, 3), image_shape[0], num_classes, width=16)
