"""``scan``: decide whether a model is backdoored and which class is the target.

The paper's finding drives the ``classwise`` method: a backdoor target owns a class-wise
pattern that is anomalously small *and* predictive. For every class ``t`` the scan finds
``pixels_to_reach``: the fewest pattern pixels whose pattern makes ``rate`` (0.8) of the
held-out search images of the other classes read as ``t``. It climbs a ladder of budgets
(4, 8, 16, ... pixels, up to 10% of the image), each budget's search starting from the mask
found at the budget before. A class leaves the ladder at the first budget that reaches the
rate; its figure is the fewest of that mask's top pixels that still reach it (found by
bisection), and its kept pattern is those pixels. A class that never reaches the rate is
extrapolated from its two largest budgets in (log pixels, rate), at most the whole image.
Canvases are solid white and an image of the class, since a trigger need not appear in any
clean image of its target (noise canvases, also offered, were never the best one in the
benchmark's zoo). Every decision uses training images only (search pool);
test images are touched only to report each kept pattern's predictive power.

The outlier rule is Neural Cleanse's (:mod:`classwise.scan.mad`) applied to
``log(pixels_to_reach)``: anomaly index ``(median - v) / (1.4826 * MAD)``, numpy's median
(the mean of the two middle values for an even count), a class flagged above 2 (small
side only). The scale ``1.4826 * MAD`` is at least ``log(2) / 2`` (:data:`MIN_FACTOR`),
so a flagged class's pattern is at most half the median class's size. A class whose size
was extrapolated gets an index of at most 0 (:func:`reached_index`): only a pattern seen
to reach the rate can be flagged.
``neural-cleanse`` runs :func:`~classwise.scan.neural_cleanse.neural_cleanse` on
search-pool images and applies the same rule to its mask L1 norms, as in its paper.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from classwise.data.base import Dataset
from classwise.errors import UsageError
from classwise.evaluation.measure import (
    Examples,
    TestSet,
    class_figures,
    make_examples,
    pattern_figures,
)
from classwise.fileio import write_json
from classwise.models import check_model, parameter_count, resolve_device
from classwise.progress import progress
from classwise.results import RevealResult
from classwise.reveal.canvas import CanvasBank, candidates_for, parse_canvas
from classwise.reveal.pools import SplitBank, partition
from classwise.scan.mad import CONSISTENCY, THRESHOLD, anomaly_index
from classwise.scan.neural_cleanse import neural_cleanse
from classwise.scan.reference import reference_log_sizes
from classwise.search.checkpoint import Checkpoint, once
from classwise.search.config import SearchConfig, make_config
from classwise.search.find import Engine
from classwise.search.ops import project_budget, tie_order, ties_at_cut, topk_mask
from classwise.search.rows import Rows
from classwise.seeding import rng
from classwise.sources import DataSource, ModelSource, data_source, fingerprint, model_source
from classwise.versions import versions

METHODS = ("classwise", "neural-cleanse")
RATE = 0.8
TOP_SHARE = 0.1
TOP_MIN = 8
CANVAS = "solid:white+auto"
SEARCH = {"batch_size": 16, "max_steps": 20, "eval_every": 20, "patience": 1, "cap": 5.0,
          "canvas_candidates": 1, "finalists": 1, "val_images": 100}
"""Overrides of the ``default`` preset per budget: 20 steps of 16 images, one check at the
end on 100 held-out images. Each budget continues from the mask of the one before, so
short runs suffice: in ``bench/backdoor.py``, 60 steps of 32 images checked every 10 on
200 took about 11x the time, found the same targets and put 6 points more of the
pattern on the trigger. Every canvas source is searched rather than screened, since at a
few pixels all of them fool almost nothing and screening cannot tell them apart yet; ties
keep the spec's order."""
WEAK_FROM = 0.1
"""Once a class's best canvas fools this share, its canvases below half of it leave the
ladder."""
MIN_FACTOR = 2.0
"""A flagged class's pattern is at least this many times smaller than the median class's:
the MAD scale of ``log(pixels_to_reach)`` is at least ``log(MIN_FACTOR) / THRESHOLD``.
A class's size differs between clean models of the same data by a factor of up to 1.4 on
mnist5k (the three reference models of ``bench/backdoor.py``, each against the other two,
over the classes all three reach), while a patch or blend target's shrinks two- to
fifty-fold. Against a reference the classes can lie closer together than that model-to-
model noise, and the MAD alone would then flag a class only a quarter smaller."""
NC_IMAGES = 1000
MEDIAN = "numpy median: the mean of the two middle values for an even number of classes"


