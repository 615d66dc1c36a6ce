"""The ``classwise`` scan: for every class, the fewest pattern pixels that fool most images.

The paper's finding drives it: a backdoor target owns a class-wise pattern that is
anomalously small *and* predictive. For every class ``t`` the scan finds
``pixels_to_reach``: the fewest pattern pixels whose pattern makes ``rate`` (0.8) of the
held-out search images of the other classes read as ``t``. It climbs a ladder of budgets
(4, 8, 16, ... pixels, up to 10% of the image), each budget's search starting from the mask
found at the budget before. A class leaves the ladder at the first budget that reaches the
rate; its figure is the fewest of that mask's top pixels that still reach it (found by
bisection), and its kept pattern is those pixels. A class that never reaches the rate is
extrapolated from its two largest budgets in (log pixels, rate), at most the whole image.
Canvases are solid white and an image of the class, since a trigger need not appear in any
clean image of its target (noise canvases, also offered, were never the best one in the
benchmark's zoo). Every decision uses training images only (search pool); test images are
touched only to report each kept pattern's predictive power. The verdict on the sizes is
:mod:`classwise.scan.verdict`'s.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import numpy as np
import torch
from torch import nn

from classwise.data.base import Dataset
from classwise.errors import UsageError
from classwise.evaluation.measure import Examples, TestSet, class_figures, make_examples
from classwise.progress import progress
from classwise.results import RevealResult
from classwise.reveal.canvas import CanvasBank, candidates_for
from classwise.reveal.pools import SplitBank, partition
from classwise.scan.dense import MIN_FACTOR as DENSE_MIN_FACTOR
from classwise.scan.dense import FamilyFigures, checkpointed_climb, dense_config
from classwise.scan.result import ScanResult
from classwise.scan.verdict import (
    MIN_FACTOR,
    reached_index,
    size_to_reach,
    smallest_outlier,
    strongest,
)
from classwise.search.checkpoint import Checkpoint, once
from classwise.search.config import SearchConfig
from classwise.search.families import make_family
from classwise.search.find import Engine
from classwise.search.ops import project_budget, ties_at_cut
from classwise.search.rows import Rows
from classwise.versions import versions

RATE = 0.8
TOP_SHARE = 0.1
TOP_MIN = 8
CANVAS = "solid:white+auto"
SEARCH = {"batch_size": 16, "max_steps": 20, "eval_every": 20, "patience": 1, "cap": 5.0,
          "canvas_candidates": 1, "finalists": 1, "halving": False, "val_images": 100,
          "refine_rounds": 0}
"""Overrides of the ``default`` preset per budget: 20 steps of 16 images, one check at the
end on 100 held-out images, no refinement of the cut (the ladder's bisection cuts each mask
anew). Each budget continues from the mask of the one before, so
short runs suffice: in ``bench/backdoor.py``, 60 steps of 32 images checked every 10 on
200 took about 11x the time, found the same targets and put 6 points more of the
pattern on the trigger. Every canvas source is searched rather than screened, since at a
few pixels all of them fool almost nothing and screening cannot tell them apart yet; ties
keep the spec's order."""
WEAK_FROM = 0.1
"""Once a class's best canvas fools this share, its canvases below half of it leave the
ladder."""


def budgets(ladder: list[int] | None, image_shape: tuple[int, int, int]) -> list[int]:
    """The budgets to try, ascending: 4, 8, 16, ... up to ``TOP_SHARE`` of the pixels (at
    least ``TOP_MIN``)."""
    total = image_shape[1] * image_shape[2]
    if ladder is None:
        top = min(max(TOP_MIN, int(TOP_SHARE * total)), total - 1)
        return [2 ** i for i in range(2, int(math.log2(top)) + 1)]
    steps = sorted({int(k) for k in ladder})
    if not steps or steps[0] < 1 or steps[-1] >= total:
        raise UsageError(f"ladder {ladder} needs pixel counts in 1..{total - 1}, e.g. 1,2,4,8")
    return steps


@dataclass
class _Rung:
    """One class's best canvas at budget ``k``: its mask and held-out ``rate``, and the
    ``pixels`` of the mask's ranking kept (the fewest that reach the scan's rate, else ``k``).
    """

    k: int
    rate: float
    mask: np.ndarray
    ranks: np.ndarray
    """Each pixel's place in the mask's ranking (ties at the cut settled, see
    :func:`~classwise.search.ops.pixel_ranks`)."""
    candidate: Any
    pixels: int
    kept_rate: float
    """The rate of those ``pixels`` (the kept pattern)."""


