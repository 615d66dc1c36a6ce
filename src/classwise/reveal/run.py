"""``reveal``: the class-wise pattern of every requested class, with its figures.

A run is described by a :class:`RevealSpec` (what to open, which classes, how to search),
and done by :class:`RevealWorker`s: each opens the model and data once, searches a set of
classes with the one engine (:class:`~classwise.search.find.Engine`) and measures what it
found on the test split. The local executor runs one worker in this process over every
class; the Ray executor hands chunks of classes to one worker per CPU of a cluster.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cached_property, partial
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from classwise.data.base import Dataset
from classwise.errors import UsageError
from classwise.evaluation.measure import Examples, TestSet, class_figures, make_examples
from classwise.evaluation.metrics import other_class_indices
from classwise.executors import check_executor, execute
from classwise.models import check_model, fast_layout, resolve_device
from classwise.results import RevealResult
from classwise.reveal.canvas import Candidate, CanvasBank, candidates_for, parse_canvas
from classwise.reveal.pools import SplitBank, partition
from classwise.reveal.shards import shard_classes
from classwise.search.checkpoint import Checkpoint, once
from classwise.search.config import Plan, make_plan, preset_pixels
from classwise.search.find import Engine, chunks, rows_per_pass
from classwise.search.ops import pixels_for_budget
from classwise.sources import (
    DataSource,
    ModelSource,
    data_source,
    fingerprint,
    model_source,
    require_portable,
)
from classwise.versions import versions


def parse_classes(classes: str | int | Sequence[int | str] | None, data: Dataset) -> list[int]:
    """``"all"``/None, a comma list ``"0,3,7"``, names, or a sequence, as class indices."""
    if classes is None or (isinstance(classes, str) and classes.strip() == "all"):
        return list(range(data.num_classes))
    if isinstance(classes, str):
        classes = [c.strip() for c in classes.split(",") if c.strip()]
    elif isinstance(classes, int):
        classes = [classes]
    out = [data.class_index(c) for c in classes]
    if not out:
        raise UsageError("no classes given; use --classes all or a list such as 0,3,7")
    return sorted(set(out), key=out.index)


@dataclass(frozen=True)
class RevealSpec:
    """A reveal run as data that travels to other processes: what to open and how to search
    (``search`` holds the preset's overrides, canvas included)."""

    model: ModelSource
    data: DataSource
    pixels: int
    preset: str = "default"
    search: dict[str, Any] = field(default_factory=dict)
    seed: int = 0
    device: str | None = None
    max_batch: int | None = None
    curve: bool = False
    """Whether each class's budget curve is measured (four more passes over the test split)."""

    def plan(self, image_shape: tuple[int, int, int]) -> Plan:
        """The searches of the run for images of ``image_shape``."""
        return make_plan(self.preset, image_shape, **self.search)


class RevealWorker:
    """Searches and measures classes of one run; opens its model and data once.

    Made from a :class:`RevealSpec`, or (in the process that checked the run) with the
    model and data already open. With a ``checkpoint``, every search and each finished
    set of classes is saved as it goes, so a cut run continues where it stood.
    """

    def __init__(self, spec: RevealSpec, model: nn.Module | None = None,
                 data: Dataset | None = None, checkpoint: Checkpoint | None = None,
                 show_progress: bool = False) -> None:
        self.spec, self.checkpoint, self.show_progress = spec, checkpoint, show_progress
        self.data = data if data is not None else spec.data.open()
        if model is None:
            model = spec.model.open(self.data, spec.device)
        self.model = fast_layout(model, self.data.test.load([0, 1]))
        self.device = resolve_device(self.model, spec.device)
        self.plan = spec.plan(self.data.image_shape)
        self.pools = partition(self.data.train.labels)
        self.candidates = max(cfg.canvas_candidates for _, cfg in self.plan)

    @cached_property
    def test(self) -> TestSet:
        """The test split the figures are measured on (loaded once, when first needed)."""
        return TestSet(self.model, self.data.test, self.data.num_classes)

    def check(self, classes: list[int]) -> None:
        """Refuse a bad canvas or an unusable test split before any work."""
        parse_canvas(self.plan[0][1].canvas)
        for t in classes:
            self._candidates(t)
            other_class_indices(self.data.test, t)

    def _candidates(self, target: int) -> list:
        return candidates_for(target, self.plan[0][1].canvas, self.candidates, self.pools,
                              self.data.train.labels)

    def __call__(self, classes: list[int]) -> RevealResult:
        """The patterns of ``classes`` and their figures (settings left to the caller)."""
        spec, data, seed = self.spec, self.data, self.spec.seed
        cands = [c for t in classes for c in self._candidates(t)]
        search = self.pools.search
        engine = Engine(self.model, CanvasBank(cands, data, seed, self.device),
                        torch.tensor([c.target for c in cands]),
                        SplitBank(data.train, search, self.device), data.train.labels[search],
                        seed, self.device, spec.max_batch, self.checkpoint, self.show_progress)
        found = engine.find(self.plan, spec.pixels)
        rows = found.best().tolist()
        return self._measure(classes, [cands[i] for i in rows], found.masks[rows].numpy(),
                             found.ranks[rows].numpy(), spec.pixels,
                             [found.search[i] for i in rows], found.seconds[rows].tolist(),
                             found.ties[rows].tolist())

    def _class(self, t: int, cand: Candidate, canvas: np.ndarray, ranks: np.ndarray,
               search: str, seconds: float, ties: int) -> tuple[dict, Examples]:
        """One class's record and example images, measured on the test split."""
        data, seed = self.data, self.spec.seed
        pattern = ranks < self.spec.pixels
        record = {"class": int(t), "name": data.class_names[t], **cand.record(),
                  **({"search": search} if len(self.plan) > 1 else {}),
                  "pixels": int(pattern.sum()), "ties_at_cut": ties}
        record.update(class_figures(self.test, t, canvas, pattern, seed,
                                    ranks if self.spec.curve else None,
                                    cand.object_mask(data)))
        record["seconds"] = round(seconds, 3)
        return record, make_examples(self.test, data.class_names, t, canvas, pattern, seed)

    def _measure(self, classes: list[int], chosen: list, masks: np.ndarray, ranks: np.ndarray,
                 k: int, searches: list[str], seconds: list[float], ties: list[int]
                 ) -> RevealResult:
        """The classes' records and examples (each kept in the checkpoint as it is done)."""
        data = self.data
        canvases = CanvasBank(chosen, data, self.spec.seed, torch.device("cpu")).take(
            np.arange(len(chosen))).numpy()
        rows = zip(classes, chosen, canvases, ranks, searches, seconds, ties, strict=True)
        measured = [once(self.checkpoint, f"measured-{row[0]}", partial(self._class, *row))
                    for row in rows]
        records = [record for record, _ in measured]
        examples = {int(t): e for t, (_, e) in zip(classes, measured, strict=True)}
        return RevealResult(np.asarray(classes, np.int64), canvases.astype(np.float32),
                            masks.astype(np.float32), ranks < k, records, {},
                            list(data.class_names), examples, ranks)


def reveal(model: str | Path | nn.Module | ModelSource, data: str | Path | Dataset | DataSource,
           classes: str | Sequence[int | str] | None = "all", budget: float | None = None,
           pixels: int | None = None, preset: str = "default", canvas: str | None = None,
           seed: int = 0, device: str | None = None, max_batch: int | None = None,
           show_progress: bool = True, model_name: str | None = None,
           checkpoint: str | Path | None = None, resume: bool = False,
           shard: str | None = None, executor: str = "local", ray_address: str | None = None,
           curve: bool = False, **overrides: Any) -> RevealResult:
    """Reveal the class-wise pattern of each class of ``model`` on ``data``.

    Canvases and search images come from disjoint pools of the ``train`` split; every
    figure is measured on ``test``. ``budget`` is the share of pixels kept (default 0.05),
    or give ``pixels``. ``overrides`` change single settings of the preset (see
    :class:`~classwise.search.config.SearchConfig`); ``model_name`` is what the results
    call the model (default: its path). A :class:`~classwise.sources.ModelSource` carries
    ``weights``, ``mean`` and ``std``; a :class:`~classwise.sources.DataSource` an image
    size. With ``checkpoint`` (a folder), progress is saved as it goes (every 30 s within
    a search, and on Ctrl-C); ``resume=True`` continues from it and ends with the results
    an uninterrupted run would give. ``shard="I/N"`` searches every N-th requested class
    from the I-th (join shards with :func:`classwise.merge`); ``executor="ray"`` hands
    chunks of classes to the workers of a Ray cluster (``ray_address``, or a local
    instance). The same seed gives the same patterns however the work is split.
    ``curve=True`` also measures each class's budget curve: predictive power of the mask's
    top pixels cut at a quarter, half, twice and four times the budget (four more passes
    over the test split per class).

    >>> from classwise.models import create_model
    >>> net = create_model("small-cnn", (1, 8, 8), 10)
    >>> result = reveal(net, "digits", classes="0,1", pixels=3, preset="default",
    ...                 show_progress=False, max_steps=2, canvas_candidates=2)
    >>> result.patterns.shape, int(result.patterns[0].sum())
    ((2, 8, 8), 3)
    """
    started = time.perf_counter()
    check_executor(executor)
    source, where = model_source(model), data_source(data)
    if executor == "ray":
        require_portable(source, where, "--executor ray")
    ds = where.open()
    net = source.open(ds, device)
    check_model(net, ds.test.load([0, 1]), ds.num_classes)
    wanted = parse_classes(classes, ds)
    if shard is not None:
        wanted = shard_classes(wanted, shard)
    c, h, w = ds.image_shape
    if budget is None and pixels is None:
        pixels = preset_pixels(preset, h, w)
    k = pixels_for_budget(budget, pixels, h, w)
    search = {k_: v for k_, v in {"canvas": canvas, **overrides}.items() if v is not None}
    spec = RevealSpec(source, where, k, preset, search, seed, device, max_batch, curve)
    worker = RevealWorker(spec, net, ds, show_progress=show_progress and executor == "local")
    worker.check(wanted)
    plan = worker.plan
    settings = {"model": model_name or source.name, "data": ds.name, "preset": preset,
                "budget": k / (h * w), "budget_pixels": k, "seed": seed,
                "device": str(worker.device), "search": plan[0][1].to_dict(),
                **({"searches": [name for name, _ in plan]} if len(plan) > 1 else {}),
                **({"shard": shard} if shard else {})}
    per_task = rows_per_pass(plan[0][1], ds.image_shape, max_batch) // plan[0][1].finalists
    tasks = [wanted] if executor == "local" else list(chunks(wanted, max(1, per_task)))
    if checkpoint is not None:
        worker.checkpoint = Checkpoint(checkpoint, {
            **settings, "classes": wanted, "max_batch": max_batch, "executor": executor,
            "curve": curve, **fingerprint(net, ds)}, resume)
        worker.checkpoint.start()
    parts = _run(worker, spec, tasks, executor, ray_address)
    result = RevealResult(np.concatenate([p.classes for p in parts]),
                          np.concatenate([p.canvases for p in parts]),
                          np.concatenate([p.masks for p in parts]),
                          np.concatenate([p.patterns for p in parts]),
                          [r for p in parts for r in p.records],
                          {**settings, "versions": versions()}, list(ds.class_names),
                          {t: e for p in parts for t, e in p.examples.items()},
                          np.concatenate([p.ranks for p in parts]))
    result.settings["seconds"] = round(time.perf_counter() - started, 2)
    return result


def _run(worker: RevealWorker, spec: RevealSpec, tasks: list[list[int]], executor: str,
         address: str | None) -> list[RevealResult]:
    """Every task's part, in task order, each saved as it ends (parts an interrupted run
    saved are not done again; within a task run here, the worker saves as it goes)."""
    ckpt = worker.checkpoint
    keys = [f"part-{t[0]}-{t[-1]}-{len(t)}" for t in tasks]
    parts = {i: ckpt.finished(key) for i, key in enumerate(keys)} if ckpt else {}
    parts = {i: part for i, part in parts.items() if part is not None}
    todo = [i for i in range(len(tasks)) if i not in parts]

    def keep(j: int, part: RevealResult) -> None:
        parts[todo[j]] = part
        if ckpt is not None:
            ckpt.save_finished(keys[todo[j]], part)

    execute(RevealWorker, spec, [tasks[i] for i in todo], keep, executor, address, local=worker)
    return [parts[i] for i in range(len(tasks))]