@dataclass
class ScanResult:
    """Per class the scan statistic, its anomaly index, and the pattern kept (in ``reveal``)."""

    method: str
    statistic: str
    values: np.ndarray
    anomaly_index: np.ndarray
    reveal: RevealResult
    settings: dict[str, Any] = field(default_factory=dict)
    extra: list[dict[str, Any]] = field(default_factory=list)
    """Per-class figures beside the statistic (e.g. the search rate reached)."""

    @property
    def classes(self) -> np.ndarray:
        return self.reveal.classes

    @property
    def patterns(self) -> np.ndarray:
        return self.reveal.patterns

    @property
    def flagged(self) -> list[int]:
        """Classes whose anomaly index exceeds the threshold, most anomalous first."""
        order = np.argsort(-self.anomaly_index, kind="stable")
        return [int(self.classes[i]) for i in order if self.anomaly_index[i] > THRESHOLD]

    @property
    def verdict(self) -> str:
        return "backdoored" if self.flagged else "clean"

    def verdict_line(self, out: str | Path | None = None) -> str:
        """One line a person can act on."""
        names = self.reveal.class_names
        if not self.flagged:
            i = int(np.argmax(self.anomaly_index))
            return (f"clean: no class is anomalous (largest anomaly index "
                    f"{self.anomaly_index[i]:.2f} <= {THRESHOLD:g}, class {self.classes[i]} "
                    f"'{names[self.classes[i]]}'); no backdoor found by {self.method}")
        i = list(self.classes).index(self.flagged[0])
        t = self.flagged[0]
        also = (f" (also flagged: {', '.join(map(str, self.flagged[1:]))})"
                if len(self.flagged) > 1 else "")
        where = f"; see {Path(out) / 'report.html'}" if out is not None else ""
        ref = self.extra[i].get("reference_pixels_to_reach") if self.extra else None
        against = (f"{ref:.3g} in the clean reference" if ref is not None else
                   f"a median of {np.median(self.values):.3g}")
        return (f"BACKDOORED: class {t} '{names[t]}' is the likely target{also}: anomaly index "
                f"{self.anomaly_index[i]:.1f} > {THRESHOLD:g}; its pattern is "
                f"{int(self.patterns[i].sum())} pixels ({self.statistic} {self.values[i]:.3g} "
                f"against {against}). Do not deploy this model{where}")

    def to_json(self) -> dict[str, Any]:
        rows = []
        for i, rec in enumerate(self.reveal.records):
            rows.append({"class": rec["class"], "name": rec["name"],
                         "anomaly_index": float(self.anomaly_index[i]),
                         self.statistic: float(self.values[i]), "pixels": rec["pixels"],
                         "predictive_power": rec["predictive_power"],
                         **(self.extra[i] if self.extra else {})})
        return {"verdict": self.verdict, "flagged": self.flagged, "method": self.method,
                "statistic": self.statistic, "threshold": THRESHOLD,
                "consistency_constant": CONSISTENCY, "median": MEDIAN,
                "index_of": self.settings.get("index_of"), "verdict_line": self.verdict_line(),
                "classes": rows, "settings": self.settings}

    def save(self, out: str | Path, pictures: bool = True) -> Path:
        """Write ``scan.json``, then ``patterns.npz``, ``results.json`` and the pictures."""
        out = Path(out)
        write_json(out / "scan.json", self.to_json())
        return self.reveal.save(out, pictures=pictures)


