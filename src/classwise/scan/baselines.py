"""The baselines a ``classwise`` scan is measured against, as scan methods.

``neural-cleanse`` runs :func:`~classwise.scan.neural_cleanse.neural_cleanse` on
search-pool images and applies its paper's rule to the mask L1 norms (MAD anomaly index
above 2, small side). ``mm-bd`` runs :func:`~classwise.scan.mm_bd.mm_bd` (no data needed)
and flags its largest maximum margin when the Gamma null's p-value is below 0.05; its
anomaly index is the MAD index of the margins, large side.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

from classwise.data.base import Dataset
from classwise.evaluation.measure import TestSet, make_examples, pattern_figures
from classwise.results import RevealResult
from classwise.reveal.pools import partition
from classwise.scan.mad import THRESHOLD, anomaly_index
from classwise.scan.mm_bd import mm_bd
from classwise.scan.neural_cleanse import neural_cleanse
from classwise.scan.result import ScanResult
from classwise.search.ops import tie_order, topk_mask
from classwise.seeding import rng
from classwise.versions import versions

NC_IMAGES = 1000


def neural_cleanse_scan(net: nn.Module, ds: Dataset, dev: torch.device, seed: int, images: int,
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
    index = np.asarray(nc.anomaly_index)
    flagged = [int(result.classes[i]) for i in np.argsort(-index, kind="stable")
               if index[i] > THRESHOLD]
    return ScanResult("neural-cleanse", "mask_l1", nc.l1, index, result, flagged,
                      f"anomaly index > {THRESHOLD:g} (Neural Cleanse's rule)", None,
                      int(np.argmax(index)), result.settings, extra)


def mm_bd_scan(net: nn.Module, ds: Dataset, dev: torch.device, seed: int, show_progress: bool,
               settings: dict[str, Any]) -> ScanResult:
    """MM-BD on every class; the kept "patterns" are empty (the method finds no pattern)
    and each class's canvas is the input that reached its largest margin."""
    found = mm_bd(net, ds.image_shape, ds.num_classes, seed=seed, device=dev,
                  show_progress=show_progress)
    h, w = ds.image_shape[1:]
    n = len(found.classes)
    result = RevealResult(np.asarray(found.classes, np.int64), found.images.astype(np.float32),
                          np.zeros((n, h, w), np.float32), np.zeros((n, h, w), bool),
                          [{"class": t, "name": ds.class_names[t], "pixels": 0,
                            "max_margin": float(s)}
                           for t, s in zip(found.classes, found.statistics, strict=True)],
                          {**settings, "index_of": "max_margin", "mm_bd": found.settings,
                           "null": found.null, "note": found.note, "versions": versions()},
                          list(ds.class_names))
    rule = (f"p < {found.settings['threshold']:g} (the largest margin against a Gamma null "
            "of the others, MM-BD's rule)" if found.p_value is not None else
            f"none: {found.note}")
    return ScanResult("mm-bd", "max_margin", found.statistics, anomaly_index(-found.statistics),
                      result, list(found.flagged), rule, found.p_value,
                      int(np.argmax(found.statistics)), result.settings)
