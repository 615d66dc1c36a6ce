"""MM-BD (Wang, Xiang, Miller & Kesidis, IEEE S&P 2024): a target's maximum margin stands out.

A backdoor teaches the model a region of input space where the target's logit towers over
all others, so the largest margin any valid input reaches is abnormally large for the
target. No clean images are needed. For every scanned class ``k``::

    statistic_k = max over x in [0, 1]^(C, H, W) of  f_k(x) - max_{j != k} f_j(x)

with ``f`` the logits (over all the model's classes). It is estimated by gradient ascent
on the summed margin of ``starts`` (30) inputs drawn uniformly from [0, 1] and fed to the
model clamped to [0, 1] (the raw inputs are unconstrained, so a pixel pushed out of range
stops moving): at most ``steps`` (300) steps of ``lr`` (0.01) times the gradient. A class
stops early once its summed loss changes by less than ``tol`` (1e-5) relative to the step
before. Its statistic is the largest margin among its starts.

Inference: a Gamma distribution (shape, location and scale: scipy's maximum-likelihood
fit) is fitted to the statistics of the scanned classes other than the largest, and the
largest, ``s_max`` of ``K`` scanned classes, gets the order-statistic p-value
``1 - F(s_max) ** K``: the chance that the largest of ``K`` draws from the null reaches
``s_max``. Its class is flagged when the p-value is below ``threshold`` (0.05).

No p-value is claimed when none can be computed: with fewer than :data:`MIN_NULL` (3)
statistics besides the largest (two or three classes), or when scipy's fit fails (e.g. when
they are all equal). ``p_value`` is then ``None``, ``note`` says why, and nothing is
flagged: the statistics are left for the caller to compare.

Followed from the authors' code (github.com/wanghangpsu/MM-BD, ``univ_bd.py``): logits,
30 uniform starts per class, 300 steps at learning rate 1e-2, the clamp in the forward
pass, the relative-change stop, the three-parameter Gamma fit on all but the largest
statistic, ``1 - F(s_max) ** K`` and ``p < 0.05``. Where this module differs:

- Classes are optimised together in batched passes (a class's starts only enter its own
  loss, so this equals separate runs); a class that has stopped leaves the batch.
- The reference re-creates its SGD optimiser (momentum 0.2) at every step, so momentum
  never carries over and each step is plain gradient ascent; this module takes those
  steps directly.
- Starts come from seeded generators, one stream per class, not the unseeded global RNG,
  so a class's statistic does not depend on which other classes are scanned.
- The statistic is measured at the final inputs (after the last step) rather than in the
  forward pass before it, so ``images`` reproduce ``statistics``.
- The p-value is computed from the fitted survival function as ``-expm1(K * log1p(-sf))``,
  equal to ``1 - F ** K`` but without rounding small p-values to 0.
- The exponent is ``K`` as in the code; a summary of the paper gives ``K - 1`` (the number
  of null statistics), which would make p-values slightly smaller.
- Where the reference would fit and decide regardless, too few statistics or a failed fit
  give no p-value (above).
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from numbers import Integral
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from classwise.errors import UsageError
from classwise.fileio import write_json, write_npz
from classwise.models import check_model, resolve_device
from classwise.progress import progress
from classwise.seeding import generator

MIN_NULL = 3
"""Fewest statistics besides the largest that the three-parameter Gamma null is fitted to."""


@dataclass
class MMBDResult:
    """Maximum margins, one per scanned class, and the verdict on the largest.

    ``statistics[i]`` is the largest margin found for ``classes[i]`` and ``images[i]`` the
    input reaching it; ``steps_run[i]`` how many steps its ascent took. ``p_value`` is that
    of the largest statistic under ``null`` (the Gamma fitted to the others), ``None`` when
    it could not be computed, with ``note`` saying why; ``flagged`` holds the largest
    statistic's class when ``p_value`` is below the threshold, else nothing.
    """

    classes: list[int]
    statistics: np.ndarray
    images: np.ndarray
    steps_run: np.ndarray
    p_value: float | None
    null: dict[str, float]
    flagged: list[int]
    note: str | None = None
    settings: dict[str, Any] = field(default_factory=dict)

    def save(self, out: str | Path) -> Path:
        """Write ``mm_bd.npz`` (statistics, images) and ``mm_bd.json`` (the rest) into ``out``."""
        out = Path(out)
        write_npz(out / "mm_bd.npz", classes=np.asarray(self.classes),
                  statistics=self.statistics, images=self.images, steps_run=self.steps_run)
        write_json(out / "mm_bd.json", {
            "classes": self.classes, "statistics": self.statistics.tolist(),
            "steps_run": self.steps_run.tolist(), "p_value": self.p_value, "null": self.null,
            "flagged": self.flagged, "note": self.note, "settings": self.settings})
        return out


@dataclass(frozen=True)
class NullFit:
    """The Gamma null fitted to all statistics but the largest, and the largest's p-value.

    ``p_value`` is ``None`` and ``null`` empty when no fit could be made; ``note`` says why.
    """

    p_value: float | None
    null: dict[str, float]
    note: str | None = None


def mm_bd(model: nn.Module, image_shape: Sequence[int], num_classes: int,
          classes: Sequence[int] | None = None, seed: int = 0,
          device: str | torch.device | None = None, show_progress: bool = True,
          starts: int = 30, steps: int = 300, lr: float = 1e-2, tol: float = 1e-5,
          threshold: float = 0.05) -> MMBDResult:
    """Run MM-BD on ``classes`` (default: all ``num_classes``) of a model of ``image_shape`` inputs.

    ``model`` takes float ``(N, C, H, W)`` in [0, 1] and returns ``(N, num_classes)`` logits;
    it is put in eval mode for the run and needs no data. Every class's ``starts`` inputs
    go through the model in one pass, so memory grows with ``len(classes) * starts``.
    ``device`` (default: the model's) is where the inputs go; the model must live there.
    """
    device = resolve_device(model, device)
    shape = _validate_shape(image_shape)
    classes = _validate_classes(classes, num_classes)
    if starts < 1 or steps < 1 or lr <= 0 or tol < 0 or not 0 < threshold < 1:
        raise UsageError(f"need starts >= 1, steps >= 1, lr > 0, tol >= 0 and 0 < threshold "
                         f"< 1; got {starts}, {steps}, {lr}, {tol} and {threshold}")
    settings = {"starts": starts, "steps": steps, "lr": lr, "tol": tol,
                "threshold": threshold, "seed": seed}
    was_training = model.training
    model.eval()
    try:
        check_model(model, torch.full((2, *shape), 0.5), num_classes)
        statistics, images, steps_run = _maximise(model, classes, shape, settings, device,
                                                  show_progress)
    finally:
        model.train(was_training)
    fit = fit_null(statistics)
    top = int(np.argmax(statistics))
    flagged = [classes[top]] if fit.p_value is not None and fit.p_value < threshold else []
    return MMBDResult(classes=classes, statistics=statistics, images=images,
                      steps_run=steps_run, p_value=fit.p_value, null=fit.null,
                      flagged=flagged, note=fit.note, settings=settings)


def fit_null(statistics: np.ndarray) -> NullFit:
    """Fit a Gamma to all but the largest of ``statistics`` (one per class) and give the
    largest's order-statistic p-value ``1 - F(largest) ** len(statistics)``."""
    s = np.asarray(statistics, dtype=np.float64)
    if s.ndim != 1 or len(s) < 2 or not np.isfinite(s).all():
        raise UsageError(f"MM-BD's test needs a 1-D array of at least 2 finite statistics, got "
                         f"shape {s.shape}; pass one maximum margin per class")
    from scipy import stats  # here, not at the top: importing it costs every command 0.3 s

    rest = np.delete(s, np.argmax(s))
    if len(rest) < MIN_NULL:
        return NullFit(None, {}, f"{len(s)} classes leave {len(rest)} statistic(s) besides the "
                                 f"largest, and a Gamma null needs at least {MIN_NULL}: no "
                                 "p-value, nothing flagged; compare the statistics directly")
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore", RuntimeWarning)
        try:
            shape, loc, scale = (float(v) for v in stats.gamma.fit(rest))
        except stats.FitError as e:
            return NullFit(None, {}, f"the Gamma fit to the statistics besides the largest "
                                     f"failed ({e}): no p-value, nothing flagged")
    tail = stats.gamma.sf(s.max(), shape, loc, scale)
    p_value = float(-np.expm1(len(s) * np.log1p(-tail)))
    return NullFit(p_value, {"distribution": "gamma", "shape": shape, "loc": loc,
                             "scale": scale})


def _validate_shape(image_shape: Sequence[int]) -> tuple[int, int, int]:
    """``image_shape`` as three positive ints, or a :class:`UsageError`."""
    shape = tuple(image_shape)
    if len(shape) != 3 or not all(isinstance(v, Integral) and not isinstance(v, bool)
                                  and v > 0 for v in shape):
        raise UsageError(f"image_shape must be (channels, height, width) with positive sizes, "
                         f"got {shape}; e.g. (1, 28, 28) for MNIST")
    return tuple(int(v) for v in shape)


def _validate_classes(classes: Sequence[int] | None, num_classes: int) -> list[int]:
    """The classes to scan: all of them by default, else distinct indices, at least two."""
    if num_classes < 2:
        raise UsageError(f"MM-BD compares classes with each other; the model must have at "
                         f"least 2, got num_classes={num_classes}")
    chosen = list(range(num_classes)) if classes is None else [int(t) for t in classes]
    if len(chosen) < 2 or len(set(chosen)) != len(chosen) or min(chosen) < 0 \
            or max(chosen) >= num_classes:
        raise UsageError(f"classes must be at least 2 distinct class indices in "
                         f"0..{num_classes - 1}, got {chosen}; list each class to scan once")
    return chosen


def _maximise(model: nn.Module, classes: list[int], shape: tuple[int, int, int],
              settings: dict[str, Any], device: torch.device,
              show_progress: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Each class's largest margin (float64), the input reaching it (float32, CPU) and the
    number of steps its ascent took."""
    n = len(classes)
    targets = torch.tensor(classes, device=device)
    starts, seed = settings["starts"], settings["seed"]
    x = torch.stack([torch.rand(starts, *shape, generator=generator(seed, t))
                     for t in classes]).to(device)
    last = torch.full((n,), torch.inf, device=device)
    steps_run = torch.zeros(n, dtype=torch.long)
    active = torch.arange(n, device=device)
    bar = progress(range(settings["steps"]), enabled=show_progress, desc="mm-bd", unit="step")
    for _ in bar:
        rows = x[active].requires_grad_()
        loss = -_margins(model, rows.clamp(0, 1), targets[active]).sum(1)
        (grad,) = torch.autograd.grad(loss.sum(), rows)
        with torch.no_grad():
            x[active] = rows - settings["lr"] * grad
            steps_run[active.cpu()] += 1
            settled = (last[active] - loss).abs() < settings["tol"] * last[active].abs()
            last[active] = loss
            active = active[~settled]
        bar.set_postfix(active=len(active))
        if len(active) == 0:
            break
    with torch.no_grad():
        final = x.clamp(0, 1)
        margins = _margins(model, final, targets)
        best = margins.argmax(1)
        statistics = margins.gather(1, best[:, None]).squeeze(1)
        images = final[torch.arange(n, device=device), best]
    return statistics.double().cpu().numpy(), images.float().cpu().numpy(), steps_run.numpy()


def _margins(model: nn.Module, x: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Margins ``(n, S)`` of inputs ``x`` ``(n, S, C, H, W)``: the logit of row ``i``'s class
    ``targets[i]`` minus the largest other logit."""
    n, s = x.shape[:2]
    logits = model(x.flatten(0, 1)).view(n, s, -1)
    index = targets[:, None, None].expand(n, s, 1)
    own = logits.gather(-1, index).squeeze(-1)
    rivals = logits.scatter(-1, index, -torch.inf).amax(-1)
    return own - rivals