def scan(model: str | Path | nn.Module | ModelSource, data: str | Path | Dataset | DataSource,
         method: str = "classwise", seed: int = 0, device: str | None = None,
         show_progress: bool = True, rate: float = RATE, ladder: list[int] | None = None,
         canvas: str = CANVAS, nc_images: int = NC_IMAGES, model_name: str | None = None,
         reference: Sequence[str | Path] | None = None, checkpoint: str | Path | None = None,
         resume: bool = False, **overrides: Any) -> ScanResult:
    """Scan every class of ``model`` on ``data`` for a backdoor with ``method``.

    ``classwise``: the fewest pixels reaching ``rate`` on held-out search images, per
    class, over budgets ``ladder`` (default 4, 8, 16, ... up to 10% of the pixels) with
    ``canvas`` sources; ``overrides`` change single search settings (see
    :class:`~classwise.search.config.SearchConfig`). ``neural-cleanse``: Neural Cleanse on
    ``nc_images`` search-pool images. Both flag classes by the MAD rule. ``reference``:
    ``classwise`` scan folders of clean models of the same data; each class's
    ``log(pixels_to_reach)`` is then taken relative to the references' median for that
    class before the rule (:mod:`classwise.scan.reference`). With ``checkpoint`` (a
    folder) a ``classwise`` scan saves its ladder as it climbs; ``resume=True`` continues
    it to the result an uninterrupted scan gives.
    """
    if method not in METHODS:
        raise UsageError(f"unknown scan method {method!r}; choose {' or '.join(METHODS)}")
    if not 0 < rate <= 1:
        raise UsageError(f"rate {rate} is outside (0, 1]; use a share such as 0.8")
    source = model_source(model)
    ds = data_source(data).open()
    net = source.open(ds, device)
    dev = resolve_device(net, device)
    check_model(net, ds.test.load([0, 1]), ds.num_classes)
    parameters = parameter_count(net)
    ref = checked_reference(reference, method, ds, rate, ladder, parameters)
    settings = {"model": model_name or source.name, "parameters": parameters, "data": ds.name,
                "method": method, "seed": seed, "device": str(dev)}
    if method == "neural-cleanse":
        return _neural_cleanse(net, ds, dev, seed, nc_images, show_progress, settings)
    cfg = make_config("default", canvas=canvas, **{**SEARCH, **overrides})
    parse_canvas(cfg.canvas)
    steps = _ladder(ladder, ds.image_shape)
    settings = {**settings, "rate": rate, "ladder": steps, "min_factor": MIN_FACTOR,
                "search": cfg.to_dict(), "reference": [str(p) for p in reference or []]}
    ckpt = None
    if checkpoint is not None:
        ckpt = Checkpoint(checkpoint, {**settings, **fingerprint(net, ds)}, resume)
        ckpt.start()
    return _classwise(net, ds, dev, seed, rate, steps, cfg, show_progress, ref, settings, ckpt)


def checked_reference(reference: Sequence[str | Path] | None, method: str, ds: Dataset,
                      rate: float = RATE, ladder: list[int] | None = None,
                      parameters: int | None = None) -> np.ndarray | None:
    """The per-class reference log sizes of ``reference`` (None without one), checked to
    fit a ``method`` scan of ``ds`` at ``rate`` over ``ladder`` of a model with
    ``parameters`` parameters (unchecked when None)."""
    if not reference:
        return None
    if method != "classwise":
        raise UsageError(f"--reference works with --method classwise only; drop it for {method}")
    return reference_log_sizes(reference, ds.name, ds.num_classes, rate,
                               _ladder(ladder, ds.image_shape), parameters)


def _ladder(ladder: list[int] | None, image_shape: tuple[int, int, int]) -> list[int]:
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


