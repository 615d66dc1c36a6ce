"""The result of a search: patterns, masks, canvases, figures and settings, with ``save()``."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from classwise.data.base import Dataset
from classwise.fileio import write_json, write_npz
from classwise.search.ops import stamp
from classwise.versions import versions


@dataclass
class RevealResult:
    """Per class: canvas (C, H, W), optimised mask (H, W), kept pattern (H, W) and figures.

    Stamping pattern ``i`` on images ``x`` is ``where(patterns[i], canvases[i], x)``.
    ``ranks`` (n, H, W) orders each mask's pixels with its ties settled (0 first): the
    pattern is ``ranks < pixels``, and the top ``m`` pixels of the mask ``ranks < m``.
    """

    classes: np.ndarray
    canvases: np.ndarray
    masks: np.ndarray
    patterns: np.ndarray
    records: list[dict[str, Any]]
    settings: dict[str, Any]
    class_names: list[str] = field(default_factory=list)
    examples: dict[int, Any] = field(default_factory=dict, repr=False)
    ranks: np.ndarray | None = None

    @classmethod
    def empty(cls, data: Dataset, settings: dict[str, Any]) -> RevealResult:
        c, h, w = data.image_shape
        return cls(np.zeros(0, np.int64), np.zeros((0, c, h, w), np.float32),
                   np.zeros((0, h, w), np.float32), np.zeros((0, h, w), bool), [],
                   {**settings, "versions": versions()}, list(data.class_names))

    @property
    def mean_predictive_power(self) -> float:
        """The mean over the records that have one (NaN where none has: an MM-BD scan)."""
        powers = [r["predictive_power"] for r in self.records if "predictive_power" in r]
        return float(np.mean(powers)) if powers else float("nan")

    def stamp(self, x: torch.Tensor, i: int) -> torch.Tensor:
        """Images ``x`` (N, C, H, W) with pattern ``i`` stamped on."""
        return stamp(x, torch.as_tensor(self.canvases[i], device=x.device),
                     torch.as_tensor(self.patterns[i], device=x.device))

    def to_json(self) -> dict[str, Any]:
        return {"settings": self.settings, "classes": self.records,
                "mean_predictive_power": self.mean_predictive_power}

    def save(self, out: str | Path, pictures: bool = True) -> Path:
        """Write ``patterns.npz``, ``results.json`` and (by default) the pictures and
        ``report.html`` into ``out``."""
        out = Path(out)
        write_npz(out / "patterns.npz", classes=self.classes, canvases=self.canvases,
                  masks=self.masks, patterns=self.patterns,
                  **({} if self.ranks is None else {"ranks": self.ranks.astype(np.int32)}))
        write_json(out / "results.json", self.to_json())
        if pictures:
            from classwise.report.html import save_run_pictures, write_report

            save_run_pictures(out, self.examples)
            write_report(out)
        return out

    @classmethod
    def load(cls, run: str | Path) -> RevealResult:
        """Read a run folder written by :meth:`save`."""
        run = Path(run)
        with np.load(run / "patterns.npz") as f:
            arrays = {k: f[k] for k in ("classes", "canvases", "masks", "patterns", "ranks")
                      if k in f.files}
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
