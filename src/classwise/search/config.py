"""Search settings and the named presets.

``paper`` reproduces Zhao et al. (2021) exactly (see ``shared/METHOD.md``): one class at
a time, sign-gradient steps of 0.02 on a mask initialised to 0.5, loss
``alpha * CE + (1 - alpha) * sum(m) / (H * W / 2)`` with alpha 0.2, batches of 4,
5 epochs over 1,800 search images, then the top-k cut; canvas by index.

``default`` is what the benchmarks (``bench/natural.py``, ``bench/speed.py``) showed works
better than ``paper`` at every budget on the small CNN on mnist5k, with a search 13 times
faster (on ResNet-18s on ``shapes`` it is behind at 2% and 5% and ahead at 10%): all
classes in one batched pass, Adam on a mask held inside the budget by projection (so the cut loses
little), a logit-margin loss clamped on both sides (images already fooled, and images out
of reach, stop pulling), a gradient-saliency start, early stopping on held-out search
images, and the canvas chosen among 8 candidates of the class: the one whose starting
pattern fools most held-out search images is optimised. Most of its speed comes from
spending little on anything but the optimisation itself: one finalist, short batches,
three checks.

``thorough`` is ``default`` plus a top-down search per class (the paper's loss and steps
from a half mask, batched and checked on held-out images; :func:`topdown_config`), each
class keeping the pattern that fools more held-out search images. The two searches win on
different classes; together they beat ``paper`` on mnist5k and on ``shapes``, with a third
to a fifth of its search time.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import Any, Literal

from classwise.errors import UsageError


@dataclass(frozen=True)
class SearchConfig:
    """Every knob of the search. Presets fill them; keyword overrides may change any."""

    objective: Literal["paper", "margin"]
    """``paper``: alpha * CE + (1 - alpha) * sum(m) / (H*W/2); ``margin``: clamped logit margin
    with the mask projected onto the pixel budget after each step."""
    optimizer: Literal["sign", "adam"]
    step_size: float
    batch_size: int
    epochs: float | None = None
    """Passes over the search images (paper); ``None`` to run ``max_steps``."""
    max_steps: int | None = None
    alpha: float = 0.2
    margin: float = 2.0
    """Images whose target logit leads by ``margin`` stop pulling (margin objective)."""
    cap: float | None = None
    """Images whose target logit trails by more than ``cap`` stop pulling: effort goes to
    the images a few pixels can still flip (margin objective; ``None``: no cap)."""
    init: Literal["constant", "saliency"] = "constant"
    init_value: float = 0.5
    search_images: int | None = None
    """Search images per class (``None``: every search image of the other classes)."""
    classes_per_pass: int | None = 1
    """Classes optimised together in one forward pass (``None``: as many as fit)."""
    canvas: str = "index:0"
    """Canvas sources (see :mod:`classwise.search.canvas`): ``index:N``, ``auto``,
    ``solid:V``, ``noise``, joined by ``+``."""
    canvas_candidates: int = 1
    finalists: int = 1
    """Candidates per class kept after screening and optimised; the best is kept."""
    eval_every: int = 0
    """Steps between early-stopping checks on held-out search images (0: never)."""
    patience: int = 3
    val_images: int = 0
    """Held-out search images per class for canvas choice and early stopping."""
    topdown: bool = False
    """Also run the top-down search (:func:`topdown_config`) and keep, per class, whichever
    pattern fools more held-out search images."""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


DEFAULT = SearchConfig(
    objective="margin", optimizer="adam", step_size=0.1, batch_size=16, max_steps=50,
    margin=2.0, cap=8.0, init="saliency", search_images=None, classes_per_pass=None,
    canvas="auto", canvas_candidates=8, finalists=1, eval_every=20, patience=2,
    val_images=50)

PRESETS: dict[str, SearchConfig] = {
    "paper": SearchConfig(
        objective="paper", optimizer="sign", step_size=0.02, batch_size=4, epochs=5,
        alpha=0.2, init="constant", init_value=0.5, search_images=1800,
        classes_per_pass=1, canvas="index:0", canvas_candidates=1),
    "default": DEFAULT,
    "thorough": replace(DEFAULT, topdown=True),
}

TOPDOWN = {"objective": "paper", "optimizer": "sign", "step_size": 0.02, "batch_size": 4,
           "epochs": None, "max_steps": 500, "init": "constant", "init_value": 0.5,
           "canvas_candidates": 1, "finalists": 1, "patience": 25, "topdown": False}
"""The top-down search: the paper's loss and sign steps from a half mask, on the first
canvas candidate, 500 steps of 4 images with the best held-out check kept."""


def topdown_config(cfg: SearchConfig) -> SearchConfig:
    """The top-down search of ``cfg``: :data:`TOPDOWN` over its held-out and batching
    settings."""
    return replace(cfg, **TOPDOWN)


def make_config(preset: str = "default", **overrides: Any) -> SearchConfig:
    """The preset's settings with ``overrides`` applied (``None`` values are ignored)."""
    if preset not in PRESETS:
        raise UsageError(f"unknown preset {preset!r}; choose one of {', '.join(PRESETS)}")
    overrides = {k: v for k, v in overrides.items() if v is not None}
    if "max_steps" in overrides and "epochs" not in overrides:
        overrides["epochs"] = None  # a length in steps replaces the preset's epochs
    fields = set(SearchConfig.__dataclass_fields__)
    unknown = sorted(set(overrides) - fields)
    if unknown:
        raise UsageError(f"unknown search setting(s) {', '.join(unknown)}; valid ones are "
                         f"{', '.join(sorted(fields))}")
    cfg = replace(PRESETS[preset], **overrides)
    if cfg.batch_size < 1:
        raise UsageError(f"batch size {cfg.batch_size} must be at least 1")
    if cfg.epochs is None and not cfg.max_steps:
        raise UsageError("give the search a length: epochs or max_steps")
    if cfg.topdown and not (cfg.eval_every and cfg.val_images):
        raise UsageError("topdown picks by held-out search images; set eval_every and "
                         "val_images above 0")
    return cfg
