"""Predictive power: the paper's metric, measured on held-out images only."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from classwise.batching import predict
from classwise.data.base import Split
from classwise.errors import UsageError
from classwise.models.loading import model_device
from classwise.search.ops import stamp


def other_class_indices(split: Split, target: int) -> np.ndarray:
    """Indices of ``split``'s images of every class but ``target``; an error if none."""
    idx = split.indices_of(target, exclude=True)
    if len(idx) == 0:
        raise UsageError(f"the evaluation split has no images outside class {target}; "
                         "predictive power needs images of other classes")
    return idx


def predictive_power(model: nn.Module, split: Split, target: int, canvas: torch.Tensor,
                     pattern: torch.Tensor | np.ndarray | None,
                     device: torch.device | None = None, batch_size: int = 256) -> float:
    """Share of the other classes' images in ``split`` classified as ``target`` once stamped.

    With ``pattern=None`` the images are left as they are (the no-pattern baseline).
    """
    device = device or model_device(model)
    idx = other_class_indices(split, target)
    transform = None
    if pattern is not None:
        c = torch.as_tensor(canvas, dtype=torch.float32).to(device)
        p = torch.as_tensor(pattern, dtype=torch.bool).to(device)

        def transform(x: torch.Tensor) -> torch.Tensor:
            return stamp(x, c, p)

    preds = predict(model, split, idx, transform=transform, batch_size=batch_size, device=device)
    return float((preds == target).mean())


def random_pattern(shape: tuple[int, int], k: int, seed: int, target: int) -> np.ndarray:
    """``k`` pixels drawn uniformly at random (seeded per class): the random baseline."""
    gen = np.random.default_rng([seed, target, 0x5A])
    flat = np.zeros(shape[0] * shape[1], dtype=bool)
    flat[gen.choice(flat.size, size=k, replace=False)] = True
    return flat.reshape(shape)
