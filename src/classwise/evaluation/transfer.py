"""``evaluate``: the predictive power of saved patterns on another model or dataset."""

from __future__ import annotations

import time
from pathlib import Path

from torch import nn

from classwise.data import load_data
from classwise.data.base import Dataset
from classwise.errors import UsageError
from classwise.evaluation.measure import TestSet, make_examples, pattern_figures
from classwise.evaluation.shape import shape_figures
from classwise.models import checked_layout, load_model
from classwise.results import RevealResult
from classwise.versions import versions


def evaluate(patterns: str | Path | RevealResult, model: str | Path | nn.Module,
             data: str | Path | Dataset, seed: int = 0, device: str | None = None,
             model_name: str | None = None) -> RevealResult:
    """Measure saved patterns (a run folder or a result) on ``model`` and ``data``'s test split.

    The canvases and patterns are kept as they were found; the figures are measured anew,
    so a pattern found on one model can be tried on another (transfer).
    """
    source = patterns if isinstance(patterns, RevealResult) else _load_run(patterns)
    ds = load_data(data)
    net = load_model(model, device=device)
    net = checked_layout(net, ds.test.load([0, 1]), ds.num_classes)
    c, h, w = ds.image_shape
    if source.canvases.shape[1:] != (c, h, w):
        raise UsageError(f"the patterns are {tuple(source.canvases.shape[1:])} but the data's "
                         f"images are {(c, h, w)}; evaluate on data of the same image size")
    start = time.perf_counter()
    test = TestSet(net, ds.test, ds.num_classes)
    records, examples = [], {}
    for i, t in enumerate(int(t) for t in source.classes):
        class_start = time.perf_counter()
        if t >= ds.num_classes:
            raise UsageError(f"the patterns include class {t} but the data has "
                             f"{ds.num_classes} classes; give data with the same classes")
        old = source.records[i]
        rec = {"class": t, "name": ds.class_names[t], "canvas_split": old["canvas_split"],
               "canvas_index": old["canvas_index"], "pixels": int(source.patterns[i].sum())}
        rec.update(pattern_figures(test, t, source.canvases[i], source.patterns[i], seed))
        rec.update(shape_figures(source.patterns[i], _object_mask(source, i, ds)))
        rec["seconds"] = round(time.perf_counter() - class_start, 3)
        records.append(rec)
        examples[t] = make_examples(test, ds.class_names, t, source.canvases[i],
                                    source.patterns[i], seed)
    settings = {"evaluated": True, "source": source.settings, "model": model_name or _name(model),
                "data": ds.name, "seed": seed, "seconds": round(time.perf_counter() - start, 2),
                "versions": versions()}
    return RevealResult(source.classes.copy(), source.canvases.copy(), source.masks.copy(),
                        source.patterns.copy(), records, settings, list(ds.class_names),
                        examples, source.ranks)


def _object_mask(source: RevealResult, i: int, ds: Dataset):
    """The canvas's ground-truth object mask, where the canvas is a training image of ``ds``."""
    rec, masks = source.records[i], ds.train.object_masks
    same_data = source.settings.get("data", ds.name) == ds.name
    if masks is None or not same_data or rec.get("canvas_split") != "train":
        return None
    return masks[rec["canvas_index"]]


def _load_run(path: str | Path) -> RevealResult:
    run = Path(path)
    if not (run / "patterns.npz").is_file() or not (run / "results.json").is_file():
        raise UsageError(f"{path} is not a run folder; give a folder written by classwise "
                         "reveal or scan (with patterns.npz and results.json)")
    try:
        return RevealResult.load(run)
    except (OSError, ValueError, KeyError) as e:
        raise UsageError(f"cannot read the run in {path} ({e}); rerun classwise reveal") from None


def _name(model: object) -> str:
    return type(model).__name__ if isinstance(model, nn.Module) else str(model)


__all__ = ["evaluate"]
