"""The result of a search: patterns, masks, canvases, figures and settings, with ``save()``."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from classwise.data.base import Dataset
from classwise.evaluation.metrics import other_class_indices, predictive_power, random_pattern
from classwise.evaluation.shape import shape_figures
from classwise.fileio import write_json, write_npz
from classwise.search.canvas import canvas_images
from classwise.versions import versions

EXAMPLES_PER_CLASS = 6


@dataclass
class RevealResult:
    """Per class: canvas (C, H, W), optimised mask (H, W), kept pattern (H, W) and figures.

    Stamping pattern ``i`` on images ``x`` is ``where(patterns[i], canvases[i], x)``.
    """

    classes: np.ndarray
    canvases: np.ndarray
    masks: np.ndarray
    patterns: np.ndarray
    records: list[dict[str, Any]]
    settings: dict[str, Any]
    class_names: list[str] = field(default_factory=list)
    examples: dict[int, Any] = field(default_factory=dict, repr=False)
    _started: float = field(default_factory=time.perf_counter, repr=False)

    @classmethod
    def empty(cls, data: Dataset, k: int, settings: dict[str, Any]) -> RevealResult:
        c, h, w = data.image_shape
        return cls(np.zeros(0, np.int64), np.zeros((0, c, h, w), np.float32),
                   np.zeros((0, h, w), np.float32), np.zeros((0, h, w), bool), [],
                   {**settings, "versions": versions()}, list(data.class_names))

    @property
    def mean_predictive_power(self) -> float:
        return float(np.mean([r["predictive_power"] for r in self.records])) \
            if self.records else float("nan")

    def stamp(self, x: torch.Tensor, i: int) -> torch.Tensor:
        """Images ``x`` (N, C, H, W) with pattern ``i`` stamped on."""
        canvas = torch.as_tensor(self.canvases[i], device=x.device)
        return torch.where(torch.as_tensor(self.patterns[i], device=x.device), canvas, x)

    def add(self, classes: list[int], masks: np.ndarray, chosen: list[Any], seconds: float,
            model: nn.Module, data: Dataset, k: int, seed: int, curve: bool = True) -> None:
        """Append searched classes, measuring their figures on the test split.

        ``curve=False`` leaves out the budget curve (a scan's ``pixels`` are its own).
        """
        from classwise.search.ops import topk_mask

        patterns = topk_mask(torch.from_numpy(masks), k).numpy()
        canvases = canvas_images(chosen, data, seed).numpy()
        for t, mask, pattern, canvas, cand in zip(classes, masks, patterns, canvases, chosen,
                                                  strict=True):
            rec = {"class": int(t), "name": data.class_names[t], **cand.record(),
                   "pixels": int(pattern.sum())}
            rec.update(evaluate_pattern(model, data, t, canvas, pattern, seed))
            if curve:
                rec["budget_curve"] = budget_curve(model, data, t, canvas, mask, k,
                                                   rec["predictive_power"])
            obj = data.train.object_masks
            on_train = obj is not None and cand.train_index is not None
            rec.update(shape_figures(pattern, obj[cand.train_index] if on_train else None))
            rec["seconds"] = round(seconds / len(classes), 3)
            self.records.append(rec)
            self.examples[int(t)] = make_examples(model, data, t, canvas, pattern, seed)
        self.classes = np.concatenate([self.classes, np.asarray(classes, np.int64)])
        self.canvases = np.concatenate([self.canvases, canvases.astype(np.float32)])
        self.masks = np.concatenate([self.masks, masks.astype(np.float32)])
        self.patterns = np.concatenate([self.patterns, patterns])

    def finish(self) -> RevealResult:
        self.settings["seconds"] = round(time.perf_counter() - self._started, 2)
        return self

    def to_json(self) -> dict[str, Any]:
        return {"settings": self.settings, "classes": self.records,
                "mean_predictive_power": self.mean_predictive_power}

    def save(self, out: str | Path, pictures: bool = True) -> Path:
        """Write ``patterns.npz``, ``results.json`` and (by default) the pictures into ``out``."""
        out = Path(out)
        write_npz(out / "patterns.npz", classes=self.classes, canvases=self.canvases,
                  masks=self.masks, patterns=self.patterns)
        write_json(out / "results.json", self.to_json())
        if pictures:
            from classwise.report.html import save_run_pictures, write_report

            save_run_pictures(out, self.examples)
            self.save_budget_curve(out / "budget_curve.png")
            write_report(out)
        return out

    def save_budget_curve(self, path: Path) -> None:
        """Draw predictive power against the number of pixels kept, per class and mean."""
        from classwise.fileio import save_figure
        from classwise.report.figures import budget_curve_figure

        curves = [r["budget_curve"] for r in self.records if "budget_curve" in r]
        if not curves:
            return
        pixels = [p for p, _ in curves[0]]
        series = {r["name"]: [v for _, v in r["budget_curve"]] for r in self.records[:10]
                  if "budget_curve" in r}
        series["mean"] = list(np.mean([[v for _, v in c] for c in curves], axis=0))
        save_figure(budget_curve_figure(pixels, series), path, dpi=150)

    @classmethod
    def load(cls, run: str | Path) -> RevealResult:
        """Read a run folder written by :meth:`save`."""
        run = Path(run)
        with np.load(run / "patterns.npz") as f:
            arrays = {k: f[k] for k in ("classes", "canvases", "masks", "patterns")}
        meta = json.loads((run / "results.json").read_text())
        names = {r["class"]: r["name"] for r in meta["classes"]}
        return cls(records=meta["classes"], settings=meta["settings"],
                   class_names=[names.get(i, str(i)) for i in range(max(names, default=-1) + 1)],
                   **arrays)

    def plot(self):
        """The overview figure: canvas, mask and pattern of every class."""
        from classwise.report.figures import overview_figure

        titles = [f"{r['name']} · pp {r['predictive_power']:.2f}" for r in self.records]
        return overview_figure(self.canvases, self.masks, self.patterns, titles)


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


CURVE_FACTORS = (0.25, 0.5, 1.0, 2.0, 4.0)


def budget_curve(model: nn.Module, data: Dataset, target: int, canvas: np.ndarray,
                 mask: np.ndarray, k: int, power_at_k: float) -> list[list[float]]:
    """``[pixels, predictive power]`` of the mask's top pixels cut at a few multiples of ``k``.

    The mask is the one optimised for ``k`` pixels; the curve shows how much of the decision
    fewer or more of its pixels carry (measured on ``test``, like every figure). The cut at
    ``k`` is the pattern itself, whose measured ``power_at_k`` is reused.
    """
    from classwise.search.ops import topk_mask

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
                  pattern: np.ndarray, seed: int, n: int = EXAMPLES_PER_CLASS):
    """A few other-class test images before and after stamping, with the predictions."""
    from classwise.models import model_device
    from classwise.report.figures import Examples

    idx = other_class_indices(data.test, target)
    idx = np.sort(np.random.default_rng([seed, target, 0xE7]).choice(idx, min(n, len(idx)),
                                                                     replace=False))
    before = data.test.load(idx)
    after = torch.where(torch.from_numpy(pattern), torch.from_numpy(canvas), before)
    dev = model_device(model)
    pb = model(before.to(dev)).argmax(1).cpu().numpy()
    pa = model(after.to(dev)).argmax(1).cpu().numpy()
    return Examples(before.numpy(), after.numpy(), pb, pa, list(data.class_names), target)
