"""Rows of a search: one (target class, canvas) pair each, with its own stream of images.

Images and canvases come from *banks*: a tensor, or anything with ``len()`` and
``take(positions)`` that returns float (n, C, H, W) images in [0, 1] on the search's device
(a dataset split that loads lazily, say). A row's search images are the bank's images whose
label is not its target; a seeded share of them is held out for checks and never searched.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

import numpy as np
import torch

from classwise.errors import UsageError
from classwise.seeding import generator


class Bank(Protocol):
    """Images by position: ``take(positions)`` -> float (n, C, H, W) on the device."""

    def __len__(self) -> int: ...

    def take(self, positions: np.ndarray) -> torch.Tensor: ...


class TensorBank:
    """A bank over a tensor of images (N, C, H, W), moved to ``device`` once."""

    def __init__(self, images: torch.Tensor, device: torch.device) -> None:
        self.images = images.to(device=device, dtype=torch.float32)

    def __len__(self) -> int:
        return len(self.images)

    def take(self, positions: np.ndarray) -> torch.Tensor:
        flat = torch.from_numpy(np.asarray(positions, dtype=np.int64).reshape(-1))
        x = self.images[flat.to(self.images.device)]
        return x.view(*np.shape(positions), *x.shape[1:])


def as_bank(images: torch.Tensor | Bank, device: torch.device) -> Bank:
    """``images`` as a bank on ``device`` (a tensor is wrapped; a bank is kept)."""
    return TensorBank(images, device) if isinstance(images, torch.Tensor) else images


class RowSampler:
    """An endless stream of search-image batches for one row (target, slot).

    Its own generator makes the stream independent of which rows share a pass, so the
    same seed gives the same patterns however the rows are chunked or sharded.
    ``positions`` are the bank positions of the row's search images (every label but the
    target's); ``val_images`` of them are held out (:attr:`val`) for checks.
    """

    def __init__(self, positions: np.ndarray, seed: int, target: int, slot: int,
                 val_images: int = 0, search_images: int | None = None) -> None:
        if len(positions) == 0:
            raise UsageError(f"no search images outside class {target}; the search needs "
                             "images of at least two classes")
        # The held-out part depends on the class only, so every canvas candidate of a
        # class is judged on the same images; the batch stream depends on the row.
        order = positions[torch.randperm(len(positions),
                                         generator=generator(seed, target)).numpy()]
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


@dataclass
class Rows:
    """Rows searched together: targets (R,), canvases (R, C, H, W), one sampler each, and
    where each row's canvas stands in its bank (``positions``, for checkpoints)."""

    targets: torch.Tensor
    canvases: torch.Tensor
    samplers: list[RowSampler]
    positions: list[int] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.targets)

    def take(self, keep: torch.Tensor | list[int]) -> Rows:
        """The rows at ``keep``, sharing their samplers (their streams go on)."""
        idx = torch.as_tensor(keep, dtype=torch.long)
        return Rows(self.targets[idx.to(self.targets.device)],
                    self.canvases[idx.to(self.canvases.device)],
                    [self.samplers[i] for i in idx.tolist()],
                    [self.positions[i] for i in idx.tolist()] if self.positions else [])

    def draw(self, images: Bank, batch_size: int) -> torch.Tensor:
        """The next batch of every row: (R, B, C, H, W)."""
        return images.take(np.stack([s.next(batch_size) for s in self.samplers]))

    def state_dict(self) -> list[dict]:
        return [s.state_dict() for s in self.samplers]

    def load_state_dict(self, state: list[dict]) -> None:
        for sampler, s in zip(self.samplers, state, strict=True):
            sampler.load_state_dict(s)
