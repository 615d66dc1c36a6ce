"""The figures of found patterns, measured on the test split only.

Per class: predictive power with the pattern, without it and for as many random pixels of
the same canvas; the budget curve (the mask's top pixels cut at a few multiples of the
budget); the pattern's shape; and a few test images before and after stamping. A
:class:`TestSet` holds what the classes of a run share: the test images, loaded once, and
the model's predictions on them without a pattern, made once.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from classwise.batching import batches
from classwise.data.base import Split
from classwise.evaluation.metrics import other_class_indices, random_pattern
from classwise.evaluation.shape import shape_figures
from classwise.models.loading import model_device
from classwise.search.ops import stamp

EXAMPLES_PER_CLASS = 6
CURVE_FACTORS = (0.25, 0.5, 1.0, 2.0, 4.0)


@dataclass(frozen=True)
class Examples:
    """Images before and after stamping a pattern, with the model's predictions.

    ``before`` and ``after`` are ``(m, C, H, W)``; ``pred_before`` and ``pred_after`` are
    ``(m,)`` class indices named by ``class_names``. After-predictions equal to ``target``
    (the pattern's class) are highlighted; with ``target=None`` none are.
    """

    before: np.ndarray
    after: np.ndarray
    pred_before: np.ndarray
    pred_after: np.ndarray
    class_names: Sequence[str]
    target: int | None = None


PRELOAD_BYTES = 1 << 30


class TestSet:
    """The test split as every figure needs it: its images (held on the model's device when
    they fit in ``PRELOAD_BYTES``), its labels, and the model's predictions on the plain
    images, made once per run. Stamped images go through the model in batches of
    ``batch_size``, in index order."""

    def __init__(self, model: nn.Module, split: Split, num_classes: int,
                 batch_size: int = 256) -> None:
        self.model, self.split, self.batch_size = model, split, batch_size
        self.num_classes = num_classes
        self.device = model_device(model)
        self.labels = split.labels
        c, h, w = split.image_shape
        fits = len(split) * c * h * w * 4 <= PRELOAD_BYTES
        self.images = split.load().to(self.device) if fits else None
        self.plain = self.predict(np.arange(len(split)))

    def load(self, indices: np.ndarray) -> torch.Tensor:
        """Test images at ``indices`` on the model's device."""
        if self.images is not None:
            return self.images[torch.from_numpy(indices).to(self.device)]
        return self.split.load(indices).to(self.device)

    @torch.no_grad()
    def predict(self, indices: np.ndarray, canvas: torch.Tensor | None = None,
                pattern: torch.Tensor | None = None) -> np.ndarray:
        """Predicted classes of the images at ``indices``, stamped when given a pattern."""
        out = [np.empty(0, dtype=np.int64)]
        for chunk in batches(indices, self.batch_size):
            x = self.load(chunk)
            if pattern is not None:
                x = stamp(x, canvas, pattern)
            out.append(self.model(x).argmax(1).cpu().numpy())
        return np.concatenate(out)

    def power(self, target: int, canvas: np.ndarray, pattern: np.ndarray) -> float:
        """Share of the other classes' test images classified as ``target`` once stamped."""
        return float(self._flipped(target, canvas, pattern)[1].mean())

    def by_source(self, target: int, canvas: np.ndarray, pattern: np.ndarray
                  ) -> tuple[float, list[float | None]]:
        """The power, and per class the share of its test images classified as ``target``
        once stamped (None at the target itself and for a class without test images); the
        power is their mean weighted by the classes' image counts."""
        others, hits = self._flipped(target, canvas, pattern)
        sources = self.labels[others]
        shares: list[float | None] = [None] * self.num_classes
        for s in np.unique(sources):
            shares[int(s)] = float(hits[sources == s].mean())
        return float(hits.mean()), shares

    def _flipped(self, target: int, canvas: np.ndarray, pattern: np.ndarray
                 ) -> tuple[np.ndarray, np.ndarray]:
        others = other_class_indices(self.split, target)
        c = torch.as_tensor(canvas, dtype=torch.float32).to(self.device)
        p = torch.as_tensor(pattern, dtype=torch.bool).to(self.device)
        return others, self.predict(others, c, p) == target

    def no_pattern(self, target: int) -> float:
        """Share of the other classes' test images the model already calls ``target``."""
        return float((self.plain[other_class_indices(self.split, target)] == target).mean())


def class_figures(test: TestSet, target: int, canvas: np.ndarray, pattern: np.ndarray,
                  seed: int, ranks: np.ndarray | None = None,
                  object_mask: np.ndarray | None = None) -> dict[str, Any]:
    """Every figure of one class's pattern: the three powers, the budget curve (given the
    ``ranks`` of the optimised mask's pixels) and the shape figures (``on_object`` given the
    canvas's object mask)."""
    figures = pattern_figures(test, target, canvas, pattern, seed)
    if ranks is not None:
        figures["budget_curve"] = budget_curve(test, target, canvas, ranks, int(pattern.sum()),
                                               figures["predictive_power"])
    figures.update(shape_figures(pattern, object_mask))
    return figures


def pattern_figures(test: TestSet, target: int, canvas: np.ndarray, pattern: np.ndarray,
                    seed: int) -> dict[str, float]:
    """Predictive power on ``test`` with the pattern (pooled, and ``by_source`` class),
    without it, and for as many random pixels of the canvas."""
    rand = random_pattern(pattern.shape, int(pattern.sum()), seed, target)
    power, shares = test.by_source(target, canvas, pattern)
    return {"predictive_power": power, "by_source": shares,
            "no_pattern": test.no_pattern(target),
            "random_pixels": test.power(target, canvas, rand)}


def budget_curve(test: TestSet, target: int, canvas: np.ndarray, ranks: np.ndarray, k: int,
                 power_at_k: float) -> list[list[float]]:
    """``[pixels, predictive power]`` of the mask's top pixels cut at a few multiples of ``k``.

    The mask is the one optimised for ``k`` pixels (``ranks`` orders its pixels); the curve
    shows how much of the decision fewer or more of its pixels carry (measured on ``test``,
    like every figure). The cut at ``k`` is the pattern itself, whose measured
    ``power_at_k`` is reused.
    """
    h, w = ranks.shape
    counts = sorted({min(max(1, round(f * k)), h * w - 1) for f in CURVE_FACTORS})
    out = []
    for n in counts:
        power = power_at_k if n == k else test.power(target, canvas, ranks < n)
        out.append([n, round(power, 4)])
    return out


def make_examples(test: TestSet, class_names: Sequence[str], target: int, canvas: np.ndarray,
                  pattern: np.ndarray, seed: int, n: int = EXAMPLES_PER_CLASS) -> Examples:
    """A few other-class test images before and after stamping, with the predictions."""
    idx = other_class_indices(test.split, target)
    idx = np.sort(np.random.default_rng([seed, target, 0xE7]).choice(idx, min(n, len(idx)),
                                                                     replace=False))
    before = test.load(idx)
    after = stamp(before, torch.as_tensor(canvas).to(before), torch.as_tensor(pattern).to(
        before.device))
    with torch.no_grad():
        pa = test.model(after).argmax(1).cpu().numpy()
    return Examples(before.cpu().numpy(), after.cpu().numpy(), test.plain[idx], pa,
                    list(class_names), target)
