"""The backdoor-attack base class, the poisoned split and the attack success rate.

An attack thinks in [0, 1] pixels of one image size: :meth:`BackdoorAttack.apply`
stamps its trigger on a batch, :meth:`BackdoorAttack.poison_indices` picks the
training images to poison, and :class:`PoisonedSplit` serves the poisoned data.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any

import numpy as np
import torch
from torch import nn

from classwise.data.base import Split
from classwise.errors import UsageError
from classwise.seeding import rng


def checked_shape(image_shape: tuple[int, int, int]) -> tuple[int, int, int]:
    """``image_shape`` as ``(C, H, W)`` ints; :class:`UsageError` unless three positive sizes."""
    shape = tuple(int(s) for s in image_shape)
    if len(shape) != 3 or min(shape) < 1:
        raise UsageError(f"image_shape must be (C, H, W) with positive sizes, got "
                         f"{tuple(image_shape)}; pass the data's image_shape")
    return shape


class BackdoorAttack(ABC):
    """A data-poisoning backdoor for images of shape ``image_shape`` ``(C, H, W)``.

    ``name`` is the registry key; ``clean_label`` attacks keep the labels of the images
    they poison (drawn from the target class) instead of relabelling other classes.
    ``default_rate`` is the poison rate to use when the user gives none.
    """

    name: str
    clean_label: bool = False
    default_rate: float = 0.1

    def __init__(self, image_shape: tuple[int, int, int], seed: int = 0) -> None:
        self.image_shape = checked_shape(image_shape)
        self.seed = int(seed)

    def apply(self, x: torch.Tensor) -> torch.Tensor:
        """Triggered copies of ``x`` (float ``(N, C, H, W)`` in [0, 1]), same device and dtype."""
        if not torch.is_floating_point(x) or x.ndim != 4 or tuple(x.shape[1:]) != self.image_shape:
            raise UsageError(f"{self.name} was built for float images of shape (N, "
                             f"{', '.join(map(str, self.image_shape))}), got {x.dtype} "
                             f"{tuple(x.shape)}; build the attack with the data's image_shape")
        return self._apply(x).clamp(0.0, 1.0)

    @abstractmethod
    def _apply(self, x: torch.Tensor) -> torch.Tensor:
        """Apply the trigger to a validated batch; the result is clamped to [0, 1]."""

    @abstractmethod
    def trigger(self) -> tuple[np.ndarray, np.ndarray]:
        """``(pattern (C, H, W), mask (H, W))``, float32 in [0, 1].

        Exact as ``x' = (1 - mask) * x + mask * pattern`` where the attack is of that
        form; otherwise a picture of the trigger (see the subclass).
        """

    def poison_indices(self, labels: np.ndarray, target: int, rate: float,
                       seed: int) -> np.ndarray:
        """Sorted indices of the training images that get the trigger.

        Dirty-label: ``round(rate * n)`` of the ``n`` images outside the target class
        (they are relabelled to ``target``). Clean-label: ``round(rate * n)`` of the ``n``
        target-class images, so ``rate`` is a fraction of the target class.
        """
        labels = np.asarray(labels)
        pool = np.flatnonzero(labels == target if self.clean_label else labels != target)
        count = round(rate * len(pool))
        if count == 0:
            which = "target-class" if self.clean_label else "non-target"
            raise UsageError(f"poison rate {rate} of {len(pool)} {which} images poisons none; "
                             "raise the rate")
        return np.sort(rng(seed).choice(pool, size=count, replace=False))

    def options(self) -> dict[str, Any]:
        """JSON-serialisable settings; ``make_attack(image_shape=..., **options())`` rebuilds."""
        return {"name": self.name, "seed": self.seed}


class MaskedAttack(BackdoorAttack):
    """An attack of the form ``x' = (1 - mask) * x + mask * pattern``.

    Subclasses build the full-size trigger in their constructor and pass it to
    :meth:`_set_trigger`.
    """

    def _set_trigger(self, pattern: np.ndarray, mask: np.ndarray) -> None:
        c, h, w = self.image_shape
        self._pattern = torch.tensor(np.broadcast_to(pattern, (c, h, w)), dtype=torch.float32)
        self._mask = torch.tensor(np.broadcast_to(mask, (h, w)), dtype=torch.float32)

    def _apply(self, x: torch.Tensor) -> torch.Tensor:
        mask = self._mask.to(x)
        return (1 - mask) * x + mask * self._pattern.to(x)

    def trigger(self) -> tuple[np.ndarray, np.ndarray]:
        return self._pattern.numpy().copy(), self._mask.numpy().copy()


class PoisonedSplit(Split):
    """``base`` with ``attack`` applied to the rows ``indices``.

    Those rows are relabelled to ``target`` unless the attack is clean-label.
    """

    def __init__(self, base: Split, attack: BackdoorAttack, indices: np.ndarray,
                 target: int) -> None:
        labels = base.labels.copy()
        self.poisoned = np.unique(np.asarray(indices, dtype=np.int64))
        if not attack.clean_label:
            labels[self.poisoned] = target
        super().__init__(labels, base.image_shape, base.object_masks)
        self.base = base
        self.attack = attack
        self.target = int(target)

    def _load(self, indices: np.ndarray) -> torch.Tensor:
        x = self.base.load(indices)
        hit = torch.from_numpy(np.isin(indices, self.poisoned))
        if hit.any():
            x[hit] = self.attack.apply(x[hit])
        return x


def validate_poison_args(target: int, num_classes: int, rate: float) -> None:
    """Raise :class:`UsageError` for a target outside the classes or a rate outside (0, 1)."""
    if not 0 <= target < num_classes:
        raise UsageError(f"target {target} is out of range; use a class in 0..{num_classes - 1}")
    if not 0 < rate < 1:
        raise UsageError(f"poison rate {rate} is outside (0, 1); use a fraction such as 0.1")


def attack_success_rate(model: nn.Module, split: Split, attack: BackdoorAttack, target: int,
                        batch_size: int = 256,
                        device: str | torch.device | None = None) -> float:
    """Share of ``split``'s non-target images that ``model`` calls ``target`` once triggered.

    ``model`` takes [0, 1] images and returns logits; ``device`` defaults to the model's.
    """
    indices = split.indices_of(target, exclude=True)
    if len(indices) == 0:
        raise UsageError(f"the split has no images outside target class {target}; "
                         "the attack success rate needs images of other classes")
    if device is None:
        param = next(model.parameters(), None)
        device = param.device if param is not None else torch.device("cpu")
    was_training = model.training
    model.eval()
    hits = 0
    try:
        with torch.no_grad():
            for start in range(0, len(indices), batch_size):
                x = attack.apply(split.load(indices[start:start + batch_size]).to(device))
                hits += int((model(x).argmax(dim=1) == target).sum())
    finally:
        model.train(was_training)
    return hits / len(indices)
