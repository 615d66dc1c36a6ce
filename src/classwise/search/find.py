"""``find_patterns``: the one search verb. Tensors in, tensors out.

Every caller (``reveal`` and its executors, the scan's budget ladder, the benchmarks) runs
its searches through :class:`Engine`, which owns what they share: building rows with their
seeded streams, chunking rows into forward passes that fit, halving the chunk when the
device runs out of memory, progress bars, and checkpoints that let a cut run continue to
exactly the results of an uninterrupted one.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, fields
from functools import partial
from typing import Any

import numpy as np
import torch
from torch import nn

from classwise.errors import UsageError
from classwise.progress import progress
from classwise.search.checkpoint import Checkpoint, once
from classwise.search.config import Plan, SearchConfig, make_plan
from classwise.search.dense import DenseOutcome, optimise_dense
from classwise.search.engine import MaskSearch, Outcome, fooling_rate, initial_masks, refine
from classwise.search.families import Family
from classwise.search.ops import pixel_ranks, tie_order, ties_at_cut
from classwise.search.rows import Bank, Rows, RowSampler, as_bank

PIXELS_PER_PASS = 1 << 19
"""Default memory budget: search images per forward pass times pixels per image."""
UNRANKED = 1 << 30


@dataclass
class FoundPatterns:
    """Per row (R rows): the mask found, its top-k pattern and how it was judged.

    ``rates`` is each pattern's share of its held-out search images classified as the
    row's target (NaN without held-out checks). ``searched`` is False for a row screened
    out before the optimisation (its mask is the starting one). ``search`` names the
    search whose mask a row holds (with several searches, the better one per row).
    :meth:`best` picks each target's row.
    """

    targets: torch.Tensor
    masks: torch.Tensor
    patterns: torch.Tensor
    rates: torch.Tensor
    searched: torch.Tensor
    search: list[str]
    standing: torch.Tensor
    """The row's standing among its target's rows: the search that found it, then its
    screening rank; ties of ``rates`` go to the lower."""
    seconds: torch.Tensor
    """Search seconds spent on each row's target."""
    ranks: torch.Tensor
    """Each pixel's place in its row's ranking (R, H, W; 0 first): by mask value, then by
    the last step's value before the constraint, then by a seeded random order; the
    pattern is the first ``pixels`` of it, and any other cut of the mask is a prefix."""
    ties: torch.Tensor
    """How many pixels share the mask value of the last one kept (R,)."""

    def best(self) -> torch.Tensor:
        """Per target, in order of first appearance, the searched row whose pattern fools
        most held-out images (ties: the earlier search, then the better screened)."""
        rate = torch.nan_to_num(self.rates, nan=-1.0).numpy()
        rows = np.flatnonzero(self.searched.numpy())
        ranked = rows[np.lexsort((rows, self.standing.numpy()[rows], -rate[rows]))]
        targets = self.targets.numpy()
        first = {}
        for i in ranked:
            first.setdefault(int(targets[i]), int(i))
        return torch.tensor([first[t] for t in dict.fromkeys(targets.tolist())])

    def put(self, positions: list[int], part: FoundPatterns) -> None:
        """Write ``part``'s rows into rows ``positions`` of this result."""
        for f in fields(self):
            mine, theirs = getattr(self, f.name), getattr(part, f.name)
            if isinstance(mine, list):
                for p, v in zip(positions, theirs, strict=True):
                    mine[p] = v
            else:
                mine[positions] = theirs.to(mine.dtype)

    def merged(self, later: FoundPatterns) -> FoundPatterns:
        """Per row, this result or ``later``'s (a later search's), whichever fools more
        held-out images; ties and rows ``later`` did not search keep this one."""
        def rate(x: FoundPatterns) -> torch.Tensor:
            return torch.nan_to_num(x.rates, nan=-1.0)

        take = later.searched & (~self.searched | (rate(later) > rate(self)))
        out = FoundPatterns(**{f.name: getattr(self, f.name) for f in fields(self)})
        for f in fields(self):
            mine, theirs = getattr(self, f.name), getattr(later, f.name)
            if f.name == "seconds":
                value = mine + theirs
            elif isinstance(mine, list):
                value = [b if t else a for a, b, t in zip(mine, theirs, take.tolist(),
                                                          strict=True)]
            else:
                value = torch.where(take.view(-1, *[1] * (mine.ndim - 1)), theirs, mine)
            setattr(out, f.name, value)
        return out