def climb(net: nn.Module, ds: Dataset, dev: torch.device, seed: int, rate: float,
          ladder: list[int], cfg: SearchConfig, show_progress: bool,
          ref: np.ndarray | None, settings: dict[str, Any],
          checkpoint: Checkpoint | None, families: tuple[str, ...] = ()) -> ScanResult:
    """Climb the budget ladder; each class stops at the first budget that reaches ``rate``.

    Every (class, canvas) row keeps its mask and its image stream from budget to budget:
    the search at ``k`` starts from the mask found at the budget before plus half the
    gradient saliency, so a trigger found with few pixels is kept and completed rather than
    searched anew. ``ref`` (per-class reference log sizes) is subtracted from the log sizes
    before the verdict (:mod:`classwise.scan.verdict`). Each dense family of ``families``
    then climbs its own budgets (:mod:`classwise.scan.dense`), and the verdict weighs every
    family (:func:`~classwise.scan.verdict.strongest`). With a ``checkpoint`` the ladder is
    saved after every budget and within one as the engine goes.
    """
    pools = partition(ds.train.labels)
    cands = [c for t in range(ds.num_classes) for c in
             candidates_for(t, cfg.canvas, cfg.canvas_candidates, pools, ds.train.labels)]
    engine = Engine(net, CanvasBank(cands, ds, seed, dev), torch.tensor([c.target for c in cands]),
                    SplitBank(ds.train, pools.search, dev), ds.train.labels[pools.search], seed,
                    dev, checkpoint=checkpoint)
    rows = engine.rows(list(range(len(cands))), cfg)
    shape = (len(cands), *ds.image_shape[1:])
    ladder_state = _Ladder(torch.zeros(shape, device=dev), torch.zeros(len(cands)),
                           torch.zeros(shape, dtype=torch.long, device=dev),
                           {t: [] for t in range(ds.num_classes)}, set())
    done = [k for k in ladder if checkpoint and checkpoint.finished(f"ladder-{k}") is not None]
    if done:
        ladder_state = checkpoint.finished(f"ladder-{done[-1]}")
        ladder_state.masks = ladder_state.masks.to(dev)
        ladder_state.ranks = ladder_state.ranks.to(dev)
        rows.load_state_dict(ladder_state.samplers)
    state = ladder_state
    bar = progress(total=len(ladder) * ds.num_classes, enabled=show_progress,
                   desc="budget ladder", unit="class-budget")
    for k in ladder[len(done):]:
        live = [i for i, c in enumerate(cands)
                if i not in state.dropped and _climbing(state.tried[c.target], rate)]
        if live:
            _climb(engine, rows, state, live, cfg, k)
        for t in sorted({cands[i].target for i in live}):
            own = [i for i in live if cands[i].target == t]
            best = max(own, key=lambda i: state.rates[i])
            best_rate = float(state.rates[best])
            if best_rate >= WEAK_FROM:
                state.dropped.update(i for i in own if state.rates[i] < best_rate / 2)
            reached = best_rate >= rate
            pixels, kept_rate = (_fewest(engine, state.ranks[best], rows.take([best]), rate, k,
                                         best_rate) if reached else (k, best_rate))
            state.tried[t].append(_Rung(k, best_rate, state.masks[best].cpu().numpy(),
                                        state.ranks[best].cpu().numpy(), cands[best], pixels,
                                        kept_rate))
            bar.update(1 if not reached else 1 + len(ladder) - len(state.tried[t]))
        if checkpoint:
            state.samplers = rows.state_dict()
            checkpoint.save_finished(f"ladder-{k}", state)
    bar.close()
    total = ds.image_shape[1] * ds.image_shape[2]
    tried = state.tried
    values = np.array([_pixels_to_reach(tried[t], rate, total) for t in tried])
    index_of = ("log(pixels_to_reach)" if ref is None else
                "log(pixels_to_reach) - median reference log(pixels_to_reach)")
    kept = [rungs[-1] for rungs in tried.values()]
    patterns = np.stack([r.ranks < r.pixels for r in kept])
    canvases = CanvasBank([r.candidate for r in kept], ds, seed, torch.device("cpu")).take(
        np.arange(len(kept))).numpy()
    test = TestSet(net, ds.test, ds.num_classes)
    measured = [once(checkpoint, f"measured-{t}", partial(_measure, test, ds, t, rungs[-1],
                                                            canvas, pattern, seed))
                for t, rungs, canvas, pattern in zip(tried, tried.values(), canvases, patterns,
                                                     strict=True)]
    records = [record for record, _ in measured]
    examples = {t: e for t, (_, e) in zip(tried, measured, strict=True)}
    extra = []
    for t, rungs in tried.items():
        extra.append({"reached": rungs[-1].rate >= rate, "search_rate": rungs[-1].kept_rate,
                      "search_rates": {str(r.k): round(r.rate, 4) for r in rungs}})
        if ref is not None:
            extra[-1]["reference_pixels_to_reach"] = float(np.exp(ref[t]))
    result = RevealResult(np.arange(ds.num_classes), canvases.astype(np.float32),
                          np.stack([r.mask for r in kept]).astype(np.float32), patterns,
                          records, {**settings, "index_of": index_of, "versions": versions()},
                          list(ds.class_names), examples, np.stack([r.ranks for r in kept]))
    reached = np.array([e["reached"] for e in extra])
    dense = dense_config()
    figures = [checkpointed_climb(engine, engine.rows([engine.groups[t][0] for t in tried], dense),
                                  make_family(name, ds.image_shape), dense, rate)
               for name in families]
    logs = {"pixels": np.log(values) - (0.0 if ref is None else ref),
            **{f.family: np.log(f.sizes) for f in figures}}
    reach = {"pixels": reached, **{f.family: f.reached for f in figures}}
    factor = {"pixels": MIN_FACTOR, **{f.family: DENSE_MIN_FACTOR for f in figures}}
    verdicts = {f: smallest_outlier(logs[f], reach[f], factor[f], len(logs)) for f in logs}
    indices = {f: reached_index(logs[f], reach[f], factor[f]) for f in logs}
    family, verdict = strongest(verdicts, indices)
    index = np.max(np.stack(list(indices.values())), axis=0)
    if figures:
        _add_families(extra, figures, indices)
        result.settings["family_units"] = {f.family: f.unit for f in figures}
    return ScanResult("classwise", "pixels_to_reach", values, index,
                      result, [int(result.classes[i]) for i in verdict.flagged],
                      verdict.rule, verdict.p_value, verdict.candidate, result.settings, extra,
                      family, {f.family: f.patterns for f in figures})


