"""The search loop: masks of many rows (target class, canvas) optimised together.

One row is one (target class, canvas) pair. Rows are independent: each has its own
batch stream, its own loss term and element-wise optimiser state, so optimising rows
together in one forward pass (``classes_per_pass``) changes speed, not results.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from classwise.search.config import SearchConfig
from classwise.search.ops import blend, project_budget, stamp, topk_mask
from classwise.search.pools import ImageSource, RowSampler


@dataclass
class Rows:
    """A chunk of rows: targets (R,), canvases (R, C, H, W), one sampler per row."""

    targets: torch.Tensor
    canvases: torch.Tensor
    samplers: list[RowSampler]

    def __len__(self) -> int:
        return len(self.targets)

    def take(self, keep: torch.Tensor | list[int]) -> Rows:
        idx = torch.as_tensor(keep, dtype=torch.long)
        return Rows(self.targets[idx.to(self.targets.device)],
                    self.canvases[idx.to(self.canvases.device)],
                    [self.samplers[i] for i in idx.tolist()])


def row_losses(logits: torch.Tensor, targets: torch.Tensor, cfg: SearchConfig) -> torch.Tensor:
    """Per-row mean loss of logits (R, B, classes) toward ``targets`` (R,) (mask term apart)."""
    r, b, n = logits.shape
    t = targets[:, None].expand(r, b)
    if cfg.objective == "paper":
        return F.cross_entropy(logits.reshape(r * b, n), t.reshape(-1),
                               reduction="none").view(r, b).mean(1)
    target_logit = logits.gather(2, t[..., None]).squeeze(2)
    others = logits.scatter(2, t[..., None], float("-inf")).amax(2)
    return (others - target_logit).clamp(min=-cfg.margin, max=cfg.cap).mean(1)


def objective(model: nn.Module, masks: torch.Tensor, rows: Rows, x: torch.Tensor,
              cfg: SearchConfig) -> torch.Tensor:
    """The summed loss of all rows for search images x (R, B, C, H, W)."""
    r, b = x.shape[:2]
    logits = model(blend(masks, rows.canvases, x).flatten(0, 1)).view(r, b, -1)
    loss = row_losses(logits, rows.targets, cfg)
    if cfg.objective == "paper":
        h, w = masks.shape[1:]
        loss = cfg.alpha * loss + (1 - cfg.alpha) * masks.flatten(1).sum(1) / (h * w / 2)
    return loss.sum()


def draw(rows: Rows, source: ImageSource, batch_size: int) -> torch.Tensor:
    """The next batch of every row: (R, B, C, H, W)."""
    return source(np.stack([s.next(batch_size) for s in rows.samplers]))


def initial_masks(model: nn.Module, rows: Rows, source: ImageSource, cfg: SearchConfig,
                  k: int) -> torch.Tensor:
    """Constant masks (paper) or the budget projection of the loss's gradient saliency."""
    _, _, h, w = rows.canvases.shape
    device = rows.canvases.device
    if cfg.init == "constant":
        return torch.full((len(rows), h, w), cfg.init_value, device=device)
    zero = torch.zeros(len(rows), h, w, device=device, requires_grad=True)
    (grad,) = torch.autograd.grad(objective(model, zero, rows, draw(rows, source,
                                                                    cfg.batch_size), cfg), zero)
    saliency = -grad
    scale = saliency.flatten(1).abs().amax(1).clamp(min=1e-12).view(-1, 1, 1)
    return project_budget(saliency / scale, k)


@torch.no_grad()
def fooling_rate(model: nn.Module, patterns: torch.Tensor, rows: Rows, source: ImageSource,
                 batch_size: int = 256) -> torch.Tensor:
    """Per row, the share of its held-out search images classified as its target once stamped."""
    rates = torch.zeros(len(rows))
    for i in range(len(rows)):
        val = rows.samplers[i].val
        hits = 0
        for start in range(0, len(val), batch_size):
            x = stamp(source(val[start:start + batch_size]), rows.canvases[i], patterns[i])
            hits += int((model(x).argmax(1) == rows.targets[i]).sum())
        rates[i] = hits / max(1, len(val))
    return rates


def steps_for(rows: Rows, cfg: SearchConfig) -> int:
    """Steps of the chunk: ``epochs`` over the largest row's search images, or ``max_steps``."""
    if cfg.epochs is not None:
        n = max(len(s.train) for s in rows.samplers)
        return math.ceil(cfg.epochs * n / cfg.batch_size)
    return int(cfg.max_steps)


