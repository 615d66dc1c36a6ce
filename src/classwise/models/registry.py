"""A registry of built-in architectures: a name on the command line maps to a builder."""

from __future__ import annotations

from collections.abc import Callable

from torch import nn

from classwise.errors import UsageError

Builder = Callable[[tuple[int, int, int], int], nn.Module]
_REGISTRY: dict[str, Builder] = {}


def register_model(name: str) -> Callable[[Builder], Builder]:
    """Decorator: register ``builder(image_shape, num_classes) -> nn.Module`` under ``name``."""

    def wrap(builder: Builder) -> Builder:
        _REGISTRY[name] = builder
        return builder

    return wrap


def architectures() -> list[str]:
    """Names of the registered architectures."""
    return sorted(_REGISTRY)


def default_arch(image_shape: tuple[int, int, int]) -> str:
    """The small CNN for images up to 28x28, the CIFAR-style ResNet-18 above."""
    return "small-cnn" if max(image_shape[1:]) <= 28 else "resnet18"


def create_model(name: str, image_shape: tuple[int, int, int], num_classes: int) -> nn.Module:
    """Build the architecture ``name`` for ``(C, H, W)`` inputs in [0, 1]."""
    if name not in _REGISTRY:
        raise UsageError(f"unknown architecture {name!r}; choose one of "
                         f"{', '.join(architectures())}")
    return _REGISTRY[name](tuple(image_shape), num_classes)