def find_patterns(model: nn.Module, canvases: torch.Tensor | Bank, targets: torch.Tensor,
                  images: torch.Tensor | Bank, labels: torch.Tensor | np.ndarray,
                  pixels: int, preset: str = "default", seed: int = 0,
                  device: str | torch.device | None = None, max_batch: int | None = None,
                  checkpoint: Checkpoint | None = None, show_progress: bool = False,
                  **overrides: Any) -> FoundPatterns:
    """Search one pattern of ``pixels`` pixels per row (canvas, target).

    ``canvases`` (R, C, H, W) and ``images`` (N, C, H, W) are float tensors in [0, 1];
    ``targets`` (R,) and ``labels`` (N,) integers. Each row is searched on the images whose
    label is not its target; a seeded share of them is held out to judge patterns. Rows of
    the same target are that target's canvas candidates: the preset screens them, optimises
    the best and :meth:`FoundPatterns.best` names the winner. ``overrides`` change single
    settings (:class:`~classwise.search.config.SearchConfig`). Same seed, same result,
    however the rows are chunked.

    >>> from classwise.models import create_model
    >>> net = create_model("small-cnn", (1, 8, 8), 10).eval()
    >>> found = find_patterns(net, torch.rand(2, 1, 8, 8), torch.tensor([0, 1]),
    ...                       torch.rand(40, 1, 8, 8), torch.arange(40) % 10, pixels=3,
    ...                       max_steps=2, val_images=4)
    >>> found.patterns.shape, found.patterns.flatten(1).sum(1).tolist()
    (torch.Size([2, 8, 8]), [3, 3])
    """
    from classwise.models import resolve_device

    dev = resolve_device(model, device)
    targets = torch.as_tensor(targets).cpu()
    labels = np.asarray(torch.as_tensor(labels).cpu())
    _check(canvases, targets, images, labels, pixels)
    engine = Engine(model, as_bank(canvases, dev), targets, as_bank(images, dev), labels, seed,
                    dev, max_batch, checkpoint, show_progress)
    return engine.find(make_plan(preset, **overrides), pixels)


def _check(canvases: torch.Tensor | Bank, targets: torch.Tensor, images: torch.Tensor | Bank,
           labels: np.ndarray, pixels: int) -> None:
    """One-line errors for inputs of the wrong shape or kind."""
    if targets.ndim != 1 or targets.is_floating_point() or len(targets) == 0:
        raise UsageError(f"targets must be a non-empty 1-D integer tensor, got "
                         f"{targets.dtype} {tuple(targets.shape)}")
    if labels.ndim != 1 or not np.issubdtype(labels.dtype, np.integer) or \
            len(labels) != len(images):
        raise UsageError(f"labels must be 1-D integers, one per image; got {labels.dtype} "
                         f"{labels.shape} for {len(images)} images")
    for name, x, n in (("canvases", canvases, len(targets)), ("images", images, None)):
        if isinstance(x, torch.Tensor) and (x.ndim != 4 or (n is not None and len(x) != n)):
            want = f"({n}, C, H, W)" if n is not None else "(N, C, H, W)"
            raise UsageError(f"{name} must be a float tensor {want}, got {tuple(x.shape)}")
    if isinstance(canvases, torch.Tensor) and isinstance(images, torch.Tensor):
        if canvases.shape[1:] != images.shape[1:]:
            raise UsageError(f"canvases are {tuple(canvases.shape[1:])} but images are "
                             f"{tuple(images.shape[1:])}; give both the model's image size")
        total = canvases.shape[2] * canvases.shape[3]
        if not 1 <= int(pixels) < total:
            raise UsageError(f"pixels {pixels} is out of range; use 1..{total - 1} for "
                             f"{canvases.shape[2]}x{canvases.shape[3]} images")