def _add_families(extra: list[dict[str, Any]], figures: list[FamilyFigures],
                  indices: dict[str, np.ndarray]) -> None:
    """Each class's dense-family figures in its ``extra``, and ``found_by``: the family in
    which it is most anomalous."""
    for i, row in enumerate(extra):
        row["families"] = {f.family: {"size": float(f.sizes[i]),
                                      "reached": bool(f.reached[i]),
                                      "search_rate": round(float(f.kept_rates[i]), 4),
                                      "search_rates": f.rates[i],
                                      "anomaly_index": float(indices[f.family][i])}
                           for f in figures}
        row["found_by"] = max(indices, key=lambda f: indices[f][i])


def _measure(test: TestSet, ds: Dataset, t: int, kept: _Rung, canvas: np.ndarray,
             pattern: np.ndarray, seed: int) -> tuple[dict[str, Any], Examples]:
    """Class ``t``'s record and example images for its kept pattern, on the test split."""
    record = {"class": t, "name": ds.class_names[t], **kept.candidate.record(),
              "pixels": int(pattern.sum()),
              "ties_at_cut": ties_at_cut(torch.from_numpy(kept.mask), kept.pixels),
              **class_figures(test, t, canvas, pattern, seed,
                              object_mask=kept.candidate.object_mask(ds)), "seconds": 0.0}
    return record, make_examples(test, ds.class_names, t, canvas, pattern, seed)


def _climb(engine: Engine, rows: Rows, state: _Ladder, live: list[int], cfg: SearchConfig,
           k: int) -> None:
    """Search budget ``k`` for rows ``live`` from the masks ``state`` holds; a retry after
    running out of memory starts the rows' streams where the first try did."""
    before = rows.state_dict()

    def attempt() -> None:
        rows.load_state_dict(before)
        sub = rows.take(live)
        start = project_budget(state.masks[live] + 0.5 * engine.start(sub, cfg, k), k)
        outcome = engine.optimise(sub, start, cfg, k, f"rung-{k}")
        state.masks[live], state.ranks[live] = outcome.masks, outcome.ranks
        state.rates[live] = (outcome.rates if outcome.rates is not None else
                             engine.rates(sub, outcome.ranks < k))

    engine.retrying(attempt)


@dataclass
class _Ladder:
    """Where the climb stands: every row's mask and rate, each class's rungs so far, the
    rows dropped as weak, and (when saved) every row's image stream."""

    masks: torch.Tensor
    rates: torch.Tensor
    ranks: torch.Tensor
    tried: dict[int, list[_Rung]]
    dropped: set[int]
    samplers: list[dict] = field(default_factory=list)


def _climbing(rungs: list[_Rung], rate: float) -> bool:
    return not rungs or rungs[-1].rate < rate


def _fewest(engine: Engine, ranks: torch.Tensor, row: Rows, rate: float, k: int,
            rate_at_k: float) -> tuple[int, float]:
    """The fewest of a mask's top pixels (``ranks``, H x W) reaching ``rate`` (its top ``k``
    do), and their rate.

    Bisection over the ranking's length, on the row's held-out search images.
    """
    lo, hi, hi_rate = 0, k, rate_at_k
    while hi - lo > 1:
        mid = (lo + hi) // 2
        r = float(engine.rates(row, ranks[None] < mid)[0])
        if r >= rate:
            hi, hi_rate = mid, r
        else:
            lo = mid
    return hi, hi_rate


def _pixels_to_reach(rungs: list[_Rung], rate: float, total: int) -> float:
    """The fewest pixels found to reach the rate, or an extrapolation when none reached it
    (:func:`~classwise.scan.verdict.size_to_reach`, at most ``total`` pixels)."""
    last = rungs[-1]
    if last.rate >= rate:
        return float(last.pixels)
    return size_to_reach([r.k for r in rungs], [r.rate for r in rungs], rate, total)
