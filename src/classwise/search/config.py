"""Search settings and the named presets.

``paper`` reproduces Zhao et al. (2021) exactly (see ``shared/METHOD.md``): one class at
a time, sign-gradient steps of 0.02 on a mask initialised to 0.5, loss
``alpha * CE + (1 - alpha) * sum(m) / (H * W / 2)`` with alpha 0.2, batches of 4,
5 epochs over 1,800 search images, then the top-k cut; canvas by index.

``default``: all classes in one batched pass, Adam on a mask held inside the budget by
projection (so the cut loses little), a logit-margin loss clamped on both sides (images
already fooled, and images out of reach, stop pulling), a gradient-saliency start, early
stopping on held-out search images (up to 80 steps), the canvas chosen among 24 candidates
of the class (the two whose starting patterns fool most held-out search images are
optimised, and the worse of the two left at the first check: successive halving), and a
refinement of the kept pixels: 16 rounds of 4 swaps proposed by the gradient, each taken
only where more held-out search images are fooled; the finalist whose refined pattern
fools more of them is kept. It was tuned on
the development models of ``bench/natural.py`` only (the small CNNs on mnist5k, the narrow
ResNet-18s on shapes); ``docs/benchmarks.md`` gives it beside ``paper`` on those and on
the held-out models. Most of its speed comes from spending little on anything but the
optimisation itself: cheap screening, two finalists cut to one early, short batches, few
checks.

``fast`` is ``default`` with 8 canvas candidates and one finalist (the default preset
until its 24 and 2): about half its search time, for less predictive power on most models.

``thorough`` is ``default`` followed by the top-down search (:func:`top_down`: the paper's
loss and steps from a half mask, batched and checked on held-out images), each class
keeping the pattern that fools more held-out search images. The two searches win on
different classes; together they beat ``paper`` on mnist5k and on ``shapes``, with a third
to a fifth of its search time.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any

from classwise.errors import UsageError
from classwise.search.objectives import OBJECTIVES
from classwise.search.optimizers import OPTIMIZERS


@dataclass(frozen=True)
class SearchConfig:
    """Every knob of one search. Presets fill them; keyword overrides may change any."""

    objective: str
    """A registered objective (:mod:`classwise.search.objectives`): ``paper`` is
    alpha * CE + (1 - alpha) * sum(m) / (H*W/2); ``margin`` the clamped logit margin with
    the mask projected onto the pixel budget after each step."""
    optimizer: str
    """A registered optimiser (:mod:`classwise.search.optimizers`): ``sign`` or ``adam``."""
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
    init: str = "constant"
    """``constant`` (every mask value ``init_value``) or ``saliency`` (the budget projection
    of the loss's gradient at an empty mask)."""
    init_value: float = 0.5
    search_images: int | None = None
    """Search images per class (``None``: every search image of the other classes)."""
    classes_per_pass: int | None = 1
    """Classes optimised together in one forward pass (``None``: as many as fit)."""
    canvas: str = "index:0"
    """Canvas sources (see :mod:`classwise.reveal.canvas`): ``index:N``, ``auto``,
    ``solid:V``, ``noise``, joined by ``+``."""
    canvas_candidates: int = 1
    """Canvases searched per class: the first ones of its rows."""
    finalists: int = 1
    """Candidates per class kept after screening and optimised; the best is kept."""
    eval_every: int = 0
    """Steps between early-stopping checks on held-out search images (0: never)."""
    patience: int = 3
    val_images: int = 0
    """Held-out search images per class for canvas choice and early stopping."""
    halving: bool = False
    """At each check, leave out the worse half of each class's finalists still searched
    (successive halving on held-out search images)."""
    refine_rounds: int = 0
    """Rounds of gradient-proposed swaps of the kept pixels after the search, each taken only
    where more held-out search images are fooled (:func:`classwise.search.engine.refine`)."""
    refine_swaps: int = 4
    """Pixels swapped in and out per round of refinement."""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def top_down(cfg: SearchConfig) -> SearchConfig:
    """The top-down search that follows ``cfg`` in ``thorough``: the paper's loss and sign
    steps from a half mask, on the first canvas candidate, 500 steps of 4 images with the
    best held-out check kept (patience 25). It keeps ``cfg``'s held-out images and checks
    (``val_images``, ``eval_every``, ``search_images``), loss weights and canvas sources, so
    both searches of a class are judged on the same images."""
    return replace(cfg, objective="paper", optimizer="sign", step_size=0.02, batch_size=4,
                   epochs=None, max_steps=500, init="constant", init_value=0.5,
                   canvas_candidates=1, finalists=1, patience=25)


@dataclass(frozen=True)
class Preset:
    """A preset: its first search's settings, then the searches derived from them
    (:data:`FOLLOW_UPS`) that run on the same classes; per class the pattern that fools
    most held-out search images is kept, an earlier search winning ties. ``large`` changes
    the first search's settings for images of ``LARGE`` pixels a side and more, and
    ``pixels`` gives the pattern size per image size where the preset has its own."""

    first: str
    settings: SearchConfig
    then: tuple[str, ...] = ()
    large: dict[str, Any] = field(default_factory=dict)
    pixels: dict[tuple[int, int], int] = field(default_factory=dict)


LARGE = 224
"""Images with both sides at least this many pixels are ImageNet-sized."""


FOLLOW_UPS: dict[str, Callable[[SearchConfig], SearchConfig]] = {"top-down": top_down}

DEFAULT = SearchConfig(
    objective="margin", optimizer="adam", step_size=0.1, batch_size=16, max_steps=80,
    margin=2.0, cap=8.0, init="saliency", search_images=None, classes_per_pass=None,
    canvas="auto", canvas_candidates=24, finalists=2, halving=True, eval_every=20,
    patience=2, val_images=50, refine_rounds=16, refine_swaps=4)

PRESETS: dict[str, Preset] = {
    "paper": Preset("paper", SearchConfig(
        objective="paper", optimizer="sign", step_size=0.02, batch_size=4, epochs=5,
        alpha=0.2, init="constant", init_value=0.5, search_images=1800,
        classes_per_pass=1, canvas="index:0", canvas_candidates=1),
        large={"epochs": 1, "search_images": None},  # ImageNet: one epoch over them all
        pixels={(32, 32): 50, (224, 224): 2500}),
    "default": Preset("default", DEFAULT),
    "fast": Preset("default", replace(DEFAULT, canvas_candidates=8, finalists=1, halving=False)),
    "thorough": Preset("default", DEFAULT, then=("top-down",)),
}

Plan = list[tuple[str, SearchConfig]]
"""The searches of a run, in order, each with its name."""


def make_plan(preset: str = "default", image_shape: tuple[int, ...] | None = None,
              **overrides: Any) -> Plan:
    """The searches of ``preset`` for images of ``image_shape`` (C, H, W): its first with
    ``overrides`` applied (``None`` values are ignored), then the follow-ups derived from
    that."""
    chosen = _preset(preset)
    settings = chosen.settings
    if image_shape is not None and min(image_shape[-2:]) >= LARGE:
        settings = replace(settings, **chosen.large)
    cfg = _checked(replace(settings, **_valid(overrides)))
    if chosen.then and not (cfg.eval_every and cfg.val_images):
        raise UsageError(f"the {preset} preset picks between its searches by held-out search "
                         "images; set eval_every and val_images above 0")
    return [(chosen.first, cfg)] + [(name, FOLLOW_UPS[name](cfg)) for name in chosen.then]


def preset_pixels(preset: str, height: int, width: int) -> int | None:
    """The pattern size ``preset`` keeps for images of ``height`` x ``width`` where it has
    its own (the paper's 50 of 32x32 and 2,500 of 224x224), else None."""
    return _preset(preset).pixels.get((height, width))


def _preset(name: str) -> Preset:
    if name not in PRESETS:
        raise UsageError(f"unknown preset {name!r}; choose one of {', '.join(PRESETS)}")
    return PRESETS[name]


def make_config(preset: str = "default", **overrides: Any) -> SearchConfig:
    """The settings of ``preset``'s first search with ``overrides`` applied."""
    return make_plan(preset, **overrides)[0][1]


def _valid(overrides: dict[str, Any]) -> dict[str, Any]:
    overrides = {k: v for k, v in overrides.items() if v is not None}
    if "max_steps" in overrides and "epochs" not in overrides:
        overrides["epochs"] = None  # a length in steps replaces the preset's epochs
    names = {f.name for f in fields(SearchConfig)}
    unknown = sorted(set(overrides) - names)
    if unknown:
        raise UsageError(f"unknown search setting(s) {', '.join(unknown)}; valid ones are "
                         f"{', '.join(sorted(names))}")
    return overrides


def _checked(cfg: SearchConfig) -> SearchConfig:
    if cfg.batch_size < 1:
        raise UsageError(f"batch size {cfg.batch_size} must be at least 1")
    if cfg.epochs is None and not cfg.max_steps:
        raise UsageError("give the search a length: epochs or max_steps")
    if (cfg.epochs is not None and not cfg.epochs > 0) or (cfg.max_steps or 0) < 0:
        raise UsageError(f"epochs {cfg.epochs} and max_steps {cfg.max_steps} must be "
                         "positive; give the search a length such as --epochs 5")
    if cfg.search_images is not None and cfg.search_images < 0:
        raise UsageError(f"search images {cfg.search_images} must be positive, or 0 for "
                         "every search image of the other classes")
    if cfg.init not in ("constant", "saliency"):
        raise UsageError(f"unknown init {cfg.init!r}; use constant or saliency")
    OBJECTIVES.get(cfg.objective)
    OPTIMIZERS.get(cfg.optimizer)
    return cfg
