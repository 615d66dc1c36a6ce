"""``compare``: reveal runs on models of the same data side by side, class by class.

Typical use: natural vs adversarially trained, or clean vs backdoored models. The result
holds each class's predictive power and shape figures per run, with their means over
classes, and draws one grid (a row per class; per run a canvas and a pattern column).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from classwise.errors import UsageError
from classwise.fileio import write_json
from classwise.results import RevealResult

if TYPE_CHECKING:
    from matplotlib.figure import Figure

FIGURES = ("predictive_power", "no_pattern", "random_pixels", "pixels", "components",
           "largest_component_share", "on_object")
"""Per-class figures compared, when the runs carry them."""

RunSpec = str | Path | RevealResult


@dataclass
class CompareResult:
    """Runs of one dataset, with a label and a source (folder or ``""``) for each."""

    runs: list[RevealResult]
    labels: list[str]
    sources: list[str]

    @property
    def classes(self) -> list[int]:
        """Classes found in any run, in index order."""
        return sorted({int(c) for run in self.runs for c in run.classes})

    def record(self, run: RevealResult, c: int) -> dict[str, Any] | None:
        """``run``'s record of class ``c`` (None where the run did not search it)."""
        return next((r for r in run.records if int(r["class"]) == c), None)

    def name(self, c: int) -> str:
        """Class ``c``'s name, from the first run that has it."""
        for run in self.runs:
            if (rec := self.record(run, c)) is not None:
                return str(rec.get("name", c))
        return str(c)

    def _keys(self) -> list[str]:
        return [k for k in FIGURES if any(k in r for run in self.runs for r in run.records)]

    def _values(self, run: RevealResult, key: str) -> list[float]:
        return [r[key] for r in run.records if r.get(key) is not None]

    def means(self) -> dict[str, list[float | None]]:
        """Per figure, its mean over each run's classes (``None`` where a run lacks it)."""
        return {key: [float(np.mean(v)) if (v := self._values(run, key)) else None
                      for run in self.runs] for key in self._keys()}

    def to_json(self) -> dict[str, Any]:
        """The ``compare.json`` layout that ``write_compare_report`` reads."""
        first = self.runs[0]
        keys = self._keys()
        rows = []
        for c in self.classes:
            recs = [self.record(run, c) for run in self.runs]
            rows.append({"class": c, "name": self.name(c),
                         **{k: [None if r is None else r.get(k) for r in recs] for k in keys}})
        return {
            "data": first.settings.get("data"), "image_shape": list(first.canvases.shape[1:]),
            "runs": [{"label": label, "path": source, "model": run.settings.get("model"),
                      "preset": run.settings.get("preset"),
                      "budget_pixels": run.settings.get("budget_pixels"),
                      "seed": run.settings.get("seed")}
                     for run, label, source in zip(self.runs, self.labels, self.sources,
                                                   strict=True)],
            "classes": rows, "means": self.means()}

    def figure(self) -> Figure:
        """A row per class; per run a canvas and a pattern column, titled with the run's
        label and mean predictive power. A class a run did not search is left blank."""
        from classwise.report.figures import compare_figure

        return compare_figure(self)

    def save(self, out: str | Path) -> Path:
        """Write ``compare.png``, ``flips.png`` (one heat map of what the patterns flip per
        run, where the runs recorded it), ``compare.json`` and ``report.html`` into ``out``."""
        from classwise.fileio import save_figure
        from classwise.report.figures import DPI, flips_figure
        from classwise.report.html import flips_panel, write_compare_report

        out = Path(out)
        save_figure(self.figure(), out / "compare.png", dpi=DPI)
        panels = {label: flips_panel(run.to_json())
                  for label, run in zip(self.labels, self.runs, strict=True)}
        if all(panel is not None for panel in panels.values()):
            save_figure(flips_figure(panels), out / "flips.png", dpi=DPI)
        write_json(out / "compare.json", self.to_json())
        write_compare_report(out)
        return out


def _load(run: RunSpec) -> tuple[RevealResult, str]:
    """A run and its source folder, or a one-line UsageError when the folder is not a run."""
    if isinstance(run, RevealResult):
        return run, ""
    folder = Path(run)
    missing = [f for f in ("results.json", "patterns.npz") if not (folder / f).is_file()]
    if missing:
        raise UsageError(f"{folder} is not a reveal run folder (no {', '.join(missing)}); "
                         "give folders written by classwise reveal")
    return RevealResult.load(folder), str(folder)


def _default_labels(runs: list[RevealResult], sources: list[str]) -> list[str]:
    """Folder names (whole paths when names repeat); the model name for in-memory runs."""
    labels = [Path(s).name if s else str(r.settings.get("model", f"run {i + 1}"))
              for i, (r, s) in enumerate(zip(runs, sources, strict=True))]
    if len(set(labels)) < len(labels):
        labels = [s or f"{label} ({i + 1})" for i, (label, s) in
                  enumerate(zip(labels, sources, strict=True))]
    return labels


def _check_runs(runs: list[RevealResult], labels: list[str]) -> None:
    """Refuse empty runs and runs of different datasets or image sizes."""
    for run, label in zip(runs, labels, strict=True):
        if not run.records:
            raise UsageError(f"run {label!r} holds no classes; give runs that revealed "
                             "at least one class")
    for run, label in zip(runs[1:], labels[1:], strict=True):
        data, first = run.settings.get("data"), runs[0].settings.get("data")
        if data != first:
            raise UsageError(f"run {label!r} is on data {data!r} but {labels[0]!r} is on "
                             f"{first!r}; compare runs of the same data")
        shape, first_shape = run.canvases.shape[1:], runs[0].canvases.shape[1:]
        if shape != first_shape:
            raise UsageError(f"run {label!r} has images {'x'.join(map(str, shape))} but "
                             f"{labels[0]!r} has {'x'.join(map(str, first_shape))}; compare "
                             "runs of the same image size")


def compare(runs: Sequence[RunSpec], out: str | Path | None = None,
            labels: Sequence[str] | None = None) -> CompareResult:
    """Compare two or more reveal runs (folders or results) of the same data, class by class.

    ``labels`` name the runs (default: their folder names). With ``out``, writes
    ``compare.png``, ``compare.json`` and ``report.html`` there; nothing is written when the
    input is refused.
    """
    if len(runs) < 2:
        raise UsageError(f"compare needs at least two runs, got {len(runs)}; give two or more "
                         "reveal run folders")
    if labels is not None and len(labels) != len(runs):
        raise UsageError(f"got {len(labels)} labels for {len(runs)} runs; give one label per "
                         "run")
    loaded, sources = zip(*(_load(r) for r in runs), strict=True)
    loaded, sources = list(loaded), list(sources)
    labels = [str(x) for x in labels] if labels is not None else _default_labels(loaded, sources)
    _check_runs(loaded, labels)
    result = CompareResult(loaded, labels, sources)
    if out is not None:
        result.save(out)
    return result
