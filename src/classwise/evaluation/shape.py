"""Shape figures of a boolean pattern ``(H, W)``: how many pieces, how compact, on the object.

Pixels join when they touch by an edge or a corner (8-connectivity).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy import ndimage

from classwise.errors import UsageError

_EIGHT_NEIGHBOURS = np.ones((3, 3), dtype=bool)


def _as_mask(array: np.ndarray, name: str) -> np.ndarray:
    mask = np.asarray(array)
    if mask.ndim != 2:
        raise UsageError(f"the {name} must be a 2-D (H, W) mask, got shape {mask.shape}; "
                         "reduce the channels first, e.g. mask.any(axis=0)")
    return mask.astype(bool)


def _component_sizes(pattern: np.ndarray) -> np.ndarray:
    labels, count = ndimage.label(_as_mask(pattern, "pattern"), structure=_EIGHT_NEIGHBOURS)
    return np.bincount(labels.ravel(), minlength=count + 1)[1:]


def components(pattern: np.ndarray) -> int:
    """Number of 8-connected pieces of the pattern (0 when it is empty)."""
    return len(_component_sizes(pattern))


def largest_component_share(pattern: np.ndarray) -> float:
    """Share of the pattern's pixels in its largest piece (0.0 for an empty pattern)."""
    sizes = _component_sizes(pattern)
    return float(sizes.max() / sizes.sum()) if len(sizes) else 0.0


def on_object(pattern: np.ndarray, object_mask: np.ndarray) -> float:
    """Share of the pattern's pixels that lie on ``object_mask`` (0.0 for an empty pattern)."""
    pattern = _as_mask(pattern, "pattern")
    mask = _as_mask(object_mask, "object mask")
    if mask.shape != pattern.shape:
        raise UsageError(f"the object mask is {mask.shape} but the pattern is {pattern.shape}; "
                         "give the mask of the pattern's canvas image")
    total = int(pattern.sum())
    return float((pattern & mask).sum() / total) if total else 0.0


def shape_figures(pattern: np.ndarray, object_mask: np.ndarray | None = None) -> dict[str, Any]:
    """``components`` and ``largest_component_share``, plus ``on_object`` given a mask."""
    figures: dict[str, Any] = {"components": components(pattern),
                               "largest_component_share": largest_component_share(pattern)}
    if object_mask is not None:
        figures["on_object"] = on_object(pattern, object_mask)
    return figures