def _classwise(net: nn.Module, ds: Dataset, dev: torch.device, seed: int, rate: float,
               ladder: list[int], cfg: SearchConfig, show_progress: bool,
               ref: np.ndarray | None, settings: dict[str, Any],
               checkpoint: Checkpoint | None) -> ScanResult:
    """Climb the budget ladder; each class stops at the first budget that reaches ``rate``.

    Every (class, canvas) row keeps its mask and its image stream from budget to budget:
    the search at ``k`` starts from the mask found at the budget before plus half the
    gradient saliency, so a trigger found with few pixels is kept and completed rather than
    searched anew. ``ref`` (per-class reference log sizes) is subtracted from the log sizes
    before the MAD rule. With a ``checkpoint`` the ladder is saved after every budget and
    within one as the engine goes.
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
    logs = np.log(values) - (0.0 if ref is None else ref)
    return ScanResult("classwise", "pixels_to_reach", values, reached_index(logs, reached),
                      result.finish(), result.settings, extra)


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


def reached_index(log_sizes: np.ndarray, reached: np.ndarray) -> np.ndarray:
    """The MAD anomaly index of ``log_sizes`` (scale at least ``log(MIN_FACTOR) /
    THRESHOLD``), capped at 0 for classes not ``reached``.

    A class that never reached the rate within the ladder has an extrapolated size, not a
    pattern that was seen to work; the backdoor sign is a pattern both small and
    predictive, so only a class that reached the rate can be flagged. Its size still counts
    in the median and the MAD.
    """
    index = anomaly_index(log_sizes, min_scale=math.log(MIN_FACTOR) / THRESHOLD)
    return np.where(reached, index, np.minimum(index, 0.0))


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
    """The fewest pixels found to reach the rate, or an extrapolation when none reached it.

    The extrapolation follows the line through the last two budgets in (log pixels, rate),
    capped at ``total`` pixels.
    """
    last = rungs[-1]
    if last.rate >= rate:
        return float(last.pixels)
    if len(rungs) == 1:
        return float(total)
    prev = rungs[-2]
    slope = (last.rate - prev.rate) / (math.log(last.k) - math.log(prev.k))
    if slope <= 0:
        return float(total)
    return float(np.clip(math.exp(math.log(last.k) + (rate - last.rate) / slope), 1, total))


def _neural_cleanse(net: nn.Module, ds: Dataset, dev: torch.device, seed: int, images: int,
                    show_progress: bool, settings: dict[str, Any]) -> ScanResult:
    """Neural Cleanse on search-pool images; patterns are each mask's top ``round(L1)`` pixels."""
    pool = partition(ds.train.labels).search
    indices = np.sort(rng(seed, 0x5C).choice(pool, min(images, len(pool)), replace=False))
    nc = neural_cleanse(net, ds.train, indices, range(ds.num_classes), seed=seed, device=dev,
                        show_progress=show_progress)
    result = RevealResult.empty(ds, {**settings, "index_of": "mask_l1",
                                     "neural_cleanse": nc.settings})
    h, w = ds.image_shape[1:]
    test = TestSet(net, ds.test, ds.num_classes)
    records, patterns = [], []
    for t, mask, canvas, l1 in zip(nc.classes, nc.masks, nc.patterns, nc.l1, strict=True):
        k = min(max(1, round(float(l1))), h * w - 1)
        pattern = topk_mask(torch.from_numpy(mask)[None], k,
                            tie_order(seed, torch.tensor([t]), (h, w)))[0].numpy()
        records.append({"class": t, "name": ds.class_names[t], "canvas_split": "neural-cleanse",
                        "pixels": k, **pattern_figures(test, t, canvas, pattern, seed)})
        result.examples[t] = make_examples(test, ds.class_names, t, canvas, pattern, seed)
        patterns.append(pattern)
    result.classes = np.asarray(nc.classes, np.int64)
    result.canvases, result.masks = nc.patterns, nc.masks
    result.patterns, result.records = np.stack(patterns), records
    extra = [{"search_rate": float(s)} for s in nc.success]
    return ScanResult("neural-cleanse", "mask_l1", nc.l1, nc.anomaly_index, result.finish(),
                      result.settings, extra)
