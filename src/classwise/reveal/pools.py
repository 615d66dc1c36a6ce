"""Disjoint image pools: canvases and search images from ``train``, evaluation on ``test``.

The training split is partitioned once, per class and with a fixed seed, into a canvas
pool (``CANVAS_SHARE`` of each class) and a search pool (the rest). A pattern for class
t takes its canvas from t's canvas pool and is searched on the other classes' search
pool; its predictive power is measured on the test split only. The three never meet.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from classwise.data.base import Split
from classwise.seeding import rng

CANVAS_SHARE = 0.2
POOL_SEED = 0
PRELOAD_BYTES = 1 << 30


@dataclass(frozen=True)
class Pools:
    """Indices into the training split: ``canvas`` and ``search`` (disjoint)."""

    canvas: np.ndarray
    search: np.ndarray

    def canvas_candidates(self, labels: np.ndarray, target: int) -> np.ndarray:
        """The canvas pool's images of ``target``, in the pool's fixed order."""
        return self.canvas[labels[self.canvas] == target]


def partition(labels: np.ndarray, share: float = CANVAS_SHARE) -> Pools:
    """Split training indices per class into canvas and search pools (seeded, stable)."""
    gen = rng(POOL_SEED, 0xC4)
    canvas, search = [], []
    for c in np.unique(labels):
        idx = gen.permutation(np.flatnonzero(labels == c))
        n = max(1, int(round(share * len(idx))))
        canvas.append(idx[:n])
        search.append(idx[n:])
    return Pools(np.concatenate(canvas), np.sort(np.concatenate(search)))


class SplitBank:
    """Images ``indices`` of a split as a search bank (position ``i`` is ``indices[i]``):
    held on the device when they fit in ``PRELOAD_BYTES``, else loaded at each take."""

    def __init__(self, split: Split, indices: np.ndarray, device: torch.device) -> None:
        self.split, self.indices, self.device = split, np.asarray(indices), device
        c, h, w = split.image_shape
        fits = len(indices) * c * h * w * 4 <= PRELOAD_BYTES
        self.cache = split.load(self.indices).to(device) if fits else None

    def __len__(self) -> int:
        return len(self.indices)

    def take(self, positions: np.ndarray) -> torch.Tensor:
        """Images at ``positions`` as float tensors on the device, shaped like them."""
        flat = np.asarray(positions, dtype=np.int64).reshape(-1)
        if self.cache is not None:
            x = self.cache[torch.from_numpy(flat).to(self.device)]
        else:
            x = self.split.load(self.indices[flat]).to(self.device)
        return x.view(*np.shape(positions), *x.shape[1:])
