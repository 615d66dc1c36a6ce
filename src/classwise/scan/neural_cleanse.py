"""Neural Cleanse (Wang et al., IEEE S&P 2019): reverse-engineer the smallest trigger per class.

For every class ``t`` a mask ``m`` (H, W) and a pattern ``p`` (C, H, W) are optimised so
that stamped images ``(1 - m) * x + m * p`` are classified as ``t``, minimising::

    cross_entropy(f((1 - m) * x + m * p), t) + cost_t * |m|_1

over clean images ``x`` of the other classes, with ``m = (tanh(a) + 1) / 2`` and
``p = (tanh(b) + 1) / 2`` (so both stay in [0, 1]) and Adam (lr 0.1, betas (0.5, 0.9)) on
``a`` and ``b``, which start from uniform random masks and patterns. A backdoor target
needs a much smaller mask than the other classes; :mod:`classwise.scan.mad` turns the
L1 norms into anomaly indices.

The cost follows the paper's adaptive schedule, one "round" being one mini-batch step
and "success" the share of that batch's other-class images classified as ``t``:

- ``cost_t`` starts at 0, so the first goal is any working trigger; once success is at
  least ``threshold`` (0.99) for ``patience`` (5) consecutive rounds, it becomes
  ``init_cost`` (1e-3);
- after that, ``patience`` consecutive rounds at or above the threshold multiply the cost
  by 1.5, and ``patience`` consecutive rounds below it divide it by 1.5 ** 1.5 (each
  counter restarts after a change and whenever the other kind of round occurs);
- the kept trigger is the one with the smallest L1 norm among those reaching the
  threshold on their batch; a class that never reaches it keeps its last trigger.

Every class is optimised at once (masks ``(n, H, W)``, one forward pass of ``n * B``
images), which is equivalent to separate runs as Adam works element by element. The
original's early stopping is left out: the number of steps is fixed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from classwise.batching import batches
from classwise.data.base import Split
from classwise.errors import UsageError
from classwise.fileio import write_json, write_npz
from classwise.models.loading import resolve_device
from classwise.progress import progress
from classwise.scan.mad import anomaly_index, flag_outliers
from classwise.seeding import generator


@dataclass
class NeuralCleanseResult:
    """Reverse-engineered triggers, one per scanned class, and the outlier verdict.

    ``l1`` is the L1 norm of each class's kept mask, ``success`` the share of the given
    images of other classes that its trigger sends to the class, ``flagged`` the classes
    whose anomaly index exceeds 2.
    """

    classes: list[int]
    masks: np.ndarray
    patterns: np.ndarray
    l1: np.ndarray
    success: np.ndarray
    anomaly_index: np.ndarray
    flagged: list[int]
    settings: dict[str, Any] = field(default_factory=dict)

    def save(self, out: str | Path) -> Path:
        """Write ``neural_cleanse.npz`` (all arrays) and ``neural_cleanse.json`` into ``out``."""
        out = Path(out)
        arrays = {k: np.asarray(v) for k, v in asdict(self).items() if k != "settings"}
        write_npz(out / "neural_cleanse.npz", **arrays)
        write_json(out / "neural_cleanse.json", {
            "classes": self.classes, "l1": self.l1.tolist(), "success": self.success.tolist(),
            "anomaly_index": self.anomaly_index.tolist(), "flagged": self.flagged,
            "settings": self.settings})
        return out


def neural_cleanse(model: nn.Module, split: Split, indices: np.ndarray, classes: Sequence[int],
                   steps: int = 150, batch_size: int = 32, seed: int = 0,
                   device: str | torch.device | None = None, show_progress: bool = True,
                   init_cost: float = 1e-3, lr: float = 0.1, patience: int = 5,
                   threshold: float = 0.99) -> NeuralCleanseResult:
    """Run Neural Cleanse for ``classes`` on the images ``split[indices]`` (use training images).

    ``model`` takes float ``(N, C, H, W)`` in [0, 1] and returns logits; it is put in eval
    mode for the run. Each of the ``steps`` mini-batches holds ``batch_size`` images drawn
    (without replacement) from ``indices`` and is stamped with every class's trigger.
    ``success`` is then measured on all of ``indices``: about a thousand images is plenty
    (28x28, 10 classes, defaults: roughly 30 s on two CPU cores). ``device`` (default: the
    model's) is where the images go; the model must live there.
    """
    indices = np.asarray(indices, dtype=np.int64)
    classes = [int(t) for t in classes]
    device = resolve_device(model, device)
    settings = {"steps": steps, "batch_size": batch_size, "seed": seed, "init_cost": init_cost,
                "lr": lr, "patience": patience, "threshold": threshold, "images": len(indices)}
    was_training = model.training
    model.eval()
    try:
        _validate(model, split, indices, classes, steps, batch_size, device)
        masks, patterns = _optimise(model, split, indices, classes, settings, device,
                                    show_progress)
        success = _success(model, split, indices, classes, masks, patterns, batch_size, device)
    finally:
        model.train(was_training)
    l1 = masks.sum(dim=(1, 2)).double().numpy()
    return NeuralCleanseResult(
        classes=classes, masks=masks.numpy(), patterns=patterns.numpy(), l1=l1,
        success=success, anomaly_index=anomaly_index(l1),
        flagged=[classes[i] for i in flag_outliers(l1)], settings=settings)


def _validate(model: nn.Module, split: Split, indices: np.ndarray, classes: list[int],
              steps: int, batch_size: int, device: torch.device) -> None:
    """Raise :class:`UsageError` for arguments the optimisation cannot use."""
    if steps < 1 or batch_size < 1:
        raise UsageError(f"steps ({steps}) and batch size ({batch_size}) must be at least 1")
    if len(indices) == 0 or indices.min() < 0 or indices.max() >= len(split):
        raise UsageError(f"indices must be a non-empty selection of 0..{len(split) - 1}; "
                         "pass the positions of the clean images to optimise on")
    with torch.no_grad():
        num_classes = model(split.load(indices[:1]).to(device)).shape[1]
    if not classes or len(set(classes)) != len(classes) or min(classes) < 0 \
            or max(classes) >= num_classes:
        raise UsageError(f"classes must be distinct class indices in 0..{num_classes - 1}, got "
                         f"{classes}; list each class to scan once")
    lonely = [t for t in classes if (split.labels[indices] == t).all()]
    if lonely:
        raise UsageError(f"all given images belong to class {lonely[0]}; a trigger for it "
                         "needs images of other classes")


def _optimise(model: nn.Module, split: Split, indices: np.ndarray, classes: list[int],
              settings: dict[str, Any], device: torch.device,
              show_progress: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """The kept masks ``(n, H, W)`` and patterns ``(n, C, H, W)`` (CPU, float32)."""
    c, h, w = split.image_shape
    targets = torch.tensor(classes, device=device)
    mask_param, pattern_param = _initial(classes, (c, h, w), settings["seed"], device)
    opt = torch.optim.Adam([mask_param, pattern_param], lr=settings["lr"], betas=(0.5, 0.9))
    schedule = _CostSchedule(len(classes), settings["init_cost"], settings["patience"],
                             settings["threshold"], device)
    best_mask = torch.zeros(len(classes), h, w, device=device)
    best_pattern = torch.zeros(len(classes), c, h, w, device=device)
    draw = generator(settings["seed"], 0)
    size = min(settings["batch_size"], len(indices))
    bar = progress(range(settings["steps"]), enabled=show_progress, desc="neural cleanse",
                   unit="step")
    for _ in bar:
        chunk = indices[torch.randperm(len(indices), generator=draw)[:size].numpy()]
        x = split.load(chunk).to(device)
        other = torch.from_numpy(split.labels[chunk]).to(device)[None] != targets[:, None]
        mask, pattern = _squash(mask_param), _squash(pattern_param)
        logits = _stamped_logits(model, x, mask, pattern)
        ce = F.cross_entropy(logits.flatten(0, 1), targets.repeat_interleave(size),
                             reduction="none").view(len(classes), size)
        l1 = mask.sum(dim=(1, 2))
        loss = (_mean_over(ce, other) + schedule.cost * l1).sum()
        mask_param.grad, pattern_param.grad = torch.autograd.grad(loss, [mask_param,
                                                                         pattern_param])
        opt.step()
        with torch.no_grad():
            success = _mean_over((logits.argmax(-1) == targets[:, None]).float(), other)
            keep = schedule.update(success, l1) | torch.isinf(schedule.best_l1)
            best_mask[keep], best_pattern[keep] = mask[keep], pattern[keep]
            bar.set_postfix(found=int(torch.isfinite(schedule.best_l1).sum()))
    return best_mask.cpu(), best_pattern.cpu()


def _initial(classes: list[int], shape: tuple[int, int, int], seed: int,
             device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """Uniform random masks and patterns in tanh space, one seeded stream per class."""
    c, h, w = shape
    uniform = torch.stack([torch.rand(c + 1, h, w, generator=generator(seed, 1, t))
                           for t in classes])
    raw = torch.atanh((uniform * 2 - 1) * (1 - 1e-4)).to(device)
    return raw[:, 0].clone().requires_grad_(), raw[:, 1:].clone().requires_grad_()


def _squash(raw: torch.Tensor) -> torch.Tensor:
    """Map tanh-space parameters into [0, 1]."""
    return (torch.tanh(raw) + 1) / 2


def _stamped_logits(model: nn.Module, x: torch.Tensor, mask: torch.Tensor,
                    pattern: torch.Tensor) -> torch.Tensor:
    """Logits ``(n, B, K)`` of the ``B`` images ``x`` stamped with each of ``n`` triggers."""
    m = mask[:, None, None]
    stamped = (1 - m) * x[None] + m * pattern[:, None]
    return model(stamped.flatten(0, 1)).view(len(mask), len(x), -1)


def _mean_over(values: torch.Tensor, where: torch.Tensor) -> torch.Tensor:
    """Row means of ``values`` ``(n, B)`` over the entries where ``where`` holds (0 if none)."""
    where = where.to(values.dtype)
    return (values * where).sum(1) / where.sum(1).clamp(min=1)


class _CostSchedule:
    """Per-class adaptive L1 cost and the smallest L1 norm reaching the threshold so far."""

    def __init__(self, n: int, init_cost: float, patience: int, threshold: float,
                 device: torch.device) -> None:
        self.init_cost, self.patience, self.threshold = init_cost, patience, threshold
        self.cost = torch.zeros(n, device=device)
        self.best_l1 = torch.full((n,), float("inf"), device=device)
        self.above = torch.zeros(n, dtype=torch.long, device=device)
        self.below = torch.zeros(n, dtype=torch.long, device=device)

    def update(self, success: torch.Tensor, l1: torch.Tensor) -> torch.Tensor:
        """Record one round (success rates and mask L1 norms, both ``(n,)``); True where the
        trigger is the smallest so far to reach the threshold."""
        reached = success >= self.threshold
        improved = reached & (l1 < self.best_l1)
        self.best_l1 = torch.where(improved, l1, self.best_l1)
        self.above = torch.where(reached, self.above + 1, 0)
        self.below = torch.where(reached, 0, self.below + 1)
        due_up, due_down = self.above >= self.patience, self.below >= self.patience
        started = self.cost > 0
        self.cost = torch.where(due_up & ~started, self.init_cost, self.cost)
        self.cost = torch.where(due_up & started, self.cost * 1.5, self.cost)
        self.cost = torch.where(due_down & started, self.cost / 1.5 ** 1.5, self.cost)
        self.above = torch.where(due_up, 0, self.above)
        self.below = torch.where(due_down, 0, self.below)
        return improved


@torch.no_grad()
def _success(model: nn.Module, split: Split, indices: np.ndarray, classes: list[int],
             masks: torch.Tensor, patterns: torch.Tensor, batch_size: int,
             device: torch.device) -> np.ndarray:
    """Share of the other-class images in ``indices`` each class's trigger sends to it."""
    targets = torch.tensor(classes, device=device)
    masks, patterns = masks.to(device), patterns.to(device)
    hits = torch.zeros(len(classes), device=device)
    counts = torch.zeros(len(classes), device=device)
    for chunk in batches(indices, batch_size):
        other = torch.from_numpy(split.labels[chunk]).to(device)[None] != targets[:, None]
        pred = _stamped_logits(model, split.load(chunk).to(device), masks, patterns).argmax(-1)
        hits += ((pred == targets[:, None]) & other).sum(1)
        counts += other.sum(1)
    return (hits / counts).cpu().numpy()
