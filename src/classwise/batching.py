"""Batched evaluation of a model over a split."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import numpy as np
import torch
from torch import nn

from classwise.data.base import Split
from classwise.models.loading import model_device


def batches(indices: np.ndarray, batch_size: int) -> Iterator[np.ndarray]:
    """Consecutive chunks of ``indices`` of at most ``batch_size``."""
    for start in range(0, len(indices), batch_size):
        yield indices[start:start + batch_size]


@torch.no_grad()
def predict(model: nn.Module, split: Split, indices: np.ndarray | None = None,
            transform: Callable[[torch.Tensor], torch.Tensor] | None = None,
            batch_size: int = 256, device: torch.device | None = None) -> np.ndarray:
    """Predicted classes of ``split[indices]``, optionally after ``transform`` (on the device)."""
    if indices is None:
        indices = np.arange(len(split))
    device = device or model_device(model)
    out = [np.empty(0, dtype=np.int64)]
    for chunk in batches(np.asarray(indices), batch_size):
        x = split.load(chunk).to(device)
        if transform is not None:
            x = transform(x)
        out.append(model(x).argmax(1).cpu().numpy())
    return np.concatenate(out)


def accuracy(model: nn.Module, split: Split, batch_size: int = 256,
             device: torch.device | None = None) -> float:
    """Share of ``split`` classified correctly."""
    return float((predict(model, split, batch_size=batch_size, device=device)
                  == split.labels).mean())
