"""The search loop: masks of many rows (target class, canvas) optimised together.

Rows are independent: each has its own batch stream, its own loss term and element-wise
optimiser state, so optimising rows together in one forward pass changes speed, not
results. The objective and the optimiser come from their registries
(:mod:`~classwise.search.objectives`, :mod:`~classwise.search.optimizers`).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import NamedTuple

import numpy as np
import torch
from torch import nn

from classwise.interrupt import safe_points
from classwise.search.config import SearchConfig
from classwise.search.objectives import Objective, make_objective
from classwise.search.ops import blend, pixel_ranks, project_budget, stamp, topk_mask
from classwise.search.optimizers import make_optimizer
from classwise.search.rows import Bank, Rows


def total_loss(model: nn.Module, objective: Objective, masks: torch.Tensor, rows: Rows,
               x: torch.Tensor) -> torch.Tensor:
    """The summed loss of all rows for search images x (R, B, C, H, W)."""
    r, b = x.shape[:2]
    logits = model(blend(masks, rows.canvases, x).flatten(0, 1)).view(r, b, -1)
    return objective.row_losses(logits, rows.targets, masks).sum()


def initial_masks(model: nn.Module, rows: Rows, images: Bank, cfg: SearchConfig,
                  k: int) -> torch.Tensor:
    """Constant masks, or the budget projection of the loss's gradient saliency at an empty
    mask (one batch of each row's stream)."""
    _, _, h, w = rows.canvases.shape
    device = rows.canvases.device
    if cfg.init == "constant":
        return torch.full((len(rows), h, w), cfg.init_value, device=device)
    zero = torch.zeros(len(rows), h, w, device=device, requires_grad=True)
    loss = total_loss(model, make_objective(cfg), zero, rows, rows.draw(images, cfg.batch_size))
    (grad,) = torch.autograd.grad(loss, zero)
    saliency = -grad
    scale = saliency.flatten(1).abs().amax(1).clamp(min=1e-12).view(-1, 1, 1)
    return project_budget(saliency / scale, k)


def fooling_rate(model: nn.Module, patterns: torch.Tensor, rows: Rows, images: Bank,
                 batch_size: int = 256) -> torch.Tensor:
    """Per row, the share of its held-out search images classified as its target once
    stamped with its pattern (H, W)."""
    patterns = patterns.to(rows.canvases.device)
    return held_out_rate(model, rows, images,
                         lambda x, row: stamp(x, rows.canvases[row], patterns[row][:, None]),
                         batch_size)


@torch.no_grad()
def held_out_rate(model: nn.Module, rows: Rows, images: Bank,
                  change: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
                  batch_size: int = 256) -> torch.Tensor:
    """Per row, the share of its held-out search images classified as its target once
    changed by ``change(x, row)`` (x: images (n, C, H, W), row: the row of each image).
    The rows' images go through the model together, in batches of ``batch_size``."""
    owner = np.concatenate([np.full(len(s.val), i) for i, s in enumerate(rows.samplers)])
    positions = np.concatenate([s.val for s in rows.samplers])
    hits = torch.zeros(len(rows))
    for start in range(0, len(owner), batch_size):
        row = torch.from_numpy(owner[start:start + batch_size]).to(rows.canvases.device)
        x = change(images.take(positions[start:start + batch_size]), row)
        fooled = (model(x).argmax(1) == rows.targets[row]).float().cpu()
        hits.index_add_(0, row.cpu(), fooled)
    counts = torch.tensor([max(1, len(s.val)) for s in rows.samplers], dtype=torch.float32)
    return hits / counts


def steps_for(rows: Rows, cfg: SearchConfig) -> int:
    """Steps of the rows: ``epochs`` over the largest row's search images, or ``max_steps``."""
    if cfg.epochs is not None:
        n = max(len(s.train) for s in rows.samplers)
        return math.ceil(cfg.epochs * n / cfg.batch_size)
    return int(cfg.max_steps)


def refine(model: nn.Module, rows: Rows, outcome: Outcome, images: Bank, cfg: SearchConfig,
           k: int, order: torch.Tensor) -> Outcome:
    """The kept top-k set of each row improved by swaps the gradient proposes.

    Each of ``cfg.refine_rounds`` rounds takes the gradient of the loss at the binary
    pattern on a fresh batch of the row's search images, and proposes letting the
    ``cfg.refine_swaps`` kept pixels the loss most wants lower go and as many outside pixels
    it most wants higher in; a row takes the swap only when its held-out search images are
    then fooled more often, so no row ends with a pattern that fools fewer of them than the
    one it started from. The masks stay as the search left them; the ranks put the refined
    pattern first.
    """
    objective = make_objective(cfg)
    pattern = (outcome.ranks < k).to(rows.canvases.device)
    rate = fooling_rate(model, pattern, rows, images)
    n = pattern[0].numel()
    swaps = min(cfg.refine_swaps, k, n - k)
    for _ in range(cfg.refine_rounds if swaps > 0 else 0):
        binary = pattern.float().requires_grad_(True)
        loss = total_loss(model, objective, binary, rows, rows.draw(images, cfg.batch_size))
        (grad,) = torch.autograd.grad(loss, binary)
        kept, flat = pattern.flatten(1), grad.flatten(1)
        leave = flat.masked_fill(~kept, -math.inf).topk(swaps, 1).indices
        join = (-flat).masked_fill(kept, -math.inf).topk(swaps, 1).indices
        proposal = kept.scatter(1, leave, False).scatter(1, join, True).view_as(pattern)
        proposed = fooling_rate(model, proposal, rows, images)
        better = proposed > rate
        pattern = torch.where(better.to(pattern.device)[:, None, None], proposal, pattern)
        rate = torch.where(better, proposed, rate)
    ranks = pixel_ranks(pattern.float(), outcome.masks, order.to(pattern.device))
    return Outcome(outcome.masks, rate if outcome.rates is not None else None, ranks)


class Outcome(NamedTuple):
    """What a search of some rows ends with: masks (R, H, W), their held-out rates (R,)
    where the search checked them, and each pixel's rank (R, H, W; the top k are the
    pattern): by mask value, then by the last step's value before the constraint, then by a
    seeded random order."""

    masks: torch.Tensor
    rates: torch.Tensor | None
    ranks: torch.Tensor


class MaskSearch:
    """The optimisation of some rows, resumable from its :meth:`state_dict`.

    With early stopping (``cfg.eval_every``), each row keeps the mask whose top-k pattern
    fooled most held-out search images, and stops after ``cfg.patience`` checks without
    improvement; rows that stopped leave the forward pass.
    """

    def __init__(self, model: nn.Module, rows: Rows, masks: torch.Tensor, images: Bank,
                 cfg: SearchConfig, k: int, order: torch.Tensor) -> None:
        self.model, self.rows, self.images, self.cfg, self.k = model, rows, images, cfg, k
        self.order = order.to(masks.device)
        self.objective = make_objective(cfg)
        self.masks = masks.detach().clone().requires_grad_(True)
        self.optimizer = make_optimizer(cfg, self.masks)
        self.preclip = self.masks.detach().clone()
        """The masks as the last step left them before the constraint: a pixel clipped at 1
        that the step pushed further up ranks above one that only just reached 1."""
        self.best = self.masks.detach().clone()
        self.best_preclip = self.preclip.clone()
        self.best_rate = torch.full((len(rows),), -1.0)
        self.strikes = torch.zeros(len(rows), dtype=torch.long)
        self.active = torch.arange(len(rows))
        self.step = 0
        self.total = steps_for(rows, cfg)

    @property
    def done(self) -> bool:
        return self.step >= self.total or len(self.active) == 0

    def run(self, tick: Callable[[int], None] = lambda n: None,
            checkpoint: Callable[[MaskSearch], None] | None = None,
            every: float = 30.0) -> Outcome:
        """Step until done; call ``checkpoint`` every ``every`` seconds and on Ctrl-C.

        Ctrl-C is honoured between steps (:func:`classwise.interrupt.safe_points`), so the
        state saved is always one an uninterrupted run passes through. Returns the masks
        kept (R, H, W), with early stopping their held-out rates, and each pixel's rank.
        """
        last = time.monotonic()
        with safe_points() as stop:
            while not self.done:
                self.advance()
                tick(len(self.active))
                due = time.monotonic() - last >= every
                if checkpoint is not None and (due or stop.requested):
                    checkpoint(self)
                    last = time.monotonic()
                stop.check()
        if not self.cfg.eval_every:
            masks, preclip, rates = self.masks.detach(), self.preclip, None
        else:
            masks, preclip, rates = self.best, self.best_preclip, self.best_rate
        return Outcome(masks, rates, pixel_ranks(masks, preclip, self.order))

    def advance(self) -> None:
        """One step of every active row, then the early-stopping check when it is due."""
        cfg, k, active = self.cfg, self.k, self.active
        sub = self.rows.take(active)
        on = active.to(self.masks.device)
        loss = total_loss(self.model, self.objective, self.masks[on], sub,
                          sub.draw(self.images, cfg.batch_size))
        (grad,) = torch.autograd.grad(loss, self.masks)
        with torch.no_grad():  # rows that stopped get zero gradients and are not read again
            self.masks.sub_(self.optimizer.direction(grad))
            self.preclip.copy_(self.masks)
            self.masks.copy_(self.objective.constrain(self.masks, k))
        self.step += 1
        if cfg.eval_every and (self.step % cfg.eval_every == 0 or self.step == self.total):
            current = self.masks.detach()[on]
            cut = topk_mask(current, k, self.preclip[on], self.order[on])
            rates = fooling_rate(self.model, cut, sub, self.images)
            better = rates > self.best_rate[active]
            self.best[on[better.to(on.device)]] = current[better.to(on.device)]
            self.best_preclip[on[better.to(on.device)]] = self.preclip[on][better.to(on.device)]
            self.best_rate[active[better]] = rates[better]
            self.strikes[active] = torch.where(better, 0, self.strikes[active] + 1)
            self.active = active[self.strikes[active] < cfg.patience]
            if cfg.halving:
                self.active = self._halved(self.active)

    def _halved(self, active: torch.Tensor) -> torch.Tensor:
        """``active`` with the worse half of each target's rows left out (by the best
        held-out rate so far; ties keep the earlier row): successive halving of a target's
        finalists, one check at a time."""
        targets = self.rows.targets[active.to(self.rows.targets.device)].tolist()
        keep: list[int] = []
        for t in dict.fromkeys(targets):
            own = [int(a) for a, u in zip(active.tolist(), targets, strict=True) if u == t]
            own.sort(key=lambda a: (-float(self.best_rate[a]), a))
            keep += own[:math.ceil(len(own) / 2)]
        return torch.tensor(sorted(keep), dtype=torch.long)

    def state_dict(self) -> dict:
        """Everything needed to continue exactly where the search stands."""
        return {"step": self.step, "masks": self.masks.detach().cpu(),
                "preclip": self.preclip.cpu(), "best": self.best.cpu(),
                "best_preclip": self.best_preclip.cpu(), "best_rate": self.best_rate.clone(),
                "strikes": self.strikes.clone(), "active": self.active.clone(),
                "optimizer": self.optimizer.state_dict(), "samplers": self.rows.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        device = self.masks.device
        with torch.no_grad():
            self.masks.copy_(state["masks"].to(device))
        self.preclip = state["preclip"].to(device)
        self.best = state["best"].to(device)
        self.best_preclip = state["best_preclip"].to(device)
        self.best_rate, self.strikes = state["best_rate"], state["strikes"]
        self.active, self.step = state["active"], state["step"]
        self.optimizer.load_state_dict(state["optimizer"])
        self.rows.load_state_dict(state["samplers"])
