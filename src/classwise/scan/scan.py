"""``scan``: decide whether a model is backdoored and which class is the target.

``classwise`` (:mod:`classwise.scan.ladder`) finds per class the fewest pattern pixels that
make most held-out images of the other classes read as it, and accuses the class whose
pattern is anomalously small (:mod:`classwise.scan.verdict`). ``neural-cleanse`` and
``mm-bd`` are the baselines it is measured against (:mod:`classwise.scan.baselines`).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from torch import nn

from classwise.data.base import Dataset
from classwise.errors import UsageError
from classwise.models import checked_layout, parameter_count, resolve_device
from classwise.reveal.canvas import parse_canvas
from classwise.scan.baselines import NC_IMAGES, mm_bd_scan, neural_cleanse_scan
from classwise.scan.dense import FAMILIES, dense_settings
from classwise.scan.dense import MIN_FACTOR as DENSE_MIN_FACTOR
from classwise.scan.ladder import CANVAS, RATE, SEARCH, budgets, climb
from classwise.scan.reference import reference_log_sizes
from classwise.scan.result import ScanResult
from classwise.scan.verdict import MIN_FACTOR
from classwise.search.checkpoint import Checkpoint
from classwise.search.config import make_config
from classwise.search.families import families as dense_families
from classwise.sources import DataSource, ModelSource, data_source, fingerprint, model_source

METHODS = ("classwise", "neural-cleanse", "mm-bd")


def scan(model: str | Path | nn.Module | ModelSource, data: str | Path | Dataset | DataSource,
         method: str = "classwise", seed: int = 0, device: str | None = None,
         show_progress: bool = True, rate: float = RATE, ladder: list[int] | None = None,
         canvas: str = CANVAS, nc_images: int = NC_IMAGES, model_name: str | None = None,
         reference: Sequence[str | Path] | None = None, checkpoint: str | Path | None = None,
         resume: bool = False, families: Sequence[str] | None = None,
         **overrides: Any) -> ScanResult:
    """Scan every class of ``model`` on ``data`` for a backdoor with ``method``.

    ``classwise``: the fewest pixels reaching ``rate`` on held-out search images, per
    class, over budgets ``ladder`` (default 4, 8, 16, ... up to 10% of the pixels) with
    ``canvas`` sources; ``overrides`` change single search settings (see
    :class:`~classwise.search.config.SearchConfig`); the verdict is
    :mod:`classwise.scan.verdict`'s. ``families``: the dense pattern families searched
    beside the pixel patch (:mod:`classwise.scan.dense`; default additive and warp, for
    triggers spread over the whole image, when None; ``()`` or ``["pixels"]`` for the
    pixel patch alone); the verdict
    weighs every family. ``neural-cleanse``: Neural Cleanse on ``nc_images``
    search-pool images, flagged by its MAD rule; ``mm-bd``: MM-BD, flagged by its p-value
    (:mod:`classwise.scan.baselines`). ``reference``:
    ``classwise`` scan folders of clean models of the same data; each class's
    ``log(pixels_to_reach)`` is then taken relative to the references' median for that
    class before the rule (:mod:`classwise.scan.reference`). With ``checkpoint`` (a
    folder) a ``classwise`` scan saves its ladder as it climbs; ``resume=True`` continues
    it to the result an uninterrupted scan gives.
    """
    started = time.perf_counter()
    if method not in METHODS:
        raise UsageError(f"unknown scan method {method!r}; choose {' or '.join(METHODS)}")
    if not 0 < rate <= 1:
        raise UsageError(f"rate {rate} is outside (0, 1]; use a share such as 0.8")
    if families is not None and method != "classwise":
        raise UsageError(f"--families works with --method classwise only; drop it for {method}")
    source = model_source(model)
    ds = data_source(data).open()
    net = source.open(ds, device)
    dev = resolve_device(net, device)
    net = checked_layout(net, ds.test.load([0, 1]), ds.num_classes)
    parameters = parameter_count(net)
    ref = checked_reference(reference, method, ds, rate, ladder, parameters)
    settings = {"model": model_name or source.name, "parameters": parameters, "data": ds.name,
                "method": method, "seed": seed, "device": str(dev)}
    if method == "neural-cleanse":
        return _timed(neural_cleanse_scan(net, ds, dev, seed, nc_images, show_progress,
                                          settings), started)
    if method == "mm-bd":
        return _timed(mm_bd_scan(net, ds, dev, seed, show_progress, settings), started)
    cfg = make_config("default", canvas=canvas, **{**SEARCH, **overrides})
    parse_canvas(cfg.canvas)
    families = checked_families(families)
    steps = budgets(ladder, ds.image_shape)
    settings = {**settings, "rate": rate, "ladder": steps, "min_factor": MIN_FACTOR,
                "families": list(families), "dense_min_factor": DENSE_MIN_FACTOR,
                "search": cfg.to_dict(), "reference": [str(p) for p in reference or []]}
    if families:
        settings["dense_search"] = dense_settings()
    ckpt = None
    if checkpoint is not None:
        ckpt = Checkpoint(checkpoint, {**settings, **fingerprint(net, ds)}, resume)
        ckpt.start()
    return _timed(climb(net, ds, dev, seed, rate, steps, cfg, show_progress, ref, settings,
                        ckpt, families), started)


def checked_families(names: Sequence[str] | None) -> tuple[str, ...]:
    """``names`` (None: :data:`~classwise.scan.dense.FAMILIES`) as a tuple of known dense
    families (``pixels``, always searched, dropped); a one-line error for an unknown one."""
    names = FAMILIES if names is None else [names] if isinstance(names, str) else list(names)
    known = dense_families()
    for name in names:
        if name not in known and name != "pixels":
            raise UsageError(f"unknown pattern family {name!r}; choose from "
                             f"{', '.join(['pixels', *known])}")
    return tuple(dict.fromkeys(n for n in names if n != "pixels"))


def _timed(result: ScanResult, started: float) -> ScanResult:
    """``result`` with the scan's wall time since ``started`` in its settings."""
    result.settings["seconds"] = round(time.perf_counter() - started, 2)
    return result


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
                               budgets(ladder, ds.image_shape), parameters)
