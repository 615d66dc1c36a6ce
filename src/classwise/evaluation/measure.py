"""The figures of found patterns, measured on the test split only.

Per class: predictive power with the pattern, without it and for as many random pixels of
the same canvas; the budget curve (the mask's top pixels cut at a few multiples of the
budget); the pattern's shape; and a few test images before and after stamping.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from classwise.data.base import Dataset
from classwise.evaluation.metrics import other_class_indices, predictive_power, random_pattern
from classwise.evaluation.shape import shape_figures
from classwise.search.ops import stamp, topk_mask

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


def class_figures(model: nn.Module, data: Dataset, target: int, canvas: np.ndarray,
                  pattern: np.ndarray, seed: int, mask: np.ndarray | None = None,
                  object_mask: np.ndarray | None = None) -> dict[str, Any]:
    """Every figure of one class's pattern: the three powers, the budget curve (given the
    optimised ``mask``) and the shape figures (``on_object`` given the canvas's object mask)."""
    figures = evaluate_pattern(model, data, target, canvas, pattern, seed)
    if mask is not None:
        figures["budget_curve"] = budget_curve(model, data, target, canvas, mask,
                                               int(pattern.sum()), figures["predictive_power"])
    figures.update(shape_figures(pattern, object_mask))
    return figures


def evaluate_pattern(model: nn.Module, data: Dataset, target: int, canvas: np.ndarray,
                     pattern: np.ndarray, seed: int) -> dict[str, float]:
    """Predictive power on ``test`` with the pattern, without it, and for random pixels."""
    c = torch.from_numpy(canvas)
    rand = random_pattern(pattern.shape, int(pattern.sum()), seed, target)
    return {
        "predictive_power": predictive_power(model, data.test, target, c, pattern),
        "no_pattern": predictive_power(model, data.test, target, c, None),
        "random_pixels": predictive_power(model, data.test, target, c, rand),
    }


def budget_curve(model: nn.Module, data: Dataset, target: int, canvas: np.ndarray,
                 mask: np.ndarray, k: int, power_at_k: float) -> list[list[float]]:
    """``[pixels, predictive power]`` of the mask's top pixels cut at a few multiples of ``k``.

    The mask is the one optimised for ``k`` pixels; the curve shows how much of the decision
    fewer or more of its pixels carry (measured on ``test``, like every figure). The cut at
    ``k`` is the pattern itself, whose measured ``power_at_k`` is reused.
    """
    h, w = mask.shape
    counts = sorted({min(max(1, round(f * k)), h * w - 1) for f in CURVE_FACTORS})
    c = torch.from_numpy(canvas)
    out = []
    for n in counts:
        if n == k:
            out.append([n, round(power_at_k, 4)])
            continue
        pattern = topk_mask(torch.from_numpy(mask)[None], n)[0]
        out.append([n, round(predictive_power(model, data.test, target, c, pattern), 4)])
    return out


@torch.no_grad()
def make_examples(model: nn.Module, data: Dataset, target: int, canvas: np.ndarray,
                  pattern: np.ndarray, seed: int, n: int = EXAMPLES_PER_CLASS) -> Examples:
    """A few other-class test images before and after stamping, with the predictions."""
    from classwise.models import model_device

    idx = other_class_indices(data.test, target)
    idx = np.sort(np.random.default_rng([seed, target, 0xE7]).choice(idx, min(n, len(idx)),
                                                                     replace=False))
    before = data.test.load(idx)
    after = stamp(before, torch.from_numpy(canvas), torch.from_numpy(pattern))
    dev = model_device(model)
    pb = model(before.to(dev)).argmax(1).cpu().numpy()
    pa = model(after.to(dev)).argmax(1).cpu().numpy()
    return Examples(before.numpy(), after.numpy(), pb, pa, list(data.class_names), target)