class MaskSearch:
    """The optimisation of one chunk of rows, resumable from its :meth:`state_dict`.

    With early stopping (``cfg.eval_every``), each row keeps the mask whose top-k pattern
    fooled most held-out search images, and stops after ``cfg.patience`` checks without
    improvement; rows that stopped leave the forward pass.
    """

    def __init__(self, model: nn.Module, rows: Rows, masks: torch.Tensor, source: ImageSource,
                 cfg: SearchConfig, k: int) -> None:
        self.model, self.rows, self.source, self.cfg, self.k = model, rows, source, cfg, k
        self.masks = masks.detach().clone().requires_grad_(True)
        self.best = self.masks.detach().clone()
        self.best_rate = torch.full((len(rows),), -1.0)
        self.strikes = torch.zeros(len(rows), dtype=torch.long)
        self.active = torch.arange(len(rows))
        self.adam = Adam(self.masks, cfg.step_size) if cfg.optimizer == "adam" else None
        self.step = 0
        self.total = steps_for(rows, cfg)

    @property
    def done(self) -> bool:
        return self.step >= self.total or len(self.active) == 0

    def run(self, tick: Callable[[int], None] = lambda n: None,
            checkpoint: Callable[[MaskSearch], None] | None = None,
            every: float = 30.0) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Step until done; call ``checkpoint`` every ``every`` seconds and on Ctrl-C.

        Returns the masks kept (R, H, W) and, with early stopping, their held-out rates.
        """
        last = time.monotonic()
        try:
            while not self.done:
                self.advance()
                tick(len(self.active))
                if checkpoint is not None and time.monotonic() - last >= every:
                    checkpoint(self)
                    last = time.monotonic()
        except KeyboardInterrupt:
            if checkpoint is not None:
                checkpoint(self)
            raise
        if not self.cfg.eval_every:
            return self.masks.detach(), None
        return self.best, self.best_rate

    def advance(self) -> None:
        """One step of every active row, then the early-stopping check when it is due."""
        cfg, k, active = self.cfg, self.k, self.active
        sub = self.rows.take(active)
        on = active.to(self.masks.device)
        loss = objective(self.model, self.masks[on], sub, draw(sub, self.source,
                                                               cfg.batch_size), cfg)
        (grad,) = torch.autograd.grad(loss, self.masks)
        _update(self.masks, grad, self.adam, cfg, k)
        self.step += 1
        if cfg.eval_every and (self.step % cfg.eval_every == 0 or self.step == self.total):
            current = self.masks.detach()[on]
            rates = fooling_rate(self.model, topk_mask(current, k), sub, self.source)
            better = rates > self.best_rate[active]
            self.best[on[better.to(on.device)]] = current[better.to(on.device)]
            self.best_rate[active[better]] = rates[better]
            self.strikes[active] = torch.where(better, 0, self.strikes[active] + 1)
            self.active = active[self.strikes[active] < cfg.patience]

    def state_dict(self) -> dict:
        """Everything needed to continue exactly where the search stands."""
        return {"step": self.step, "masks": self.masks.detach().cpu(),
                "best": self.best.cpu(), "best_rate": self.best_rate,
                "strikes": self.strikes, "active": self.active,
                "adam": self.adam.state_dict() if self.adam else None,
                "samplers": [s.state_dict() for s in self.rows.samplers]}

    def load_state_dict(self, state: dict) -> None:
        device = self.masks.device
        with torch.no_grad():
            self.masks.copy_(state["masks"].to(device))
        self.best = state["best"].to(device)
        self.best_rate, self.strikes = state["best_rate"], state["strikes"]
        self.active, self.step = state["active"], state["step"]
        if self.adam is not None:
            self.adam.load_state_dict(state["adam"])
        for sampler, s in zip(self.rows.samplers, state["samplers"], strict=True):
            sampler.load_state_dict(s)


def optimise(model: nn.Module, rows: Rows, masks: torch.Tensor, source: ImageSource,
             cfg: SearchConfig, k: int) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Optimise ``masks`` (R, H, W) of ``rows`` in one go (see :class:`MaskSearch`)."""
    return MaskSearch(model, rows, masks, source, cfg, k).run()


class Adam:
    """Adam (Kingma and Ba, 2015) with default betas on one tensor.

    Written out because ``torch.optim`` imports ``torch._dynamo`` on first use, which costs
    seconds of start-up per process on a small CPU. The update is element-wise, so each
    row's trajectory depends on its own gradients only.
    """

    def __init__(self, param: torch.Tensor, lr: float, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8) -> None:
        self.lr, self.betas, self.eps, self.t = lr, betas, eps, 0
        self.m = torch.zeros_like(param, memory_format=torch.preserve_format).detach()
        self.v = torch.zeros_like(self.m)

    def direction(self, grad: torch.Tensor) -> torch.Tensor:
        """The step to subtract for ``grad`` (bias-corrected first over second moment)."""
        b1, b2 = self.betas
        self.t += 1
        self.m.mul_(b1).add_(grad, alpha=1 - b1)
        self.v.mul_(b2).addcmul_(grad, grad, value=1 - b2)
        m_hat = self.m / (1 - b1**self.t)
        v_hat = self.v / (1 - b2**self.t)
        return self.lr * m_hat / (v_hat.sqrt() + self.eps)

    def state_dict(self) -> dict:
        return {"t": self.t, "m": self.m.cpu(), "v": self.v.cpu()}

    def load_state_dict(self, state: dict) -> None:
        self.t = state["t"]
        self.m.copy_(state["m"])
        self.v.copy_(state["v"])


@torch.no_grad()
def _update(masks: torch.Tensor, grad: torch.Tensor, adam: Adam | None,
            cfg: SearchConfig, k: int) -> None:
    """One in-place step: the paper's clipped sign-gradient step, or Adam then projection.

    Rows that stopped early get zero gradients and are no longer read.
    """
    if adam is None:
        masks.sub_(cfg.step_size * grad.sign()).clamp_(0, 1)
        return
    masks.sub_(adam.direction(grad))
    masks.copy_(project_budget(masks, k) if cfg.objective == "margin" else masks.clamp(0, 1))