def rows_per_pass(cfg: SearchConfig, image_shape: tuple[int, ...],
                  max_batch: int | None) -> int:
    """Rows per forward pass: ``cfg.classes_per_pass``, else from the image budget."""
    if cfg.classes_per_pass:
        return cfg.classes_per_pass
    if max_batch is None:
        max_batch = max(cfg.batch_size, PIXELS_PER_PASS // (image_shape[-2] * image_shape[-1]))
    if max_batch < 1:
        raise UsageError(f"max batch {max_batch} must be at least 1")
    return max(1, max_batch // cfg.batch_size)


def chunks(items: list, size: int) -> Iterator[list]:
    """Consecutive pieces of ``items`` of at most ``size``."""
    for i in range(0, len(items), size):
        yield items[i:i + size]


class Engine:
    """Searches of one model over a bank of canvases (one per row) and a bank of images.

    The rows' targets are ``targets`` (R,); the images' labels ``labels`` (N,). A row's
    slot (0, 1, ... among its target's rows) seeds its stream. One engine serves every
    search of a run, so the pass size it learns on running out of memory holds for the
    rest of the run.
    """

    def __init__(self, model: nn.Module, canvases: Bank, targets: torch.Tensor, images: Bank,
                 labels: np.ndarray, seed: int, device: torch.device,
                 max_batch: int | None = None, checkpoint: Checkpoint | None = None,
                 show_progress: bool = False) -> None:
        self.model, self.canvases, self.targets = model, canvases, targets.cpu()
        self.images, self.labels, self.seed, self.device = images, labels, seed, device
        self.max_batch, self.checkpoint, self.show_progress = max_batch, checkpoint, show_progress
        self.per_pass: int | None = None
        self.groups: dict[int, list[int]] = {}
        for p, t in enumerate(self.targets.tolist()):
            self.groups.setdefault(t, []).append(p)
        self.slots = [0] * len(self.targets)
        for group in self.groups.values():
            for slot, p in enumerate(group):
                self.slots[p] = slot
        self._search_positions: dict[int, np.ndarray] = {}

    # -- the pieces every search is made of ------------------------------------------------
    def rows(self, positions: list[int], cfg: SearchConfig) -> Rows:
        """The rows at ``positions`` of the canvas bank, each with a fresh seeded stream."""
        samplers = [RowSampler(self._search_for(int(self.targets[p])), self.seed,
                               int(self.targets[p]), self.slots[p], cfg.val_images,
                               cfg.search_images) for p in positions]
        return Rows(self.targets[positions].to(self.device),
                    self.canvases.take(np.asarray(positions)), samplers, list(positions))

    def _search_for(self, target: int) -> np.ndarray:
        if target not in self._search_positions:
            self._search_positions[target] = np.flatnonzero(self.labels != target)
        return self._search_positions[target]

    def pass_size(self, cfg: SearchConfig) -> int:
        """Rows per forward pass (learned once, halved on running out of memory)."""
        if self.per_pass is None:
            shape = tuple(self.canvases.take(np.zeros(1, dtype=np.int64)).shape)
            self.per_pass = rows_per_pass(cfg, shape, self.max_batch)
        return self.per_pass

    def start(self, rows: Rows, cfg: SearchConfig, k: int) -> torch.Tensor:
        """Starting masks (R, H, W) of ``rows``, a pass at a time."""
        return torch.cat([initial_masks(self.model, rows.take(part), self.images, cfg, k)
                          for part in chunks(list(range(len(rows))), self.pass_size(cfg))])

    def rates(self, rows: Rows, patterns: torch.Tensor) -> torch.Tensor:
        """Each row's held-out rate for ``patterns`` (R, H, W)."""
        return fooling_rate(self.model, patterns, rows, self.images)

    def order(self, rows: Rows) -> torch.Tensor:
        """The seeded random order that settles ties at the cut, for each of ``rows``."""
        return tie_order(self.seed, rows.targets.cpu(), tuple(rows.canvases.shape[2:]))

    def optimise(self, rows: Rows, masks: torch.Tensor, cfg: SearchConfig, k: int,
                 key: str) -> Outcome:
        """Optimise ``masks`` of ``rows`` from the given start, a pass at a time.

        With a checkpoint, each pass's result is kept once it ends and the pass in progress
        is saved every 30 s and on Ctrl-C, under ``key``: called again with the same rows
        and start, it skips the ended passes and continues the one in progress. Returns the
        masks kept, with held-out checks their rates, and each pixel's rank.
        """
        parts = [self._optimise_pass(rows.take(part), masks[part], cfg, k,
                                     f"{key}-{self.pass_size(cfg)}-{i}")
                 for i, part in enumerate(chunks(list(range(len(rows))),
                                                 self.pass_size(cfg)))]
        rates = [o.rates for o in parts]
        return Outcome(torch.cat([o.masks.to(masks.device) for o in parts]),
                       torch.cat(rates) if cfg.eval_every else None,
                       torch.cat([o.ranks.to(masks.device) for o in parts]))

    def _optimise_pass(self, rows: Rows, masks: torch.Tensor, cfg: SearchConfig, k: int,
                       key: str) -> Outcome:
        ckpt = self.checkpoint
        done = ckpt.finished(key) if ckpt else None
        if done is not None:
            rows.load_state_dict(done["samplers"])
            return done["outcome"]
        search = MaskSearch(self.model, rows, masks.to(self.device), self.images, cfg, k,
                            self.order(rows))
        saved = ckpt.partial(key) if ckpt else None
        if saved is not None:
            search.load_state_dict(saved)
        bar = progress(total=search.total * len(rows), enabled=self.show_progress,
                       desc=f"classes {int(rows.targets[0])}..{int(rows.targets[-1])}",
                       unit="row-step", initial=search.step * len(rows))
        outcome = search.run(tick=bar.update, checkpoint=(lambda s: ckpt.save_partial(
            key, s.state_dict())) if ckpt else None, every=ckpt.every if ckpt else 0.0)
        bar.close()
        if cfg.refine_rounds:
            outcome = refine(self.model, rows, outcome, self.images, cfg, k, search.order)
        if ckpt:
            ckpt.save_finished(key, {"outcome": Outcome(*(None if t is None else t.cpu()
                                                          for t in outcome)),
                                     "samplers": rows.state_dict()})
        return outcome

    def dense(self, rows: Rows, family: Family, start: torch.Tensor, size: float,
              cfg: SearchConfig, key: str, stop_at: float = 1.0,
              start_rate: torch.Tensor | None = None, floor: float = 0.0) -> DenseOutcome:
        """Optimise ``family`` parameters of ``rows`` from ``start`` within ``size``, a pass
        at a time (:func:`~classwise.search.dense.optimise_dense`, whose ``stop_at``,
        ``start_rate`` and ``floor`` these are). With a checkpoint each
        pass's result and its rows' streams are kept under ``key`` once it ends, so a
        resumed run skips the ended passes and repeats only the one it was cut in."""
        parts = [self._dense_pass(rows.take(part), family, start[part], size, cfg,
                                  f"{key}-{self.pass_size(cfg)}-{i}", stop_at,
                                  None if start_rate is None else start_rate[part], floor)
                 for i, part in enumerate(chunks(list(range(len(rows))), self.pass_size(cfg)))]
        return DenseOutcome(torch.cat([o.params.to(start.device) for o in parts]),
                            torch.cat([o.rates for o in parts]))

    def _dense_pass(self, rows: Rows, family: Family, start: torch.Tensor, size: float,
                    cfg: SearchConfig, key: str, stop_at: float,
                    start_rate: torch.Tensor | None, floor: float) -> DenseOutcome:
        ckpt = self.checkpoint
        done = ckpt.finished(key) if ckpt else None
        if done is not None:
            rows.load_state_dict(done["samplers"])
            return done["outcome"]
        outcome = optimise_dense(self.model, family, rows, self.images, start.to(self.device),
                                 size, cfg, stop_at, start_rate, floor)
        if ckpt:
            ckpt.save_finished(key, {"outcome": DenseOutcome(outcome.params.cpu(),
                                                             outcome.rates),
                                     "samplers": rows.state_dict()})
        return outcome

    def retrying(self, work: Callable[[], Any]) -> Any:
        """``work()``, again with half the rows per pass each time the device runs out of
        memory (down to one row per pass)."""
        while True:
            try:
                return work()
            except (RuntimeError, MemoryError) as e:
                if not _out_of_memory(e) or (self.per_pass or 1) == 1:
                    raise
                self.per_pass //= 2
                if self.device.type == "cuda":
                    torch.cuda.empty_cache()

    # -- find: the plan's searches over every row ------------------------------------------
    def find(self, plan: Plan, k: int) -> FoundPatterns:
        """Run the searches of ``plan`` over every row; per row the better result."""
        found = self.search(*plan[0], k, order=0)
        for order, (name, cfg) in enumerate(plan[1:], start=1):
            found = found.merged(self.search(name, cfg, k, order))
        return found

    def search(self, name: str, cfg: SearchConfig, k: int, order: int = 0) -> FoundPatterns:
        """One search over every row, a chunk of targets at a time: each target's first
        ``cfg.canvas_candidates`` rows are screened and its ``cfg.finalists`` optimised."""
        groups = {t: g[:cfg.canvas_candidates] for t, g in self.groups.items()}
        n = len(self.targets)
        h, w = self.canvases.take(np.zeros(1, dtype=np.int64)).shape[2:]
        found = FoundPatterns(self.targets, torch.zeros(n, h, w),
                              torch.zeros(n, h, w, dtype=torch.bool),
                              torch.full((n,), float("nan")), torch.zeros(n, dtype=torch.bool),
                              [name] * n, torch.full((n,), UNRANKED, dtype=torch.long),
                              torch.zeros(n, dtype=torch.float64),
                              torch.zeros(n, h, w, dtype=torch.long),
                              torch.zeros(n, dtype=torch.long))
        pending = list(groups)
        while pending:
            part = pending[:max(1, self.pass_size(cfg) // cfg.finalists)]
            positions, chunk = self.retrying(
                lambda part=part: self._search_targets(name, cfg, k, part, groups))
            found.put(positions, chunk)
            pending = pending[len(part):]
        found.standing = torch.where(found.searched, found.standing + order * UNRANKED,
                                     found.standing)
        return found

    def _search_targets(self, name: str, cfg: SearchConfig, k: int, part: list[int],
                        groups: dict[int, list[int]]) -> tuple[list[int], FoundPatterns]:
        """Screen the canvas candidates of targets ``part`` and optimise their finalists.

        The screening is not saved: it is quick and gives the same result when repeated,
        so a resumed chunk screens again and then continues its optimisation.
        """
        key = f"{name}-{part[0]}-{part[-1]}-{len(part)}"
        return once(self.checkpoint, key, partial(self._screen_and_optimise, key, cfg, k, part,
                                                  groups, name))

    def _screen_and_optimise(self, key: str, cfg: SearchConfig, k: int, part: list[int],
                             groups: dict[int, list[int]], name: str
                             ) -> tuple[list[int], FoundPatterns]:
        began = time.perf_counter()
        positions = [p for t in part for p in groups[t]]
        rows = self.rows(positions, cfg)
        start = self.start(rows, cfg, k)
        ranks = pixel_ranks(start, self.order(rows))
        screened = len(positions) > len(part)
        rates = (self.rates(rows, ranks < k) if screened
                 else torch.full((len(rows),), float("nan")))
        keep, standing, begin = [], torch.full((len(rows),), UNRANKED, dtype=torch.long), 0
        for t in part:
            size = len(groups[t])
            order = torch.argsort(-torch.nan_to_num(rates[begin:begin + size], nan=0.0),
                                  stable=True)
            standing[begin + order] = torch.arange(size)
            keep += (begin + order[:cfg.finalists]).tolist()
            begin += size
        outcome = self.optimise(rows.take(keep), start[keep], cfg, k, key)
        kept = torch.tensor(keep)
        masks = start.cpu().index_copy(0, kept, outcome.masks.cpu())
        ranks = ranks.cpu().index_copy(0, kept, outcome.ranks.cpu())
        searched = torch.zeros(len(rows), dtype=torch.bool)
        searched[keep] = True
        if outcome.rates is not None:
            rates = rates.index_copy(0, kept, outcome.rates)
        else:
            rates[keep] = float("nan")
        seconds = (time.perf_counter() - began) / len(part)
        return positions, FoundPatterns(
            self.targets[positions], masks, ranks < k, rates, searched, [name] * len(rows),
            standing, torch.full((len(rows),), seconds, dtype=torch.float64), ranks,
            torch.tensor([ties_at_cut(m, k) for m in masks]))


def _out_of_memory(error: BaseException) -> bool:
    text = str(error).lower()
    return isinstance(error, MemoryError) or "out of memory" in text \
        or "can't allocate memory" in text
