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
from classwise.errors import UsageError
from classwise.seeding import generator, rng

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

    def search_for(self, labels: np.ndarray, target: int) -> np.ndarray:
        """The search pool's images of every class but ``target``."""
        return self.search[labels[self.search] != target]


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


class ImageSource:
    """Training images for the search, held on the device when they fit, else loaded lazily."""

    def __init__(self, split: Split, indices: np.ndarray, device: torch.device) -> None:
        self.split, self.device = split, device
        c, h, w = split.image_shape
        self.cache: torch.Tensor | None = None
        self.position: np.ndarray | None = None
        if len(indices) * c * h * w * 4 <= PRELOAD_BYTES:
            self.position = np.full(len(split), -1, dtype=np.int64)
            self.position[indices] = np.arange(len(indices))
            self.cache = split.load(indices).to(device)

    def __call__(self, indices: np.ndarray) -> torch.Tensor:
        """Images at ``indices`` of the split, as float tensors on the device."""
        flat = np.asarray(indices).reshape(-1)
        if self.cache is not None and (self.position[flat] >= 0).all():
            x = self.cache[torch.from_numpy(self.position[flat]).to(self.device)]
        else:
            x = self.split.load(flat).to(self.device)
        return x.view(*np.shape(indices), *x.shape[1:])


class RowSampler:
    """An endless stream of search-image batches for one row (target, canvas candidate).

    Its own generator makes the stream independent of which rows share a pass, so the
    same seed gives the same patterns however the classes are chunked or sharded.
    """

    def __init__(self, indices: np.ndarray, seed: int, target: int, slot: int,
                 val_images: int = 0, search_images: int | None = None) -> None:
        if len(indices) == 0:
            raise UsageError(f"no search images outside class {target}; the training split "
                             "needs images of at least two classes")
        # The held-out part depends on the class only, so every canvas candidate of a
        # class is judged on the same images; the batch stream depends on the row.
        order = indices[torch.randperm(len(indices), generator=generator(seed, target)).numpy()]
        n_val = min(val_images, len(order) // 2)
        self.val = np.sort(order[:n_val])
        train = order[n_val:]
        self.train = train[:search_images] if search_images else train
        self._gen = generator(seed, target, slot)
        self._queue = np.empty(0, dtype=np.int64)

    def next(self, batch_size: int) -> np.ndarray:
        """The next ``batch_size`` search images (a fresh permutation each epoch)."""
        while len(self._queue) < batch_size:
            perm = torch.randperm(len(self.train), generator=self._gen).numpy()
            self._queue = np.concatenate([self._queue, self.train[perm]])
        batch, self._queue = self._queue[:batch_size], self._queue[batch_size:]
        return batch

    def state_dict(self) -> dict:
        """The stream's position: its generator state and the rest of the current epoch."""
        return {"generator": self._gen.get_state(), "queue": self._queue.copy()}

    def load_state_dict(self, state: dict) -> None:
        self._gen.set_state(state["generator"])
        self._queue = np.asarray(state["queue"], dtype=np.int64)
