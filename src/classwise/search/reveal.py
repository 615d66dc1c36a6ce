"""``reveal``: the class-wise pattern of every requested class, with its predictive power."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from copy import copy
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import nn

from classwise.data import load_data
from classwise.data.base import Dataset
from classwise.errors import UsageError
from classwise.evaluation.metrics import other_class_indices
from classwise.models import check_model, load_model, resolve_device
from classwise.progress import progress
from classwise.scale import shard_classes
from classwise.search.canvas import Candidate, candidates_for, canvas_images, parse_canvas
from classwise.search.checkpoint import Checkpoint
from classwise.search.config import SearchConfig, make_config, topdown_config
from classwise.search.engine import MaskSearch, Rows, fooling_rate, initial_masks
from classwise.search.ops import pixels_for_budget, topk_mask
from classwise.search.pools import ImageSource, RowSampler, partition
from classwise.seeding import seed_everything

if TYPE_CHECKING:
    from classwise.results import RevealResult

PIXELS_PER_PASS = 1 << 19
"""Default memory budget: search images per forward pass times pixels per image."""


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


def rows_per_pass(cfg: SearchConfig, image_shape: tuple[int, int, int],
                  max_batch: int | None) -> int:
    """Rows per forward pass: ``cfg.classes_per_pass``, else from the image budget."""
    if cfg.classes_per_pass:
        return cfg.classes_per_pass
    if max_batch is None:
        max_batch = max(cfg.batch_size, PIXELS_PER_PASS // (image_shape[1] * image_shape[2]))
    if max_batch < 1:
        raise UsageError(f"max batch {max_batch} must be at least 1")
    return max(1, max_batch // cfg.batch_size)


def chunks(n: int, size: int) -> list[slice]:
    return [slice(i, min(n, i + size)) for i in range(0, n, size)]


class Searcher:
    """Runs the search of one configuration on one model and dataset."""

    def __init__(self, model: nn.Module, data: Dataset, cfg: SearchConfig, k: int, seed: int,
                 device: torch.device, per_pass: int, show_progress: bool) -> None:
        self.model, self.data, self.cfg, self.k, self.seed = model, data, cfg, k, seed
        self.device, self.per_pass, self.show_progress = device, per_pass, show_progress
        self.pools = partition(data.train.labels)
        self.source = ImageSource(data.train, self.pools.search, device)

    @property
    def classes_per_chunk(self) -> int:
        """Classes searched together: as many as leave room for each one's finalists."""
        return max(1, self.per_pass // self.cfg.finalists)

    def rows(self, cands: list[Candidate]) -> Rows:
        labels, cfg = self.data.train.labels, self.cfg
        canvases = canvas_images(cands, self.data, self.seed).to(self.device)
        samplers = [RowSampler(self.pools.search_for(labels, c.target), self.seed, c.target,
                               c.slot, cfg.val_images, cfg.search_images) for c in cands]
        targets = torch.tensor([c.target for c in cands], device=self.device)
        return Rows(targets, canvases, samplers)

    def screen(self, per_class: list[list[Candidate]]) -> tuple[list[Candidate], Rows,
                                                                 torch.Tensor]:
        """Start every candidate's mask; keep each class's ``finalists`` best candidates.

        Candidates are judged by how many held-out search images their initial top-k
        pattern fools; ties keep the pool's order.
        """
        flat = [c for cands in per_class for c in cands]
        rows = self.rows(flat)
        masks, rates = [], []
        for sl in chunks(len(flat), self.per_pass):
            sub = rows.take(list(range(sl.start, sl.stop)))
            m = initial_masks(self.model, sub, self.source, self.cfg, self.k)
            masks.append(m)
            rates.append(fooling_rate(self.model, topk_mask(m, self.k), sub, self.source)
                         if len(flat) > len(per_class) else torch.zeros(len(sub)))
        rate = torch.cat(rates)
        keep, start = [], 0
        for cands in per_class:
            order = torch.argsort(-rate[start:start + len(cands)], stable=True)
            keep += (start + order[:self.cfg.finalists]).tolist()
            start += len(cands)
        return [flat[i] for i in keep], rows.take(keep), torch.cat(masks)[keep]

    def run(self, classes: list[int], canvas: str,
            on_done: Callable[[list[int], np.ndarray, list[Candidate], float], None],
            checkpoint: Checkpoint | None = None) -> None:
        """Search ``classes`` chunk by chunk; call ``on_done`` after each chunk.

        Each class keeps the finalist whose optimised pattern fools most held-out images
        (with ``cfg.topdown``, the better of that and the top-down search's). With a
        ``checkpoint``, finished searches are skipped and one in progress continues from
        its last saved state. A chunk that runs out of memory is retried with half as many
        rows per pass.
        """
        pending = list(classes)
        while pending:
            part = pending[:self.classes_per_chunk]
            key = f"{part[0]}-{part[-1]}-{len(part)}"
            try:
                done = self.finished_or_search(key, part, canvas, checkpoint)
                if self.cfg.topdown:
                    topdown = copy(self)
                    topdown.cfg = topdown_config(self.cfg)
                    done = better(done, topdown.finished_or_search(f"{key}-topdown", part,
                                                                   canvas, checkpoint))
            except (RuntimeError, MemoryError) as e:
                if not _out_of_memory(e) or self.per_pass == 1:
                    raise
                self.per_pass //= 2
                _free_memory(self.device)
                continue
            on_done(part, done["masks"], [Candidate(**c) for c in done["candidates"]],
                    done["seconds"])
            pending = pending[len(part):]

    def finished_or_search(self, key: str, part: list[int], canvas: str,
                           checkpoint: Checkpoint | None) -> dict:
        """The saved result of search ``key`` if it finished, else the search's."""
        done = checkpoint.finished(key) if checkpoint else None
        return done if done is not None else self.search_chunk(key, part, canvas, checkpoint)

    def search_chunk(self, i: str, part: list[int], canvas: str,
                     checkpoint: Checkpoint | None) -> dict:
        """Screen, optimise and pick the canvases of the classes ``part`` (chunk ``i``)."""
        start = time.perf_counter()
        saved = checkpoint.partial(i) if checkpoint else None
        if saved is None:
            labels = self.data.train.labels
            per_class = [candidates_for(t, canvas, self.cfg.canvas_candidates, self.pools,
                                        labels) for t in part]
            cands, rows, init = self.screen(per_class)
            offset = 0.0
        else:
            cands = [Candidate(**c) for c in saved["candidates"]]
            rows, init, offset = self.rows(cands), saved["search"]["masks"], saved["seconds"]
        search = MaskSearch(self.model, rows, init.to(self.device), self.source, self.cfg,
                            self.k)
        if saved is not None:
            search.load_state_dict(saved["search"])

        def save(s: MaskSearch) -> None:
            checkpoint.save_partial(i, {"candidates": [asdict(c) for c in cands],
                                        "search": s.state_dict(),
                                        "seconds": offset + time.perf_counter() - start})

        bar = progress(total=search.total * len(rows), enabled=self.show_progress,
                       desc=f"classes {part[0]}..{part[-1]}", unit="row-step",
                       initial=search.step * len(rows))
        masks, rates = search.run(tick=bar.update, checkpoint=save if checkpoint else None)
        bar.close()
        best = [max((j for j, c in enumerate(cands) if c.target == t),
                    key=lambda j: (float(rates[j]) if rates is not None else 0.0, -j))
                for t in part]
        done = {"masks": masks[best].cpu().numpy(),
                "candidates": [asdict(cands[j]) for j in best],
                "rates": [float(rates[j]) if rates is not None else 0.0 for j in best],
                "seconds": offset + time.perf_counter() - start}
        if checkpoint:
            checkpoint.save_finished(i, done)
        return done


def better(a: dict, b: dict) -> dict:
    """Per class, the result of the default search ``a`` or the top-down search ``b`` whose
    held-out rate is higher (ties keep ``a``), its candidate marked with the search; their
    times add up."""
    out: dict = {"masks": [], "candidates": [], "rates": [],
                 "seconds": a["seconds"] + b["seconds"]}
    for j, (ra, rb) in enumerate(zip(a["rates"], b["rates"], strict=True)):
        pick, name = (b, "top-down") if rb > ra else (a, "default")
        out["masks"].append(pick["masks"][j])
        out["candidates"].append({**pick["candidates"][j], "search": name})
        out["rates"].append(pick["rates"][j])
    out["masks"] = np.stack(out["masks"])
    return out


def _out_of_memory(error: BaseException) -> bool:
    text = str(error).lower()
    return isinstance(error, MemoryError) or "out of memory" in text \
        or "can't allocate memory" in text


def _free_memory(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.empty_cache()


def reveal(model: str | Path | nn.Module, data: str | Path | Dataset,
           classes: str | Sequence[int | str] | None = "all", budget: float | None = None,
           pixels: int | None = None, preset: str = "default", canvas: str | None = None,
           seed: int = 0, device: str | None = None, max_batch: int | None = None,
           show_progress: bool = True, model_name: str | None = None,
           checkpoint: str | Path | None = None, resume: bool = False,
           shard: str | None = None, executor: str = "local", ray_address: str | None = None,
           **overrides: Any) -> RevealResult:
    """Reveal the class-wise pattern of each class of ``model`` on ``data``.

    Canvases and search images come from disjoint pools of the ``train`` split; every
    figure is measured on ``test``. ``budget`` is the share of pixels kept (default 0.05),
    or give ``pixels``. ``overrides`` change single settings of the preset (see
    :class:`~classwise.search.config.SearchConfig`); ``model_name`` is what the results
    call the model (default: its path). With ``checkpoint`` (a folder), progress is saved
    after each chunk of classes and every 30 s within one (with Ray, as each chunk comes
    back); ``resume=True`` continues from it and ends with the results an uninterrupted
    run would give. ``shard="I/N"`` searches every N-th requested class from the I-th
    (join shards with :func:`classwise.merge`);
    ``executor="ray"`` fans chunks of classes out over a Ray cluster (``ray_address``, or a
    local instance). The same seed gives the same patterns however the work is split.

    >>> from classwise.models import create_model
    >>> net = create_model("small-cnn", (1, 8, 8), 10)
    >>> result = reveal(net, "digits", classes="0,1", pixels=3, preset="default",
    ...                 show_progress=False, max_steps=2, canvas_candidates=2)
    >>> result.patterns.shape, int(result.patterns[0].sum())
    ((2, 8, 8), 3)
    """
    from classwise.results import RevealResult

    ds = load_data(data)
    net = load_model(model, device=device)
    dev = resolve_device(net, device)
    check_model(net, ds.test.load([0, 1]), ds.num_classes)
    wanted = parse_classes(classes, ds)
    if shard is not None:
        wanted = shard_classes(wanted, shard)
        if not wanted:
            raise UsageError(f"shard {shard} holds no classes; use at most as many shards as "
                             "classes")
    if executor not in ("local", "ray"):
        raise UsageError(f"unknown executor {executor!r}; use local or ray")
    c, h, w = ds.image_shape
    k = pixels_for_budget(budget, pixels, h, w)
    cfg = make_config(preset, canvas=canvas, **overrides)
    parse_canvas(cfg.canvas)
    seed_everything(seed)
    per_pass = rows_per_pass(cfg, ds.image_shape, max_batch)
    searcher = Searcher(net, ds, cfg, k, seed, dev, per_pass, show_progress)
    for t in wanted:  # refuse bad canvases and unusable test splits before any work
        candidates_for(t, cfg.canvas, cfg.canvas_candidates, searcher.pools, ds.train.labels)
        other_class_indices(ds.test, t)
    result = RevealResult.empty(ds, k, settings={
        "model": model_name or (type(model).__name__ if isinstance(model, nn.Module)
                                else str(model)),
        "data": ds.name, "preset": preset, "budget": k / (h * w), "budget_pixels": k,
        "seed": seed, "device": str(dev), "search": cfg.to_dict(),
        **({"shard": shard} if shard else {})})
    ckpt = None
    if checkpoint is not None:
        ckpt = Checkpoint(checkpoint, {**result.settings, "classes": wanted,
                                       "per_pass": searcher.per_pass, "executor": executor},
                          resume)
        ckpt.start()
    if executor == "ray":
        from classwise.scale import reveal_ray

        return reveal_ray(model, data, wanted, ray_address, chunk=searcher.classes_per_chunk,
                          checkpoint=ckpt, budget=budget, pixels=pixels, preset=preset,
                          canvas=canvas, seed=seed, device=device, max_batch=max_batch,
                          model_name=model_name, **overrides)
    searcher.run(wanted, cfg.canvas, lambda part, masks, chosen, secs: result.add(
        part, masks, chosen, secs, net, ds, k, seed), ckpt)
    return result.finish()
